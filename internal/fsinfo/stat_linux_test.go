package fsinfo

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// TestStatTempDir checks Stat on a real directory against statfs and the
// mount table read independently.
func TestStatTempDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	info, err := Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if info.Magic != int64(uint32(st.Type)) {
		t.Errorf("Magic = %#x, statfs says %#x", info.Magic, st.Type)
	}
	if info.Type == "" || info.Type == "unknown" {
		t.Errorf("Type = %q for a temporary directory (magic %#x)", info.Type, info.Magic)
	}
	if info.Avail == 0 || info.Total < info.Avail {
		t.Errorf("Avail = %d, Total = %d", info.Avail, info.Total)
	}
	if info.Network {
		t.Errorf("the temporary directory is on a network file system: %+v", info)
	}
	// The type agrees with the mount table where the magic alone is
	// ambiguous (ext2/3/4).
	if info.Magic == 0xEF53 && !strings.HasPrefix(info.Type, "ext") {
		t.Errorf("Type = %q for magic 0xEF53", info.Type)
	}
	t.Logf("%s: %+v", dir, info)

	// The real mount table has a mount for it with its device number.
	f, err := os.Open(mountinfoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		t.Fatalf("parsing the real %s: %v", mountinfoPath, err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s syscall.Stat_t
	if err := syscall.Stat(real, &s); err != nil {
		t.Fatal(err)
	}
	m, matched, found := findMount(mounts, real, [2]uint32{proclocks.Major(uint64(s.Dev)), proclocks.Minor(uint64(s.Dev))})
	if !found || !matched {
		t.Errorf("no mount with device %d:%d holds %s (best guess %+v)", proclocks.Major(uint64(s.Dev)), proclocks.Minor(uint64(s.Dev)), real, m)
	}

	// A file gives the same answer as its directory.
	file := filepath.Join(dir, "app.db")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := Stat(file); err != nil || fi.Type != info.Type || fi.Magic != info.Magic {
		t.Errorf("Stat(file) = %+v, %v; want the type of its directory %+v", fi, err, info)
	}
}

// TestStatMissing checks that a path that does not exist is described by
// its nearest existing parent, and is not created.
func TestStatMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want, err := Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no", "such", "dir", "app.db")
	got, err := Stat(missing)
	if err != nil {
		t.Fatalf("Stat(%q): %v", missing, err)
	}
	if got.Type != want.Type || got.Magic != want.Magic || got.Total != want.Total {
		t.Errorf("Stat(missing) = %+v, want that of %s: %+v", got, dir, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !os.IsNotExist(err) {
		t.Errorf("Stat created %s/no: %v", dir, err)
	}
	// A relative path works too.
	if _, err := Stat("no-such-file-here.db"); err != nil {
		t.Errorf("Stat(relative missing): %v", err)
	}
	// Through a regular file, as if it were a directory: ENOTDIR.
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Stat(filepath.Join(file, "x")); err != nil || got.Magic != want.Magic {
		t.Errorf("Stat(file/x) = %+v, %v", got, err)
	}
}

// TestStatTmpfs checks a second real file system type when /dev/shm is a
// tmpfs, as it is on most Linux systems.
func TestStatTmpfs(t *testing.T) {
	t.Parallel()
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || uint32(st.Type) != 0x01021994 {
		t.Skip("/dev/shm is not a tmpfs here")
	}
	info, err := Stat("/dev/shm")
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != "tmpfs" || info.Network || info.FUSE {
		t.Errorf("Stat(/dev/shm) = %+v, want tmpfs", info)
	}
}

package safefile

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// posixLocks returns the number of POSIX locks this process holds on f,
// read from f's /proc/self/fdinfo (proclocks.Own): a read of /proc/locks
// while other processes take and release locks can repeat or miss a line.
func posixLocks(t *testing.T, f *os.File) int {
	t.Helper()
	locks, err := proclocks.Own(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range locks {
		if l.Kind == "POSIX" && !l.Waiting && l.PID == os.Getpid() {
			n++
		}
	}
	return n
}

// Reading a file the process holds a POSIX lock on keeps the lock; the
// plain open and close it replaces drops it.
func TestPrefixKeepsLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	content := []byte("SQLite format 3\x00 and the rest of the header")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lock := func() {
		lk := syscall.Flock_t{Type: syscall.F_RDLCK, Start: 1 << 30, Len: 510}
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
			t.Fatal(err)
		}
		if n := posixLocks(t, f); n != 1 {
			t.Fatalf("%d POSIX locks after taking one", n)
		}
	}
	lock()
	for _, n := range []int{16, len(content), 100} {
		got, err := Prefix(path, n)
		if err != nil {
			t.Fatal(err)
		}
		if want := content[:min(n, len(content))]; !bytes.Equal(got, want) {
			t.Errorf("Prefix(%d) = %q, want %q", n, got, want)
		}
		if k := posixLocks(t, f); k != 1 {
			t.Fatalf("%d POSIX locks after Prefix(%d), want the 1 taken before", k, n)
		}
	}

	// The control: what Prefix replaces drops the lock.
	g, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if n := posixLocks(t, f); n != 0 {
		t.Fatalf("%d POSIX locks after an open and close of another descriptor: the control does not show the hazard", n)
	}
}

// A file the process does not have open is read as usual.
func TestPrefixNotOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Prefix(path, 10)
	if err != nil || string(got) != "abc" {
		t.Errorf("Prefix = %q, %v", got, err)
	}
	if _, err := Prefix(path+"-missing", 10); !os.IsNotExist(err) {
		t.Errorf("Prefix of a missing file: %v", err)
	}
}

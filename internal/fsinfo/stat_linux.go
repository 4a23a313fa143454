package fsinfo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// mountinfoPath is the mount table Stat reads.
const mountinfoPath = "/proc/self/mountinfo"

// Stat describes the file system holding path. If path does not exist, it
// describes that of its nearest existing parent directory. The type comes
// from statfs(2), refined with the mount's type from /proc/self/mountinfo
// (for the longest mount point containing the path): "fuse.sshfs" and
// "fuse.glusterfs" are networked FUSE file systems, "nfs4" is "nfs". If the
// mount table cannot be read, the answer is statfs's alone.
func Stat(path string) (Info, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return Info{}, fmt.Errorf("fsinfo: %w", err)
	}
	var st syscall.Statfs_t
	for {
		err = statfs(p, &st)
		if err == nil {
			break
		}
		parent := filepath.Dir(p)
		if (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR)) && parent != p {
			p = parent
			continue
		}
		return Info{}, fmt.Errorf("fsinfo: %w", &os.PathError{Op: "statfs", Path: p, Err: err})
	}
	info := Info{Magic: int64(uint32(st.Type))}
	info.Type, info.Network, info.FUSE = Describe(info.Magic)
	size := uint64(st.Frsize)
	if size == 0 {
		size = uint64(st.Bsize)
	}
	info.Avail = uint64(st.Bavail) * size
	info.Total = uint64(st.Blocks) * size

	f, err := os.Open(mountinfoPath)
	if err != nil {
		return info, nil
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return info, nil
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	// The device of the path itself, and of its directory: on overlayfs a
	// file may report the device of the layer it comes from.
	var devs [][2]uint32
	for _, q := range []string{p, filepath.Dir(p)} {
		var s syscall.Stat_t
		if syscall.Stat(q, &s) == nil {
			devs = append(devs, [2]uint32{proclocks.Major(uint64(s.Dev)), proclocks.Minor(uint64(s.Dev))})
		}
	}
	m, matched, found := findMount(mounts, p, devs...)
	if !found {
		return info, nil
	}
	return refine(info, m.fstype, matched), nil
}

// statfs is syscall.Statfs, retried when a signal interrupts it.
func statfs(path string, st *syscall.Statfs_t) error {
	for {
		err := syscall.Statfs(path, st)
		if err != syscall.EINTR {
			return err
		}
	}
}

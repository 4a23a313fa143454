// Package procfd finds the descriptors of this process open on a file, in
// Linux's /proc/self/fd, without opening anything: opening and closing a
// database file beside SQLite's connections would drop the process's POSIX
// locks on it.
package procfd

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Descriptors returns the descriptors of this process open on the regular
// file st describes, found in /proc/self/fd by device and inode without
// opening anything. A number may be closed, or reused for another file, by
// the time the caller uses it: check again after.
func Descriptors(st *unix.Stat_t) ([]int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && Same(fd, st) {
			fds = append(fds, fd)
		}
	}
	return fds, nil
}

// Same reports whether descriptor fd is open on the file st describes.
func Same(fd int, st *unix.Stat_t) bool {
	var fst unix.Stat_t
	if unix.Fstat(fd, &fst) != nil {
		return false
	}
	return fst.Dev == st.Dev && fst.Ino == st.Ino && fst.Mode&unix.S_IFMT == unix.S_IFREG
}

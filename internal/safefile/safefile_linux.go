package safefile

import (
	"errors"
	"io"
	"os"

	"github.com/sqlitesafe/sqlitesafe/internal/procfd"
	"golang.org/x/sys/unix"
)

// Prefix returns the first n bytes of the file at path, or fewer if it is
// shorter. If a descriptor of this process is open on the file (found in
// /proc/self/fd by device and inode, without opening anything), it reads
// through that descriptor with pread(2), which changes nothing about it;
// otherwise it opens the file, reads and closes it.
//
// The one case it cannot cover is a descriptor opened, and a lock taken
// through it, by another goroutine between the look at /proc/self/fd and
// the close: callers that open the file themselves (the driver, through its
// registry of open files) make sure that cannot happen.
func Prefix(path string, n int) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	b := make([]byte, n)
	if k, found, err := readOpen(&st, b); found {
		return b[:k], err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	k, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

// readOpen reads b through a descriptor of this process open on the file
// st describes, if there is one (found).
func readOpen(st *unix.Stat_t, b []byte) (k int, found bool, err error) {
	fds, err := procfd.Descriptors(st)
	if err != nil {
		// Without /proc there is no way to tell: read as the caller
		// would.
		return 0, false, nil
	}
	for _, fd := range fds {
		found = true
		k, err := pread(fd, b)
		// The descriptor may have been closed and its number reused
		// meanwhile: the bytes count only if it is still the file.
		if err == nil && procfd.Same(fd, st) {
			return k, true, nil
		}
	}
	if found {
		return 0, true, ErrOpenUnreadable
	}
	return 0, false, nil
}

// pread fills b from the start of fd, short at the end of the file.
func pread(fd int, b []byte) (int, error) {
	k := 0
	for k < len(b) {
		m, err := unix.Pread(fd, b[k:], int64(k))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return k, err
		}
		if m == 0 {
			break
		}
		k += m
	}
	return k, nil
}

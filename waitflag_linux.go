//go:build linux

package sqlitesafe

import (
	"os"
	"syscall"
)

// A waiting flag beside the flock: a process waiting for the cross-process
// lock holds a read lock of its own open file description (an OFD lock, which
// neither conflicts with the flock nor with other readers) on the first byte
// of the lock file, and a process about to take the lock again can ask the
// kernel whether another process holds one. flock(2) alone cannot tell.

// The fcntl commands of open file description locks (Linux 3.15).
const (
	fOFDGetLk = 36
	fOFDSetLk = 37
)

// setWaiting raises (or lowers) this process's waiting flag. Errors are
// ignored: without the flag the lock is only less fair.
func setWaiting(f *os.File, on bool) {
	lk := syscall.Flock_t{Type: syscall.F_UNLCK, Whence: 0, Start: 0, Len: 1}
	if on {
		lk.Type = syscall.F_RDLCK
	}
	syscall.FcntlFlock(f.Fd(), fOFDSetLk, &lk)
}

// othersWaiting reports whether another process has its waiting flag up.
func othersWaiting(f *os.File) bool {
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), fOFDGetLk, &lk); err != nil {
		return false
	}
	return lk.Type != syscall.F_UNLCK
}

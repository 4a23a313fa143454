//go:build !linux

package proclocks

import "errors"

// ErrUnsupported is returned where the system has no /proc/locks.
var ErrUnsupported = errors.New("proclocks: not supported on this system (it reads Linux's /proc/locks)")

// File names a file by device (a stat(2) st_dev) and inode.
type File struct{ Dev, Ino uint64 }

// ReadOn returns ErrUnsupported: only Linux lists its locks.
func ReadOn(files ...File) ([]Lock, error) { return nil, ErrUnsupported }

// Major returns 0: device numbers are matched only against Linux's
// /proc/locks.
func Major(dev uint64) uint32 { return 0 }

// Minor returns 0; see Major.
func Minor(dev uint64) uint32 { return 0 }

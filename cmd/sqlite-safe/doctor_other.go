//go:build !linux

package main

import (
	"errors"
	"io/fs"
)

// errNoProc is returned where the doctor needs Linux's /proc.
var errNoProc = errors.New("not supported on this system (it reads Linux's /proc)")

// fileIDs returns the owner, group, device and inode of fi; not known here.
func fileIDs(fi fs.FileInfo) (uid, gid uint32, dev, ino uint64, ok bool) { return 0, 0, 0, 0, false }

// readOnlyFS reports whether dir is on a file system mounted read-only; not
// known here.
func readOnlyFS(dir string) bool { return false }

// target is a file the doctor looks for among open files and locks.
type target struct {
	role     string
	path     string
	dev, ino uint64
	exists   bool
}

// scanProcesses is not supported here.
func scanProcesses(targets []target) (procs []procFacts, deleted []target, unreadable int, err error) {
	return nil, nil, 0, errNoProc
}

// readLocks is not supported here.
func readLocks(targets []target) ([]lockFacts, error) { return nil, errNoProc }

// backupRunning cannot tell here whether a backup's temporary file is in
// use.
func backupRunning(path string) (running, known bool) { return false, false }

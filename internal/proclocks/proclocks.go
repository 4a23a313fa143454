// Package proclocks reads the file locks of the system from Linux's
// /proc/locks (see proc(5)) and matches them to files by device and inode.
// The driver uses it to name the process holding its lock file, the doctor
// to list every lock on a database's files.
package proclocks

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Lock is one line of /proc/locks:
//
//	1: POSIX  ADVISORY  WRITE 1234 fd:00:1311793 1073741825 1073741825
//	2: -> POSIX  ADVISORY  WRITE 5678 fd:00:1311793 1073741824 1073741824
//	3: OFDLCK ADVISORY  READ  -1 00:2d:77 128 EOF
//	4: FLOCK  ADVISORY  WRITE 4321 103:02:4099 0 EOF
//
// "->" marks a process waiting for the lock of the line above.
type Lock struct {
	Kind    string // POSIX, OFDLCK, FLOCK, LEASE, ...
	Type    string // READ, WRITE (or a lease's type)
	PID     int    // -1 where the kernel does not say (OFD locks)
	Major   uint32 // the file's device, in hex in the file
	Minor   uint32
	Inode   uint64
	Start   int64 // the first byte locked
	End     int64 // the last byte locked, inclusive; -1 for the end of the file
	Waiting bool  // a request waiting for the lock, not a lock held
}

// On reports whether l is on the file with device dev (a stat(2) st_dev)
// and inode ino.
func (l Lock) On(dev, ino uint64) bool {
	return l.Inode == ino && l.Major == Major(dev) && l.Minor == Minor(dev)
}

// Parse reads the lines of /proc/locks. Lines it cannot read are skipped:
// the format has grown fields over the years, never lost the ones read here.
func Parse(r io.Reader) ([]Lock, error) {
	var locks []Lock
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l, ok := parseLine(sc.Text()); ok {
			locks = append(locks, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("proclocks: reading the locks: %w", err)
	}
	return locks, nil
}

func parseLine(line string) (Lock, bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return Lock{}, false
	}
	f = f[1:] // the lock's number
	var l Lock
	if f[0] == "->" {
		l.Waiting, f = true, f[1:]
	}
	if len(f) < 7 {
		return Lock{}, false
	}
	l.Kind, l.Type = f[0], f[2]
	id := strings.Split(f[4], ":")
	if len(id) != 3 {
		return Lock{}, false
	}
	major, err1 := strconv.ParseUint(id[0], 16, 32)
	minor, err2 := strconv.ParseUint(id[1], 16, 32)
	ino, err3 := strconv.ParseUint(id[2], 10, 64)
	pid, err4 := strconv.Atoi(f[3])
	start, err5 := strconv.ParseInt(f[5], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
		return Lock{}, false
	}
	l.Major, l.Minor, l.Inode, l.PID, l.Start, l.End = uint32(major), uint32(minor), ino, pid, start, -1
	if f[6] != "EOF" {
		end, err := strconv.ParseInt(f[6], 10, 64)
		if err != nil {
			return Lock{}, false
		}
		l.End = end
	}
	return l, true
}

package proclocks

import (
	"cmp"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/sqlitesafe/sqlitesafe/internal/procfd"
	"golang.org/x/sys/unix"
)

// Path is the file Read reads.
const Path = "/proc/locks"

// Read returns the locks of the system.
//
// The kernel writes /proc/locks a page at a time, each page under its lock
// of the lock lists but not the next one after it: a read while locks are
// taken or released elsewhere can miss a line or repeat one. Read reads the
// file until two reads in a row agree (at most stableReads times) and
// returns the last.
func Read() ([]Lock, error) {
	var prev []Lock
	for i := range stableReads {
		cur, err := readOnce()
		if err != nil {
			return nil, err
		}
		if i > 0 && slices.Equal(prev, cur) {
			break
		}
		prev = cur
	}
	return prev, nil
}

// stableReads bounds the reads of Read.
const stableReads = 8

// readOnce reads /proc/locks once.
func readOnce() ([]Lock, error) {
	f, err := os.Open(Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Major and Minor split a Linux device number (st_dev) as the kernel's
// new_encode_dev and glibc's gnu_dev_major and gnu_dev_minor do: 12 bits
// of the major number at bits 8-19 and the rest from bit 32, 8 bits of the
// minor number at bits 0-7 and the rest at bits 20-43.
func Major(dev uint64) uint32 { return unix.Major(dev) }

// Minor returns the minor number of a Linux device number; see Major.
func Minor(dev uint64) uint32 { return unix.Minor(dev) }

// Own returns the locks the process holds on the file at path, sorted by
// their first byte. It reads them from /proc/self/fdinfo of each descriptor
// of the process open on the file (the kernel lists there the locks taken
// through that descriptor, under the file's own lock list, so a read is never
// torn by locks changing elsewhere, as one of /proc/locks can be); a process
// with no descriptor open on a file holds no lock on it.
func Own(path string) ([]Lock, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, err
	}
	fds, err := procfd.Descriptors(&st)
	if err != nil {
		return nil, err
	}
	var out []Lock
	for _, fd := range fds {
		info, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
		if err != nil {
			continue // closed since
		}
		locks, ino := parseFdinfo(string(info))
		if ino != st.Ino {
			continue // the number was reused for another file
		}
		out = append(out, locks...)
	}
	slices.SortFunc(out, func(a, b Lock) int { return cmp.Compare(a.Start, b.Start) })
	return out, nil
}

// parseFdinfo reads a /proc/self/fdinfo file: the inode of the descriptor
// ("ino:") and its locks ("lock:" lines, in the format of /proc/locks).
func parseFdinfo(info string) (locks []Lock, ino uint64) {
	for line := range strings.Lines(info) {
		line = strings.TrimRight(line, "\n")
		if v, ok := strings.CutPrefix(line, "ino:"); ok {
			ino, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "lock:"); ok {
			if l, ok := parseLine(strings.TrimSpace(v)); ok {
				locks = append(locks, l)
			}
		}
	}
	return locks, ino
}

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

// Path is the file ReadOn reads.
const Path = "/proc/locks"

// File names a file by device (a stat(2) st_dev) and inode.
type File struct{ Dev, Ino uint64 }

// ReadOn returns the locks of the system on the files given.
//
// The kernel writes /proc/locks a page at a time and starts each page again
// from a position in its lists of locks: while locks are taken or released
// anywhere on the system, one read can miss a line or repeat one, even many
// times. ReadOn keeps, of each read, the lines on these files, a line of a
// process that is the same as one before it once (a process's POSIX locks
// on one range merge, so a second such line is a repeat; two equal flocks of
// one process, on two descriptions of the file, count once), and reads until
// agreeReads reads in a row give the same lines (at most maxReads reads); if
// none do, it returns the lines read most often. A lock that a few reads in
// a row all miss is missed: what it returns is for messages and the doctor,
// not for deciding who holds a lock.
func ReadOn(files ...File) ([]Lock, error) {
	var seen [][]Lock
	count := map[int]int{} // index in seen -> reads that gave it
	last, run := -1, 0
	for range maxReads {
		all, err := readOnce()
		if err != nil {
			return nil, err
		}
		cur := linesOn(all, files)
		i := slices.IndexFunc(seen, func(s []Lock) bool { return slices.Equal(s, cur) })
		if i < 0 {
			i = len(seen)
			seen = append(seen, cur)
		}
		count[i]++
		if i == last {
			run++
		} else {
			last, run = i, 1
		}
		if run == agreeReads {
			return cur, nil
		}
	}
	best := 0
	for i := range seen {
		if count[i] > count[best] {
			best = i
		}
	}
	return seen[best], nil
}

// agreeReads and maxReads bound the reads of ReadOn.
const (
	agreeReads = 3
	maxReads   = 24
)

// linesOn returns the locks in all on the files, a process's line repeated
// by a torn read once.
func linesOn(all []Lock, files []File) []Lock {
	var out []Lock
	for _, l := range all {
		if !slices.ContainsFunc(files, func(f File) bool { return l.On(f.Dev, f.Ino) }) {
			continue
		}
		if l.PID > 0 && slices.Contains(out, l) {
			continue
		}
		out = append(out, l)
	}
	return out
}

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

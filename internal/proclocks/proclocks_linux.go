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

// ReadOn returns the locks of the system on the files given: those it saw
// in any of unionReads reads of /proc/locks.
//
// The kernel writes /proc/locks a page at a time and starts each page again
// from a position in its lists of locks: while locks are taken or released
// anywhere on the system, one read can miss a line or repeat one, even many
// times, and several reads in a row can miss the same line. So ReadOn keeps
// the lines on these files of every read and returns each line seen, as
// many times as most of the reads that saw it gave it; a process's line once
// (a process's POSIX locks on one range merge, so a second line is a
// repeat; two equal flocks of one process, on two descriptions of the file,
// count once); sorted by file and range. A lock released during the reads
// may be in what it returns: that is for messages and the doctor, not for
// deciding who holds a lock.
func ReadOn(files ...File) ([]Lock, error) {
	counts := map[Lock][]int{} // line -> how many times each read that saw it gave it
	for range unionReads {
		all, err := readOnce()
		if err != nil {
			return nil, err
		}
		n := map[Lock]int{}
		for _, l := range all {
			if !slices.ContainsFunc(files, func(f File) bool { return l.On(f.Dev, f.Ino) }) {
				continue
			}
			if l.PID > 0 && n[l] > 0 {
				continue
			}
			n[l]++
		}
		for l, k := range n {
			counts[l] = append(counts[l], k)
		}
	}
	var out []Lock
	for l, ks := range counts {
		for range mode(ks) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, compare)
	return out, nil
}

// compare orders locks by file, then range, then kind, type, process and
// whether they wait.
func compare(a, b Lock) int {
	return cmp.Or(cmp.Compare(a.Major, b.Major), cmp.Compare(a.Minor, b.Minor), cmp.Compare(a.Inode, b.Inode),
		cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Type, b.Type),
		cmp.Compare(a.PID, b.PID), cmp.Compare(btoi(a.Waiting), btoi(b.Waiting)))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// unionReads is the number of reads of ReadOn. Beside 150 files whose
// locks changed without pause, up to 5 reads in a row missed a held lock's
// line (in 40,000 reads under the race detector); a read of a short
// /proc/locks takes about 45 us here.
const unionReads = 16

// mode returns the value most frequent in ks, the smallest of those tied.
func mode(ks []int) int {
	slices.Sort(ks)
	best, bestRun := 0, 0
	for i := 0; i < len(ks); {
		j := i
		for j < len(ks) && ks[j] == ks[i] {
			j++
		}
		if j-i > bestRun {
			best, bestRun = ks[i], j-i
		}
		i = j
	}
	return best
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

package proclocks

import (
	"cmp"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Path is the file Read reads.
const Path = "/proc/locks"

// Read returns the locks of the system.
func Read() ([]Lock, error) {
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
// their first byte.
func Own(path string) ([]Lock, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, err
	}
	all, err := Read()
	if err != nil {
		return nil, err
	}
	var out []Lock
	for _, l := range all {
		if l.PID == os.Getpid() && l.On(st.Dev, st.Ino) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Lock) int { return cmp.Compare(a.Start, b.Start) })
	return out, nil
}

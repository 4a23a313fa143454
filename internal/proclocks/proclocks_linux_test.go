package proclocks

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// The device numbers the kernel writes in /proc/locks ("%02x:%02x") are
// found again from st_dev, including majors past the 12 bits of the old
// encoding and minors past its 8 bits (device-mapper, NVMe partitions,
// and the anonymous devices of overlayfs and btrfs subvolumes).
func TestOnDeviceNumbers(t *testing.T) {
	for _, tc := range []struct{ major, minor uint32 }{
		{0, 0},
		{8, 1},      // sda1
		{0, 45},     // an anonymous device (tmpfs, overlayfs)
		{259, 2},    // an NVMe partition
		{253, 300},  // device-mapper, minor >= 256
		{4095, 255}, // the largest of the old encoding
		{4096, 0},   // the smallest major past it
		{4096, 256}, // both past it
		{0x12345, 0x6789a},
		{0xfffff, 0xfffff},
	} {
		dev := unix.Mkdev(tc.major, tc.minor)
		line := fmt.Sprintf("7: FLOCK  ADVISORY  WRITE 4321 %02x:%02x:99 0 EOF", tc.major, tc.minor)
		locks, err := Parse(strings.NewReader(line + "\n"))
		if err != nil || len(locks) != 1 {
			t.Fatalf("%d:%d: Parse(%q) = %v, %v", tc.major, tc.minor, line, locks, err)
		}
		if !locks[0].On(dev, 99) {
			t.Errorf("%d:%d: the lock %+v is not found on st_dev %#x", tc.major, tc.minor, locks[0], dev)
		}
		if locks[0].On(dev, 98) {
			t.Errorf("%d:%d: found on another inode", tc.major, tc.minor)
		}
		if got := [2]uint32{Major(dev), Minor(dev)}; got != [2]uint32{tc.major, tc.minor} {
			t.Errorf("Major, Minor(%#x) = %d:%d, want %d:%d", dev, got[0], got[1], tc.major, tc.minor)
		}
		// No other device of the table matches: the split is exact.
		if other := unix.Mkdev(tc.major^1, tc.minor); locks[0].On(other, 99) {
			t.Errorf("%d:%d: found on device %d:%d", tc.major, tc.minor, tc.major^1, tc.minor)
		}
	}
}

// Device numbers in glibc's 64-bit encoding, split by hand: the 12 low bits
// of the major at bits 8-19, its 20 high bits at 44-63; the 8 low bits of
// the minor at bits 0-7, its 24 high bits at 20-43. (The kernel's own dev_t
// has 12-bit majors, so stat(2) on Linux gives none past 4095 today; a
// split that gets them wrong also gets wrong minors of devices whose high
// bits are set.)
func TestMajorMinor(t *testing.T) {
	for _, tc := range []struct {
		dev          uint64
		major, minor uint32
	}{
		{0xfe00, 254, 0},
		{0x100305, 3, 0x105},
		{0xf_d010_002c, 0, 0xfd012c}, // a minor past 20 bits, major 0
		{0x1000_0000_0000, 4096, 0},
		{0x1000_0010_0000, 4096, 256},
		{0x1_2000_6783_459a, 0x12345, 0x6789a}, // glibc's makedev(0x12345, 0x6789a)
	} {
		if ma, mi := Major(tc.dev), Minor(tc.dev); ma != tc.major || mi != tc.minor {
			t.Errorf("Major, Minor(%#x) = %#x:%#x, want %#x:%#x", tc.dev, ma, mi, tc.major, tc.minor)
		}
	}
}

func TestParse(t *testing.T) {
	in := `1: POSIX  ADVISORY  WRITE 1234 fd:00:1311793 1073741825 1073741825
2: -> POSIX  ADVISORY  WRITE 5678 fd:00:1311793 1073741824 1073741824
3: OFDLCK ADVISORY  READ  -1 00:2d:77 128 EOF
4: FLOCK  ADVISORY  WRITE 4321 1000:100:4099 0 EOF
5: LEASE  ACTIVE    READ  99 08:01:5 0 EOF
garbage
6: POSIX  ADVISORY  WRITE x fd:00:1 0 0
`
	want := []Lock{
		{Kind: "POSIX", Type: "WRITE", PID: 1234, Major: 0xfd, Minor: 0, Inode: 1311793, Start: 1073741825, End: 1073741825},
		{Kind: "POSIX", Type: "WRITE", PID: 5678, Major: 0xfd, Minor: 0, Inode: 1311793, Start: 1073741824, End: 1073741824, Waiting: true},
		{Kind: "OFDLCK", Type: "READ", PID: -1, Major: 0, Minor: 0x2d, Inode: 77, Start: 128, End: -1},
		{Kind: "FLOCK", Type: "WRITE", PID: 4321, Major: 0x1000, Minor: 0x100, Inode: 4099, Start: 0, End: -1},
		{Kind: "LEASE", Type: "READ", PID: 99, Major: 8, Minor: 1, Inode: 5, Start: 0, End: -1},
	}
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Parse (-want +got):\n%s", d)
	}
}

// Read finds a lock this process takes, on its file.
func TestReadFindsOwnLock(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	locks, err := ReadOn(File{uint64(st.Dev), st.Ino})
	if err != nil {
		t.Fatal(err)
	}
	var found []Lock
	for _, l := range locks {
		if l.On(uint64(st.Dev), st.Ino) {
			found = append(found, l)
		}
	}
	want := []Lock{{Kind: "FLOCK", Type: "WRITE", PID: os.Getpid(), Major: Major(uint64(st.Dev)), Minor: Minor(uint64(st.Dev)),
		Inode: st.Ino, Start: 0, End: -1}}
	if d := cmp.Diff(want, found); d != "" {
		t.Errorf("the locks on %s (-want +got):\n%s", name, d)
	}
}

// churn takes locks on 150 files in dir and takes and releases them without
// pause until the test ends: /proc/locks is then longer than a page and its
// lines move between the pages of one read.
func churn(t *testing.T, dir string) {
	t.Helper()
	const others = 150
	files := make([]*os.File, others)
	for i := range files {
		f, err := os.Create(filepath.Join(dir, fmt.Sprint("churn", i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Start: 0, Len: 1}
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
			t.Fatal(err)
		}
		files[i] = f
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			typ := int16(syscall.F_UNLCK)
			if i/others%2 == 1 {
				typ = syscall.F_WRLCK
			}
			lk := syscall.Flock_t{Type: typ, Start: 0, Len: 1}
			syscall.FcntlFlock(files[i%others].Fd(), syscall.F_SETLK, &lk)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// heldFile creates the file "held" in dir and takes a POSIX read lock on
// its byte 100; the file is closed when the test ends.
func heldFile(t *testing.T, dir string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	held := syscall.Flock_t{Type: syscall.F_RDLCK, Start: 100, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &held); err != nil {
		t.Fatal(err)
	}
	return f
}

// Own finds exactly the locks the process holds on a file while the process
// takes and releases locks on many other files at once.
func TestOwnWhileLocksChange(t *testing.T) {
	dir := t.TempDir()
	f := heldFile(t, dir)
	churn(t, dir)
	for i := range 500 {
		got, err := Own(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Start != 100 || got[0].End != 100 || got[0].Type != "READ" {
			t.Fatalf("read %d: this process's locks on the file: %+v, want the one READ lock on byte 100", i, got)
		}
	}
}

// ReadOn finds exactly the locks on a file, a POSIX lock and a flock, while
// locks on many other files are taken and released. The control: single
// reads of /proc/locks in the same time miss or repeat those lines.
func TestReadOnWhileLocksChange(t *testing.T) {
	dir := t.TempDir()
	f := heldFile(t, dir)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	file := File{uint64(st.Dev), st.Ino}
	want, err := ReadOn(file) // before the churn: one read is whole
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{}
	for _, l := range want {
		kinds = append(kinds, l.Kind+" "+l.Type)
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, []string{"FLOCK READ", "POSIX READ"}) {
		t.Fatalf("the locks on the file before the churn: %+v, want a POSIX READ lock and a FLOCK", want)
	}
	churn(t, dir)
	torn := 0
	for i := range 400 {
		got, err := ReadOn(file)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("read %d: the locks on the file: %+v, want %+v", i, got, want)
		}
		all, err := readOnce()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(linesOnAll(all, file), want) {
			torn++
		}
	}
	t.Logf("single reads of /proc/locks that missed or repeated the file's lines: %d of 400", torn)
	if torn == 0 {
		t.Fatal("no single read of /proc/locks was torn: the control does not show the hazard")
	}
}

// linesOnAll returns every line of all on file, repeats included.
func linesOnAll(all []Lock, file File) []Lock {
	return slices.DeleteFunc(all, func(l Lock) bool { return !l.On(file.Dev, file.Ino) })
}

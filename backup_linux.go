package sqlitesafe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A backup's temporary file is marked as in use by an open file description
// lock (OFD, Linux 3.15) on its first byte, held until the backup ends; the
// kernel drops it when the process dies. The next backup to the same place
// removes the temporary files whose lock it can take: those of dead
// backups. The byte is one SQLite never locks (its locks are past 1 GiB), and
// an OFD lock is not released when SQLite closes its own descriptors, nor
// does it conflict with SQLite's POSIX locks.

// livePartials holds the temporary files of the backups running in this
// process: the sweep leaves them alone without opening them (closing a
// descriptor of one would drop the POSIX locks of the backup's SQLite
// connection on it).
var livePartials sync.Map

// createPartial creates the temporary file of a backup to dst, marked as in
// use; done removes the mark once SQLite's connection to the file is closed.
func createPartial(dst string) (name string, done func(), err error) {
	for range 10 {
		f, err := os.CreateTemp(filepath.Dir(dst), partialPrefix(dst)+"*")
		if err != nil {
			return "", nil, err
		}
		name := f.Name()
		livePartials.Store(name, true)
		done := func() { f.Close(); livePartials.Delete(name) }
		switch err := markInUse(f); {
		case err == nil && sameFile(f, name):
			return name, done, nil
		case err == nil, errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EACCES):
			// A sweep took the new file for a dead backup's and
			// removes it (or has): take another name.
			done()
			continue
		default:
			// No OFD locks here (an old kernel, a file system
			// without them): the backup goes on unmarked.
			return name, done, nil
		}
	}
	return "", nil, errors.New("the temporary files created for the copy kept being removed by another backup")
}

// removeStalePartials removes the temporary files of earlier backups to dst
// whose process died: those whose in-use mark it can take. A -journal whose
// temporary file is gone goes too.
func removeStalePartials(dst string) {
	dir, prefix := filepath.Dir(dst), partialPrefix(dst)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var journals []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, "-journal") {
			journals = append(journals, path)
			continue
		}
		if _, live := livePartials.Load(path); live {
			continue
		}
		removeIfDead(path)
	}
	for _, j := range journals {
		if _, err := os.Lstat(strings.TrimSuffix(j, "-journal")); errors.Is(err, os.ErrNotExist) {
			os.Remove(j)
		}
	}
}

// removeIfDead removes the temporary file at path, and its -journal, if
// its backup is dead.
func removeIfDead(path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if markInUse(f) != nil || !sameFile(f, path) {
		return // in use, or already replaced
	}
	os.Remove(path)
	os.Remove(path + "-journal")
}

// markInUse takes the in-use mark of a temporary file, without waiting.
func markInUse(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			return err
		}
	}
}

// sameFile reports whether f is still the file at path.
func sameFile(f *os.File, path string) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Lstat(path)
	return err == nil && os.SameFile(fi, pi)
}

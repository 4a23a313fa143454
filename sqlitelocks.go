package sqlitesafe

import (
	"os"
	"slices"
	"strconv"

	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// Who else holds SQLite's own locks on a database, as the system's lock table
// says (/proc/locks, on Linux; nothing elsewhere): for the messages that name
// the process a writer or a checkpoint is waiting for.

// SQLite's lock bytes (os_unix.c, wal.c).
const (
	pendingByte  = 0x40000000 // the rollback journal's PENDING lock
	reservedByte = pendingByte + 1
	shmWriteLock = 120 // WAL_WRITE_LOCK in the -shm; READ0..READ4 follow CKPT and RECOVER
	shmRead1     = 124 // WAL_READ_LOCK(1): read marks 1 to 4 keep the WAL from starting over
	shmReadLast  = 127
)

// sqliteLockers returns the other processes that hold the write lock of the
// database at path (WAL: the -shm's write lock; a rollback journal: RESERVED
// or stronger), and those that read the WAL at a read mark that keeps it
// from starting over. Either may be empty when not known.
func sqliteLockers(path string) (writers, readers []int) {
	shmDev, shmIno, shmOK := fileID(path + "-shm")
	dbDev, dbIno, dbOK := fileID(path)
	var files []proclocks.File
	if shmOK {
		files = append(files, proclocks.File{Dev: shmDev, Ino: shmIno})
	}
	if dbOK {
		files = append(files, proclocks.File{Dev: dbDev, Ino: dbIno})
	}
	if len(files) == 0 {
		return nil, nil
	}
	locks, err := proclocks.ReadOn(files...)
	if err != nil {
		return nil, nil
	}
	self := os.Getpid()
	add := func(pids []int, pid int) []int {
		if pid > 0 && pid != self && !slices.Contains(pids, pid) {
			return append(pids, pid)
		}
		return pids
	}
	covers := func(k proclocks.Lock, from, to int64) bool {
		return k.Start <= to && (k.End == -1 || k.End >= from)
	}
	if shmOK {
		for _, k := range locks {
			if k.Kind != "POSIX" || k.Waiting || !k.On(shmDev, shmIno) {
				continue
			}
			switch {
			case k.Type == "WRITE" && covers(k, shmWriteLock, shmWriteLock):
				writers = add(writers, k.PID)
			case covers(k, shmRead1, shmReadLast):
				readers = add(readers, k.PID)
			}
		}
	}
	if dbOK {
		for _, k := range locks {
			if k.Kind == "POSIX" && !k.Waiting && k.Type == "WRITE" && k.On(dbDev, dbIno) && covers(k, pendingByte, reservedByte) {
				writers = add(writers, k.PID)
			}
		}
	}
	return writers, readers
}

// pidList spells pids for a message: "pid 12" or "pids 12, 34".
func pidList(pids []int) string {
	s := "pid"
	if len(pids) > 1 {
		s += "s"
	}
	for i, p := range pids {
		if i > 0 {
			s += ","
		}
		s += " " + strconv.Itoa(p)
	}
	return s
}

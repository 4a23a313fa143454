package sqlitesched

import (
	"sync"
	"syscall"
	"time"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The wal-index locks kept between transactions.
//
// SQLite's WAL mode locks bytes of the -shm file with POSIX record locks
// (fcntl F_SETLK): byte 120 is the write lock, bytes 123-127 the read marks.
// A lone writer's autocommit insert makes six such calls: the write lock
// taken and let go; its read mark locked exclusively to move it to the new
// end of the WAL, let go, locked shared for the read, let go. Those system
// calls were a third of the CPU profile of a lone goroutine's inserts.
//
// POSIX locks belong to the process. Within it, SQLite keeps connections
// apart by the wal-index node's own count of who holds what (unixShmLock),
// and asks the kernel only to keep other processes out. So this process may
// go on holding a lock in the kernel after the connection that had it let it
// go, as SQLite sees it: another connection of the process that takes it
// next finds the process holding it already, and SQLite's own bookkeeping
// still decides which connections may hold it at once. Only other processes
// see a difference: the lock stays taken a while longer.
//
// The unix VFS's fcntl (xSetSystemCall) is replaced by keptFcntl. When a
// connection that Keep names lets the write lock go, the process keeps it;
// when it lets a read mark go, the process keeps a lock on it. The next
// request for a kept lock that the kept one satisfies is answered without a
// system call. While the write lock is kept and no other process has the
// wal-index open, a read mark the writer moved stays exclusive: the insert
// above then makes no call at all. Otherwise an exclusive read mark is kept,
// and held for a read, shared (one downgrade instead of an unlock and a lock
// again), and the insert makes two calls: the exclusive lock on its read
// mark, which must ask the kernel whether another process reads there, and
// its downgrade. Another process's reader must be able to share the mark:
// it takes the newest mark not past the end of the WAL, and while that one
// is exclusive it retries (for about 10 s, then SQLITE_PROTOCOL) instead of
// taking another. So whether another process has the wal-index open is
// looked at once a keepMax (othersThere), and while a transaction holds its
// mark shared on an exclusive kernel lock, the sweep looks too, and makes
// the kernel's lock shared within a keepMax of another process opening the
// file. A kept read mark is what a reader of the snapshot would hold:
// another process's checkpoint stops there, and its writer cannot restart
// the WAL from the start while it is kept, as with a reader.
//
// A kept lock is let go for real
//   - by the sweep, once no transaction has taken it for one sweepTick, and
//     at the end of the transaction that holds it past keepMax, unless no
//     other process has the wal-index open (none holds a lock on its DMS
//     byte: one F_GETLK call a keepMax), when nobody can be waiting for it;
//   - by Release, which the cross-process queue calls whenever it lets its
//     own lock go, so that the process next in that queue finds SQLite's
//     locks free;
//   - at once, when a request of another shape covers its byte;
//   - and the kernel drops it when the -shm descriptor is closed (close is
//     replaced too, to forget it).
//
// A process that does not use the cross-process queue (another program, or
// _process_queue=off) waits for the write lock in its busy handler, which
// sleeps between tries and finds the lock free only between two of this
// process's transactions: while this one writes without a break and keeps
// the lock half of the time, it finds it free half as often. So once this
// process finds the write lock taken in the kernel, where only another
// process can hold it, it stops keeping the write lock for foreignRest from
// each such find. (The other writer's first turn still comes as rarely.)
// Such a process holds the DMS byte from the moment it opens the file: from
// then on, the locks are let go after each keepMax again, within keepMax.

const (
	shmLockFirst = 120 // WALINDEX_LOCK_OFFSET: byte of the write lock
	shmWriteLock = shmLockFirst
	shmReadMark0 = shmLockFirst + 3 // bytes of read marks 0-4
	shmLockEnd   = shmLockFirst + 8 // the DMS byte, never kept
)

// sweepTick and keepMax bound how long a lock is kept (variables for tests).
var (
	sweepTick = time.Millisecond
	keepMax   = 2 * time.Millisecond
	keepRest  = 2 * time.Millisecond
	// foreignRest is how long the write lock is not kept after another
	// process was found holding it.
	foreignRest = time.Second
)

// A kept lock's mode in the kernel.
const (
	modeNone = iota
	modeShared
	modeExclusive
)

// keptLock is what this process holds in the kernel on one byte of a -shm
// file through its wal-index node's descriptor.
type keptLock struct {
	mode   int8
	inUse  bool      // a connection holds it, as SQLite sees it
	shared bool      // in use shared while the kernel holds it exclusively
	used   bool      // taken since the last sweep
	since  time.Time // when the kernel lock was taken
}

// shmLocks are the locks of one -shm descriptor, bytes 120-127, and the
// end of the write lock's rest: after it was kept for keepMax, it is let go
// at the end of each transaction until rest, as SQLite does, so that other
// processes' busy handlers find it free as often as before.
type shmLocks struct {
	lock [shmLockEnd - shmLockFirst]keptLock
	rest time.Time
	// others is whether another process had the wal-index open when
	// looked, at most keepMax ago.
	others bool
	looked time.Time
}

// othersThere reports whether another process has the wal-index of fd
// open, as last seen at most keepMax before now: one system call a keepMax.
func (s *shmLocks) othersThere(fd int32, now time.Time) bool {
	if s.looked.IsZero() || now.Sub(s.looked) >= keepMax {
		s.others, s.looked = !alone(fd), now
	}
	return s.others
}

// share makes the exclusive kernel lock on read mark i of fd, which a
// connection holds shared or none does, a shared one, so that other
// processes' readers may read there: what SQLite would hold.
func (s *shmLocks) share(fd int32, i int) bool {
	if setLocked(fd, i, syscall.F_RDLCK) != 0 {
		return false
	}
	s.lock[i].mode, s.lock[i].shared = modeShared, false
	return true
}

var kept struct {
	mu        sync.Mutex
	fds       map[int32]*shmLocks
	keepers   map[*libc.TLS]int // connections whose unlocks may be kept
	tls       *libc.TLS         // for the kernel calls of Release and the sweep
	sweeping  bool              // the sweeper is at work, or woken
	wake      chan struct{}     // wakes the sweeper
	installed bool
	released  int64 // kept locks let go for real, for tests
	calls     int64 // fcntl calls made by kernel, for tests
}

// installWriteLock replaces the unix VFS's fcntl and close.
func installWriteLock(tls *libc.TLS, vfs uintptr) bool {
	set := vfsAt(vfs).FxSetSystemCall
	if set == 0 {
		return false
	}
	call := *(*func(*libc.TLS, uintptr, uintptr, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{set}))
	replace := func(name string, fn uintptr) bool {
		z, err := libc.CString(name)
		if err != nil {
			return false
		}
		defer libc.Xfree(tls, z)
		return call(tls, vfs, z, fn) == sqlite3.SQLITE_OK
	}
	if !replace("close", cfunc(keptClose)) {
		return false
	}
	if !replace("fcntl", cfunc(keptFcntl)) {
		replace("close", 0) // 0 puts SQLite's own back
		return false
	}
	kept.fds = map[int32]*shmLocks{}
	kept.keepers = map[*libc.TLS]int{}
	kept.tls = libc.NewTLS()
	kept.wake = make(chan struct{}, 1)
	kept.installed = true
	// The sweeper runs from here, not from the first keeping connection's
	// goroutine, which may be in a synctest bubble.
	go sweeper()
	return true
}

// WriteLockKept reports whether the unix VFS keeps the wal-index locks
// between the transactions of Keep's connections.
func WriteLockKept() bool {
	kept.mu.Lock()
	defer kept.mu.Unlock()
	return kept.installed
}

// Keep lets the wal-index locks that tls's connection lets go be kept (on),
// or no longer (off). Calls nest: each on needs its off.
func Keep(tls *libc.TLS, on bool) {
	kept.mu.Lock()
	defer kept.mu.Unlock()
	if !kept.installed {
		return
	}
	if on {
		kept.keepers[tls]++
	} else if kept.keepers[tls]--; kept.keepers[tls] <= 0 {
		delete(kept.keepers, tls)
	}
}

// Release lets go every kept lock no connection holds.
func Release() {
	kept.mu.Lock()
	defer kept.mu.Unlock()
	for fd, s := range kept.fds {
		for i := range s.lock {
			if s.lock[i].mode != modeNone && !s.lock[i].inUse {
				unlockLocked(fd, s, i)
			}
		}
	}
}

// KeptLocks returns how many locks are kept now (held in the kernel, by no
// connection) and how many kept ones have been let go, for tests.
func KeptLocks() (now int, released int64) {
	kept.mu.Lock()
	defer kept.mu.Unlock()
	return keptLocked(), kept.released
}

// keptLocked counts the kept locks no connection holds, and the read marks
// a connection holds shared that the kernel holds exclusively: the sweep
// looks after both.
func keptLocked() (n int) {
	for _, s := range kept.fds {
		for i := range s.lock {
			if k := &s.lock[i]; k.mode != modeNone && (!k.inUse || k.shared) {
				n++
			}
		}
	}
	return n
}

// wakeSweeper starts the sweep if it is not at work. kept.mu must be held.
func wakeSweeper() {
	if !kept.sweeping {
		kept.sweeping = true
		kept.wake <- struct{}{} // never blocks: one wake at a time
	}
}

// setLocked makes one F_SETLK call of type typ on byte shmLockFirst+i of
// fd on kept.tls.
func setLocked(fd int32, i int, typ int16) int32 {
	rc, _ := lockCall(fd, syscall.F_SETLK, typ, shmLockFirst+i)
	return rc
}

// lockCall makes one fcntl call cmd (F_SETLK, F_GETLK) of type typ on byte
// b of fd on kept.tls, and returns its result and the type the call left
// in its flock (F_GETLK's answer).
func lockCall(fd, cmd int32, typ int16, b int) (int32, int16) {
	size := int(unsafe.Sizeof(sqlite3.Tflock{}))
	fl := kept.tls.Alloc(size)
	va := kept.tls.Alloc(8)
	defer kept.tls.Free(size)
	defer kept.tls.Free(8)
	*at[sqlite3.Tflock](fl) = sqlite3.Tflock{Fl_type: typ, Fl_start: int64(b), Fl_len: 1}
	*at[uintptr](va) = fl
	rc := kernel(kept.tls, fd, cmd, va)
	return rc, at[sqlite3.Tflock](fl).Fl_type
}

// kernel makes an fcntl call for the lock bytes of a -shm file (120-128),
// counting it. kept.mu must be held.
func kernel(tls *libc.TLS, fd, cmd int32, va uintptr) int32 {
	kept.calls++
	return libc.Xfcntl(tls, fd, cmd, va)
}

// unlockLocked lets the kept lock on byte shmLockFirst+i of fd go in the
// kernel. One that fails stays kept: the next sweep tries again.
func unlockLocked(fd int32, s *shmLocks, i int) {
	if setLocked(fd, i, syscall.F_UNLCK) == 0 {
		s.lock[i] = keptLock{}
		kept.released++
		forgetIfEmpty(fd, s)
	}
}

// forgetIfEmpty forgets fd when it holds nothing and rests no more.
func forgetIfEmpty(fd int32, s *shmLocks) {
	for i := range s.lock {
		if s.lock[i].mode != modeNone {
			return
		}
	}
	if time.Now().After(s.rest) {
		delete(kept.fds, fd)
	}
}

// keptFcntl is the unix VFS's fcntl.
func keptFcntl(tls *libc.TLS, fd, cmd int32, va uintptr) int32 {
	if cmd != syscall.F_SETLK {
		return libc.Xfcntl(tls, fd, cmd, va)
	}
	args := va
	fl := at[sqlite3.Tflock](libc.VaUintptr(&args))
	start, end := fl.Fl_start, fl.Fl_start+fl.Fl_len
	if fl.Fl_whence != 0 || start >= shmLockEnd || (fl.Fl_len != 0 && end <= shmLockFirst) {
		return libc.Xfcntl(tls, fd, cmd, va) // no byte that may be kept
	}
	kept.mu.Lock()
	defer kept.mu.Unlock()
	s := kept.fds[fd]
	i := int(start - shmLockFirst)
	if fl.Fl_len == 1 && i >= 0 && (start == shmWriteLock || start >= shmReadMark0) {
		return keptOne(tls, fd, cmd, va, s, i, fl.Fl_type)
	}
	// A request of another shape: what the kernel holds in its range must
	// be what SQLite thinks this process holds first.
	lo, hi := max(0, int(start-shmLockFirst)), len(shmLocks{}.lock)
	if fl.Fl_len != 0 {
		hi = min(hi, int(end-shmLockFirst))
	}
	if s != nil {
		for j := lo; j < hi; j++ {
			if s.lock[j].mode != modeNone && !s.lock[j].inUse {
				unlockLocked(fd, s, j)
				if s.lock[j].mode != modeNone {
					return -1 // could not be let go; SQLite reports it as busy
				}
			}
		}
	}
	rc := kernel(tls, fd, cmd, va)
	if rc == 0 && kept.fds[fd] != nil {
		for j := lo; j < hi; j++ {
			s.lock[j] = keptLock{}
		}
		forgetIfEmpty(fd, s)
	}
	return rc
}

// keptOne serves a request of type typ on byte shmLockFirst+i of fd, the
// write lock or a read mark, whose locks are s (nil when none is held).
func keptOne(tls *libc.TLS, fd, cmd int32, va uintptr, s *shmLocks, i int, typ int16) int32 {
	var k *keptLock
	if s != nil {
		k = &s.lock[i]
	}
	switch typ {
	case syscall.F_UNLCK:
		if k == nil || k.mode == modeNone {
			return kernel(tls, fd, cmd, va)
		}
		now := time.Now()
		if k.inUse && kept.keepers[tls] > 0 && (i != 0 || now.After(s.rest)) && renewed(fd, s, k, now) {
			if k.mode == modeExclusive && i != 0 && (s.lock[0].mode != modeExclusive || s.othersThere(fd, now)) {
				// A read mark is kept shared: other processes may
				// read there.
				if !s.share(fd, i) {
					break
				}
			}
			k.inUse, k.shared = false, false
			wakeSweeper()
			return 0
		}
		if i == 0 && k.inUse && now.Sub(k.since) >= keepMax {
			s.rest = now.Add(keepRest)
		}
	case syscall.F_WRLCK:
		if k != nil && k.mode == modeExclusive && !k.inUse {
			k.inUse, k.shared, k.used = true, false, true
			return 0
		}
		rc := kernel(tls, fd, cmd, va)
		switch {
		case rc == 0:
			hold(fd, s, i, modeExclusive)
		case i == 0 && kept.keepers[tls] > 0:
			// Another process holds the write lock: let it have its
			// turns, as without keeping.
			if s == nil {
				s = new(shmLocks)
				kept.fds[fd] = s
			}
			s.rest = time.Now().Add(foreignRest)
		}
		return rc // a failed upgrade leaves a kept shared lock as it was
	case syscall.F_RDLCK:
		if k != nil && k.mode != modeNone && !k.inUse {
			if k.mode == modeExclusive && i != 0 {
				// Held shared from an exclusive kernel lock: while
				// another process may read there, as SQLite asked,
				// and the sweep looks again while it is held.
				if s.othersThere(fd, time.Now()) {
					if !s.share(fd, i) {
						return -1 // SQLite reports it as busy
					}
				} else {
					k.shared = true
					wakeSweeper()
				}
			}
			k.inUse, k.used = true, true
			return 0
		}
		rc := kernel(tls, fd, cmd, va)
		if rc == 0 {
			hold(fd, s, i, modeShared)
		}
		return rc
	}
	rc := kernel(tls, fd, cmd, va)
	if rc == 0 && s != nil {
		s.lock[i] = keptLock{}
		forgetIfEmpty(fd, s)
	}
	return rc
}

// renewed reports whether k, a lock of s kept or about to be, may be kept
// on: while it has been held for less than keepMax, or else while no other
// process has the wal-index of fd open, which then starts another keepMax.
func renewed(fd int32, s *shmLocks, k *keptLock, now time.Time) bool {
	if now.Sub(k.since) < keepMax {
		return true
	}
	if s.othersThere(fd, now) {
		return false
	}
	k.since = now
	return true
}

// alone reports whether no other process has the wal-index of fd open:
// each process that has it open holds a shared lock on its DMS byte (unix
// VFS, unixLockSharedMemory) for as long as it does, and a process's own
// locks never conflict with its F_GETLK. One system call.
func alone(fd int32) bool {
	rc, typ := lockCall(fd, syscall.F_GETLK, syscall.F_WRLCK, shmLockEnd)
	return rc == 0 && typ == syscall.F_UNLCK
}

// hold records that a connection now holds byte shmLockFirst+i of fd in
// mode, in the kernel.
func hold(fd int32, s *shmLocks, i int, mode int8) {
	if s == nil {
		s = new(shmLocks)
		kept.fds[fd] = s
	}
	k := &s.lock[i]
	if k.mode == modeNone {
		k.since = time.Now()
	}
	k.mode, k.inUse, k.shared, k.used = mode, true, false, true
}

// keptClose is the unix VFS's close: the kernel drops the process's locks
// on the file with the descriptor.
func keptClose(tls *libc.TLS, fd int32) int32 {
	kept.mu.Lock()
	delete(kept.fds, fd)
	kept.mu.Unlock()
	return libc.Xclose(tls, fd)
}

// sweeper lets go, every sweepTick once woken, the kept locks no
// transaction took since the tick before or held since keepMax, and waits
// for the next wake when none is kept. A wake while it is at work (only
// tests send one, after changing sweepTick) cuts the tick short.
func sweeper() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for range kept.wake {
		kept.mu.Lock()
		for {
			timer.Reset(sweepTick)
			kept.mu.Unlock()
			select {
			case <-timer.C:
			case <-kept.wake:
				timer.Stop()
			}
			kept.mu.Lock()
			sweepLocked()
			if keptLocked() == 0 {
				kept.sweeping = false
				break
			}
		}
		kept.mu.Unlock()
	}
}

func sweepLocked() {
	for fd, s := range kept.fds {
		for i := range s.lock {
			switch k := &s.lock[i]; {
			case k.mode == modeNone:
			case k.inUse:
				if k.shared && s.othersThere(fd, time.Now()) {
					s.share(fd, i)
				}
			case !k.used:
				unlockLocked(fd, s, i)
			case !renewed(fd, s, k, time.Now()):
				if i == 0 {
					s.rest = time.Now().Add(keepRest)
				}
				unlockLocked(fd, s, i)
			default:
				k.used = false
			}
		}
	}
}

//go:build unix

package sqlitesafe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/lockfile"
	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
	"github.com/sqlitesafe/sqlitesafe/internal/sqlitesched"
)

// procLock is the writer queue across processes: an exclusive flock on a side
// file next to the database, taken by the holder of the in-process writer
// queue before it writes and released when it is done. A process waiting for
// it sleeps in the kernel until the holder releases it or dies.
//
// The side file is opened (created if need be) by the first acquire, so
// that a handle that never writes, or whose open fails, leaves no file
// behind; a process that cannot open it writes without it.
//
// At most one goroutine of the process acquires it at a time (the holder of
// the in-process queue), but a wait that runs out leaves its blocked flock
// call behind: the next acquirer adopts that call instead of starting
// another, and a call that succeeds with nobody waiting for it releases the
// lock at once.
type procLock struct {
	path string       // the side file
	db   string       // the database file
	name string       // the database as the DSN names it, for messages
	log  *slog.Logger // for a side file that cannot be opened or is too open; nil: silent

	mu       sync.Mutex
	f        *os.File   // the side file, once opened
	failed   bool       // it could not be opened: no cross-process queue
	inflight *flockCall // a blocking flock in progress, or nil
	held     bool
	closing  bool // close was called while a call was in flight

	// streak is when this process's current run of turns began: the last
	// time it had to wait for another process, or last stepped aside.
	streak time.Time

	// The lock kept between turns (see lingerGrace): idle is set while
	// this process holds the flock and no holder uses it, since lastUse;
	// expiry lets it go; othersSeen is what the last look at the
	// waiting flags, at checked, found.
	idle       bool
	lastUse    time.Time
	expiry     *time.Timer
	expiryOn   bool // expiry is armed
	othersSeen bool
	checked    time.Time
}

// lingerGrace and lingerCheck keep the lock between turns. Two flock calls
// per turn are about 2 µs, a tenth of a lone autocommit insert; so a
// process whose turn ends keeps the lock for lingerGrace, and a turn that
// begins meanwhile takes it again without a system call. It keeps it only
// while no other process waits: it looks at their waiting flags (one fcntl)
// at most once per lingerCheck, and while one is seen, every turn lets the
// lock go at its end as before, and the step-aside of fairSlice applies. A
// process that lingers therefore delays another one by at most lingerGrace
// when it has gone idle, and by lingerCheck while it keeps writing, on top
// of the turn in progress; the expiry lets the lock go once it has been
// idle for lingerGrace.
const (
	lingerGrace = 250 * time.Microsecond
	lingerCheck = time.Millisecond
)

// fairSlice and handoffYield make the lock fairer than flock(2) is. flock
// hands the lock to nobody in particular: the kernel wakes the waiters, and
// a process that writes back to back takes the lock again before they run,
// turn after turn. So a process whose run of turns has lasted fairSlice
// while another process waits (a waiting flag, see setWaiting) first sleeps
// handoffYield, once, letting a woken process take its turn. Processes that
// take turns anyway, and a process alone, never sleep; the check costs one
// fcntl per fairSlice.
const (
	fairSlice    = 10 * time.Millisecond
	handoffYield = 100 * time.Microsecond
)

// flockCall is one blocking flock call.
type flockCall struct {
	done    chan struct{}
	err     error
	wanted  bool // an acquirer waits for it; guarded by procLock.mu
	settled bool // done is closed; guarded by procLock.mu
}

// procLockSuffix names the side file: FILE-writer.lock.
const procLockSuffix = lockfile.Suffix

// newProcLock returns the cross-process lock of the database file db; name
// is how the DSN names it. Nothing is opened yet.
func newProcLock(db, name string, log *slog.Logger) *procLock {
	return &procLock{path: db + procLockSuffix, db: db, name: name, log: log}
}

// on reports whether the lock is in use: not on a system without one, and
// not after the side file could not be opened.
func (l *procLock) on() bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.failed
}

// openLocked opens the side file the first time the lock is wanted. l.mu
// is held.
func (l *procLock) openLocked() {
	if l.f != nil || l.failed {
		return
	}
	f, wider, err := openLockFile(l.db, l.path)
	if err != nil {
		l.failed = true
		if l.log != nil {
			l.log.Warn("sqlitesafe: the writers of this process will not queue with other processes: "+
				"give the users that write the database read and write access to the lock file (chown and chmod it as the database is), "+
				"or set _process_queue=off to silence this",
				slog.String("file", l.name), slog.String("error", err.Error()))
		}
		return
	}
	l.f = f
	if wider != "" && l.log != nil {
		l.log.Warn("sqlitesafe: the lock file is more open than the database, and this process cannot change it: "+
			"a user who may open the lock file but not write the database can hold the lock and stop every writer; "+
			"as its owner or root, chown and chmod it as the database is (read and write for exactly those who may write the database)",
			slog.String("file", l.name), slog.String("lock_file", l.path), slog.String("modes", wider))
	}
}

// openLockFile opens the side file name of the database db, creating it if
// need be, and makes it as private as the database: readable and writable
// by exactly the classes of users (owner, group, others) that may write the
// database, owned by the database's owner and group where this process may
// change them (root may; the owner may set the group it belongs to). An
// flock needs only a descriptor, read-only will do: a user who may open the
// lock file can hold the lock, so only those who may write the database
// anyway may open it. A lock file found more open than that is narrowed if
// this process owns it (or is root); otherwise wider describes the two
// modes.
//
// The file is opened read-only: the flock needs no more, so a process
// running as another user than the one who created the lock file queues if
// the file's mode lets it read it.
func openLockFile(db, name string) (f *os.File, wider string, err error) {
	perm, uid, gid, known := lockFileMode(db)
	f, err = os.OpenFile(name, os.O_RDONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(name, os.O_RDONLY, 0)
	}
	if err != nil {
		return nil, "", fmt.Errorf("sqlitesafe: open the cross-process writer lock %s: %w", name, err)
	}
	var st syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &st) != nil {
		return f, "", nil
	}
	euid := os.Geteuid()
	if known {
		// Errors are ignored: the lock works whoever owns the file.
		switch {
		case euid == 0 && (st.Uid != uid || st.Gid != gid):
			f.Chown(int(uid), int(gid))
		case int(st.Uid) == euid && st.Gid != gid:
			f.Chown(-1, int(gid))
		}
	}
	have := fs.FileMode(st.Mode) & fs.ModePerm
	if have != perm && (euid == 0 || int(st.Uid) == euid) && f.Chmod(perm) == nil {
		return f, "", nil
	}
	if have&^perm != 0 {
		wider = fmt.Sprintf("lock file %s, wanted %s", have, perm)
	}
	return f, wider, nil
}

// lockFileMode returns the mode the lock file of the database db should
// have, and the database's owner and group (known is false if it cannot be
// read: the mode is then 0600, as SQLite's 0644 less the umask gives write
// access to the owner alone).
func lockFileMode(db string) (perm fs.FileMode, uid, gid uint32, known bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(db, &st); err != nil {
		return 0o600, 0, 0, false
	}
	return lockfile.Mode(fs.FileMode(st.Mode) & fs.ModePerm), st.Uid, st.Gid, true
}

// acquire takes the lock, waiting at most timeout and no longer than ctx.
// It reports whether it had to wait.
func (l *procLock) acquire(ctx context.Context, timeout time.Duration) (waited bool, err error) {
	l.mu.Lock()
	if l.held && !l.idle {
		l.mu.Unlock()
		panic("sqlitesafe: cross-process writer lock acquired twice")
	}
	if l.idle {
		// Kept from the last turn: this turn goes on with it, unless
		// this process has had its run of turns and another waits.
		if !l.yieldFirst() {
			l.idle = false
			l.mu.Unlock()
			return false, nil
		}
		l.idle = false
		l.releaseLocked()
		l.mu.Unlock()
		if err := sleepCtx(ctx, handoffYield); err != nil {
			return true, err
		}
		l.mu.Lock()
	}
	l.openLocked()
	if l.failed {
		// No cross-process queue: writers meet other processes in
		// SQLite's busy handler, as other drivers do.
		l.mu.Unlock()
		return false, nil
	}
	if l.inflight == nil && l.yieldFirst() {
		l.mu.Unlock()
		if err := sleepCtx(ctx, handoffYield); err != nil {
			return true, err
		}
		l.mu.Lock()
	}
	call := l.inflight
	if call == nil {
		err := flock(l.f, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			l.held = true
			l.mu.Unlock()
			return false, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			l.mu.Unlock()
			return false, fmt.Errorf("sqlitesafe: flock %s: %w", l.path, err)
		}
		call = &flockCall{done: make(chan struct{})}
		l.inflight = call
		setWaiting(l.f, true)
		go l.block(call)
	}
	call.wanted = true
	l.mu.Unlock()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-call.done:
		return true, call.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errProcTimeout
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if call.settled {
		// It succeeded as the wait ran out, and held is set for us:
		// let go.
		if call.err == nil {
			l.releaseLocked()
		}
	} else {
		call.wanted = false
	}
	return true, err
}

// block makes one blocking flock call and hands its outcome to whoever waits
// for it, or releases the lock if nobody does.
func (l *procLock) block(call *flockCall) {
	err := flock(l.f, syscall.LOCK_EX)
	setWaiting(l.f, false)
	l.mu.Lock()
	defer l.mu.Unlock()
	call.err = err
	call.settled = true
	l.inflight = nil
	switch {
	case err != nil:
		call.err = fmt.Errorf("sqlitesafe: flock %s: %w", l.path, err)
	case call.wanted:
		l.held = true
		l.streak = time.Now()
	default:
		flock(l.f, syscall.LOCK_UN)
	}
	close(call.done)
	if l.closing {
		l.held = false
		l.f.Close()
	}
}

// sleepCtx sleeps d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// release lets the lock go now, kept between turns or not.
func (l *procLock) release() {
	l.mu.Lock()
	l.releaseLocked()
	l.mu.Unlock()
}

func (l *procLock) releaseLocked() {
	l.idle = false
	if !l.held {
		return
	}
	l.held = false
	// SQLite's write lock, kept between this process's transactions, goes
	// first: the process next in the queue must find it free.
	sqlitesched.Release()
	flock(l.f, syscall.LOCK_UN)
}

// done ends a turn: it keeps the lock for the next turn of this process
// while no other process is seen waiting (lingerGrace), and lets it go
// otherwise.
func (l *procLock) done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held || l.idle || l.closing {
		l.releaseLocked()
		return
	}
	now := time.Now()
	if l.othersSeenLocked(now) {
		l.releaseLocked()
		return
	}
	l.idle = true
	l.lastUse = now
	if !l.expiryOn {
		l.expiryOn = true
		if l.expiry == nil {
			l.expiry = time.AfterFunc(lingerGrace, l.expire)
		} else {
			l.expiry.Reset(lingerGrace)
		}
	}
}

// carry reports whether the turn in progress may run straight into this
// process's next one, keeping the lock, as done and then acquire would
// without a system call: while no other process is seen waiting, and
// before this process's run of turns has lasted fairSlice (acquire then
// decides whether to step aside). When it reports false the caller ends
// the turn with done.
func (l *procLock) carry() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed {
		return true // no cross-process queue to hand on
	}
	if !l.held || l.idle || l.closing {
		return false
	}
	now := time.Now()
	if !l.streak.IsZero() && now.Sub(l.streak) >= fairSlice {
		return false
	}
	return !l.othersSeenLocked(now)
}

// othersSeenLocked reports whether another process was seen waiting at the
// last look at the waiting flags, looking again (one fcntl) when that was
// lingerCheck or more before now. l.mu is held.
func (l *procLock) othersSeenLocked(now time.Time) bool {
	if now.Sub(l.checked) >= lingerCheck {
		l.othersSeen = othersWaiting(l.f)
		l.checked = now
	}
	return l.othersSeen
}

// expire lets the lock kept between turns go once it has been idle for
// lingerGrace.
func (l *procLock) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.idle {
		// In use again, or let go: the end of the turn arms it again.
		l.expiryOn = false
		return
	}
	if left := lingerGrace - time.Since(l.lastUse); left > 0 {
		l.expiry.Reset(left)
		return
	}
	l.expiryOn = false
	l.releaseLocked()
}

// releaseIdle lets the lock go if it is only kept between turns.
func (l *procLock) releaseIdle() {
	l.mu.Lock()
	if l.idle {
		l.releaseLocked()
	}
	l.mu.Unlock()
}

// yieldFirst reports whether to let another process go first: this
// process's run of turns has lasted fairSlice and another one is waiting.
// Either way a new run begins. l.mu is held.
func (l *procLock) yieldFirst() bool {
	now := time.Now()
	if l.streak.IsZero() {
		l.streak = now
		return false
	}
	if now.Sub(l.streak) < fairSlice {
		return false
	}
	l.streak = now
	return othersWaiting(l.f)
}

// close closes the side file, which drops the lock if held. The file itself
// stays: another process may be waiting on it.
func (l *procLock) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.expiry != nil {
		l.expiry.Stop()
		l.expiryOn = false
	}
	l.idle = false
	if l.f == nil {
		return nil
	}
	if l.inflight != nil {
		// A blocked call still uses the descriptor: it closes it when
		// it returns.
		l.closing = true
		return nil
	}
	l.held = false
	return l.f.Close()
}

// flock calls flock(2), retrying when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// holders returns the processes /proc/locks says hold the lock, for
// messages; nil where the system does not say.
func (l *procLock) holders() []int {
	l.mu.Lock()
	f := l.f
	l.mu.Unlock()
	if f == nil {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil
	}
	locks, err := proclocks.ReadOn(proclocks.File{Dev: uint64(st.Dev), Ino: st.Ino})
	if err != nil {
		return nil
	}
	return flockHolders(locks, uint64(st.Dev), st.Ino, os.Getpid())
}

// flockHolders returns the processes other than self holding a granted
// flock on the file with device dev and inode ino. Only those hold the
// queue: not a blocked waiter, not the waiting flags (OFD locks).
func flockHolders(locks []proclocks.Lock, dev, ino uint64, self int) []int {
	var pids []int
	for _, k := range locks {
		if k.Kind == "FLOCK" && !k.Waiting && k.PID > 0 && k.PID != self && k.On(dev, ino) {
			pids = append(pids, k.PID)
		}
	}
	return pids
}

//go:build unix

package sqlitesafe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// procLock is the writer queue across processes: an exclusive flock on a side
// file next to the database, taken by the holder of the in-process writer
// queue before it writes and released when it is done. A process waiting for
// it sleeps in the kernel until the holder releases it or dies.
//
// At most one goroutine of the process acquires it at a time (the holder of
// the in-process queue), but a wait that runs out leaves its blocked flock
// call behind: the next acquirer adopts that call instead of starting
// another, and a call that succeeds with nobody waiting for it releases the
// lock at once.
type procLock struct {
	path string
	f    *os.File

	mu       sync.Mutex
	inflight *flockCall // a blocking flock in progress, or nil
	held     bool
	closing  bool // close was called while a call was in flight

	// streak is when this process's current run of turns began: the last
	// time it had to wait for another process, or last stepped aside.
	streak time.Time
}

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
const procLockSuffix = "-writer.lock"

// openProcLock opens (creating) the side file of the database at path. The
// file is opened read-only: flock needs no write access, so a process that
// may only read the directory's existing lock file still queues.
//
// The file is made readable by everyone whatever the umask (it is empty):
// it outlives the process, and a lock file that only the user who happened
// to create it could open would keep every other user's processes out of
// the queue.
func openProcLock(path string) (*procLock, error) {
	name := path + procLockSuffix
	f, err := os.OpenFile(name, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		f.Chmod(0o644)
	} else if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(name, os.O_RDONLY, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitesafe: open the cross-process writer lock %s: %w", name, err)
	}
	return &procLock{path: name, f: f}, nil
}

// acquire takes the lock, waiting at most timeout and no longer than ctx.
// It reports whether it had to wait.
func (l *procLock) acquire(ctx context.Context, timeout time.Duration) (waited bool, err error) {
	l.mu.Lock()
	if l.held {
		l.mu.Unlock()
		panic("sqlitesafe: cross-process writer lock acquired twice")
	}
	if l.inflight == nil && l.yieldFirst() {
		l.mu.Unlock()
		t := time.NewTimer(handoffYield)
		select {
		case <-ctx.Done():
			t.Stop()
			return true, ctx.Err()
		case <-t.C:
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

// release lets the lock go.
func (l *procLock) release() {
	l.mu.Lock()
	l.releaseLocked()
	l.mu.Unlock()
}

func (l *procLock) releaseLocked() {
	if !l.held {
		return
	}
	l.held = false
	flock(l.f, syscall.LOCK_UN)
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
	var st syscall.Stat_t
	if err := syscall.Fstat(int(l.f.Fd()), &st); err != nil {
		return nil
	}
	locks, err := proclocks.Read()
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

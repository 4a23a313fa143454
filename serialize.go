package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// writeQueue is the writer lock of one database file: every write of the
// process to that file holds it, whichever *sql.DB handle it comes through.
// Waiters are served first in, first out. A wait honours the caller's context
// and is bounded by the caller's busy timeout.
//
// Autocommit writes are submitted as requests rather than taking the lock:
// when several are queued back to back, the first to be granted the lock runs
// them all in one transaction (a group commit) and hands each its own result,
// so the lock changes hands once per batch instead of once per statement.
type writeQueue struct {
	file string // the database file, for messages
	key  string // its absolute path, for the system's lock table; empty in memory

	// proc is the writer queue across processes, or nil: a holder whose
	// handle asks for it (holder.proc) takes it after the in-process lock.
	proc *procLock

	// anchor is the file's read anchor, which the queue stops while it is
	// busy and gives up before a write; nil in tests of the queue alone.
	anchor *readAnchor

	stats fileStats

	// writeSince is when the holder, a write, was granted the lock (a
	// monoNow reading), or 0 while it is free or held by anything else:
	// readers read it (readerPool.yieldToWriter) without q.mu.
	writeSince atomic.Int64

	mu      sync.Mutex
	held    bool
	holder  holder    // valid while held
	waiters []*waiter // FIFO; the head is served next
	woken   int       // how many waiters the last batch ran and woke

	// expiry ends the waits that reach their deadline while queued: one
	// timer for the queue, due at the earliest deadline of a waiter,
	// rather than one per wait. expiryAt is when it is due; zero while
	// it is not set. Guarded by mu.
	expiry   *time.Timer
	expiryAt time.Time

	// tick is how often the monitor checks for slow holders and waiters,
	// in nanoseconds; 0 while there is no monitor.
	tick        atomic.Int64
	monitorStop chan struct{}
}

// waiter is one caller waiting in the queue.
type waiter struct {
	ready    chan struct{} // buffered 1: one value is sent when state leaves waitQueued
	state    waitState     // guarded by writeQueue.mu
	deadline time.Time     // when its wait runs out (busy timeout)
	warned   bool          // the slow-wait warning for it is out; guarded by writeQueue.mu
	h        holder        // what it will be once it holds the lock
	prev     holder        // the holder that granted it the lock, as it released it; or held it as the wait expired
	held     bool          // the lock was held as the wait expired (waitExpired)
	req      *writeRequest // nil for a plain lock waiter
}

type waitState uint8

const (
	waitQueued  waitState = iota // in the queue
	waitGranted                  // owns the lock now
	waitTaken                    // its request is being run by another goroutine's batch
	waitDone                     // its request has run; results are in req
	waitExpired                  // its deadline passed while it was queued: out of the queue
)

// writeRequest is a write outside any transaction submitted to the queue:
// an autocommit Exec, or a Query whose rows are read in full under the lock.
type writeRequest struct {
	call
	c     *connector // runs on this handle's shared writer
	batch bool       // may share a group commit

	res driver.Result
	out driver.Rows // a Query's rows, buffered
	err error

	// wait is the request's place in the queue. A connection submits one
	// request at a time, so it keeps one writeRequest and reuses it, and
	// the channel in wait with it: submit resets the rest.
	wait waiter
}

// signal wakes w: its state has left waitQueued. q.mu is held.
func (w *waiter) signal() { w.ready <- struct{}{} }

// errProcTimeout marks a wait for the cross-process lock that ran out of
// busy timeout.
var errProcTimeout = errors.New("sqlitesafe: busy timeout waiting for the cross-process writer lock")

// maxBatch bounds a group commit, so that the first writer of a batch does
// not wait too long for the last.
const maxBatch = 128

// lock waits for the writer lock. It returns a *LockTimeoutError when ctx is
// done or timeout passes first.
func (q *writeQueue) lock(ctx context.Context, timeout time.Duration, h holder) error {
	q.mu.Lock()
	if !q.held && len(q.waiters) == 0 {
		q.grantLocked(h)
		q.mu.Unlock()
	} else {
		w := &waiter{ready: make(chan struct{}, 1), h: h}
		q.enqueueLocked(w, timeout)
		q.mu.Unlock()
		if err := q.wait(ctx, w); err != nil {
			return err
		}
	}
	q.dropAnchor()
	if err := q.admit(h); err != nil {
		return err
	}
	if h.kind == holdClose && q.proc != nil {
		// The cross-process lock may be kept from the last turn: a
		// close neither needs it nor keeps other processes waiting.
		q.proc.releaseIdle()
	}
	if err := q.takeProc(ctx, timeout, h); err != nil {
		return err
	}
	if h.kind.isWrite() {
		q.stats.writes.Add(1)
	}
	return nil
}

// dropAnchor gives the file's read anchor up, for the holder just granted
// the queue: the anchor's read transaction would keep a checkpoint from
// copying, and the WAL from starting over at the next write. Only a holder
// granted an idle queue can find it held (grantLocked stopped it).
func (q *writeQueue) dropAnchor() {
	if q.anchor != nil {
		q.anchor.drop()
	}
}

// admit refuses a holder whose handle was closed while it waited for the
// lock it has just been granted, releasing the lock.
func (q *writeQueue) admit(h holder) error {
	if h.c == nil || h.kind == holdClose || !h.c.shut.Load() {
		return nil
	}
	q.unlock()
	return fmt.Errorf("%w: %s was closed while this waited for the writer lock; it did not run", ErrClosed, q.file)
}

// grantLocked makes h the holder. q.mu must be held.
func (q *writeQueue) grantLocked(h holder) {
	if !q.held && q.anchor != nil {
		q.anchor.stop()
	}
	if h.kind.isWrite() {
		q.writeSince.Store(monoNow())
	} else {
		q.writeSince.Store(0)
	}
	q.held = true
	q.holder = h
	q.stats.acquires.Add(1)
}

// takeProc takes the cross-process lock for a holder that asks for it,
// within what is left of its timeout. On failure it releases the
// in-process lock too.
func (q *writeQueue) takeProc(ctx context.Context, timeout time.Duration, h holder) error {
	if !h.proc || q.proc == nil {
		return nil
	}
	q.mu.Lock()
	q.holder.procWaiting = true
	q.mu.Unlock()
	start := time.Now()
	waited, err := q.proc.acquire(ctx, max(0, timeout-start.Sub(h.since)))
	if waited {
		q.stats.procWaits.record(time.Since(start))
	}
	q.mu.Lock()
	q.holder.procWaiting = false
	if err == nil {
		q.holder.procHeld = true
		q.mu.Unlock()
		return nil
	}
	q.unlockLocked()
	q.mu.Unlock()
	q.stats.timeouts.Add(1)
	who := "a writer in another process"
	if pids := q.proc.holders(); len(pids) > 0 {
		who += " (pid " + strconv.Itoa(pids[0]) + ")"
	}
	e := &LockTimeoutError{File: q.file, Waited: time.Since(h.since),
		Holder: who + ", holding " + q.proc.path}
	switch {
	case errors.Is(err, errProcTimeout):
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		e.cause = err
	default:
		return err
	}
	return e
}

// unlock releases the lock, granting it to the head of the queue if any.
func (q *writeQueue) unlock() {
	q.mu.Lock()
	q.unlockLocked()
	q.mu.Unlock()
}

func (q *writeQueue) unlockLocked() {
	if !q.held {
		panic("sqlitesafe: unlock of an unlocked writer queue")
	}
	if q.holder.procHeld {
		q.proc.done()
	}
	q.stats.holds.record(time.Since(q.holder.since))
	if q.holder.kind == holdCheckpoint {
		q.stats.ckptDelayed.Add(int64(len(q.waiters)))
	}
	if len(q.waiters) == 0 {
		q.held = false
		q.writeSince.Store(0)
		q.holder = holder{}
		if q.anchor != nil {
			q.anchor.resume()
		}
		return
	}
	w := q.popLocked()
	w.state = waitGranted
	w.prev = q.holder
	q.grantLocked(w.h)
	q.holder.since = time.Now()
	w.signal()
}

// enqueueLocked queues w, whose wait may last timeout from when its holder
// record was made, and sets the queue's expiry timer if w's deadline is
// the earliest. q.mu must be held.
func (q *writeQueue) enqueueLocked(w *waiter, timeout time.Duration) {
	w.deadline = w.h.since.Add(timeout)
	q.waiters = append(q.waiters, w)
	if q.expiryAt.IsZero() || w.deadline.Before(q.expiryAt) {
		q.setExpiryLocked(w.deadline)
	}
}

// setExpiryLocked makes the expiry timer due at t. q.mu must be held.
func (q *writeQueue) setExpiryLocked(t time.Time) {
	q.expiryAt = t
	d := time.Until(t)
	if q.expiry == nil {
		q.expiry = time.AfterFunc(d, q.expire)
		return
	}
	q.expiry.Reset(d)
}

// expire ends the waits whose deadline has passed: they leave the queue
// and are woken with waitExpired. It then sets the timer for the earliest
// deadline left, if any.
func (q *writeQueue) expire() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	if q.expiryAt.IsZero() || now.Before(q.expiryAt) {
		return // set again since it fired
	}
	q.expiryAt = time.Time{}
	var next time.Time
	kept := q.waiters[:0]
	for _, w := range q.waiters {
		if !now.Before(w.deadline) {
			// What made it wait, for its error: by the time it reads
			// the queue again, the holder may be gone.
			w.state, w.held, w.prev = waitExpired, q.held, q.holder
			w.signal()
			continue
		}
		if next.IsZero() || w.deadline.Before(next) {
			next = w.deadline
		}
		kept = append(kept, w)
	}
	clear(q.waiters[len(kept):])
	q.waiters = kept
	if !next.IsZero() {
		q.setExpiryLocked(next)
	}
}

// wait blocks until w is served or its wait runs out. On return without
// error, w is granted the lock (or, for a request, its request has run or w
// holds the lock to run it).
func (q *writeQueue) wait(ctx context.Context, w *waiter) error {
	start := w.h.since
	var cause error
	received := false // w.ready's one value
	select {
	case <-w.ready:
		// Sent under q.mu after w.state was set: no lock to read it.
		if w.state != waitExpired {
			q.stats.waits.record(time.Since(start))
			return nil
		}
		received = true
	case <-ctx.Done():
		cause = ctx.Err()
	}
	q.mu.Lock()
	var (
		e           *LockTimeoutError
		procWaiting bool
	)
	switch w.state {
	case waitQueued:
		q.remove(w)
		e = timeoutError(q.file, time.Since(start), cause, q.held, q.holder)
		procWaiting = q.held && q.holder.procWaiting
	case waitExpired:
		if !received {
			<-w.ready // sent as it expired; w may be used again
		}
		e = timeoutError(q.file, time.Since(start), cause, w.held, w.prev)
		procWaiting = w.held && w.prev.procWaiting
	case waitGranted:
		// Granted as the wait ran out: pass the lock on. What made it
		// wait is the holder that released it just now.
		<-w.ready // sent as it was granted
		e = timeoutError(q.file, time.Since(start), cause, true, w.prev)
		procWaiting = w.prev.procWaiting
		q.unlockLocked()
	case waitTaken, waitDone:
		// A batch has the request; its result is coming.
		q.mu.Unlock()
		<-w.ready
		q.stats.waits.record(time.Since(start))
		return nil
	}
	q.mu.Unlock()
	return q.timedOut(e, procWaiting)
}

// timedOut counts a wait that ran out and completes its error e: whether
// the holder it names waits for another process (procWaiting: for the
// cross-process lock).
func (q *writeQueue) timedOut(e *LockTimeoutError, procWaiting bool) error {
	q.stats.timeouts.Add(1)
	if e.Holder != "" {
		e.HolderWaitsFor = q.holderWaitsFor(procWaiting)
	}
	return e
}

// holderWaitsFor says which other process the holder of the lock is
// waiting for, if it is: the holder of the cross-process lock, or (in
// SQLite's busy handler) a process holding the database's own write lock,
// such as a program on plain SQLite. Empty when it is not known to wait.
// It reads the system's lock table: call it without q.mu.
func (q *writeQueue) holderWaitsFor(procWaiting bool) string {
	if procWaiting && q.proc != nil {
		who := "another process holding the cross-process lock " + q.proc.path
		if pids := q.proc.holders(); len(pids) > 0 {
			who = "another process (" + pidList(pids) + ") holding the cross-process lock " + q.proc.path
		}
		return who
	}
	if q.key == "" {
		return ""
	}
	if writers, _ := sqliteLockers(q.key); len(writers) > 0 {
		return "another process (" + pidList(writers) + ") holding the database's write lock, in SQLite's busy handler"
	}
	return ""
}

func (q *writeQueue) remove(w *waiter) {
	for i, x := range q.waiters {
		if x == w {
			copy(q.waiters[i:], q.waiters[i+1:])
			q.waiters[len(q.waiters)-1] = nil
			q.waiters = q.waiters[:len(q.waiters)-1]
			return
		}
	}
}

// timeoutError describes a wait for the writer lock of file that ran out
// after waited, for cause (nil for the timeout), while h held the lock (when
// held).
func timeoutError(file string, waited time.Duration, cause error, held bool, h holder) *LockTimeoutError {
	e := &LockTimeoutError{File: file, Waited: waited, cause: cause}
	if held {
		e.Holder = h.kind.String()
		e.HolderSite = h.site.String()
		e.HeldFor = time.Since(h.since)
	}
	return e
}

// submit runs req under the writer lock and returns once it has run, alone or
// in a batch run by this or another goroutine; req.res and req.err then hold
// its outcome. submit's own error means req never ran: its wait ran out.
// run executes a batch of requests, all for the same handle, and sets the
// outcome of each.
func (q *writeQueue) submit(req *writeRequest, timeout time.Duration, h holder, run func([]*writeRequest)) error {
	q.mu.Lock()
	if !q.held && len(q.waiters) == 0 {
		q.grantLocked(h)
		q.mu.Unlock()
		q.dropAnchor()
		if err := q.admit(h); err != nil {
			return err
		}
		if err := q.takeProc(req.ctx, timeout, h); err != nil {
			return err
		}
		q.lead(req, run)
		return nil
	}
	w := &req.wait
	if w.ready == nil {
		w.ready = make(chan struct{}, 1)
	}
	*w = waiter{ready: w.ready, h: h, req: req}
	q.enqueueLocked(w, timeout)
	q.mu.Unlock()
	if err := q.wait(req.ctx, w); err != nil {
		return err
	}
	// wait has received from w.ready, sent after w.state took its last
	// value: no lock to read it.
	if w.state != waitGranted {
		return nil // another goroutine's batch ran it
	}
	if err := q.admit(h); err != nil {
		return err
	}
	if err := q.takeProc(req.ctx, timeout, h); err != nil {
		return err
	}
	q.lead(req, run)
	return nil
}

// lead runs req, for which this goroutine holds the lock, and the requests
// queued right behind it that can share its transaction. When nothing is
// queued behind it but the last batch woke several writers, they are on
// their way back with their next writes: the leader first yields its
// processor once, so that they can queue behind it and share this commit
// instead of each paying one of its own. (With 64 goroutines inserting on 2
// cores, a third of the writes ran alone before this, each one of the
// writers woken by a batch finding the lock free.)
//
// Once its batch has committed, the leader goes on leading: while the head
// of the queue can share a group commit, it runs the head's batch too, for
// up to chainFor after its own, before it hands the lock on. The writers of
// each batch are woken as it commits, and queue their next writes while
// the leader runs the batch after, on a processor of its own; a new leader
// would first have to be scheduled among those writers, with the writer
// connection idle meanwhile. (With the 64 goroutines, the writer
// connection ran 63% of the time before, and a leader that found writes
// queued behind it still yielded, for 68 µs on average.) The chain stops
// where the queue holds anything else (a transaction, another handle's
// write), which then gets the lock in its turn; a leader's caller waits
// for the chain, its own write committed.
func (q *writeQueue) lead(req *writeRequest, run func([]*writeRequest)) {
	q.mu.Lock()
	if req.batch && q.woken >= gatherAfter && len(q.waiters) == 0 {
		q.mu.Unlock()
		runtime.Gosched()
		q.mu.Lock()
	}
	batch, taken := q.gatherLocked(req)
	q.mu.Unlock()
	var until time.Time // chainFor after req's own batch
	for batch != nil {
		q.stats.writes.Add(int64(len(batch)))
		batch, taken = q.runBatch(batch, taken, run, &until)
	}
}

// gatherLocked returns the batch that first leads, and the waiters it takes
// out of the queue for it: first alone, or, when first may share a group
// commit, with the requests queued right behind it that may share it too,
// up to maxBatch. q.mu must be held.
func (q *writeQueue) gatherLocked(first *writeRequest) ([]*writeRequest, []*waiter) {
	batch := []*writeRequest{first}
	if !first.batch {
		return batch, nil
	}
	var taken []*waiter
	for len(q.waiters) > 0 && len(batch) < maxBatch {
		next := q.waiters[0]
		if !joins(first.c, next) {
			break
		}
		q.popLocked().state = waitTaken
		batch = append(batch, next.req)
		taken = append(taken, next)
	}
	if len(batch) > 1 {
		q.holder.kind = holdBatch
		q.stats.groupCommits.Add(1)
		q.stats.groupedWrites.Add(int64(len(batch)))
	}
	return batch, taken
}

// joins reports whether w's request can share a group commit on c's writer.
func joins(c *connector, w *waiter) bool {
	return w.req != nil && w.req.batch && w.req.c == c
}

// gatherAfter is how many writers a batch must have woken for the next
// leader to yield before it gathers its batch.
const gatherAfter = 2

// chainFor bounds how long a leader goes on running the batches queued
// behind its own, from the end of its own, before it hands the lock on: its
// caller waits for its result meanwhile.
const chainFor = time.Millisecond

// runBatch runs batch while holding the lock, then wakes the waiters whose
// requests it ran. If the head of the queue can share a group commit with
// batch, and it is not yet *until (a zero *until is set to chainFor from
// now), it keeps the lock and returns the head's batch, taken out of the
// queue, for the same goroutine to run next; otherwise it releases the lock
// and returns nil. A panic in run still wakes the waiters, with an error,
// and still releases the lock.
func (q *writeQueue) runBatch(batch []*writeRequest, taken []*waiter, run func([]*writeRequest), until *time.Time) (next []*writeRequest, nextTaken []*waiter) {
	// Once woken, a waiter may submit its request's storage again: what
	// is needed of the batch after that is read first.
	c := batch[0].c
	defer func() {
		r := recover()
		q.mu.Lock()
		for _, w := range taken {
			if r != nil && w.req.res == nil && w.req.err == nil {
				w.req.err = fmt.Errorf("sqlitesafe: the goroutine running this write panicked: %v", r)
			}
			w.state = waitDone
			w.signal()
		}
		q.woken = len(taken)
		if r == nil {
			if head := q.carryLocked(c, until); head != nil {
				next, nextTaken = q.gatherLocked(head.req)
				nextTaken = append(nextTaken, head)
				q.mu.Unlock()
				return
			}
		}
		q.unlockLocked()
		q.mu.Unlock()
		if r != nil {
			panic(r)
		}
	}()
	run(batch)
	return nil, nil
}

// carryLocked passes the lock from the holder, whose batch on c's writer
// has just run, to the waiter at the head of the queue without letting it
// go, and returns that waiter, taken out of the queue: when its request can
// share a group commit on c's writer, it is not yet *until (zero: the
// leader's own batch has just run, and *until is set), the handle is open,
// and the cross-process lock, if held, may stay with this process for
// another turn. Otherwise it returns nil and changes nothing but *until.
// q.mu must be held.
func (q *writeQueue) carryLocked(c *connector, until *time.Time) *waiter {
	if len(q.waiters) == 0 || !joins(c, q.waiters[0]) {
		return nil
	}
	now := time.Now()
	if until.IsZero() {
		*until = now.Add(chainFor)
	} else if !now.Before(*until) {
		return nil
	}
	if c != nil && c.shut.Load() {
		return nil // admit would refuse it
	}
	if q.holder.procHeld && !q.proc.carry() {
		return nil
	}
	w := q.popLocked()
	w.state = waitTaken
	q.stats.holds.record(now.Sub(q.holder.since))
	procHeld := q.holder.procHeld
	q.grantLocked(w.h)
	q.holder.since = now
	q.holder.procHeld = procHeld
	return w
}

// popLocked takes the head of the queue out of it and returns it. q.mu must
// be held, and the queue not empty.
func (q *writeQueue) popLocked() *waiter {
	w := q.waiters[0]
	q.waiters[0] = nil
	q.waiters = q.waiters[1:]
	return w
}

// snapshot reports the queue's state for messages and tests: whether the lock
// is held, by what, and how many wait.
func (q *writeQueue) snapshot() (held bool, h holder, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held, q.holder, len(q.waiters)
}

// runBatch runs a batch of autocommit writes on the shared writer; the
// caller holds the writer queue. A batch of more than one write is a group
// commit: one transaction, each write keeping its own result and error. Each
// outcome is SQLite's: a write reported successful has committed, one
// reported failed has left nothing behind (write.go).
func (c *connector) runBatch(batch []*writeRequest) {
	// Reopening a broken writer is the handle's business, not one
	// caller's: no caller's context may fail the others' writes.
	w, err := c.sharedWriter(context.Background())
	if err != nil {
		for _, r := range batch {
			r.err = err
		}
		return
	}
	defer c.checkWriter(w)
	if len(batch) == 1 {
		r := batch[0]
		c.beforeWrite(r.info)
		r.res, r.out, r.err = runWrite(w, r.call)
		return
	}
	bg := context.Background()
	if err := w.run(bg, "BEGIN IMMEDIATE"); err != nil {
		// Nothing of the batch ran. On a cluster whose leader is gone
		// the writes are not committed, and runRemoteBatch runs them
		// again on the new leader.
		err = notCommitted(fmt.Errorf("sqlitesafe: begin a group commit on %s: %w", c.name, err))
		for _, r := range batch {
			r.err = err
		}
		return
	}
	for i, r := range batch {
		r.res, r.err = execChecked(w, r.call)
		if r.err == nil {
			continue
		}
		in, err := w.inTx()
		switch {
		case err != nil:
			// SQLite cannot say whether the transaction is still
			// open: trust nothing. The writer is broken, and closing
			// it rolls the transaction back.
			c.dropWriter()
			err = fmt.Errorf("sqlitesafe: group commit on %s abandoned, nothing of it written: %w", c.name, err)
			for _, o := range batch {
				if o != r {
					o.res, o.err = nil, notCommitted(err)
				}
			}
			r.err = notCommitted(r.err)
			return
		case in:
			continue // the statement failed alone; the others stand
		}
		// The error rolled back the whole transaction (ON CONFLICT
		// ROLLBACK, RAISE(ROLLBACK), an interrupt, an I/O error): the
		// writes before it are gone. Run them again, and the rest, each
		// on its own.
		w.ensureNoTx()
		runAlone(c, w, batch[:i])
		runAlone(c, w, batch[i+1:])
		return
	}
	if err := w.commit(); err != nil {
		if err := commitError(err); errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNotCommitted) {
			// Running them again here could write them twice; the
			// ones a cluster says are not committed are run again by
			// runRemoteBatch, on a writer connected to the new leader.
			for _, r := range batch {
				if r.err == nil {
					r.res, r.err = nil, err
				}
			}
			w.ensureNoTx()
			return
		}
		// Nothing is committed (a deferred foreign key failed, say): run
		// each write on its own, so that each gets its own outcome.
		w.ensureNoTx()
		runAlone(c, w, batch)
	}
}

// runAlone runs each request as its own autocommit statement.
func runAlone(c *connector, w *phys, batch []*writeRequest) {
	for _, r := range batch {
		if w.broken {
			c.dropWriter()
			err := fmt.Errorf("sqlitesafe: the writer connection of %s failed; the write did not run", c.name)
			if c.db != nil {
				err = fmt.Errorf("%w: %w", ErrNotCommitted, err) // run again on the new leader
			}
			r.res, r.out, r.err = nil, nil, err
			continue
		}
		r.res, r.out, r.err = runWrite(w, r.call)
	}
}

// dropWriter closes the shared writer now, rolling back whatever SQLite
// still has open on it; the next write opens another. The caller holds the
// writer queue.
func (c *connector) dropWriter() {
	if c.writer != nil {
		c.writer.close()
		c.writer = nil
	}
}

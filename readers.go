package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// readerPool keeps a handle's read-only connections.
type readerPool struct {
	c       *connector
	mu      sync.Mutex
	idle    []*phys
	open    int
	max     int // 0: no cap
	maxIdle int
	waiters []chan *phys // FIFO; a nil send means "a slot is free, open one"
	out     []*phys      // the readers it lent and are in use, for the checkpointer's reports
	kept    []*phys      // the readers logical connections keep between their reads (see acquire)
	closed  atomic.Bool  // set by close; read without mu by the keepers
	nwait   atomic.Int32 // len(waiters), for the keepers
	// anchored: its reads take the file's read anchor (anchor.go). Set
	// before the pool is used.
	anchored bool
	// trimAt is when (a monoNow reading) a read that ends next looks for
	// kept readers unused for keptIdle, to give back.
	trimAt atomic.Int64

	// The most readers in use at once in the current window of
	// peakWindow, which began at peakStart, and in the one before: the
	// pool keeps that many idle (see idleCap).
	peak, prevPeak int
	peakStart      time.Time
}

// peakWindow is how long the pool remembers how many readers were in use
// at once.
const peakWindow = time.Second

// The states of phys.hold.
const (
	holdPool     int32 = iota // the pool's: idle, or lent and listed in out
	holdKept                  // kept by a logical connection, between its reads
	holdKeptBusy              // kept, and a read of its keeper runs on it
)

// epoch is the origin of monoNow.
var epoch = time.Now()

// monoNow is the time as nanoseconds since epoch on the monotonic clock,
// plus one: never 0, which phys.since keeps for "no read".
func monoNow() int64 { return int64(time.Since(epoch)) + 1 }

// monoTime is the time of a monoNow reading.
func monoTime(n int64) time.Time { return epoch.Add(time.Duration(n - 1)) }

// acquire returns a reader for a read of the logical connection whose
// reader is *last: that reader itself when the connection keeps it and
// nobody took it back meanwhile, without the pool's lock (8 goroutines
// reading through prepared statements spent 7.6% of their CPU in the
// pool's get and put); else one from getPreferring, which becomes *last.
// release ends the read.
func (rp *readerPool) acquire(ctx context.Context, last **phys) (*phys, error) {
	rp.yieldToWriter()
	if p := *last; p != nil && p.hold.CompareAndSwap(holdKept, holdKeptBusy) {
		if gate := rp.gate(); gate != nil {
			if err := gate.enter(ctx); err != nil {
				p.hold.Store(holdKept)
				return nil, err
			}
		}
		now := monoNow()
		p.since.Store(now)
		rp.wantAnchor(now)
		return p, nil
	}
	p, err := rp.getPreferring(ctx, *last)
	if err != nil {
		return nil, err
	}
	if old := *last; old == nil || old.hold.Load() != holdKeptBusy {
		// Not while the reader it keeps is busy with another of its
		// reads (rows still open): that one stays its own.
		*last = p
	}
	rp.wantAnchor(p.since.Load())
	return p, nil
}

// writerTurn is how long a write may hold a file's writer lock before the
// process's reads of it begin by yielding the processor.
const writerTurn = 2 * time.Millisecond

// yieldToWriter gives the processor away once, at the start of a read,
// while a write has held the file's writer lock for writerTurn or more (a
// write that takes microseconds when it runs: one that takes 2 ms is
// waiting, most likely for a processor).
// Reads run on as many goroutines as the program has; a write runs on one,
// and each time it waits (for SQLite's mutexes, which the readers take too,
// or for its system calls) it goes back behind the readers for a processor.
// Beside 8 reading goroutines on 2 cores, one inserting goroutine made 8-13k
// inserts/s against its 40-60k alone, while the reads ran at twice the
// best peer's rate; with the yield, 19-23k, with the reads still above
// that rate (BENCHMARKS.md). Any write counts, a transaction's too: a
// yield with nothing else to run costs well under a microsecond.
func (rp *readerPool) yieldToWriter() {
	f := rp.c.file
	if f == nil {
		return
	}
	if at := f.queue.writeSince.Load(); at != 0 && monoNow()-at >= int64(writerTurn) {
		f.queue.stats.readYields.Add(1)
		runtime.Gosched()
	}
}

// wantAnchor lets a read that begins at now (a monoNow reading) take the
// file's read anchor.
func (rp *readerPool) wantAnchor(now int64) {
	if rp.anchored {
		if f := rp.c.file; f != nil {
			f.anchor.want(rp.c, now)
		}
	}
}

// release ends a read that acquire began for the logical connection whose
// reader is *last. The connection keeps the reader for its next read when
// it is *last, sound, and the pool has room for one more kept reader
// (keepCap); otherwise the reader goes back to the pool.
func (rp *readerPool) release(p *phys, last **phys) {
	p.site.Store(nil)
	markInvalid(p)
	n := p.since.Load()
	p.used.Store(n)
	if n > rp.trimAt.Load() {
		defer rp.trim(n)
	}
	if p.hold.Load() == holdKeptBusy {
		if p.broken || rp.closed.Load() || *last != p || rp.nwait.Load() > 0 {
			// Not to be kept: broken, the pool closed, not the
			// connection's reader any more, or another read waits
			// for a reader (_max_readers).
			p.since.Store(0)
			rp.mu.Lock()
			rp.unkeepLocked(p)
			rp.mu.Unlock()
			p.hold.Store(holdPool)
			rp.giveBack(p, false)
		} else {
			p.since.Store(0)
			p.hold.Store(holdKept)
		}
		if gate := rp.gate(); gate != nil {
			gate.leave()
		}
		return
	}
	rp.mu.Lock()
	if p.broken || rp.closed.Load() || *last != p || len(rp.waiters) > 0 || len(rp.kept) >= rp.keepCap() {
		rp.mu.Unlock()
		rp.put(p)
		return
	}
	rp.untrackLocked(p)
	p.outIdx = len(rp.kept)
	rp.kept = append(rp.kept, p)
	p.hold.Store(holdKept)
	rp.mu.Unlock()
	if gate := rp.gate(); gate != nil {
		gate.leave()
	}
}

// keptIdle is how long a kept reader may go unused before a read that
// ends gives it back to the pool, which keeps it idle or closes it as it
// does the others (idleCap): the readers a burst of connections kept are
// closed once such bursts are over.
const keptIdle = 2 * peakWindow

// trim gives back to the pool the kept readers no read has used for
// keptIdle, and closes the idle readers above the pool's cap; now is a
// monoNow reading.
func (rp *readerPool) trim(now int64) {
	rp.mu.Lock()
	if now <= rp.trimAt.Load() {
		rp.mu.Unlock()
		return
	}
	rp.trimAt.Store(now + int64(peakWindow))
	var stale []*phys
	for i := 0; i < len(rp.kept); {
		p := rp.kept[i]
		if now-p.used.Load() >= int64(keptIdle) && p.hold.CompareAndSwap(holdKept, holdPool) {
			rp.unkeepLocked(p)
			stale = append(stale, p)
			continue
		}
		i++
	}
	rp.mu.Unlock()
	for _, p := range stale {
		rp.giveBack(p, false)
	}
	// Reads on kept readers do not give readers back: the idle ones
	// above the cap are closed here.
	rp.mu.Lock()
	surplus := rp.dropIdleLocked(nil, max(0, rp.idleCap(monoTime(now))-rp.keptIdleLocked()))
	rp.mu.Unlock()
	for _, p := range surplus {
		p.close()
	}
}

// dropIdleLocked takes the idle readers above limit out of the pool and
// returns them after those of surplus, for the caller to close without
// rp.mu. rp.mu is held.
func (rp *readerPool) dropIdleLocked(surplus []*phys, limit int) []*phys {
	if len(rp.idle) <= limit {
		return surplus
	}
	n := len(surplus)
	surplus = append(surplus, rp.idle[limit:]...)
	clear(rp.idle[limit:])
	rp.idle = rp.idle[:limit]
	rp.open -= len(surplus) - n
	return surplus
}

// unkeep takes back the reader *last, if its logical connection keeps it
// and no read uses it: the connection is closing.
func (rp *readerPool) unkeep(last **phys) {
	p := *last
	*last = nil
	if p == nil || !p.hold.CompareAndSwap(holdKept, holdPool) {
		return
	}
	rp.mu.Lock()
	rp.unkeepLocked(p)
	rp.mu.Unlock()
	rp.giveBack(p, false)
}

// reclaimLocked takes a kept reader back from its keeper, which finds it
// gone at its next read, and returns it; nil if every kept reader is busy.
// rp.mu is held.
func (rp *readerPool) reclaimLocked() *phys {
	for _, p := range rp.kept {
		if p.hold.CompareAndSwap(holdKept, holdPool) {
			rp.unkeepLocked(p)
			return p
		}
	}
	return nil
}

// unkeepLocked takes p off the list of kept readers. rp.mu is held.
func (rp *readerPool) unkeepLocked(p *phys) { rp.kept = unlist(rp.kept, p) }

// unlist takes p off list, in which its place is p.outIdx, moving the last
// reader of the list there.
func unlist(list []*phys, p *phys) []*phys {
	last := len(list) - 1
	moved := list[last]
	list[p.outIdx], moved.outIdx = moved, p.outIdx
	list[last] = nil
	return list[:last]
}

// keepCap is how many readers logical connections may keep: all that
// _max_readers allows (a reader kept by an idle connection is taken back
// when another needs it), else eight per processor, or the idle cap if
// that is more (the ones kept by connections that stopped reading go back
// to the pool after keptIdle). rp.mu is held.
func (rp *readerPool) keepCap() int {
	if rp.max > 0 {
		return rp.max
	}
	return max(rp.maxIdle, 8*runtime.GOMAXPROCS(0))
}

// markInvalid marks p broken if its driver says it is no longer valid.
func markInvalid(p *phys) {
	if !p.broken {
		if v, ok := p.conn.(driver.Validator); ok && !v.IsValid() {
			p.broken = true
		}
	}
}

// get returns a reader, opening one if the cap allows, else waiting for one
// to be put back (bounded by ctx and the busy timeout). While the
// checkpointer holds new reads of the file back, it waits for that first.
func (rp *readerPool) get(ctx context.Context) (*phys, error) { return rp.getPreferring(ctx, nil) }

// getPreferring is get, taking prefer if it is idle: the reader a logical
// connection used last, whose pages and statements the goroutine using that
// connection has just touched.
func (rp *readerPool) getPreferring(ctx context.Context, prefer *phys) (*phys, error) {
	gate := rp.gate()
	if gate != nil {
		if err := gate.enter(ctx); err != nil {
			return nil, err
		}
	}
	p, tracked, err := rp.take(ctx, prefer)
	if err != nil {
		if gate != nil {
			gate.leave()
		}
		return nil, err
	}
	if !tracked {
		rp.mu.Lock()
		rp.trackLocked(p)
		rp.mu.Unlock()
	}
	return p, nil
}

// trackLocked lists p among the readers in use. rp.mu is held.
func (rp *readerPool) trackLocked(p *phys) {
	p.since.Store(monoNow())
	p.outIdx = len(rp.out)
	rp.out = append(rp.out, p)
	rp.peak = max(rp.peak, rp.inUseLocked())
}

// idleCap is how many readers the pool keeps idle, given that now is about
// the time: _max_readers if set; otherwise as many as were in use at once
// in the last second or two, and at least one per processor. Goroutines
// preempted in the middle of a read each hold a reader, so more readers
// than processors can be in use at once; a pool that closes the ones above
// a fixed number opens them again a moment later, and opening one (with its
// setup) costs a hundred reads. rp.mu is held.
func (rp *readerPool) idleCap(now time.Time) int {
	if rp.max > 0 {
		return rp.maxIdle
	}
	if now.Sub(rp.peakStart) >= peakWindow {
		rp.prevPeak, rp.peak, rp.peakStart = rp.peak, rp.inUseLocked(), now
	}
	return max(rp.maxIdle, rp.peak, rp.prevPeak)
}

// untrackLocked takes p off the list of readers in use. rp.mu is held.
func (rp *readerPool) untrackLocked(p *phys) {
	rp.out = unlist(rp.out, p)
	p.site.Store(nil)
	p.since.Store(0)
}

// gate is the read gate of the file, or nil before the handle is open.
func (rp *readerPool) gate() *readGate {
	if f := rp.c.file; f != nil {
		return &f.gate
	}
	return nil
}

// take is get without the gate. It reports whether it listed the reader
// among those in use already (an idle one, taken under the same lock).
func (rp *readerPool) take(ctx context.Context, prefer *phys) (p *phys, tracked bool, err error) {
	for {
		rp.mu.Lock()
		if rp.closed.Load() {
			rp.mu.Unlock()
			return nil, false, ErrClosed
		}
		if n := len(rp.idle); n > 0 {
			i := n - 1
			if prefer != nil && rp.idle[i] != prefer {
				for j := i - 1; j >= 0; j-- {
					if rp.idle[j] == prefer {
						i = j
						break
					}
				}
			}
			p := rp.idle[i]
			rp.idle[i] = rp.idle[n-1]
			rp.idle[n-1] = nil
			rp.idle = rp.idle[:n-1]
			rp.trackLocked(p)
			rp.mu.Unlock()
			return p, true, nil
		}
		if rp.max > 0 && rp.open >= rp.max {
			if p := rp.reclaimLocked(); p != nil {
				rp.trackLocked(p)
				rp.mu.Unlock()
				return p, true, nil
			}
		}
		if rp.max == 0 || rp.open < rp.max {
			rp.open++
			rp.mu.Unlock()
			p, err := rp.c.openReader(ctx)
			if err != nil {
				rp.mu.Lock()
				rp.open--
				rp.wakeLocked()
				rp.mu.Unlock()
				return nil, false, err
			}
			return p, false, nil
		}
		ch := make(chan *phys, 1)
		rp.waiters = append(rp.waiters, ch)
		rp.nwait.Store(int32(len(rp.waiters)))
		rp.mu.Unlock()
		p, err := rp.wait(ctx, ch)
		if err != nil {
			return nil, false, err
		}
		if p != nil {
			return p, false, nil
		}
	}
}

func (rp *readerPool) wait(ctx context.Context, ch chan *phys) (*phys, error) {
	start := time.Now()
	timeout := rp.c.cfg.busyTimeout()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var cause error
	select {
	case p := <-ch:
		return p, nil
	case <-ctx.Done():
		cause = ctx.Err()
	case <-timer.C:
		cause = ErrReaderTimeout
	}
	rp.mu.Lock()
	removed := false
	for i, w := range rp.waiters {
		if w == ch {
			rp.waiters = append(rp.waiters[:i], rp.waiters[i+1:]...)
			rp.nwait.Store(int32(len(rp.waiters)))
			removed = true
			break
		}
	}
	rp.mu.Unlock()
	if !removed {
		// Served as the wait ran out: give it back.
		if p := <-ch; p != nil {
			rp.giveBack(p, false)
		} else {
			rp.mu.Lock()
			rp.wakeLocked()
			rp.mu.Unlock()
		}
	}
	return nil, fmt.Errorf("sqlitesafe: waited %s for a free reader connection on %s: all %d that _max_readers allows are in use "+
		"(raise _max_readers, or close rows sooner): %w", round(time.Since(start)), rp.c.name, rp.max, cause)
}

// wakeLocked tells the first waiter that a slot is free.
func (rp *readerPool) wakeLocked() {
	if len(rp.waiters) > 0 {
		ch := rp.waiters[0]
		rp.waiters = rp.waiters[1:]
		rp.nwait.Store(int32(len(rp.waiters)))
		ch <- nil
	}
}

// put gives back a reader that get returned.
func (rp *readerPool) put(p *phys) {
	rp.giveBack(p, true)
	if gate := rp.gate(); gate != nil {
		gate.leave()
	}
}

// oldest returns the reader that has been in use longest, if any: since
// when, and where its read transaction began.
func (rp *readerPool) oldest() (since time.Time, site string, ok bool) {
	p, n := rp.oldestRead()
	if p == nil {
		return time.Time{}, "", false
	}
	if cs := p.site.Load(); cs != nil {
		site = cs.String()
	}
	return monoTime(n), site, true
}

// oldestSince is oldest without the site.
func (rp *readerPool) oldestSince() (since time.Time, ok bool) {
	p, n := rp.oldestRead()
	if p == nil {
		return time.Time{}, false
	}
	return monoTime(n), true
}

// oldestRead returns the reader whose read began first among those in
// use, lent or kept, and when (a monoNow reading); nil if none is.
func (rp *readerPool) oldestRead() (oldest *phys, since int64) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for _, list := range [][]*phys{rp.out, rp.kept} {
		for _, p := range list {
			if n := p.since.Load(); n != 0 && (oldest == nil || n < since) {
				oldest, since = p, n
			}
		}
	}
	return oldest, since
}

// giveBack returns a reader to the pool, or closes it; untrack takes it off
// the list of readers in use first.
func (rp *readerPool) giveBack(p *phys, untrack bool) {
	markInvalid(p)
	now := time.Now()
	if n := p.since.Load(); n != 0 {
		now = monoTime(n) // near enough, and no clock read
	}
	rp.mu.Lock()
	if untrack {
		rp.untrackLocked(p)
	}
	if p.broken || rp.closed.Load() {
		rp.open--
		rp.wakeLocked()
		rp.mu.Unlock()
		p.close()
		return
	}
	if len(rp.waiters) > 0 {
		ch := rp.waiters[0]
		rp.waiters = rp.waiters[1:]
		rp.nwait.Store(int32(len(rp.waiters)))
		ch <- p
		rp.mu.Unlock()
		return
	}
	limit := max(0, rp.idleCap(now)-rp.keptIdleLocked())
	if len(rp.idle) < limit {
		rp.idle = append(rp.idle, p)
		rp.mu.Unlock()
		return
	}
	// Over the cap: close this reader, and the idle ones a burst left
	// that the last two windows did not need.
	rp.open--
	surplus := rp.dropIdleLocked([]*phys{p}, limit)
	rp.mu.Unlock()
	for _, p := range surplus {
		p.close()
	}
}

// counts returns the number of readers open and idle (kept ones that no
// read uses count as idle).
func (rp *readerPool) counts() (open, idle int) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.open, len(rp.idle) + rp.keptIdleLocked()
}

// inUseLocked counts the readers in use: lent, or kept and busy. rp.mu is
// held.
func (rp *readerPool) inUseLocked() int {
	return len(rp.out) + len(rp.kept) - rp.keptIdleLocked()
}

// keptIdleLocked counts the kept readers that no read uses: idle too, for
// the pool's cap on idle readers. rp.mu is held.
func (rp *readerPool) keptIdleLocked() int {
	n := 0
	for _, p := range rp.kept {
		if p.hold.Load() == holdKept {
			n++
		}
	}
	return n
}

// close closes the idle readers; the ones in use are closed when put back.
func (rp *readerPool) close() {
	rp.mu.Lock()
	rp.closed.Store(true)
	rp.mu.Unlock()
	rp.closeIdle()
}

// closeIdle closes the idle readers, and the kept ones that no read uses.
func (rp *readerPool) closeIdle() {
	rp.mu.Lock()
	idle := rp.idle
	rp.idle = nil
	for p := rp.reclaimLocked(); p != nil; p = rp.reclaimLocked() {
		idle = append(idle, p)
	}
	rp.open -= len(idle)
	rp.mu.Unlock()
	for _, p := range idle {
		p.close()
	}
}

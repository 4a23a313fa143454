package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"fmt"
	"sync"
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
	out     []*phys      // the readers in use, for the checkpointer's reports
	closed  bool

	// The most readers in use at once in the current window of
	// peakWindow, which began at peakStart, and in the one before: the
	// pool keeps that many idle (see idleCap).
	peak, prevPeak int
	peakStart      time.Time
}

// peakWindow is how long the pool remembers how many readers were in use
// at once.
const peakWindow = time.Second

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
	p.since = time.Now()
	p.outIdx = len(rp.out)
	rp.out = append(rp.out, p)
	rp.peak = max(rp.peak, len(rp.out))
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
		rp.prevPeak, rp.peak, rp.peakStart = rp.peak, len(rp.out), now
	}
	return max(rp.maxIdle, rp.peak, rp.prevPeak)
}

// untrackLocked takes p off the list of readers in use. rp.mu is held.
func (rp *readerPool) untrackLocked(p *phys) {
	last := len(rp.out) - 1
	moved := rp.out[last]
	rp.out[p.outIdx], moved.outIdx = moved, p.outIdx
	rp.out[last] = nil
	rp.out = rp.out[:last]
	p.site.n = 0
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
		if rp.closed {
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
	rp.mu.Lock()
	var cs callSite
	for _, p := range rp.out {
		if !ok || p.since.Before(since) {
			since, cs, ok = p.since, p.site, true
		}
	}
	rp.mu.Unlock()
	if ok {
		site = cs.String()
	}
	return since, site, ok
}

// oldestSince is oldest without the site.
func (rp *readerPool) oldestSince() (since time.Time, ok bool) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for _, p := range rp.out {
		if !ok || p.since.Before(since) {
			since, ok = p.since, true
		}
	}
	return since, ok
}

// giveBack returns a reader to the pool, or closes it; untrack takes it off
// the list of readers in use first.
func (rp *readerPool) giveBack(p *phys, untrack bool) {
	if !p.broken {
		if v, ok := p.conn.(driver.Validator); ok && !v.IsValid() {
			p.broken = true
		}
	}
	since := p.since
	rp.mu.Lock()
	if untrack {
		rp.untrackLocked(p)
	}
	if p.broken || rp.closed {
		rp.open--
		rp.wakeLocked()
		rp.mu.Unlock()
		p.close()
		return
	}
	if len(rp.waiters) > 0 {
		ch := rp.waiters[0]
		rp.waiters = rp.waiters[1:]
		ch <- p
		rp.mu.Unlock()
		return
	}
	limit := rp.idleCap(since)
	if len(rp.idle) < limit {
		rp.idle = append(rp.idle, p)
		rp.mu.Unlock()
		return
	}
	// Over the cap: close this reader, and the idle ones a burst left
	// that the last two windows did not need.
	surplus := append([]*phys{p}, rp.idle[limit:]...)
	clear(rp.idle[limit:])
	rp.idle = rp.idle[:limit]
	rp.open -= len(surplus)
	rp.mu.Unlock()
	for _, p := range surplus {
		p.close()
	}
}

// counts returns the number of readers open and idle.
func (rp *readerPool) counts() (open, idle int) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.open, len(rp.idle)
}

// close closes the idle readers; the ones in use are closed when put back.
func (rp *readerPool) close() {
	rp.mu.Lock()
	rp.closed = true
	rp.mu.Unlock()
	rp.closeIdle()
}

// closeIdle closes the idle readers.
func (rp *readerPool) closeIdle() {
	rp.mu.Lock()
	idle := rp.idle
	rp.idle = nil
	rp.open -= len(idle)
	rp.mu.Unlock()
	for _, p := range idle {
		p.close()
	}
}

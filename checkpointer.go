package sqlitesafe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The checkpointer of a database file: a goroutine per file open in the
// process that runs its checkpoints, between write transactions rather than
// inside them, and keeps the -wal file bounded whatever the process's readers
// do.
//
// SQLite's automatic checkpoint runs inside the commit that makes the WAL
// pass 1000 pages, so that commit pays for copying the WAL into the database
// and for two fsyncs. The driver turns it off on its connections
// (wal_autocheckpoint=0) and checkpoints PASSIVE from a connection of its own
// instead, as often as the WAL grows by about as much: writers and readers go
// on meanwhile.
//
// A checkpoint copies the WAL only up to the oldest snapshot a reader still
// uses, and the WAL starts over from its beginning only when no reader uses
// it at all. With reads that overlap (one always open), it never does, and
// the -wal file grows without bound. The process's readers are all the
// driver's: when the WAL's frames pass a quarter of journal_size_limit
// (4 MiB while no read is open), the checkpointer copies what it can beside
// the readers and writers, holds new read transactions of the process back
// (the read gate), waits for the open ones to end (at most maxReadHoldBack),
// and takes the writer queue to copy the frames written meanwhile and run a
// RESTART checkpoint (waiting at most checkpointQueueHold for other
// processes), letting the reads go as soon as every frame is copied. When
// the WAL grows faster than the disk lets the first copy keep up (a writer
// of 100 MB/s beside another program's syncs), it leaves that copy out: the
// writers wait for the whole copy and go at the disk's pace, and the -wal
// stays under journal_size_limit. The next writer then writes from the
// start of the -wal file again, over the frames there: no file growth,
// which costs a lone writer more than the checkpoints themselves. A -wal
// file past journal_size_limit itself is truncated (TRUNCATE). Readers of
// other processes cannot be held back; they are reported. Every checkpoint
// first gives up the file's read anchor (anchor.go), whose read transaction
// would keep it from copying past its snapshot.

const (
	// maxReadHoldBack bounds how long new reads wait while a checkpoint
	// waits for the open ones to end.
	maxReadHoldBack = 200 * time.Millisecond
	// checkpointQueueHold bounds how long a checkpoint's final step
	// waits for other processes: its busy timeout.
	checkpointQueueHold = 100 * time.Millisecond
	// targetFrames is how many WAL frames a background checkpoint aims to
	// copy each time: SQLite's automatic checkpoint threshold.
	targetFrames = 1000
)

// Checkpointing says who runs the checkpoints of a WAL database: the
// driver, in the background (the default), or SQLite, inside the commit
// that makes the WAL pass 1000 pages.
type Checkpointing string

// The checkpointing policies.
const (
	// CheckpointingBackground: the driver's checkpointer, between writes
	// (wal_autocheckpoint=0 on the driver's connections), with the -wal
	// kept under its journal_size_limit whatever the process's
	// readers do.
	CheckpointingBackground Checkpointing = "background"
	// CheckpointingCommit: SQLite's automatic checkpoint, as with other
	// drivers. The commit that crosses the threshold pays for it, and
	// overlapping reads can make the -wal grow without bound.
	CheckpointingCommit Checkpointing = "commit"
)

// checkpointing returns the policy, with the default filled in.
func (c *Config) checkpointing() Checkpointing {
	if c.Checkpointing == "" {
		return CheckpointingBackground
	}
	return c.Checkpointing
}

// readGate counts the read transactions on the readers of a file, and lets a
// checkpoint hold new ones back while the open ones end.
type readGate struct {
	holding atomic.Bool  // a checkpoint holds new reads back
	active  atomic.Int64 // read transactions let in and not ended

	mu      sync.Mutex
	opened  chan struct{} // closed when the hold ends; guarded by mu
	drained chan struct{} // closed when active reaches 0 during a hold; guarded by mu

	// held counts the reads that waited at the gate; heldMax is the
	// longest such wait, in nanoseconds.
	held, heldMax atomic.Int64
}

// enter lets a read transaction in, waiting while a checkpoint holds reads
// back.
func (g *readGate) enter(ctx context.Context) error {
	if !g.holding.Load() {
		g.active.Add(1)
		if !g.holding.Load() {
			return nil
		}
		g.leave()
	}
	start := time.Now()
	for {
		g.mu.Lock()
		ch := g.opened
		if ch == nil {
			g.active.Add(1)
			g.mu.Unlock()
			g.held.Add(1)
			if d := int64(time.Since(start)); d > g.heldMax.Load() {
				g.heldMax.Store(d)
			}
			return nil
		}
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// leave ends a read transaction let in by enter.
func (g *readGate) leave() {
	if g.active.Add(-1) == 0 && g.holding.Load() {
		g.mu.Lock()
		if g.drained != nil && g.active.Load() == 0 {
			close(g.drained)
			g.drained = nil
		}
		g.mu.Unlock()
	}
}

// hold holds new reads back and waits, at most d (and while ctx lasts), for
// the open ones to end. It reports whether they did. The caller calls
// release in any case.
func (g *readGate) hold(ctx context.Context, d time.Duration) bool {
	g.mu.Lock()
	g.opened = make(chan struct{})
	g.holding.Store(true)
	if g.active.Load() == 0 {
		g.mu.Unlock()
		return true
	}
	drained := make(chan struct{})
	g.drained = drained
	g.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-drained:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return g.active.Load() == 0
}

// release lets the reads held back go.
func (g *readGate) release() {
	g.mu.Lock()
	g.holding.Store(false)
	close(g.opened)
	g.opened, g.drained = nil, nil
	g.mu.Unlock()
}

// checkpointer runs the checkpoints of one file.
type checkpointer struct {
	f *fileState

	mu sync.Mutex // one checkpoint at a time; guards p
	p  *phys      // a read-write connection of its own, opened when first needed

	opener atomic.Pointer[connector] // a read-write handle on the file, to open p with

	stop chan struct{} // closed to end the background goroutine; nil without one
	done chan struct{} // closed when it has ended

	limit     atomic.Int64 // the -wal size past which reads are held back
	frameSize atomic.Int64 // the bytes of a WAL frame: the page size and a header of 24; 0 until known
}

// start runs the background checkpointer of the file, for handle c. The
// caller holds files.
//
// The -wal bound is the first handle's journal_size_limit; resets start at a quarter of it.
func (k *checkpointer) start(c *connector) {
	k.limit.Store(c.cfg.journalSizeLimit() / 4)
	if k.stop != nil {
		return
	}
	k.stop, k.done = make(chan struct{}), make(chan struct{})
	go k.run(k.stop, k.done)
}

// setOpener gives the checkpointer a handle to open its connection with.
// The caller holds files.
func (k *checkpointer) setOpener(c *connector) {
	if o := k.opener.Load(); o == nil || o.shut.Load() {
		k.opener.Store(c)
	}
}

// shutdown ends the background goroutine and closes the connection, once no
// handle is left on the file.
func (k *checkpointer) shutdown() {
	if k.stop != nil {
		close(k.stop)
		<-k.done
		k.stop = nil
	}
	k.mu.Lock()
	if k.p != nil {
		k.p.close()
		k.p = nil
	}
	k.opener.Store(nil)
	k.mu.Unlock()
}

// run is the background goroutine. While writes come, it looks at the
// -wal's size every 10 ms (a commit of one row writes a whole page or two, so
// the -wal can grow by 100 MB/s) and resets it past its limit; and it
// checkpoints PASSIVE at an interval that adapts so that each copies about
// targetFrames frames. Idle, it looks every 100 ms.
func (k *checkpointer) run(stop, done chan struct{}) {
	defer close(done)
	const busyTick, idleTick = 10 * time.Millisecond, 100 * time.Millisecond
	passiveEvery := 50 * time.Millisecond
	timer := time.NewTimer(idleTick)
	defer timer.Stop()
	var writes, passiveWrites int64
	var lastPassive time.Time
	var prev CheckpointResult
	// A reset a read kept from finishing is tried again only after a
	// pause that doubles up to 5 s: holding reads back again and again for
	// a read that does not end (a Backup, say) would stall every read.
	// But once every read of the process that was open then has ended,
	// it is tried again at once.
	const firstPause, maxPause = 250 * time.Millisecond, 5 * time.Second
	pause := firstPause
	var nextReset, blockedAt, lastRead time.Time
	var sizeAtReset int64 // the -wal file's size after the last reset
	// The WAL's growth: when prev was looked at (the start of its
	// PASSIVE, or the end of a reset, with 0 frames), how long that
	// PASSIVE took, and the frames a second it has been growing by. The
	// checkpointer sees the frames only through its checkpoints, which a
	// busy disk makes last hundreds of milliseconds while a writer adds
	// 100 MB/s: it goes by the frames it estimates there are now, and by
	// the rate its PASSIVEs copy frames at.
	var lookedAt time.Time
	var lookTook time.Duration
	var growth, copyRate float64 // frames a second
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		w := k.f.queue.stats.writes.Load()
		if w == writes {
			timer.Reset(idleTick)
			continue
		}
		writes = w
		if !blockedAt.IsZero() {
			if since, ok := k.f.oldestReaderSince(); !ok || since.After(blockedAt) {
				blockedAt, nextReset = time.Time{}, time.Time{}
			}
		}
		if k.f.gate.active.Load() > 0 {
			lastRead = time.Now()
		}
		// The frames in the WAL (at the last PASSIVE) say how far it has
		// grown since it last started over: a RESTART lets the next
		// writer write from the start of the -wal file again, over what
		// is there, which costs less than the file growth after a
		// TRUNCATE. A file past journal_size_limit itself (a reset that
		// reads kept from finishing) is truncated.
		// Between two PASSIVEs the file's size tells what the frames
		// cannot: a -wal growing past what it was at the last reset holds
		// more frames than it did then.
		limit := k.resetAt(time.Since(lastRead) > 100*time.Millisecond)
		frameSize := k.frameSize.Load()
		nowFrames := float64(prev.Log) + growth*(time.Since(lookedAt)+busyTick).Seconds()
		now := int64(nowFrames) * frameSize
		// A copy beside the writers (a PASSIVE, or a reset's first
		// copy) takes about the frames there are over the rate the
		// PASSIVEs copied at, and the WAL grows meanwhile: to next.
		copyTakes := lookTook.Seconds()
		if copyRate > 0 {
			copyTakes = nowFrames / copyRate
		}
		next := int64(nowFrames+growth*copyTakes) * frameSize
		half := 2 * k.limit.Load() // half of journal_size_limit
		size := walSize(k.f.key)
		tooBig := k.limit.Load() > 0 && size > 4*k.limit.Load()
		if limit > 0 && time.Now().After(nextReset) && (now > limit || next > half || size > limit && size > sizeAtReset || tooBig) {
			mode := CheckpointRestart
			if tooBig {
				mode = CheckpointTruncate
			}
			// A first copy beside the writers keeps their wait
			// short: not when it would take the WAL past half of
			// journal_size_limit, or before the WAL's growth is
			// known. Then the writers wait for the whole copy, and
			// go at the disk's pace.
			copyFirst := growth > 0 && next <= half
			if r, err := k.reset(context.Background(), mode, copyFirst); err != nil || r.Busy {
				blockedAt = time.Now()
				nextReset = blockedAt.Add(pause)
				pause = min(2*pause, maxPause)
			} else {
				pause = firstPause
				sizeAtReset = walSize(k.f.key)
				prev, lookedAt = CheckpointResult{}, time.Now()
			}
			lastPassive, passiveWrites = time.Now(), w
		} else if w != passiveWrites && time.Since(lastPassive) >= passiveEvery {
			passiveWrites, lastPassive = w, time.Now()
			if r, err := k.checkpoint(context.Background(), CheckpointPassive); err == nil && r.Log >= 0 {
				lookTook = time.Since(lastPassive)
				if r.Log >= prev.Log && !lookedAt.IsZero() {
					if dt := lastPassive.Sub(lookedAt).Seconds(); dt > 0 {
						growth = float64(r.Log-prev.Log) / dt
					}
					if n := r.Checkpointed - prev.Checkpointed; n > targetFrames {
						copyRate = float64(n) / lookTook.Seconds()
					}
				}
				lookedAt = lastPassive
				// The interval follows the frames written, or copied,
				// since the last PASSIVE: readers that keep it from
				// copying do not make the writes slower.
				copied, grown := r.Checkpointed, r.Log
				if r.Log >= prev.Log {
					copied -= prev.Checkpointed
					grown -= prev.Log
				}
				copied = max(copied, grown)
				switch {
				case copied > 2*targetFrames:
					passiveEvery = max(passiveEvery/2, busyTick)
				case copied < targetFrames/2:
					passiveEvery = min(passiveEvery*2, time.Second)
				}
				prev = r
			}
		}
		timer.Reset(busyTick)
	}
}

// resetAt is the -wal size past which the background checkpointer starts the
// WAL over: a quarter of journal_size_limit while the process reads (a reset
// holds new reads back), and about what SQLite's automatic checkpoint lets
// grow (1000 pages of 4 KiB) when no read has been seen for a while
// (noReads): then a reset holds nothing back, and a WAL that starts over
// early stays small and its index short.
func (k *checkpointer) resetAt(noReads bool) int64 {
	limit := k.limit.Load()
	if limit > 0 && noReads {
		return min(limit, 4<<20)
	}
	return limit
}

// walSize returns the size of the database's -wal file, 0 if none.
func walSize(db string) int64 { return markOf(db + "-wal").size }

// conn returns the checkpointer's connection, opening it. k.mu is held.
func (k *checkpointer) conn(ctx context.Context) (*phys, error) {
	if k.p != nil && !k.p.broken {
		return k.p, nil
	}
	if k.p != nil {
		k.p.close()
		k.p = nil
	}
	o := k.opener.Load()
	if o == nil {
		return nil, errors.New("sqlitesafe: no read-write handle open to checkpoint with")
	}
	p, err := o.openWriter(ctx, false)
	if err != nil {
		return nil, err
	}
	k.p = p
	return p, nil
}

// checkpoint runs a checkpoint of the given mode. PASSIVE copies what it can
// beside readers and writers. The others first copy what they can the same
// way, then hold the process's new reads back until the open ones end (at
// most maxReadHoldBack), then take the writer queue to copy the frames
// written meanwhile and finish, waiting at most checkpointQueueHold for other
// processes. When a reader blocks it, it reports Busy and names the reader.
func (k *checkpointer) checkpoint(ctx context.Context, mode CheckpointMode) (CheckpointResult, error) {
	return k.reset(ctx, mode, true)
}

// reset is checkpoint, with the first copy beside the writers and readers
// left out unless copyFirst: then the writers wait for the whole copy once
// the open reads have ended. (The writer queue is not taken before they
// end: a read that does not end would make the writers wait for nothing.)
func (k *checkpointer) reset(ctx context.Context, mode CheckpointMode, copyFirst bool) (CheckpointResult, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	// The read anchor's transaction would keep the copy from going past
	// its snapshot, and the WAL from starting over.
	a := &k.f.anchor
	a.stop()
	defer a.resume()
	a.drop()
	start := time.Now()
	p, err := k.conn(ctx)
	if err != nil {
		return CheckpointResult{}, err
	}
	if k.frameSize.Load() == 0 {
		if v, err := p.queryValue(ctx, "PRAGMA page_size"); err == nil {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				k.frameSize.Store(n + 24)
			}
		}
	}
	if copyFirst || mode == CheckpointPassive {
		r, err := runCheckpoint(ctx, p, CheckpointPassive, 0)
		if err == nil && r.Log > r.Checkpointed {
			// PASSIVE copies every frame there was when it began
			// unless a reader still needs the older pages.
			r.Busy, r.Blocker = true, k.f.readBlocker()
		}
		if err != nil || mode == CheckpointPassive {
			k.record(r, err, start, false)
			return r, err
		}
	}
	var r CheckpointResult
	q := &k.f.queue
	// The last step needs SQLite's write lock: with the process queue
	// taken as well, the writers of other sqlite-safe processes are not
	// in the middle of a transaction holding it.
	h := holder{kind: holdCheckpoint, since: time.Now()}
	if o := k.opener.Load(); o != nil {
		h.proc = o.procOn()
	}
	busy := func(held time.Duration, blocker string) (CheckpointResult, error) {
		r.HeldReads, r.Busy, r.Blocker = held, true, blocker
		k.record(r, nil, start, true)
		return r, nil
	}
	gate := &k.f.gate
	holdStart := time.Now()
	if !gate.hold(ctx, maxReadHoldBack) {
		held := time.Since(holdStart)
		gate.release()
		return busy(held, k.f.oldestReader())
	}
	wait := max(maxReadHoldBack-time.Since(holdStart), time.Millisecond)
	if err := q.lock(ctx, wait, h); err != nil {
		held := time.Since(holdStart)
		gate.release()
		return busy(held, "the writers of this process: "+err.Error())
	}
	// No reader of the process and no writer: this copies every frame.
	// Reads that begin once every frame is copied read the database file
	// alone and do not keep the WAL from starting over, so they may go
	// before the last step.
	var held time.Duration
	r, err = runCheckpoint(ctx, p, CheckpointPassive, 0)
	if err == nil && r.Log == r.Checkpointed {
		held = time.Since(holdStart)
		gate.release()
	}
	if err == nil {
		r, err = runCheckpoint(ctx, p, mode, checkpointQueueHold)
	}
	q.unlock()
	if held == 0 {
		held = time.Since(holdStart)
		gate.release()
	}
	r.HeldReads = held
	if err == nil && r.Busy {
		r.Blocker = k.f.otherProcessReaders()
	}
	k.record(r, err, start, true)
	return r, err
}

// record counts a checkpoint in the file's Stats. A reset (FULL and
// stronger) that something kept from finishing is also logged, once until
// one finishes: the -wal grows meanwhile.
func (k *checkpointer) record(r CheckpointResult, err error, start time.Time, reset bool) {
	s := &k.f.queue.stats
	s.checkpoints.record(time.Since(start))
	if r.HeldReads > 0 {
		s.readHolds.record(r.HeldReads)
	}
	if err != nil {
		return
	}
	s.recordCheckpoint(r)
	switch {
	case !reset:
	case !r.Busy:
		s.blockedWarned.Store(false)
	case s.blockedWarned.CompareAndSwap(false, true):
		if c := k.opener.Load(); c != nil {
			c.cfg.logger().Warn("sqlitesafe: a checkpoint cannot reset the -wal file: "+r.Blocker+"; the -wal grows until it ends",
				slog.String("file", k.f.queue.file), slog.Int64("wal_bytes", walSize(k.f.key)))
		}
	}
}

// runCheckpoint runs PRAGMA wal_checkpoint(mode) on p. busy, if not 0, is
// how long SQLite may wait for other processes' readers and writers.
func runCheckpoint(ctx context.Context, p *phys, mode CheckpointMode, busy time.Duration) (CheckpointResult, error) {
	if busy > 0 {
		if err := p.run(ctx, "PRAGMA busy_timeout = "+strconv.FormatInt(busy.Milliseconds(), 10)); err != nil {
			return CheckpointResult{}, err
		}
		defer p.run(context.Background(), "PRAGMA busy_timeout = 0")
	}
	q := "PRAGMA wal_checkpoint(" + string(mode) + ")"
	v, err := p.queryInts(ctx, q, 3)
	if err != nil {
		p.note(err)
		return CheckpointResult{}, fmt.Errorf("sqlitesafe: %s: %w", q, err)
	}
	return CheckpointResult{Busy: v[0] != 0, Log: int(v[1]), Checkpointed: int(v[2])}, nil
}

// oldestReaderSince returns when the read of this process open longest on
// the file began; ok is false when none is open.
func (f *fileState) oldestReaderSince() (since time.Time, ok bool) {
	files.Lock()
	handles := make([]*connector, 0, len(f.handles))
	for c := range f.handles {
		handles = append(handles, c)
	}
	files.Unlock()
	for _, c := range handles {
		if s, found := c.readers.oldestSince(); found && (!ok || s.Before(since)) {
			since, ok = s, true
		}
	}
	return since, ok
}

// oldestReader describes the read of this process open longest on the file.
func (f *fileState) oldestReader() string {
	files.Lock()
	handles := make([]*connector, 0, len(f.handles))
	for c := range f.handles {
		handles = append(handles, c)
	}
	files.Unlock()
	var since time.Time
	var site string
	found := false
	for _, c := range handles {
		if s, st, ok := c.readers.oldest(); ok && (!found || s.Before(since)) {
			since, site, found = s, st, true
		}
	}
	if !found {
		return "a read of this process"
	}
	open := round(time.Since(since)).String()
	if site == "" {
		return "the rows of a query of this process, open for " + open + " (close rows when done with them)"
	}
	return "a read transaction of this process begun at " + site + ", open for " + open
}

// readBlocker describes what keeps a checkpoint from copying every frame: a
// read of this process if one is open, else another process.
func (f *fileState) readBlocker() string {
	if f.gate.active.Load() > 0 {
		return f.oldestReader()
	}
	return f.otherProcessReaders()
}

// otherProcessReaders describes the other processes that read the file, as
// far as the system tells.
func (f *fileState) otherProcessReaders() string {
	return "a reader or writer in another process"
}

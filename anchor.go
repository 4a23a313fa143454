package sqlitesafe

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The read anchor of a database file: a read transaction the process keeps
// open, on a connection of its own that reads nothing, while only reads run,
// so that the readers' locks are taken inside the process.
//
// A read transaction on a WAL database takes a shared lock on one of the
// -shm file's read-mark slots and gives it back as it ends: two fcntl system
// calls, a third of a point read's time. SQLite counts the locks that the
// connections of one process hold on a slot and calls the system only for
// the first and the last (unixShmLock): while the anchor holds the slot of
// the newest snapshot, the readers take theirs and give them back without a
// system call. Every read still begins its own transaction and sees every
// commit before it: the anchor changes who calls the system, not what a read
// sees.
//
// An open read transaction keeps checkpoints from copying past its snapshot
// and the WAL from starting over, so the anchor is held only while nothing
// needs either:
//   - the writer queue gives it up as it goes from idle to busy, before the
//     write begins, and a checkpoint as it begins; neither waits for more
//     than the anchor's ROLLBACK;
//   - a read takes it again only anchorQuiet after the last write or
//     checkpoint ended, and only where reads come close together (within
//     anchorDense of each other): a process that reads now and then never
//     holds it;
//   - it is held for at most anchorHold at a time, reads or not, and then
//     left for anchorQuiet: other processes' checkpoints, which the process
//     cannot see, find the slots free within their busy timeout;
//   - when the -wal file changed while it was held (its size or its
//     modification time: another process, or a connection outside the
//     writer queue, wrote), it is left for anchorForeign: beside another
//     writer its snapshot goes stale at once, so it would spare the readers
//     nothing and keep that writer's checkpoints from finishing.
//
// Reads never wait for it: a read that finds it being taken or given up goes
// on without it.
type readAnchor struct {
	on      atomic.Bool  // held, or being taken: a writer that finds it set gives it up
	stopped atomic.Int32 // writer-queue busy periods and checkpoints under way: not to be taken
	since   atomic.Int64 // when it was taken (monoNow)
	after   atomic.Int64 // no read takes it before this (monoNow)
	probe   atomic.Int64 // when the last read that could have taken it began (monoNow)
	takes   atomic.Int64 // times it was taken, for Stats

	mu     sync.Mutex  // one user of p at a time
	p      *phys       // its connection, opened by the first read to take it; guarded by mu
	held   bool        // p's read transaction is open; guarded by mu
	off    bool        // the file is not in WAL mode, or its state is gone; guarded by mu
	timer  *time.Timer // ends a hold at anchorHold (expire); guarded by mu
	wal    string      // the -wal file's path; "" to look at none. Set before use
	walWas walMark     // the -wal file as the anchor was taken; guarded by mu
}

// walMark is what a stat of the -wal file says of it.
type walMark struct {
	size  int64
	mtime time.Time
}

// same reports whether two marks say the same.
func (m walMark) same(o walMark) bool { return m.size == o.size && m.mtime.Equal(o.mtime) }

// markOf returns the -wal file's walMark; the zero walMark if there is none.
func markOf(path string) walMark {
	fi, err := os.Stat(path)
	if err != nil {
		return walMark{}
	}
	return walMark{fi.Size(), fi.ModTime()}
}

const (
	// anchorQuiet is how long after a write or a checkpoint, or after the
	// anchor was held for anchorHold, a read may take it again.
	anchorQuiet = 10 * time.Millisecond
	// anchorHold bounds how long it is held at a time.
	anchorHold = 100 * time.Millisecond
	// anchorDense: a read takes the anchor only when the read before it
	// that could have taken it began at most this long before.
	anchorDense = 250 * time.Microsecond
	// anchorRetry is how long a failure to take it (the connection would
	// not open, or the read transaction would not begin) keeps reads from
	// trying again.
	anchorRetry = time.Second
	// anchorForeign is how long it is left after the -wal changed while it
	// was held.
	anchorForeign = 2 * time.Second
)

// want is called by each read of c on the file as it begins, at now (a
// monoNow reading): it takes the anchor when nothing keeps it from it.
func (a *readAnchor) want(c *connector, now int64) {
	if a.on.Load() || a.stopped.Load() > 0 || now < a.after.Load() {
		return
	}
	if p := a.probe.Load(); now-p > int64(anchorDense) {
		a.probe.Store(now)
		return
	}
	if a.mu.TryLock() {
		a.takeLocked(c)
		a.mu.Unlock()
	}
}

// takeLocked opens p if need be and begins its read transaction. a.mu is
// held.
func (a *readAnchor) takeLocked(c *connector) {
	if a.off || a.held {
		return
	}
	ctx := context.Background()
	if a.p != nil && a.p.broken {
		a.p.close()
		a.p = nil
	}
	if a.p == nil {
		p, err := a.open(ctx, c)
		if err != nil || p == nil {
			a.after.Store(monoNow() + int64(anchorRetry))
			return
		}
		a.p = p
	}
	a.since.Store(monoNow())
	a.on.Store(true)
	// A writer that was granted the queue before on was set, and did not
	// see it, has stopped it by now (stop comes before the check of on).
	if a.stopped.Load() > 0 {
		a.on.Store(false)
		return
	}
	if err := a.p.run(ctx, "BEGIN"); err != nil {
		a.fail()
		return
	}
	// A statement that reads the database begins the read transaction;
	// inside BEGIN it stays open after the statement ends.
	if _, err := a.p.queryValue(ctx, "PRAGMA schema_version"); err != nil {
		a.held = true
		a.dropLocked()
		a.after.Store(monoNow() + int64(anchorRetry))
		return
	}
	a.held = true
	a.takes.Add(1)
	if a.wal != "" {
		a.walWas = markOf(a.wal)
	}
	if a.timer == nil {
		a.timer = time.AfterFunc(anchorHold, a.expire)
	} else {
		a.timer.Reset(anchorHold)
	}
}

// open opens the anchor's connection through c: a reader that never waits
// for a lock (busy_timeout 0: a read that takes the anchor does not wait
// for it), on a file in WAL mode, whose errors Stats does not count. It returns nil, and turns the anchor off,
// when the file is not in WAL mode: a read transaction in the rollback
// journal's mode would keep writers from committing.
func (a *readAnchor) open(ctx context.Context, c *connector) (*phys, error) {
	p, err := c.openReader(ctx)
	if err != nil {
		return nil, err
	}
	// Its errors are its own: a BUSY of the anchor is no application's.
	p.stats = nil
	mode, err := p.queryValue(ctx, "PRAGMA journal_mode")
	if err == nil && !strings.EqualFold(mode, "wal") {
		a.off = true
		p.close()
		return nil, nil
	}
	if err == nil {
		err = p.run(ctx, "PRAGMA busy_timeout = 0")
	}
	if err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// fail ends a failed attempt to take the anchor. a.mu is held.
func (a *readAnchor) fail() {
	a.after.Store(monoNow() + int64(anchorRetry))
	a.on.Store(false)
}

// dropLocked ends the anchor's read transaction, if open. A connection that
// cannot end it is closed, which ends it. a.mu is held.
func (a *readAnchor) dropLocked() {
	if a.held {
		a.held = false
		if err := a.p.run(context.Background(), "ROLLBACK"); err != nil {
			a.p.close()
			a.p = nil
		}
	}
	a.after.Store(monoNow() + int64(anchorQuiet))
	a.on.Store(false)
}

// expire gives the anchor up once it has been held for anchorHold.
func (a *readAnchor) expire() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.held {
		return
	}
	if d := time.Duration(monoNow() - a.since.Load()); d < anchorHold {
		a.timer.Reset(anchorHold - d)
		return
	}
	a.dropLocked()
	// The process's own writes gave it up before they began: a -wal
	// that changed meanwhile was written by someone else.
	if a.wal != "" && !markOf(a.wal).same(a.walWas) {
		a.after.Store(monoNow() + int64(anchorForeign))
	}
}

// stop keeps reads from taking the anchor until resume; the caller then
// gives it up with drop before it writes or checkpoints. stop takes no lock:
// the writer queue calls it under its own.
func (a *readAnchor) stop() { a.stopped.Add(1) }

// drop gives the anchor up, waiting for a read that is taking it.
func (a *readAnchor) drop() {
	if a.on.Load() {
		a.mu.Lock()
		a.dropLocked()
		a.mu.Unlock()
	}
}

// resume ends what stop began: reads may take the anchor anchorQuiet
// later. It takes no lock.
func (a *readAnchor) resume() {
	a.after.Store(monoNow() + int64(anchorQuiet))
	a.stopped.Add(-1)
}

// close gives the anchor up and closes its connection: another connection
// is to change the journal mode, which needs the others closed, or the
// file's last handle is closing (gone). A later read opens it again unless
// gone.
func (a *readAnchor) close(gone bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dropLocked()
	if a.p != nil {
		a.p.close()
		a.p = nil
	}
	if gone {
		a.off = true
		if a.timer != nil {
			a.timer.Stop()
		}
	}
}

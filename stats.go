package sqlitesafe

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of what the driver has seen on one database file, for
// every handle of the process on it (the counters) and for the handle asked
// (the readers). Get it with GetStats, GetStatsFile or AllStats. The
// counters count from the moment a handle of the process opened the file
// while no other was open on it: when the last handle on the file closes,
// its counters go with it.
type Stats struct {
	// File is the database file, as the handle's DSN names it.
	File string
	// Path is the file as the driver tells files apart: its absolute path
	// with symbolic links resolved, the same for every handle on the file
	// ("memory:..." for an in-memory database, "vfs:NAME:..." for a
	// database of another VFS).
	Path string

	// Writes counts the write statements and write transactions run under
	// the writer queue: an autocommit write, a transaction, a writing query.
	Writes int64
	// GroupCommits counts the transactions that committed more than one
	// autocommit write together, and GroupedWrites the writes in them.
	GroupCommits, GroupedWrites int64

	// Acquires counts the times the writer lock was taken; Waits those
	// that had to queue first. WaitTotal and WaitMax sum and bound those
	// waits, and WaitHistogram spreads them over buckets.
	Acquires, Waits    int64
	WaitTotal, WaitMax time.Duration
	WaitHistogram      []Bucket
	// LockTimeouts counts the waits that ended without the lock: the busy
	// timeout passed or the caller's context ended.
	LockTimeouts int64
	// QueueDepth is the number of writers waiting now.
	QueueDepth int

	// Held reports whether a writer holds the lock now: what it is
	// (Holder, "a transaction begun", say), where it took the lock
	// (HolderSite, file:line in the caller's code) and for how long
	// (HeldFor).
	Held       bool
	Holder     string
	HolderSite string
	HeldFor    time.Duration
	// HoldTotal and HoldMax sum and bound the times the lock was held,
	// and HoldHistogram spreads them over buckets.
	HoldTotal, HoldMax time.Duration
	HoldHistogram      []Bucket

	// ProcessQueue reports whether writers also queue across processes
	// (Config.DisableProcessQueue): false too once the first write found
	// that the lock file cannot be opened. ProcessWaits counts the times a writer
	// of this process, holding the in-process queue, found another
	// process holding the cross-process lock, and ProcessWaitTotal sums
	// those waits.
	ProcessQueue     bool
	ProcessWaits     int64
	ProcessWaitTotal time.Duration

	// SlowHolds and SlowWaits count the warnings logged for holders and
	// waiters over the thresholds (Config.SlowHold, Config.SlowWait).
	SlowHolds, SlowWaits int64

	// Busy counts the SQLITE_BUSY and SQLITE_LOCKED errors SQLite
	// returned to this process's connections on the file, by extended
	// result code name ("SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT", ...). Inside
	// one process the queue keeps these at zero; they come from other
	// processes, or from writes with the queue turned off.
	Busy map[string]int64

	// ReadersOpen is the number of read-only connections the handle has
	// open, ReadersIdle those of them not in use.
	ReadersOpen, ReadersIdle int
	// ReadAnchors counts the times the process took the file's read
	// anchor (Config.DisableReadAnchor); ReadAnchorHeld reports whether
	// it holds it now.
	ReadAnchors    int64
	ReadAnchorHeld bool
	// ReadYields counts the reads that began by yielding the processor
	// because a write had held the writer lock for 2 ms, so that a writer
	// short of processor time gets it.
	ReadYields int64
	// Reruns counts the statements a reader refused as writes and that
	// ran again on the writer (misjudged once; the driver then remembers
	// the statement as a write).
	Reruns int64

	// WALSize is the size in bytes of the -wal file now (0 when there is
	// none). A -wal that keeps growing means checkpoints cannot finish,
	// most often because a read never ends.
	WALSize int64
	// LastCheckpoint is the outcome of the last checkpoint the driver ran
	// (in the background, with Checkpoint, or on close), and
	// LastCheckpointAt its time; zero if none ran yet. When a reader keeps
	// checkpoints from resetting the -wal, LastCheckpoint.Busy is true and
	// LastCheckpoint.Blocker names it.
	LastCheckpoint   CheckpointResult
	LastCheckpointAt time.Time

	// Checkpoints counts the checkpoints the driver ran; CheckpointTotal
	// and CheckpointMax sum and bound their durations, and
	// BusyCheckpoints counts those that could not finish.
	Checkpoints     int64
	CheckpointTotal time.Duration
	CheckpointMax   time.Duration
	BusyCheckpoints int64
	// CheckpointDelayedWriters counts the writers that waited for the
	// writer queue while a checkpoint held it (at most 100 ms each).
	CheckpointDelayedWriters int64
	// ReadHoldBacks counts the times a checkpoint held new reads of the
	// process back to reset the -wal; ReadHoldBackMax is the longest hold,
	// and HeldReads and HeldReadMax count the reads that waited and bound
	// their wait.
	ReadHoldBacks   int64
	ReadHoldBackMax time.Duration
	HeldReads       int64
	HeldReadMax     time.Duration

	// Cluster is what happened on a dqlite cluster, for a dqlite://
	// database; nil for a local one.
	Cluster *ClusterStats
}

// add sums the counters of two handles on one cluster database; the leader
// is o's when it knows one.
func (cs *ClusterStats) add(o *ClusterStats) *ClusterStats {
	if cs == nil {
		return o
	}
	sum := *cs
	if o.Leader != "" {
		sum.Leader = o.Leader
	}
	sum.LeaderChanges += o.LeaderChanges
	sum.ConnectionsLost += o.ConnectionsLost
	sum.CommitsResolved += o.CommitsResolved
	sum.NotCommitted += o.NotCommitted
	sum.OutcomeUnknown += o.OutcomeUnknown
	sum.WritesRerun += o.WritesRerun
	sum.BeginRetries += o.BeginRetries
	return &sum
}

// ClusterStats are the counters of a database on a dqlite cluster.
type ClusterStats struct {
	// Leader is the address of the node that served the last connection.
	Leader string
	// LeaderChanges counts the connections made to another leader than
	// the one before: failovers seen.
	LeaderChanges int64
	// ConnectionsLost counts the requests that failed with their
	// connection to the leader.
	ConnectionsLost int64
	// CommitsResolved counts the COMMITs a lost connection interrupted
	// and that the new leader showed committed; NotCommitted those it
	// showed not committed; OutcomeUnknown those no leader answered for
	// within the failover timeout. (A transaction whose connection was
	// lost before its COMMIT was sent has nothing to resolve: it is rolled
	// back, and counted in ConnectionsLost.)
	CommitsResolved, NotCommitted, OutcomeUnknown int64
	// WritesRerun counts the autocommit writes the driver ran again after
	// finding them not committed.
	WritesRerun int64
	// BeginRetries counts the BEGIN IMMEDIATE retried because another
	// client of the cluster held the write lock.
	BeginRetries int64
}

// Bucket is one bucket of a latency histogram: Count durations that were at
// most UpTo and more than the previous bucket's UpTo. The last bucket's UpTo
// is 0: it holds everything longer than the one before.
type Bucket struct {
	UpTo  time.Duration
	Count int64
}

// bucketBounds are the upper bounds of the histogram buckets, one per
// decade; a last bucket holds the rest.
var bucketBounds = [...]time.Duration{
	10 * time.Microsecond,
	100 * time.Microsecond,
	time.Millisecond,
	10 * time.Millisecond,
	100 * time.Millisecond,
	time.Second,
	10 * time.Second,
}

// histogram is a latency histogram with a count, a sum and a maximum, all
// updated without locks.
type histogram struct {
	n, total, max atomic.Int64
	counts        [len(bucketBounds) + 1]atomic.Int64
}

func (h *histogram) record(d time.Duration) {
	h.n.Add(1)
	h.total.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
	i := 0
	for i < len(bucketBounds) && d > bucketBounds[i] {
		i++
	}
	h.counts[i].Add(1)
}

func (h *histogram) buckets() []Bucket {
	b := make([]Bucket, len(h.counts))
	for i := range h.counts {
		if i < len(bucketBounds) {
			b[i].UpTo = bucketBounds[i]
		}
		b[i].Count = h.counts[i].Load()
	}
	return b
}

// fileStats are the counters of one database file in this process.
type fileStats struct {
	writes        atomic.Int64
	groupCommits  atomic.Int64 // batches of more than one write
	groupedWrites atomic.Int64 // the writes in them
	acquires      atomic.Int64
	waits         histogram
	holds         histogram
	timeouts      atomic.Int64
	procWaits     histogram
	slowHolds     atomic.Int64
	slowWaits     atomic.Int64
	reruns        atomic.Int64
	readYields    atomic.Int64 // reads that yielded to a writer (readerPool.yieldToWriter)
	remoteReruns  atomic.Int64 // autocommit writes run again after a cluster found them not committed
	leaderLost    atomic.Int64 // when (Unix ns) a connection to a cluster's leader was lost, until a writer connects again; 0 if none
	busyMu        sync.Mutex
	busy          map[int]int64 // by extended result code
	checkpointMu  sync.Mutex
	checkpoint    CheckpointResult
	checkpointAt  time.Time

	checkpoints     histogram    // the driver's checkpoints, by duration
	busyCheckpoints atomic.Int64 // of which could not finish
	ckptDelayed     atomic.Int64 // writers that waited while a checkpoint held the queue
	readHolds       histogram    // holds of new reads, by duration
	blockedWarned   atomic.Bool  // the warning for the current blocker is out
}

// recordError counts err if it is SQLITE_BUSY or SQLITE_LOCKED.
func (s *fileStats) recordError(err error) {
	code := sqliteCode(err)
	if p := code & 0xff; p != codeBusy && p != codeLocked {
		return
	}
	s.busyMu.Lock()
	if s.busy == nil {
		s.busy = make(map[int]int64)
	}
	s.busy[code]++
	s.busyMu.Unlock()
}

// codeNames names the extended result codes of SQLITE_BUSY and
// SQLITE_LOCKED.
var codeNames = map[int]string{
	5:   "SQLITE_BUSY",
	261: "SQLITE_BUSY_RECOVERY",
	517: "SQLITE_BUSY_SNAPSHOT",
	773: "SQLITE_BUSY_TIMEOUT",
	6:   "SQLITE_LOCKED",
	262: "SQLITE_LOCKED_SHAREDCACHE",
	518: "SQLITE_LOCKED_VTAB",
}

func (s *fileStats) recordCheckpoint(r CheckpointResult) {
	if r.Busy {
		s.busyCheckpoints.Add(1)
	}
	s.checkpointMu.Lock()
	s.checkpoint, s.checkpointAt = r, time.Now()
	s.checkpointMu.Unlock()
}

// handleOf returns the connector behind db: database/sql's DB.Driver returns
// the Driver of the handle's connector, which knows its connector.
func handleOf(db *sql.DB) (*connector, error) {
	if db == nil {
		return nil, ErrNotSQLiteSafe
	}
	d, ok := db.Driver().(*Driver)
	switch {
	case ok && d.handle != nil:
		return d.handle, nil
	case ok && d.lease != nil:
		if c := d.lease.current(); c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("%w: %s: no connection of the *sql.DB is open, and its handle opens with the first (see Driver)", ErrNotOpen, d.lease.cfg.Path)
	}
	return nil, ErrNotSQLiteSafe
}

// GetStats returns the driver's metrics for the database file db is open on:
// the writer queue's counters, who holds the lock now, SQLite's lock errors,
// the handle's readers and the -wal file's size. It reads counters kept all
// along, takes no connection from db's pool and waits for nothing, so it
// answers even when every connection is stuck. The counters cost a few
// atomic additions per write; they cannot be turned off and need not be.
//
// db must have been opened with sql.Open("sqlite-safe", ...) or sql.OpenDB
// of a connector from NewConnector; otherwise the error is ErrNotSQLiteSafe.
// A *sql.DB opened through a driver wrapper (otelsql, sqlmw, sqlhooks) has the
// wrapper's driver: use GetStatsFile. Before db has connected once there is
// nothing to report, and the Stats holds only File.
func GetStats(db *sql.DB) (Stats, error) {
	c, err := handleOf(db)
	if err != nil {
		return Stats{}, err
	}
	return c.stats(), nil
}

// GetStatsFile returns the metrics of a database file that a sqlite-safe
// handle of the process has open, however it was opened: through a driver
// wrapper (otelsql, sqlmw, sqlhooks) too, where GetStats cannot see the
// handle. name is the file's path or the DSN it was opened with; any
// spelling of the path that reaches the same file will do. The readers
// counted are those of every handle on the file. A file no handle has open is
// an error that wraps ErrNotOpen.
func GetStatsFile(name string) (Stats, error) {
	f, handles, err := openFile(name)
	if err != nil {
		return Stats{}, err
	}
	return f.stats(handles), nil
}

// AllStats returns the metrics of every database file that a sqlite-safe
// handle of the process has open, ordered by Path; an exporter walks it on
// each scrape. The readers counted are those of every handle on the file.
func AllStats() []Stats {
	files.Lock()
	type open struct {
		f       *fileState
		handles []*connector
	}
	all := make([]open, 0, len(files.m))
	for _, f := range files.m {
		all = append(all, open{f, f.handleList()})
	}
	files.Unlock()
	out := make([]Stats, len(all))
	for i, o := range all {
		out[i] = o.f.stats(o.handles)
	}
	slices.SortFunc(out, func(a, b Stats) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// ExpvarStats returns AllStats as a map from each file's Path to its Stats,
// for the standard library's expvar. Publishing it is one line:
//
//	expvar.Publish("sqlitesafe", expvar.Func(sqlitesafe.ExpvarStats))
//
// and /debug/vars then shows, under "sqlitesafe", the metrics of every open
// file as JSON, durations in nanoseconds (as encoding/json writes a
// time.Duration). The driver does not publish it on its own: importing expvar
// registers /debug/vars, with the program's command line, on
// http.DefaultServeMux of every program that imports the driver.
func ExpvarStats() any {
	all := AllStats()
	m := make(map[string]Stats, len(all))
	for _, st := range all {
		m[st.Path] = st
	}
	return m
}

// openFile finds the registry entry of the file name names, and its
// handles.
func openFile(name string) (*fileState, []*connector, error) {
	cfg, err := ParseDSN(name)
	if err != nil {
		return nil, nil, err
	}
	probe, err := newConnector(cfg) // resolves name as a handle would; opens nothing
	if err != nil {
		return nil, nil, err
	}
	key, err := probe.fileKey()
	if err != nil {
		return nil, nil, err
	}
	files.Lock()
	defer files.Unlock()
	f := files.m[key]
	if f == nil || len(f.handles) == 0 {
		return nil, nil, fmt.Errorf("%w: no sqlite-safe handle of this process has %s open (open it first; an in-memory database is reached only through its *sql.DB)", ErrNotOpen, cfg.Path)
	}
	return f, f.handleList(), nil
}

// handleList returns the handles on the file, in no order. The caller holds
// files.
func (f *fileState) handleList() []*connector {
	hs := make([]*connector, 0, len(f.handles))
	for c := range f.handles {
		hs = append(hs, c)
	}
	return hs
}

func (c *connector) stats() Stats {
	c.mu.Lock()
	f := c.file
	c.mu.Unlock()
	var st Stats
	if f != nil {
		st = f.stats(nil)
	}
	st.File = c.name
	st.ReadersOpen, st.ReadersIdle = c.readers.counts()
	if c.db != nil {
		st.Cluster = c.clusterStats(f)
	}
	return st
}

// clusterStats are the engine's counters of the handle, with the writes
// run again on the file.
func (c *connector) clusterStats(f *fileState) *ClusterStats {
	es := c.db.Stats()
	cs := &ClusterStats{
		Leader:          es.Leader,
		LeaderChanges:   es.LeaderChanges,
		ConnectionsLost: es.ConnectionsLost,
		CommitsResolved: es.Resolved,
		NotCommitted:    es.NotCommitted,
		OutcomeUnknown:  es.OutcomeUnknown,
		BeginRetries:    es.BeginRetries,
	}
	if f != nil {
		cs.WritesRerun = f.queue.stats.remoteReruns.Load()
	}
	return cs
}

// stats returns the file's metrics, with the readers of handles.
func (f *fileState) stats(handles []*connector) Stats {
	q := &f.queue
	s := &q.stats
	st := Stats{File: q.file, Path: f.key}
	for _, c := range handles {
		open, idle := c.readers.counts()
		st.ReadersOpen += open
		st.ReadersIdle += idle
		if c.db != nil {
			st.Cluster = st.Cluster.add(c.clusterStats(nil))
		}
	}
	if st.Cluster != nil {
		st.Cluster.WritesRerun = s.remoteReruns.Load()
	}
	st.Writes = s.writes.Load()
	st.GroupCommits = s.groupCommits.Load()
	st.GroupedWrites = s.groupedWrites.Load()
	st.Acquires = s.acquires.Load()
	st.Waits = s.waits.n.Load()
	st.WaitTotal = time.Duration(s.waits.total.Load())
	st.WaitMax = time.Duration(s.waits.max.Load())
	st.WaitHistogram = s.waits.buckets()
	st.LockTimeouts = s.timeouts.Load()
	st.HoldTotal = time.Duration(s.holds.total.Load())
	st.HoldMax = time.Duration(s.holds.max.Load())
	st.HoldHistogram = s.holds.buckets()
	st.ProcessQueue = q.proc.on()
	st.ProcessWaits = s.procWaits.n.Load()
	st.ProcessWaitTotal = time.Duration(s.procWaits.total.Load())
	st.SlowHolds = s.slowHolds.Load()
	st.SlowWaits = s.slowWaits.Load()
	st.Reruns = s.reruns.Load()

	held, h, waiting := q.snapshot()
	st.QueueDepth = waiting
	if held {
		st.Held = true
		st.Holder = h.kind.String()
		st.HolderSite = h.site.String()
		st.HeldFor = time.Since(h.since)
	}

	s.busyMu.Lock()
	if len(s.busy) > 0 {
		st.Busy = make(map[string]int64, len(s.busy))
		for code, n := range s.busy {
			name, ok := codeNames[code]
			if !ok {
				name = "SQLITE_" + strconv.Itoa(code)
			}
			st.Busy[name] += n
		}
	}
	s.busyMu.Unlock()

	s.checkpointMu.Lock()
	st.LastCheckpoint, st.LastCheckpointAt = s.checkpoint, s.checkpointAt
	s.checkpointMu.Unlock()
	st.Checkpoints = s.checkpoints.n.Load()
	st.CheckpointTotal = time.Duration(s.checkpoints.total.Load())
	st.CheckpointMax = time.Duration(s.checkpoints.max.Load())
	st.BusyCheckpoints = s.busyCheckpoints.Load()
	st.CheckpointDelayedWriters = s.ckptDelayed.Load()
	st.ReadHoldBacks = s.readHolds.n.Load()
	st.ReadHoldBackMax = time.Duration(s.readHolds.max.Load())
	st.HeldReads = f.gate.held.Load()
	st.HeldReadMax = time.Duration(f.gate.heldMax.Load())
	st.ReadAnchors = f.anchor.takes.Load()
	st.ReadYields = s.readYields.Load()
	st.ReadAnchorHeld = f.anchor.on.Load()

	if filepath.IsAbs(f.key) {
		st.WALSize = walSize(f.key)
	}
	return st
}

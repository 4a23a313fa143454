// Package prometheus exports the metrics of the sqlite-safe driver
// (github.com/sqlitesafe/sqlitesafe) as Prometheus metrics. It is a module of
// its own, so that programs that do not use Prometheus do not get its client
// library in their module graph.
//
//	import ssprom "github.com/sqlitesafe/sqlitesafe/prometheus"
//
//	prometheus.MustRegister(ssprom.NewCollector())
//
// The collector reports, on each scrape, every database file that a
// sqlite-safe handle of the process has open (sqlitesafe.AllStats), handles
// opened through driver wrappers such as otelsql, sqlmw and sqlhooks
// included. Every metric has a "file" label, the file's absolute path
// (sqlitesafe.Stats.Path). A file appears while a handle has it open; when
// the last handle on it closes, its series go, and if it is opened again its
// counters start from zero, which Prometheus's rate and increase take as a
// counter reset.
//
// The metrics, all with the prefix sqlitesafe_:
//
//	writes_total                         counter    write statements and write transactions run under the writer queue
//	group_commits_total                  counter    transactions that committed more than one autocommit write together
//	grouped_writes_total                 counter    autocommit writes committed in those group commits
//	lock_acquires_total                  counter    times the writer lock was taken
//	lock_wait_seconds                    histogram  waits for the writer lock, of the acquires that had to queue
//	lock_wait_max_seconds                gauge      the longest of those waits
//	lock_timeouts_total                  counter    waits that ended without the lock (busy timeout or context)
//	lock_hold_seconds                    histogram  times the writer lock was held
//	lock_hold_max_seconds                gauge      the longest of those holds
//	lock_held                            gauge      1 while a writer holds the writer lock
//	lock_held_seconds                    gauge      how long the current holder has held it (0 when free)
//	queue_depth                          gauge      writers waiting for the writer lock now
//	process_queue                        gauge      1 when writers also queue across processes
//	process_waits_total                  counter    times a writer found another process holding the cross-process lock
//	process_wait_seconds_total           counter    time spent waiting for other processes' writers
//	slow_holds_total                     counter    slow-hold warnings logged
//	slow_waits_total                     counter    slow-wait warnings logged
//	busy_errors_total{code}              counter    SQLITE_BUSY and SQLITE_LOCKED errors, by extended result code name
//	readers_open                         gauge      read-only connections open
//	readers_idle                         gauge      read-only connections open and not in use
//	reader_reruns_total                  counter    statements a reader refused as writes that ran again on the writer
//	read_anchors_total                   counter    times the process took the file's read anchor
//	read_anchor_held                     gauge      1 while it holds it
//	wal_size_bytes                       gauge      size of the -wal file
//	checkpoints_total                    counter    checkpoints the driver ran (in the background, Checkpoint, on close)
//	checkpoint_seconds_total             counter    time those checkpoints took
//	checkpoint_max_seconds               gauge      the longest of them
//	busy_checkpoints_total               counter    checkpoints that could not finish
//	checkpoint_delayed_writers_total     counter    writers that waited while a checkpoint held the writer queue
//	read_hold_backs_total                counter    times a checkpoint held new reads back to reset the -wal
//	read_hold_back_max_seconds           gauge      the longest of those holds
//	held_reads_total                     counter    reads that waited for such a hold
//	held_read_max_seconds                gauge      the longest of those waits
//	last_checkpoint_timestamp_seconds    gauge      when the driver last ran a checkpoint (Unix time)
//	last_checkpoint_busy                 gauge      1 if that checkpoint could not finish
//	last_checkpoint_log_frames           gauge      frames in the WAL at that checkpoint
//	last_checkpoint_checkpointed_frames  gauge      frames that checkpoint copied into the database
//	cluster_leader{leader}               gauge      1, labelled with the dqlite node that led at the last connection
//	cluster_leader_changes_total         counter    connections made to another leader than before (failovers)
//	cluster_connections_lost_total       counter    requests that failed with their connection to the leader
//	cluster_interrupted_commits_total{outcome} counter  interrupted COMMITs: committed, not_committed, unknown
//	cluster_writes_rerun_total           counter    autocommit writes run again after a failover
//	cluster_begin_retries_total          counter    BEGIN IMMEDIATE retried for another client's write lock
//
// The last_checkpoint series appear once the driver has run a checkpoint on
// the file; the cluster series are for dqlite:// databases only. The histograms have the driver's buckets: one per decade from
// 10 µs to 10 s.
package prometheus

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sqlitesafe/sqlitesafe"
)

// Collector is a prometheus.Collector of the metrics of every database file a
// sqlite-safe handle of the process has open. Register one per registry; it
// keeps no state of its own, so any number may exist.
type Collector struct {
	writes, groupCommits, groupedWrites            *prometheus.Desc
	acquires, waitSeconds, waitMax, timeouts       *prometheus.Desc
	holdSeconds, holdMax, held, heldSeconds, depth *prometheus.Desc
	procQueue, procWaits, procWaitSeconds          *prometheus.Desc
	slowHolds, slowWaits, busy                     *prometheus.Desc
	readersOpen, readersIdle, reruns, walSize      *prometheus.Desc
	checkpoints, checkpointSeconds, checkpointMax  *prometheus.Desc
	busyCheckpoints, delayedWriters                *prometheus.Desc
	readHoldBacks, readHoldBackMax                 *prometheus.Desc
	heldReads, heldReadMax                         *prometheus.Desc
	readAnchors, readAnchorHeld, readYields        *prometheus.Desc
	cpAt, cpBusy, cpLog, cpCheckpointed            *prometheus.Desc
	leader, leaderChanges, connsLost               *prometheus.Desc
	resolved, writesRerun, beginRetries            *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector; register it with a prometheus.Registerer.
func NewCollector() *Collector {
	file := []string{"file"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sqlitesafe_"+name, help, append(file, labels...), nil)
	}
	return &Collector{
		writes:            d("writes_total", "Write statements and write transactions run under the writer queue."),
		groupCommits:      d("group_commits_total", "Transactions that committed more than one autocommit write together."),
		groupedWrites:     d("grouped_writes_total", "Autocommit writes committed in group commits."),
		acquires:          d("lock_acquires_total", "Times the writer lock was taken."),
		waitSeconds:       d("lock_wait_seconds", "Waits for the writer lock, of the acquires that had to queue."),
		waitMax:           d("lock_wait_max_seconds", "The longest wait for the writer lock since the file was opened."),
		timeouts:          d("lock_timeouts_total", "Waits for the writer lock that ended without it: the busy timeout passed or the caller's context ended."),
		holdSeconds:       d("lock_hold_seconds", "Times the writer lock was held."),
		holdMax:           d("lock_hold_max_seconds", "The longest hold of the writer lock since the file was opened."),
		held:              d("lock_held", "1 while a writer holds the writer lock, else 0."),
		heldSeconds:       d("lock_held_seconds", "How long the current holder has held the writer lock; 0 when it is free."),
		depth:             d("queue_depth", "Writers waiting for the writer lock now."),
		procQueue:         d("process_queue", "1 when writers also queue across processes on the lock file, else 0."),
		procWaits:         d("process_waits_total", "Times a writer of this process found another process holding the cross-process lock."),
		procWaitSeconds:   d("process_wait_seconds_total", "Time writers of this process waited for writers of other processes."),
		slowHolds:         d("slow_holds_total", "Warnings logged for writers holding the lock longer than _slow_hold."),
		slowWaits:         d("slow_waits_total", "Warnings logged for writers waiting longer than _slow_wait."),
		busy:              d("busy_errors_total", "SQLITE_BUSY and SQLITE_LOCKED errors SQLite returned to the process's connections, by extended result code.", "code"),
		readersOpen:       d("readers_open", "Read-only connections open."),
		readersIdle:       d("readers_idle", "Read-only connections open and not in use."),
		reruns:            d("reader_reruns_total", "Statements a reader refused as writes and that ran again on the writer."),
		walSize:           d("wal_size_bytes", "Size of the -wal file; one that keeps growing means checkpoints cannot finish."),
		checkpoints:       d("checkpoints_total", "Checkpoints the driver ran: in the background, with Checkpoint, or on close."),
		checkpointSeconds: d("checkpoint_seconds_total", "Time the driver's checkpoints took."),
		checkpointMax:     d("checkpoint_max_seconds", "The longest checkpoint the driver ran since the file was opened."),
		busyCheckpoints:   d("busy_checkpoints_total", "Checkpoints that could not finish: a reader still needed frames of the WAL."),
		delayedWriters:    d("checkpoint_delayed_writers_total", "Writers that waited for the writer queue while a checkpoint held it."),
		readHoldBacks:     d("read_hold_backs_total", "Times a checkpoint held new reads of the process back to reset the -wal."),
		readHoldBackMax:   d("read_hold_back_max_seconds", "The longest time a checkpoint held new reads back."),
		heldReads:         d("held_reads_total", "Reads that waited while a checkpoint held reads back."),
		readAnchors:       d("read_anchors_total", "Times the process took the file's read anchor, which lets its readers take SQLite's read locks without a system call."),
		readAnchorHeld:    d("read_anchor_held", "1 while the process holds the file's read anchor."),
		readYields:        d("read_yields_total", "Reads that began by yielding the processor to a write that had held the writer lock for 2 ms."),
		heldReadMax:       d("held_read_max_seconds", "The longest wait of a read held back by a checkpoint."),
		cpAt:              d("last_checkpoint_timestamp_seconds", "When the driver last ran a checkpoint on the file, in seconds since the Unix epoch."),
		cpBusy:            d("last_checkpoint_busy", "1 if the last checkpoint could not finish (a reader still needed frames), else 0."),
		cpLog:             d("last_checkpoint_log_frames", "Frames in the WAL at the last checkpoint."),
		cpCheckpointed:    d("last_checkpoint_checkpointed_frames", "Frames the last checkpoint copied into the database."),
		leader:            d("cluster_leader", "1, labelled with the address of the dqlite node that led the database at the last connection (dqlite:// only).", "leader"),
		leaderChanges:     d("cluster_leader_changes_total", "Connections made to another leader than the one before: failovers seen (dqlite:// only)."),
		connsLost:         d("cluster_connections_lost_total", "Requests that failed with their connection to the leader (dqlite:// only)."),
		resolved:          d("cluster_interrupted_commits_total", "COMMITs a lost connection interrupted, by what the new leader showed: committed, not_committed, unknown (dqlite:// only).", "outcome"),
		writesRerun:       d("cluster_writes_rerun_total", "Autocommit writes run again after the new leader showed them not committed (dqlite:// only)."),
		beginRetries:      d("cluster_begin_retries_total", "BEGIN IMMEDIATE retried because another client of the cluster held the write lock (dqlite:// only)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.writes, c.groupCommits, c.groupedWrites,
		c.acquires, c.waitSeconds, c.waitMax, c.timeouts,
		c.holdSeconds, c.holdMax, c.held, c.heldSeconds, c.depth,
		c.procQueue, c.procWaits, c.procWaitSeconds,
		c.slowHolds, c.slowWaits, c.busy,
		c.readersOpen, c.readersIdle, c.reruns, c.walSize,
		c.checkpoints, c.checkpointSeconds, c.checkpointMax,
		c.busyCheckpoints, c.delayedWriters,
		c.readHoldBacks, c.readHoldBackMax, c.heldReads, c.heldReadMax,
		c.readAnchors, c.readAnchorHeld, c.readYields,
		c.cpAt, c.cpBusy, c.cpLog, c.cpCheckpointed,
		c.leader, c.leaderChanges, c.connsLost, c.resolved, c.writesRerun, c.beginRetries,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads sqlitesafe.AllStats,
// which waits for no lock a writer holds.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range sqlitesafe.AllStats() {
		c.collect(ch, st)
	}
}

func (c *Collector) collect(ch chan<- prometheus.Metric, st sqlitesafe.Stats) {
	f := st.Path
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{f}, labels...)...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, f)
	}
	counter(c.writes, float64(st.Writes))
	counter(c.groupCommits, float64(st.GroupCommits))
	counter(c.groupedWrites, float64(st.GroupedWrites))
	counter(c.acquires, float64(st.Acquires))
	ch <- histogram(c.waitSeconds, st.WaitHistogram, st.WaitTotal, f)
	gauge(c.waitMax, st.WaitMax.Seconds())
	counter(c.timeouts, float64(st.LockTimeouts))
	ch <- histogram(c.holdSeconds, st.HoldHistogram, st.HoldTotal, f)
	gauge(c.holdMax, st.HoldMax.Seconds())
	gauge(c.held, boolValue(st.Held))
	gauge(c.heldSeconds, st.HeldFor.Seconds())
	gauge(c.depth, float64(st.QueueDepth))
	gauge(c.procQueue, boolValue(st.ProcessQueue))
	counter(c.procWaits, float64(st.ProcessWaits))
	counter(c.procWaitSeconds, st.ProcessWaitTotal.Seconds())
	counter(c.slowHolds, float64(st.SlowHolds))
	counter(c.slowWaits, float64(st.SlowWaits))
	codes := make([]string, 0, len(st.Busy))
	for code := range st.Busy {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	for _, code := range codes {
		counter(c.busy, float64(st.Busy[code]), code)
	}
	gauge(c.readersOpen, float64(st.ReadersOpen))
	gauge(c.readersIdle, float64(st.ReadersIdle))
	counter(c.reruns, float64(st.Reruns))
	gauge(c.walSize, float64(st.WALSize))
	counter(c.checkpoints, float64(st.Checkpoints))
	counter(c.checkpointSeconds, st.CheckpointTotal.Seconds())
	gauge(c.checkpointMax, st.CheckpointMax.Seconds())
	counter(c.busyCheckpoints, float64(st.BusyCheckpoints))
	counter(c.delayedWriters, float64(st.CheckpointDelayedWriters))
	counter(c.readHoldBacks, float64(st.ReadHoldBacks))
	gauge(c.readHoldBackMax, st.ReadHoldBackMax.Seconds())
	counter(c.heldReads, float64(st.HeldReads))
	gauge(c.heldReadMax, st.HeldReadMax.Seconds())
	counter(c.readAnchors, float64(st.ReadAnchors))
	gauge(c.readAnchorHeld, boolValue(st.ReadAnchorHeld))
	counter(c.readYields, float64(st.ReadYields))
	if !st.LastCheckpointAt.IsZero() {
		gauge(c.cpAt, float64(st.LastCheckpointAt.UnixNano())/1e9)
		gauge(c.cpBusy, boolValue(st.LastCheckpoint.Busy))
		gauge(c.cpLog, float64(st.LastCheckpoint.Log))
		gauge(c.cpCheckpointed, float64(st.LastCheckpoint.Checkpointed))
	}
	if cs := st.Cluster; cs != nil {
		if cs.Leader != "" {
			ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, 1, f, cs.Leader)
		}
		counter(c.leaderChanges, float64(cs.LeaderChanges))
		counter(c.connsLost, float64(cs.ConnectionsLost))
		counter(c.resolved, float64(cs.CommitsResolved), "committed")
		counter(c.resolved, float64(cs.NotCommitted), "not_committed")
		counter(c.resolved, float64(cs.OutcomeUnknown), "unknown")
		counter(c.writesRerun, float64(cs.WritesRerun))
		counter(c.beginRetries, float64(cs.BeginRetries))
	}
}

// histogram turns the driver's buckets (a count per bucket, the last one
// unbounded) into a Prometheus histogram (cumulative counts by upper bound
// in seconds). Its count is the sum of the buckets, so that the +Inf bucket
// is never below a finite one even when a scrape meets a duration being
// recorded.
func histogram(d *prometheus.Desc, buckets []sqlitesafe.Bucket, sum time.Duration, file string) prometheus.Metric {
	cum := make(map[float64]uint64, len(buckets))
	var n uint64
	for _, b := range buckets {
		n += uint64(b.Count)
		if b.UpTo > 0 {
			cum[b.UpTo.Seconds()] = n
		}
	}
	return prometheus.MustNewConstHistogram(d, n, sum.Seconds(), cum, file)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

//go:build linux

package dqlite

// Failover: SIGKILL of the leader under a load of autocommit inserts and increments, three times
// (restarting and rejoining the killed node in between), run at once through plain go-dqlite
// (db.ExecContext, as an application writes) and through the marker prototype (marker.writeTx,
// each write in a BEGIN IMMEDIATE transaction with its marker, run again only when the marker
// says it did not commit). Each workload has its own database on the same cluster, so the two see
// the same kills.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dqdriver "github.com/canonical/go-dqlite/driver"

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
)

type opKind int

const (
	opInsert opKind = iota // INSERT INTO t (k) VALUES (key)
	opIncr                 // UPDATE c SET v = v + 1, call = key WHERE id = 1
)

func (k opKind) String() string {
	if k == opInsert {
		return "insert"
	}
	return "increment"
}

// op is one write as the application saw it.
type op struct {
	kind       opKind
	key        int
	start, end time.Time
	err        error
	reruns     int // marker workload: runs after the first that the marker said did not commit
	applied    int // how many times it is in the database, once checked
}

// loadSchema: t holds the inserts; each application of an increment to c logs its call number
// in applied (by a trigger, in the same transaction), so that a double application shows.
var loadSchema = []string{
	"CREATE TABLE t (k INTEGER PRIMARY KEY)",
	"CREATE TABLE c (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, call INTEGER)",
	"INSERT INTO c (id, v) VALUES (1, 0)",
	"CREATE TABLE applied (call INTEGER NOT NULL)",
	"CREATE TRIGGER c_applied AFTER UPDATE ON c BEGIN INSERT INTO applied (call) VALUES (NEW.call); END",
}

const (
	insertStmt = "INSERT INTO t (k) VALUES (?)"
	incrStmt   = "UPDATE c SET v = v + 1, call = ? WHERE id = 1"
)

// workload runs writes from two goroutines (one inserting, one incrementing) that take turns
// behind a mutex: plain go-dqlite fails concurrent writers with "database is locked" at once, so
// an application must serialise them; sqlite-safe's writer queue does that too.
type workload struct {
	name string
	db   *sql.DB
	m    *marker // nil: plain go-dqlite

	turn sync.Mutex // one write at a time

	mu  sync.Mutex
	ops []op
}

func (w *workload) record(o op) {
	w.mu.Lock()
	w.ops = append(w.ops, o)
	w.mu.Unlock()
}

// firstSuccessAfter is the end of the first write that succeeded and ended after at.
func (w *workload) firstSuccessAfter(at time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var first time.Time
	for _, o := range w.ops {
		if o.err == nil && o.end.After(at) && (first.IsZero() || o.end.Before(first)) {
			first = o.end
		}
	}
	return first, !first.IsZero()
}

// run writes until stop is closed.
func (w *workload) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	for _, kind := range []opKind{opInsert, opIncr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := 1; ; key++ {
				select {
				case <-stop:
					return
				default:
				}
				w.turn.Lock()
				w.record(w.write(kind, key))
				w.turn.Unlock()
			}
		}()
	}
}

// write makes one write and says how it went.
func (w *workload) write(kind opKind, key int) op {
	stmt := insertStmt
	if kind == opIncr {
		stmt = incrStmt
	}
	o := op{kind: kind, key: key, start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if w.m == nil {
		_, o.err = w.db.ExecContext(ctx, stmt, key)
		o.end = time.Now()
		return o
	}
	connect := func(ctx context.Context) (*sql.Conn, error) { return w.db.Conn(ctx) }
	for {
		_, err := w.m.writeTx(ctx, connect, func(ctx context.Context, tx execer) error {
			_, err := tx.ExecContext(ctx, stmt, key)
			return err
		})
		if errors.Is(err, errNotCommitted) && ctx.Err() == nil {
			o.reruns++
			continue
		}
		o.err, o.end = err, time.Now()
		return o
	}
}

// inFlight are the writes that had started and not ended at at, each with its applications
// counted in its applied field.
func (w *workload) inFlight(at time.Time, vd verdict) []op {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ops []op
	for _, o := range w.ops {
		if o.start.Before(at) && o.end.After(at) {
			o.applied = vd.applied[o.kind][o.key]
			ops = append(ops, o)
		}
	}
	return ops
}

// verdict compares what the workload saw with the database.
type verdict struct {
	attempts, failed                  int
	lost, failedButCommitted, doubled []op
	reruns                            int
	errs                              map[string]int
	applied                           map[opKind]map[int]int // kind, key: times in the database
}

func (w *workload) check(t *testing.T) verdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	present := map[int]bool{}
	applied := map[int]int{}
	var v, appliedRows int
	for _, q := range []struct {
		sql  string
		scan func(*sql.Rows) error
	}{
		{"SELECT k FROM t", func(r *sql.Rows) error {
			var k int
			err := r.Scan(&k)
			present[k] = true
			return err
		}},
		{"SELECT call FROM applied", func(r *sql.Rows) error {
			var k int
			err := r.Scan(&k)
			applied[k]++
			appliedRows++
			return err
		}},
		{"SELECT v FROM c WHERE id = 1", func(r *sql.Rows) error { return r.Scan(&v) }},
	} {
		rows, err := w.db.QueryContext(ctx, q.sql)
		if err != nil {
			t.Fatalf("%s: %s: %v", w.name, q.sql, err)
		}
		for rows.Next() {
			if err := q.scan(rows); err != nil {
				t.Fatal(err)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if v != appliedRows {
		t.Errorf("%s: c.v = %d but %d applications logged", w.name, v, appliedRows)
	}
	vd := verdict{errs: map[string]int{}, applied: map[opKind]map[int]int{opInsert: {}, opIncr: applied}}
	for k := range present {
		vd.applied[opInsert][k] = 1
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.ops {
		vd.attempts++
		vd.reruns += o.reruns
		n := vd.applied[o.kind][o.key]
		o.applied = n
		if o.err != nil {
			vd.failed++
			vd.errs[fmt.Sprintf("%s: %v", o.kind, o.err)]++
			if n > 0 {
				vd.failedButCommitted = append(vd.failedButCommitted, o)
			}
		} else if n == 0 {
			vd.lost = append(vd.lost, o)
		}
		if n > 1 {
			vd.doubled = append(vd.doubled, o)
		}
	}
	return vd
}

func describe(ops []op) string {
	var parts []string
	for _, o := range ops {
		parts = append(parts, fmt.Sprintf("%s %d (took %v, reruns %d, err %v, in the database %d times)",
			o.kind, o.key, o.end.Sub(o.start).Round(time.Millisecond), o.reruns, o.err, o.applied))
	}
	return strings.Join(parts, "; ")
}

// failoverRounds is how many times TestFailover kills the leader; DQLITE_FAILOVER_ROUNDS
// overrides it for longer measurements.
func failoverRounds(t *testing.T) int {
	if s := os.Getenv("DQLITE_FAILOVER_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("DQLITE_FAILOVER_ROUNDS=%q: want a positive integer", s)
		}
		return n
	}
	return 3
}

// probeDeadline makes one write with a 1 s deadline right after a kill, on a handle whose
// connection went to the killed leader: go-dqlite must give up when the context ends.
func probeDeadline(t *testing.T, db *sql.DB, round int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := db.ExecContext(ctx, "INSERT INTO t VALUES (?)", round)
	took := time.Since(start)
	t.Logf("round %d: a write with a 1 s deadline right after the kill: %v after %v (ErrBadConn: %v, DeadlineExceeded: %v, ErrNoAvailableLeader: %v)",
		round, err, took.Round(time.Millisecond), errors.Is(err, driver.ErrBadConn), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, dqdriver.ErrNoAvailableLeader))
	if err == nil {
		return // the election was quicker than the write
	}
	if took > 3*time.Second {
		t.Errorf("round %d: the write with a 1 s deadline returned after %v", round, took)
	}
}

// waitElection polls the nodes other than killed, every 10 ms, until one of them says a node
// other than killed leads, and returns when it first did.
func waitElection(t *testing.T, c *cluster.Cluster, killed *cluster.Node) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.Nodes {
			if n == killed || !n.Running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			l, err := c.AskLeader(ctx, n)
			cancel()
			if err == nil && l != "" && l != killed.DB {
				return time.Now()
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no new leader within 30 s of killing %s", killed.DB)
	return time.Time{}
}

func TestFailover(t *testing.T) {
	rounds := failoverRounds(t)
	watchdog(t, time.Duration(rounds)*40*time.Second+30*time.Second)
	c := cluster.Start(t, 3)
	m, err := newMarker()
	if err != nil {
		t.Fatal(err)
	}
	loads := []*workload{
		{name: "plain go-dqlite", db: c.OpenPlain(t, "plain.db")},
		{name: "marker prototype", db: c.OpenPlain(t, "marker.db"), m: m},
		// The client's reconnect backoff (go-dqlite: factor 100 ms, cap 1 s) is part of the gap.
		{name: "plain, backoff cap 50ms", db: c.OpenPlain(t, "backoff.db",
			dqdriver.WithConnectionBackoffFactor(10*time.Millisecond),
			dqdriver.WithConnectionBackoffCap(50*time.Millisecond))},
	}
	probe := c.OpenPlain(t, "probe.db")
	mustExec(t, probe, "CREATE TABLE t (v INTEGER)")
	for _, w := range loads {
		for _, s := range loadSchema {
			mustExec(t, w.db, s)
		}
		if w.m != nil {
			if err := ensureMarkerTable(context.Background(), w.db); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range loads {
		w.run(stop, &wg)
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()

	gaps := map[string][]time.Duration{}
	var kills []time.Time
	for round := 1; round <= rounds; round++ {
		time.Sleep(700 * time.Millisecond)
		leader := c.MustLeader(t)
		killAt := time.Now()
		c.Kill(t, leader)
		kills = append(kills, killAt)
		probeDeadline(t, probe, round)
		elected := waitElection(t, c, leader)
		gaps["election"] = append(gaps["election"], elected.Sub(killAt))
		for _, w := range loads {
			deadline := killAt.Add(35 * time.Second)
			for {
				if at, ok := w.firstSuccessAfter(killAt); ok {
					gaps[w.name] = append(gaps[w.name], at.Sub(killAt))
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("round %d: %s: no write succeeded within %v of the kill", round, w.name, deadline.Sub(killAt))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		msg := fmt.Sprintf("round %d: killed leader %s (node %d); new leader elected after %v; writes resumed after:",
			round, leader.DB, leader.Index+1, gaps["election"][round-1].Round(time.Millisecond))
		for _, w := range loads {
			msg += fmt.Sprintf(" %s %v;", w.name, gaps[w.name][round-1].Round(time.Millisecond))
		}
		t.Log(msg)
		time.Sleep(300 * time.Millisecond)
		c.Restart(t, leader)
	}
	stopLoad()

	for _, w := range loads {
		vd := w.check(t)
		for i, at := range kills {
			t.Logf("%s: round %d: in flight at the kill: %s", w.name, i+1, describe(w.inFlight(at, vd)))
		}
		if w.m != nil {
			t.Logf("%s: interrupted COMMITs resolved as committed %d, as not committed %d; broken before COMMIT %d",
				w.name, w.m.resolvedCommitted.Load(), w.m.resolvedNotCommitted.Load(), w.m.brokenBeforeCommit.Load())
		}
		g := append([]time.Duration(nil), gaps[w.name]...)
		sort.Slice(g, func(i, j int) bool { return g[i] < g[j] })
		t.Logf("%s: %d writes, %d failed, %d reruns after \"not committed\"; gaps %v",
			w.name, vd.attempts, vd.failed, vd.reruns, g)
		t.Logf("%s: acknowledged but lost: %d; failed but committed: %d [%s]; applied twice: %d [%s]",
			w.name, len(vd.lost), len(vd.failedButCommitted), describe(vd.failedButCommitted),
			len(vd.doubled), describe(vd.doubled))
		for e, n := range vd.errs {
			t.Logf("%s: error x%d: %s", w.name, n, e)
		}
		if len(vd.lost) > 0 {
			t.Errorf("%s: writes reported successful but missing: %s", w.name, describe(vd.lost))
		}
		if w.m != nil {
			if vd.failed > 0 || len(vd.failedButCommitted) > 0 || len(vd.doubled) > 0 {
				t.Errorf("%s: want every write committed exactly once, got %d failed, %d failed but committed, %d applied twice",
					w.name, vd.failed, len(vd.failedButCommitted), len(vd.doubled))
			}
		}
	}
}

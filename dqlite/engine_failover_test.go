//go:build linux

package dqlite

// sqlite-safe's failover contract on a real cluster: SIGKILL of the leader under a mixed load,
// twice (restarting and rejoining the killed node in between), and two processes writing one
// database at once.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
)

// mixedSchema: ins holds the unique inserts; every application of an increment to c logs its
// call in applied (a trigger, in the same transaction), so that a double application shows; each
// transfer logs its id in xfer inside its transaction, so that a transfer that committed shows.
var mixedSchema = []string{
	"CREATE TABLE ins (k TEXT PRIMARY KEY)",
	"CREATE TABLE c (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, call TEXT)",
	"INSERT INTO c (id, v) VALUES (1, 0)",
	"CREATE TABLE applied (call TEXT NOT NULL)",
	"CREATE TRIGGER c_applied AFTER UPDATE ON c BEGIN INSERT INTO applied (call) VALUES (NEW.call); END",
	"CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL)",
	"CREATE TABLE xfer (id TEXT PRIMARY KEY)",
}

// mixedOp is one call as the application saw it.
type mixedOp struct {
	kind       int // 0 transfer by BeginTx, 1 transfer by typed BEGIN/COMMIT, 2 insert, 3 increment, 4 read
	key        string
	start, end time.Time
	err        error
}

// mixedLoad runs goroutines of the five kinds (goroutine g does kind g%5) until stop.
type mixedLoad struct {
	db  *sql.DB
	mu  sync.Mutex
	ops []mixedOp
}

func (l *mixedLoad) run(goroutines int, stop <-chan struct{}, wg *sync.WaitGroup) {
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				o := mixedOp{kind: g % 5, key: fmt.Sprintf("%d-%d", g, i), start: time.Now()}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				a, b := (g+i)%8, (g+i+1)%8
				switch o.kind {
				case 0:
					o.err = loggedTransfer(ctx, l.db, o.key, a, b, false)
				case 1:
					o.err = loggedTransfer(ctx, l.db, o.key, a, b, true)
				case 2:
					_, o.err = l.db.ExecContext(ctx, "INSERT INTO ins VALUES (?)", o.key)
				case 3:
					_, o.err = l.db.ExecContext(ctx, "UPDATE c SET v = v + 1, call = ? WHERE id = 1", o.key)
				case 4:
					var n int
					o.err = l.db.QueryRowContext(ctx, "SELECT count(*) FROM ins").Scan(&n)
				}
				cancel()
				o.end = time.Now()
				l.mu.Lock()
				l.ops = append(l.ops, o)
				l.mu.Unlock()
			}
		}()
	}
}

// loggedTransfer moves 1 from a to b and logs key in xfer, in one write transaction: by BeginTx,
// or by BEGIN and COMMIT typed on a pinned connection.
func loggedTransfer(ctx context.Context, db *sql.DB, key string, a, b int, typed bool) error {
	type execQuerier interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}
	var (
		q      execQuerier
		commit func() error
		abort  func()
	)
	if typed {
		sc, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer sc.Close()
		if _, err := sc.ExecContext(ctx, "BEGIN"); err != nil {
			return err
		}
		q = sc
		commit = func() error { _, err := sc.ExecContext(ctx, "COMMIT"); return err }
		abort = func() { sc.ExecContext(ctx, "ROLLBACK") }
	} else {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		q, commit, abort = tx, tx.Commit, func() { tx.Rollback() }
	}
	var bal int
	err := q.QueryRowContext(ctx, "SELECT bal FROM acct WHERE id = ?", a).Scan(&bal)
	if err == nil {
		_, err = q.ExecContext(ctx, "UPDATE acct SET bal = ? WHERE id = ?", bal-1, a)
	}
	if err == nil {
		_, err = q.ExecContext(ctx, "UPDATE acct SET bal = bal + 1 WHERE id = ?", b)
	}
	if err == nil {
		_, err = q.ExecContext(ctx, "INSERT INTO xfer VALUES (?)", key)
	}
	if err != nil {
		abort()
		return err
	}
	return commit()
}

// firstSuccessAfter is when the first call of kind that succeeded and ended after at ended.
func (l *mixedLoad) firstSuccessAfter(kind int, at time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, o := range l.ops {
		if o.kind == kind && o.err == nil && o.end.After(at) && (first.IsZero() || o.end.Before(first)) {
			first = o.end
		}
	}
	return first, !first.IsZero()
}

// set reads the first column of query's rows, counting each value.
func set(t *testing.T, db *sql.DB, query string) map[string]int {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		m[k]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// check compares what the application saw with the database: every call that succeeded is there
// once, every call that failed is not there, and every error is one of the failover contract's.
func (l *mixedLoad) check(t *testing.T) (ok, failed int, errs map[string]int) {
	t.Helper()
	present := [5]map[string]int{set(t, l.db, "SELECT id FROM xfer"), nil, set(t, l.db, "SELECT k FROM ins"), set(t, l.db, "SELECT call FROM applied"), nil}
	present[1] = present[0]
	var v int
	if err := l.db.QueryRow("SELECT v FROM c WHERE id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if n := len(present[3]); v != sumCounts(present[3]) {
		t.Errorf("c.v = %d but %d applications logged (%d calls)", v, sumCounts(present[3]), n)
	}
	var sum int
	if err := l.db.QueryRow("SELECT sum(bal) FROM acct").Scan(&sum); err != nil || sum != 8000 {
		t.Errorf("balances sum to %d (%v), want 8000", sum, err)
	}
	errs = map[string]int{}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.ops {
		n := present[o.kind][o.key]
		switch {
		case o.kind == 4:
		case o.err == nil && n != 1:
			t.Errorf("kind %d call %s succeeded and is in the database %d times", o.kind, o.key, n)
		case o.err != nil && n != 0:
			t.Errorf("kind %d call %s failed (%v) and is in the database %d times", o.kind, o.key, o.err, n)
		}
		if o.err == nil {
			ok++
			continue
		}
		failed++
		errs[fmt.Sprintf("kind %d: %v", o.kind, o.err)]++
		if strings.Contains(o.err.Error(), "database is locked") {
			t.Errorf("kind %d call %s: %v", o.kind, o.key, o.err)
		}
		if o.kind >= 2 {
			t.Errorf("autocommit call or read %s (kind %d) failed: %v", o.key, o.kind, o.err)
		} else if !errors.Is(o.err, sqlitesafe.ErrNotCommitted) {
			t.Errorf("transaction %s failed with %v, not ErrNotCommitted", o.key, o.err)
		}
	}
	return ok, failed, errs
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

func TestEngineFailover(t *testing.T) {
	watchdog(t, 3*time.Minute)
	c := cluster.Start(t, 3)
	// Every queued writer waits out each failover: one warning each would drown the log. The
	// holder's warning says what it waits for.
	cfg, err := sqlitesafe.ParseDSN(dsn(c, "failover.db", "_slow_wait=off"))
	if err != nil {
		t.Fatal(err)
	}
	var logs dbtest.SyncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	connector, err := sqlitesafe.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(64)
	for _, s := range mixedSchema {
		mustExec(t, db, s)
	}
	for i := range 8 {
		mustExec(t, db, "INSERT INTO acct VALUES (?, 1000)", i)
	}
	l := &mixedLoad{db: db}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	l.run(35, stop, &wg)
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()

	for round := 1; round <= 2; round++ {
		time.Sleep(time.Second)
		leader := c.MustLeader(t)
		killAt := time.Now()
		c.Kill(t, leader)
		var gaps []string
		for kind := range 5 {
			for {
				if at, ok := l.firstSuccessAfter(kind, killAt); ok {
					gap := at.Sub(killAt)
					gaps = append(gaps, fmt.Sprintf("kind %d %v", kind, gap.Round(time.Millisecond)))
					if gap > sqlitesafe.DefaultFailoverTimeout {
						t.Errorf("round %d: kind %d resumed %v after the kill, past the failover timeout", round, kind, gap)
					}
					break
				}
				if time.Since(killAt) > 40*time.Second {
					t.Fatalf("round %d: kind %d: no call succeeded within 40 s of the kill", round, kind)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		t.Logf("round %d: killed the leader %s; writes resumed after: %s", round, leader.DB, strings.Join(gaps, ", "))
		time.Sleep(300 * time.Millisecond)
		c.Restart(t, leader)
	}
	time.Sleep(500 * time.Millisecond)
	stopLoad()
	ok, failed, errs := l.check(t)
	st, err := sqlitesafe.GetStats(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls succeeded, %d failed %v; cluster stats %+v", ok, failed, errs, *st.Cluster)
	if st.Cluster.LeaderChanges < 2 {
		t.Errorf("Stats: %d leader changes, want at least 2", st.Cluster.LeaderChanges)
	}
	if !strings.Contains(logs.String(), "the writer is waiting for a new leader") {
		t.Errorf("no warning says the writer waits for a new leader; the log:\n%s", logs.String())
	}
	found := false
	for _, a := range sqlitesafe.AllStats() { // what the Prometheus collector and expvar read
		if a.Cluster != nil && strings.HasSuffix(a.Path, "/failover.db") {
			found = true
			if a.Cluster.LeaderChanges != st.Cluster.LeaderChanges || a.Cluster.Leader == "" {
				t.Errorf("AllStats: cluster %+v, GetStats: %+v", *a.Cluster, *st.Cluster)
			}
		}
	}
	if !found {
		t.Error("AllStats has no cluster stats for failover.db")
	}
}

// TestEngineQueuedWritesAfterLeaderLoss: writes queued on handles whose writer connections are to
// a leader that has just been killed, each finding the connection gone with its first request, run
// on the new leader: a group commit (its BEGIN IMMEDIATE), a BeginTx and a typed BEGIN; every one
// succeeds, once. Handles on one database share its writer queue, so a transaction on one holds
// the others' writes, idle writers and all, in the queue while the leader is killed.
func TestEngineQueuedWritesAfterLeaderLoss(t *testing.T) {
	watchdog(t, 2*time.Minute)
	c := cluster.Start(t, 3)
	a := openSafe(t, c, "queued.db")
	mustExec(t, a, "CREATE TABLE t (k TEXT PRIMARY KEY)")
	const grouped = 4
	type write struct {
		name string
		db   *sql.DB
		run  func(db *sql.DB, key string) error
		n    int
	}
	ctx := context.Background()
	writes := []*write{
		{name: "group commit", n: grouped, run: func(db *sql.DB, key string) error {
			_, err := db.Exec("INSERT INTO t VALUES (?)", key)
			return err
		}},
		{name: "BeginTx", n: 1, run: func(db *sql.DB, key string) error {
			tx, err := db.Begin()
			if err != nil {
				return err
			}
			if _, err := tx.Exec("INSERT INTO t VALUES (?)", key); err != nil {
				tx.Rollback()
				return err
			}
			return tx.Commit()
		}},
		{name: "typed BEGIN", n: 1, run: func(db *sql.DB, key string) error {
			sc, err := db.Conn(ctx)
			if err != nil {
				return err
			}
			defer sc.Close()
			for _, q := range []string{"BEGIN", "INSERT INTO t VALUES ('" + key + "')", "COMMIT"} {
				if _, err := sc.ExecContext(ctx, q); err != nil {
					sc.ExecContext(ctx, "ROLLBACK")
					return err
				}
			}
			return nil
		}},
	}
	want := 0
	for _, w := range writes {
		w.db = openSafe(t, c, "queued.db")
		if err := w.run(w.db, w.name+" warm-up"); err != nil { // its writer is now connected to the leader
			t.Fatalf("%s: %v", w.name, err)
		}
		want++
	}
	tx, err := a.Begin()
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		w   *write
		err error
	}
	results := make(chan result, grouped+2)
	queued := 0
	for _, w := range writes {
		for i := range w.n {
			queued++
			want++
			go func() { results <- result{w, w.run(w.db, fmt.Sprintf("%s %d", w.name, i))} }()
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			st, err := sqlitesafe.GetStats(a)
			if err != nil {
				t.Fatal(err)
			}
			if st.QueueDepth == queued {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d writes queued behind the transaction, want %d", st.QueueDepth, queued)
			}
		}
	}
	c.Kill(t, c.MustLeader(t))
	_ = tx.Rollback() // its connection is gone: the error says so; the queue is released
	for range queued {
		if r := <-results; r.err != nil {
			t.Errorf("%s: %v", r.w.name, r.err)
		}
	}
	if got := count(t, a, "SELECT count(*) FROM t"); got != want {
		t.Errorf("%d rows, want %d", got, want)
	}
	st, err := sqlitesafe.GetStats(writes[0].db)
	if err != nil {
		t.Fatal(err)
	}
	if st.GroupCommits == 0 || st.Cluster.WritesRerun == 0 {
		t.Errorf("group commits %d, writes rerun %d: the writes were not run as a group commit rerun after the loss", st.GroupCommits, st.Cluster.WritesRerun)
	}
}

// TestEngineTwoProcesses: this process and a child, 8 goroutines of increments each, on one
// database: every one succeeds, the counter is exact.
func TestEngineTwoProcesses(t *testing.T) {
	if addrs := os.Getenv("SQLITESAFE_DQLITE_CHILD"); addrs != "" {
		childIncrements(t, addrs)
		return
	}
	watchdog(t, 2*time.Minute)
	c := cluster.Start(t, 3)
	db := openSafe(t, c, "procs.db")
	mustExec(t, db, "CREATE TABLE c (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
	mustExec(t, db, "INSERT INTO c VALUES (1, 0)")
	child := exec.Command(os.Args[0], "-test.run=^TestEngineTwoProcesses$", "-test.v")
	child.Env = append(os.Environ(), "SQLITESAFE_DQLITE_CHILD="+dsn(c, "procs.db"))
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	mine, errs := increments(db, 8, 2*time.Second)
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	theirs := 0
	for _, line := range strings.Split(out.String(), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "child increments: "); ok {
			theirs, _ = strconv.Atoi(s)
		}
	}
	if theirs == 0 {
		t.Fatalf("the child reported no increments:\n%s", out.String())
	}
	if errs > 0 {
		t.Errorf("%d increments failed here", errs)
	}
	if v := count(t, db, "SELECT v FROM c"); v != mine+theirs {
		t.Errorf("counter %d, want %d (here) + %d (child)", v, mine, theirs)
	}
	st, _ := sqlitesafe.GetStats(db)
	t.Logf("increments: %d here, %d in the child; BEGIN IMMEDIATE retried here %d times", mine, theirs, st.Cluster.BeginRetries)
}

// childIncrements is the child's side of TestEngineTwoProcesses.
func childIncrements(t *testing.T, dsn string) {
	db, err := sql.Open("sqlite-safe", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, errs := increments(db, 8, 2*time.Second)
	if errs > 0 {
		t.Fatalf("%d increments failed in the child", errs)
	}
	fmt.Printf("child increments: %d\n", n)
}

// increments runs goroutines of autocommit increments for d; it returns the successes and
// failures.
func increments(db *sql.DB, goroutines int, d time.Duration) (ok, failed int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				_, err := db.Exec("UPDATE c SET v = v + 1 WHERE id = 1")
				mu.Lock()
				if err != nil {
					failed++
					if failed == 1 {
						fmt.Println("first failure:", err)
					}
				} else {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok, failed
}

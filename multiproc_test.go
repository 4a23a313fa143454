package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/internal/sqlitesched"
)

// The child roles of the multi-process tests.
func init() {
	// rmw: read-modify-write transactions on the counter row.
	childRoles["rmw"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		work(spec, res, func(g, i int) error {
			return rmw(context.Background(), db, spec.Pause)
		})
		return nil
	}
	// longtx: write transactions of spec.Rows inserts each, held open for
	// spec.Pause in the middle.
	childRoles["longtx"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		work(spec, res, func(g, i int) error {
			tx, err := db.BeginTx(context.Background(), nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			for r := range spec.Rows {
				if r == spec.Rows/2 {
					time.Sleep(spec.Pause)
				}
				if _, err := tx.Exec("INSERT INTO t(src, g, i, r) VALUES (?, ?, ?, ?)", spec.Source, g, i, r); err != nil {
					return err
				}
			}
			return tx.Commit()
		})
		return nil
	}
	// inserts: autocommit inserts of one row each.
	childRoles["inserts"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		work(spec, res, func(g, i int) error {
			_, err := db.Exec("INSERT INTO t(src, g, i, r) VALUES (?, ?, ?, 0)", spec.Source, g, i)
			return err
		})
		return nil
	}
}

// processQueueDSN returns path with _process_queue=value, and skips the test
// while the driver does not know that key.
func processQueueDSN(t testing.TB, path, value string) string {
	t.Helper()
	dsn := path + "?_process_queue=" + value
	if _, err := sqlitesafe.ParseDSN(dsn); err != nil {
		t.Skipf("the driver has no _process_queue key yet: %v", err)
	}
	return dsn
}

// safeVariants are the sqlite-safe DSNs the multi-process tests run with:
// the default, and the cross-process writer queue on and off.
var safeVariants = []struct {
	name string
	dsn  func(t testing.TB, path string) string
}{
	{"default-dsn", func(t testing.TB, path string) string { return path }},
	{"process-queue=on", func(t testing.TB, path string) string { return processQueueDSN(t, path, "on") }},
	{"process-queue=off", func(t testing.TB, path string) string { return processQueueDSN(t, path, "off") }},
}

// sumResults adds up the children's results.
func sumResults(results []childResult) (committed, errs, busy, lockTimeouts int64) {
	for _, r := range results {
		committed += r.Committed
		errs += r.Errors
		busy += r.Busy
		lockTimeouts += r.LockTimeouts
	}
	return
}

// childErrors fails the test if any child met an error.
func childErrors(t *testing.T, results []childResult) {
	t.Helper()
	for i, r := range results {
		if r.Errors > 0 {
			t.Errorf("child %d: %d of %d operations failed (%d SQLITE_BUSY, %d lock timeouts), e.g. %q",
				i, r.Errors, r.Errors+r.Committed, r.Busy, r.LockTimeouts, r.Samples)
		}
	}
}

// gaps formats the longest time each child went without a commit.
func gaps(results []childResult) string {
	s := ""
	for i, r := range results {
		if i > 0 {
			s += " "
		}
		s += time.Duration(r.MaxGap).Round(time.Millisecond).String()
	}
	return s
}

const (
	mpProcs      = 4
	mpGoroutines = 4
)

// mpIterations is the number of transactions of each goroutine: enough for
// the processes to contend for a few seconds.
var mpIterations = 1000

func init() {
	if raceEnabled {
		mpIterations = 100
	}
}

// rmwAcrossProcesses runs mpProcs child processes of mpGoroutines goroutines
// doing mpIterations read-modify-write transactions each on a fresh
// database, and returns their results and the final counter.
func rmwAcrossProcesses(t *testing.T, driver string, dsn func(path string) string) ([]childResult, int64) {
	t.Helper()
	path := dbPath(t)
	db := open(t, driver, dsn(path))
	mustExec(t, db, counterSchema...)
	db.Close()
	specs := make([]childSpec, mpProcs)
	for i := range specs {
		specs[i] = childSpec{Role: "rmw", Driver: driver, DSN: dsn(path),
			Goroutines: mpGoroutines, Iterations: mpIterations,
			Deadline: time.Now().Add(90 * time.Second)}
	}
	start := time.Now()
	results := runChildren(t, specs)
	db = open(t, driver, dsn(path))
	n := queryInt(t, db, "SELECT n FROM counter WHERE id = 1")
	committed, errs, busy, lockTimeouts := sumResults(results)
	t.Logf("%d processes x %d goroutines x %d: %d committed, %d errors (%d SQLITE_BUSY, %d lock timeouts), counter %d, in %s; longest gap without a commit per process: %s",
		mpProcs, mpGoroutines, mpIterations, committed, errs, busy, lockTimeouts, n, time.Since(start).Round(time.Millisecond), gaps(results))
	return results, n
}

// TestMultiProcReadModifyWrite: read-modify-write transactions from several
// processes at once on one file, with the default DSN: no error in any
// process, no update lost.
func TestMultiProcReadModifyWrite(t *testing.T) {
	skipShort(t, "runs writers in child processes")
	watchdog(t, 5*time.Minute)
	want := int64(mpProcs * mpGoroutines * mpIterations)
	for _, v := range safeVariants {
		t.Run(v.name, func(t *testing.T) {
			results, n := rmwAcrossProcesses(t, "sqlite-safe", func(path string) string { return v.dsn(t, path) })
			childErrors(t, results)
			committed, _, _, _ := sumResults(results)
			if committed != want || n != want {
				t.Fatalf("%d transactions committed and the counter is %d, want %d and %d", committed, n, want, want)
			}
		})
	}
	t.Run("control-modernc-defaults", func(t *testing.T) {
		// Plain modernc.org/sqlite as a new user opens it: rollback
		// journal, no busy timeout, deferred BEGIN.
		results, n := rmwAcrossProcesses(t, "sqlite", func(path string) string { return path })
		committed, errs, busy, _ := sumResults(results)
		if errs == 0 && n == want {
			t.Fatalf("no error and no lost update on plain modernc.org/sqlite; the control shows nothing")
		}
		if busy != errs {
			t.Fatalf("%d errors, %d of them SQLITE_BUSY, e.g. %q: want only SQLITE_BUSY", errs, busy, results[0].Samples)
		}
		if n != committed {
			t.Logf("LOST UPDATES: %d transactions committed, counter %d", committed, n)
		}
		for _, r := range results {
			if len(r.Samples) > 0 {
				t.Logf("e.g. %s", r.Samples[0])
				break
			}
		}
	})
	t.Run("modernc-tuned", func(t *testing.T) {
		// Plain modernc.org/sqlite as the guides tune it: WAL, a 5 s busy
		// timeout and BEGIN IMMEDIATE. Across processes nothing but
		// SQLite's busy handler orders the writers; errors are reported,
		// not failed on. Whatever committed must be in the counter.
		results, n := rmwAcrossProcesses(t, "sqlite", rawCareful)
		committed, errs, busy, _ := sumResults(results)
		if n != committed {
			t.Fatalf("%d transactions committed, counter %d: updates lost", committed, n)
		}
		if errs > 0 {
			t.Logf("modernc-tuned across processes: %d errors, %d SQLITE_BUSY", errs, busy)
		}
	})
}

// TestMultiProcMixedWriters: one process runs long write transactions while
// others insert in autocommit, all with the default DSN: every write
// succeeds, every row is there once.
func TestMultiProcMixedWriters(t *testing.T) {
	skipShort(t, "runs writers in child processes")
	watchdog(t, 5*time.Minute)
	const (
		longTxs, longRows = 20, 100
		longPause         = 20 * time.Millisecond
		inserters         = 3
		goroutines        = 4
		inserts           = 100
	)
	for _, v := range safeVariants {
		t.Run(v.name, func(t *testing.T) {
			path := dbPath(t)
			dsn := v.dsn(t, path)
			db := openSafe(t, dsn)
			mustExec(t, db, "CREATE TABLE t(src INTEGER, g INTEGER, i INTEGER, r INTEGER, PRIMARY KEY(src, g, i, r))")
			db.Close()
			deadline := time.Now().Add(90 * time.Second)
			specs := []childSpec{{Role: "longtx", Driver: "sqlite-safe", DSN: dsn, Source: 0,
				Goroutines: 1, Iterations: longTxs, Rows: longRows, Pause: longPause, Deadline: deadline}}
			for i := range inserters {
				specs = append(specs, childSpec{Role: "inserts", Driver: "sqlite-safe", DSN: dsn, Source: i + 1,
					Goroutines: goroutines, Iterations: inserts, Latencies: true, Deadline: deadline})
			}
			start := time.Now()
			results := runChildren(t, specs)
			elapsed := time.Since(start)
			childErrors(t, results)
			var worst time.Duration
			for _, r := range results[1:] {
				for _, l := range r.Latencies {
					worst = max(worst, time.Duration(l))
				}
			}
			t.Logf("in %s; slowest autocommit insert %s; longest gap without a commit per process: %s",
				elapsed.Round(time.Millisecond), worst.Round(time.Millisecond), gaps(results))

			db = openSafe(t, dsn)
			for src, r := range results {
				// Process 0 commits longTxs transactions of longRows
				// rows, the others goroutines*inserts rows one by one.
				commits, rows := int64(goroutines*inserts), int64(goroutines*inserts)
				if src == 0 {
					commits, rows = longTxs, longTxs*longRows
				}
				if r.Committed != commits {
					t.Errorf("process %d reports %d commits, want %d", src, r.Committed, commits)
				}
				if n := queryInt(t, db, "SELECT count(*) FROM t WHERE src = ?", src); n != rows {
					t.Errorf("process %d: %d rows in the file, want %d", src, n, rows)
				}
			}
			if n := queryInt(t, db, "SELECT count(*) FROM t"); n != longTxs*longRows+inserters*goroutines*inserts {
				t.Errorf("%d rows in all, want %d", n, longTxs*longRows+inserters*goroutines*inserts)
			}
		})
	}
}

// processQueueWired skips the test unless a write through dsn creates the
// cross-process lock file next to path: the _process_queue key may parse
// before the driver takes the lock.
func processQueueWired(t testing.TB, path, dsn string) {
	t.Helper()
	db := openSafe(t, dsn)
	mustExec(t, db, "CREATE TABLE IF NOT EXISTS probe(x)", "INSERT INTO probe VALUES (1)")
	db.Close()
	if _, err := os.Stat(path + "-writer.lock"); errors.Is(err, os.ErrNotExist) {
		t.Skipf("a write through %q does not create %s: the cross-process queue is not in the driver yet", dsn, path+"-writer.lock")
	}
}

// TestMultiProcLongWriterStarvation: one process runs write transactions
// back to back, each holding the lock for tens of milliseconds, for longer
// than the other processes' busy timeout. SQLite's busy handler polls (1 ms
// to 100 ms sleeps) and almost never lands in the microseconds between two
// of those transactions, so without a queue across processes the others
// time out; with it they are woken when the lock is free, and every write
// succeeds.
func TestMultiProcLongWriterStarvation(t *testing.T) {
	skipShort(t, "runs writers in child processes for seconds")
	watchdog(t, 3*time.Minute)
	const (
		inserters  = 3
		goroutines = 4
		run        = 2 * time.Second
	)
	work := func(t *testing.T, dsn func(path string) string, insertTimeout string) []childResult {
		path := dbPath(t)
		db := openSafe(t, dsn(path))
		mustExec(t, db, "CREATE TABLE t(src INTEGER, g INTEGER, i INTEGER, r INTEGER, PRIMARY KEY(src, g, i, r))")
		db.Close()
		deadline := time.Now().Add(90 * time.Second)
		specs := []childSpec{{Role: "longtx", Driver: "sqlite-safe", DSN: dsn(path), Source: 0,
			Goroutines: 1, Duration: run, Rows: 50, Pause: 20 * time.Millisecond, Deadline: deadline}}
		for i := range inserters {
			specs = append(specs, childSpec{Role: "inserts", Driver: "sqlite-safe", DSN: dsn(path) + insertTimeout, Source: i + 1,
				Goroutines: goroutines, Duration: run, Deadline: deadline})
		}
		results := runChildren(t, specs)
		committed, errs, busy, lockTimeouts := sumResults(results[1:])
		t.Logf("long writer: %d transactions; inserters: %d committed, %d errors (%d SQLITE_BUSY, %d lock timeouts); longest gap without a commit per process: %s",
			results[0].Committed, committed, errs, busy, lockTimeouts, gaps(results))
		// Whatever each process says it committed is there, exactly.
		db = openSafe(t, dsn(path))
		for src, r := range results {
			want := r.Committed
			if src == 0 {
				want *= 50
			}
			if n := queryInt(t, db, "SELECT count(*) FROM t WHERE src = ?", src); n != want {
				t.Errorf("process %d: %d rows, want %d", src, n, want)
			}
		}
		if results[0].Errors > 0 {
			t.Errorf("the long writer failed: %q", results[0].Samples)
		}
		return results
	}
	t.Run("process-queue=off", func(t *testing.T) {
		// The control: the inserters, with a busy timeout of half the
		// run, wait behind a writer that keeps the lock all along.
		results := work(t, func(path string) string { return processQueueDSN(t, path, "off") }, "&_busy_timeout=1s")
		_, errs, busy, lockTimeouts := sumResults(results[1:])
		if errs == 0 {
			t.Fatalf("no inserter failed without the process queue; the control shows nothing")
		}
		if busy+lockTimeouts != errs {
			t.Fatalf("%d errors, %d SQLITE_BUSY and %d lock timeouts: want only those", errs, busy, lockTimeouts)
		}
	})
	for _, v := range safeVariants[:2] {
		t.Run(v.name, func(t *testing.T) {
			probe := dbPath(t)
			processQueueWired(t, probe, v.dsn(t, probe))
			sep := "?"
			if v.name != "default-dsn" {
				sep = "&"
			}
			// A 1 s busy timeout is some 40 of the long writer's
			// transactions: the lock is not handed over in order (a
			// flock is not a FIFO), but no process is passed over that
			// often.
			results := work(t, func(path string) string { return v.dsn(t, path) }, sep+"_busy_timeout=1s")
			childErrors(t, results)
		})
	}
}

// TestForeignWriterBesideALoneWriter: a process that does not use
// sqlite-safe (plain modernc.org/sqlite, busy timeout 5 s) inserts for 6 s
// beside a sqlite-safe process whose one goroutine inserts without a break
// for 7 s, the case in which this process keeps SQLite's write lock between
// its transactions (internal/sqlitesched): every one of its inserts gets in,
// none fails, and every row of both is there once. A write lock kept from
// it for the busy timeout fails it. (Its longest wait between two commits
// varies from run to run with the busy handler's sleeps: 1.0-2.2 s here,
// against 0.2-1.5 s with no lock kept.) Under -race, which slows both
// writers several times over, its longest wait has reached 5.03 s, past its
// busy timeout: there it must commit, and fail only with SQLITE_BUSY.
func TestForeignWriterBesideALoneWriter(t *testing.T) {
	skipShort(t, "runs writers in child processes for seconds")
	watchdog(t, 3*time.Minute)
	path := dbPath(t)
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE t(src INTEGER, g INTEGER, i INTEGER, r INTEGER, PRIMARY KEY(src, g, i, r))")
	db.Close()
	deadline := time.Now().Add(90 * time.Second)
	results := runChildren(t, []childSpec{
		{Role: "inserts", Driver: "sqlite-safe", DSN: path, Source: 0, Goroutines: 1, Duration: 7 * time.Second, Deadline: deadline},
		// SQLite as modernc.org/sqlite ships it, sleeping in its busy
		// handler as C SQLite does: this test binary's own would take
		// the lock back sooner than another program's.
		{Role: "inserts", Driver: "sqlite", DSN: rawCareful(path), Source: 1, Goroutines: 1, Duration: 6 * time.Second, Deadline: deadline,
			Env: []string{sqlitesched.Env + "=off"}},
	})
	t.Logf("sqlite-safe: %d inserts; plain modernc: %d inserts, %d errors, in %s, longest gap %s",
		results[0].Committed, results[1].Committed, results[1].Errors,
		time.Duration(results[1].Elapsed).Round(time.Millisecond), time.Duration(results[1].MaxGap).Round(time.Millisecond))
	allowed := int64(0) // errors the foreign writer may have
	if raceEnabled {
		allowed = results[1].Busy
	}
	if results[1].Errors != allowed || results[1].Committed == 0 {
		t.Errorf("the foreign writer: %d committed, %d errors %q", results[1].Committed, results[1].Errors, results[1].Samples)
	}
	if results[0].Errors != 0 {
		t.Errorf("the sqlite-safe writer: %d errors %q", results[0].Errors, results[0].Samples)
	}
	db = openSafe(t, path)
	for src, r := range results {
		if n := queryInt(t, db, "SELECT count(*) FROM t WHERE src = ?", src); n != r.Committed {
			t.Errorf("process %d: %d rows, want %d", src, n, r.Committed)
		}
	}
}

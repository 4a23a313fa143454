package sqlitesafe_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/sqlitesafe/sqlitesafe"
)

// Two shapes of driver wrapper, as tracing and hooks libraries have them:
// one that wraps only driver.Driver (database/sql then calls Open for every
// connection), and one that wraps OpenConnector but does not pass Close on
// to the connector (database/sql then never closes it).
type (
	openOnly struct{ inner driver.Driver }

	connectorNoClose struct {
		inner driver.Driver
	}
	noCloseConnector struct {
		inner driver.Connector
		d     driver.Driver
	}
)

func (w openOnly) Open(dsn string) (driver.Conn, error) { return w.inner.Open(dsn) }

func (w connectorNoClose) Open(dsn string) (driver.Conn, error) { return w.inner.Open(dsn) }
func (w connectorNoClose) OpenConnector(dsn string) (driver.Connector, error) {
	c, err := w.inner.(driver.DriverContext).OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return noCloseConnector{inner: c, d: w}, nil
}
func (c noCloseConnector) Connect(ctx context.Context) (driver.Conn, error) {
	return c.inner.Connect(ctx)
}
func (c noCloseConnector) Driver() driver.Driver { return c.d }

// connectorClose wraps OpenConnector and passes Close on, as otelsql does.
type (
	connectorClose struct{ inner driver.Driver }
	closeConnector struct {
		noCloseConnector
	}
)

func (w connectorClose) Open(dsn string) (driver.Conn, error) { return w.inner.Open(dsn) }
func (w connectorClose) OpenConnector(dsn string) (driver.Connector, error) {
	c, err := w.inner.(driver.DriverContext).OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return closeConnector{noCloseConnector{inner: c, d: w}}, nil
}
func (c closeConnector) Close() error { return c.inner.(io.Closer).Close() }

func init() {
	sql.Register("test-connector-close", connectorClose{&sqlitesafe.Driver{}})
	sql.Register("test-open-only", openOnly{&sqlitesafe.Driver{}})
	sql.Register("test-connector-no-close", connectorNoClose{&sqlitesafe.Driver{}})
}

var wrapperDrivers = []string{"test-open-only", "test-connector-no-close"}

// A handle behind a wrapper releases every descriptor and goroutine, and
// leaves no -wal, when its *sql.DB is closed; each cycle opens it again and
// sees every row the cycles before wrote.
func TestWrappedHandleClosesWithLastConnection(t *testing.T) {
	for _, name := range wrapperDrivers {
		t.Run(name, func(t *testing.T) {
			watchdog(t, 2*time.Minute)
			path := dbPath(t)
			fds, gs := fdCount(), runtime.NumGoroutine()
			const cycles = 50
			for i := range cycles {
				db, err := sql.Open(name, path)
				if err != nil {
					t.Fatal(err)
				}
				mustExec(t, db, "CREATE TABLE IF NOT EXISTS t(x INTEGER PRIMARY KEY)")
				// Several connections at once: readers and the writer.
				noErrors(t, "inserts", parallel(4, 3, func(g, j int) error {
					_, err := db.Exec("INSERT INTO t VALUES (?)", i*100+g*10+j)
					return err
				}))
				if n := queryInt(t, db, "SELECT count(*) FROM t"); n != int64((i+1)*12) {
					t.Fatalf("cycle %d: %d rows, want %d", i, n, (i+1)*12)
				}
				if err := db.Close(); err != nil {
					t.Fatalf("cycle %d: Close: %v", i, err)
				}
				if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("cycle %d: the -wal is still there after Close (%v)", i, err)
				}
			}
			if fds >= 0 {
				if n := settles(fds, fdCount); n > fds {
					t.Errorf("%d descriptors open after %d cycles, %d before", n, cycles, fds)
				}
			}
			if n := settles(gs, runtime.NumGoroutine); n > gs {
				t.Errorf("%d goroutines after %d cycles, %d before", n, cycles, gs)
			}
			if _, err := sqlitesafe.GetStatsFile(path); !errors.Is(err, sqlitesafe.ErrNotOpen) {
				t.Errorf("GetStatsFile after the last Close = %v, want ErrNotOpen", err)
			}
		})
	}
}

// Connections opened while the last one closes: with no idle connection kept,
// every statement opens the wrapped handle and closes it, from 8 goroutines
// at once. Every insert is there once, and nothing is left open.
func TestWrappedHandleOpenWhileClosing(t *testing.T) {
	for _, name := range wrapperDrivers {
		t.Run(name, func(t *testing.T) {
			watchdog(t, 2*time.Minute)
			path := dbPath(t)
			fds := fdCount()
			db, err := sql.Open(name, path)
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, db, "CREATE TABLE t(x INTEGER PRIMARY KEY)")
			db.SetMaxIdleConns(0)
			const goroutines, each = 8, 20
			noErrors(t, "inserts", parallel(goroutines, each, func(g, i int) error {
				if _, err := db.Exec("INSERT INTO t VALUES (?)", g*each+i); err != nil {
					return fmt.Errorf("insert %d: %w", g*each+i, err)
				}
				var n int
				return db.QueryRow("SELECT count(*) FROM t WHERE x = ?", g*each+i).Scan(&n)
			}))
			if n, sum := queryInt(t, db, "SELECT count(*) FROM t"), queryInt(t, db, "SELECT sum(x) FROM t"); n != goroutines*each || sum != goroutines*each*(goroutines*each-1)/2 {
				t.Fatalf("%d rows summing to %d, want each of 0..%d once", n, sum, goroutines*each-1)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the -wal is still there after Close (%v)", err)
			}
			if fds >= 0 {
				if n := settles(fds, fdCount); n > fds {
					t.Errorf("%d descriptors open after Close, %d before", n, fds)
				}
			}
		})
	}
}

// The metrics, checkpoint and backup of a wrapped handle are reached by the
// file's name, in any spelling of it; GetStats says where to look.
func TestWrappedHandleByFile(t *testing.T) {
	watchdog(t, time.Minute)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	db := open(t, "test-open-only", path)

	_, err := sqlitesafe.GetStats(db)
	if !errors.Is(err, sqlitesafe.ErrNotSQLiteSafe) || !strings.Contains(err.Error(), "GetStatsFile") {
		t.Fatalf("GetStats of a wrapped handle = %v, want ErrNotSQLiteSafe naming GetStatsFile", err)
	}
	if _, err := sqlitesafe.GetStatsFile(path); !errors.Is(err, sqlitesafe.ErrNotOpen) {
		t.Fatalf("GetStatsFile before the handle connected = %v, want ErrNotOpen", err)
	}

	mustExec(t, db, "CREATE TABLE t(x)")
	before, err := sqlitesafe.GetStatsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 25
	noErrors(t, "inserts", parallel(goroutines, each, func(g, i int) error {
		_, err := db.Exec("INSERT INTO t VALUES (?)", g*each+i)
		return err
	}))
	for _, name := range []string{path, filepath.Join(link, "app.db"), "file:" + path + "?_busy_timeout=1s"} {
		st, err := sqlitesafe.GetStatsFile(name)
		if err != nil {
			t.Fatalf("GetStatsFile(%q): %v", name, err)
		}
		if got := st.Writes - before.Writes; got != goroutines*each {
			t.Errorf("GetStatsFile(%q): Writes went up by %d, want %d", name, got, goroutines*each)
		}
		if st.Path != before.Path || st.File != path {
			t.Errorf("GetStatsFile(%q): Path %q, File %q; want %q, %q", name, st.Path, st.File, before.Path, path)
		}
		if st.WALSize == 0 {
			t.Errorf("GetStatsFile(%q): WALSize 0 after %d writes", name, goroutines*each)
		}
	}

	r, err := sqlitesafe.CheckpointFile(context.Background(), filepath.Join(link, "app.db"), sqlitesafe.CheckpointTruncate)
	if err != nil || r.Busy {
		t.Fatalf("CheckpointFile: %+v, %v", r, err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
		t.Errorf("after CheckpointFile(TRUNCATE) the -wal is %v, %v; want 0 bytes", fi.Size(), err)
	}
	if st, _ := sqlitesafe.GetStatsFile(path); st.Checkpoints <= before.Checkpoints {
		t.Errorf("Stats.Checkpoints %d after CheckpointFile, %d before", st.Checkpoints, before.Checkpoints)
	}

	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := sqlitesafe.BackupFile(context.Background(), path, dst); err != nil {
		t.Fatal(err)
	}
	cp := openSafe(t, dst)
	if n, sum := queryInt(t, cp, "SELECT count(*) FROM t"), queryInt(t, cp, "SELECT sum(x) FROM t"); n != goroutines*each || sum != goroutines*each*(goroutines*each-1)/2 {
		t.Errorf("the backup has %d rows summing to %d, want each of 0..%d once", n, sum, goroutines*each-1)
	}

	other := filepath.Join(t.TempDir(), "never.db")
	if _, err := sqlitesafe.CheckpointFile(context.Background(), other, sqlitesafe.CheckpointPassive); !errors.Is(err, sqlitesafe.ErrNotOpen) {
		t.Errorf("CheckpointFile of a file not open = %v, want ErrNotOpen", err)
	}
	if err := sqlitesafe.BackupFile(context.Background(), other, filepath.Join(t.TempDir(), "x.db")); !errors.Is(err, sqlitesafe.ErrNotOpen) {
		t.Errorf("BackupFile of a file not open = %v, want ErrNotOpen", err)
	}
}

// GetStatsFile answers while the wrapped handle's connections open and close
// under it, and AllStats lists the file while it is open.
func TestStatsFileDuringChurn(t *testing.T) {
	watchdog(t, time.Minute)
	path := dbPath(t)
	keep := open(t, "test-open-only", path)
	mustExec(t, keep, "CREATE TABLE t(x)")
	churn := open(t, "test-open-only", "file:"+path) // another spelling: a handle of its own
	churn.SetMaxIdleConns(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var scrapes int
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := sqlitesafe.GetStatsFile(path); err != nil {
				t.Errorf("GetStatsFile while a handle is open: %v", err)
				return
			}
			found := false
			for _, st := range sqlitesafe.AllStats() {
				found = found || st.File == path
			}
			if !found {
				t.Errorf("AllStats does not list %s while it is open", path)
				return
			}
			scrapes++
		}
	}()
	noErrors(t, "inserts", parallel(4, 25, func(g, i int) error {
		_, err := churn.Exec("INSERT INTO t VALUES (?)", g*25+i)
		return err
	}))
	close(stop)
	wg.Wait()
	if n := queryInt(t, keep, "SELECT count(*) FROM t"); n != 100 {
		t.Errorf("%d rows, want 100", n)
	}
	t.Logf("%d scrapes during the churn", scrapes)
}

// ExpvarStats, published with expvar, shows the metrics of every open file
// while writers run, and once they stop it is exactly what GetStats says.
func TestExpvarScrape(t *testing.T) {
	watchdog(t, time.Minute)
	path := dbPath(t)
	db := openSafe(t, path)
	mustExec(t, db, counterSchema...)
	const name = "sqlitesafe_test_scrape"
	if expvar.Get(name) == nil { // published once per test binary (-count)
		expvar.Publish(name, expvar.Func(sqlitesafe.ExpvarStats))
	}
	scrape := func() sqlitesafe.Stats {
		t.Helper()
		var m map[string]sqlitesafe.Stats
		if err := json.Unmarshal([]byte(expvar.Get(name).String()), &m); err != nil {
			t.Fatalf("expvar %s is not JSON of map[string]Stats: %v", name, err)
		}
		for _, st := range m {
			if st.File == path {
				return st
			}
		}
		t.Fatalf("expvar %s lists no entry for %s", name, path)
		return sqlitesafe.Stats{}
	}

	start := scrape()
	stop := make(chan struct{})
	var scrapes atomic.Int32
	scraped := make(chan struct{})
	go func() {
		last := start.Writes
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := scrape()
			if st.Writes < last {
				t.Errorf("Writes went back from %d to %d between scrapes", last, st.Writes)
				return
			}
			last = st.Writes
			scrapes.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	// At least 25 transactions per goroutine, and on until 3 scrapes
	// have seen the load (a fixed 200 could end between two).
	const goroutines, each, minScrapes = 8, 25, 3
	loadEnd := time.Now().Add(30 * time.Second)
	errs, ok := parallelUntil(goroutines, each, func() bool {
		return scrapes.Load() < minScrapes && time.Now().Before(loadEnd)
	}, func(g, i int) error {
		return rmw(context.Background(), db, 0)
	})
	noErrors(t, "read-modify-writes", errs)
	close(stop)
	<-scraped
	if n := scrapes.Load(); n < minScrapes {
		t.Errorf("only %d scrapes during the load", n)
	}
	if got := queryInt(t, db, "SELECT n FROM counter WHERE id = 1"); got != ok {
		t.Fatalf("counter = %d, want %d", got, ok)
	}
	waitQuiet(t, db)
	want := mustStats(t, db)
	got := scrape()
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(sqlitesafe.Stats{}, "HeldFor")); diff != "" {
		t.Errorf("expvar after the load differs from GetStats (-GetStats +expvar):\n%s", diff)
	}
	if got.Writes-start.Writes != ok {
		t.Errorf("expvar: Writes went up by %d, want %d", got.Writes-start.Writes, ok)
	}
}

// A connector from calling OpenConnector directly (not through sql.Open)
// closes its handle with its last connection too, and GetStats of its
// *sql.DB reaches the handle while it is open.
func TestOpenConnectorCalledDirectly(t *testing.T) {
	watchdog(t, time.Minute)
	path := dbPath(t)
	c, err := (&sqlitesafe.Driver{}).OpenConnector(path)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	st, err := sqlitesafe.GetStats(db)
	if err != nil || st.Writes < 2 || st.File != path {
		t.Fatalf("GetStats with an idle connection open: %+v, %v; want File %s and 2 writes", st, err, path)
	}
	db.SetMaxIdleConns(0) // closes the idle connections: the last one closes the handle
	if _, err := sqlitesafe.GetStats(db); !errors.Is(err, sqlitesafe.ErrNotOpen) {
		t.Errorf("GetStats with no connection open = %v, want ErrNotOpen", err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the -wal is still there with no connection open (%v)", err)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 1 {
		t.Errorf("reopened: %d rows, want 1", n)
	}
}

// A handle from sql.Open stays open while its pool has no connection: it
// closes with db.Close, and its writer is not reopened for every statement
// of a pool that keeps no idle connection.
func TestSQLOpenHandleOutlivesConnections(t *testing.T) {
	watchdog(t, time.Minute)
	path := dbPath(t)
	db := openSafe(t, path)
	db.SetMaxIdleConns(0)
	mustExec(t, db, "CREATE TABLE t(x)")
	for i := range 20 {
		if _, err := db.Exec("INSERT INTO t VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	st, err := sqlitesafe.GetStats(db)
	if err != nil {
		t.Fatalf("GetStats with no connection in the pool: %v", err)
	}
	if st.Writes != 21 {
		t.Errorf("Writes = %d, want 21: the counters started over, so the handle was closed and reopened", st.Writes)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no -wal while the handle is open (%v): it was closed with its last connection", err)
	}
}

// waitQuiet waits until the background checkpointer has caught up with the
// writes: two Stats 300 ms apart (more than its longest interval) agree.
func waitQuiet(t *testing.T, db *sql.DB) {
	t.Helper()
	prev := mustStats(t, db)
	for range 50 {
		time.Sleep(300 * time.Millisecond)
		st := mustStats(t, db)
		if st.Checkpoints == prev.Checkpoints && st.Acquires == prev.Acquires {
			return
		}
		prev = st
	}
	t.Fatal("the checkpointer kept running 15 s after the writes stopped")
}

// An in-memory database behind a wrapper keeps its data while the pool has
// no connection (closing it would lose the database), and a wrapper that
// passes Close on closes it.
func TestWrappedMemoryDatabase(t *testing.T) {
	for _, name := range []string{"test-connector-no-close", "test-connector-close"} {
		t.Run(name, func(t *testing.T) {
			watchdog(t, time.Minute)
			gs := runtime.NumGoroutine()
			db, err := sql.Open(name, ":memory:")
			if err != nil {
				t.Fatal(err)
			}
			db.SetMaxIdleConns(0) // every statement's connection closes after it
			mustExec(t, db, "CREATE TABLE t(x)")
			for i := range 10 {
				if _, err := db.Exec("INSERT INTO t VALUES (?)", i); err != nil {
					t.Fatal(err)
				}
			}
			if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 10 {
				t.Fatalf("%d rows, want 10: the in-memory database was lost between connections", n)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if name == "test-connector-close" {
				if n := settles(gs, runtime.NumGoroutine); n > gs {
					t.Errorf("%d goroutines after Close, %d before", n, gs)
				}
			}
		})
	}
}

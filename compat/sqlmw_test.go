package compat_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ngrok/sqlmw"
	"github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
)

// countingInterceptor counts the Execs that pass through sqlmw, to show that
// the tests go through the wrapper.
type countingInterceptor struct {
	sqlmw.NullInterceptor
	execs *atomic.Int64
}

func (ci countingInterceptor) ConnExecContext(ctx context.Context, conn driver.ExecerContext, query string, args []driver.NamedValue) (driver.Result, error) {
	ci.execs.Add(1)
	return conn.ExecContext(ctx, query, args)
}

var sqlmwExecs atomic.Int64

func init() {
	// sqlmw wraps OpenConnector when the driver has it, and then does not
	// pass database/sql's Close on; given only a driver.Driver it calls
	// Open for each connection. Both ways.
	sql.Register("sqlmw-sqlite-safe", sqlmw.Driver(&sqlitesafe.Driver{}, countingInterceptor{execs: &sqlmwExecs}))
	sql.Register("sqlmw-sqlite-safe-open", sqlmw.Driver(struct{ driver.Driver }{&sqlitesafe.Driver{}}, countingInterceptor{execs: &sqlmwExecs}))
}

// 50 open/write/close cycles through sqlmw leave no descriptor, goroutine or
// -wal behind, and each cycle sees what the cycles before it wrote.
func TestSqlmwOpenWriteCloseCycles(t *testing.T) {
	for _, name := range []string{"sqlmw-sqlite-safe", "sqlmw-sqlite-safe-open"} {
		t.Run(name, func(t *testing.T) {
			dbtest.Watchdog(t, 2*time.Minute)
			path := filepath.Join(t.TempDir(), "app.db")
			fds, gs := dbtest.FDCount(), runtime.NumGoroutine()
			execs := sqlmwExecs.Load()
			const cycles, goroutines, each = 50, 4, 3
			for i := range cycles {
				db, err := sql.Open(name, path)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t(x INTEGER PRIMARY KEY)"); err != nil {
					t.Fatal(err)
				}
				dbtest.NoErrors(t, "inserts", dbtest.Parallel(goroutines, each, func(g, j int) error {
					_, err := db.Exec("INSERT INTO t VALUES (?)", (i*goroutines+g)*each+j)
					return err
				}))
				var n, sum int
				if err := db.QueryRow("SELECT count(*), coalesce(sum(x), 0) FROM t").Scan(&n, &sum); err != nil {
					t.Fatal(err)
				}
				if total := (i + 1) * goroutines * each; n != total || sum != total*(total-1)/2 {
					t.Fatalf("cycle %d: %d rows summing to %d, want each of 0..%d once", i, n, sum, total-1)
				}
				if err := db.Close(); err != nil {
					t.Fatalf("cycle %d: Close: %v", i, err)
				}
				if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("cycle %d: the -wal is still there after Close (%v)", i, err)
				}
			}
			if got, want := sqlmwExecs.Load()-execs, int64(cycles*(1+goroutines*each)); got != want {
				t.Errorf("%d Execs went through sqlmw, want %d", got, want)
			}
			if fds >= 0 {
				if n := dbtest.Settles(fds, dbtest.FDCount); n > fds {
					t.Errorf("%d descriptors open after %d cycles, %d before", n, cycles, fds)
				}
			}
			if n := dbtest.Settles(gs, runtime.NumGoroutine); n > gs {
				t.Errorf("%d goroutines after %d cycles, %d before", n, cycles, gs)
			}
		})
	}
}

// The metrics, checkpoint and backup of a handle behind sqlmw are reached
// by the file's path.
func TestSqlmwMetricsByFile(t *testing.T) {
	dbtest.Watchdog(t, time.Minute)
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlmw-sqlite-safe", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlitesafe.GetStats(db); !errors.Is(err, sqlitesafe.ErrNotSQLiteSafe) || !strings.Contains(err.Error(), "GetStatsFile") {
		t.Errorf("GetStats through sqlmw = %v, want ErrNotSQLiteSafe naming GetStatsFile", err)
	}
	before, err := sqlitesafe.GetStatsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 10
	dbtest.NoErrors(t, "inserts", dbtest.Parallel(goroutines, each, func(g, i int) error {
		_, err := db.Exec("INSERT INTO t VALUES (?)", g*each+i)
		return err
	}))
	st, err := sqlitesafe.GetStatsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Writes - before.Writes; got != goroutines*each {
		t.Errorf("GetStatsFile: Writes went up by %d, want %d", got, goroutines*each)
	}
	if st.WALSize == 0 {
		t.Errorf("GetStatsFile: WALSize 0 after %d writes", goroutines*each)
	}
	if r, err := sqlitesafe.CheckpointFile(context.Background(), path, sqlitesafe.CheckpointTruncate); err != nil || r.Busy {
		t.Fatalf("CheckpointFile: %+v, %v", r, err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
		t.Errorf("after CheckpointFile(TRUNCATE) the -wal is %v bytes (%v), want 0", fi.Size(), err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := sqlitesafe.BackupFile(context.Background(), path, dst); err != nil {
		t.Fatal(err)
	}
	cp, err := sql.Open("sqlite-safe", dst)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var n int
	if err := cp.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != goroutines*each {
		t.Errorf("the backup has %d rows (%v), want %d", n, err, goroutines*each)
	}
}

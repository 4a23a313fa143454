package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	_ "github.com/sqlitesafe/sqlitesafe"
	"modernc.org/sqlite"
)

// dbPath returns the path of a fresh database file in the test's directory.
func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "app.db")
}

// open opens dsn with driver and closes it when the test ends.
func open(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("sql.Open(%q): %v", driver, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openSafe opens dsn with sqlite-safe.
func openSafe(t testing.TB, dsn string) *sql.DB { return open(t, "sqlite-safe", dsn) }

// rawCareful is plain modernc.org/sqlite configured as the usual "database is
// locked" guides recommend: WAL, a 5 s busy timeout, synchronous=NORMAL and
// BEGIN IMMEDIATE.
func rawCareful(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// execer and queryer are what *sql.DB, *sql.Conn and *sql.Tx have in common.
type (
	execer interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}
	queryer interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}
)

// mustExec runs statements and fails the test on the first error.
func mustExec(t testing.TB, db execer, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// queryInt runs a query returning one integer.
func queryInt(t testing.TB, db queryer, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// watchdog fails the whole test binary, with every goroutine's stack, if the
// test is still running after d: a deadlock must fail CI, not hang it.
func watchdog(t testing.TB, d time.Duration) {
	timer := time.AfterFunc(d, func() {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		panic(fmt.Sprintf("watchdog: %s still running after %s\n%s", t.Name(), d, buf))
	})
	t.Cleanup(func() { timer.Stop() })
}

// parallel runs fn(g, i) for g goroutines and i iterations each, and returns
// the errors they met, in no order.
func parallel(goroutines, iterations int, fn func(g, i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range iterations {
				if err := fn(g, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// sqliteCode returns the extended result code of the SQLite error in err's
// chain, or -1.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return -1
}

// isBusy reports whether err is SQLITE_BUSY ("database is locked") or one of
// its extended codes.
func isBusy(err error) bool { return sqliteCode(err)&0xff == 5 }

// onlyBusy fails the test unless every error in errs is SQLITE_BUSY, and
// unless there is at least one: the control must show the hazard.
func onlyBusy(t *testing.T, what string, errs []error) {
	t.Helper()
	if len(errs) == 0 {
		t.Fatalf("%s: no error on plain modernc.org/sqlite; the control shows nothing", what)
	}
	for _, err := range errs {
		if !isBusy(err) {
			t.Fatalf("%s: plain modernc.org/sqlite failed with %v, want SQLITE_BUSY", what, err)
		}
	}
	t.Logf("%s: %d errors on plain modernc.org/sqlite, all SQLITE_BUSY, e.g. %v", what, len(errs), errs[0])
}

// noErrors fails the test if errs is not empty.
func noErrors(t *testing.T, what string, errs []error) {
	t.Helper()
	if len(errs) > 0 {
		t.Fatalf("%s: %d errors, first: %v", what, len(errs), errs[0])
	}
}

// rmw is one read-modify-write transaction on counter row id 1: the
// workload that loses updates or fails without BEGIN IMMEDIATE. pause widens
// the window between the read and the write.
func rmw(ctx context.Context, db *sql.DB, pause time.Duration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRow("SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
		return err
	}
	if pause > 0 {
		time.Sleep(pause)
	}
	if _, err := tx.Exec("UPDATE counter SET n = ? WHERE id = 1", n+1); err != nil {
		return err
	}
	return tx.Commit()
}

// counterSchema creates the counter table rmw works on.
var counterSchema = []string{
	"CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
	"INSERT INTO counter(id, n) VALUES (1, 0)",
}

// skipShort skips a test under -short: the test runs or kills other
// processes, or soaks for seconds, and go test -short is for every save.
// Without -short (as CI runs) it runs.
func skipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + why)
	}
}

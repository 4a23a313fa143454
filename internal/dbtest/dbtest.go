// Package dbtest holds the helpers that the tests of sqlite-safe and of the
// compat module share: fresh database files, the concurrent workload runner,
// the watchdog, and the checks on errors that the controls on plain
// modernc.org/sqlite rely on.
//
// It does not import the driver, so that the driver's own tests can use it:
// a test that opens "sqlite-safe" imports github.com/sqlitesafe/sqlitesafe
// itself. Importing this package registers "sqlite" (modernc.org/sqlite).
package dbtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/sqlite"
)

// Path returns the path of a fresh database file in the test's directory.
func Path(t testing.TB) string {
	return filepath.Join(t.TempDir(), "app.db")
}

// Open opens dsn with driver and closes it when the test ends.
func Open(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("sql.Open(%q): %v", driver, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// OpenSafe opens dsn with sqlite-safe and closes it when the test ends. The
// caller's package must import the driver.
func OpenSafe(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	return Open(t, "sqlite-safe", dsn)
}

// RawCareful is the DSN of plain modernc.org/sqlite on path configured as the
// usual "database is locked" guides recommend: WAL, a 5 s busy timeout,
// synchronous=NORMAL and BEGIN IMMEDIATE.
func RawCareful(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// Execer and Queryer are what *sql.DB, *sql.Conn and *sql.Tx have in common.
type (
	Execer interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}
	Queryer interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}
)

// MustExec runs statements and fails the test on the first error.
func MustExec(t testing.TB, db Execer, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// QueryInt runs a query returning one integer.
func QueryInt(t testing.TB, db Queryer, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// Stacks returns the stacks of every goroutine of the process.
func Stacks() string {
	buf := make([]byte, 1<<16)
	for {
		if n := runtime.Stack(buf, true); n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// SettleGoroutines waits up to d for the process's goroutines to number at
// most n, and returns how many there are then: what a test started has had
// d to end.
func SettleGoroutines(n int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for runtime.NumGoroutine() > n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return runtime.NumGoroutine()
}

// Watchdog fails the whole test binary, with every goroutine's stack, if the
// test is still running after d: a deadlock must fail CI, not hang it.
func Watchdog(t testing.TB, d time.Duration) {
	timer := time.AfterFunc(d, func() {
		panic(fmt.Sprintf("watchdog: %s still running after %s\n%s", t.Name(), d, Stacks()))
	})
	t.Cleanup(func() { timer.Stop() })
}

// Parallel runs fn(g, i) for g goroutines and i iterations each, and returns
// the errors they met, in no order.
func Parallel(goroutines, iterations int, fn func(g, i int) error) []error {
	errs, _ := ParallelUntil(goroutines, iterations, func() bool { return false }, fn)
	return errs
}

// ParallelUntil is Parallel whose goroutines each run at least iterations
// calls of fn, and more while more reports true: a load that lasts until
// something watching it (a scraper, say) has seen enough of it, however
// fast the machine. It returns the errors and how many calls succeeded.
func ParallelUntil(goroutines, iterations int, more func() bool, fn func(g, i int) error) ([]error, int64) {
	var (
		mu   sync.Mutex
		errs []error
		ok   atomic.Int64
		wg   sync.WaitGroup
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < iterations || more(); i++ {
				if err := fn(g, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return errs, ok.Load()
}

// Code returns the extended result code of the SQLite error in err's chain,
// or -1.
func Code(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return -1
}

// IsBusy reports whether err is SQLITE_BUSY ("database is locked") or one of
// its extended codes.
func IsBusy(err error) bool { return Code(err)&0xff == 5 }

// OnlyBusy fails the test unless every error in errs is SQLITE_BUSY, and
// unless there is at least one: the control must show the hazard.
func OnlyBusy(t testing.TB, what string, errs []error) {
	t.Helper()
	if len(errs) == 0 {
		t.Fatalf("%s: no error on plain modernc.org/sqlite; the control shows nothing", what)
	}
	for _, err := range errs {
		if !IsBusy(err) {
			t.Fatalf("%s: plain modernc.org/sqlite failed with %v, want SQLITE_BUSY", what, err)
		}
	}
	t.Logf("%s: %d errors on plain modernc.org/sqlite, all SQLITE_BUSY, e.g. %v", what, len(errs), errs[0])
}

// NoErrors fails the test if errs is not empty.
func NoErrors(t testing.TB, what string, errs []error) {
	t.Helper()
	if len(errs) > 0 {
		t.Fatalf("%s: %d errors, first: %v", what, len(errs), errs[0])
	}
}

// RMW is one read-modify-write transaction on counter row id 1 (see
// CounterSchema): the workload that loses updates or fails without BEGIN
// IMMEDIATE. pause widens the window between the read and the write.
func RMW(ctx context.Context, db *sql.DB, pause time.Duration) error {
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

// CounterSchema creates the counter table RMW works on, its one row at 0.
var CounterSchema = []string{
	"CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
	"INSERT INTO counter(id, n) VALUES (1, 0)",
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: the writer of a
// logger that goroutines of the driver write to while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Reset forgets what was written.
func (s *SyncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// FDCount is the number of descriptors the process has open, or -1 where
// /proc/self/fd cannot tell.
func FDCount() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// Settles waits up to 5 s for count to come down to at most want, and
// returns the last count seen: goroutines and descriptors another part of
// the runtime holds for a moment must not fail the test.
func Settles(want int, count func() int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := count()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

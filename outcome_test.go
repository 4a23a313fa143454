package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// writePath is one way of writing row id; it returns the error the caller
// would see.
type writePath struct {
	name  string
	write func(ctx context.Context, db *sql.DB, id int64) error
}

var writePaths = []writePath{
	{"autocommit Exec", func(ctx context.Context, db *sql.DB, id int64) error {
		_, err := db.ExecContext(ctx, "INSERT INTO w(id, path) VALUES (?, 'exec')", id)
		return err
	}},
	{"Exec of a script", func(ctx context.Context, db *sql.DB, id int64) error {
		_, err := db.ExecContext(ctx, "INSERT INTO w(id, path) VALUES (?, 'script'); UPDATE w SET n = n + 1 WHERE id = ?", id, id)
		return err
	}},
	{"Query with RETURNING", func(ctx context.Context, db *sql.DB, id int64) error {
		rows, err := db.QueryContext(ctx, "INSERT INTO w(id, path) VALUES (?, 'query') RETURNING id", id)
		if err != nil {
			return err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var got int64
			if err := rows.Scan(&got); err != nil {
				return fmt.Errorf("%w: %w", errRowsAfterCommit, err)
			}
			if got != id {
				return fmt.Errorf("RETURNING gave %d, want %d", got, id)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%w: %w", errRowsAfterCommit, err)
		}
		if n != 1 {
			return fmt.Errorf("RETURNING gave %d rows", n)
		}
		return nil
	}},
	{"QueryRow with RETURNING", func(ctx context.Context, db *sql.DB, id int64) error {
		row := db.QueryRowContext(ctx, "INSERT INTO w(id, path) VALUES (?, 'queryrow') RETURNING id", id)
		if err := row.Err(); err != nil {
			return err
		}
		var got int64
		if err := row.Scan(&got); err != nil {
			return fmt.Errorf("%w: %w", errRowsAfterCommit, err)
		}
		return nil
	}},
	{"BeginTx", func(ctx context.Context, db *sql.DB, id int64) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "INSERT INTO w(id, path) VALUES (?, 'tx')", id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE w SET n = n + 1 WHERE id = ?", id); err != nil {
			return err
		}
		return tx.Commit()
	}},
	{"text BEGIN and COMMIT", func(ctx context.Context, db *sql.DB, id int64) error {
		c, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		err = func() error {
			for _, q := range []string{"BEGIN", "INSERT INTO w(id, path) VALUES (?, 'text')", "COMMIT"} {
				var args []any
				if strings.HasPrefix(q, "INSERT") {
					args = []any{id}
				}
				if _, err := c.ExecContext(ctx, q, args...); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			// A transaction the COMMIT did not end is rolled back.
			c.ExecContext(context.Background(), "ROLLBACK")
		}
		return err
	}},
}

// errRowsAfterCommit marks an error database/sql reported while reading the
// rows of a query the driver had run and committed: database/sql closes the
// rows of a query whose context ends, and reports the context's error.
var errRowsAfterCommit = errors.New("database/sql closed the rows of a committed write")

// deadlineOutcomes runs calls of path with random short deadlines from
// goroutines, and returns the ids whose call succeeded and those whose call
// failed. Every error must come from the deadline.
func deadlineOutcomes(t *testing.T, db *sql.DB, goroutines, calls int, base int64, paths []writePath) (ok, failed []int64) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), uint64(base)))
			for i := range calls {
				id := base + int64(g)*1_000_000 + int64(i)
				p := paths[i%len(paths)]
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(3000))*time.Microsecond)
				err := p.write(ctx, db, id)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, sql.ErrTxDone) {
					t.Errorf("%s: an error other than the deadline's: %v", p.name, err)
				}
				mu.Lock()
				if err == nil || errors.Is(err, errRowsAfterCommit) {
					ok = append(ok, id)
				} else {
					failed = append(failed, id)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok, failed
}

// present returns the ids in table w, and fails the test on a duplicate.
func present(t *testing.T, db *sql.DB) map[int64]bool {
	t.Helper()
	rows, err := db.Query("SELECT id FROM w")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := make(map[int64]bool)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		m[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

const wSchema = "CREATE TABLE w(id INTEGER PRIMARY KEY, path TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0)"

// An error means not written, success means written, on every write path,
// whatever moment the caller's deadline ends at: while queued, while the
// statement runs, or just after it completed.
func TestDeadlineErrorMeansNotWritten(t *testing.T) {
	watchdog(t, 3*time.Minute)
	calls := 1260 // x 16 goroutines: 20,160 calls
	if testing.Short() {
		calls = 200
	}
	path := dbPath(t)
	db := openSafe(t, path)
	mustExec(t, db, wSchema)
	ok, failed := deadlineOutcomes(t, db, 16, calls, 0, writePaths)
	got := present(t, db)
	var lost, phantom int
	for _, id := range ok {
		if !got[id] {
			lost++
			t.Errorf("lost: %s", writePaths[(id%1_000_000)%int64(len(writePaths))].name)
		}
	}
	for _, id := range failed {
		if got[id] {
			phantom++
			t.Errorf("phantom: %s", writePaths[(id%1_000_000)%int64(len(writePaths))].name)
		}
	}
	t.Logf("%d calls: %d succeeded, %d failed with the deadline; %d rows", len(ok)+len(failed), len(ok), len(failed), len(got))
	if lost != 0 || phantom != 0 {
		t.Fatalf("%d writes reported successful are missing, %d reported failed are in the database", lost, phantom)
	}
	if len(got) != len(ok) {
		t.Fatalf("%d rows, %d successes", len(got), len(ok))
	}
	if len(ok) == 0 || len(failed) == 0 {
		t.Fatalf("the deadlines gave %d successes and %d failures: the test needs both", len(ok), len(failed))
	}
	// The script and the transactions incremented n once each.
	if n := queryInt(t, db, "SELECT count(*) FROM w WHERE path IN ('script', 'tx') AND n != 1"); n != 0 {
		t.Fatalf("%d rows of the script or a transaction half-written", n)
	}
}

// The control: plain modernc.org/sqlite reports writes that committed as
// their deadline's error.
func TestDeadlineControlPlainModernc(t *testing.T) {
	watchdog(t, 3*time.Minute)
	db := open(t, "sqlite", rawCareful(dbPath(t)))
	mustExec(t, db, wSchema)
	phantom := 0
	for round := int64(0); round < 10 && phantom == 0; round++ {
		_, failed := deadlineOutcomes(t, db, 16, 200, round*100_000_000, writePaths[:1])
		got := present(t, db)
		for _, id := range failed {
			if got[id] {
				phantom++
			}
		}
	}
	if phantom == 0 {
		t.Fatal("plain modernc.org/sqlite reported no committed write as failed: the control shows nothing")
	}
	t.Logf("plain modernc.org/sqlite: %d writes reported failed are committed", phantom)
}

// descriptorsOn counts this process's open descriptors on path and its
// side files.
func descriptorsOn(t *testing.T, path string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(target, path) {
			n++
		}
	}
	return n
}

// db.Close while writers are queued and running: each write completes or
// fails with a documented error (database/sql's "database is closed", or
// ErrClosed for one that was waiting for the lock and did not run), nothing
// is half-written, and nothing is left open.
func TestCloseDuringWrites(t *testing.T) {
	watchdog(t, 3*time.Minute)
	rounds := 200
	if testing.Short() {
		rounds = 30
	}
	path := dbPath(t)
	setup := openSafe(t, path)
	mustExec(t, setup, wSchema)
	if err := setup.Close(); err != nil {
		t.Fatal(err)
	}
	goroutinesBefore := runtime.NumGoroutine()
	var ok, failed []int64
	var mu sync.Mutex
	kinds := map[string]int{}
	for round := range rounds {
		db, err := sql.Open("sqlite-safe", path)
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; ; i++ {
					id := int64(round)*1_000_000 + int64(g)*10_000 + int64(i)
					var err error
					if i%2 == 0 {
						_, err = db.Exec("INSERT INTO w(id, path) VALUES (?, 'exec')", id)
					} else {
						err = writePaths[4].write(context.Background(), db, id) // BeginTx
					}
					mu.Lock()
					if err == nil {
						ok = append(ok, id)
						mu.Unlock()
						continue
					}
					failed = append(failed, id)
					switch {
					case errors.Is(err, sqlitesafe.ErrClosed):
						kinds["ErrClosed"]++
					case err.Error() == "sql: database is closed":
						kinds["sql: database is closed"]++
					default:
						kinds["other: "+err.Error()]++
					}
					mu.Unlock()
					return
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if err := db.Close(); err != nil {
			t.Errorf("round %d: Close: %v", round, err)
		}
		wg.Wait()
	}
	for k, n := range kinds {
		if strings.HasPrefix(k, "other: ") {
			t.Errorf("%d writes failed with an undocumented error: %s", n, k)
		}
	}
	t.Logf("%d rounds: %d writes succeeded, failures by kind: %v", rounds, len(ok), kinds)

	// The next open writes at once.
	db := openSafe(t, path)
	start := time.Now()
	if _, err := db.Exec("INSERT INTO w(id, path) VALUES (-1, 'after')"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the first write after the closes took %s", d)
	}
	got := present(t, db)
	for _, id := range ok {
		if !got[id] {
			t.Fatalf("write %d reported successful is missing", id)
		}
	}
	for _, id := range failed {
		if got[id] {
			t.Fatalf("write %d reported failed is in the database", id)
		}
	}
	if n := queryInt(t, db, "SELECT count(*) FROM w WHERE path = 'tx' AND n != 1"); n != 0 {
		t.Fatalf("%d transactions half-written", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := descriptorsOn(t, path); n != 0 {
		t.Errorf("%d descriptors on the database's files left open", n)
	}
	if n := settleGoroutines(goroutinesBefore, 5*time.Second); n > goroutinesBefore {
		t.Errorf("%d goroutines, %d before:\n%s", n, goroutinesBefore, stacks())
	}
}

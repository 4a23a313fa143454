//go:build linux

package dqlite

// The controls: what plain go-dqlite (its driver package through database/sql, as an application
// uses it) does on a real three-node dqlite-demo cluster. Each test asserts the behaviour issue 15
// reports; sqlite-safe's dqlite engine will be tested against the same workloads.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dqdriver "github.com/canonical/go-dqlite/driver"

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
)

// dqErr returns the dqlite error in err's chain.
func dqErr(err error) (dqdriver.Error, bool) {
	var e dqdriver.Error
	ok := errors.As(err, &e)
	return e, ok
}

// mustExec runs query on db and fails t on error.
func mustExec(t testing.TB, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func count(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// watchdog fails t if it is still running after d, so that a hang shows as a failure with a
// stack rather than as CI's timeout.
func watchdog(t *testing.T, d time.Duration) {
	timer := time.AfterFunc(d, func() {
		panic(fmt.Sprintf("watchdog: %s still running after %v", t.Name(), d))
	})
	t.Cleanup(func() { timer.Stop() })
}

// TestPlainSemantics runs the non-destructive characterisations on one cluster, each in its own
// database.
func TestPlainSemantics(t *testing.T) {
	watchdog(t, 2*time.Minute)
	c := cluster.Start(t, 3)

	t.Run("SecondWriterLockedAtOnceDespiteBusyTimeout", func(t *testing.T) {
		db := c.OpenPlain(t, "locked.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
		ctx := context.Background()
		a, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		// PRAGMA busy_timeout answers a row with the timeout: it is accepted and set.
		var bt int
		if err := b.QueryRowContext(ctx, "PRAGMA busy_timeout = 5000").Scan(&bt); err != nil {
			t.Fatalf("PRAGMA busy_timeout = 5000: %v", err)
		}
		if err := b.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&bt); err != nil || bt != 5000 {
			t.Fatalf("PRAGMA busy_timeout reads %d, %v; want 5000", bt, err)
		}
		mustExec(t, a, "BEGIN IMMEDIATE")
		mustExec(t, a, "INSERT INTO t (v) VALUES ('a')")
		for _, stmt := range []string{"BEGIN IMMEDIATE", "INSERT INTO t (v) VALUES ('b')"} {
			start := time.Now()
			_, err = b.ExecContext(ctx, stmt)
			took := time.Since(start)
			e, ok := dqErr(err)
			t.Logf("second writer, %s: %v (code %d) after %v", stmt, err, e.Code, took)
			if !ok || e.Code != 5 || err.Error() != "database is locked" {
				t.Fatalf("%s: want dqlite error code 5 \"database is locked\", got %#v", stmt, err)
			}
			if took > time.Second {
				t.Fatalf("%s: failed after %v; busy_timeout 5000 would have waited, dqlite fails at once", stmt, took)
			}
		}
		mustExec(t, a, "COMMIT")
		if n := count(t, db, "SELECT count(*) FROM t"); n != 1 {
			t.Fatalf("want 1 row (the first writer's), got %d", n)
		}
	})

	t.Run("AutocommitInsertsFromEightGoroutinesFail", func(t *testing.T) {
		db := c.OpenPlain(t, "inserts.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, g INTEGER, i INTEGER, UNIQUE (g, i))")
		res := autocommitInserts(t, db, 8, 1500*time.Millisecond)
		t.Logf("8 goroutines of autocommit inserts for 1.5 s: %d attempts, %d failed, %d committed; errors: %v",
			res.attempts, res.failed, res.attempts-res.failed, res.errs)
		if res.failed*2 < res.attempts {
			t.Fatalf("want most of the %d attempts to fail, %d failed", res.attempts, res.failed)
		}
		for msg := range res.errs {
			if msg != "database is locked (code 5)" {
				t.Errorf("unexpected error %q", msg)
			}
		}
		// Exact state: every insert that reported success is there, none that failed.
		checkInserts(t, db, res)
	})

	t.Run("ForeignKeysOnByDefault", func(t *testing.T) {
		db := c.OpenPlain(t, "fk.db")
		var fk int
		if err := db.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if fk != 1 {
			t.Fatalf("PRAGMA foreign_keys = %d on a fresh dqlite connection, want 1 (SQLite's default is 0)", fk)
		}
		mustExec(t, db, "CREATE TABLE p (id INTEGER PRIMARY KEY)")
		mustExec(t, db, "CREATE TABLE ch (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id))")
		_, err := db.Exec("INSERT INTO ch (p) VALUES (42)")
		e, _ := dqErr(err)
		t.Logf("insert of a dangling reference: %v (code %d)", err, e.Code)
		if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY constraint failed") {
			t.Fatalf("want FOREIGN KEY constraint failed, got %v", err)
		}
	})

	t.Run("ReadOnlyTxOptionIgnored", func(t *testing.T) {
		db := c.OpenPlain(t, "ro.db")
		mustExec(t, db, "CREATE TABLE t (v INTEGER)")
		tx, err := db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatalf("BeginTx ReadOnly: %v", err)
		}
		if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
			t.Fatalf("INSERT in a ReadOnly tx failed (%v): dqlite would have enforced it", err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "SELECT count(*) FROM t"); n != 1 {
			t.Fatalf("want the row written in the ReadOnly tx, got %d rows", n)
		}
	})

	t.Run("ExecOfRowReturningStatementFails", func(t *testing.T) {
		db := c.OpenPlain(t, "rows.db")
		mustExec(t, db, "CREATE TABLE t (v INTEGER)")
		mustExec(t, db, "INSERT INTO t VALUES (1), (2)")
		for _, q := range []string{"SELECT v FROM t", "PRAGMA journal_mode", "PRAGMA busy_timeout = 100"} {
			_, err := db.Exec(q)
			e, ok := dqErr(err)
			t.Logf("Exec(%q): %v (code %d)", q, err, e.Code)
			if !ok || e.Code != 100 || err.Error() != "another row available" {
				t.Errorf("Exec(%q): want code 100 \"another row available\", got %#v", q, err)
			}
		}
		var mode string
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("PRAGMA journal_mode through Query: %q, %v; want wal", mode, err)
		}
	})

	t.Run("SettingsReadBack", func(t *testing.T) {
		// What the root driver's setup reads back on a modernc connection, as dqlite answers.
		db := c.OpenPlain(t, "settings.db")
		mustExec(t, db, "CREATE TABLE t (v INTEGER)")
		conn := pinned(t, db)
		ctx := context.Background()
		read := func(q string) string {
			var v string
			if err := conn.QueryRowContext(ctx, q).Scan(&v); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			return v
		}
		got := map[string]string{}
		for _, q := range []string{"PRAGMA journal_mode", "PRAGMA synchronous", "PRAGMA busy_timeout",
			"PRAGMA foreign_keys", "PRAGMA journal_size_limit", "PRAGMA query_only", "SELECT sqlite_version()"} {
			got[q] = read(q)
		}
		t.Logf("fresh dqlite connection: %v", got)
		want := map[string]string{"PRAGMA journal_mode": "wal", "PRAGMA foreign_keys": "1", "PRAGMA query_only": "0",
			"PRAGMA busy_timeout": "0", "PRAGMA synchronous": "0", "SELECT sqlite_version()": "3.40.1"}
		for q, w := range want {
			if got[q] != w {
				t.Errorf("%s = %q, want %q", q, got[q], w)
			}
		}
		// A statement that answers no row cannot be run by Query: dqlite answers "not an
		// error" (SQLITE_OK as an error). One that answers a row cannot be run by Exec (see
		// ExecOfRowReturningStatementFails). The root driver's setup runs both kinds by Exec.
		_, err := conn.QueryContext(ctx, "PRAGMA foreign_keys = OFF")
		e, ok := dqErr(err)
		t.Logf("Query(\"PRAGMA foreign_keys = OFF\"): %v (%T, code %d)", err, err, e.Code)
		if err == nil || err.Error() != "not an error" {
			t.Errorf("Query of a no-row PRAGMA: want \"not an error\", got %v (dqlite error %v)", err, ok)
		}
		conn = pinned(t, db)
		// The root driver's setup statements are accepted by Exec and read back as set.
		for q, w := range map[string]string{"PRAGMA foreign_keys = OFF": "PRAGMA foreign_keys=0",
			"PRAGMA synchronous = NORMAL": "PRAGMA synchronous=1"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			parts := strings.SplitN(w, "=", 2)
			if v := read(parts[0]); v != parts[1] {
				t.Errorf("after %s: %s reads %q, want %q", q, parts[0], v, parts[1])
			}
		}
	})

	t.Run("QueryOfNoRowStatementFails", func(t *testing.T) {
		// database/sql code runs writes through Query too (sqlx, ORMs); modernc answers them
		// with no rows. go-dqlite's Query of a statement that answers no row fails with "not
		// an error" and leaves nothing done (and, unlike RETURNING, the leader survives the
		// next write: a scratch run on a throwaway cluster saw that).
		db := c.OpenPlain(t, "querynorow.db")
		mustExec(t, db, "CREATE TABLE t (v INTEGER)")
		for _, q := range []string{"INSERT INTO t VALUES (1)", "PRAGMA foreign_keys = OFF", "CREATE TABLE u (v INTEGER)"} {
			conn := pinned(t, db)
			rows, err := conn.QueryContext(context.Background(), q)
			if err == nil {
				rows.Close()
			}
			e, _ := dqErr(err)
			t.Logf("Query(%q): %v (code %d)", q, err, e.Code)
			if err == nil || err.Error() != "not an error" {
				t.Errorf("Query(%q): want \"not an error\", got %v", q, err)
			}
		}
		if n := count(t, db, "SELECT count(*) FROM t"); n != 0 {
			t.Errorf("the INSERT through Query: want nothing inserted, got %d rows", n)
		}
		if n := count(t, db, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"); n != 0 {
			t.Errorf("the CREATE TABLE through Query: want no table u, got %d", n)
		}
		// A SELECT that answers no row is fine.
		rows, err := db.Query("SELECT v FROM t WHERE v < 0")
		if err != nil {
			t.Fatalf("SELECT of no rows: %v", err)
		}
		if rows.Next() {
			t.Error("SELECT of no rows answered a row")
		}
		if err := rows.Close(); err != nil {
			t.Error(err)
		}
	})

	t.Run("QueryOnlyRefusesWrites", func(t *testing.T) {
		// The readers of a dqlite engine: connections to the leader with query_only.
		db := c.OpenPlain(t, "queryonly.db")
		mustExec(t, db, "CREATE TABLE t (v INTEGER)")
		conn := pinned(t, db)
		ctx := context.Background()
		mustExec(t, conn, "PRAGMA query_only = 1")
		_, err := conn.ExecContext(ctx, "INSERT INTO t VALUES (1)")
		e, _ := dqErr(err)
		t.Logf("INSERT on a query_only connection: %v (code %d)", err, e.Code)
		if err == nil || e.Code&0xff != 8 {
			t.Fatalf("want SQLITE_READONLY (8), got %#v", err)
		}
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 0 {
			t.Fatalf("read on the query_only connection: %d, %v", n, err)
		}
	})

	t.Run("BeginInsideTransaction", func(t *testing.T) {
		// The root driver's inTx asks SQLite by a BEGIN; dqlite answers it as SQLite does.
		db := c.OpenPlain(t, "intx.db")
		conn := pinned(t, db)
		mustExec(t, conn, "BEGIN")
		_, err := conn.ExecContext(context.Background(), "BEGIN")
		e, _ := dqErr(err)
		t.Logf("BEGIN inside a transaction: %v (code %d)", err, e.Code)
		if err == nil || !strings.Contains(err.Error(), "within a transaction") {
			t.Fatalf("want \"cannot start a transaction within a transaction\", got %v", err)
		}
		mustExec(t, conn, "ROLLBACK")
	})

	t.Run("MultiStatementExecWithArgsFails", func(t *testing.T) {
		db := c.OpenPlain(t, "multi.db")
		mustExec(t, db, "CREATE TABLE t (v INTEGER)")
		_, err := db.Exec("INSERT INTO t VALUES (?); INSERT INTO t VALUES (?)", 1, 2)
		e, ok := dqErr(err)
		t.Logf("multi-statement Exec with args: %v (code %d)", err, e.Code)
		if !ok || e.Code != 25 || err.Error() != "column index out of range" {
			t.Fatalf("want dqlite error code 25 \"column index out of range\", got %#v", err)
		}
		if n := count(t, db, "SELECT count(*) FROM t"); n != 0 {
			t.Fatalf("want nothing inserted, got %d rows", n)
		}
		// Without arguments the same script runs whole.
		mustExec(t, db, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
		if n := count(t, db, "SELECT count(*) FROM t"); n != 2 {
			t.Fatalf("multi-statement Exec without args: want 2 rows, got %d", n)
		}
	})
}

type insertResult struct {
	attempts, failed int
	ok               [][]int // ok[g] lists the i of each insert goroutine g saw succeed
	bad              [][]int
	errs             map[string]int
}

// autocommitInserts runs n goroutines, each inserting (g, i) for i = 0, 1, ... in autocommit
// for d, and records which succeeded.
func autocommitInserts(t *testing.T, db *sql.DB, n int, d time.Duration) insertResult {
	t.Helper()
	res := insertResult{ok: make([][]int, n), bad: make([][]int, n), errs: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	var attempts atomic.Int64
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				attempts.Add(1)
				_, err := db.Exec("INSERT INTO t (g, i) VALUES (?, ?)", g, i)
				mu.Lock()
				if err != nil {
					e, _ := dqErr(err)
					res.errs[fmt.Sprintf("%v (code %d)", err, e.Code)]++
					res.bad[g] = append(res.bad[g], i)
					res.failed++
				} else {
					res.ok[g] = append(res.ok[g], i)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.attempts = int(attempts.Load())
	return res
}

// checkInserts checks the table holds exactly the inserts res saw succeed.
func checkInserts(t *testing.T, db *sql.DB, res insertResult) {
	t.Helper()
	rows, err := db.Query("SELECT g, i FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := map[[2]int]bool{}
	for rows.Next() {
		var g, i int
		if err := rows.Scan(&g, &i); err != nil {
			t.Fatal(err)
		}
		have[[2]int{g, i}] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := 0
	for g := range res.ok {
		for _, i := range res.ok[g] {
			want++
			if !have[[2]int{g, i}] {
				t.Errorf("insert (%d, %d) reported success but is missing", g, i)
			}
		}
		for _, i := range res.bad[g] {
			if have[[2]int{g, i}] {
				t.Errorf("insert (%d, %d) reported failure but is present", g, i)
			}
		}
	}
	if len(have) != want {
		t.Errorf("table has %d rows, %d inserts succeeded", len(have), want)
	}
}

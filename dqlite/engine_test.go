//go:build linux

package dqlite

// sqlite-safe on a real three-node dqlite-demo cluster: each difference of dqlite handled, on the
// same workloads as the controls in plain_test.go.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
)

// dsn is the dqlite:// DSN of database name on c.
func dsn(c *cluster.Cluster, name string, params ...string) string {
	d := "dqlite://" + strings.Join(c.Addresses(), ",") + "/" + name
	if len(params) > 0 {
		d += "?" + strings.Join(params, "&")
	}
	return d
}

// openSafe opens database name on c through sqlite-safe.
func openSafe(t testing.TB, c *cluster.Cluster, name string, params ...string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite-safe", dsn(c, name, params...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// alive fails t unless every node of c is still running.
func alive(t testing.TB, c *cluster.Cluster) {
	t.Helper()
	for i, n := range c.Nodes {
		if !n.Running() {
			t.Errorf("node %d is not running: %s", i+1, n.Log())
		}
	}
}

func TestEngineSemantics(t *testing.T) {
	watchdog(t, 3*time.Minute)
	c := cluster.Start(t, 3)
	ctx := context.Background()

	t.Run("ReturningCommitsAndLeavesNodesAlive", func(t *testing.T) {
		db := openSafe(t, c, "returning.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
		for i := range 3 {
			var id int64
			if err := db.QueryRow("INSERT INTO t (v) VALUES (?) RETURNING id", fmt.Sprint(i)).Scan(&id); err != nil {
				t.Fatalf("QueryRow RETURNING: %v", err)
			}
			if id != int64(i+1) {
				t.Fatalf("RETURNING gave id %d, want %d", id, i+1)
			}
		}
		if _, err := db.Exec("INSERT INTO t (v) VALUES ('exec') RETURNING id"); err != nil {
			t.Fatalf("Exec RETURNING: %v", err)
		}
		// The next write is the one that aborted the leader after an autocommit RETURNING.
		mustExec(t, db, "INSERT INTO t (v) VALUES ('after')")
		if n := count(t, db, "SELECT count(*) FROM t"); n != 5 {
			t.Fatalf("%d rows, want 5", n)
		}
		alive(t, c)
	})

	t.Run("JournalModeAndPageSize", func(t *testing.T) {
		db := openSafe(t, c, "journal.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
		mustExec(t, db, "INSERT INTO t VALUES (1)")
		for _, q := range []string{"PRAGMA journal_mode=DELETE", "PRAGMA journal_mode = truncate", "PRAGMA page_size=8192", "PRAGMA main.page_size = 1024"} {
			_, err := db.Exec(q)
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("%s: %v, want a refusal", q, err)
			}
		}
		var mode string
		if err := db.QueryRow("PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("PRAGMA journal_mode=WAL: %q, %v; want wal", mode, err)
		}
		mustExec(t, db, "INSERT INTO t VALUES (2)")
		alive(t, c)
	})

	t.Run("ForeignKeysOffByDefault", func(t *testing.T) {
		db := openSafe(t, c, "fk.db")
		mustExec(t, db, "CREATE TABLE p (id INTEGER PRIMARY KEY)")
		mustExec(t, db, "CREATE TABLE ch (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id))")
		mustExec(t, db, "INSERT INTO ch VALUES (1, 42)") // dangling: accepted, as SQLite does by default
		var on int
		if err := db.QueryRow("PRAGMA foreign_keys").Scan(&on); err != nil || on != 0 {
			t.Fatalf("PRAGMA foreign_keys = %d, %v; want 0", on, err)
		}
		fk := openSafe(t, c, "fk.db", "_foreign_keys=on")
		_, err := fk.Exec("INSERT INTO ch VALUES (2, 43)")
		if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
			t.Fatalf("with _foreign_keys=on: %v, want a FOREIGN KEY error", err)
		}
	})

	t.Run("ReadOnlyTransactionRefusesInsert", func(t *testing.T) {
		db := openSafe(t, c, "rotx.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec("INSERT INTO t VALUES (1)")
		if !errors.Is(err, sqlitesafe.ErrReadOnly) {
			t.Errorf("INSERT in a read-only transaction: %v, want ErrReadOnly", err)
		}
		tx.Rollback()
		if n := count(t, db, "SELECT count(*) FROM t"); n != 0 {
			t.Fatalf("%d rows, want 0", n)
		}
	})

	t.Run("ReadsDoNotWaitForTheWriter", func(t *testing.T) {
		db := openSafe(t, c, "readbeside.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
		mustExec(t, db, "INSERT INTO t VALUES (1)")
		tx, err := db.BeginTx(ctx, nil) // holds the writer queue
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec("INSERT INTO t VALUES (2)"); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		start := time.Now()
		var n int
		if err := db.QueryRowContext(rctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
			t.Fatalf("a read beside an open write transaction: %d rows, %v; want 1 (the committed state)", n, err)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("the read took %v beside the write transaction", took)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "SELECT count(*) FROM t"); n != 2 {
			t.Fatalf("%d rows after COMMIT, want 2", n)
		}
	})

	t.Run("SavepointsInTextBeginOnPinnedConn", func(t *testing.T) {
		db := openSafe(t, c, "savepoint.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
		sc, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		for _, q := range []string{"CREATE TEMP TABLE scratch (x)", "BEGIN", "INSERT INTO t VALUES (1)", "SAVEPOINT a",
			"INSERT INTO t VALUES (2)", "ROLLBACK TO a", "INSERT INTO t VALUES (3)", "RELEASE a", "COMMIT"} {
			if _, err := sc.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		var got []int
		rows, err := db.Query("SELECT id FROM t ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int
			rows.Scan(&id)
			got = append(got, id)
		}
		rows.Close()
		if fmt.Sprint(got) != "[1 3]" {
			t.Fatalf("rows %v, want [1 3]", got)
		}
	})

	t.Run("ExecOfRowsAndQueryOfNoRows", func(t *testing.T) {
		db := openSafe(t, c, "shapes.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
		mustExec(t, db, "INSERT INTO t VALUES (1, 'a')")
		for _, q := range []string{"SELECT v FROM t", "PRAGMA journal_mode", "PRAGMA cache_size = 100"} {
			if _, err := db.Exec(q); err != nil {
				t.Errorf("Exec %s: %v", q, err)
			}
		}
		rows, err := db.Query("INSERT INTO t VALUES (2, 'b')")
		if err != nil {
			t.Fatalf("Query of an INSERT: %v", err)
		}
		if rows.Next() {
			t.Error("Query of an INSERT gave a row")
		}
		rows.Close()
		if n := count(t, db, "SELECT count(*) FROM t"); n != 2 {
			t.Fatalf("%d rows, want 2", n)
		}
	})

	t.Run("RefusedStatements", func(t *testing.T) {
		db := openSafe(t, c, "refused.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
		for _, q := range []string{"ATTACH 'other.db' AS o", "PRAGMA wal_checkpoint(TRUNCATE)"} {
			if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("%s: %v, want a refusal", q, err)
			}
		}
		_, err := db.Exec("INSERT INTO t VALUES (?); INSERT INTO t VALUES (?)", 1, 2)
		if err == nil || !strings.Contains(err.Error(), "several statements") {
			t.Errorf("a script with arguments: %v, want a refusal", err)
		}
		mustExec(t, db, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
		if n := count(t, db, "SELECT count(*) FROM t"); n != 2 {
			t.Fatalf("%d rows, want 2", n)
		}
		if _, err := sqlitesafe.Checkpoint(ctx, db, sqlitesafe.CheckpointPassive); !errors.Is(err, sqlitesafe.ErrNotAvailable) {
			t.Errorf("Checkpoint: %v, want ErrNotAvailable", err)
		}
		if err := sqlitesafe.Backup(ctx, db, t.TempDir()+"/b.db"); !errors.Is(err, sqlitesafe.ErrNotAvailable) {
			t.Errorf("Backup: %v, want ErrNotAvailable", err)
		}
		alive(t, c)
	})

	t.Run("ConcurrentWritersNoErrorsExactState", func(t *testing.T) {
		db := openSafe(t, c, "load.db")
		mustExec(t, db, "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL)")
		mustExec(t, db, "CREATE TABLE ins (k TEXT PRIMARY KEY)")
		mustExec(t, db, "CREATE TABLE c (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
		mustExec(t, db, "INSERT INTO c VALUES (1, 0)")
		for i := range 8 {
			mustExec(t, db, "INSERT INTO acct VALUES (?, 1000)", i)
		}
		const goroutines = 32
		var (
			wg                       sync.WaitGroup
			mu                       sync.Mutex
			errs                     []error
			inserts, incs, transfers int
		)
		deadline := time.Now().Add(2 * time.Second)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(deadline); i++ {
					var err error
					switch g % 4 {
					case 0: // read-modify-write transaction
						err = transfer(ctx, db, (g+i)%8, (g+i+1)%8)
					case 1: // typed BEGIN/COMMIT on a pinned conn
						err = textTransfer(ctx, db, (g+i)%8, (g+i+3)%8)
					case 2:
						_, err = db.Exec("INSERT INTO ins VALUES (?)", fmt.Sprintf("%d-%d", g, i))
					case 3:
						_, err = db.Exec("UPDATE c SET v = v + 1 WHERE id = 1")
					}
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						switch g % 4 {
						case 0, 1:
							transfers++
						case 2:
							inserts++
						case 3:
							incs++
						}
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d errors, the first: %v", len(errs), errs[0])
		}
		if n := count(t, db, "SELECT count(*) FROM ins"); n != inserts {
			t.Errorf("%d rows inserted, %d inserts succeeded", n, inserts)
		}
		if n := count(t, db, "SELECT v FROM c"); n != incs {
			t.Errorf("counter %d, %d increments succeeded", n, incs)
		}
		if n := count(t, db, "SELECT sum(bal) FROM acct"); n != 8000 {
			t.Errorf("balances sum to %d, want 8000", n)
		}
		st, err := sqlitesafe.GetStats(db)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d transfers, %d inserts, %d increments in 2 s; group commits %d (%d writes); leader %s",
			transfers, inserts, incs, st.GroupCommits, st.GroupedWrites, st.Cluster.Leader)
		if st.GroupCommits == 0 {
			t.Error("no group commit")
		}
	})
}

// transfer moves 1 from account a to account b in a write transaction.
func transfer(ctx context.Context, db *sql.DB, a, b int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var bal int
	if err := tx.QueryRow("SELECT bal FROM acct WHERE id = ?", a).Scan(&bal); err != nil {
		return err
	}
	if _, err := tx.Exec("UPDATE acct SET bal = ? WHERE id = ?", bal-1, a); err != nil {
		return err
	}
	if _, err := tx.Exec("UPDATE acct SET bal = bal + 1 WHERE id = ?", b); err != nil {
		return err
	}
	return tx.Commit()
}

// textTransfer is transfer with BEGIN and COMMIT typed as SQL on a pinned connection.
func textTransfer(ctx context.Context, db *sql.DB, a, b int) error {
	sc, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer sc.Close()
	if _, err := sc.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	var bal int
	err = sc.QueryRowContext(ctx, "SELECT bal FROM acct WHERE id = ?", a).Scan(&bal)
	if err == nil {
		_, err = sc.ExecContext(ctx, "UPDATE acct SET bal = ? WHERE id = ?", bal-1, a)
	}
	if err == nil {
		_, err = sc.ExecContext(ctx, "UPDATE acct SET bal = bal + 1 WHERE id = ?", b)
	}
	if err != nil {
		sc.ExecContext(ctx, "ROLLBACK")
		return err
	}
	_, err = sc.ExecContext(ctx, "COMMIT")
	return err
}

//go:build linux

package dqlite

// The dqlite 1.11 crash bugs, each on a throwaway cluster: statements that abort the leader, which
// sqlite-safe's dqlite engine must keep away from the cluster. The statements go through a
// sql.Conn, never through *sql.DB: database/sql re-runs a statement that failed with
// driver.ErrBadConn on another connection, that is on the next leader, which then aborts too.

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
)

// waitExit waits up to d for node to exit and reports whether it did.
func waitExit(node *cluster.Node, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for node.Running() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return !node.Running()
}

// pinned is one connection of db, closed at cleanup.
func pinned(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestPlainAutocommitReturningAbortsLeader: an autocommit INSERT ... RETURNING returns an id, but
// its row is not committed, and the next write on that database aborts the leader with
// "Assertion `wal->n_tx == 0' failed" (go-dqlite issue 192, fixed in dqlite 1.18.3). Inside an
// explicit transaction the same statement commits and the leader lives.
func TestPlainAutocommitReturningAbortsLeader(t *testing.T) {
	watchdog(t, time.Minute)
	c := cluster.Start(t, 3)
	db := c.OpenPlain(t, "returning.db")
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, db, "INSERT INTO t (v) VALUES ('before')")
	leader := c.MustLeader(t)
	conn := pinned(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Inside an explicit transaction RETURNING works: the row commits and the leader survives
	// the next write. This is what a driver that wraps autocommit RETURNING relies on.
	var id int
	mustExec(t, conn, "BEGIN IMMEDIATE")
	if err := conn.QueryRowContext(ctx, "INSERT INTO t (v) VALUES ('in-tx') RETURNING id").Scan(&id); err != nil {
		t.Fatalf("INSERT ... RETURNING in a transaction: %v", err)
	}
	mustExec(t, conn, "COMMIT")
	mustExec(t, conn, "INSERT INTO t (v) VALUES ('after-tx')")
	if !leader.Running() {
		t.Fatalf("the leader died after a RETURNING inside a transaction")
	}
	if n := count(t, db, "SELECT count(*) FROM t WHERE v IN ('in-tx', 'after-tx')"); n != 2 || id != 2 {
		t.Fatalf("RETURNING in a transaction: id %d (want 2), %d of its 2 rows committed", id, n)
	}
	mustExec(t, db, "DELETE FROM t WHERE v IN ('in-tx', 'after-tx')")

	if err := conn.QueryRowContext(ctx, "INSERT INTO t (v) VALUES ('returning') RETURNING id").Scan(&id); err != nil {
		t.Fatalf("INSERT ... RETURNING: %v", err)
	}
	t.Logf("autocommit INSERT ... RETURNING returned id %d", id)
	if id != 2 { // max(id) + 1 again: the rows of the transaction above were deleted
		t.Fatalf("want id 2, got %d", id)
	}

	// The next write on the same database, from the same connection.
	_, err := conn.ExecContext(ctx, "INSERT INTO t (v) VALUES ('after')")
	t.Logf("next write: %v", err)
	if err == nil {
		t.Fatalf("the write after an autocommit RETURNING succeeded: the leader survived (dqlite fixed?)")
	}
	if !waitExit(leader, 5*time.Second) {
		t.Fatalf("leader %s still running after the write that follows an autocommit RETURNING", leader.DB)
	}
	if log := leader.Log(); !strings.Contains(log, "wal->n_tx == 0") {
		t.Errorf("leader's log has no \"wal->n_tx == 0\" assertion:\n%s", log)
	} else {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "n_tx") {
				t.Logf("leader's last words: %s", strings.TrimSpace(line))
			}
		}
	}

	// The two survivors elect a leader; the RETURNING row was never committed.
	start := time.Now()
	next := c.MustLeader(t)
	if next == leader {
		t.Fatal("the aborted node is still the leader")
	}
	t.Logf("new leader %s after %v", next.DB, time.Since(start))
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	rows := map[string]bool{}
	r, err := db.QueryContext(rctx, "SELECT v FROM t")
	t.Logf("read on the new leader after %v: %v", time.Since(start), err)
	if err != nil {
		t.Fatalf("read on the new leader: %v", err)
	}
	for r.Next() {
		var v string
		if err := r.Scan(&v); err != nil {
			t.Fatal(err)
		}
		rows[v] = true
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rows on the new leader: %v", rows)
	if !rows["before"] || rows["returning"] || rows["after"] {
		t.Fatalf("want only 'before' on the new leader, got %v", rows)
	}
}

// TestPlainPragmaAbortsLeader: on a non-empty database, PRAGMA journal_mode=DELETE and
// PRAGMA page_size=N abort the leader ("free(): invalid pointer").
func TestPlainPragmaAbortsLeader(t *testing.T) {
	for _, pragma := range []string{"PRAGMA journal_mode=DELETE", "PRAGMA page_size=8192"} {
		t.Run(strings.Fields(pragma)[1], func(t *testing.T) {
			watchdog(t, time.Minute)
			c := cluster.Start(t, 3)
			db := c.OpenPlain(t, "pragma.db")
			mustExec(t, db, "CREATE TABLE t (v INTEGER)")
			mustExec(t, db, "INSERT INTO t VALUES (1)")
			leader := c.MustLeader(t)
			conn := pinned(t, db)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// journal_mode answers a row: Exec would stop at "another row available", so Query.
			rows, err := conn.QueryContext(ctx, pragma)
			if err == nil {
				for rows.Next() {
				}
				err = rows.Err()
				rows.Close()
			}
			t.Logf("%s: %v", pragma, err)
			// page_size is applied lazily: the next write makes it happen.
			if !waitExit(leader, 2*time.Second) {
				_, err := conn.ExecContext(ctx, "INSERT INTO t VALUES (2)")
				t.Logf("next write: %v", err)
			}
			if !waitExit(leader, 5*time.Second) {
				t.Fatalf("leader %s still running after %s on a non-empty database", leader.DB, pragma)
			}
			log := leader.Log()
			// glibc's abort on the bad free: "free(): invalid pointer" or "munmap_chunk(): invalid pointer".
			if !strings.Contains(log, "(): invalid pointer") {
				t.Errorf("leader's log has no \"(): invalid pointer\" abort:\n%s", log)
			}
			for _, line := range strings.Split(log, "\n") {
				if strings.Contains(line, "invalid pointer") {
					t.Logf("leader's last words: %s", strings.TrimSpace(line))
				}
			}
			next := c.MustLeader(t)
			if next == leader {
				t.Fatal("the aborted node is still the leader")
			}
			if n := count(t, db, "SELECT count(*) FROM t"); n != 1 {
				t.Errorf("new leader: want the 1 committed row, got %d", n)
			}
		})
	}
}

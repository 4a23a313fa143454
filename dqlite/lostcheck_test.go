//go:build linux

package dqlite

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
)

// A transaction typed as BEGIN ... COMMIT whose connection to the leader is
// lost while the driver asks whether it is still open (after BEGIN, or after
// a SAVEPOINT in it): the leader rolls it back with the connection, and the
// application learns it from the statement, ErrNotCommitted. The statements
// that follow never run outside the transaction: what it wrote is in the
// database only if its COMMIT succeeded. (CI saw the failure: a transfer's
// statements applied one by one, its COMMIT "no transaction is active",
// balances off by 2.)
func TestTypedTxLostWhileAsked(t *testing.T) {
	watchdog(t, 2*time.Minute)
	c := cluster.Start(t, 3)
	db := openSafe(t, c, "lostcheck.db")
	mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	ctx := context.Background()

	var armed atomic.Bool
	hook := func() bool { return armed.CompareAndSwap(true, false) }
	loseAtInTx.Store(&hook)
	t.Cleanup(func() { loseAtInTx.Store(nil) })

	for i, lose := range []string{"BEGIN", "SAVEPOINT"} {
		id := i + 1
		t.Run("After"+lose, func(t *testing.T) {
			sc, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			step := func(q string, args ...any) error {
				if q == lose {
					armed.Store(true)
				}
				if q == "SAVEPOINT" {
					q = "SAVEPOINT s"
				}
				_, err := sc.ExecContext(ctx, q, args...)
				return err
			}
			err = func() error {
				if err := step("BEGIN"); err != nil {
					return err
				}
				err := step("SAVEPOINT")
				if err == nil {
					err = step("INSERT INTO t VALUES (?)", id)
				}
				if err != nil {
					sc.ExecContext(ctx, "ROLLBACK")
					return err
				}
				return step("COMMIT")
			}()
			if armed.Load() {
				t.Fatalf("the connection was not lost at %s", lose)
			}
			var n int
			if err := db.QueryRow("SELECT count(*) FROM t WHERE id = ?", id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			switch {
			case err == nil:
				t.Errorf("the transaction succeeded though its connection was lost after %s (row present %d times)", lose, n)
			case !errors.Is(err, sqlitesafe.ErrNotCommitted):
				t.Errorf("lost after %s: %v, want ErrNotCommitted", lose, err)
			}
			if err != nil && n != 0 {
				t.Errorf("the transaction failed (%v) and its row is in the database %d times", err, n)
			}
			// The connection goes on: a transaction on it now commits.
			if _, err := sc.ExecContext(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			if _, err := sc.ExecContext(ctx, "INSERT INTO t VALUES (?)", 10+id); err != nil {
				t.Fatal(err)
			}
			if _, err := sc.ExecContext(ctx, "COMMIT"); err != nil {
				t.Fatal(err)
			}
		})
	}
	if n := count(t, db, "SELECT count(*) FROM t"); n != 2 {
		t.Errorf("%d rows, want the 2 of the transactions after the losses", n)
	}
}

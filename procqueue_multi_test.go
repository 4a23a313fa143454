//go:build unix

package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

func init() {
	// holdtx: one write transaction held open for spec.Pause; it prints
	// "holding" once it holds the write lock.
	childRoles["holdtx"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.Exec("INSERT INTO t(x) VALUES (1)"); err != nil {
			return err
		}
		fmt.Println("holding")
		time.Sleep(spec.Pause)
		if err := tx.Commit(); err != nil {
			return err
		}
		res.Committed = 1
		return nil
	}
}

// waitLine waits until the child has printed line.
func waitLine(t *testing.T, c *child, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(c.output(), line) {
		if time.Now().After(deadline) {
			t.Fatalf("the child did not print %q: %v", line, c.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A writer of another process holds the lock: a wait here runs out with an
// error that names that process, and once the process dies, even by
// SIGKILL, the next write goes through at once.
func TestProcessQueueHolderNamedAndFreedByDeath(t *testing.T) {
	skipShort(t, "runs and kills a child process")
	watchdog(t, time.Minute)
	path := dbPath(t)
	db := openSafe(t, path+"?_busy_timeout=300")
	mustExec(t, db, "CREATE TABLE t(x)")

	c := startChild(t, childSpec{Role: "holdtx", Driver: "sqlite-safe", DSN: path, Pause: 30 * time.Second})
	c.waitReady(20 * time.Second)
	waitLine(t, c, "holding")

	start := time.Now()
	_, err := db.Exec("INSERT INTO t(x) VALUES (2)")
	if !errors.Is(err, sqlitesafe.ErrLockTimeout) {
		t.Fatalf("a write while another process holds the lock = %v, want ErrLockTimeout", err)
	}
	want := fmt.Sprintf("held by a writer in another process (pid %d)", c.cmd.Process.Pid)
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "-writer.lock") {
		t.Errorf("the error does not say %q: %v", want, err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("the wait took %s, want about the 300ms busy timeout", d)
	}
	st := mustStats(t, db)
	if st.ProcessWaits < 1 || st.LockTimeouts < 1 {
		t.Errorf("Stats: ProcessWaits %d, LockTimeouts %d; want the wait counted", st.ProcessWaits, st.LockTimeouts)
	}

	// Opening and closing a handle do not queue behind the other process:
	// a close that did would fail after the busy timeout.
	db2 := openSafe(t, path+"?_busy_timeout=300")
	if n := queryInt(t, db2, "SELECT count(*) FROM t"); n != 0 {
		t.Errorf("a new handle reads %d rows, want 0", n)
	}
	if err := db2.Close(); err != nil {
		t.Errorf("closing a handle while another process writes: %v", err)
	}

	c.kill()
	start = time.Now()
	if _, err := db.Exec("INSERT INTO t(x) VALUES (3)"); err != nil {
		t.Fatalf("a write after the holder was killed: %v", err)
	}
	t.Logf("after SIGKILL of the holder the next write took %s", time.Since(start))
	// The killed transaction is gone; ours are there.
	if got := queryInt(t, db, "SELECT count(*) FROM t"); got != 1 {
		t.Errorf("%d rows, want 1 (the killed transaction's row must not be there)", got)
	}
}

// A process on plain SQLite (a cron job, say) holds BEGIN IMMEDIATE past the
// busy timeout. The holder of this process's queue waits for it in SQLite's
// busy handler; every writer that fails says another process holds the lock,
// with its pid, and none blames a transaction of this process.
func TestForeignProcessHolderNamed(t *testing.T) {
	skipShort(t, "runs another process")
	watchdog(t, 2*time.Minute)
	path := dbPath(t)
	db := openSafe(t, path+"?_busy_timeout=1000")
	mustExec(t, db, "CREATE TABLE t(x)")
	c := startChild(t, childSpec{Role: "holdtx", Driver: "sqlite", DSN: rawCareful(path), Pause: 4 * time.Second})
	c.waitReady(20 * time.Second)
	waitLine(t, c, "holding")
	pid := fmt.Sprintf("(pid %d)", c.cmd.Process.Pid)

	errs := parallel(16, 1, func(g, i int) error {
		_, err := db.Exec("INSERT INTO t(x) VALUES (?)", g)
		return err
	})
	if len(errs) != 16 {
		t.Fatalf("%d of 16 writes failed while another process held the write lock past the busy timeout", len(errs))
	}
	for _, err := range errs {
		msg := err.Error()
		if !strings.Contains(msg, "another process "+pid) {
			t.Errorf("the error does not name the other process %s: %v", pid, err)
		}
		if strings.Contains(msg, "do not write through the *sql.DB while your own transaction is open") {
			t.Errorf("the error blames this process's code: %v", err)
		}
	}
	t.Logf("e.g. %v", errs[0])
	c.kill()
	if _, err := db.Exec("INSERT INTO t(x) VALUES (99)"); err != nil {
		t.Fatalf("a write after the other process died: %v", err)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 1 {
		t.Fatalf("%d rows, want the 1 written after", n)
	}
}

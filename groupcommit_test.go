package sqlitesafe

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"modernc.org/sqlite"
)

// openWhite opens a handle and returns its connector too, to look at the
// writer queue.
func openWhite(t testing.TB, dsn string) (*sql.DB, *connector) {
	t.Helper()
	cfg, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	return db, c
}

// batchOf holds the writer lock while the statements queue up behind it, so
// that they run as one group commit, and returns each one's outcome.
func batchOf(t *testing.T, db *sql.DB, c *connector, stmts []string) ([]sql.Result, []error) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	results := make([]sql.Result, len(stmts))
	errs := make([]error, len(stmts))
	var wg sync.WaitGroup
	for i, s := range stmts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = db.Exec(s)
		}()
		untilWaiting(t, &c.file.queue, i+1) // queue them in order
	}
	q := &c.file.queue
	commits, writes := q.stats.groupCommits.Load(), q.stats.groupedWrites.Load()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if c.cfg.DisableGroupCommit {
		if q.stats.groupCommits.Load() != commits {
			t.Errorf("a group commit ran with _group_commit=off")
		}
	} else if q.stats.groupCommits.Load() != commits+1 || q.stats.groupedWrites.Load() != writes+int64(len(stmts)) {
		t.Errorf("%d group commits of %d writes, want 1 of %d", q.stats.groupCommits.Load()-commits, q.stats.groupedWrites.Load()-writes, len(stmts))
	}
	return results, errs
}

func code(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func TestGroupCommitKeepsEachOutcome(t *testing.T) {
	t.Parallel()
	db, c := openWhite(t, filepath.Join(t.TempDir(), "app.db")+"?_foreign_keys=on")
	for _, s := range []string{
		"CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT UNIQUE)",
		"CREATE TABLE parent(id INTEGER PRIMARY KEY)",
		"CREATE TABLE child(id INTEGER PRIMARY KEY, p REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)",
		"INSERT INTO t VALUES (1, 'taken')",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("a failing statement fails alone", func(t *testing.T) {
		res, errs := batchOf(t, db, c, []string{
			"INSERT INTO t VALUES (10, 'a')",
			"INSERT INTO t VALUES (11, 'taken')", // unique violation
			"INSERT INTO t VALUES (12, 'b')",
			"UPDATE t SET k = 'taken2' WHERE id = 10",
		})
		if code(errs[1]) != 2067 {
			t.Fatalf("duplicate: %v, want SQLITE_CONSTRAINT_UNIQUE", errs[1])
		}
		for _, i := range []int{0, 2, 3} {
			if errs[i] != nil {
				t.Fatalf("statement %d: %v", i, errs[i])
			}
		}
		if id, _ := res[2].LastInsertId(); id != 12 {
			t.Errorf("LastInsertId of the third insert = %d, want 12", id)
		}
		if n, _ := res[3].RowsAffected(); n != 1 {
			t.Errorf("RowsAffected of the update = %d, want 1", n)
		}
		var ks string
		db.QueryRow("SELECT group_concat(k, ',') FROM (SELECT k FROM t WHERE id >= 10 ORDER BY id)").Scan(&ks)
		if ks != "taken2,b" {
			t.Fatalf("rows %q, want taken2,b", ks)
		}
	})

	t.Run("ON CONFLICT ROLLBACK does not take the others with it", func(t *testing.T) {
		_, errs := batchOf(t, db, c, []string{
			"INSERT INTO t VALUES (20, 'c')",
			"INSERT OR ROLLBACK INTO t VALUES (21, 'taken')", // rolls back the whole transaction
			"INSERT INTO t VALUES (22, 'd')",
		})
		if code(errs[1])&0xff != 19 || errs[0] != nil || errs[2] != nil {
			t.Fatalf("outcomes %v", errs)
		}
		var n int
		db.QueryRow("SELECT count(*) FROM t WHERE id IN (20, 21, 22)").Scan(&n)
		if n != 2 {
			t.Fatalf("%d of rows 20 and 22 are there, want 2", n)
		}
	})

	t.Run("a deferred foreign key fails only its own statement", func(t *testing.T) {
		_, errs := batchOf(t, db, c, []string{
			"INSERT INTO parent VALUES (1)",
			"INSERT INTO child VALUES (1, 1)",
			"INSERT INTO child VALUES (2, 99)", // no parent 99: fails at commit
			"INSERT INTO child VALUES (3, 1)",
		})
		if code(errs[2])&0xff != 19 {
			t.Fatalf("dangling child: %v, want SQLITE_CONSTRAINT", errs[2])
		}
		for _, i := range []int{0, 1, 3} {
			if errs[i] != nil {
				t.Fatalf("statement %d: %v", i, errs[i])
			}
		}
		var ids string
		db.QueryRow("SELECT group_concat(id, ',') FROM (SELECT id FROM child ORDER BY id)").Scan(&ids)
		if ids != "1,3" {
			t.Fatalf("children %q, want 1,3", ids)
		}
	})

	t.Run("a canceled caller is not run", func(t *testing.T) {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, err := db.ExecContext(ctx, "INSERT INTO t VALUES (30, 'e')")
			done <- err
		}()
		untilWaiting(t, &c.file.queue, 1)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled while queued: %v", err)
		}
		tx.Commit()
		var n int
		db.QueryRow("SELECT count(*) FROM t WHERE id = 30").Scan(&n)
		if n != 0 {
			t.Fatal("the canceled write ran")
		}
	})
}

func TestGroupCommitOff(t *testing.T) {
	t.Parallel()
	db, c := openWhite(t, filepath.Join(t.TempDir(), "app.db")+"?_group_commit=off")
	if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
		t.Fatal(err)
	}
	var stmts []string
	for i := range 5 {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO t VALUES (%d)", i))
	}
	_, errs := batchOf(t, db, c, stmts)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var n int
	db.QueryRow("SELECT count(*) FROM t").Scan(&n)
	if n != 5 {
		t.Fatalf("%d rows, want 5", n)
	}
}

func TestMisjudgedReadRunsOnTheWriter(t *testing.T) {
	// Not in parallel: it plants wrong entries in the package-wide cache of
	// statement classes, for texts other tests run too.
	db, _ := openWhite(t, filepath.Join(t.TempDir(), "app.db"))
	if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
		t.Fatal(err)
	}
	// Pretend the classifier took these writes for reads: a reader refuses
	// each, and it runs again on the writer, once.
	for _, q := range []string{"INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2) RETURNING x"} {
		classify(q)
		remember(q, &stmtInfo{})
		if flags := classify(q).flags; flags != 0 {
			t.Fatalf("%s: flags %v after remember", q, flags)
		}
	}
	if _, err := db.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("misjudged Exec: %v", err)
	}
	var x int
	if err := db.QueryRow("INSERT INTO t VALUES (2) RETURNING x").Scan(&x); err != nil || x != 2 {
		t.Fatalf("misjudged Query: %d, %v", x, err)
	}
	var n, sum int
	db.QueryRow("SELECT count(*), sum(x) FROM t").Scan(&n, &sum)
	if n != 2 || sum != 3 {
		t.Fatalf("%d rows summing to %d, want 2 and 3: a write ran twice or not at all", n, sum)
	}
	// Stats counts each re-run.
	if st, err := GetStats(db); err != nil || st.Reruns != 2 {
		t.Errorf("Stats.Reruns = %d, %v; want 2", st.Reruns, err)
	}
	// The next time they go to the writer directly.
	for _, q := range []string{"INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2) RETURNING x"} {
		if classify(q).flags&flagWrite == 0 {
			t.Errorf("%s is still taken for a read", q)
		}
	}
}

// TestGroupCommitPreparesBeginAndCommitOnce: the writer connection runs
// every group commit's BEGIN IMMEDIATE and COMMIT from statements it
// prepared once, the same ones after a COMMIT that failed (a deferred
// foreign key), and the group commits after that failure commit.
func TestGroupCommitPreparesBeginAndCommitOnce(t *testing.T) {
	t.Parallel()
	db, c := openWhite(t, filepath.Join(t.TempDir(), "app.db")+"?_foreign_keys=on")
	for _, s := range []string{
		"CREATE TABLE parent(id INTEGER PRIMARY KEY)",
		"CREATE TABLE child(id INTEGER PRIMARY KEY, p REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)",
		"INSERT INTO parent VALUES (1)",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	prepared := func() (begin, commit any) {
		t.Helper()
		w := c.writer
		if w == nil {
			t.Fatal("no writer connection after a group commit")
		}
		if w.ctl["BEGIN IMMEDIATE"] == nil || w.ctl["COMMIT"] == nil {
			t.Fatalf("after a group commit the writer holds %d prepared of BEGIN IMMEDIATE and COMMIT, want both", len(w.ctl))
		}
		return w.ctl["BEGIN IMMEDIATE"], w.ctl["COMMIT"]
	}
	batch := func(ids ...int) []error {
		t.Helper()
		stmts := make([]string, len(ids))
		for i, id := range ids {
			p := 1
			if id < 0 {
				id, p = -id, 99 // no parent 99: fails at COMMIT
			}
			stmts[i] = fmt.Sprintf("INSERT INTO child VALUES (%d, %d)", id, p)
		}
		_, errs := batchOf(t, db, c, stmts)
		return errs
	}
	for _, err := range batch(1, 2, 3) {
		if err != nil {
			t.Fatal(err)
		}
	}
	begin, commit := prepared()
	if errs := batch(4, -5, 6); errs[0] != nil || code(errs[1])&0xff != 19 || errs[2] != nil {
		t.Fatalf("a batch whose COMMIT fails: %v", errs)
	}
	for _, err := range batch(7, 8) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if b, cm := prepared(); b != begin || cm != commit {
		t.Fatal("BEGIN IMMEDIATE or COMMIT prepared again")
	}
	var ids string
	if err := db.QueryRow("SELECT group_concat(id, ',') FROM (SELECT id FROM child ORDER BY id)").Scan(&ids); err != nil || ids != "1,2,3,4,6,7,8" {
		t.Fatalf("children %q (%v), want 1,2,3,4,6,7,8", ids, err)
	}
}

package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

func TestPinnedConnectionState(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	ctx := context.Background()
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	mustExec(t, open(t, "sqlite", other), "CREATE TABLE o(v)", "INSERT INTO o VALUES ('attached')")
	db := openSafe(t, filepath.Join(dir, "app.db"))
	mustExec(t, db, "CREATE TABLE t(x)")

	// Several pinned connections at once, each with a TEMP table of the
	// same name: each sees its own, reads included. They are all held
	// until all are done: a connection handed back to the pool keeps its
	// state, as with any driver, and could be handed to another goroutine.
	const goroutines = 8
	var held, done sync.WaitGroup
	held.Add(goroutines)
	done.Add(goroutines)
	errs := parallel(goroutines, 1, func(g, _ int) error {
		conn, err := db.Conn(ctx)
		held.Done()
		if err != nil {
			done.Done()
			return err
		}
		defer func() {
			done.Done()
			done.Wait()
			conn.Close()
		}()
		held.Wait()
		if _, err := conn.ExecContext(ctx, "CREATE TEMP TABLE scratch(v)"); err != nil {
			return err
		}
		for i := range 10 {
			if _, err := conn.ExecContext(ctx, "INSERT INTO scratch VALUES (?)", g*100+i); err != nil {
				return err
			}
			if _, err := conn.ExecContext(ctx, "INSERT INTO t VALUES (?)", g); err != nil {
				return err
			}
		}
		var n, sum int64
		if err := conn.QueryRowContext(ctx, "SELECT count(*), sum(v) FROM scratch").Scan(&n, &sum); err != nil {
			return err
		}
		if want := int64(10*g*100 + 45); n != 10 || sum != want {
			return fmt.Errorf("connection %d sees %d rows summing to %d in its temp table, want 10 and %d", g, n, sum, want)
		}
		return nil
	})
	noErrors(t, "temp tables on pinned connections", errs)
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != goroutines*10 {
		t.Fatalf("%d rows in t, want %d", n, goroutines*10)
	}

	// ATTACH and connection settings on a pinned connection.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS other", other); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRowContext(ctx, "SELECT v FROM other.o").Scan(&v); err != nil || v != "attached" {
		t.Fatalf("read from the attached database: %q, %v", v, err)
	}
	mustExec(t, conn, "PRAGMA foreign_keys = ON", "PRAGMA case_sensitive_like = ON")
	if got := pragmaOf(t, conn, "foreign_keys"); got != "1" {
		t.Fatalf("PRAGMA foreign_keys on the pinned connection = %s after setting it, want 1", got)
	}
	if n := queryInt(t, conn, "SELECT 'a' LIKE 'A'"); n != 0 {
		t.Fatal("case_sensitive_like set on the pinned connection did not apply to its reads")
	}
	// Writes on the pinned connection still take the writer queue: they
	// interleave with the pool's writes without error.
	errs = parallel(4, 25, func(g, i int) error {
		if g == 0 {
			_, err := conn.ExecContext(ctx, "INSERT INTO t VALUES (-1)")
			return err
		}
		_, err := db.Exec("INSERT INTO t VALUES (-2)")
		return err
	})
	noErrors(t, "writes beside a pinned connection", errs)
	if n := queryInt(t, db, "SELECT count(*) FROM t WHERE x < 0"); n != 100 {
		t.Fatalf("%d rows, want 100", n)
	}
}

func TestInMemory(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{":memory:", "file::memory:", "file:mem?mode=memory", "file:/mem?vfs=memdb"} {
		t.Run(dsn, func(t *testing.T) {
			watchdog(t, time.Minute)
			work := func(db *sql.DB) (int64, []error) {
				if _, err := db.Exec("CREATE TABLE t(g, i)"); err != nil {
					return 0, []error{err}
				}
				errs := parallel(8, 25, func(g, i int) error {
					if i%5 == 0 {
						return rmwInsert(db, g, i)
					}
					_, err := db.Exec("INSERT INTO t VALUES (?, ?)", g, i)
					return err
				})
				var n int64
				if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
					errs = append(errs, err)
				}
				return n, errs
			}
			// A table made on one pinned connection is there on a second:
			// one database, however many connections the pool opens.
			twoConns := func(db *sql.DB) error {
				ctx := context.Background()
				c1, err := db.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer c1.Close()
				mustExec(t, c1, "CREATE TABLE u(x)")
				c2, err := db.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer c2.Close()
				_, err = c2.ExecContext(ctx, "INSERT INTO u VALUES (1)")
				return err
			}
			if dsn == ":memory:" {
				// Plain modernc.org/sqlite gives each pool connection its
				// own empty database.
				if err := twoConns(open(t, "sqlite", dsn)); err == nil || !strings.Contains(err.Error(), "no such table") {
					t.Fatalf("control: %v, want 'no such table' from another connection's database", err)
				}
			}
			db := openSafe(t, dsn)
			if err := twoConns(db); err != nil {
				t.Fatalf("a table made on one connection, written on another: %v", err)
			}
			n, errs := work(db)
			noErrors(t, dsn, errs)
			if n != 200 {
				t.Fatalf("%d rows, want 200", n)
			}
		})
	}
}

// rmwInsert inserts a row in a transaction that reads first.
func rmwInsert(db *sql.DB, g, i int) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		return err
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (?, ?)", g, i); err != nil {
		return err
	}
	return tx.Commit()
}

func TestHandlesShareTheQueue(t *testing.T) {
	t.Parallel()
	watchdog(t, 2*time.Minute)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, path)
	if err != nil {
		t.Fatal(err)
	}
	spellings := []string{path, rel, "file:" + path, "file://" + path, "file://localhost" + path, link, "file:" + link + "?_txlock=deferred"}
	main := openSafe(t, path)
	mustExec(t, main, counterSchema...)

	tx, err := main.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, dsn := range spellings {
		// Every spelling waits in the same queue: its write times out on
		// the transaction begun above, not on SQLite's busy handler.
		db := openSafe(t, dsn)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := db.ExecContext(ctx, "UPDATE counter SET n = n + 1")
		cancel()
		var lte *sqlitesafe.LockTimeoutError
		if !errors.As(err, &lte) || !strings.Contains(lte.HolderSite, "routing_test.go:") {
			t.Errorf("%s: write while another handle's transaction holds the lock: %v, want a *LockTimeoutError naming that transaction", dsn, err)
		}
	}
	tx.Rollback()

	// And read-modify-write transactions through all of them at once lose
	// nothing.
	var dbs []*sql.DB
	for _, dsn := range spellings {
		dbs = append(dbs, openSafe(t, dsn))
	}
	const iterations = 20
	errs := parallel(len(dbs)*2, iterations, func(g, i int) error {
		return rmw(context.Background(), dbs[g%len(dbs)], 50*time.Microsecond)
	})
	noErrors(t, "read-modify-write through several handles", errs)
	if n := queryInt(t, main, "SELECT n FROM counter"); n != int64(len(dbs)*2*iterations) {
		t.Fatalf("counter = %d, want %d", n, len(dbs)*2*iterations)
	}

	t.Run("control", func(t *testing.T) {
		// Two plain handles on one file: their deferred transactions
		// collide.
		path := dbPath(t)
		a := open(t, "sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		b := open(t, "sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
		mustExec(t, a, counterSchema...)
		errs := parallel(8, 20, func(g, i int) error {
			return rmw(context.Background(), []*sql.DB{a, b}[g%2], 200*time.Microsecond)
		})
		onlyBusy(t, "two plain handles", errs)
	})
}

func TestPreparedStatements(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, g, i)")
	ins, err := db.Prepare("INSERT INTO t(g, i) VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	sel, err := db.Prepare("SELECT count(*) FROM t WHERE g = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	ret, err := db.Prepare("INSERT INTO t(g, i) VALUES (?, -1) RETURNING id")
	if err != nil {
		t.Fatal(err)
	}
	defer ret.Close()
	const goroutines, iterations = 16, 25
	errs := parallel(goroutines, iterations, func(g, i int) error {
		if _, err := ins.Exec(g, i); err != nil {
			return err
		}
		var id int64
		if err := ret.QueryRow(g).Scan(&id); err != nil {
			return err
		}
		// A prepared statement inside a transaction.
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback()
		var n int64
		if err := tx.Stmt(sel).QueryRow(g).Scan(&n); err != nil {
			return err
		}
		if n != int64(3*i+2) {
			return fmt.Errorf("goroutine %d sees %d of its rows, want %d", g, n, 3*i+2)
		}
		if _, err := tx.Stmt(ins).Exec(g, 1000+i); err != nil {
			return err
		}
		return tx.Commit()
	})
	noErrors(t, "prepared statements", errs)
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 3*goroutines*iterations {
		t.Fatalf("%d rows, want %d", n, 3*goroutines*iterations)
	}
	// Prepare reports a bad statement.
	if _, err := db.Prepare("SELEKT 1"); err == nil {
		t.Error("Prepare of a syntax error succeeded")
	}
	if _, err := db.Prepare("INSERT INTO nosuchtable VALUES (1)"); err == nil {
		t.Error("Prepare of an insert into a missing table succeeded")
	}
}

func TestScripts(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE a(v)", "CREATE TABLE b(v)")
	const goroutines, iterations = 8, 20
	errs := parallel(goroutines, iterations, func(g, i int) error {
		// A script that reads first: a naive look at its first word would
		// send it to a reader.
		_, err := db.Exec(`SELECT 1; INSERT INTO a VALUES (1); -- and
			INSERT INTO b SELECT count(*) FROM a;`)
		return err
	})
	noErrors(t, "scripts", errs)
	if n := queryInt(t, db, "SELECT count(*) FROM a"); n != goroutines*iterations {
		t.Fatalf("%d rows in a, want %d", n, goroutines*iterations)
	}
	// Each script's two inserts are consecutive: b holds 1..N exactly once.
	if n := queryInt(t, db, "SELECT count(DISTINCT v) FROM b"); n != goroutines*iterations {
		t.Fatalf("%d distinct counts in b, want %d", n, goroutines*iterations)
	}
}

func TestMaintenanceBesideWrites(t *testing.T) {
	t.Parallel()
	watchdog(t, 2*time.Minute)
	const goroutines, iterations = 8, 30
	work := func(db *sql.DB) []error {
		mustExec(t, db, counterSchema...)
		mustExec(t, db, "CREATE TABLE t(v)")
		maint := []string{"VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA optimize", "PRAGMA user_version = 7", "ANALYZE", "REINDEX"}
		// Readers run beside it all, and must not fail either.
		stop := make(chan struct{})
		readErrs := make(chan error, 1)
		go func() {
			defer close(readErrs)
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int64
				if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
					readErrs <- err
					return
				}
			}
		}()
		errs := parallel(goroutines, iterations, func(g, i int) error {
			if g == 0 && i%5 == 0 {
				_, err := db.Exec(maint[(i/5)%len(maint)])
				return err
			}
			if i%2 == 0 {
				return rmw(context.Background(), db, 0)
			}
			_, err := db.Exec("INSERT INTO t VALUES (randomblob(100))")
			return err
		})
		close(stop)
		if err := <-readErrs; err != nil {
			errs = append(errs, fmt.Errorf("reader: %w", err))
		}
		return errs
	}
	t.Run("control", func(t *testing.T) {
		db := open(t, "sqlite", "file:"+dbPath(t)+"?_pragma=journal_mode(WAL)")
		onlyBusy(t, "maintenance beside writes", work(db))
	})
	t.Run("sqlite-safe", func(t *testing.T) {
		db := openSafe(t, dbPath(t))
		noErrors(t, "maintenance beside writes", work(db))
		rmws, inserts := int64(0), int64(0)
		for g := range goroutines {
			for i := range iterations {
				switch {
				case g == 0 && i%5 == 0:
				case i%2 == 0:
					rmws++
				default:
					inserts++
				}
			}
		}
		if n := queryInt(t, db, "SELECT n FROM counter"); n != rmws {
			t.Errorf("counter = %d, want %d", n, rmws)
		}
		if n := queryInt(t, db, "SELECT count(*) FROM t"); n != inserts {
			t.Errorf("%d rows, want %d", n, inserts)
		}
		if v := queryInt(t, db, "PRAGMA user_version"); v != 7 {
			t.Errorf("user_version = %d, want 7", v)
		}
	})
}

func TestErrorsAreReachable(t *testing.T) {
	t.Parallel()
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE t(k TEXT PRIMARY KEY)", "INSERT INTO t VALUES ('a')")
	_, err := db.Exec("INSERT INTO t VALUES ('a')")
	if got := sqliteCode(err); got != 1555 { // SQLITE_CONSTRAINT_PRIMARYKEY
		t.Fatalf("duplicate key: code %d (%v), want 1555", got, err)
	}
	_, err = db.Query("SELECT * FROM nosuchtable")
	if got := sqliteCode(err); got != 1 {
		t.Fatalf("missing table: code %d (%v), want 1", got, err)
	}
}

func TestConnectionSettingWithOneConnection(t *testing.T) {
	t.Parallel()
	// A common program: one connection in the pool, a connection PRAGMA
	// set with Exec after opening. It must keep applying to every later
	// call, reads and writes, as it does with any driver.
	db := openSafe(t, dbPath(t))
	db.SetMaxOpenConns(1)
	mustExec(t, db,
		"PRAGMA foreign_keys = ON",
		"CREATE TABLE parent(id INTEGER PRIMARY KEY)",
		"CREATE TABLE child(p INTEGER REFERENCES parent(id))",
		"CREATE TEMP TABLE scratch(v)",
		"INSERT INTO scratch VALUES (1)")
	if got := pragmaOf(t, db, "foreign_keys"); got != "1" {
		t.Fatalf("PRAGMA foreign_keys = %s, want 1", got)
	}
	if _, err := db.Exec("INSERT INTO child VALUES (42)"); sqliteCode(err)&0xff != 19 {
		t.Fatalf("insert of a dangling child: %v, want SQLITE_CONSTRAINT", err)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM scratch"); n != 1 {
		t.Fatalf("temp table has %d rows, want 1", n)
	}
}

func TestJournalModeChangeBesideReaders(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t)+"?_busy_timeout=2s")
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	// Reads have opened reader connections; leaving WAL needs them closed.
	for range 4 {
		queryInt(t, db, "SELECT count(*) FROM t")
	}
	for _, mode := range []string{"delete", "wal", "truncate", "wal"} {
		var got string
		if err := db.QueryRow("PRAGMA journal_mode = " + mode).Scan(&got); err != nil || got != mode {
			t.Fatalf("PRAGMA journal_mode = %s: %q, %v", mode, got, err)
		}
		mustExec(t, db, "INSERT INTO t VALUES (1)")
		if got := pragmaOf(t, db, "journal_mode"); got != mode {
			t.Fatalf("journal_mode reads %s after setting %s", got, mode)
		}
	}
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 5 {
		t.Fatalf("%d rows, want 5", n)
	}
}

func TestSharedCacheOnAFile(t *testing.T) {
	t.Parallel()
	// cache=shared, common in DSNs copied from old answers, is ignored
	// for a file: concurrent writes and reads work as without it.
	watchdog(t, time.Minute)
	work := func(db *sql.DB) []error {
		mustExec(t, db, "CREATE TABLE t(x)")
		return parallel(8, 40, func(g, i int) error {
			if g%2 == 0 {
				_, err := db.Exec("INSERT INTO t VALUES (?)", i)
				return err
			}
			var n int64
			return db.QueryRow("SELECT count(*) FROM t").Scan(&n)
		})
	}
	t.Run("sqlite-safe", func(t *testing.T) {
		db := openSafe(t, "file:"+dbPath(t)+"?cache=shared")
		noErrors(t, "cache=shared on a file", work(db))
		if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 4*40 {
			t.Fatalf("%d rows, want 160", n)
		}
	})
}

// Opening a handle while another handle of the process holds a write
// transaction: it opens, pings and reads at once. Only the file's own
// settings take the writer queue, and they are already set.
func TestOpenWhileWriteTransactionOpen(t *testing.T) {
	watchdog(t, time.Minute)
	path := dbPath(t)
	first := openSafe(t, path)
	mustExec(t, first, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	tx, err := first.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	for _, dsn := range []string{path + "?_busy_timeout=3000", "file:" + path + "?mode=ro&_busy_timeout=3000"} {
		start := time.Now()
		db := openSafe(t, dsn)
		if err := db.Ping(); err != nil {
			t.Fatalf("%s: Ping: %v", dsn, err)
		}
		if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 1 {
			t.Fatalf("%s: %d rows, want the 1 committed", dsn, n)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("%s: open, ping and read took %s beside a write transaction", dsn, d)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

func TestRegistered(t *testing.T) {
	t.Parallel()
	if !slices.Contains(sql.Drivers(), "sqlite-safe") {
		t.Fatalf("sql.Drivers() = %v, want it to hold sqlite-safe", sql.Drivers())
	}
	// A bad DSN is reported by sql.Open itself, and the message does not
	// echo the DSN, which may carry secrets.
	dsn := "/srv/secret-tenant/app.db?_busy_timout=5000"
	_, err := sql.Open("sqlite-safe", dsn)
	if !errors.Is(err, sqlitesafe.ErrInvalidDSN) {
		t.Fatalf("sql.Open with a typo: %v, want ErrInvalidDSN", err)
	}
	if !strings.Contains(err.Error(), `"_busy_timout"`) || strings.Contains(err.Error(), "secret-tenant") {
		t.Fatalf("error %q should name the key and not the DSN", err)
	}
}

// pragmaOf reads a PRAGMA through q as text.
func pragmaOf(t *testing.T, q queryer, name string) string {
	t.Helper()
	var v string
	if err := q.QueryRowContext(context.Background(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestDefaultsReadBack(t *testing.T) {
	t.Parallel()
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE t(x)")
	want := map[string]string{"journal_mode": "wal", "busy_timeout": "5000", "synchronous": "1", "foreign_keys": "0"}
	for name, v := range want {
		// Through the pool: a read, served by a reader connection.
		if got := pragmaOf(t, db, name); got != v {
			t.Errorf("PRAGMA %s through the pool = %s, want %s", name, got, v)
		}
		// Inside a write transaction: the writer connection.
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if got := pragmaOf(t, tx, name); got != v {
			t.Errorf("PRAGMA %s in a write transaction = %s, want %s", name, got, v)
		}
		tx.Rollback()
	}
}

func TestDSNSettingsReadBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query  string
		pragma string
		want   string
	}{
		{"_busy_timeout=2s", "busy_timeout", "2000"},
		{"_timeout=250", "busy_timeout", "250"},
		{"_synchronous=FULL", "synchronous", "2"},
		{"_sync=off", "synchronous", "0"},
		{"_journal_mode=DELETE", "journal_mode", "delete"},
		{"_journal=truncate", "journal_mode", "truncate"},
		{"_foreign_keys=on", "foreign_keys", "1"},
		{"_fk=1", "foreign_keys", "1"},
		{"_pragma=cache_size(-4000)", "cache_size", "-4000"},
		{"_pragma=busy_timeout(1234)", "busy_timeout", "1234"},
		{"_pragma=journal_mode(DELETE)", "journal_mode", "delete"},
		// A file-level pragma: set once by the writer, not on the readers
		// (a mode=ro connection could not), and read back through either.
		{"_pragma=user_version(5)", "user_version", "5"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			db := openSafe(t, dbPath(t)+"?"+tc.query)
			mustExec(t, db, "CREATE TABLE t(x)")
			if got := pragmaOf(t, db, tc.pragma); got != tc.want {
				t.Errorf("PRAGMA %s through the pool = %s, want %s", tc.pragma, got, tc.want)
			}
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if got := pragmaOf(t, tx, tc.pragma); got != tc.want {
				t.Errorf("PRAGMA %s on the writer = %s, want %s", tc.pragma, got, tc.want)
			}
		})
	}
}

func TestWALUnavailable(t *testing.T) {
	t.Parallel()
	// unix-none is a VFS without shared memory: SQLite keeps the rollback
	// journal when asked for WAL, silently. The driver must not.
	path := dbPath(t)
	db := openSafe(t, "file:"+path+"?vfs=unix-none")
	err := db.Ping()
	if !errors.Is(err, sqlitesafe.ErrWALUnavailable) {
		t.Fatalf("open on unix-none: %v, want ErrWALUnavailable", err)
	}
	if !strings.Contains(err.Error(), "_journal_mode") {
		t.Errorf("error %q should name the DSN key that chooses another mode", err)
	}
	// The key it names works.
	db = openSafe(t, "file:"+path+"?vfs=unix-none&_journal_mode=DELETE")
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	if got := pragmaOf(t, db, "journal_mode"); got != "delete" {
		t.Errorf("journal_mode = %s, want delete", got)
	}
}

// Hazard 1: a deferred BEGIN reads, then cannot upgrade to a write lock that
// another connection took first. SQLite fails it at once, without calling the
// busy handler.
func TestHazardDeferredUpgrade(t *testing.T) {
	t.Parallel()
	watchdog(t, 2*time.Minute)
	const goroutines, iterations = 8, 25
	work := func(db *sql.DB) []error {
		mustExec(t, db, counterSchema...)
		return parallel(goroutines, iterations, func(g, i int) error {
			return rmw(context.Background(), db, 200*time.Microsecond)
		})
	}

	t.Run("control", func(t *testing.T) {
		path := dbPath(t)
		// WAL and a busy timeout, but BEGIN as database/sql sends it: deferred.
		db := open(t, "sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		onlyBusy(t, "deferred read-modify-write", work(db))
	})
	t.Run("sqlite-safe", func(t *testing.T) {
		db := openSafe(t, dbPath(t))
		noErrors(t, "read-modify-write", work(db))
		if n := queryInt(t, db, "SELECT n FROM counter"); n != goroutines*iterations {
			t.Fatalf("counter = %d, want %d: updates were lost", n, goroutines*iterations)
		}
	})
	t.Run("sqlite-safe _txlock=deferred", func(t *testing.T) {
		// Even when the user asks SQLite for deferred transactions, the
		// writer queue keeps the process's own writers from colliding.
		db := openSafe(t, dbPath(t)+"?_txlock=deferred")
		noErrors(t, "read-modify-write", work(db))
		if n := queryInt(t, db, "SELECT n FROM counter"); n != goroutines*iterations {
			t.Fatalf("counter = %d, want %d", n, goroutines*iterations)
		}
	})
}

// Hazard 2: modernc.org/sqlite's busy timeout is zero: a writer that finds
// the lock taken fails at once.
func TestHazardZeroBusyTimeout(t *testing.T) {
	t.Parallel()
	watchdog(t, 2*time.Minute)
	const goroutines, iterations = 8, 25
	work := func(db *sql.DB) []error {
		mustExec(t, db, "CREATE TABLE t(g, i)")
		return parallel(goroutines, iterations, func(g, i int) error {
			tx, err := db.Begin()
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.Exec("INSERT INTO t VALUES (?, ?)", g, i); err != nil {
				return err
			}
			time.Sleep(100 * time.Microsecond)
			return tx.Commit()
		})
	}
	t.Run("control", func(t *testing.T) {
		db := open(t, "sqlite", "file:"+dbPath(t)+"?_pragma=journal_mode(WAL)&_txlock=immediate")
		onlyBusy(t, "inserts without a busy timeout", work(db))
	})
	t.Run("sqlite-safe", func(t *testing.T) {
		db := openSafe(t, dbPath(t))
		noErrors(t, "inserts", work(db))
		if n := queryInt(t, db, "SELECT count(*) FROM t"); n != goroutines*iterations {
			t.Fatalf("%d rows, want %d", n, goroutines*iterations)
		}
	})
}

// Hazard 3: with the rollback journal, a reader in the middle of its rows
// keeps a writer from committing.
func TestHazardRollbackJournal(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	work := func(t *testing.T, db *sql.DB) (readerSaw int64, writeErr error) {
		mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY)", "INSERT INTO t VALUES (1), (2), (3)")
		rows, err := db.Query("SELECT id FROM t ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		if !rows.Next() { // the reader is now inside its read transaction
			t.Fatal("no first row")
		}
		_, writeErr = db.Exec("INSERT INTO t VALUES (4)")
		for rows.Next() {
		}
		var n int64
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n, writeErr
	}
	t.Run("control", func(t *testing.T) {
		// modernc.org/sqlite's defaults, with a short busy timeout so that
		// the test does not wait long for the failure.
		db := open(t, "sqlite", "file:"+dbPath(t)+"?_pragma=busy_timeout(100)")
		_, err := work(t, db)
		if !isBusy(err) {
			t.Fatalf("write while a reader is mid-rows, rollback journal: %v, want SQLITE_BUSY", err)
		}
		t.Logf("control: %v", err)
	})
	t.Run("sqlite-safe", func(t *testing.T) {
		db := openSafe(t, dbPath(t))
		n, err := work(t, db)
		if err != nil {
			t.Fatalf("write while a reader is mid-rows: %v", err)
		}
		if n != 4 {
			t.Fatalf("count after the write = %d, want 4", n)
		}
	})
}

func TestConcurrentReadModifyWrite(t *testing.T) {
	t.Parallel()
	watchdog(t, 2*time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, counterSchema...)
	const goroutines, iterations = 32, 20
	errs := parallel(goroutines, iterations, func(g, i int) error {
		return rmw(context.Background(), db, 0)
	})
	noErrors(t, "read-modify-write", errs)
	if n := queryInt(t, db, "SELECT n FROM counter"); n != goroutines*iterations {
		t.Fatalf("counter = %d, want %d", n, goroutines*iterations)
	}
}

func TestReturningThroughQueryRow(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, g, i)")
	const goroutines, iterations = 16, 25
	var mu sync.Mutex
	ids := map[int64]bool{}
	errs := parallel(goroutines, iterations, func(g, i int) error {
		var id int64
		if err := db.QueryRow("INSERT INTO t(g, i) VALUES (?, ?) RETURNING id", g, i).Scan(&id); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if ids[id] {
			return fmt.Errorf("id %d returned twice", id)
		}
		ids[id] = true
		return nil
	})
	noErrors(t, "INSERT ... RETURNING", errs)
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != goroutines*iterations || len(ids) != goroutines*iterations {
		t.Fatalf("%d rows and %d ids, want %d", n, len(ids), goroutines*iterations)
	}
	// Every returned id is a committed row.
	if n := queryInt(t, db, "SELECT count(*) FROM t WHERE id <= ?", goroutines*iterations); n != goroutines*iterations {
		t.Fatalf("ids do not match rows")
	}
}

func TestDisguisedWrites(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT UNIQUE, v INTEGER)")
	// Each is a write that a naive "starts with SELECT?" test, or a reader,
	// would get wrong. Each inserts or changes exactly one row per call.
	writes := []struct {
		name string
		sql  string // %d is replaced by a unique number
		via  string // exec, query or queryrow
	}{
		{"leading comment", "/* audit */ INSERT INTO t(k, v) VALUES ('a%d', 1)", "query"},
		{"line comment and blanks", "  -- note\n\n\tinsert into t(k, v) values ('b%d', 1)", "query"},
		{"CTE insert returning", "WITH x(k) AS (SELECT 'c%d') INSERT INTO t(k, v) SELECT k, 1 FROM x RETURNING id", "queryrow"},
		{"recursive CTE", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 1) INSERT INTO t(k, v) SELECT 'd%d', n FROM r", "query"},
		{"replace", "REPLACE INTO t(k, v) VALUES ('e%d', 1)", "query"},
		{"upsert", "INSERT INTO t(k, v) VALUES ('f%d', 1) ON CONFLICT(k) DO UPDATE SET v = v + 1 RETURNING v", "queryrow"},
		{"mixed case", "InSeRt InTo t(k, v) VaLuEs ('g%d', 1)", "exec"},
		{"update returning", "UPDATE t SET v = v + 1 WHERE k = 'seed' RETURNING v", "queryrow"},
	}
	mustExec(t, db, "INSERT INTO t(k, v) VALUES ('seed', 0)")
	const goroutines, iterations = 8, 10
	var seq sync.Mutex
	next := 0
	errs := parallel(goroutines, iterations, func(g, i int) error {
		for _, w := range writes {
			seq.Lock()
			next++
			q := w.sql
			if strings.Contains(q, "%d") {
				q = fmt.Sprintf(q, next)
			}
			seq.Unlock()
			var err error
			switch w.via {
			case "exec":
				_, err = db.Exec(q)
			case "query":
				var rows *sql.Rows
				if rows, err = db.Query(q); err == nil {
					for rows.Next() {
					}
					err = errors.Join(rows.Err(), rows.Close())
				}
			case "queryrow":
				var v any
				err = db.QueryRow(q).Scan(&v)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", w.name, err)
			}
		}
		return nil
	})
	noErrors(t, "disguised writes", errs)
	inserts := int64(len(writes)-1) * goroutines * iterations
	if n := queryInt(t, db, "SELECT count(*) FROM t WHERE k <> 'seed'"); n != inserts {
		t.Errorf("%d rows inserted, want %d", n, inserts)
	}
	if n := queryInt(t, db, "SELECT v FROM t WHERE k = 'seed'"); n != goroutines*iterations {
		t.Errorf("seed updated %d times, want %d", n, goroutines*iterations)
	}
}

func TestReadOnlyTransaction(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")

	// A write transaction holds the writer lock; a read-only transaction
	// must not wait for it.
	wtx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer wtx.Rollback()
	if _, err := wtx.Exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}

	rtx, err := db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, rtx, "SELECT count(*) FROM t"); n != 1 {
		t.Errorf("read-only transaction sees %d rows, want 1 (the last committed state)", n)
	}
	_, err = rtx.Exec("INSERT INTO t VALUES (3)")
	if !errors.Is(err, sqlitesafe.ErrReadOnly) || sqliteCode(err)&0xff != 8 {
		t.Fatalf("write in a read-only transaction: %v, want ErrReadOnly wrapping SQLITE_READONLY", err)
	}
	if err := rtx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := wtx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 2 {
		t.Fatalf("%d rows, want 2: the read-only transaction wrote, or the write was lost", n)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM t WHERE x = 3"); n != 0 {
		t.Fatal("the refused write is in the database")
	}
}

func TestLockWaitHonoursContext(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE t(x)")
	tx, err := db.Begin() // the holder; its line is in the error below
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = db.ExecContext(ctx, "INSERT INTO t VALUES (1)")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write while another transaction holds the lock: %v, want context.DeadlineExceeded", err)
	}
	if errors.Is(err, sqlitesafe.ErrLockTimeout) {
		t.Errorf("the context ended the wait, not the busy timeout: %v", err)
	}
	var lte *sqlitesafe.LockTimeoutError
	if !errors.As(err, &lte) {
		t.Fatalf("%v is not a *LockTimeoutError", err)
	}
	if lte.Waited < 90*time.Millisecond || time.Since(start) > 4*time.Second {
		t.Errorf("waited %s (returned after %s), want about 100ms", lte.Waited, time.Since(start))
	}
	if !strings.HasPrefix(lte.Holder, "a transaction") || !strings.Contains(lte.HolderSite, "driver_test.go:") {
		t.Errorf("holder %q at %q, want the transaction begun in driver_test.go", lte.Holder, lte.HolderSite)
	}
	t.Logf("message: %v", err)
}

func TestLockWaitBoundedByBusyTimeout(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t)+"?_busy_timeout=150ms")
	mustExec(t, db, "CREATE TABLE t(x)")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// The same goroutine writes through the pool while its own
	// transaction holds the lock: it must get an error, not hang.
	_, err = db.Exec("INSERT INTO t VALUES (2)")
	if !errors.Is(err, sqlitesafe.ErrLockTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("self-deadlocking write: %v, want ErrLockTimeout", err)
	}
	if !strings.Contains(err.Error(), "driver_test.go:") {
		t.Errorf("%q should say where the holding transaction began", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}

func TestReadsDuringWriteTransaction(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, counterSchema...)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE counter SET n = 100"); err != nil {
		t.Fatal(err)
	}
	// The transaction stays open until every read below has returned: a
	// read that waited for the writer would never return (the watchdog
	// would fire).
	errs := parallel(8, 20, func(g, i int) error {
		var n int64
		if err := db.QueryRow("SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("read saw %d, an uncommitted value", n)
		}
		return nil
	})
	noErrors(t, "reads during a write transaction", errs)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, db, "SELECT n FROM counter"); n != 100 {
		t.Fatalf("after commit n = %d, want 100", n)
	}
}

// textTx runs a read-modify-write transaction written as SQL on a pinned
// connection, with the variant of BEGIN and of its end given.
func textTx(ctx context.Context, db *sql.DB, begin, end string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return err
	}
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
		conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	time.Sleep(100 * time.Microsecond)
	if _, err := conn.ExecContext(ctx, "UPDATE counter SET n = ? WHERE id = 1", n+1); err != nil {
		conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	if _, err := conn.ExecContext(ctx, end); err != nil {
		conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	return nil
}

var textVariants = [][2]string{
	{"BEGIN", "COMMIT"},
	{"begin deferred", "end"},
	{"BEGIN TRANSACTION", "COMMIT TRANSACTION"},
	{"/* ORM */ Begin Deferred Transaction", "END TRANSACTION"},
	{"SAVEPOINT outer_sp", "RELEASE outer_sp"},
	{"SAVEPOINT s2", "RELEASE SAVEPOINT s2"},
}

func TestTextTransactions(t *testing.T) {
	t.Parallel()
	watchdog(t, 2*time.Minute)
	const goroutines, iterations = 8, 12
	work := func(db *sql.DB) []error {
		mustExec(t, db, counterSchema...)
		return parallel(goroutines, iterations, func(g, i int) error {
			v := textVariants[(g+i)%len(textVariants)]
			return textTx(context.Background(), db, v[0], v[1])
		})
	}
	t.Run("control", func(t *testing.T) {
		// _txlock=immediate only changes database/sql's BeginTx; a BEGIN
		// typed as SQL stays deferred.
		onlyBusy(t, "text transactions", work(open(t, "sqlite", rawCareful(dbPath(t)))))
	})
	t.Run("sqlite-safe", func(t *testing.T) {
		db := openSafe(t, dbPath(t))
		noErrors(t, "text transactions", work(db))
		if n := queryInt(t, db, "SELECT n FROM counter"); n != goroutines*iterations {
			t.Fatalf("counter = %d, want %d", n, goroutines*iterations)
		}
	})
}

func TestTextTransactionScript(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, counterSchema...)
	mustExec(t, db, "CREATE TABLE log(n)")
	const goroutines, iterations = 8, 20
	errs := parallel(goroutines, iterations, func(g, i int) error {
		_, err := db.Exec(`BEGIN;
			INSERT INTO log SELECT n FROM counter WHERE id = 1;
			UPDATE counter SET n = n + 1 WHERE id = 1;
			COMMIT;`)
		return err
	})
	noErrors(t, "BEGIN; ...; COMMIT scripts", errs)
	if n := queryInt(t, db, "SELECT n FROM counter"); n != goroutines*iterations {
		t.Fatalf("counter = %d, want %d", n, goroutines*iterations)
	}
	// Each script saw the counter as the one before it left it.
	if n := queryInt(t, db, "SELECT count(DISTINCT n) FROM log"); n != goroutines*iterations {
		t.Fatalf("%d distinct values logged, want %d: scripts interleaved", n, goroutines*iterations)
	}
}

func TestTextTransactionEnds(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	ctx := context.Background()
	db := openSafe(t, dbPath(t)+"?_busy_timeout=2s")
	mustExec(t, db, "CREATE TABLE t(x)")

	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "BEGIN", "INSERT INTO t VALUES (1)", "ROLLBACK")
	// ROLLBACK released the lock: a write through the pool goes through.
	mustExec(t, db, "INSERT INTO t VALUES (2)")

	// A transaction left open when the pinned connection is closed is
	// rolled back, and its lock released.
	mustExec(t, conn, "BEGIN", "INSERT INTO t VALUES (3)")
	conn.Close()
	start := time.Now()
	mustExec(t, db, "INSERT INTO t VALUES (4)")
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("write after closing a connection mid-transaction waited %s", waited)
	}
	rows, err := db.Query("SELECT x FROM t ORDER BY x")
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for rows.Next() {
		var x int64
		rows.Scan(&x)
		got = append(got, x)
	}
	rows.Close()
	if !slices.Equal(got, []int64{2, 4}) {
		t.Fatalf("rows %v, want [2 4]: rolled-back rows survived or committed ones were lost", got)
	}
}

func TestFailuresReleaseTheLock(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t)+"?_busy_timeout=1s&_foreign_keys=on")
	mustExec(t, db,
		"CREATE TABLE parent(id INTEGER PRIMARY KEY)",
		"CREATE TABLE child(id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)",
		"CREATE TABLE t(k TEXT UNIQUE)",
		"INSERT INTO t VALUES ('taken')")
	// After each failure, a write must go through at once: a leaked lock
	// would make it time out.
	after := func(what string) {
		t.Helper()
		if _, err := db.Exec("INSERT INTO t VALUES (?)", what); err != nil {
			t.Fatalf("write after %s: %v", what, err)
		}
	}

	// A failing autocommit statement.
	if _, err := db.Exec("INSERT INTO t VALUES ('taken')"); sqliteCode(err) != 2067 {
		t.Fatalf("duplicate insert: %v, want SQLITE_CONSTRAINT_UNIQUE (2067)", err)
	}
	after("failed statement")

	// A failing COMMIT: a deferred foreign key is checked at commit.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO child VALUES (1, 42)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); sqliteCode(err)&0xff != 19 {
		t.Fatalf("commit with a dangling deferred foreign key: %v, want SQLITE_CONSTRAINT", err)
	}
	after("failed commit")
	if n := queryInt(t, db, "SELECT count(*) FROM child"); n != 0 {
		t.Fatalf("the failed transaction left %d rows", n)
	}

	// A panic in user code inside a transaction, with the usual deferred
	// Rollback.
	func() {
		defer func() { recover() }()
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		tx.Exec("INSERT INTO t VALUES ('in panicking tx')")
		panic("user code")
	}()
	after("panic in a transaction")

	// A panic while iterating the rows of a writing query.
	func() {
		defer func() { recover() }()
		rows, err := db.Query("INSERT INTO t VALUES ('returned') RETURNING k")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		rows.Next()
		panic("user code")
	}()
	after("panic over writing rows")

	// A failed statement inside a transaction, then Rollback.
	tx, err = db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO nosuchtable VALUES (1)"); err == nil {
		t.Fatal("insert into a missing table succeeded")
	}
	tx.Rollback()
	after("failed statement in a transaction")

	want := []string{"taken", "failed statement", "failed commit", "panic in a transaction", "returned", "panic over writing rows", "failed statement in a transaction"}
	rows, err := db.Query("SELECT k FROM t ORDER BY rowid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var k string
		rows.Scan(&k)
		got = append(got, k)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
}

func TestNewConnector(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	cfg := &sqlitesafe.Config{Path: path, BusyTimeout: 1500 * time.Millisecond}
	c, err := sqlitesafe.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BusyTimeout = time.Hour // the connector keeps its own copy
	cfg.Path = "elsewhere.db"
	db := sql.OpenDB(c)
	defer db.Close()
	mustExec(t, db, counterSchema...)
	if got := pragmaOf(t, db, "busy_timeout"); got != "1500" {
		t.Errorf("busy_timeout = %s, want 1500", got)
	}
	noErrors(t, "read-modify-write", parallel(8, 10, func(g, i int) error {
		return rmw(context.Background(), db, 0)
	}))
	if n := queryInt(t, db, "SELECT n FROM counter"); n != 80 {
		t.Fatalf("counter = %d, want 80", n)
	}
	// The same database through a DSN that FormatDSN wrote.
	back, err := sqlitesafe.ParseDSN((&sqlitesafe.Config{Path: path, Synchronous: sqlitesafe.SynchronousFull}).FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := sqlitesafe.NewConnector(back)
	if err != nil {
		t.Fatal(err)
	}
	db2 := sql.OpenDB(c2)
	defer db2.Close()
	if n := queryInt(t, db2, "SELECT n FROM counter"); n != 80 {
		t.Fatalf("second handle reads %d", n)
	}
	if got := pragmaOf(t, db2, "synchronous"); got != "2" {
		t.Errorf("synchronous = %s, want 2 (FULL)", got)
	}
	// A bad Config is refused by NewConnector itself.
	if _, err := sqlitesafe.NewConnector(&sqlitesafe.Config{Path: path, TxLock: "sometimes"}); !errors.Is(err, sqlitesafe.ErrInvalidDSN) {
		t.Fatalf("NewConnector with a bad TxLock: %v, want ErrInvalidDSN", err)
	}
}

func TestWriterQueueOff(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	// With the queue off the driver behaves as tuned modernc.org/sqlite
	// does: BEGIN IMMEDIATE and SQLite's busy handler, no queue.
	db := openSafe(t, dbPath(t)+"?_writer_queue=off&_busy_timeout=200ms")
	mustExec(t, db, counterSchema...)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec("UPDATE counter SET n = n + 1")
	if !isBusy(err) {
		t.Fatalf("write while a transaction holds the lock, queue off: %v, want SQLITE_BUSY from SQLite's busy handler", err)
	}
	var lte *sqlitesafe.LockTimeoutError
	if errors.As(err, &lte) {
		t.Fatalf("queue off, yet the write waited in the queue: %v", err)
	}
	tx.Rollback()
	db2 := openSafe(t, dbPath(t)+"?_writer_queue=off")
	mustExec(t, db2, counterSchema...)
	noErrors(t, "read-modify-write, queue off", parallel(8, 10, func(g, i int) error {
		return rmw(context.Background(), db2, 0)
	}))
	if n := queryInt(t, db2, "SELECT n FROM counter"); n != 80 {
		t.Fatalf("counter = %d, want 80", n)
	}
}

func TestCanceledTransactionReleasesTheLock(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t)+"?_busy_timeout=2s")
	mustExec(t, db, "CREATE TABLE t(x)")
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// The caller gives up without Commit or Rollback: database/sql rolls
	// the transaction back when its context ends, and the lock must go
	// with it.
	cancel()
	start := time.Now()
	mustExec(t, db, "INSERT INTO t VALUES (2)")
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("the next write waited %s", waited)
	}
	if err := tx.Commit(); err == nil {
		t.Error("Commit after the context ended succeeded")
	}
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 1 || queryInt(t, db, "SELECT x FROM t") != 2 {
		t.Fatalf("rows: want only the second insert")
	}
}

func TestManyGoroutines(t *testing.T) {
	t.Parallel()
	watchdog(t, 3*time.Minute)
	// Far more goroutines than connections SQLite likes: no error, nothing
	// lost, whatever the number. The last of 256 queued writers waits for
	// all the others: under -race on a busy machine that is more than the
	// default 5 s busy timeout, which is not what this test is about.
	db := openSafe(t, dbPath(t)+"?_busy_timeout=1m")
	mustExec(t, db, counterSchema...)
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, g)")
	const goroutines, iterations = 256, 4
	errs := parallel(goroutines, iterations, func(g, i int) error {
		switch i % 4 {
		case 0:
			return rmw(context.Background(), db, 0)
		case 1:
			_, err := db.Exec("INSERT INTO t(g) VALUES (?)", g)
			return err
		case 2:
			var id int64
			return db.QueryRow("INSERT INTO t(g) VALUES (?) RETURNING id", g).Scan(&id)
		default:
			var n int64
			return db.QueryRow("SELECT count(*) FROM t WHERE g = ?", g).Scan(&n)
		}
	})
	noErrors(t, "256 goroutines", errs)
	if n := queryInt(t, db, "SELECT n FROM counter"); n != goroutines {
		t.Errorf("counter = %d, want %d", n, goroutines)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 2*goroutines {
		t.Errorf("%d rows, want %d", n, 2*goroutines)
	}
}

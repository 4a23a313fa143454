package sqlitesafe_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// crashSchema is the database the crash writers write: an order is a row
// in orders, three rows in order_items with its id, and one more in
// totals.orders, written by one transaction (or, for orders inserted with
// via = 'trigger', by one autocommit statement and its trigger).
var crashSchema = []string{
	"CREATE TABLE orders(id INTEGER PRIMARY KEY, g INTEGER NOT NULL, via TEXT NOT NULL, note TEXT NOT NULL)",
	"CREATE TABLE order_items(order_id INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(order_id, n))",
	"CREATE TABLE totals(id INTEGER PRIMARY KEY, orders INTEGER NOT NULL)",
	"INSERT INTO totals VALUES (1, 0)",
	"CREATE TABLE probes(k INTEGER NOT NULL)",
	`CREATE TRIGGER order_items_of AFTER INSERT ON orders WHEN NEW.via = 'trigger' BEGIN
		INSERT INTO order_items VALUES (NEW.id, 1), (NEW.id, 2), (NEW.id, 3);
		UPDATE totals SET orders = orders + 1 WHERE id = 1;
	END`,
}

// crashNote pads each order, so that the WAL grows and checkpoints run
// while the writer may be killed.
var crashNote = strings.Repeat("x", 100)

// crashWriter runs spec.Goroutines goroutines writing orders with ids from
// spec.Base+1 up until the process is killed, printing "committed ID" once
// an order's write has returned without error. An error ends the process
// with status 1: the parent sees it did not die of its kill.
func crashWriter(spec childSpec, write func(id int64, g int) error) error {
	var next atomic.Int64
	next.Store(spec.Base)
	var wg sync.WaitGroup
	for g := range spec.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := next.Add(1)
				if err := write(id, g); err != nil {
					fmt.Fprintf(os.Stderr, "order %d: %v\n", id, err)
					os.Exit(1)
				}
				fmt.Printf("committed %d\n", id)
			}
		}()
	}
	wg.Wait()
	return nil
}

func init() {
	// crash-tx: each order is a transaction of five statements.
	childRoles["crash-tx"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		return crashWriter(spec, func(id int64, g int) error {
			tx, err := db.BeginTx(context.Background(), nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.Exec("INSERT INTO orders(id, g, via, note) VALUES (?, ?, 'tx', ?)", id, g, crashNote); err != nil {
				return err
			}
			for n := 1; n <= 3; n++ {
				if _, err := tx.Exec("INSERT INTO order_items(order_id, n) VALUES (?, ?)", id, n); err != nil {
					return err
				}
			}
			if _, err := tx.Exec("UPDATE totals SET orders = orders + 1 WHERE id = 1"); err != nil {
				return err
			}
			return tx.Commit()
		})
	}
	// crash-group: each order is one autocommit insert (its trigger writes
	// the rest); from several goroutines they are group-committed.
	childRoles["crash-group"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		return crashWriter(spec, func(id int64, g int) error {
			_, err := db.Exec("INSERT INTO orders(id, g, via, note) VALUES (?, ?, 'trigger', ?)", id, g, crashNote)
			return err
		})
	}
}

// crashSeed is the seed of the kill times: SQLITESAFE_CRASH_SEED if set, to
// replay a failure, else the time.
func crashSeed(t *testing.T) uint64 {
	if s := os.Getenv("SQLITESAFE_CRASH_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SQLITESAFE_CRASH_SEED: %v", err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// TestCrashKill9 SIGKILLs a writer process at a random moment, again and
// again, on one database file. After each kill: every order the writer
// reported committed is there; no order is there in part (orders,
// order_items and totals agree exactly); the file passes PRAGMA
// integrity_check; and a new handle writes at once, with no lock left
// behind by the dead process.
func TestCrashKill9(t *testing.T) {
	skipShort(t, "kills writer processes, 50 times")
	watchdog(t, 3*time.Minute)
	const kills = 25
	for _, tc := range []struct {
		role       string
		goroutines int
		dsn        string // DSN parameters of the writer
	}{
		{"crash-tx", 2, ""},
		// Autocommit inserts from 8 goroutines are group-committed; a
		// small autocheckpoint makes kills land in checkpoints too.
		{"crash-group", 8, "?_pragma=wal_autocheckpoint(50)"},
	} {
		t.Run(tc.role, func(t *testing.T) {
			seed := crashSeed(t)
			t.Logf("seed %d (set SQLITESAFE_CRASH_SEED to replay)", seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			path := dbPath(t)
			db := openSafe(t, path)
			mustExec(t, db, crashSchema...)
			db.Close()

			var (
				reportedTotal, unreported, emptyRuns int
				orders                               int64 // orders in the file after the last kill
				slowestWrite                         time.Duration
			)
			for it := range kills {
				base := int64(it+1) * 1_000_000
				c := startChild(t, childSpec{Role: tc.role, Driver: "sqlite-safe", DSN: path + tc.dsn,
					Goroutines: tc.goroutines, Base: base, Deadline: time.Now().Add(30 * time.Second)})
				c.waitReady(30 * time.Second)
				delay := time.Duration(5+rng.IntN(196)) * time.Millisecond
				time.Sleep(delay)
				c.kill()

				reported := map[int64]bool{}
				for _, line := range c.output() {
					if s, ok := strings.CutPrefix(line, "committed "); ok {
						id, err := strconv.ParseInt(s, 10, 64)
						if err != nil {
							t.Fatalf("kill %d: child printed %q", it, line)
						}
						reported[id] = true
					}
				}
				reportedTotal += len(reported)
				if len(reported) == 0 {
					emptyRuns++
				}

				// The next open writes at once.
				db := openSafe(t, path+"?_busy_timeout=2s")
				start := time.Now()
				tx, err := db.Begin()
				if err != nil {
					t.Fatalf("kill %d (after %s): begin on a fresh handle: %v", it, delay, err)
				}
				if _, err := tx.Exec("INSERT INTO probes(k) VALUES (?)", it); err != nil {
					t.Fatalf("kill %d (after %s): write on a fresh handle: %v", it, delay, err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatalf("kill %d (after %s): commit on a fresh handle: %v", it, delay, err)
				}
				slowestWrite = max(slowestWrite, time.Since(start))

				if got := integrityCheck(t, db); got != "ok" {
					t.Fatalf("kill %d (after %s): integrity_check: %s", it, delay, got)
				}
				// Every reported order is there; at most one more per
				// goroutine (committed, killed before it printed).
				ids := queryIDs(t, db, "SELECT id FROM orders WHERE id > ? AND id < ? ORDER BY id", base, base+1_000_000)
				for id := range reported {
					if _, found := slices.BinarySearch(ids, id); !found {
						t.Fatalf("kill %d (after %s): order %d was reported committed and is not in the file", it, delay, id)
					}
				}
				extra := len(ids) - len(reported)
				if extra > tc.goroutines {
					t.Fatalf("kill %d: %d orders in the file that were not reported committed, want at most %d (one per goroutine)", it, extra, tc.goroutines)
				}
				unreported += extra
				// No order is there in part, and earlier ones are still
				// there: the file holds as many as all runs left.
				crashConsistent(t, db, fmt.Sprintf("kill %d (after %s)", it, delay), base, base+1_000_000)
				orders += int64(len(ids))
				if n := queryInt(t, db, "SELECT count(*) FROM orders"); n != orders {
					t.Fatalf("kill %d: %d orders in the file, want %d (those of earlier runs plus %d)", it, n, orders, len(ids))
				}
				if n := queryInt(t, db, "SELECT count(*) FROM probes"); n != int64(it+1) {
					t.Fatalf("kill %d: %d probe rows, want %d", it, n, it+1)
				}
				db.Close()
			}
			t.Logf("%d kills: %d orders reported committed, %d more committed but killed before they were reported, %d runs killed before any commit; slowest first write after a kill %s",
				kills, reportedTotal, unreported, emptyRuns, slowestWrite.Round(time.Microsecond))
			if emptyRuns > kills/2 {
				t.Fatalf("%d of %d runs were killed before any commit: the kills did not land among the writes", emptyRuns, kills)
			}
		})
	}
}

// integrityCheck returns PRAGMA integrity_check's rows, joined.
func integrityCheck(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "; ")
}

// queryIDs runs a query returning one integer column.
func queryIDs(t *testing.T, db *sql.DB, q string, args ...any) []int64 {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// crashConsistent checks that every order with an id in (from, to) is
// whole: orders and order_items hold the same ids, three items each. And
// totals counts all the orders in the file.
func crashConsistent(t *testing.T, db *sql.DB, when string, from, to int64) {
	t.Helper()
	if ids := queryIDs(t, db, "SELECT id FROM orders WHERE id > ?1 AND id < ?2 EXCEPT SELECT order_id FROM order_items WHERE order_id > ?1 AND order_id < ?2", from, to); len(ids) > 0 {
		t.Fatalf("%s: orders without items: %v", when, ids)
	}
	if ids := queryIDs(t, db, "SELECT order_id FROM order_items WHERE order_id > ?1 AND order_id < ?2 EXCEPT SELECT id FROM orders WHERE id > ?1 AND id < ?2", from, to); len(ids) > 0 {
		t.Fatalf("%s: items without an order: %v", when, ids)
	}
	if ids := queryIDs(t, db, "SELECT order_id FROM order_items WHERE order_id > ? AND order_id < ? GROUP BY order_id HAVING count(*) <> 3", from, to); len(ids) > 0 {
		t.Fatalf("%s: orders with other than 3 items: %v", when, ids)
	}
	if n, total := queryInt(t, db, "SELECT count(*) FROM orders"), queryInt(t, db, "SELECT orders FROM totals WHERE id = 1"); n != total {
		t.Fatalf("%s: %d orders, totals says %d", when, n, total)
	}
	if n, items := queryInt(t, db, "SELECT count(*) FROM orders"), queryInt(t, db, "SELECT count(*) FROM order_items"); items != 3*n {
		t.Fatalf("%s: %d orders and %d items, want 3 items an order", when, n, items)
	}
}

package sqlitesafe_test

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/libc"
	lib "modernc.org/sqlite/lib"
)

// The benchmarks compare sqlite-safe with plain modernc.org/sqlite in the
// same run. scripts/bench.sh runs them, BENCHMARKS.md reads them. Every
// benchmark reports bytes and allocations per op (Go heap only: SQLite
// allocates through modernc.org/libc's allocator, which BenchmarkReaderPoolMemory
// measures), and every load reports errors/op and latency percentiles.

// A benchmark target: how a database is opened.
type target struct {
	name   string
	driver string
	dsn    func(path, sync string) string
}

var (
	// moderncDefaults is plain modernc.org/sqlite as a new user opens it:
	// rollback journal, no busy timeout, deferred BEGIN. Under contention it
	// fails with SQLITE_BUSY at once; errors/op shows how often, and its
	// throughput counts only the calls that succeeded (scripts/benchchart).
	moderncDefaults = target{"modernc-defaults", "sqlite", func(path, sync string) string {
		return "file:" + path + "?_pragma=synchronous(" + sync + ")"
	}}
	// moderncTuned is plain modernc.org/sqlite as the usual "database is
	// locked" guides configure it: WAL, a 5 s busy timeout, NORMAL (or the
	// synchronous mode asked for) and BEGIN IMMEDIATE.
	moderncTuned = target{"modernc-tuned", "sqlite", func(path, sync string) string {
		return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")&_txlock=immediate"
	}}
	// safe is sqlite-safe with its defaults (WAL, 5 s, BEGIN IMMEDIATE,
	// writer queue, group commit, reader pool) and the synchronous mode asked
	// for.
	safe = target{"sqlite-safe", "sqlite-safe", func(path, sync string) string {
		return path + "?_synchronous=" + sync
	}}
	// safeNoAnchor is safe with the read anchor off (_read_anchor=off):
	// each read takes and gives back its read lock with a system call.
	safeNoAnchor = target{"sqlite-safe-anchor-off", "sqlite-safe", func(path, sync string) string {
		return path + "?_synchronous=" + sync + "&_read_anchor=off"
	}}

	// allTargets are the three, in the order of every table and chart.
	allTargets = []target{moderncDefaults, moderncTuned, safe}
	// syncModes are the synchronous settings every write benchmark runs
	// with: NORMAL, the WAL default, and FULL, an fsync per commit.
	syncModes = []string{"NORMAL", "FULL"}
	// sweep is the goroutine counts of the insert and read-modify-write
	// sweeps.
	sweep = []int{1, 2, 8, 32, 64, 256}
)

// openBench opens a fresh database for a benchmark, with a table t of 1000
// rows and a counter row. It also arms a watchdog: a round of a benchmark
// lasts about -benchtime plus a few busy timeouts, so one still running long
// after that is a hang, and it must fail the run with every goroutine's
// stack rather than stall it.
func openBench(b *testing.B, tg target, sync string) *sql.DB {
	b.Helper()
	watchdog(b, benchWatchdog())
	db := open(b, tg.driver, tg.dsn(dbPath(b), sync))
	fillBench(b, db)
	return db
}

// fillBench creates table t with 1000 rows and the counter row.
func fillBench(b *testing.B, db *sql.DB) {
	b.Helper()
	mustExec(b, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(b, db, counterSchema...)
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if _, err := tx.Exec("INSERT INTO t(id, v) VALUES (?, ?)", i+1, "hello"); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// benchWatchdog is how long one round of a benchmark may run: ten minutes,
// plus thirty times -benchtime when that is a duration.
func benchWatchdog() time.Duration {
	d := 10 * time.Minute
	if f := flag.Lookup("test.benchtime"); f != nil {
		if bt, err := time.ParseDuration(f.Value.String()); err == nil {
			d += 30 * bt
		}
	}
	return d
}

// load runs b.N calls of op spread over g goroutines, timing each, and
// reports errors/op, p50, p99 and p99.9 latency and the maximum. Failed
// calls count in the latencies too (for modernc-defaults they are the fast
// ones), and in ns/op: throughput in successful calls is
// (1 - errors/op) / ns/op.
func load(b *testing.B, g int, op func(i int) error) {
	b.Helper()
	b.ReportAllocs()
	lat := make([]int64, b.N)
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				start := time.Now()
				if err := op(i); err != nil {
					errs.Add(1)
				}
				lat[i] = int64(time.Since(start))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
	b.ReportMetric(float64(errs.Load())/float64(b.N), "errors/op")
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
	b.ReportMetric(pct(0.999), "p99.9-ns")
	b.ReportMetric(float64(lat[len(lat)-1]), "max-ns")
}

// BenchmarkInsert: autocommit single-row inserts, one per call, from g
// goroutines. The target to beat is one goroutine on one connection of
// modernc-tuned: the uncontended single-writer limit.
func BenchmarkInsert(b *testing.B) {
	for _, sync := range syncModes {
		for _, tg := range allTargets {
			for _, g := range sweep {
				b.Run(fmt.Sprintf("sync=%s/impl=%s/g=%d", sync, tg.name, g), func(b *testing.B) {
					db := openBench(b, tg, sync)
					load(b, g, func(i int) error {
						_, err := db.Exec("INSERT INTO t(v) VALUES (?)", "x")
						return err
					})
				})
			}
		}
	}
}

// BenchmarkReadModifyWrite: transactions that read a counter and write it
// back, from g goroutines. lost-updates is the number of committed
// increments missing from the counter at the end (a count for the whole
// run, not per op; it must be 0).
func BenchmarkReadModifyWrite(b *testing.B) {
	for _, sync := range syncModes {
		for _, tg := range allTargets {
			for _, g := range sweep {
				b.Run(fmt.Sprintf("sync=%s/impl=%s/g=%d", sync, tg.name, g), func(b *testing.B) {
					db := openBench(b, tg, sync)
					var committed atomic.Int64
					load(b, g, func(i int) error {
						err := rmw(context.Background(), db, 0)
						if err == nil {
							committed.Add(1)
						}
						return err
					})
					var n int64
					if err := db.QueryRow("SELECT n FROM counter").Scan(&n); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(committed.Load()-n), "lost-updates")
				})
			}
		}
	}
}

// BenchmarkPointRead: SELECT of one row by primary key, from g goroutines,
// alone or beside a writer that keeps long write transactions open.
// (modernc-defaults is left out of the reads: without WAL a reader beside a
// writer is a different experiment, the one BenchmarkMixed shows.)
func BenchmarkPointRead(b *testing.B) {
	for _, beside := range []string{"alone", "beside-writer"} {
		for _, tg := range []target{moderncTuned, safe} {
			for _, g := range []int{1, 2} {
				b.Run(fmt.Sprintf("load=%s/impl=%s/g=%d", beside, tg.name, g), func(b *testing.B) {
					db := openBench(b, tg, "NORMAL")
					if beside == "beside-writer" {
						stop := longWriter(db)
						defer stop()
					}
					load(b, g, func(i int) error {
						var v string
						return db.QueryRow("SELECT v FROM t WHERE id = ?", i%1000+1).Scan(&v)
					})
				})
			}
		}
	}
}

// longWriter keeps write transactions of about 5 ms open on db until stopped.
func longWriter(db *sql.DB) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			tx, err := db.Begin()
			if err != nil {
				time.Sleep(time.Millisecond) // no busy loop beside the readers
				continue
			}
			tx.Exec("UPDATE counter SET n = n + 1")
			time.Sleep(5 * time.Millisecond)
			tx.Commit()
		}
	}()
	return func() { close(done); wg.Wait() }
}

// BenchmarkMixed: 32 goroutines, each call a point read or, with the given
// share, a read-modify-write transaction.
func BenchmarkMixed(b *testing.B) {
	for _, writes := range []int{10, 50} {
		for _, tg := range allTargets {
			b.Run(fmt.Sprintf("writes=%d%%/impl=%s/g=32", writes, tg.name), func(b *testing.B) {
				db := openBench(b, tg, "NORMAL")
				load(b, 32, func(i int) error {
					if i%100 < writes {
						return rmw(context.Background(), db, 0)
					}
					var v string
					return db.QueryRow("SELECT v FROM t WHERE id = ?", i%1000+1).Scan(&v)
				})
			})
		}
	}
}

// BenchmarkPointReadPrepared: as BenchmarkPointRead alone, through a
// statement prepared once, and for sqlite-safe also without (stmt=no), in
// the same run. Plain modernc.org/sqlite prepares on every unprepared call;
// sqlite-safe keeps each query's statement prepared on every connection, so
// for it preparing saves nothing, and database/sql's *sql.Stmt costs more
// than db.QueryRow (it takes more locks and allocates two more objects per
// call). sqlite-safe-anchor-off is sqlite-safe prepared with the read anchor
// off: what the anchor saves a lone reader.
func BenchmarkPointReadPrepared(b *testing.B) {
	for _, c := range []struct {
		tg   target
		stmt bool
	}{{moderncTuned, true}, {safe, true}, {safe, false}, {safeNoAnchor, true}} {
		name := fmt.Sprintf("impl=%s/g=1", c.tg.name)
		if !c.stmt {
			name = fmt.Sprintf("impl=%s/stmt=no/g=1", c.tg.name)
		}
		b.Run(name, func(b *testing.B) {
			db := openBench(b, c.tg, "NORMAL")
			st, err := db.Prepare("SELECT v FROM t WHERE id = ?")
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			load(b, 1, func(i int) error {
				var v string
				if !c.stmt {
					return db.QueryRow("SELECT v FROM t WHERE id = ?", i%1000+1).Scan(&v)
				}
				return st.QueryRow(i%1000 + 1).Scan(&v)
			})
		})
	}
}

// BenchmarkReaderPoolMemory: what a handle costs in memory with 64 reads in
// flight at once, each holding its rows open after scanning a table into its
// connection's page cache: sqlite-safe's reader pool with 64 mode=ro
// connections (and its writer, and 64 logical connections) against
// modernc-tuned with 64 pooled connections. data=small scans table t (1000
// short rows, a few pages), data=1MiB a table of 1024 rows of 1000 bytes.
//
// One op opens a second handle on the database, brings its 64 readers up
// and, untimed, measures and closes it. The metrics are the growth from just
// before the handle was opened to the moment all 64 rows are open, divided
// by 64:
//
//   - heap-B/conn: the Go heap (runtime.MemStats.HeapAlloc after a GC). It
//     misses SQLite: modernc.org/sqlite allocates its connections, page
//     caches, schemas and statements through modernc.org/libc's allocator,
//     outside the Go heap.
//   - sqlite-B/conn: SQLite's own count of what it has allocated
//     (sqlite3_memory_used). modernc.org/sqlite builds SQLite with
//     SQLITE_DEFAULT_MEMSTATUS=0, so the count is switched on here with
//     sqlite3_config(SQLITE_CONFIG_MEMSTATUS), which SQLite accepts only
//     before its first connection in the process: the metric is reported
//     only when this benchmark is the first to open one.
//   - rss-B/conn: the resident set (/proc/self/statm), Go and libc
//     together, as the OS sees it. Both allocators keep freed memory for
//     reuse, so the growth is honest only the first time: it is reported
//     only for the first measurement of a process that opened no SQLite
//     connection before (-benchtime 1x, one sub-benchmark per process, as
//     scripts/bench.sh runs it).
//
// When it is the first to open SQLite in a process it leaves SQLite's memory
// counter on for the rest of the process, which costs every later SQLite
// allocation a lock: run it alone, as scripts/bench.sh does, or after the
// others (it is the last in this file, and go test -bench . runs the
// benchmarks above it first).
func BenchmarkReaderPoolMemory(b *testing.B) {
	const conns = 64
	sqliteMemstatus() // before this process opens its first connection, or never
	for _, data := range []string{"small", "1MiB"} {
		for _, tg := range []target{moderncTuned, safe} {
			b.Run(fmt.Sprintf("data=%s/impl=%s/conns=%d", data, tg.name, conns), func(b *testing.B) {
				first := memRounds.Add(1) == 1 && sqliteMemstatus()
				watchdog(b, benchWatchdog())
				path := dbPath(b)
				query := fillMemory(b, tg, path, data)
				tls := libc.NewTLS()
				defer tls.Close()
				b.ReportAllocs()
				var heap, rss, sq int64
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					before := sampleMemory(tls)
					b.StartTimer()
					db, err := sql.Open(tg.driver, tg.dsn(path, "NORMAL"))
					if err != nil {
						b.Fatal(err)
					}
					held := make([]*sql.Rows, 0, conns)
					for range conns {
						rows, err := db.Query(query)
						if err != nil {
							b.Fatal(err)
						}
						if !rows.Next() {
							b.Fatalf("no row: %v", rows.Err())
						}
						held = append(held, rows)
					}
					b.StopTimer()
					after := sampleMemory(tls)
					heap += after.heap - before.heap
					rss += after.rss - before.rss
					sq += after.sqlite - before.sqlite
					for _, rows := range held {
						rows.Close()
					}
					if err := db.Close(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				b.StopTimer()
				per := float64(b.N * conns)
				b.ReportMetric(float64(heap)/per, "heap-B/conn")
				if sqliteMemstatus() {
					b.ReportMetric(float64(sq)/per, "sqlite-B/conn")
				} else {
					b.Log("sqlite-B/conn not reported: SQLite was in use in this process before the benchmark began")
				}
				if first && b.N == 1 && residentBytes() >= 0 {
					b.ReportMetric(float64(rss)/per, "rss-B/conn")
				} else {
					b.Log("rss-B/conn not reported: run one sub-benchmark per process with -benchtime 1x (scripts/bench.sh memory)")
				}
			})
		}
	}
}

// memRounds counts the rounds of BenchmarkReaderPoolMemory in the process.
var memRounds atomic.Int64

// fillMemory creates the database BenchmarkReaderPoolMemory reads, through a
// handle of tg that stays open (idle, one connection) until the benchmark
// ends, and returns the query each reader holds open: its scalar subquery
// scans the whole table on the first row. Keeping the handle open keeps what
// it allocated out of the measurement, instead of the allocators reusing it
// for the measured handle.
func fillMemory(b *testing.B, tg target, path, data string) string {
	b.Helper()
	db := open(b, tg.driver, tg.dsn(path, "NORMAL"))
	fillBench(b, db)
	table := "t"
	if data == "1MiB" {
		table = "m"
		mustExec(b, db,
			"CREATE TABLE m(id INTEGER PRIMARY KEY, v BLOB)",
			"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1024) INSERT INTO m(id, v) SELECT i, randomblob(1000) FROM n")
	}
	return "SELECT (SELECT sum(length(v)) FROM " + table + "), id FROM " + table
}

// memSample is one reading of the process's memory.
type memSample struct{ heap, rss, sqlite int64 }

// sampleMemory collects the garbage, returns freed Go memory to the OS and
// reads the Go heap, the resident set and SQLite's memory counter.
func sampleMemory(tls *libc.TLS) memSample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{heap: int64(ms.HeapAlloc), rss: residentBytes()}
	if sqliteMemstatus() {
		s.sqlite = int64(lib.Xsqlite3_memory_used(tls))
	}
	return s
}

// sqliteMemstatus switches SQLite's memory counter on, the first time it is
// called, and reports whether it is on: SQLite accepts the switch only
// before its first connection in the process.
var sqliteMemstatus = sync.OnceValue(func() bool {
	tls := libc.NewTLS()
	defer tls.Close()
	va := libc.NewVaList(int32(1))
	defer libc.Xfree(tls, va)
	return lib.Xsqlite3_config(tls, lib.SQLITE_CONFIG_MEMSTATUS, va) == lib.SQLITE_OK
})

// residentBytes returns the process's resident set size, or -1 where
// /proc/self/statm is missing.
func residentBytes() int64 {
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	fields := strings.Fields(string(statm))
	if len(fields) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

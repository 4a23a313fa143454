package sqlitesafe_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A benchmark target: how a database is opened.
type target struct {
	name   string
	driver string
	dsn    func(path, sync string) string
}

var (
	// moderncTuned is plain modernc.org/sqlite as the usual "database is
	// locked" guides configure it: WAL, a 5 s busy timeout, NORMAL (or the
	// synchronous mode asked for) and BEGIN IMMEDIATE.
	moderncTuned = target{"modernc-tuned", "sqlite", func(path, sync string) string {
		return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")&_txlock=immediate"
	}}
	// moderncDefaults is plain modernc.org/sqlite as a new user opens it.
	moderncDefaults = target{"modernc-defaults", "sqlite", func(path, sync string) string {
		return "file:" + path + "?_pragma=synchronous(" + sync + ")"
	}}
	safe = target{"sqlite-safe", "sqlite-safe", func(path, sync string) string {
		return path + "?_synchronous=" + sync
	}}
)

// openBench opens a fresh database for a benchmark, with a table t of 1000
// rows and a counter row.
func openBench(b *testing.B, tg target, sync string) *sql.DB {
	b.Helper()
	db := open(b, tg.driver, tg.dsn(dbPath(b), sync))
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
	return db
}

// load runs b.N calls of op spread over g goroutines, timing each, and
// reports errors/op, p50, p99 and p99.9 latency and the maximum.
func load(b *testing.B, g int, op func(i int) error) {
	b.Helper()
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
	for _, sync := range []string{"NORMAL", "FULL"} {
		for _, tg := range []target{moderncTuned, safe} {
			for _, g := range []int{1, 2, 8, 32, 64, 256} {
				b.Run(fmt.Sprintf("sync=%s/impl=%s/g=%d", sync, tg.name, g), func(b *testing.B) {
					db := openBench(b, tg, sync)
					b.ReportAllocs()
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
// increments missing from the counter at the end.
func BenchmarkReadModifyWrite(b *testing.B) {
	for _, sync := range []string{"NORMAL", "FULL"} {
		for _, tg := range []target{moderncDefaults, moderncTuned, safe} {
			for _, g := range []int{1, 2, 8, 32, 64, 256} {
				b.Run(fmt.Sprintf("sync=%s/impl=%s/g=%d", sync, tg.name, g), func(b *testing.B) {
					db := openBench(b, tg, sync)
					b.ReportAllocs()
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
func BenchmarkPointRead(b *testing.B) {
	for _, beside := range []string{"alone", "beside-writer"} {
		for _, tg := range []target{moderncTuned, safe} {
			for _, g := range []int{1, 2} {
				b.Run(fmt.Sprintf("load=%s/impl=%s/g=%d", beside, tg.name, g), func(b *testing.B) {
					db := openBench(b, tg, "NORMAL")
					if beside == "beside-writer" {
						stop := longWriter(b, db)
						defer stop()
					}
					b.ReportAllocs()
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
func longWriter(b *testing.B, db *sql.DB) (stop func()) {
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
		for _, tg := range []target{moderncTuned, safe} {
			b.Run(fmt.Sprintf("writes=%d%%/impl=%s/g=32", writes, tg.name), func(b *testing.B) {
				db := openBench(b, tg, "NORMAL")
				b.ReportAllocs()
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
// statement prepared once. sqlite-safe keeps each query's statement prepared
// on every connection, so for it the two are the same; plain
// modernc.org/sqlite prepares on every unprepared call.
func BenchmarkPointReadPrepared(b *testing.B) {
	for _, tg := range []target{moderncTuned, safe} {
		b.Run(fmt.Sprintf("impl=%s/g=1", tg.name), func(b *testing.B) {
			db := openBench(b, tg, "NORMAL")
			st, err := db.Prepare("SELECT v FROM t WHERE id = ?")
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ReportAllocs()
			load(b, 1, func(i int) error {
				var v string
				return st.QueryRow(i%1000 + 1).Scan(&v)
			})
		})
	}
}

package sqlitesafe_test

import (
	"context"
	"database/sql"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// The checkpoint benchmarks: what checkpoints cost the writers, with the
// driver's checkpointer (the default), with SQLite's automatic checkpoint
// inside commits (_checkpointing=commit), and on plain modernc.org/sqlite.

// walPeak samples the size of path's -wal every 5 ms until stop is called,
// and returns the largest size seen.
func walPeak(path string) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > peak.Load() {
					peak.Store(fi.Size())
				}
			}
		}
	}()
	return func() int64 { close(done); wg.Wait(); return peak.Load() }
}

// BenchmarkLoneWriterCheckpoint: one goroutine inserting rows of 100 bytes,
// alone. Every thousandth commit or so pays for SQLite's automatic
// checkpoint when it runs inside commits; the driver's checkpointer runs
// beside them. p99.9 and max show the difference; wal-peak-MiB what it does
// to the -wal.
func BenchmarkLoneWriterCheckpoint(b *testing.B) {
	targets := []target{
		moderncTuned,
		{"sqlite-safe-commit", "sqlite-safe", func(path, sync string) string {
			return path + "?_synchronous=" + sync + "&_checkpointing=commit"
		}},
		safe,
	}
	for _, tg := range targets {
		b.Run("impl="+tg.name, func(b *testing.B) {
			path := dbPath(b)
			watchdog(b, benchWatchdog())
			db := open(b, tg.driver, tg.dsn(path, "NORMAL"))
			fillBench(b, db)
			stop := walPeak(path)
			load(b, 1, func(i int) error {
				_, err := db.Exec("INSERT INTO t(v) VALUES (?)", "a row of about a hundred bytes: abcdefghijklmnopqrstuvwxyz 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ")
				return err
			})
			b.ReportMetric(float64(stop())/(1<<20), "wal-peak-MiB")
		})
	}
}

// BenchmarkWritersBesideBlockedCheckpoint: 8 goroutines inserting while a
// read transaction stays open and TRUNCATE checkpoints are asked for again
// and again. On plain modernc.org/sqlite the checkpoint holds the WAL's
// write lock while its busy handler waits for the reader, so writers wait
// for the whole busy timeout (and some fail); sqlite-safe's checkpoint gives
// up without holding the writers. checkpoints/op counts the checkpoints that
// ran per insert.
func BenchmarkWritersBesideBlockedCheckpoint(b *testing.B) {
	for _, tg := range []target{moderncTuned, safe} {
		b.Run("impl="+tg.name, func(b *testing.B) {
			path := dbPath(b)
			watchdog(b, benchWatchdog())
			db := open(b, tg.driver, tg.dsn(path, "NORMAL"))
			fillBench(b, db)
			reader := open(b, tg.driver, tg.dsn(path, "NORMAL"))
			long, err := reader.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			defer long.Rollback()
			var n int64
			if err := long.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
				b.Fatal(err)
			}
			checkpoint := func() error {
				_, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate)
				return err
			}
			if tg.driver != "sqlite-safe" {
				ckdb := open(b, tg.driver, tg.dsn(path, "NORMAL"))
				checkpoint = func() error {
					_, err := ckdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
					return err
				}
			}
			var done atomic.Bool
			var runs atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !done.Load() {
					if err := checkpoint(); err != nil {
						b.Error(err)
						return
					}
					runs.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
			}()
			load(b, 8, func(i int) error {
				_, err := db.Exec("INSERT INTO t(v) VALUES (?)", "x")
				return err
			})
			done.Store(true)
			wg.Wait()
			b.ReportMetric(float64(runs.Load())/float64(b.N), "checkpoints/op")
		})
	}
}

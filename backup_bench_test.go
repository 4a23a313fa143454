package sqlitesafe_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// BenchmarkBackupBesideWriters measures what an online backup of a large
// database costs the writers: 8 goroutines of autocommit inserts and 2 of
// read-modify-write transactions run for a while without a backup, then
// while Backup copies the database. It reports the writers' p99.9 and
// maximum latency in both phases, their ratio, the size copied and the time
// the copy took, and checks the copy (integrity_check, every row committed
// before the backup began).
//
// The database is BACKUP_MB megabytes (default 200). Run it once:
//
//	go test -run '^$' -bench BackupBesideWriters -benchtime 1x .
func BenchmarkBackupBesideWriters(b *testing.B) {
	mb := 200
	if s := os.Getenv("BACKUP_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	path := dbPath(b)
	db := open(b, "sqlite-safe", path+"?_slow_hold=off&_slow_wait=off")
	mustExec(b, db, "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)", "CREATE TABLE ops(id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(b, db, counterSchema...)
	for done := 0; done < mb; done += 10 {
		// 10 MB per transaction: 10240 rows of 1000 bytes.
		if _, err := db.Exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 10240)
			INSERT INTO big(v) SELECT randomblob(1000) FROM s`); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		quiet := writerLoad(b, db, func() { time.Sleep(3 * time.Second) })
		dst := filepath.Join(b.TempDir(), "copy-"+strconv.Itoa(i)+".db")
		var before int64
		var took time.Duration
		during := writerLoad(b, db, func() {
			time.Sleep(100 * time.Millisecond) // the writers are going
			if err := db.QueryRow("SELECT max(id) FROM ops").Scan(&before); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := sqlitesafe.Backup(context.Background(), db, dst); err != nil {
				b.Fatal(err)
			}
			took = time.Since(start)
		})
		b.StopTimer()
		checkCopy(b, dst, before)
		b.StartTimer()

		b.ReportMetric(float64(fi.Size())/1e6, "db-MB")
		b.ReportMetric(took.Seconds(), "backup-s")
		b.ReportMetric(float64(quiet.p999), "quiet-p99.9-ns")
		b.ReportMetric(float64(during.p999), "backup-p99.9-ns")
		b.ReportMetric(float64(during.p999)/float64(quiet.p999), "p99.9-ratio")
		b.ReportMetric(float64(quiet.max), "quiet-max-ns")
		b.ReportMetric(float64(during.max), "backup-max-ns")
		b.ReportMetric(float64(quiet.ops)/quiet.elapsed.Seconds(), "quiet-writes/s")
		b.ReportMetric(float64(during.ops)/during.elapsed.Seconds(), "backup-writes/s")
		b.ReportMetric(float64(quiet.errs+during.errs), "errors")
	}
}

// loadResult is what writerLoad measured.
type loadResult struct {
	ops, errs int64
	p999, max time.Duration
	elapsed   time.Duration
}

// writerLoad runs the writers until phase returns.
func writerLoad(b *testing.B, db *sql.DB, phase func()) loadResult {
	var stop atomic.Bool
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for !stop.Load() {
				t0 := time.Now()
				var err error
				if g < 8 {
					_, err = db.Exec("INSERT INTO ops(v) VALUES ('x')")
				} else {
					err = rmw(context.Background(), db, 0)
				}
				mine = append(mine, time.Since(t0))
				if err != nil {
					errs.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	phase()
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		b.Fatal("no write ran")
	}
	slices.Sort(lat)
	return loadResult{
		ops:     int64(len(lat)),
		errs:    errs.Load(),
		p999:    lat[min(len(lat)-1, len(lat)*999/1000)],
		max:     lat[len(lat)-1],
		elapsed: elapsed,
	}
}

// checkCopy checks a backup: integrity_check passes and every ops row up to
// before is there.
func checkCopy(b *testing.B, dst string, before int64) {
	cp := open(b, "sqlite-safe", dst+"?mode=ro")
	var check string
	if err := cp.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		b.Fatalf("integrity_check of the copy: %q, %v", check, err)
	}
	var n int64
	if err := cp.QueryRow("SELECT count(*) FROM ops WHERE id <= ?", before).Scan(&n); err != nil || n != before {
		b.Fatalf("the copy has %d of the %d rows committed before the backup (%v)", n, before, err)
	}
	cp.Close()
}

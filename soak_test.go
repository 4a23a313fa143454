package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// soak is how long TestSoak runs; 0 (the default) skips it. CI does not run
// it; BENCHMARKS.md gives the figures of a 10-minute run:
//
//	go test -run TestSoak -soak 10m -v .
var soak = flag.Duration("soak", 0, "run TestSoak for this long")

// TestSoak is sustained production load: point reads and read transactions,
// read-modify-write transactions, inserts, TRUNCATE checkpoints and online
// backups, all at once, for -soak. Every operation must succeed, the counts
// must be exact, the Go heap and the goroutines must stay flat, and the -wal
// must stay within its bound.
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("run with -soak 10m")
	}
	watchdog(t, *soak+5*time.Minute)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	db := openSafe(t, path)
	mustExec(t, db, counterSchema...)
	mustExec(t, db, "CREATE TABLE ev(id INTEGER PRIMARY KEY, g INTEGER NOT NULL, v BLOB NOT NULL)")

	var (
		done                            atomic.Bool
		reads, readTxs, rmws, inserts   atomic.Int64
		checkpoints, busyCkpts, backups atomic.Int64
		errMu                           sync.Mutex
		errs                            []error
		maxWAL, maxWALBackup            atomic.Int64
		backingUp                       atomic.Bool
		wg                              sync.WaitGroup
	)
	fail := func(what string, err error) {
		errMu.Lock()
		if len(errs) < 20 {
			errs = append(errs, errors.New(what+": "+err.Error()))
		}
		errMu.Unlock()
	}
	spawn := func(n int, f func(g int, rng *rand.Rand)) {
		for g := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 7))
				for !done.Load() {
					f(g, rng)
				}
			}()
		}
	}
	goroutinesBefore := runtime.NumGoroutine()
	ctx := context.Background()
	spawn(4, func(g int, rng *rand.Rand) { // point reads
		var id sql.NullInt64
		if err := db.QueryRowContext(ctx, "SELECT max(id) FROM ev WHERE g = ?", rng.IntN(8)).Scan(&id); err != nil {
			fail("read", err)
			return
		}
		reads.Add(1)
	})
	spawn(2, func(g int, rng *rand.Rand) { // read transactions of 20-50 ms
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			fail("read tx", err)
			return
		}
		var n int64
		err = tx.QueryRow("SELECT n FROM counter WHERE id = 1").Scan(&n)
		time.Sleep(time.Duration(20+rng.IntN(30)) * time.Millisecond)
		tx.Rollback()
		if err != nil {
			fail("read tx", err)
			return
		}
		readTxs.Add(1)
	})
	spawn(8, func(g int, rng *rand.Rand) { // read-modify-write
		if err := rmw(ctx, db, 0); err != nil {
			fail("rmw", err)
			return
		}
		rmws.Add(1)
	})
	spawn(8, func(g int, rng *rand.Rand) { // inserts of 100 to 600 bytes
		if _, err := db.ExecContext(ctx, "INSERT INTO ev(g, v) VALUES (?, randomblob(?))", g, 100+rng.IntN(500)); err != nil {
			fail("insert", err)
			return
		}
		inserts.Add(1)
	})
	stop := make(chan struct{})
	pause := func(d time.Duration) bool {
		select {
		case <-stop:
			return false
		case <-time.After(d):
			return true
		}
	}
	spawn(1, func(int, *rand.Rand) { // a TRUNCATE checkpoint every 5 s
		if !pause(5 * time.Second) {
			return
		}
		r, err := sqlitesafe.Checkpoint(ctx, db, sqlitesafe.CheckpointTruncate)
		if err != nil {
			fail("checkpoint", err)
			return
		}
		checkpoints.Add(1)
		if r.Busy {
			busyCkpts.Add(1)
		}
	})
	spawn(1, func(int, *rand.Rand) { // a backup every 2 minutes
		if !pause(2 * time.Minute) {
			return
		}
		dst := filepath.Join(dir, "backup.db")
		backingUp.Store(true)
		err := sqlitesafe.Backup(ctx, db, dst)
		// The -wal it let grow is truncated by the next reset, soon after.
		time.AfterFunc(time.Second, func() { backingUp.Store(false) })
		if err != nil {
			fail("backup", err)
			return
		}
		os.Remove(dst)
		backups.Add(1)
	})

	type sample struct {
		heap       uint64
		goroutines int
		backup     bool // taken while a backup ran: its goroutines, and its handle's, count
	}
	var samples []sample
	start := time.Now()
	for time.Since(start) < *soak {
		time.Sleep(100 * time.Millisecond)
		// A backup is one read transaction: the -wal cannot start over
		// while it runs, and grows by what is written meanwhile, until
		// the reset that follows (counted as the backup's for a second).
		if fi, err := os.Stat(path + "-wal"); err == nil {
			m := &maxWAL
			if backingUp.Load() {
				m = &maxWALBackup
			}
			if fi.Size() > m.Load() {
				m.Store(fi.Size())
			}
		}
		if len(samples) < int(time.Since(start)/(10*time.Second)) {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			samples = append(samples, sample{m.HeapInuse, runtime.NumGoroutine(), backingUp.Load()})
		}
		errMu.Lock()
		failed := len(errs) > 0
		errMu.Unlock()
		if failed {
			break
		}
	}
	done.Store(true)
	close(stop)
	wg.Wait()
	// The load has ended: what it started has ended too (a second for
	// the last timers and openers), leaving at most the goroutines the
	// driver starts on first use (its checkpointer, ...).
	goroutinesAfter := settleGoroutines(goroutinesBefore+4, 5*time.Second)
	if goroutinesAfter > goroutinesBefore+4 {
		t.Errorf("%d goroutines before the load, %d after it ended; now:\n%s", goroutinesBefore, goroutinesAfter, stacks())
	}
	t.Logf("goroutines: %d before the load, %d after it ended", goroutinesBefore, goroutinesAfter)
	for _, err := range errs {
		t.Error(err)
	}
	st := mustStats(t, db)
	t.Logf("%s: %d point reads, %d read transactions, %d RMW, %d inserts, %d TRUNCATE checkpoints (%d busy), %d backups",
		time.Since(start).Round(time.Second), reads.Load(), readTxs.Load(), rmws.Load(), inserts.Load(), checkpoints.Load(), busyCkpts.Load(), backups.Load())
	t.Logf("largest -wal %.1f MiB (%.1f MiB while a backup ran, or within a second after); %d driver checkpoints (%d busy), %d resets holding reads back (longest %s), %d reads held (longest %s); writers' longest wait %s",
		float64(maxWAL.Load())/(1<<20), float64(maxWALBackup.Load())/(1<<20), st.Checkpoints, st.BusyCheckpoints, st.ReadHoldBacks, st.ReadHoldBackMax, st.HeldReads, st.HeldReadMax, st.WaitMax)
	if n := queryInt(t, db, "SELECT n FROM counter WHERE id = 1"); n != rmws.Load() {
		t.Errorf("counter %d, %d read-modify-writes committed", n, rmws.Load())
	}
	if n := queryInt(t, db, "SELECT count(*) FROM ev"); n != inserts.Load() {
		t.Errorf("%d rows, %d inserts succeeded", n, inserts.Load())
	}
	if m := maxWAL.Load(); m > walBound {
		t.Errorf("the -wal reached %d bytes, past %d", m, walBound)
	}
	if len(samples) >= 6 {
		warm, last := samples[2], samples[len(samples)-1]
		t.Logf("heap in use %d KiB after warm-up, %d KiB at the end; goroutines %d, %d", warm.heap>>10, last.heap>>10, warm.goroutines, last.goroutines)
		if last.heap > warm.heap*3/2+4<<20 {
			t.Errorf("the heap grew from %d to %d bytes", warm.heap, last.heap)
		}
		// The fewest goroutines of the last three samples taken while no
		// backup ran: a sample also counts the goroutines database/sql
		// starts for each transaction and rows with a context while they
		// are open (Tx.awaitDone, Rows.awaitDone), as many as happen to be
		// open then (a sample of 38 against 32 after the warm-up had 6 of
		// them), where a leak would show in every sample.
		fewest, seen := 0, 0
		for i := len(samples) - 1; i > 2 && seen < 3; i-- {
			if s := samples[i]; !s.backup {
				if seen == 0 || s.goroutines < fewest {
					fewest = s.goroutines
				}
				seen++
			}
		}
		if seen > 0 && fewest > warm.goroutines+4 {
			t.Errorf("goroutines grew from %d to %d (the fewest of the last %d samples); now:\n%s", warm.goroutines, fewest, seen, stacks())
		}
	}
}

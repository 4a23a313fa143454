package sqlitesafe

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestResetLetsReadsGoBeforeTheCopy: a checkpoint that starts the WAL over
// holds the process's new reads back only until the writer queue is its own,
// not while it copies the WAL under it. A read transaction keeps the first
// copy, beside the writers, from copying past its snapshot, so once it ends
// about 40 MB of WAL is copied under the writer queue. Reads that begin as
// it ends finish while that copy runs, and the WAL still starts over though
// read transactions of 30 ms overlap throughout.
func TestResetLetsReadsGoBeforeTheCopy(t *testing.T) {
	ctx := context.Background()
	// SQLite's own checkpoints (PASSIVE, in the commits) cannot copy past
	// the read transaction either, and the driver's background
	// checkpointer stays out of the way.
	db, err := sql.Open(DriverName, filepath.Join(t.TempDir(), "app.db")+"?_checkpointing=commit")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)")
	const fill = `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?)
		INSERT INTO big(v) SELECT zeroblob(4000) FROM s`
	exec(fill, 10)
	rtx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rtx.QueryRow("SELECT count(*) FROM big").Scan(&n); err != nil {
		t.Fatal(err)
	}
	exec(fill, 10_000)

	c, err := handleOf(db)
	if err != nil {
		t.Fatal(err)
	}
	gate := &c.file.gate
	type outcome struct {
		r   CheckpointResult
		err error
		at  time.Time
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := Checkpoint(ctx, db, CheckpointRestart)
		done <- outcome{r, err, time.Now()}
	}()
	// The checkpoint holds new reads back while it waits for rtx.
	for deadline := time.Now().Add(10 * time.Second); !gate.holding.Load(); time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatal("the checkpoint did not hold reads back in 10 s")
		}
	}
	// Readers that come to the gate now, while it holds.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstRead time.Time
	var readErr error
	// Two read point by point; two run read transactions of 30 ms, one
	// after the other, the second goroutine 15 ms behind the first: one
	// is always open, during the copy too.
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g >= 3 {
				time.Sleep(15 * time.Millisecond)
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				var id int
				var err error
				if g < 2 {
					err = db.QueryRow("SELECT id FROM big WHERE id = 5").Scan(&id)
				} else {
					err = readFor(db, 30*time.Millisecond)
				}
				mu.Lock()
				switch {
				case err != nil && readErr == nil:
					readErr = err
				case err == nil && g < 2 && firstRead.IsZero():
					firstRead = time.Now()
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	early := firstRead
	mu.Unlock()
	if !early.IsZero() {
		t.Fatal("a read went through while the checkpoint held reads back")
	}
	ended := time.Now()
	if err := rtx.Rollback(); err != nil {
		t.Fatal(err)
	}
	o := <-done
	close(stop)
	wg.Wait()
	if o.err != nil {
		t.Fatal(o.err)
	}
	if readErr != nil {
		t.Fatal(readErr)
	}
	if o.r.Busy || o.r.Log != o.r.Checkpointed {
		t.Errorf("Checkpoint(RESTART) = %+v, want every frame copied and not busy", o.r)
	}
	copying := o.at.Sub(ended)
	t.Logf("the checkpoint ended %s after the read transaction; the first read %s after it; reads held %s", copying, firstRead.Sub(ended), o.r.HeldReads)
	if firstRead.IsZero() || firstRead.After(o.at) {
		t.Fatalf("no read finished before the checkpoint did (%s after the read transaction ended)", copying)
	}
	// The copy of 40 MB and its syncs against the few microseconds it
	// takes the gate to open once rtx has ended and the queue is taken.
	if gap := firstRead.Sub(ended); gap > copying/2 {
		t.Errorf("the first read finished %s after the read transaction ended, the checkpoint %s after: reads waited for the copy", gap, copying)
	}
	// The WAL starts over: the next write goes to its first frame.
	exec(fill, 1)
	r, err := Checkpoint(ctx, db, CheckpointPassive)
	if err != nil {
		t.Fatal(err)
	}
	if r.Log <= 0 || r.Log > 10 {
		t.Errorf("after the RESTART and one insert the WAL holds %d frames, want a few", r.Log)
	}
}

// readFor runs a read transaction that stays open for d after its read.
func readFor(db *sql.DB, d time.Duration) error {
	tx, err := db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM big WHERE id < 3").Scan(&n); err != nil {
		return err
	}
	time.Sleep(d)
	return tx.Commit()
}

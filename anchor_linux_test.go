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

	"github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// shmReadLocks returns this process's shared locks on the read marks of the
// database's -shm file (bytes 123 to 127: WAL_READ_LOCK(0) to (4)).
func shmReadLocks(t *testing.T, path string) []proclocks.Lock {
	t.Helper()
	locks, err := proclocks.Own(path + "-shm")
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(locks, func(l proclocks.Lock) bool {
		return l.Type != "READ" || l.End < 123 || l.Start > 127
	})
}

// anchorFile creates a database with table t of 100 rows, opened with
// _checkpointing=commit: the background checkpointer, which gives the
// anchor up too, would run after those writes and hide what reads alone do.
func anchorFile(t *testing.T) (string, *sql.DB) {
	t.Helper()
	path := dbPath(t)
	db := openSafe(t, path+"?_checkpointing=commit")
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	for i := 1; i <= 100; i++ {
		mustExec(t, db, fmt.Sprintf("INSERT INTO t(v) VALUES ('v%d')", i))
	}
	return path, db
}

// plainConn opens the database at path through plain modernc.org/sqlite,
// one connection with a busy timeout of 5 s and the DSN keys of extra: a
// user of the file outside sqlite-safe.
func plainConn(t *testing.T, path, extra string) *sql.DB {
	t.Helper()
	plain, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)"+extra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	plain.SetMaxOpenConns(1)
	return plain
}

// readUntilAnchored reads db in one goroutine, back to back, until the
// handle reports the read anchor held, and returns the stats then.
func readUntilAnchored(t *testing.T, db *sql.DB) sqlitesafe.Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		var v string
		if err := db.QueryRow("SELECT v FROM t WHERE id = ?", i%100+1).Scan(&v); err != nil {
			t.Fatal(err)
		}
		st, err := sqlitesafe.GetStats(db)
		if err != nil {
			t.Fatal(err)
		}
		if st.ReadAnchorHeld {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no read anchor after %d reads in 10 s: %+v", i, st)
		}
	}
}

// While only reads run, the process keeps a read lock on the -shm's read
// marks between them (the anchor), and every read still sees every commit
// before it, another connection's too. A write gives the anchor up before
// it runs; once reads stop the anchor is given up within anchorHold, and
// another connection's TRUNCATE checkpoint, which waits for every reader,
// then finishes. With _read_anchor=off no anchor is taken.
//
// The handle leaves checkpoints to SQLite's commits (anchorFile).
func TestReadAnchor(t *testing.T) {
	watchdog(t, time.Minute)
	path, db := anchorFile(t)
	// Checkpointed and quiet, as a read-mostly service is between writes.
	if _, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	st := readUntilAnchored(t, db)
	if st.ReadAnchors < 1 {
		t.Fatalf("anchor held, ReadAnchors %d", st.ReadAnchors)
	}
	if locks := shmReadLocks(t, path); len(locks) == 0 {
		t.Fatalf("anchor held between reads, but the process holds no read mark of the -shm")
	}

	// Another connection's commit, while the anchor holds its older
	// snapshot: the next read sees it.
	plain := plainConn(t, path, "")
	mustExec(t, plain, "INSERT INTO t(v) VALUES ('plain')")
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 101 {
		t.Fatalf("a read after another connection's commit counts %d rows, want 101", n)
	}

	// A write gives it up before it runs, and no read takes it again
	// while none runs.
	readUntilAnchored(t, db)
	mustExec(t, db, "INSERT INTO t(v) VALUES ('safe')")
	if st, _ := sqlitesafe.GetStats(db); st.ReadAnchorHeld {
		t.Fatal("read anchor still held after a write")
	}
	if n := queryInt(t, plain, "SELECT count(*) FROM t"); n != 102 {
		t.Fatalf("%d rows, want 102", n)
	}

	// Reads stop: within anchorHold (100 ms) the process holds no read
	// mark, and another connection's TRUNCATE checkpoint finishes.
	readUntilAnchored(t, db)
	deadline := time.Now().Add(2 * time.Second)
	for len(shmReadLocks(t, path)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("2 s after the last read, the process still holds read marks: %+v", shmReadLocks(t, path))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held := time.Since(deadline.Add(-2 * time.Second)); held > time.Second {
		t.Errorf("the anchor was given up %s after the last read (anchorHold is 100 ms)", held)
	}
	readUntilAnchored(t, db)
	var busy, logFrames, copied int
	if err := plain.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &copied); err != nil {
		t.Fatal(err)
	}
	if busy != 0 {
		t.Errorf("another connection's TRUNCATE checkpoint, with a busy timeout of 5 s, stayed busy beside an idle anchor")
	}

	// Another file, with the anchor off: the same reads take none.
	offPath := dbPath(t)
	off := openSafe(t, offPath+"?_read_anchor=off")
	mustExec(t, off, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t(v) VALUES ('v')")
	for range 5000 {
		var v string
		if err := off.QueryRow("SELECT v FROM t WHERE id = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := sqlitesafe.GetStats(off); st.ReadAnchors != 0 || st.ReadAnchorHeld || len(shmReadLocks(t, offPath)) > 0 {
		t.Errorf("_read_anchor=off: ReadAnchors %d, held %v, read marks %+v", st.ReadAnchors, st.ReadAnchorHeld, shmReadLocks(t, offPath))
	}
}

// Readers reading back to back beside a writer that pauses between writes
// long enough for the anchor to be taken and given up again and again,
// Checkpoint(TRUNCATE) calls and another connection's writes: every read
// sees every write that returned before it began, the -wal starts over at
// each TRUNCATE (the anchor never keeps the process's own checkpoint from
// finishing), and every write is there once.
func TestReadAnchorBesideWritesAndCheckpoints(t *testing.T) {
	watchdog(t, 2*time.Minute)
	path := dbPath(t)
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE p(id INTEGER PRIMARY KEY)")
	plain := plainConn(t, path, "&_txlock=immediate")

	dur := 3 * time.Second
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	stop := time.Now().Add(dur)
	var acked atomic.Int64 // the highest id whose INSERT returned
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	wg.Go(func() {
		for i := int64(1); time.Now().Before(stop); i++ {
			if _, err := db.Exec("INSERT INTO t(id, v) VALUES (?, 'x')", i); err != nil {
				report(fmt.Errorf("insert %d: %w", i, err))
				return
			}
			acked.Store(i)
			// Long enough for the anchor (10 ms after a write), and
			// sometimes not.
			time.Sleep(time.Duration(i%4) * 8 * time.Millisecond)
		}
	})
	var plainWrites atomic.Int64
	wg.Go(func() {
		for time.Now().Before(stop) {
			if _, err := plain.Exec("INSERT INTO p DEFAULT VALUES"); err != nil {
				report(fmt.Errorf("plain insert: %w", err))
				return
			}
			plainWrites.Add(1)
			time.Sleep(37 * time.Millisecond)
		}
	})
	var truncates, reads atomic.Int64
	wg.Go(func() {
		for time.Now().Before(stop) {
			time.Sleep(150 * time.Millisecond)
			r, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate)
			if err != nil {
				report(fmt.Errorf("checkpoint: %w", err))
				return
			}
			if r.Busy {
				report(fmt.Errorf("Checkpoint(TRUNCATE) busy beside the process's own reads: %+v", r))
				return
			}
			truncates.Add(1)
		}
	})
	for range 3 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				want := acked.Load()
				var got int64
				if err := db.QueryRow("SELECT coalesce(max(id), 0) FROM t").Scan(&got); err != nil {
					report(fmt.Errorf("read: %w", err))
					return
				}
				if got < want {
					report(fmt.Errorf("a read that began after insert %d returned sees only %d", want, got))
					return
				}
				reads.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, err := sqlitesafe.GetStats(db)
	if err != nil {
		t.Fatal(err)
	}
	n := acked.Load()
	if got := queryInt(t, db, "SELECT count(*) FROM t"); got != n || queryInt(t, db, "SELECT max(id) FROM t") != n {
		t.Errorf("t has %d rows, want %d (ids 1 to %d)", got, n, n)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM p"); got != plainWrites.Load() {
		t.Errorf("p has %d rows, want %d", got, plainWrites.Load())
	}
	t.Logf("%d inserts, %d plain inserts, %d reads, %d TRUNCATE checkpoints, read anchor taken %d times",
		n, plainWrites.Load(), reads.Load(), truncates.Load(), st.ReadAnchors)
	if st.ReadAnchors < 2 {
		t.Errorf("read anchor taken %d times: the test did not exercise it", st.ReadAnchors)
	}
}

// Beside a writer the process cannot see (another connection, outside the
// writer queue), the anchor's snapshot goes stale at every commit: once it
// finds the -wal changed at the end of a hold, it is left for 2 s, so that
// it neither pins that writer's checkpoints nor costs reads anything. In
// 1.5 s of such writes it is taken once or twice, not every 110 ms.
func TestReadAnchorBesideAnotherWriter(t *testing.T) {
	watchdog(t, time.Minute)
	path, db := anchorFile(t)
	plain := plainConn(t, path, "")
	st0 := readUntilAnchored(t, db)

	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	var writes atomic.Int64
	wg.Go(func() {
		for time.Now().Before(stop) {
			if _, err := plain.Exec("INSERT INTO t(v) VALUES ('plain')"); err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	})
	reads := 0
	for time.Now().Before(stop) {
		var v string
		if err := db.QueryRow("SELECT v FROM t WHERE id = ?", reads%100+1).Scan(&v); err != nil {
			t.Fatal(err)
		}
		reads++
	}
	wg.Wait()
	st, err := sqlitesafe.GetStats(db)
	if err != nil {
		t.Fatal(err)
	}
	taken := st.ReadAnchors - st0.ReadAnchors
	t.Logf("%d reads beside %d writes of another connection: the anchor taken %d more times", reads, writes.Load(), taken)
	if taken > 2 {
		t.Errorf("anchor taken %d more times in 1.5 s beside another connection's writes, want at most 2", taken)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 100+writes.Load() {
		t.Errorf("%d rows, want %d", n, 100+writes.Load())
	}
}

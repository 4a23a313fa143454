package sqlitesafe_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
	"modernc.org/sqlite"
)

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// fill inserts n rows of about 1 KiB each in one transaction.
func fill(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	if _, err := db.Exec("INSERT INTO big(v) SELECT randomblob(1000) FROM generate_series(1, ?)", n); err != nil {
		// generate_series may be missing: a recursive CTE does the same.
		if _, err := db.Exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < ?)
			INSERT INTO big(v) SELECT randomblob(1000) FROM s`, n); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckpointTruncate(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)")
	fill(t, db, 500)
	if walSize(t, path) <= 0 {
		t.Fatal("no -wal after writes")
	}
	r, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate)
	if err != nil {
		t.Fatal(err)
	}
	if r.Busy || r.Log != 0 || r.Checkpointed != 0 {
		// TRUNCATE resets the WAL: SQLite reports 0 frames after it.
		t.Errorf("Checkpoint(TRUNCATE) = %+v, want not busy, 0 and 0", r)
	}
	if n := walSize(t, path); n != 0 {
		t.Errorf("-wal is %d bytes after a TRUNCATE checkpoint, want 0", n)
	}
	st := mustStats(t, db)
	if st.LastCheckpoint != r || st.LastCheckpointAt.IsZero() || st.WALSize != 0 {
		t.Errorf("Stats: LastCheckpoint %+v at %v, WALSize %d", st.LastCheckpoint, st.LastCheckpointAt, st.WALSize)
	}
	if _, err := sqlitesafe.Checkpoint(context.Background(), db, "sometimes"); err == nil ||
		!strings.Contains(err.Error(), `"sometimes"`) || !strings.Contains(err.Error(), "PASSIVE, FULL, RESTART or TRUNCATE") {
		t.Errorf("a bad mode: %v", err)
	}
	if _, err := sqlitesafe.Checkpoint(context.Background(), openSafe(t, path+"?mode=ro"), sqlitesafe.CheckpointPassive); !errors.Is(err, sqlitesafe.ErrReadOnly) {
		t.Errorf("a checkpoint on a read-only handle = %v, want ErrReadOnly", err)
	}
}

// A reader that never finishes blocks checkpoints: Checkpoint reports it,
// Stats shows the -wal growing, and once the reader ends the -wal is emptied.
func TestCheckpointBlockedByLongReader(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	path := dbPath(t)
	db := openSafe(t, path+"?_busy_timeout=200")
	mustExec(t, db, "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)")
	fill(t, db, 10)

	// The long reader: a read-only transaction that has read.
	rtx, err := db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rtx.QueryRow("SELECT count(*) FROM big").Scan(&n); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		fill(t, db, 100)
	}
	r, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointPassive)
	if err != nil {
		t.Fatal(err)
	}
	if r.Checkpointed >= r.Log {
		t.Errorf("PASSIVE beside a long reader = %+v: it copied every frame", r)
	}
	start := time.Now()
	r, err = sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Busy {
		t.Errorf("TRUNCATE beside a long reader = %+v, want Busy", r)
	}
	t.Logf("TRUNCATE gave up after %s: %+v", time.Since(start), r)
	st := mustStats(t, db)
	if st.WALSize < 500_000 || !st.LastCheckpoint.Busy {
		t.Errorf("Stats: WALSize %d, LastCheckpoint %+v; want a large -wal and a busy checkpoint", st.WALSize, st.LastCheckpoint)
	}
	// The reader still sees its snapshot.
	if err := rtx.QueryRow("SELECT count(*) FROM big").Scan(&n); err != nil || n != 10 {
		t.Errorf("the long reader sees %d rows, %v; want its 10", n, err)
	}
	rtx.Rollback()
	r, err = sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate)
	if err != nil || r.Busy {
		t.Fatalf("TRUNCATE after the reader ended = %+v, %v", r, err)
	}
	if n := walSize(t, path); n != 0 {
		t.Errorf("-wal is %d bytes, want 0", n)
	}
}

// The -wal is bounded by default: journal_size_limit is set, and after a
// burst the -wal shrinks back to the limit once a checkpoint resets it.
func TestJournalSizeLimit(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	db := openSafe(t, path)
	if n := queryInt(t, db, "PRAGMA journal_size_limit"); n != sqlitesafe.DefaultJournalSizeLimit {
		// The PRAGMA runs on the writer: the connection that checkpoints.
		t.Errorf("journal_size_limit = %d, want %d", n, sqlitesafe.DefaultJournalSizeLimit)
	}
	db.Close()

	const limit = 256 << 10
	db = openSafe(t, path+"?_journal_size_limit=262144")
	mustExec(t, db, "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)")
	// A burst the automatic checkpoint cannot keep small: a long reader
	// holds it back meanwhile.
	rtx, err := db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rtx.QueryRow("SELECT count(*) FROM big").Scan(&n)
	fill(t, db, 1000) // about 1 MiB of -wal, 4 times the limit
	burst := walSize(t, path)
	rtx.Rollback()
	if burst < 2*limit {
		t.Fatalf("the burst made a -wal of %d bytes only", burst)
	}
	// The next checkpoint lets the next writer restart the WAL, which
	// truncates the file to the limit.
	if _, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointPassive); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO big(v) VALUES (x'00')")
	if after := walSize(t, path); after > limit {
		t.Errorf("-wal is %d bytes after the burst of %d and a checkpoint, want at most %d", after, burst, limit)
	} else {
		t.Logf("-wal: %d bytes in the burst, %d after", burst, after)
	}
	// Control: with no limit the -wal keeps its size.
	db.Close()
	path2 := dbPath(t)
	db2 := openSafe(t, path2+"?_journal_size_limit=-1")
	mustExec(t, db2, "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)")
	rtx, err = db2.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rtx.QueryRow("SELECT count(*) FROM big").Scan(&n)
	fill(t, db2, 1000)
	rtx.Rollback()
	sqlitesafe.Checkpoint(context.Background(), db2, sqlitesafe.CheckpointPassive)
	mustExec(t, db2, "INSERT INTO big(v) VALUES (x'00')")
	if after := walSize(t, path2); after < 2*limit {
		t.Errorf("control: with no limit the -wal shrank to %d bytes; the test shows nothing", after)
	}
}

// Closing the last handle checkpoints and empties the -wal, even while
// another process keeps the file open (then SQLite itself leaves the -wal
// as it is). The control is plain modernc.
func TestCloseCheckpoints(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, driver string
		dsn          func(string) string
		wantEmpty    bool
	}{
		{"sqlite-safe", "sqlite-safe", func(p string) string { return p }, true},
		{"modernc", "sqlite", rawCareful, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := dbPath(t)
			// Another connection keeps the file open, idle, as another
			// process would.
			keeper := open(t, "sqlite", "file:"+path)
			keeper.SetMaxOpenConns(1)
			db := open(t, tc.driver, tc.dsn(path))
			mustExec(t, db, "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)")
			if err := keeper.Ping(); err != nil {
				t.Fatal(err)
			}
			fill(t, db, 500)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			n := walSize(t, path)
			if tc.wantEmpty && n > 0 {
				t.Errorf("-wal is %d bytes after the last handle closed, want 0", n)
			}
			if !tc.wantEmpty && n <= 0 {
				t.Errorf("control: -wal is %d bytes; plain modernc emptied it too, the test shows nothing", n)
			}
			if got := queryInt(t, keeper, "SELECT count(*) FROM big"); got != 500 {
				t.Errorf("%d rows after close, want 500", got)
			}
		})
	}
}

// Backup copies the database while writers keep writing: every row
// committed before the backup began is in the copy, the copy passes
// integrity_check, and the writers never fail.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	watchdog(t, 2*time.Minute)
	path := dbPath(t)
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)")
	fill(t, db, 2000)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var writes atomic.Int64
	wrote := make(chan struct{}, 1) // a write succeeded
	errs := make(chan error, 16)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := db.Exec("INSERT INTO big(v) VALUES (randomblob(100))"); err != nil {
					errs <- err
					return
				}
				writes.Add(1)
				select {
				case wrote <- struct{}{}:
				default:
				}
			}
		}()
	}
	// untilWrites waits until n writes have succeeded, or a writer failed.
	untilWrites := func(n int64) {
		t.Helper()
		for writes.Load() < n {
			select {
			case <-wrote:
			case err := <-errs:
				t.Fatalf("a writer failed: %v", err)
			}
		}
	}
	untilWrites(20) // the writers are going
	before := queryInt(t, db, "SELECT max(id) FROM big")
	dst := filepath.Join(t.TempDir(), "copy.db")
	atStart := writes.Load()
	if err := sqlitesafe.Backup(context.Background(), db, dst); err != nil {
		t.Fatal(err)
	}
	atEnd := writes.Load()
	during := atEnd - atStart
	untilWrites(atEnd + 20) // and still going after the backup
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a writer failed during the backup: %v", err)
	}
	if during == 0 {
		t.Error("no write ran during the backup")
	}

	cp := openSafe(t, dst+"?mode=ro")
	var check string
	if err := cp.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of the copy = %q, %v", check, err)
	}
	if n := queryInt(t, cp, "SELECT count(*) FROM big WHERE id <= ?", before); n != before {
		t.Errorf("the copy has %d of the %d rows committed before the backup", n, before)
	}
	t.Logf("copy: %d rows; %d rows committed before the backup, %d writes during it",
		queryInt(t, cp, "SELECT count(*) FROM big"), before, during)
	// The destination exists now: refused, and left as it is.
	h := fileHash(t, dst)
	if err := sqlitesafe.Backup(context.Background(), db, dst); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("backup over an existing file = %v, want refused", err)
	}
	if fileHash(t, dst) != h {
		t.Error("a refused backup changed the existing file")
	}
	// A canceled backup leaves nothing behind.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst2 := filepath.Join(t.TempDir(), "canceled.db")
	if err := sqlitesafe.Backup(ctx, db, dst2); err == nil {
		t.Error("a canceled backup succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Dir(dst2)); len(entries) != 0 {
		t.Errorf("a canceled backup left %v", entries)
	}
}

// Raw gives modernc's connection under the writer lock: the backup API,
// hooks and Serialize work, and writers wait meanwhile.
func TestRawUnderTheWriterLock(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	path := dbPath(t)
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1), (2)")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// The backup API, through Raw, while a writer waits for the lock.
	dst := filepath.Join(t.TempDir(), "raw-copy.db")
	writerDone := make(chan error, 1)
	err = sqlitesafe.Raw(ctx, conn, func(dc any) error {
		b, ok := dc.(interface {
			NewBackup(string) (*sqlite.Backup, error)
		})
		if !ok {
			t.Fatalf("Raw gave %T, which has no NewBackup", dc)
		}
		go func() {
			_, err := db.Exec("INSERT INTO t VALUES (3)")
			writerDone <- err
		}()
		// The writer queues behind Raw.
		deadline := time.Now().Add(5 * time.Second)
		for st := mustStats(t, db); st.QueueDepth != 1; st = mustStats(t, db) {
			if time.Now().After(deadline) {
				t.Fatalf("no writer queued behind Raw: %+v", st)
			}
			time.Sleep(time.Millisecond)
		}
		if st := mustStats(t, db); !strings.Contains(st.Holder, "Raw") {
			t.Errorf("Holder = %q, want Raw", st.Holder)
		}
		bk, err := b.NewBackup(dst)
		if err != nil {
			return err
		}
		for more := true; more; {
			if more, err = bk.Step(-1); err != nil {
				return err
			}
		}
		return bk.Finish()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, openSafe(t, dst+"?mode=ro"), "SELECT count(*) FROM t"); n != 2 {
		t.Errorf("the backup has %d rows, want the 2 before the waiting writer's", n)
	}

	// A commit hook registered through Raw sees the handle's writes.
	var commits atomic.Int64
	err = sqlitesafe.Raw(ctx, conn, func(dc any) error {
		dc.(sqlite.HookRegisterer).RegisterCommitHook(func() int32 { commits.Add(1); return 0 })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO t VALUES (4)", "INSERT INTO t VALUES (5)")
	if n := commits.Load(); n != 2 {
		t.Errorf("the commit hook saw %d commits, want 2", n)
	}

	// A transaction Raw leaves open is rolled back, and the lock freed.
	err = sqlitesafe.Raw(ctx, conn, func(dc any) error {
		_, err := dc.(driver.ExecerContext).ExecContext(ctx, "BEGIN IMMEDIATE; INSERT INTO t VALUES (100)", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO t VALUES (6)")
	if n := queryInt(t, db, "SELECT count(*) FROM t WHERE x = 100"); n != 0 {
		t.Errorf("the transaction Raw left open was committed")
	}

	// RawRead: Serialize on a reader, no lock.
	var image []byte
	err = sqlitesafe.RawRead(ctx, conn, func(dc any) error {
		s, ok := dc.(interface{ Serialize() ([]byte, error) })
		if !ok {
			t.Fatalf("RawRead gave %T, which has no Serialize", dc)
		}
		var err error
		image, err = s.Serialize()
		return err
	})
	if err != nil || len(image) == 0 {
		t.Fatalf("Serialize: %d bytes, %v", len(image), err)
	}
	// Raw on a handle of another driver is refused.
	other, err := open(t, "sqlite", "file:"+dbPath(t)).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := sqlitesafe.Raw(ctx, other, func(any) error { return nil }); !errors.Is(err, sqlitesafe.ErrNotSQLiteSafe) {
		t.Errorf("Raw on a modernc conn = %v, want ErrNotSQLiteSafe", err)
	}
}

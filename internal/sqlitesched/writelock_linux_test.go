package sqlitesched

import (
	"bufio"
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
	"modernc.org/libc"
)

// connTLS returns the libc.TLS that modernc.org/sqlite runs c's calls on
// (the second field of its connection).
func connTLS(t *testing.T, c *sql.Conn) *libc.TLS {
	t.Helper()
	var tls *libc.TLS
	if err := c.Raw(func(dc any) error {
		v := reflect.ValueOf(dc).Elem()
		tls = *(**libc.TLS)(v.Field(1).Addr().UnsafePointer())
		return nil
	}); err != nil || tls == nil {
		t.Fatalf("the connection's TLS: %v", err)
	}
	return tls
}

// shmLocksHeld returns the POSIX locks this process holds in the kernel on
// the -shm file at shm, by byte: "WRITE" or "READ". It reads the -shm's
// descriptors' /proc/self/fdinfo (proclocks.Own), which no other process's
// locking can tear as it can a read of /proc/locks.
func shmLocksHeld(t *testing.T, shm string) map[int64]string {
	t.Helper()
	locks, err := proclocks.Own(shm)
	if err != nil {
		t.Fatal(err)
	}
	held := map[int64]string{}
	for _, l := range locks {
		if l.Kind == "POSIX" && !l.Waiting && l.PID == os.Getpid() {
			for b := l.Start; b <= l.End && b < shmLockEnd+1; b++ {
				held[b] = l.Type
			}
		}
	}
	return held
}

func openWAL(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// keepingConn opens the WAL database name in a temporary directory, with a
// table t, and one connection of it that keeps its locks until the test
// ends.
func keepingConn(t *testing.T, name string) (path string, db *sql.DB, c *sql.Conn) {
	t.Helper()
	path = filepath.Join(t.TempDir(), name)
	db = openWAL(t, path)
	if _, err := db.Exec("CREATE TABLE t (i INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tls := connTLS(t, c)
	Keep(tls, true)
	t.Cleanup(func() {
		Keep(tls, false)
		c.Close()
	})
	return path, db, c
}

// keepFor sets the bounds of keeping for the test.
func keepFor(t *testing.T, tick, max time.Duration) {
	kept.mu.Lock()
	oldTick, oldMax := sweepTick, keepMax
	sweepTick, keepMax = tick, max
	kept.mu.Unlock()
	t.Cleanup(func() {
		Release()
		kept.mu.Lock()
		sweepTick, keepMax = oldTick, oldMax
		// A sweeper asleep for the test's tick wakes to the old one.
		kept.sweeping = true
		select {
		case kept.wake <- struct{}{}:
		default:
		}
		kept.mu.Unlock()
	})
}

// TestKernelHoldsWhatSQLiteHolds: through many transactions on three
// connections of one process, two of which keep their locks, with kept
// locks let go by Release and by the sweep in between, the kernel holds the
// write lock whenever a connection is in a write transaction, and a read
// mark whenever one is in a read transaction; kept locks show in the kernel
// while kept and are gone after Release; every insert is there once.
func TestKernelHoldsWhatSQLiteHolds(t *testing.T) {
	if !WriteLockKept() {
		t.Fatal("the unix VFS does not keep locks")
	}
	keepFor(t, time.Millisecond, time.Hour)
	path := filepath.Join(t.TempDir(), "k.db")
	db := openWAL(t, path)
	if _, err := db.Exec("CREATE TABLE t (i INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var conns []*sql.Conn
	for i := range 3 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i < 2 {
			tls := connTLS(t, c)
			Keep(tls, true)
			defer Keep(tls, false)
		}
		conns = append(conns, c)
	}
	shm := path + "-shm"
	keptSeen := 0
	for i := range 300 {
		c := conns[i%3]
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
		if _, err := tx.Exec("INSERT INTO t VALUES (?)", i); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		held := shmLocksHeld(t, shm)
		if held[shmWriteLock] != "WRITE" {
			t.Fatalf("transaction %d (connection %d): the kernel holds %v of the write lock", i, i%3, held)
		}
		mark := false
		for b := int64(shmReadMark0); b < shmLockEnd; b++ {
			mark = mark || held[b] != ""
		}
		if !mark {
			t.Fatalf("transaction %d: no read mark held in the kernel: %v", i, held)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		if i%3 < 2 {
			if keptWrite, held := keptAndHeld(t, shm); keptWrite {
				keptSeen++
				if held[shmWriteLock] != "WRITE" {
					t.Fatalf("after commit %d: the write lock is kept but the kernel holds %v", i, held)
				}
			}
		}
		switch {
		case i%50 == 49:
			Release()
			if n, _ := KeptLocks(); n != 0 {
				t.Fatalf("after Release: %d locks kept", n)
			}
			if held := shmLocksHeld(t, shm); len(held) != 0 && held[shmWriteLock] != "" {
				t.Fatalf("after Release the kernel holds %v", held)
			}
		case i%70 == 69:
			// Two sweeps of 1 ms let them go; a loaded machine may
			// take longer to run them, so wait up to a second.
			n := -1
			for deadline := time.Now().Add(time.Second); n != 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
				n, _ = KeptLocks()
			}
			if n != 0 {
				t.Fatalf("after the sweeps: %d locks kept for a second", n)
			}
		}
	}
	if keptSeen < 150 {
		t.Errorf("the write lock was kept after %d of 200 commits of the keeping connections", keptSeen)
	}
	var n, sum int
	if err := db.QueryRow("SELECT count(*), sum(i) FROM t").Scan(&n, &sum); err != nil || n != 300 || sum != 299*300/2 {
		t.Fatalf("%d rows, sum %d (%v); want 300, %d", n, sum, err, 299*300/2)
	}
}

// keptAndHeld reports whether the one -shm file's write lock is kept, and
// if so what the kernel holds on shm. kept.mu is held while /proc/locks is
// read, so that the sweeper cannot let the lock go between the two looks.
func keptAndHeld(t *testing.T, shm string) (bool, map[int64]string) {
	kept.mu.Lock()
	defer kept.mu.Unlock()
	s := kept.fds[findFd(t)]
	if s == nil || s.lock[0].mode != modeExclusive || s.lock[0].inUse {
		return false, nil
	}
	return true, shmLocksHeld(t, shm)
}

// findFd returns the descriptor of the one -shm file kept.fds knows, or -1.
func findFd(t *testing.T) int32 {
	for fd := range kept.fds {
		return fd
	}
	return -1
}

// TestKeptLockKeepsOtherProcessesOut: while this process keeps the write
// lock, another process's BEGIN IMMEDIATE (busy_timeout 0) is refused as
// SQLITE_BUSY; after Release it commits, and its row is there. The kept
// locks are forgotten when the database's last connection closes.
func TestKeptLockKeepsOtherProcessesOut(t *testing.T) {
	if path := os.Getenv("SQLITESCHED_TEST_WRITER"); path != "" {
		db := openWAL(t, path)
		_, err := db.Exec("INSERT INTO t VALUES (-1)")
		if err != nil {
			t.Fatalf("other process: %v", err)
		}
		return
	}
	keepFor(t, time.Hour, time.Hour)
	path, db, c := keepingConn(t, "p.db")
	if _, err := c.ExecContext(context.Background(), "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if n, _ := KeptLocks(); n == 0 {
		t.Fatal("no lock kept after the insert")
	}
	other := func() error {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKeptLockKeepsOtherProcessesOut$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SQLITESCHED_TEST_WRITER="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return &exec.Error{Name: string(out), Err: err}
		}
		return nil
	}
	if err := other(); err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("the other process wrote while this one kept the write lock: %v", err)
	}
	Release()
	if err := other(); err != nil {
		t.Fatalf("the other process after Release: %v", err)
	}
	var n int
	if err := c.QueryRowContext(context.Background(), "SELECT count(*) FROM t WHERE i = -1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the other process's row: %d (%v)", n, err)
	}
	// Kept again, then the connections close: the -shm descriptor goes,
	// and with it the kernel's locks and the record of them.
	if _, err := c.ExecContext(context.Background(), "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if n, _ := KeptLocks(); n == 0 {
		t.Fatal("no lock kept after the second insert")
	}
	c.Close()
	db.Close()
	kept.mu.Lock()
	left := len(kept.fds)
	kept.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d -shm descriptors still recorded after the last close", left)
	}
}

// TestNotKeptBesideAnotherWriter: once a keeping connection finds the write
// lock held by someone else in the kernel (an open file description's lock
// stands in for another process), the write lock is not kept for
// foreignRest: the next transaction gives it back to the kernel as it ends,
// so that the other writer's busy handler finds it free as often as without
// keeping. The read mark is still kept.
func TestNotKeptBesideAnotherWriter(t *testing.T) {
	keepFor(t, time.Hour, time.Hour)
	path, db, c := keepingConn(t, "f.db")
	insert := func(i int) error {
		_, err := c.ExecContext(context.Background(), "INSERT INTO t VALUES (?)", i)
		return err
	}
	if err := insert(1); err != nil {
		t.Fatal(err)
	}
	shm := path + "-shm"
	if held := shmLocksHeld(t, shm); held[shmWriteLock] != "WRITE" {
		t.Fatalf("the write lock is not kept after an insert alone: %v", held)
	}
	Release()

	// The other writer. Its descriptor stays open until SQLite's are
	// closed: closing it would drop this process's POSIX locks.
	f, err := os.OpenFile(shm, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	ofd := func(typ int16) {
		t.Helper()
		fl := syscall.Flock_t{Type: typ, Whence: 0, Start: shmWriteLock, Len: 1}
		if err := syscall.FcntlFlock(f.Fd(), 37 /* F_OFD_SETLK */, &fl); err != nil {
			t.Fatalf("the other writer's lock: %v", err)
		}
	}
	ofd(syscall.F_WRLCK)
	if err := insert(2); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("an insert while another holds the write lock: %v, want SQLITE_BUSY", err)
	}
	ofd(syscall.F_UNLCK)
	for i := 3; i < 6; i++ {
		if err := insert(i); err != nil {
			t.Fatal(err)
		}
		if held := shmLocksHeld(t, shm); held[shmWriteLock] != "" {
			t.Fatalf("insert %d: the write lock is kept (%v) right after another writer held it", i, held)
		}
	}
	var n int
	if err := c.QueryRowContext(context.Background(), "SELECT count(*) FROM t").Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d rows (%v), want 4: 1, 3, 4, 5", n, err)
	}
	c.Close()
	db.Close()
	f.Close()
}

// TestKeptWhileAlone: a connection that keeps its locks and writes without
// a break, in a process alone on its file, makes no kernel call for them
// after its first transaction but one look a keepMax for other processes:
// the write lock and its read mark stay held, the mark exclusively. Once
// another process has the wal-index open (an open file description's shared
// lock on its DMS byte stands in for one), the write lock rests after each
// keepMax as before, given back at the end of each transaction, and the
// read mark with it: some kernel calls every few transactions again. Every
// insert is there once.
func TestKeptWhileAlone(t *testing.T) {
	const max = 10 * time.Millisecond
	keepFor(t, time.Hour, max)
	path, db, c := keepingConn(t, "a.db")
	ctx := context.Background()
	// Commits without an fsync, many transactions a keepMax, and no
	// checkpoint (as on the driver's writers), whose locks are others.
	for _, q := range []string{"PRAGMA synchronous = NORMAL", "PRAGMA wal_autocheckpoint = 0"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	next := 0
	// insertFor inserts one row a transaction for d, and returns how
	// many it inserted, the kernel calls made meanwhile, and how many
	// keepMax went by.
	insertFor := func(d time.Duration) (n int, calls, maxes int64) {
		kept.mu.Lock()
		before := kept.calls
		kept.mu.Unlock()
		start := time.Now()
		defer func() { maxes = int64(time.Since(start)/max) + 1 }()
		for deadline := start.Add(d); time.Now().Before(deadline); n++ {
			next++
			if _, err := c.ExecContext(ctx, "INSERT INTO t VALUES (?)", next); err != nil {
				t.Fatalf("insert %d: %v", next, err)
			}
		}
		kept.mu.Lock()
		defer kept.mu.Unlock()
		return n, kept.calls - before, 0
	}
	insertFor(5 * time.Millisecond)
	// Two looks (the write lock's, the mark's) a keepMax; without them,
	// two calls a transaction at least.
	n, calls, maxes := insertFor(10 * max)
	if n < 100 || calls > 2*maxes+4 {
		t.Fatalf("alone: %d kernel calls for %d transactions over %d keepMax", calls, n, maxes)
	}
	t.Logf("alone: %d kernel calls for %d transactions over %d keepMax", calls, n, maxes)
	held := shmLocksHeld(t, path+"-shm")
	if held[shmWriteLock] != "WRITE" {
		t.Fatalf("alone, between transactions: the kernel holds %v", held)
	}
	marks := 0
	for b := int64(shmReadMark0); b < shmLockEnd; b++ {
		if held[b] == "WRITE" {
			marks++
		}
	}
	if marks == 0 {
		t.Fatalf("alone, between transactions: want a read mark held exclusively, the kernel holds %v", held)
	}

	// The other process. Its descriptor stays open until SQLite's are
	// closed: closing it would drop this process's POSIX locks.
	f, err := os.OpenFile(path+"-shm", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fl := syscall.Flock_t{Type: syscall.F_RDLCK, Whence: 0, Start: shmLockEnd, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), 37 /* F_OFD_SETLK */, &fl); err != nil {
		t.Fatalf("the other process's lock on the DMS byte: %v", err)
	}
	n, calls, maxes = insertFor(10 * max)
	if calls < int64(n)/4 {
		t.Errorf("beside another process: %d kernel calls for %d transactions over %d keepMax, want the rests", calls, n, maxes)
	}
	t.Logf("beside another process: %d kernel calls for %d transactions over %d keepMax", calls, n, maxes)
	var count, sum int
	if err := c.QueryRowContext(ctx, "SELECT count(*), sum(i) FROM t").Scan(&count, &sum); err != nil || count != next || sum != next*(next+1)/2 {
		t.Errorf("rows: %d, sum %d (%v); want %d, %d", count, sum, err, next, next*(next+1)/2)
	}
	c.Close()
	db.Close()
	f.Close()
}

// TestOtherProcessReadsBesideAKeptTransaction: another process reads the
// database while this process's keeping connection is inside a write
// transaction begun right after another (its write lock and read mark kept
// in the kernel), both when that process had the file open before (with no
// sweep, the transaction's own locking must see it) and when it opens it
// during the transaction (the sweep must see it): it reads at once, what
// was committed, as beside a plain SQLite writer. A read mark held
// exclusively in the kernel for the transaction would leave its reader
// retrying until the transaction ends (and failing with SQLITE_PROTOCOL
// after about 10 s).
func TestOtherProcessReadsBesideAKeptTransaction(t *testing.T) {
	if path := os.Getenv("SQLITESCHED_TEST_READER"); path != "" {
		db := openWAL(t, path)
		read := func() {
			var n int
			if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
				t.Fatalf("other process: %v", err)
			}
			os.Stdout.WriteString("rows " + strconv.Itoa(n) + "\n")
		}
		read()
		bufio.NewReader(os.Stdin).ReadString('\n')
		read()
		return
	}
	for _, tc := range []struct {
		opened    string
		tick, max time.Duration
	}{{"before", time.Hour, time.Hour}, {"during", time.Millisecond, 5 * time.Millisecond}} {
		opened := tc.opened
		t.Run("opened "+opened, func(t *testing.T) {
			keepFor(t, tc.tick, tc.max)
			path, _, c := keepingConn(t, "r.db")
			ctx := context.Background()
			cmd := exec.Command(os.Args[0], "-test.run=^TestOtherProcessReadsBesideAKeptTransaction$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SQLITESCHED_TEST_READER="+path)
			cmd.Stderr = os.Stderr
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 2)
			start := func() {
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				go func() {
					sc := bufio.NewScanner(out)
					for sc.Scan() {
						if strings.HasPrefix(sc.Text(), "rows ") {
							lines <- sc.Text()
						}
					}
					close(lines)
				}()
				t.Cleanup(func() { in.Close(); cmd.Wait() })
			}
			if opened == "before" {
				start()
				if l := <-lines; l != "rows 0" {
					t.Fatalf("the other process's first read: %q", l)
				}
			}
			for i := 1; i <= 50; i++ {
				if _, err := c.ExecContext(ctx, "INSERT INTO t VALUES (?)", i); err != nil {
					t.Fatal(err)
				}
			}
			tx, err := c.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.Exec("INSERT INTO t VALUES (51)"); err != nil {
				t.Fatal(err)
			}
			if opened == "during" {
				start()
			} else {
				in.Write([]byte("go\n"))
			}
			select {
			case l := <-lines:
				if l != "rows 50" {
					t.Errorf("the other process read %q during the transaction, want the 50 rows committed", l)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("the other process's read waited 5 s for this process's write transaction")
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

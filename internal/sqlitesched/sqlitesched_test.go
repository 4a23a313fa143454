package sqlitesched

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"modernc.org/libc"
	_ "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestInstalled: the package's init configured SQLite before anything
// initialized it, and the default VFS sleeps through sleep.
func TestInstalled(t *testing.T) {
	if os.Getenv(Env) == "off" {
		t.Skip(Env + "=off")
	}
	if !Installed() {
		t.Fatal("SQLite does not run on this package's mutexes")
	}
	if !SleepInstalled() {
		t.Fatal("the unix VFS's xSleep was not replaced")
	}
	tls := libc.NewTLS()
	defer tls.Close()
	if got := vfsAt(sqlite3.Xsqlite3_vfs_find(tls, 0)).FxSleep; got != cfunc(sleep) {
		t.Fatalf("the default VFS's xSleep is %#x, not sleep", got)
	}
	if !SeparateCaches() || pcache1.FseparateCache != 1 {
		t.Fatalf("page caches in one group: SeparateCaches %v, separateCache %d", SeparateCaches(), pcache1.FseparateCache)
	}
	// A static mutex SQLite hands out is one of ours.
	if got := sqlite3.Xsqlite3_mutex_alloc(tls, sqlite3.SQLITE_MUTEX_STATIC_LRU); got != statics[sqlite3.SQLITE_MUTEX_STATIC_LRU] {
		t.Fatalf("SQLITE_MUTEX_STATIC_LRU is %#x, want %#x", got, statics[sqlite3.SQLITE_MUTEX_STATIC_LRU])
	}
}

// TestOff: a program started with SQLITESAFE_SCHED=off leaves SQLite as
// modernc.org/sqlite ships it (this test binary, run again so).
func TestOff(t *testing.T) {
	if os.Getenv(Env) == "off" {
		if Installed() || SleepInstalled() || WriteLockKept() {
			t.Fatalf("with %s=off: mutexes installed %v, sleep installed %v, locks kept %v", Env, Installed(), SleepInstalled(), WriteLockKept())
		}
		tls := libc.NewTLS()
		defer tls.Close()
		if got := vfsAt(sqlite3.Xsqlite3_vfs_find(tls, 0)).FxSleep; got == cfunc(sleep) {
			t.Fatal("the default VFS sleeps through this package")
		}
		if got := sqlite3.Xsqlite3_mutex_alloc(tls, sqlite3.SQLITE_MUTEX_STATIC_LRU); got == statics[sqlite3.SQLITE_MUTEX_STATIC_LRU] && got != 0 {
			t.Fatal("SQLite hands out this package's mutexes")
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestOff$", "-test.count=1")
	cmd.Env = append(os.Environ(), Env+"=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the test binary with %s=off: %v\n%s", Env, err, out)
	}
}

// TestMutexExclusion: goroutines taking one SQLite mutex through SQLite's
// API, some holding it across a yield so that the others spin, yield and
// park, never lose an increment, and every one of them gets through.
func TestMutexExclusion(t *testing.T) {
	for _, typ := range []int32{sqlite3.SQLITE_MUTEX_FAST, sqlite3.SQLITE_MUTEX_RECURSIVE} {
		t.Run(fmt.Sprint("type ", typ), func(t *testing.T) {
			tls := libc.NewTLS()
			defer tls.Close()
			m := sqlite3.Xsqlite3_mutex_alloc(tls, typ)
			if m == 0 {
				t.Fatal("sqlite3_mutex_alloc returned NULL")
			}
			defer sqlite3.Xsqlite3_mutex_free(tls, m)
			const goroutines, rounds = 16, 2000
			n := 0 // guarded by m alone: -race sees the atomics' ordering
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					tls := libc.NewTLS()
					defer tls.Close()
					if g%4 == 0 { // some come first (SetFirst)
						SetFirst(tls.ID, true)
						defer SetFirst(tls.ID, false)
					}
					for i := range rounds {
						sqlite3.Xsqlite3_mutex_enter(tls, m)
						v := n
						if (g+i)%50 == 0 {
							runtime.Gosched() // hold it while others wait
						}
						again := typ == sqlite3.SQLITE_MUTEX_RECURSIVE && i%3 == 0
						if again { // enter again, with others waiting
							sqlite3.Xsqlite3_mutex_enter(tls, m)
						}
						n = v + 1
						if again {
							sqlite3.Xsqlite3_mutex_leave(tls, m)
						}
						sqlite3.Xsqlite3_mutex_leave(tls, m)
					}
				})
			}
			wg.Wait()
			if n != goroutines*rounds {
				t.Fatalf("counter %d, want %d", n, goroutines*rounds)
			}
		})
	}
}

// TestMutexParks: a mutex held for a long time parks its waiters (they do
// not spin through it), and its release lets every one of them through. A
// recursive mutex's holder, its waiters parked, can enter it again and leave
// it without letting them in.
func TestMutexParks(t *testing.T) {
	for _, typ := range []int32{sqlite3.SQLITE_MUTEX_FAST, sqlite3.SQLITE_MUTEX_RECURSIVE} {
		t.Run(fmt.Sprint("type ", typ), func(t *testing.T) {
			tls := libc.NewTLS()
			defer tls.Close()
			p := sqlite3.Xsqlite3_mutex_alloc(tls, typ)
			defer sqlite3.Xsqlite3_mutex_free(tls, p)
			sqlite3.Xsqlite3_mutex_enter(tls, p)
			const waiters = 4
			var inside atomic.Int32
			done := make(chan struct{}, waiters)
			for range waiters {
				go func() {
					tls := libc.NewTLS()
					defer tls.Close()
					sqlite3.Xsqlite3_mutex_enter(tls, p)
					inside.Add(1)
					sqlite3.Xsqlite3_mutex_leave(tls, p)
					done <- struct{}{}
				}()
			}
			m := get(p)
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				parked.Lock()
				n := len(parked.q[m])
				parked.Unlock()
				if n == waiters {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d waiters parked", n, waiters)
				}
			}
			if s := m.state.Load() & stateMask; s != stateParked {
				t.Fatalf("state %d with waiters parked, want %d", s, stateParked)
			}
			if typ == sqlite3.SQLITE_MUTEX_RECURSIVE {
				sqlite3.Xsqlite3_mutex_enter(tls, p) // would wait for itself if the mark lost the holder
				if rc := sqlite3.Xsqlite3_mutex_try(tls, p); rc != sqlite3.SQLITE_OK {
					t.Fatalf("the holder's try with waiters parked: %d, want SQLITE_OK", rc)
				}
				sqlite3.Xsqlite3_mutex_leave(tls, p)
				sqlite3.Xsqlite3_mutex_leave(tls, p)
				time.Sleep(10 * time.Millisecond)
				if n := inside.Load(); n != 0 {
					t.Fatalf("%d waiters got in while the holder was still inside once", n)
				}
			}
			sqlite3.Xsqlite3_mutex_leave(tls, p)
			for i := range waiters {
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("%d of %d waiters got the mutex after its release", i, waiters)
				}
			}
			if s := m.state.Load(); s != 0 {
				t.Fatalf("state %d after every waiter left, want 0", s)
			}
		})
	}
}

// TestParkInSynctestBubble: a goroutine of a testing/synctest bubble parks
// on a mutex that a goroutine outside the bubble holds, and gets it when that
// one releases it (a channel closed from outside a bubble would kill the
// process).
func TestParkInSynctestBubble(t *testing.T) {
	tls := libc.NewTLS()
	defer tls.Close()
	p := sqlite3.Xsqlite3_mutex_alloc(tls, sqlite3.SQLITE_MUTEX_FAST)
	defer sqlite3.Xsqlite3_mutex_free(tls, p)
	sqlite3.Xsqlite3_mutex_enter(tls, p)
	go func() {
		for {
			parked.Lock()
			n := len(parked.q[get(p)])
			parked.Unlock()
			if n == 1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		sqlite3.Xsqlite3_mutex_leave(tls, p)
	}()
	synctest.Test(t, func(t *testing.T) {
		tls := libc.NewTLS()
		defer tls.Close()
		sqlite3.Xsqlite3_mutex_enter(tls, p)
		sqlite3.Xsqlite3_mutex_leave(tls, p)
	})
}

// TestRecursiveMutex: a recursive mutex is entered again by its holder, must
// be left as often, and is refused to another connection's thread until then;
// a fast one refuses its holder's try.
func TestRecursiveMutex(t *testing.T) {
	a, b := libc.NewTLS(), libc.NewTLS()
	defer a.Close()
	defer b.Close()
	m := sqlite3.Xsqlite3_mutex_alloc(a, sqlite3.SQLITE_MUTEX_RECURSIVE)
	defer sqlite3.Xsqlite3_mutex_free(a, m)
	sqlite3.Xsqlite3_mutex_enter(a, m)
	if rc := sqlite3.Xsqlite3_mutex_try(a, m); rc != sqlite3.SQLITE_OK {
		t.Fatalf("the holder's try: %d, want SQLITE_OK", rc)
	}
	sqlite3.Xsqlite3_mutex_enter(a, m)
	for i := range 3 {
		if rc := sqlite3.Xsqlite3_mutex_try(b, m); rc != sqlite3.SQLITE_BUSY {
			t.Fatalf("another thread's try with the mutex entered %d times: %d, want SQLITE_BUSY", 3-i, rc)
		}
		sqlite3.Xsqlite3_mutex_leave(a, m)
	}
	if rc := sqlite3.Xsqlite3_mutex_try(b, m); rc != sqlite3.SQLITE_OK {
		t.Fatalf("another thread's try after the holder left: %d, want SQLITE_OK", rc)
	}
	sqlite3.Xsqlite3_mutex_leave(b, m)

	f := sqlite3.Xsqlite3_mutex_alloc(a, sqlite3.SQLITE_MUTEX_FAST)
	defer sqlite3.Xsqlite3_mutex_free(a, f)
	sqlite3.Xsqlite3_mutex_enter(a, f)
	if rc := sqlite3.Xsqlite3_mutex_try(a, f); rc != sqlite3.SQLITE_BUSY {
		t.Fatalf("a fast mutex's holder's try: %d, want SQLITE_BUSY", rc)
	}
	sqlite3.Xsqlite3_mutex_leave(a, f)
}

// TestSleep: sqlite3_sleep, which the busy handler's waits go through, still
// waits at least as long as asked.
func TestSleep(t *testing.T) {
	tls := libc.NewTLS()
	defer tls.Close()
	start := time.Now()
	if got := sqlite3.Xsqlite3_sleep(tls, 30); got != 30 {
		t.Fatalf("sqlite3_sleep(30) = %d", got)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("sqlite3_sleep(30) returned after %v", d)
	}
}

// TestConcurrentConnections: plain modernc.org/sqlite connections of one
// process, reading and writing one WAL file at once, on these mutexes: every
// insert that succeeded is there, every read sees a consistent count.
func TestConcurrentConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, g INTEGER)"); err != nil {
		t.Fatal(err)
	}
	const writers, readers, inserts = 4, 8, 300
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	stop := make(chan struct{})
	for g := range writers {
		wg.Go(func() {
			for range inserts {
				if _, err := db.Exec("INSERT INTO t (g) VALUES (?)", g); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n, m int
				if err := db.QueryRow("SELECT count(*), coalesce(max(id), 0) FROM t").Scan(&n, &m); err != nil {
					errs <- err
					return
				}
				if n != m {
					errs <- fmt.Errorf("read %d rows with max id %d", n, m)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for g := range writers {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM t WHERE g = ?", g).Scan(&n); err != nil || n != inserts {
			t.Errorf("writer %d: %d rows (%v), want %d", g, n, err, inserts)
		}
	}
}

// TestFirstComesFirst: of two goroutines waiting for a mutex, the one whose
// connection comes first (SetFirst) takes it at its release, though the
// other waited longer, parked; and SetFirst lists and unlists.
func TestFirstComesFirst(t *testing.T) {
	tls := libc.NewTLS()
	defer tls.Close()
	h := sqlite3.Xsqlite3_mutex_alloc(tls, sqlite3.SQLITE_MUTEX_FAST)
	if h == 0 {
		t.Fatal("sqlite3_mutex_alloc returned NULL")
	}
	defer sqlite3.Xsqlite3_mutex_free(tls, h)
	m := get(h)
	sqlite3.Xsqlite3_mutex_enter(tls, h)
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enter := func(name string, first bool) {
		wg.Go(func() {
			tls := libc.NewTLS()
			defer tls.Close()
			if first {
				if !SetFirst(tls.ID, true) || !isFirst(tls.ID) {
					t.Error("SetFirst did not list the connection")
				}
				defer SetFirst(tls.ID, false)
			}
			sqlite3.Xsqlite3_mutex_enter(tls, h)
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			sqlite3.Xsqlite3_mutex_leave(tls, h)
		})
	}
	enter("other", false)
	deadline := time.Now().Add(10 * time.Second)
	for m.state.Load()&stateMask != stateParked { // the other has parked
		if time.Now().After(deadline) {
			t.Fatal("the other waiter did not park")
		}
		time.Sleep(time.Millisecond)
	}
	enter("first", true)
	for m.first.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first waiter does not wait")
		}
		runtime.Gosched()
	}
	sqlite3.Xsqlite3_mutex_leave(tls, h)
	wg.Wait()
	if fmt.Sprint(order) != "[first other]" {
		t.Fatalf("took the mutex in the order %v, want [first other]", order)
	}
	probe := libc.NewTLS()
	defer probe.Close()
	if isFirst(probe.ID) {
		t.Fatal("a connection never listed comes first")
	}
}

// TestWakeFirst: of the goroutines parked on a mutex, a release wakes
// those whose connections come first before the others, each group in
// the order it parked.
func TestWakeFirst(t *testing.T) {
	m := &mutex{}
	m.state.Store(stateParked) // held (a fast mutex), with waiters
	var mu sync.Mutex
	var woken []string
	var wg sync.WaitGroup
	for i, w := range []struct {
		name  string
		first bool
	}{{"other1", false}, {"first1", true}, {"other2", false}, {"first2", true}} {
		wg.Go(func() {
			park(m, w.first)
			mu.Lock()
			woken = append(woken, w.name)
			mu.Unlock()
		})
		deadline := time.Now().Add(10 * time.Second)
		for {
			parked.Lock()
			n := len(parked.q[m])
			parked.Unlock()
			if n == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not park", w.name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i, want := range []bool{true, true, false, false} {
		if got := wake(m); got != want {
			t.Fatalf("wake %d woke a waiter that comes first: %v, want %v", i, got, want)
		}
		for {
			mu.Lock()
			n := len(woken)
			mu.Unlock()
			if n == i+1 {
				break
			}
			runtime.Gosched()
		}
	}
	wg.Wait()
	if fmt.Sprint(woken) != "[first1 first2 other1 other2]" {
		t.Fatalf("woken in the order %v, want [first1 first2 other1 other2]", woken)
	}
}

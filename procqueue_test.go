//go:build unix

package sqlitesafe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// Two procLocks on one file stand for two processes: flock locks belong to
// open file descriptions, so they exclude each other within a process too.
func twoProcLocks(t *testing.T) (a, b *procLock) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	a, b = newProcLock(path, "app.db", nil), newProcLock(path, "app.db", nil)
	t.Cleanup(func() { a.close(); b.close() })
	return a, b
}

// heldByA returns two procLocks on one file, as twoProcLocks does, a
// holding the lock; it skips the test where the waiting flag, which the
// test is about, is missing.
func heldByA(t *testing.T) (a, b *procLock) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the waiting flag needs Linux's open file description locks")
	}
	a, b = twoProcLocks(t)
	if _, err := a.acquire(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// acquireWaiting starts l.acquire (5 s at most) in a goroutine of its own
// and returns once it waits for the lock; the channel gets its error.
func acquireWaiting(t *testing.T, l *procLock, name string) <-chan error {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, err := l.acquire(context.Background(), 5*time.Second)
		got <- err
	}()
	waitInflight(t, l, name)
	return got
}

// waitInflight waits until l has an acquire in flight (at most 5 s).
func waitInflight(t *testing.T, l *procLock, name string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		l.mu.Lock()
		waiting := l.inflight != nil
		l.mu.Unlock()
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(name + " never waited")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestProcLockExcludes(t *testing.T) {
	t.Parallel()
	a, b := twoProcLocks(t)
	ctx := context.Background()
	if waited, err := a.acquire(ctx, time.Second); err != nil || waited {
		t.Fatalf("a: waited %v, %v", waited, err)
	}
	start := time.Now()
	waited, err := b.acquire(ctx, 50*time.Millisecond)
	if !errors.Is(err, errProcTimeout) || !waited {
		t.Fatalf("b while a holds: waited %v, %v; want a timeout", waited, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("b gave up after %s, before its timeout", d)
	}
	// b's blocked call is still in flight; b adopts it when it tries
	// again, and gets the lock the moment a lets go.
	got := make(chan error, 1)
	go func() {
		_, err := b.acquire(ctx, 5*time.Second)
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.release()
	if err := <-got; err != nil {
		t.Fatalf("b after a released: %v", err)
	}
	if _, err := a.acquire(ctx, 20*time.Millisecond); !errors.Is(err, errProcTimeout) {
		t.Fatalf("a while b holds: %v, want a timeout", err)
	}
	b.release()
}

// A wait abandoned for good leaves no lock behind: the blocked call that
// succeeds with nobody waiting lets go at once.
func TestProcLockAbandonedWait(t *testing.T) {
	t.Parallel()
	a, b := twoProcLocks(t)
	if _, err := a.acquire(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := b.acquire(ctx, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("b canceled: %v", err)
	}
	a.release()
	// b's call gets the lock now and must give it back: a gets it again.
	if _, err := a.acquire(context.Background(), 5*time.Second); err != nil {
		t.Fatalf("a after b abandoned its wait: %v (b's call kept the lock)", err)
	}
	a.release()
}

// The writer queue takes the process lock after the in-process lock and
// gives it back with it; a timeout on the process lock frees the queue.
func TestQueueTakesProcLock(t *testing.T) {
	t.Parallel()
	a, other := twoProcLocks(t)
	q := &writeQueue{file: "app.db", proc: a}
	h := holderHere(holdTx)
	h.proc = true
	if err := q.lock(context.Background(), time.Second, h); err != nil {
		t.Fatal(err)
	}
	if _, err := other.acquire(context.Background(), 20*time.Millisecond); !errors.Is(err, errProcTimeout) {
		t.Fatalf("another process got the lock while the queue holds it: %v", err)
	}
	q.unlock()
	if _, err := other.acquire(context.Background(), time.Second); err != nil {
		t.Fatalf("the queue kept the process lock after unlock: %v", err)
	}
	// Now the other process holds it: the queue's wait runs out with a
	// LockTimeoutError naming another process, and the queue is free.
	h = holderHere(holdTx)
	h.proc = true
	err := q.lock(context.Background(), 50*time.Millisecond, h)
	var lte *LockTimeoutError
	if !errors.As(err, &lte) || !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), "held by a writer in another process") {
		t.Fatalf("lock while another process holds = %v, want a LockTimeoutError naming it", err)
	}
	if held, _, _ := q.snapshot(); held {
		t.Fatal("a failed process-lock wait left the queue held")
	}
	if q.stats.timeouts.Load() != 1 || q.stats.procWaits.n.Load() != 1 {
		t.Errorf("timeouts %d, process waits %d; want 1 and 1", q.stats.timeouts.Load(), q.stats.procWaits.n.Load())
	}
	other.release()
}

func TestFlockHolders(t *testing.T) {
	t.Parallel()
	text := `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF
1: -> FLOCK  ADVISORY  WRITE 4343 fd:01:1234 0 EOF
2: POSIX  ADVISORY  READ 77 fd:01:999 128 128
3: FLOCK  ADVISORY  WRITE 88 08:02:1234 0 EOF
4: OFDLCK ADVISORY  READ  -1 fd:01:1234 0 0
5: FLOCK  ADVISORY  WRITE 4545 1000:100:1234 0 EOF
6: FLOCK  ADVISORY  WRITE 99 fd:01:1234 0 EOF
`
	locks, err := proclocks.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "linux" {
		t.Skip("device numbers are Linux's")
	}
	dev := uint64(0xfd<<8 | 0x01)
	if got := flockHolders(locks, dev, 1234, 99); !slices.Equal(got, []int{4242}) {
		t.Errorf("holders = %v, want [4242] (not the blocked waiter 4343, not the other device's 88, "+
			"not a waiting flag, not this process, 99)", got)
	}
	// A device with a major past 4095 and a minor past 255 (glibc's
	// encoding: major 0x1000, minor 0x100).
	if got := flockHolders(locks, 0x1000_0010_0000, 1234, 99); !slices.Equal(got, []int{4545}) {
		t.Errorf("holders on device 4096:256 = %v, want [4545]", got)
	}
}

// A process that has had the lock for a whole fairSlice steps aside once
// when another process waits, and only then.
func TestProcLockYieldsToWaiters(t *testing.T) {
	t.Parallel()
	a, b := heldByA(t)
	yield := func(streak time.Duration) bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.streak = time.Now().Add(-streak)
		return a.yieldFirst()
	}
	if yield(2 * fairSlice) {
		t.Error("a yields with nobody waiting")
	}
	got := acquireWaiting(t, b, "b")
	if yield(fairSlice / 2) {
		t.Error("a yields before its slice is over")
	}
	if !yield(2 * fairSlice) {
		t.Error("a does not yield after a whole slice while b waits")
	}
	a.release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	b.release()
	if yield(2 * fairSlice) {
		t.Error("a yields after b stopped waiting")
	}
}

// The lock file gets the database's owner, group and write classes, whatever
// the umask; a lock file left more open (by an older version) is narrowed.
func TestLockFileFollowsDatabase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give the files another owner")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	if err := os.WriteFile(db, nil, 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db, 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(db, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	check := func(what string, f *os.File) {
		t.Helper()
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o660 || st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s: the lock file is %s %d:%d, want -rw-rw---- 65534:65534 as the database", what, fi.Mode().Perm(), st.Uid, st.Gid)
		}
	}
	old := syscall.Umask(0o077)
	f, wider, err := openLockFile(db, db+procLockSuffix)
	syscall.Umask(old)
	if err != nil || wider != "" {
		t.Fatalf("openLockFile: %v, %q", err, wider)
	}
	check("created under umask 077", f)
	f.Close()

	// An older version's lock file: 0644, root's.
	if err := os.Chown(db+procLockSuffix, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db+procLockSuffix, 0o644); err != nil {
		t.Fatal(err)
	}
	f, wider, err = openLockFile(db, db+procLockSuffix)
	if err != nil || wider != "" {
		t.Fatalf("openLockFile: %v, %q", err, wider)
	}
	check("found 0644", f)
	f.Close()
}

// A turn's end keeps the lock for the process's next turn, and lets it go
// once idle for lingerGrace; while another process waits, a turn's end lets
// it go at once.
func TestProcLockKeptBetweenTurns(t *testing.T) {
	t.Parallel()
	a, b := heldByA(t)
	ctx := context.Background()
	a.done()
	a.mu.Lock()
	kept := a.held && a.idle
	a.mu.Unlock()
	if !kept {
		t.Fatal("a let the lock go at the end of its turn with nobody waiting")
	}
	// The next turn takes it without waiting.
	if waited, err := a.acquire(ctx, time.Second); err != nil || waited {
		t.Fatalf("a's next turn: waited %v, %v", waited, err)
	}
	a.done()
	// Idle, it is let go after lingerGrace: b gets it without a's help.
	start := time.Now()
	if _, err := b.acquire(ctx, 5*time.Second); err != nil {
		t.Fatalf("b while a is idle: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("b waited %s for a lock a kept idle", d)
	}
	a.mu.Lock()
	held := a.held
	a.mu.Unlock()
	if held {
		t.Fatal("a thinks it holds the lock b has")
	}
	// Now a waits for b: b's turn ends and, b having seen a waiting,
	// b lets go at once.
	got := acquireWaiting(t, a, "a")
	b.mu.Lock()
	b.checked = time.Time{} // as if its last look was long ago
	b.mu.Unlock()
	b.done()
	b.mu.Lock()
	kept = b.held
	b.mu.Unlock()
	if kept {
		t.Fatal("b kept the lock at the end of its turn while a waited")
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	a.release()
}

// A close lets go of a lock kept between turns: another process gets it at
// once.
func TestProcLockCloseLetsGo(t *testing.T) {
	t.Parallel()
	a, b := twoProcLocks(t)
	if _, err := a.acquire(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	a.done()
	a.close()
	b.mu.Lock()
	b.openLocked()
	err := flock(b.f, syscall.LOCK_EX|syscall.LOCK_NB)
	b.mu.Unlock()
	if err != nil {
		t.Fatalf("the lock after a closed: %v", err)
	}
	flock(b.f, syscall.LOCK_UN)
}

// A leader does not run the batch queued behind its own while another
// process waits for the cross-process lock: its turn ends with its batch,
// as any turn does, and the next batch takes the lock again, stepping aside
// first when this process's run of turns has lasted fairSlice.
func TestQueueChainStepsAsideForAnotherProcess(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the waiting flag needs Linux's open file description locks")
	}
	a, other := twoProcLocks(t)
	q := &writeQueue{file: "app.db", proc: a}
	c := &connector{}
	cr := newChainRun("r0")
	h := holderHere(holdExec)
	h.proc = true
	first := cr.lead(q, &writeRequest{call: call{query: "r0"}, c: c, batch: true}, h)
	r1 := &writeRequest{call: call{ctx: context.Background(), query: "r1"}, c: c, batch: true}
	second := make(chan error, 1)
	go func() {
		h := holderHere(holdExec)
		h.proc = true
		second <- q.submit(r1, 5*time.Second, h, cr.run)
	}()
	untilWaiting(t, q, 1)
	otherGot := acquireWaiting(t, other, "the other process")
	otherDone := make(chan error, 1)
	go func() {
		err := <-otherGot
		if err == nil {
			cr.event("other process")
			time.Sleep(5 * time.Millisecond)
			other.release()
		}
		otherDone <- err
	}()
	a.mu.Lock()
	a.streak = time.Now().Add(-2 * fairSlice)
	a.mu.Unlock()
	close(cr.gates["r0"].release)
	noErrors(t, first, second, otherDone)
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if len(cr.log) != 3 || !strings.HasPrefix(cr.log[0], "r0@") || cr.log[1] != "other process" || !strings.HasPrefix(cr.log[2], "r1@") {
		t.Fatalf("events %q, want r0, the other process, r1 (its slice over, this process steps aside)", cr.log)
	}
}

// A turn runs straight into the next only while no other process waits and
// the run of turns is within its slice.
func TestProcLockCarry(t *testing.T) {
	t.Parallel()
	a, b := heldByA(t)
	if !a.carry() {
		t.Fatal("a cannot carry its turn on with nobody waiting")
	}
	got := acquireWaiting(t, b, "b")
	time.Sleep(2 * lingerCheck) // past the last look at the waiting flags
	if a.carry() {
		t.Fatal("a carries its turn on while b waits")
	}
	a.done()
	if err := <-got; err != nil {
		t.Fatalf("b after a's turn ended: %v", err)
	}
	if a.carry() {
		t.Fatal("a carries on a turn after letting the lock go")
	}
	b.release()
}

package sqlitesafe

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// holderHere describes the test as a holder of q, with no handle behind it.
func holderHere(kind holdKind) holder {
	return holder{kind: kind, since: time.Now(), site: hereSite()}
}

// untilWaiting waits until n callers wait in q.
func untilWaiting(t *testing.T, q *writeQueue, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, w := q.snapshot(); w == n {
			return
		}
		if time.Now().After(deadline) {
			_, _, w := q.snapshot()
			t.Fatalf("%d waiters, want %d", w, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestQueueFIFO(t *testing.T) {
	t.Parallel()
	q := &writeQueue{file: "test.db"}
	ctx := context.Background()
	if err := q.lock(ctx, time.Minute, holderHere(holdTx)); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.lock(ctx, time.Minute, holderHere(holdExec)); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			q.unlock()
		}()
		untilWaiting(t, q, i+1) // queue them in a known order
	}
	q.unlock()
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("served in order %v, want 0..%d", order, n-1)
		}
	}
	if held, _, w := q.snapshot(); held || w != 0 {
		t.Fatalf("after all: held %v, %d waiting", held, w)
	}
}

// TestQueueTimeoutAsGranted: a waiter granted the lock just as its context
// ran out passes the lock on, and its error names the holder that made it
// wait (not nobody, or the waiter served next).
func TestQueueTimeoutAsGranted(t *testing.T) {
	t.Parallel()
	q := &writeQueue{file: "test.db"}
	first := holderHere(holdTx)
	if err := q.lock(context.Background(), time.Minute, first); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	go func() { errc <- q.lock(ctx, time.Minute, holderHere(holdExec)) }()
	untilWaiting(t, q, 1)
	// Hold the queue's mutex across the end of the context, and release
	// the lock only then: the waiter finds itself granted after it.
	q.mu.Lock()
	time.Sleep(150 * time.Millisecond)
	q.unlockLocked()
	q.mu.Unlock()
	err := <-errc
	var lt *LockTimeoutError
	if !errors.As(err, &lt) {
		t.Fatalf("got %v, want a *LockTimeoutError", err)
	}
	if lt.Holder != first.kind.String() || lt.HolderSite != first.site.String() {
		t.Errorf("the error names holder %q at %q, want %q at %q: %v", lt.Holder, lt.HolderSite, first.kind, first.site.String(), err)
	}
	if held, _, w := q.snapshot(); held || w != 0 {
		t.Fatalf("afterwards: held %v, %d waiting; the lock was not passed on", held, w)
	}
}

// TestQueueDeadlines: each waiter's wait runs out at its own deadline,
// whatever the order of the queue (the queue has one timer for them all),
// and leaves the others queued, in order.
func TestQueueDeadlines(t *testing.T) {
	t.Parallel()
	q := &writeQueue{file: "test.db"}
	if err := q.lock(context.Background(), time.Minute, holderHere(holdTx)); err != nil {
		t.Fatal(err)
	}
	timeouts := []time.Duration{time.Minute, 300 * time.Millisecond, 100 * time.Millisecond, time.Minute}
	type end struct {
		i   int
		err error
	}
	ends := make(chan end, len(timeouts))
	for i, d := range timeouts {
		go func() {
			err := q.lock(context.Background(), d, holderHere(holdExec))
			ends <- end{i, err}
			if err == nil {
				q.unlock()
			}
		}()
		untilWaiting(t, q, i+1)
	}
	start := time.Now()
	for _, want := range []int{2, 1} {
		e := <-ends
		var lt *LockTimeoutError
		if e.i != want || !errors.As(e.err, &lt) {
			t.Fatalf("after %v: waiter %d ended with %v; want waiter %d to time out", time.Since(start), e.i, e.err, want)
		}
		if lt.Waited < timeouts[want] {
			t.Errorf("waiter %d timed out after %v, before its timeout %v", want, lt.Waited, timeouts[want])
		}
	}
	if _, _, w := q.snapshot(); w != 2 {
		t.Fatalf("%d waiting after two timed out, want 2", w)
	}
	q.unlock()
	for _, want := range []int{0, 3} {
		if e := <-ends; e.i != want || e.err != nil {
			t.Fatalf("waiter %d ended with %v; want waiter %d granted", e.i, e.err, want)
		}
	}
}

func TestQueueWaitEnds(t *testing.T) {
	t.Parallel()
	q := &writeQueue{file: "test.db"}
	if err := q.lock(context.Background(), time.Minute, holderHere(holdTx)); err != nil {
		t.Fatal(err)
	}

	// The busy timeout ends the wait.
	err := q.lock(context.Background(), 30*time.Millisecond, holderHere(holdExec))
	var lte *LockTimeoutError
	if !errors.As(err, &lte) || !errors.Is(err, ErrLockTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("busy timeout: %v", err)
	}
	if lte.Holder != holdTx.String() || !strings.Contains(lte.HolderSite, "serialize_test.go:") || lte.Waited < 30*time.Millisecond {
		t.Fatalf("error fields: %+v", lte)
	}

	// A context ends the wait, with its own error.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- q.lock(ctx, time.Minute, holderHere(holdExec)) }()
	untilWaiting(t, q, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || errors.Is(err, ErrLockTimeout) {
		t.Fatalf("canceled: %v", err)
	}
	// A waiter that gave up is gone from the queue: the lock goes to the
	// next one.
	untilWaiting(t, q, 0)
	go func() {
		err := q.lock(context.Background(), time.Minute, holderHere(holdExec))
		if err == nil {
			q.unlock()
		}
		done <- err
	}()
	untilWaiting(t, q, 1)
	q.unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if held, _, _ := q.snapshot(); held {
		t.Fatal("still held")
	}
}

func TestQueueGrantRacesTimeout(t *testing.T) {
	t.Parallel()
	// Waiters whose waits run out while the lock is being handed to them
	// must pass it on, never keep it: after many rounds, the lock is free.
	q := &writeQueue{file: "test.db"}
	var wg sync.WaitGroup
	for range 200 {
		if err := q.lock(context.Background(), time.Minute, holderHere(holdTx)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.lock(context.Background(), 50*time.Microsecond, holderHere(holdExec)); err == nil {
				q.unlock()
			}
		}()
		time.Sleep(50 * time.Microsecond)
		q.unlock()
	}
	wg.Wait()
	if held, _, w := q.snapshot(); held || w != 0 {
		t.Fatalf("held %v with %d waiting after the races", held, w)
	}
}

func TestQueueBatches(t *testing.T) {
	t.Parallel()
	q := &writeQueue{file: "test.db"}
	a, b := &connector{}, &connector{}
	if err := q.lock(context.Background(), time.Minute, holderHere(holdTx)); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		batches [][]string
	)
	run := func(batch []*writeRequest) {
		var names []string
		for _, r := range batch {
			names = append(names, r.query)
			r.err = fmt.Errorf("ran %s", r.query)
		}
		mu.Lock()
		batches = append(batches, names)
		mu.Unlock()
	}
	// Queue: a1 a2 a3 (batchable, handle a), b1 (handle b), a4 (not
	// batchable), a5 a6 (batchable).
	reqs := []*writeRequest{
		{call: call{query: "a1"}, c: a, batch: true}, {call: call{query: "a2"}, c: a, batch: true}, {call: call{query: "a3"}, c: a, batch: true},
		{call: call{query: "b1"}, c: b, batch: true},
		{call: call{query: "a4"}, c: a},
		{call: call{query: "a5"}, c: a, batch: true}, {call: call{query: "a6"}, c: a, batch: true},
	}
	var wg sync.WaitGroup
	for i, r := range reqs {
		r.ctx = context.Background()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.submit(r, time.Minute, holderHere(holdExec), run); err != nil {
				t.Error(err)
			}
		}()
		untilWaiting(t, q, i+1)
	}
	q.unlock()
	wg.Wait()
	want := "[[a1 a2 a3] [b1] [a4] [a5 a6]]"
	if got := fmt.Sprint(batches); got != want {
		t.Fatalf("batches %s, want %s", got, want)
	}
	for _, r := range reqs {
		if r.err == nil || r.err.Error() != "ran "+r.query {
			t.Fatalf("%s: outcome %v", r.query, r.err)
		}
	}
}

func TestQueueBatchPanic(t *testing.T) {
	t.Parallel()
	q := &writeQueue{file: "test.db"}
	c := &connector{}
	if err := q.lock(context.Background(), time.Minute, holderHere(holdTx)); err != nil {
		t.Fatal(err)
	}
	run := func(batch []*writeRequest) {
		if len(batch) > 1 {
			batch[0].err = errors.New("first ran")
			panic("boom")
		}
	}
	first := &writeRequest{call: call{ctx: context.Background(), query: "1"}, c: c, batch: true}
	second := &writeRequest{call: call{ctx: context.Background(), query: "2"}, c: c, batch: true}
	panicked := make(chan any)
	go func() {
		defer func() { panicked <- recover() }()
		q.submit(first, time.Minute, holderHere(holdExec), run)
	}()
	untilWaiting(t, q, 1)
	done := make(chan error)
	go func() { done <- q.submit(second, time.Minute, holderHere(holdExec), run) }()
	untilWaiting(t, q, 2)
	q.unlock()
	if r := <-panicked; r != "boom" {
		t.Fatalf("recovered %v, want the panic to reach the goroutine that ran the batch", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if second.err == nil || !strings.Contains(second.err.Error(), "panicked") {
		t.Fatalf("the request run by the panicking batch got %v", second.err)
	}
	if held, _, w := q.snapshot(); held || w != 0 {
		t.Fatalf("held %v with %d waiting after the panic", held, w)
	}
}

func TestCallSite(t *testing.T) {
	t.Parallel()
	h := holderHere(holdExec) // this line
	if got := h.site.String(); !strings.HasPrefix(got, "sqlitesafe/serialize_test.go:") && !strings.Contains(got, "serialize_test.go:") {
		t.Fatalf("site %q, want this test file", got)
	}
}

// goid returns the current goroutine's id, from its stack's header.
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	return f[1]
}

// chainRun is a run function for chain tests: it records each batch and
// the goroutine running it. A batch whose first request has a gate tells
// the gate it has begun, waits for its release, then sleeps hold.
type chainRun struct {
	mu    sync.Mutex
	log   []string // "name name@goroutine" per batch, and other events
	gates map[string]*gate
	hold  time.Duration
}

type gate struct{ started, release chan struct{} }

func newChainRun(gated ...string) *chainRun {
	cr := &chainRun{gates: map[string]*gate{}}
	for _, name := range gated {
		cr.gates[name] = &gate{make(chan struct{}), make(chan struct{})}
	}
	return cr
}

func (cr *chainRun) run(batch []*writeRequest) {
	if g := cr.gates[batch[0].query]; g != nil {
		close(g.started)
		<-g.release
		time.Sleep(cr.hold)
	}
	var names []string
	for _, r := range batch {
		names = append(names, r.query)
		r.err = errors.New("ran " + r.query)
	}
	cr.event(strings.Join(names, " ") + "@" + goid())
}

func (cr *chainRun) event(s string) {
	cr.mu.Lock()
	cr.log = append(cr.log, s)
	cr.mu.Unlock()
}

// submitAll submits each request from a goroutine of its own, in order,
// each queued behind the waiting ones before the next is submitted; the
// returned channel gets each submit's error, in the order they end.
func submitAll(t *testing.T, q *writeQueue, run func([]*writeRequest), waiting int, reqs ...*writeRequest) <-chan error {
	errs := make(chan error, len(reqs))
	for i, r := range reqs {
		r.ctx = context.Background()
		go func() { errs <- q.submit(r, time.Minute, holderHere(holdExec), run) }()
		untilWaiting(t, q, waiting+i+1)
	}
	return errs
}

// noErrors takes one error from each channel in turn (a channel given n
// times, n errors) and fails the test at the first that is not nil.
func noErrors(t *testing.T, chans ...<-chan error) {
	t.Helper()
	for _, ch := range chans {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
}

// lead submits r, which has a gate, on a free queue, from a goroutine of
// its own, and returns once r's batch has begun; the channel gets submit's
// error.
func (cr *chainRun) lead(q *writeQueue, r *writeRequest, h holder) <-chan error {
	r.ctx = context.Background()
	errs := make(chan error, 1)
	go func() { errs <- q.submit(r, time.Minute, h, cr.run) }()
	<-cr.gates[r.query].started
	return errs
}

// A leader whose batch has committed runs the batch queued behind it too,
// on the same goroutine, up to a waiter that cannot join (a transaction),
// which then gets the lock in its turn.
func TestQueueChainsBatches(t *testing.T) {
	t.Parallel()
	q := &writeQueue{file: "test.db"}
	c := &connector{}
	cr := newChainRun("r0")
	req := func(name string) *writeRequest { return &writeRequest{call: call{query: name}, c: c, batch: true} }
	r0 := req("r0")
	first := cr.lead(q, r0, holderHere(holdExec))
	rest := submitAll(t, q, cr.run, 0, req("r1"), req("r2"), req("r3"))
	txDone := make(chan error, 1)
	go func() {
		err := q.lock(context.Background(), time.Minute, holderHere(holdTx))
		if err == nil {
			cr.event("tx")
			q.unlock()
		}
		txDone <- err
	}()
	untilWaiting(t, q, 4)
	r4 := req("r4")
	last := submitAll(t, q, cr.run, 4, r4)
	close(cr.gates["r0"].release)
	noErrors(t, rest, rest, rest, first, txDone, last)
	cr.mu.Lock()
	log := cr.log
	cr.mu.Unlock()
	if len(log) != 4 {
		t.Fatalf("events %q, want r0, r1 r2 r3, tx, r4", log)
	}
	g0 := strings.TrimPrefix(log[0], "r0@")
	if log[1] != "r1 r2 r3@"+g0 || log[2] != "tx" || !strings.HasPrefix(log[3], "r4@") || log[3] == "r4@"+g0 {
		t.Fatalf("events %q, want r0 and then r1 r2 r3 on goroutine %s, tx, r4 on another", log, g0)
	}
	for _, r := range []*writeRequest{r0, r4} {
		if r.err == nil || r.err.Error() != "ran "+r.query {
			t.Fatalf("%s: outcome %v", r.query, r.err)
		}
	}
	if held, _, w := q.snapshot(); held || w != 0 {
		t.Fatalf("held %v with %d waiting at the end", held, w)
	}
}

// A leader hands the lock on once it has led the batches behind its own for
// chainFor: its caller is waiting for its result.
func TestQueueChainBounded(t *testing.T) {
	t.Parallel()
	q := &writeQueue{file: "test.db"}
	c := &connector{}
	cr := newChainRun("r0", "r1")
	cr.hold = chainFor + 5*time.Millisecond
	req := func(name string) *writeRequest { return &writeRequest{call: call{query: name}, c: c, batch: true} }
	first := cr.lead(q, req("r0"), holderHere(holdExec))
	second := submitAll(t, q, cr.run, 0, req("r1"))
	close(cr.gates["r0"].release)
	<-cr.gates["r1"].started
	third := submitAll(t, q, cr.run, 0, req("r2"))
	close(cr.gates["r1"].release)
	noErrors(t, first, second, third)
	cr.mu.Lock()
	defer cr.mu.Unlock()
	g := func(i int) string { return cr.log[i][strings.Index(cr.log[i], "@"):] }
	if len(cr.log) != 3 || g(0) != g(1) || g(2) == g(0) {
		t.Fatalf("batches %q: want r1 on r0's goroutine, and r2, queued past chainFor, on another", cr.log)
	}
}

// A handle closed while its writes wait: the leader does not run them for
// it; each is refused as it is granted the lock, and did not run.
func TestQueueChainStopsAtClosedHandle(t *testing.T) {
	t.Parallel()
	q := &writeQueue{file: "test.db"}
	c := &connector{}
	cr := newChainRun("r0")
	first := cr.lead(q, &writeRequest{call: call{query: "r0"}, c: c, batch: true}, holderHere(holdExec))
	r1 := &writeRequest{call: call{query: "r1"}, c: c, batch: true}
	next := make(chan error, 1)
	r1.ctx = context.Background()
	h := holderHere(holdExec)
	h.c = c
	go func() { next <- q.submit(r1, time.Minute, h, cr.run) }()
	untilWaiting(t, q, 1)
	c.shut.Store(true)
	close(cr.gates["r0"].release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-next; !errors.Is(err, ErrClosed) {
		t.Fatalf("r1 on a closed handle: %v, want ErrClosed", err)
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if len(cr.log) != 1 || r1.err != nil {
		t.Fatalf("batches %q, r1's outcome %v: only r0 should have run", cr.log, r1.err)
	}
}

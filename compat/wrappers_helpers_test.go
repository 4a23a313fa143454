package compat_test

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Helpers of the driver-wrapper tests (otelsql_test.go, sqlmw_test.go),
// named wrap* so that they stand beside the other tests' helpers.

// wrapWatchdog fails the test binary, with every goroutine's stack, if the
// test is still running after d: a deadlock must fail CI, not hang it.
func wrapWatchdog(t testing.TB, d time.Duration) {
	timer := time.AfterFunc(d, func() {
		buf := make([]byte, 1<<20)
		panic(fmt.Sprintf("watchdog: %s still running after %s\n%s", t.Name(), d, buf[:runtime.Stack(buf, true)]))
	})
	t.Cleanup(func() { timer.Stop() })
}

// wrapParallel runs fn(g, i) for g goroutines and i iterations each, and
// returns the errors they met, in no order.
func wrapParallel(goroutines, iterations int, fn func(g, i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range iterations {
				if err := fn(g, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// wrapNoErrors fails the test if errs is not empty.
func wrapNoErrors(t *testing.T, what string, errs []error) {
	t.Helper()
	if len(errs) > 0 {
		t.Fatalf("%s: %d errors, first: %v", what, len(errs), errs[0])
	}
}

// wrapFDs is the number of descriptors the process has open, or -1 where
// /proc/self/fd cannot tell.
func wrapFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// wrapSettles waits up to 5 s for count to come down to at most want and
// returns the last count seen: what the runtime holds for a moment (a
// goroutine ending, a timer) must not fail the test.
func wrapSettles(want int, count func() int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := count()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

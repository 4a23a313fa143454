package compat_test

import (
	"os"
	"time"
)

// Helpers of the driver-wrapper tests (otelsql_test.go, sqlmw_test.go).

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

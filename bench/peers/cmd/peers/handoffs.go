package main

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// measureHandoffs measures, for d, how often two goroutines locked to OS
// threads of their own can pass one cache line back and forth: each waits
// for the counter to reach its turn and increments it. The rate is the
// cost of memory that two CPUs write in turn: a mutex, a pool's lock, a
// shared counter. On a virtual machine it changes with where the
// hypervisor places the CPUs (seen on one 2-core machine: 33M/s and 5.5M/s
// an hour apart), and every workload whose goroutines share a lock changes
// with it, whatever the driver. With one CPU it measures nothing and
// returns 0.
func measureHandoffs(d time.Duration) float64 {
	if runtime.GOMAXPROCS(0) < 2 {
		return 0
	}
	var turn atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for me := range int64(2) {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for !stop.Load() {
				if v := turn.Load(); v%2 == me {
					turn.CompareAndSwap(v, v+1)
				}
			}
		})
	}
	start := time.Now()
	time.Sleep(d)
	n := turn.Load()
	secs := time.Since(start).Seconds()
	stop.Store(true)
	wg.Wait()
	return float64(n) / secs
}

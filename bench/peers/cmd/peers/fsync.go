package main

import (
	"fmt"
	"os"
	"time"

	"github.com/sqlitesafe/sqlitesafe/bench/peers/internal/peers"
)

// fsyncBlocks is the size of the file measureFsync rewrites, in 4 KiB
// blocks: 1 MiB, written and synced before the measurement, so that no
// measured write grows the file (as a WAL is rewritten after a checkpoint).
const fsyncBlocks = 256

// measureFsync measures the disk under dir for d: one goroutine writes a
// 4 KiB block of a preallocated file and calls fdatasync, over and over.
// That is what a commit under synchronous=FULL waits for at least, so the
// rate is the ceiling of one writer that syncs each commit alone.
func measureFsync(dir string, d time.Duration) (peers.Stream, error) {
	f, err := os.CreateTemp(dir, "fdatasync-*")
	if err != nil {
		return peers.Stream{}, fmt.Errorf("peers: fdatasync measurement: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	for range fsyncBlocks {
		if _, err := f.Write(block); err != nil {
			return peers.Stream{}, fmt.Errorf("peers: fdatasync measurement: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return peers.Stream{}, fmt.Errorf("peers: fdatasync measurement: %w", err)
	}
	h := new(peers.Hist)
	var n int64
	t0 := time.Now()
	deadline := t0.Add(d)
	for i := 0; ; i++ {
		start := time.Now()
		if !start.Before(deadline) {
			break
		}
		block[0] = byte(i)
		if _, err := f.WriteAt(block, int64(i%fsyncBlocks)*4096); err != nil {
			return peers.Stream{}, fmt.Errorf("peers: fdatasync measurement: %w", err)
		}
		if err := fdatasync(f); err != nil {
			return peers.Stream{}, fmt.Errorf("peers: fdatasync measurement: %w", err)
		}
		h.Record(time.Since(start))
		n++
	}
	secs := time.Since(t0).Seconds()
	return peers.Stream{
		Name: "fdatasyncs", Calls: n, Ops: n, PerSec: float64(n) / secs,
		P50: int64(h.Quantile(0.5)), P99: int64(h.Quantile(0.99)), P999: int64(h.Quantile(0.999)), Max: int64(h.Max()),
	}, nil
}

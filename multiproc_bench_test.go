package sqlitesafe_test

import (
	"os"
	"slices"
	"testing"
	"time"
)

// BenchmarkProcesses: read-modify-write transactions from 4 processes of 8
// goroutines each on one file, for a fixed time (not b.N: the children run
// once per call). It reports throughput, tail latency over every
// transaction of every process, errors, and fairness between the processes:
// the smallest and largest share of the commits one process got, and the
// longest time one process went without a commit.
//
//	go test -run '^$' -bench BenchmarkProcesses -benchtime 1x .
//
// SQLITESAFE_PROCESSES_RUN sets how long the children run (default 2s).
func BenchmarkProcesses(b *testing.B) {
	const (
		procs      = 4
		goroutines = 8
	)
	run := 2 * time.Second
	if s := os.Getenv("SQLITESAFE_PROCESSES_RUN"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("SQLITESAFE_PROCESSES_RUN: %v", err)
		}
		run = d
	}
	bench := func(b *testing.B, driver string, dsn func(path string) string) {
		watchdog(b, 2*time.Minute+2*run)
		path := dbPath(b)
		db := open(b, driver, dsn(path))
		mustExec(b, db, counterSchema...)
		db.Close()
		specs := make([]childSpec, procs)
		for i := range specs {
			specs[i] = childSpec{Role: "rmw", Driver: driver, DSN: dsn(path),
				Goroutines: goroutines, Duration: run, Latencies: true,
				Deadline: time.Now().Add(time.Minute + run)}
		}
		b.ResetTimer()
		results := runChildren(b, specs)
		b.StopTimer()

		var (
			commits, errs int64
			elapsed       time.Duration
			starved       time.Duration
			lat           []int64
			minShare      = 1.0
			maxShare      = 0.0
		)
		for _, r := range results {
			commits += r.Committed
			errs += r.Errors
			elapsed = max(elapsed, time.Duration(r.Elapsed))
			starved = max(starved, time.Duration(r.MaxGap))
			lat = append(lat, r.Latencies...)
		}
		for _, r := range results {
			share := float64(r.Committed) / float64(max(commits, 1))
			minShare, maxShare = min(minShare, share), max(maxShare, share)
		}
		db = open(b, driver, dsn(path))
		if n := queryInt(b, db, "SELECT n FROM counter WHERE id = 1"); n != commits {
			b.Fatalf("%d transactions committed, counter %d: updates lost", commits, n)
		}
		if len(lat) == 0 {
			b.Fatal("no transaction ran")
		}
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
		b.ReportMetric(0, "ns/op") // meaningless here: the run does not scale with b.N
		b.ReportMetric(float64(commits)/elapsed.Seconds(), "commits/s")
		b.ReportMetric(pct(0.999), "p99.9-ns")
		b.ReportMetric(float64(lat[len(lat)-1]), "max-ns")
		b.ReportMetric(float64(errs), "errors")
		b.ReportMetric(minShare, "min-share")
		b.ReportMetric(maxShare, "max-share")
		b.ReportMetric(float64(starved.Milliseconds()), "starved-ms")
		for i, r := range results {
			if r.Errors > 0 {
				b.Logf("process %d: %d errors (%d SQLITE_BUSY, %d lock timeouts), e.g. %q", i, r.Errors, r.Busy, r.LockTimeouts, r.Samples[0])
			}
		}
	}

	b.Run("impl=modernc-tuned", func(b *testing.B) {
		bench(b, "sqlite", rawCareful)
	})
	b.Run("impl=sqlite-safe", func(b *testing.B) {
		b.Run("proc-queue=off", func(b *testing.B) {
			bench(b, "sqlite-safe", func(path string) string { return processQueueDSN(b, path, "off") })
		})
		b.Run("proc-queue=on", func(b *testing.B) {
			probe := dbPath(b)
			processQueueWired(b, probe, processQueueDSN(b, probe, "on"))
			bench(b, "sqlite-safe", func(path string) string { return processQueueDSN(b, path, "on") })
		})
	})
}

package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// input is go test -bench output as scripts/bench.sh writes it: its comment
// line, the configuration, two runs of three benchmarks (one with
// GOMAXPROCS=1, so no suffix), a log and PASS.
const input = `# 2026-11-22T05:55Z go version go1.26.8 linux/amd64 2 cores
goos: linux
goarch: amd64
pkg: github.com/sqlitesafe/sqlitesafe
cpu: AMD EPYC
BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1-2         	  100513	     20000 ns/op	         0 errors/op	   5028973 max-ns	     17556 p50-ns	     56354 p99-ns	   3374908 p99.9-ns	     140 B/op	       6 allocs/op
BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1-2         	  101862	     30000 ns/op	         0 errors/op	   8259006 max-ns	     16315 p50-ns	     60060 p99-ns	   2974374 p99.9-ns	     140 B/op	       6 allocs/op
BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1-2         	  101862	     10000 ns/op	         0 errors/op	   8259006 max-ns	     16315 p50-ns	     60060 p99-ns	   2974374 p99.9-ns	     140 B/op	       6 allocs/op
BenchmarkInsert/sync=NORMAL/impl=modernc-defaults/g=64-2     	  98384	     10000 ns/op	    0.9000 errors/op	 222058911 max-ns	    288888 p50-ns	   1000000 p99-ns	  2000000 p99.9-ns	     143 B/op	       6 allocs/op
BenchmarkInsert/sync=NORMAL/impl=modernc-defaults/g=64-2     	  98384	     20000 ns/op	    0.5000 errors/op	 222058911 max-ns	    288888 p50-ns	   1000000 p99-ns	  4000000 p99.9-ns	     143 B/op	       6 allocs/op
--- BENCH: BenchmarkInsert/sync=NORMAL/impl=modernc-defaults/g=64-2
    bench_test.go:375: a log line
BenchmarkReadModifyWrite/sync=FULL/impl=sqlite-safe/g=32         	   69654	     35650 ns/op	         0 errors/op	         0 lost-updates	  25461377 max-ns	    924151 p50-ns	   5723704 p99-ns	   7286592 p99.9-ns	    1990 B/op	      41 allocs/op
BenchmarkReaderPoolMemory/data=small/impl=sqlite-safe/conns=64-2 	       1	  29662742 ns/op	      2409 heap-B/conn	     91203 sqlite-B/conn	  261616 B/op	    5209 allocs/op
PASS
ok  	github.com/sqlitesafe/sqlitesafe	33.793s
`

func parseString(t *testing.T, s string) *results {
	t.Helper()
	var rs results
	if err := parse(strings.NewReader(s), &rs); err != nil {
		t.Fatal(err)
	}
	return &rs
}

func TestParse(t *testing.T) {
	rs := parseString(t, input)
	want := []string{
		"BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1",
		"BenchmarkInsert/sync=NORMAL/impl=modernc-defaults/g=64",
		"BenchmarkReadModifyWrite/sync=FULL/impl=sqlite-safe/g=32",
		"BenchmarkReaderPoolMemory/data=small/impl=sqlite-safe/conns=64",
	}
	if strings.Join(rs.order, "\n") != strings.Join(want, "\n") {
		t.Fatalf("names:\n%s\nwant:\n%s", strings.Join(rs.order, "\n"), strings.Join(want, "\n"))
	}
	r := rs.find("Insert", map[string]string{"sync": "NORMAL", "impl": "modernc-tuned", "g": "1"})
	if r == nil || len(r.runs) != 3 {
		t.Fatalf("find Insert g=1: %+v", r)
	}
	if v, _ := r.unit("ns/op"); v != 20000 {
		t.Errorf("median ns/op = %v, want 20000 (of 20000, 30000, 10000)", v)
	}
	if v, _ := r.unit("allocs/op"); v != 6 {
		t.Errorf("allocs/op = %v, want 6", v)
	}
	if _, ok := r.unit("lost-updates"); ok {
		t.Errorf("a unit the runs lack has a median")
	}
	// Two runs: the median is the mean of both. Throughput counts only
	// the successful calls, run by run: 0.1*1e9/1e4 = 1e4, 0.5*1e9/2e4 =
	// 2.5e4.
	d := rs.find("Insert", map[string]string{"sync": "NORMAL", "impl": "modernc-defaults", "g": "64"})
	if v, _ := d.median(okPerSecond); math.Abs(v-17500) > 1e-6 {
		t.Errorf("successful calls/s = %v, want 17500", v)
	}
	if v, _ := d.unit("p99.9-ns"); v != 3e6 {
		t.Errorf("p99.9 = %v, want 3e6", v)
	}
	if got := rs.values("Insert", "impl"); strings.Join(got, ",") != "modernc-tuned,modernc-defaults" {
		t.Errorf("impls = %v", got)
	}
	m := rs.byName["BenchmarkReaderPoolMemory/data=small/impl=sqlite-safe/conns=64"]
	if m.bench != "ReaderPoolMemory" || m.keys["data"] != "small" || m.keys["conns"] != "64" {
		t.Errorf("memory result: %+v", m)
	}
	if v, _ := m.unit("sqlite-B/conn"); v != 91203 {
		t.Errorf("sqlite-B/conn = %v", v)
	}
	if rs.find("Insert", map[string]string{"sync": "NORMAL", "impl": "modernc-tuned"}) != nil {
		t.Errorf("find matched a result with more keys than asked")
	}
}

func TestTrimProcs(t *testing.T) {
	for in, want := range map[string]string{
		"BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1-2":  "BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1",
		"BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1-16": "BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1",
		"BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1":    "BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1",
		"BenchmarkX/impl=sqlite-safe":                           "BenchmarkX/impl=sqlite-safe",
		"BenchmarkX-":                                           "BenchmarkX-",
	} {
		if got := trimProcs(in); got != want {
			t.Errorf("trimProcs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{
		"BenchmarkX-2 100 5 ns/op 3\n",  // a value without its unit
		"BenchmarkX-2 100 five ns/op\n", // not a number
	} {
		var rs results
		if err := parse(strings.NewReader(bad), &rs); err == nil {
			t.Errorf("parse(%q) = nil error", bad)
		}
	}
	// Not result lines: skipped.
	rs := parseString(t, "BenchmarkX\nBenchmarkY-2 \t--- FAIL\nBenchmarking is fun\n")
	if len(rs.order) != 0 {
		t.Errorf("parsed %v from lines that are not results", rs.order)
	}
}

// TestRun draws the charts and writes the tables of the sample input, as
// scripts/bench.sh does.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "full.txt")
	if err := os.WriteFile(in, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	sweepsMD, memoryMD := filepath.Join(dir, "sweeps.md"), filepath.Join(dir, "memory.md")
	if err := run(filepath.Join(dir, "charts"), "svg", sweepsMD, memoryMD, []string{in}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"insert-NORMAL-throughput.svg", "insert-NORMAL-p50.svg", "insert-NORMAL-p999.svg", "rmw-FULL-throughput.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, "charts", f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "<svg") || !strings.Contains(string(b), "sqlite-safe") && strings.HasPrefix(f, "rmw") {
			t.Errorf("%s does not look like the chart: %.200s", f, b)
		}
	}
	sw, err := os.ReadFile(sweepsMD)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"#### Autocommit inserts, synchronous=NORMAL",
		"| goroutines | modernc-defaults | modernc-tuned |",
		"| 1 |  | 50k/s · 16.3 µs · 2.97 ms |",
		"| 64 | 17.5k/s · 289 µs · 3 ms, **70% failed** |  |",
		"#### Read-modify-write transactions, synchronous=FULL",
	} {
		if !strings.Contains(string(sw), want) {
			t.Errorf("sweeps table lacks %q:\n%s", want, sw)
		}
	}
	mem, err := os.ReadFile(memoryMD)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"#### 64 connections holding rows open, data=small",
		"| SQLite's own allocations (`sqlite3_memory_used`) | 89.1 KiB |",
		"| resident set, Go and SQLite (`/proc/self/statm`) | not measured |",
		"| insert, 1 goroutine |  | 140 B, 6 allocs |  |",
	} {
		if !strings.Contains(string(mem), want) {
			t.Errorf("memory table lacks %q:\n%s", want, mem)
		}
	}
}

// Command benchtargets reads `go test -bench` output of sqlite-safe's
// benchmarks and checks the targets the driver promises, as ratios between
// sqlite-safe and modernc.org/sqlite measured in the same run. Each figure is
// the median over the -count runs.
//
//	go run ./scripts/benchtargets bench/results.txt
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtargets FILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	res := parse(f)
	if !report(os.Stdout, res) {
		os.Exit(1)
	}
}

// results maps a benchmark name (without the -GOMAXPROCS suffix) and a unit
// to the values seen, one per run.
type results map[string]map[string][]float64

func parse(r io.Reader) results {
	res := results{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		if res[name] == nil {
			res[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			res[name][fields[i+1]] = append(res[name][fields[i+1]], v)
		}
	}
	return res
}

// median returns the median of name's unit, and whether there was one.
func (res results) median(name, unit string) (float64, bool) {
	vs := slices.Clone(res[name][unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	return vs[len(vs)/2], true
}

func report(w io.Writer, res results) bool {
	ok := true
	check := func(what string, got float64, cmp string, want float64, detail string) {
		pass := cmp == ">=" && got >= want || cmp == "<=" && got <= want || cmp == "==" && got == want
		mark := "met"
		if !pass {
			mark, ok = "MISSED", false
		}
		fmt.Fprintf(w, "| %s | %.3g | %s %.3g | %s | %s |\n", what, got, cmp, want, mark, detail)
	}
	get := func(name, unit string) float64 {
		v, found := res.median(name, unit)
		if !found {
			fmt.Fprintf(w, "| %s %s | missing from the input | | MISSED | |\n", name, unit)
			ok = false
		}
		return v
	}
	fmt.Fprintln(w, "| target | measured | wanted | | from (medians) |")
	fmt.Fprintln(w, "|---|---|---|---|---|")

	raw1 := get("BenchmarkInsert/sync=NORMAL/impl=modernc-tuned/g=1", "ns/op")
	safe64 := get("BenchmarkInsert/sync=NORMAL/impl=sqlite-safe/g=64", "ns/op")
	if raw1 > 0 && safe64 > 0 {
		check("inserts/s, sqlite-safe 64 goroutines / modernc 1 goroutine", raw1/safe64, ">=", 0.90,
			fmt.Sprintf("%.0f vs %.0f ns/op", safe64, raw1))
	}

	rawRMW := "BenchmarkReadModifyWrite/sync=NORMAL/impl=modernc-tuned/g=32"
	safeRMW := "BenchmarkReadModifyWrite/sync=NORMAL/impl=sqlite-safe/g=32"
	rawNs, safeNs := get(rawRMW, "ns/op"), get(safeRMW, "ns/op")
	rawTail, safeTail := get(rawRMW, "p99.9-ns"), get(safeRMW, "p99.9-ns")
	check("read-modify-write, 32 goroutines: sqlite-safe errors/op", get(safeRMW, "errors/op"), "==", 0, "")
	check("read-modify-write, 32 goroutines: sqlite-safe lost updates", get(safeRMW, "lost-updates"), "==", 0, "")
	if rawNs > 0 && safeNs > 0 {
		check("read-modify-write, 32 goroutines: throughput sqlite-safe / modernc", rawNs/safeNs, ">=", 1,
			fmt.Sprintf("%.0f vs %.0f ns/op", safeNs, rawNs))
	}
	if rawTail > 0 {
		check("read-modify-write, 32 goroutines: p99.9 sqlite-safe / modernc", safeTail/rawTail, "<=", 0.1,
			fmt.Sprintf("%.3gms vs %.3gms", safeTail/1e6, rawTail/1e6))
	}

	rawRead := "BenchmarkPointRead/load=alone/impl=modernc-tuned/g=1"
	safeRead := "BenchmarkPointRead/load=alone/impl=sqlite-safe/g=1"
	rr, sr := get(rawRead, "ns/op"), get(safeRead, "ns/op")
	if rr > 0 && sr > 0 {
		check("point reads, 1 goroutine: sqlite-safe / modernc", rr/sr, ">=", 0.90, fmt.Sprintf("%.0f vs %.0f ns/op", sr, rr))
	}
	ra, sa := get(rawRead, "allocs/op"), get(safeRead, "allocs/op")
	rb, sb := get(rawRead, "B/op"), get(safeRead, "B/op")
	check("point reads, 1 goroutine: allocs/op sqlite-safe - modernc", sa-ra, "<=", 3,
		fmt.Sprintf("%.0f vs %.0f allocs, %.0f vs %.0f B", sa, ra, sb, rb))
	return ok
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// A result is one benchmark (one full name) with every run of it.
type result struct {
	name  string            // the full name, without the -GOMAXPROCS suffix
	bench string            // the top-level name without "Benchmark": "Insert"
	keys  map[string]string // the key=value parts of the name: sync, impl, g
	runs  []map[string]float64
}

// median returns the median over the runs of f, which may skip a run by
// returning false, and whether any run counted.
func (r *result) median(f func(run map[string]float64) (float64, bool)) (float64, bool) {
	var vs []float64
	for _, run := range r.runs {
		if v, ok := f(run); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, true
}

// unit returns the median of a unit.
func (r *result) unit(u string) (float64, bool) {
	return r.median(func(run map[string]float64) (float64, bool) {
		v, ok := run[u]
		return v, ok
	})
}

// results are the parsed results, in the order the input first named them.
type results struct {
	byName map[string]*result
	order  []string
}

// find returns the result of bench with exactly the given keys, or nil.
func (rs *results) find(bench string, keys map[string]string) *result {
	for _, name := range rs.order {
		r := rs.byName[name]
		if r.bench != bench || len(r.keys) != len(keys) {
			continue
		}
		match := true
		for k, v := range keys {
			if r.keys[k] != v {
				match = false
				break
			}
		}
		if match {
			return r
		}
	}
	return nil
}

// values returns the distinct values of key among bench's results, in input
// order.
func (rs *results) values(bench, key string) []string {
	var vs []string
	for _, name := range rs.order {
		r := rs.byName[name]
		if v, ok := r.keys[key]; ok && r.bench == bench && !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	return vs
}

// parse reads `go test -bench` output: each line
//
//	BenchmarkInsert/sync=NORMAL/impl=sqlite-safe/g=64-2  438506  4597 ns/op  0 errors/op ...
//
// is one run of one benchmark. Other lines (goos:, PASS, logs, the
// comment bench.sh puts first) are skipped; a line that starts like a
// result but does not parse is an error, so that a truncated file is not
// charted silently.
func parse(r io.Reader, into *results) error {
	if into.byName == nil {
		into.byName = map[string]*result{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue // "BenchmarkX" alone, as -v prints it before the result
		}
		if len(fields)%2 != 0 {
			return fmt.Errorf("line %d: odd number of fields: %q", line, sc.Text())
		}
		name := trimProcs(fields[0])
		run := map[string]float64{}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return fmt.Errorf("line %d: value %q: %v", line, fields[i], err)
			}
			run[fields[i+1]] = v
		}
		res := into.byName[name]
		if res == nil {
			res = newResult(name)
			into.byName[name] = res
			into.order = append(into.order, name)
		}
		res.runs = append(res.runs, run)
	}
	return sc.Err()
}

// trimProcs removes the -GOMAXPROCS suffix go test adds to a name (and
// leaves a name without one alone: GOMAXPROCS=1 adds none).
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return name
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name
		}
	}
	return name[:i]
}

func newResult(name string) *result {
	parts := strings.Split(name, "/")
	r := &result{name: name, bench: strings.TrimPrefix(parts[0], "Benchmark"), keys: map[string]string{}}
	for i, p := range parts[1:] {
		if k, v, ok := strings.Cut(p, "="); ok {
			r.keys[k] = v
		} else {
			r.keys[strconv.Itoa(i+1)] = p
		}
	}
	return r
}

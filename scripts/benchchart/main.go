// Command benchchart draws the charts of sqlite-safe's benchmarks, and writes
// the tables behind them, from `go test -bench` output (the raw files
// scripts/bench.sh writes). Every figure is the median over the -count runs
// of a benchmark.
//
//	go run . -charts DIR -sweeps FILE.md -memory FILE.md RESULTS...
//
// For BenchmarkInsert and BenchmarkReadModifyWrite, and each synchronous
// mode in the input, it draws three charts against the number of
// goroutines, one line per impl: successful calls per second, the median
// latency and the p99.9 latency (DIR/insert-NORMAL-throughput.svg,
// -p50.svg, -p999.svg; rmw-...). -sweeps writes the same numbers as
// Markdown tables, -memory the memory figures (BenchmarkReaderPoolMemory,
// and the Go heap per call of the others). It lives in a module of its own
// so that the driver's go.mod does not carry gonum.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	chartDir := flag.String("charts", "", "write the charts into this `directory`")
	format := flag.String("format", "svg", "chart file format: svg, png or pdf")
	sweepsMD := flag.String("sweeps", "", "write the sweep tables, Markdown, to this `file`")
	memoryMD := flag.String("memory", "", "write the memory tables, Markdown, to this `file`")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: benchchart [-charts DIR] [-format svg] [-sweeps FILE.md] [-memory FILE.md] RESULTS...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*chartDir, *format, *sweepsMD, *memoryMD, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "benchchart:", err)
		os.Exit(1)
	}
}

func run(chartDir, format, sweepsMD, memoryMD string, inputs []string) error {
	var rs results
	for _, in := range inputs {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		err = parse(f, &rs)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %v", in, err)
		}
	}
	if len(rs.order) == 0 {
		return fmt.Errorf("no benchmark results in %s", strings.Join(inputs, ", "))
	}
	if chartDir != "" {
		if err := os.MkdirAll(chartDir, 0o755); err != nil {
			return err
		}
		n := 0
		for _, sw := range sweeps {
			for _, sync := range rs.values(sw.bench, "sync") {
				for _, m := range metrics {
					p, ok, err := chart(&rs, sw, sync, m)
					if err != nil {
						return err
					}
					if !ok {
						continue
					}
					file := filepath.Join(chartDir, fmt.Sprintf("%s-%s-%s.%s", sw.file, sync, m.file, format))
					if err := save(p, file); err != nil {
						return fmt.Errorf("%s: %v", file, err)
					}
					n++
				}
			}
		}
		if n == 0 {
			return fmt.Errorf("no Insert or ReadModifyWrite sweep in the input to chart")
		}
	}
	if sweepsMD != "" {
		if err := writeFile(sweepsMD, func(w io.Writer) { writeSweeps(w, &rs) }); err != nil {
			return err
		}
	}
	if memoryMD != "" {
		if err := writeFile(memoryMD, func(w io.Writer) { writeMemory(w, &rs) }); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(name string, write func(io.Writer)) error {
	var b strings.Builder
	write(&b)
	return os.WriteFile(name, []byte(b.String()), 0o644)
}

// Command peers runs the peers benchmark: sqlite-safe beside
// modernc.org/sqlite, mattn/go-sqlite3 and ncruces/go-sqlite3, tuned and in
// two pools, and the limits, on the same workloads. It builds the runners
// (cmd/run-*), creates one WAL database, then runs every cell (one workload
// on one configuration) in a process of its own on a fresh copy of that
// file, in interleaved rounds, and prints Markdown tables of the medians.
//
// Run it from bench/peers:
//
//	go run ./cmd/peers                                  # 3 rounds of 1 s cells
//	go run ./cmd/peers -duration 100ms -warmup 20ms -rounds 1   # a smoke run
//	go run ./cmd/peers -workloads W1,W4-8 -configs sqlite-safe,peers
//
// The exit status is 1 when a cell failed or listed a problem (a count not
// exact, a setting read back otherwise than configured).
package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/sqlitesafe/sqlitesafe/bench/peers/internal/peers"
)

// modulePath is the module the runners are built from.
const modulePath = "github.com/sqlitesafe/sqlitesafe/bench/peers"

// The pseudo configuration and workload of the disk's fdatasync cells.
const (
	diskConfig   = "disk"
	diskWorkload = "fdatasync"
)

// handoffsFor is how long the handoff rate is measured before each cell.
const handoffsFor = 100 * time.Millisecond

// options are the flags.
type options struct {
	duration, warmup time.Duration
	rounds, rows     int
	workloads        []peers.Workload
	configs          []peers.Config
	dir, bin         string
	jsonOut, from    string
	fsync, keep      bool
	handoffs         bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its arguments and output.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.DurationVar(&o.duration, "duration", time.Second, "the measured length of each cell")
	fs.DurationVar(&o.warmup, "warmup", 200*time.Millisecond, "the unmeasured calls before, in the same process")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every cell once, and the tables give the medians")
	fs.IntVar(&o.rows, "rows", 1000, "rows of the template's table t, which the reads read")
	workloads := fs.String("workloads", "all", "workloads: names (W4-8), families (W4), prepared, limits or all")
	configs := fs.String("configs", "all", "configurations: names (mattn-2pools), runners (run-mattn), peers or all")
	fs.StringVar(&o.dir, "dir", "", "where the cells' databases go (default: a new directory under $TMPDIR); the disk matters")
	fs.StringVar(&o.bin, "bin", "", "the runners, built already (default: go build them into the run's directory)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the run, every cell as one line of JSON, to this file")
	fs.StringVar(&o.from, "from", "", "run nothing: print the report of a file written by -json")
	fs.BoolVar(&o.fsync, "fsync", true, "measure the disk's fdatasync rate once per round")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory")
	fs.BoolVar(&o.handoffs, "handoffs", true, "measure the CPUs' cache-line handoff rate for 100 ms before each cell")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.from != "" {
		return report(o.from, stdout, stderr)
	}
	var err error
	if o.workloads, err = peers.ParseWorkloads(*workloads); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if o.configs, err = peers.ParseConfigs(*configs); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if o.rounds < 1 || o.rows < 3 || o.duration <= 0 || o.warmup < 0 {
		fmt.Fprintln(stderr, "peers: want -rounds >= 1, -rows >= 3, -duration > 0 and -warmup >= 0")
		return 2
	}
	code, err := runAll(o, args, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return code
}

// runFile is the first line of a -json file; the cells follow, one a line.
type runFile struct {
	Header    []string `json:"header"`
	Workloads []string `json:"workloads"`
	Configs   []string `json:"configs"`
}

// runAll builds the runners, creates the template, runs the rounds and
// writes the report.
func runAll(o options, args []string, stdout, stderr io.Writer) (int, error) {
	modDir, err := moduleDir()
	if err != nil {
		return 1, err
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "peers-"); err != nil {
			return 1, err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return 1, err
	}
	bin := o.bin
	if bin == "" {
		bin = filepath.Join(dir, "bin")
		if err := build(modDir, bin, o.configs, stderr); err != nil {
			return 1, err
		}
	}
	template := filepath.Join(dir, "template.db")
	os.Remove(template)
	out, err := exec.Command(filepath.Join(bin, "run-modernc"), "-config", "modernc", "-db", template, "-prepare", fmt.Sprint(o.rows)).CombinedOutput()
	if err != nil {
		return 1, fmt.Errorf("peers: create the template: %v: %s", err, out)
	}
	defer os.Remove(template)

	header := []string{
		fmt.Sprintf("Peers benchmark, %s: `go run ./cmd/peers %s` in bench/peers.", time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.Join(args, " ")),
		"",
		fmt.Sprintf("- Method: %s; in each, every cell once, each cell a fresh process on a fresh copy of one WAL file (t of %d rows, %d counters), %v of calls after %v of warm-up in the same process; the tables give medians over the rounds.",
			plural(o.rounds, "interleaved round"), o.rows, peers.CounterRows, o.duration, o.warmup),
		"- Machine: " + machine() + "; the cells' files on " + filesystem(dir),
		"- Drivers: " + versions(modDir, filepath.Join(bin, "run-safe")),
		"- Load average before: " + loadavg(),
	}
	var cells []peers.Cell
	for r := 1; r <= o.rounds; r++ {
		if o.fsync {
			c := peers.Cell{Round: r, Config: diskConfig, Workload: diskWorkload}
			if s, err := measureFsync(dir, o.duration); err != nil {
				c.Error = err.Error()
			} else {
				c.Result = &peers.Result{Config: diskConfig, Workload: diskWorkload, Streams: []peers.Stream{s}, Seconds: o.duration.Seconds()}
			}
			progress(stderr, r, o.rounds, c)
			cells = append(cells, c)
		}
		for _, wl := range o.workloads {
			var eligible []peers.Config
			for _, c := range o.configs {
				if c.Limit == wl.Limit() {
					eligible = append(eligible, c)
				}
			}
			for i := range eligible {
				c := eligible[(i+r-1)%len(eligible)]
				var handoffs float64
				if o.handoffs {
					handoffs = measureHandoffs(handoffsFor)
				}
				cell := runCell(o, bin, template, filepath.Join(dir, "cell"), c, wl, r)
				cell.Handoffs = handoffs
				progress(stderr, r, o.rounds, cell)
				cells = append(cells, cell)
			}
		}
	}
	header = append(header, "- Load average after: "+loadavg())

	var fsync []peers.Stream
	var measured []peers.Cell
	for _, c := range cells {
		if c.Config == diskConfig {
			if c.Result != nil {
				fsync = append(fsync, c.Result.Streams...)
			}
			continue
		}
		measured = append(measured, c)
	}
	peers.WriteReport(stdout, peers.ReportInput{Header: header, Workloads: o.workloads, Configs: o.configs, Cells: measured, Fsync: fsync})

	if o.jsonOut != "" {
		if err := writeJSON(o, header, cells); err != nil {
			return 1, err
		}
	}
	for _, c := range cells {
		if c.Error != "" || (c.Config != diskConfig && !c.Good()) {
			return 1, nil
		}
	}
	return 0, nil
}

// moduleDir returns the directory of the bench/peers module, which must be
// the current one's.
func moduleDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Dir}}").Output()
	path, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if err != nil || path != modulePath {
		return "", fmt.Errorf("peers: run it in bench/peers (go list -m gives %q, want %s): cd bench/peers && go run ./cmd/peers", path, modulePath)
	}
	return dir, nil
}

// build builds the runners the configurations need, and run-modernc (which
// creates the template), into bin.
func build(modDir, bin string, configs []peers.Config, stderr io.Writer) error {
	pkgs := []string{"./cmd/run-modernc"}
	for _, c := range configs {
		if p := "./cmd/" + c.Runner; !slices.Contains(pkgs, p) {
			pkgs = append(pkgs, p)
		}
	}
	start := time.Now()
	// -buildvcs=auto: the runners record the commit they are built from
	// (versions), whatever GOFLAGS says, where the checkout has one.
	cmd := exec.Command("go", append([]string{"build", "-buildvcs=auto", "-o", bin + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = modDir
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("peers: go build %s: %w (run-mattn needs cgo and a C compiler)", strings.Join(pkgs, " "), err)
	}
	fmt.Fprintf(stderr, "built %s in %.1f s\n", strings.Join(pkgs, " "), time.Since(start).Seconds())
	return nil
}

// runCell runs one cell in a process of its own, on a fresh copy of the
// template in cellDir, which it removes after.
func runCell(o options, bin, template, cellDir string, c peers.Config, wl peers.Workload, round int) peers.Cell {
	cell := peers.Cell{Round: round, Config: c.Name, Workload: wl.Name}
	if err := os.RemoveAll(cellDir); err != nil {
		cell.Error = err.Error()
		return cell
	}
	defer os.RemoveAll(cellDir)
	path := filepath.Join(cellDir, "app.db")
	if err := copyFile(template, path); err != nil {
		cell.Error = err.Error()
		return cell
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.warmup+o.duration+3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, c.Runner),
		"-config", c.Name, "-workload", wl.Name, "-db", path,
		"-duration", o.duration.String(), "-warmup", o.warmup.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		cell.Error = fmt.Sprintf("%s: %v: %s", c.Runner, err, tail(stderr.String(), 2000))
		return cell
	}
	res, err := peers.ParseResult(stdout.Bytes())
	if err != nil {
		cell.Error = fmt.Sprintf("%s: %v: %s", c.Runner, err, tail(stdout.String()+stderr.String(), 2000))
		return cell
	}
	cell.Stderr = tail(stderr.String(), 2000)
	cell.Result = &res
	return cell
}

// copyFile copies the file at src to a new file at dst, creating its
// directory.
func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// progress writes one line about a cell to w.
func progress(w io.Writer, round, rounds int, c peers.Cell) {
	fmt.Fprintf(w, "round %d/%d %-6s %-14s ", round, rounds, c.Workload, c.Config)
	switch {
	case c.Error != "":
		fmt.Fprintf(w, "FAILED: %s\n", c.Error)
		return
	case c.Result == nil:
		fmt.Fprintln(w, "no result")
		return
	}
	for i, s := range c.Result.Streams {
		if i > 0 {
			fmt.Fprint(w, "; ")
		}
		fmt.Fprintf(w, "%s %s/s p99.9 %s errors %d", s.Name, peers.FormatRate(s.PerSec), peers.FormatNs(float64(s.P999)), s.Errors)
	}
	if c.Handoffs > 0 {
		fmt.Fprintf(w, " (handoffs %s/s before)", peers.FormatRate(c.Handoffs))
	}
	if len(c.Result.Problems) > 0 {
		fmt.Fprintf(w, " PROBLEMS: %s", strings.Join(c.Result.Problems, "; "))
	}
	fmt.Fprintln(w)
}

// machine describes the machine.
func machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s, %d cores, %s/%s %s, %s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(kernel)), runtime.Version())
}

// versions returns the versions of the drivers the module builds with, and
// the commit of sqlite-safe that runner, sqlite-safe's runner, was built
// from; when the runner does not record it (built with -buildvcs=false), it
// says so and names the checkout's commit, which the runner may not be.
func versions(modDir, runner string) string {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Version}}", "modernc.org/sqlite", "github.com/mattn/go-sqlite3", "github.com/ncruces/go-sqlite3")
	cmd.Dir = modDir
	out, err := cmd.Output()
	if err != nil {
		return "unknown (go list -m failed)"
	}
	v := strings.Join(strings.Split(strings.TrimSpace(string(out)), "\n"), ", ")
	if rev := builtFrom(runner); rev != "" {
		return v + ", sqlite-safe at " + rev
	}
	git := exec.Command("git", "describe", "--always", "--dirty")
	git.Dir = modDir
	if rev, err := git.Output(); err == nil {
		v += ", sqlite-safe: the runners do not record their commit (build them with -buildvcs=auto); the checkout is at " + strings.TrimSpace(string(rev))
	}
	return v
}

// plural returns n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// filesystem returns the type and mount point of the file system dir is
// on, as df gives them, with a warning for tmpfs, where fdatasync costs
// nothing.
func filesystem(dir string) string {
	out, err := exec.Command("df", "-PT", dir).Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) < 2 {
		return dir + " (file system unknown: df -PT failed)"
	}
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 7 {
		return dir + " (file system unknown)"
	}
	fs := fmt.Sprintf("%s (%s, mounted on %s)", dir, f[1], f[6])
	if f[1] == "tmpfs" {
		fs += ": memory, where fdatasync costs nothing and synchronous=FULL measures nothing; give -dir on a disk"
	}
	return fs
}

// loadavg returns the load averages of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ") + " (1, 5, 15 min)"
}

// writeJSON writes the run to o.jsonOut: the header and lists, then every
// cell, one JSON value a line.
func writeJSON(o options, header []string, cells []peers.Cell) error {
	f, err := os.Create(o.jsonOut)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	rf := runFile{Header: header}
	for _, w := range o.workloads {
		rf.Workloads = append(rf.Workloads, w.Name)
	}
	for _, c := range o.configs {
		rf.Configs = append(rf.Configs, c.Name)
	}
	err = enc.Encode(rf)
	for _, c := range cells {
		if err == nil {
			err = enc.Encode(c)
		}
	}
	return errors.Join(err, f.Close())
}

// report prints the report of a file written by -json.
func report(path string, stdout, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	var rf runFile
	if err := dec.Decode(&rf); err != nil {
		fmt.Fprintf(stderr, "peers: %s: %v\n", path, err)
		return 1
	}
	in := peers.ReportInput{Header: rf.Header}
	for _, name := range rf.Workloads {
		if w, ok := peers.LookupWorkload(name); ok {
			in.Workloads = append(in.Workloads, w)
		}
	}
	for _, name := range rf.Configs {
		if c, ok := peers.LookupConfig(name); ok {
			in.Configs = append(in.Configs, c)
		}
	}
	for {
		var c peers.Cell
		if err := dec.Decode(&c); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintf(stderr, "peers: %s: %v\n", path, err)
			return 1
		}
		if c.Config == diskConfig {
			if c.Result != nil {
				in.Fsync = append(in.Fsync, c.Result.Streams...)
			}
			continue
		}
		in.Cells = append(in.Cells, c)
	}
	peers.WriteReport(stdout, in)
	return 0
}

// builtFrom returns the commit the binary at path was built from, as Go
// stamps it (vcs.revision, shortened, and -dirty for vcs.modified), or ""
// when it cannot tell.
func builtFrom(path string) string {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return ""
	}
	return rev[:min(len(rev), 7)] + dirty
}

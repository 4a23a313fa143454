//go:build linux

// Command demo is the demo on a cluster: the same concurrent workload through plain go-dqlite,
// through go-dqlite behind a mutex, and through sqlite-safe's dqlite:// scheme, one after the
// other, on three dqlite-demo nodes it starts on 127.0.0.1 in a temporary directory; halfway
// through each run it SIGKILLs the leader. It prints, side by side, the writes per second, the
// errors, the gap (from the kill to the first successful write begun after it) and the outcome
// check of every write against the database: lost (reported successful, absent), applied twice,
// and failed but committed.
//
// From the repository root, "go run ./cmd/sqlite-safe demo --dqlite" builds and runs it; here:
//
//	go run -tags nosqlite3 ./cmd/demo [flags]
//
// It needs dqlite-demo (apt-get install -y go-dqlite). It stops every node it started, by PID,
// when it ends, also on an error or Ctrl-C; the nodes also die with it if it is killed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/textwrap"

	_ "github.com/sqlitesafe/sqlitesafe"        // registers "sqlite-safe"
	_ "github.com/sqlitesafe/sqlitesafe/dqlite" // registers the dqlite:// scheme with it

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/launch"
)

// options are the flags.
type options struct {
	goroutines    int
	duration      time.Duration // load before the kill, and again after the writes resumed
	resumeTimeout time.Duration // how long a run waits for writes to resume after the kill
	runs          []setup
	dsnOptions    string // key=value&... added to the sqlite-safe DSN
	keep          bool
}

// exitInterrupted is the exit status after Ctrl-C or SIGTERM (128 + SIGINT).
const exitInterrupted = 130

func main() {
	os.Exit(command(os.Args[1:], os.Stdout, os.Stderr))
}

// command runs the demo with args (without the program name) and returns the exit status.
func command(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: sqlite-safe demo --dqlite [flags]\n"+
			"       (in dqlite/: go run -tags nosqlite3 ./cmd/demo [flags])\n\n"+
			"Starts three dqlite-demo nodes on 127.0.0.1 in a temporary directory and runs the same\n"+
			"concurrent workload through plain go-dqlite, go-dqlite behind a mutex and sqlite-safe's\n"+
			"dqlite://, one after the other, killing the leader (SIGKILL) halfway through each run;\n"+
			"then checks every write against the database.\n\nflags:\n")
		fs.PrintDefaults()
	}
	var o options
	var runs string
	fs.IntVar(&o.goroutines, "goroutines", 32, "concurrent goroutines in each run")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "load before the kill, and again after the writes resumed")
	fs.DurationVar(&o.resumeTimeout, "resume-timeout", 30*time.Second, "how long a run waits for writes to resume after the kill")
	fs.StringVar(&runs, "runs", "go-dqlite,mutex,sqlite-safe", "the runs, in order, comma-separated: go-dqlite, mutex (go-dqlite behind a mutex), sqlite-safe")
	fs.StringVar(&o.dsnOptions, "options", "", "DSN keys for the sqlite-safe run, as key=value&key=value")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (the nodes' data and logs) and print its path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var bad string
	switch {
	case fs.NArg() > 0:
		bad = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case o.goroutines < 1:
		bad = "-goroutines must be at least 1"
	case o.duration <= 0:
		bad = "-duration must be positive"
	case o.resumeTimeout <= 0:
		bad = "-resume-timeout must be positive"
	}
	if bad == "" {
		o.runs, bad = parseRuns(runs)
	}
	if bad != "" {
		fmt.Fprintf(stderr, "dqlite demo: %s\n", bad)
		fs.Usage()
		return 2
	}
	if err := launch.Check(); err != nil {
		fmt.Fprintf(stderr, "dqlite demo: %v\n", err)
		return 1
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	logged := newWarnings()
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(logged))
	ok, err := demo(ctx, o, logged, stdout, stderr)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "dqlite demo: interrupted; every node stopped")
		return exitInterrupted
	case err != nil:
		fmt.Fprintf(stderr, "dqlite demo: %v\n", err)
		return 1
	case !ok:
		return 1
	}
	return 0
}

// parseRuns turns the -runs list into setups.
func parseRuns(s string) ([]setup, string) {
	var out []setup
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		var found bool
		for _, st := range setups {
			if st.key == name {
				out = append(out, st)
				found = true
			}
		}
		if !found {
			return nil, fmt.Sprintf("invalid -runs entry %q (want go-dqlite, mutex or sqlite-safe)", name)
		}
	}
	return out, ""
}

// demo starts the cluster, makes the runs and writes the report. ok is false when sqlite-safe's
// run was not clean (see reading); the nodes are stopped when it returns, whatever happened.
func demo(ctx context.Context, o options, logged *warnings, stdout, stderr io.Writer) (ok bool, err error) {
	dir, err := os.MkdirTemp("", "sqlite-safe-dqlite-demo-")
	if err != nil {
		return false, err
	}
	if o.keep {
		defer fmt.Fprintf(stdout, "\nthe nodes' data and logs are kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	fmt.Fprintf(stderr, "starting 3 dqlite-demo nodes on 127.0.0.1 in %s\n", dir)
	sctx, cancel := context.WithTimeout(ctx, launch.StartTimeout)
	c, err := launch.Start(sctx, dir, 3)
	cancel()
	if err != nil {
		return false, err
	}
	finished := make(chan struct{})
	defer func() {
		close(finished)
		if err := c.Stop(); err != nil {
			fmt.Fprintf(stderr, "dqlite demo: %v\n", err)
		}
	}()
	go func() {
		// After Ctrl-C the runs end within a second or two; if one does not, stop the nodes
		// and leave anyway.
		select {
		case <-finished:
		case <-ctx.Done():
			select {
			case <-finished:
			case <-time.After(10 * time.Second):
				_ = c.Stop()
				fmt.Fprintln(stderr, "dqlite demo: interrupted; the runs did not end within 10 s, every node stopped")
				os.Exit(exitInterrupted)
			}
		}
	}()
	for _, n := range c.Nodes {
		fmt.Fprintf(stderr, "  %s, pid %d\n", n.Name(), n.PID())
	}

	var results []*result
	for i, s := range o.runs {
		res, err := runOne(ctx, c, s, o, stderr)
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, fmt.Errorf("%s: %w\n%s", s.name, err, c.LogTails(5))
		}
		res.logged = logged.take()
		results = append(results, res)
		if i < len(o.runs)-1 {
			fmt.Fprintf(stderr, "restarting %s and waiting for 3 voters\n", res.killedNode.Name())
			rctx, cancel := context.WithTimeout(ctx, launch.StartTimeout)
			err := c.Restart(rctx, res.killedNode)
			cancel()
			if err != nil {
				return false, fmt.Errorf("restarting %s: %w", res.killedNode.Name(), err)
			}
		}
	}

	fmt.Fprint(stdout, textwrap.Wrap(fmt.Sprintf("3 dqlite-demo nodes on 127.0.0.1; %d goroutines per run, each: of every 4 writes, 2 "+
		"read-modify-write transactions (SELECT balance, UPDATE balance+1) on 1 of %d accounts, 1 autocommit increment "+
		"(UPDATE counters SET v = v + 1), 1 autocommit INSERT; the leader SIGKILLed after %v, the run going on for %v "+
		"after the writes resumed.\n\n", o.goroutines, numAccounts, o.duration, o.duration), outputWidth))
	writeTable(stdout, results)
	fmt.Fprintln(stdout)
	var reading strings.Builder
	ok = writeReading(&reading, results)
	fmt.Fprint(stdout, textwrap.Wrap(reading.String(), outputWidth))
	return ok, nil
}

// result is one run's setup, outcome and the node it killed.
type result struct {
	setup      setup
	out        *outcome
	killedNode *launch.Node
	resumed    bool
	timeout    time.Duration
	logged     []errCount // what the driver logged through log/slog during the run
}

// runOne makes one run: a fresh database, the workload, the kill, the wait for the writes to
// resume, more load, the check.
func runOne(ctx context.Context, c *launch.Cluster, s setup, o options, stderr io.Writer) (*result, error) {
	name := "bank-" + s.key
	db, err := s.open(c.Addresses(), name, o.dsnOptions)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer db.Close()
	verify, err := openPlain(c.Addresses(), name, "")
	if err != nil {
		return nil, err
	}
	defer verify.Close()
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, q := range schema {
		if _, err := db.ExecContext(setupCtx, q); err != nil {
			return nil, fmt.Errorf("creating the schema: %w", err)
		}
	}

	r := &run{setup: s, db: db}
	wctx, cancelWrites := context.WithCancel(ctx)
	defer cancelWrites()
	stop := make(chan struct{})
	done := make(chan struct{})
	r.start = time.Now()
	go func() {
		defer close(done)
		workers := make(chan struct{}, o.goroutines)
		for g := range o.goroutines {
			go func() {
				defer func() { workers <- struct{}{} }()
				r.work(wctx, g, stop)
			}()
		}
		for range o.goroutines {
			<-workers
		}
	}()
	fmt.Fprintf(stderr, "%s: %d goroutines writing\n", s.name, o.goroutines)

	res := &result{setup: s, timeout: o.resumeTimeout}
	if !sleep(ctx, o.duration) {
		return nil, ctx.Err()
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	leader, err := c.Leader(lctx)
	cancel()
	if err != nil {
		return nil, err
	}
	res.killedNode = leader
	r.leader = leader.Name()
	pid := leader.PID()
	okSoFar, failedSoFar := r.okOps.Load(), r.failedOps.Load()
	r.killSent = time.Now()
	r.killNS.Store(r.killSent.UnixNano())
	if err := c.Kill(leader); err != nil {
		return nil, err
	}
	r.killed = time.Now()
	fmt.Fprintf(stderr, "%s: %.1fs: SIGKILL of the leader, %s, pid %d (%d writes so far, %d failed)\n",
		s.name, r.killSent.Sub(r.start).Seconds(), leader.Name(), pid, okSoFar+failedSoFar, failedSoFar)

	giveUp := time.After(o.resumeTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-giveUp:
			fmt.Fprintf(stderr, "%s: no write begun after the kill succeeded within %v\n", s.name, o.resumeTimeout)
			break wait
		case <-tick.C:
			if ns := r.resumedAt.Load(); ns != 0 {
				res.resumed = true
				fmt.Fprintf(stderr, "%s: writes resumed %.2fs after the kill\n", s.name, time.Unix(0, ns).Sub(r.killSent).Seconds())
				break wait
			}
		}
	}
	if res.resumed && !sleep(ctx, o.duration) {
		return nil, ctx.Err()
	}
	close(stop)
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(o.resumeTimeout):
		// A write still waiting for a leader: end it, it counts as failed.
		fmt.Fprintf(stderr, "%s: writes still open %v after the end; cancelling them\n", s.name, o.resumeTimeout)
		cancelWrites()
		<-done
	}

	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	res.out, err = r.check(cctx, verify)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// sleep waits d or until ctx is done; false if ctx is.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// writeTable writes the results side by side, one column per run.
func writeTable(w io.Writer, rs []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	row := func(label string, cell func(r *result) string) {
		fmt.Fprint(tw, label)
		for _, r := range rs {
			fmt.Fprint(tw, "\t", cell(r))
		}
		fmt.Fprintln(tw)
	}
	perSec := func(n int, d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", float64(n)/d.Seconds())
	}
	row("", func(r *result) string { return r.setup.name })
	row("before the kill:", func(*result) string { return "" })
	row("  transactions/s", func(r *result) string { return perSec(r.out.txBeforeKill, r.out.beforeKill) })
	row("  autocommit writes/s", func(r *result) string { return perSec(r.out.rowsBeforeKill, r.out.beforeKill) })
	row("  p50", func(r *result) string { return formatDuration(r.out.quantile(0.50)) })
	row("  p99", func(r *result) string { return formatDuration(r.out.quantile(0.99)) })
	row("writes", func(r *result) string { return fmt.Sprint(r.out.ops) })
	row("errors", func(r *result) string {
		if r.out.failed == 0 {
			return "0"
		}
		return fmt.Sprintf("%d (%d locked)", r.out.failed, r.out.locked)
	})
	row("leader killed at", func(r *result) string {
		return fmt.Sprintf("%.1fs, node %d", r.out.beforeKill.Seconds(), r.killedNode.Index+1)
	})
	row("writes resumed after", func(r *result) string {
		if r.out.gap == 0 {
			return "not within " + r.timeout.String()
		}
		return fmt.Sprintf("%.2fs", r.out.gap.Seconds())
	})
	row("in flight at the kill", func(r *result) string {
		return fmt.Sprintf("%d (%d committed)", r.out.inFlight, r.out.inFlightCommitted)
	})
	row("lost (acknowledged, absent)", func(r *result) string { return fmt.Sprint(len(r.out.lost)) })
	row("applied twice", func(r *result) string { return fmt.Sprint(len(r.out.doubled)) })
	row("failed but committed", func(r *result) string { return fmt.Sprint(len(r.out.failedButCommitted)) })
	row("lost updates", func(r *result) string { return fmt.Sprint(r.out.lostUpdates) })
	tw.Flush()
}

// writeReading writes what each run's outcome means, with its most frequent errors. It reports
// whether sqlite-safe's run (if there was one) kept its promise: writes resumed, no "database is
// locked", nothing lost, nothing applied twice, nothing committed that was reported failed.
func writeReading(w io.Writer, rs []*result) bool {
	ok := true
	for _, r := range rs {
		o := r.out
		fmt.Fprintf(w, "%s: %d of %d writes failed", r.setup.name, o.failed, o.ops)
		if o.locked > 0 {
			fmt.Fprintf(w, ", %d of them with \"database is locked\"", o.locked)
		}
		switch {
		case o.clean():
			fmt.Fprint(w, "; every write reported successful is in the database once, every failed one absent")
		default:
			fmt.Fprintf(w, "; %d lost, %d applied twice, %d failed but committed, %d lost updates",
				len(o.lost), len(o.doubled), len(o.failedButCommitted), o.lostUpdates)
		}
		fmt.Fprintln(w, ".")
		if len(o.errs) > 0 {
			fmt.Fprintln(w, "  the errors, by message (numbers aside), each with its first in full:")
		}
		for i, e := range o.errs {
			if i == 3 {
				fmt.Fprintf(w, "  ... and %d other messages\n", len(o.errs)-3)
				break
			}
			fmt.Fprintf(w, "  %7d x %s\n", e.n, e.msg)
		}
		if len(r.logged) > 0 {
			total := 0
			for _, e := range r.logged {
				total += e.n
			}
			fmt.Fprintf(w, "  %s logged %d messages through log/slog, by message (numbers aside):\n", r.setup.name, total)
			for i, e := range r.logged {
				if i == 3 {
					fmt.Fprintf(w, "  ... and %d other kinds\n", len(r.logged)-3)
					break
				}
				fmt.Fprintf(w, "  %7d x %s\n", e.n, e.msg)
			}
		}
		for _, list := range []struct {
			what string
			ops  []op
		}{{"applied twice", o.doubled}, {"failed but committed", o.failedButCommitted}, {"lost", o.lost}} {
			for i, op := range list.ops {
				if i == 3 {
					fmt.Fprintf(w, "  ... and %d more %s\n", len(list.ops)-3, list.what)
					break
				}
				msg := "no error"
				if op.err != nil {
					msg = shorten(op.err.Error())
				}
				fmt.Fprintf(w, "  %s: %s %d/%d, took %s: %s\n", list.what, op.kind, op.id>>32, op.id&(1<<32-1),
					formatDuration(op.end.Sub(op.start)), msg)
			}
		}
		if r.setup.key == "sqlite-safe" && (!o.clean() || o.locked > 0 || o.gap == 0) {
			ok = false
			fmt.Fprintln(w, "sqlite-safe: BUG: it promises no \"database is locked\", writes that resume, and failed writes "+
				"that did not commit; please report this.")
		}
	}
	return ok
}

// formatDuration writes d with two or three significant digits: 850µs, 3.4ms, 1.2s.
func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}

// outputWidth is the widest line of prose the demo prints.
const outputWidth = 100

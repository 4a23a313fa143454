package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/textwrap"

	_ "github.com/sqlitesafe/sqlitesafe" // registers "sqlite-safe"
	"modernc.org/sqlite"                 // registers "sqlite"
)

// demoOptions are the flags of the demo command.
type demoOptions struct {
	goroutines int           // concurrent workers per run
	duration   time.Duration // length of each run
	sync       string        // PRAGMA synchronous for the tuned and sqlite-safe runs
	keep       bool          // keep the temporary directory
}

// numAccounts is the number of rows the transactions fight over.
const numAccounts = 10

// sqliteBusy is SQLITE_BUSY, the primary result code of "database is locked".
const sqliteBusy = 5

// runDemo is the demo command: it parses the flags and runs demo.
func runDemo(args []string, stdout, stderr io.Writer) int {
	if rest, on := dqliteFlag(args); on {
		return runDemoDqlite(rest, stdout, stderr)
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: sqlite-safe demo [flags]\n\n"+
			"Runs the same concurrent workload on modernc.org/sqlite with its defaults,\n"+
			"on modernc.org/sqlite tuned as the usual guides say, and on sqlite-safe,\n"+
			"each on a fresh database in a temporary directory, and compares them.\n\nflags:\n")
		fs.PrintDefaults()
	}
	var o demoOptions
	fs.IntVar(&o.goroutines, "goroutines", 32, "concurrent goroutines in each run")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of each run")
	fs.StringVar(&o.sync, "sync", "NORMAL", "PRAGMA synchronous of the tuned and sqlite-safe runs: OFF, NORMAL, FULL or EXTRA")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory and print its path")
	fs.Bool("dqlite", false, "run the demo on a 3-node dqlite cluster instead: plain go-dqlite and sqlite-safe's\n"+
		"dqlite://, the leader killed halfway (needs the repository's dqlite/ module and dqlite-demo;\n"+
		"the other flags go to that demo: sqlite-safe demo --dqlite -h lists them)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o.sync = strings.ToUpper(o.sync)
	var bad string
	switch {
	case fs.NArg() > 0:
		bad = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case o.goroutines < 1:
		bad = "-goroutines must be at least 1"
	case o.duration <= 0:
		bad = "-duration must be positive"
	case o.sync != "OFF" && o.sync != "NORMAL" && o.sync != "FULL" && o.sync != "EXTRA":
		bad = fmt.Sprintf("invalid -sync %q (want OFF, NORMAL, FULL or EXTRA)", o.sync)
	}
	if bad != "" {
		fmt.Fprintf(stderr, "sqlite-safe demo: %s\n", bad)
		fs.Usage()
		return 2
	}
	ok, err := demo(o, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sqlite-safe demo: %v\n", err)
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}

// setup is one of the three configurations the demo compares.
type setup struct {
	name   string
	driver string
	dsn    func(path, sync string) string
}

var setups = []setup{
	{"modernc defaults", "sqlite", func(path, _ string) string { return path }},
	{"modernc tuned", "sqlite", func(path, sync string) string {
		return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" +
			"&_pragma=synchronous(" + sync + ")&_txlock=immediate"
	}},
	{"sqlite-safe", "sqlite-safe", func(path, sync string) string {
		if sync != "NORMAL" { // sqlite-safe's default
			return path + "?_synchronous=" + sync
		}
		return path
	}},
}

// demo runs the workload once per setup, in a temporary directory, and
// writes the comparison to stdout and progress to stderr. ok is false if
// sqlite-safe showed errors or lost writes; err is set if the demo could not
// run.
func demo(o demoOptions, stdout, stderr io.Writer) (ok bool, err error) {
	dir, err := os.MkdirTemp("", "sqlite-safe-demo-")
	if err != nil {
		return false, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	results := make([]*result, len(setups))
	for i, s := range setups {
		path := filepath.Join(dir, strings.ReplaceAll(s.name, " ", "-")+".db")
		results[i], err = runWorkload(s, s.dsn(path, o.sync), o, stderr)
		if err != nil {
			return false, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	fmt.Fprint(stdout, textwrap.Wrap(fmt.Sprintf("%d goroutines, %v per run; each goroutine: 3 of 4 operations a transaction "+
		"(SELECT balance, UPDATE balance+1) on 1 of %d accounts, 1 of 4 an INSERT; synchronous=%s "+
		"for modernc tuned and sqlite-safe\n\n", o.goroutines, o.duration, numAccounts, o.sync), outputWidth))
	writeTable(stdout, results)
	fmt.Fprintln(stdout)
	var reading strings.Builder
	ok = writeReading(&reading, results)
	fmt.Fprint(stdout, textwrap.Wrap(reading.String(), outputWidth))
	if o.keep {
		fmt.Fprintf(stdout, "\ndatabases kept in %s\n", dir)
	}
	return ok, nil
}

// result is what one run measured.
type result struct {
	name           string
	elapsed        time.Duration
	commits        int64 // transactions whose Commit succeeded
	inserts        int64 // INSERTs that succeeded
	errors, busy   int64 // failed operations, and how many of them were SQLITE_BUSY
	firstErr       string
	lostUpdates    int64 // commits - SUM(balance)
	missingInserts int64 // inserts - count(*) of events
	lat            histogram
}

func (r *result) ok() bool { return r.errors == 0 && r.lostUpdates == 0 && r.missingInserts == 0 }

// counters are the live tallies of a run, shared by its goroutines.
type counters struct {
	commits, inserts, errors, busy atomic.Int64
	firstErr                       atomic.Pointer[string]
}

// fail counts err.
func (c *counters) fail(err error) {
	c.errors.Add(1)
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqliteBusy {
		c.busy.Add(1)
	}
	if c.firstErr.Load() == nil {
		s := err.Error()
		c.firstErr.CompareAndSwap(nil, &s)
	}
}

// runWorkload opens a fresh database with the setup's driver and dsn, runs
// o.goroutines workers on it for o.duration, and checks what reached the
// tables against what the workers saw succeed.
func runWorkload(s setup, dsn string, o demoOptions, progress io.Writer) (*result, error) {
	db, err := sql.Open(s.driver, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := createSchema(db); err != nil {
		return nil, err
	}

	var c counters
	hists := make([]histogram, o.goroutines)
	start := time.Now()
	deadline := start.Add(o.duration)
	var wg sync.WaitGroup
	for g := range o.goroutines {
		wg.Go(func() { work(db, g, deadline, &c, &hists[g]) })
	}
	stop := func() {}
	if isTerminal(progress) {
		// \r-overwritten lines would pile up into one long line in a log.
		stop = showProgress(progress, s.name, start, &c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()

	r := &result{
		name:    s.name,
		elapsed: elapsed,
		commits: c.commits.Load(),
		inserts: c.inserts.Load(),
		errors:  c.errors.Load(),
		busy:    c.busy.Load(),
	}
	if p := c.firstErr.Load(); p != nil {
		r.firstErr = *p
	}
	for i := range hists {
		r.lat.merge(&hists[i])
	}
	var sum, events int64
	if err := db.QueryRow("SELECT COALESCE(SUM(balance), 0) FROM accounts").Scan(&sum); err != nil {
		return nil, fmt.Errorf("checking balances: %w", err)
	}
	if err := db.QueryRow("SELECT count(*) FROM events").Scan(&events); err != nil {
		return nil, fmt.Errorf("counting events: %w", err)
	}
	r.lostUpdates = r.commits - sum
	r.missingInserts = r.inserts - events
	return r, nil
}

// createSchema creates the accounts, all at balance 0, and the events table.
func createSchema(db *sql.DB) error {
	stmts := []string{
		"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
		"CREATE TABLE events (id INTEGER PRIMARY KEY, worker INTEGER NOT NULL, seq INTEGER NOT NULL)",
		fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) "+
			"INSERT INTO accounts (id, balance) SELECT i, 0 FROM n", numAccounts),
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("creating the schema: %w", err)
		}
	}
	return nil
}

// work is one goroutine of the workload: until the deadline, every 4th
// operation is an autocommit INSERT and the others increment a random
// account in a read-modify-write transaction. Each operation's latency goes
// to h, failed or not.
func work(db *sql.DB, g int, deadline time.Time, c *counters, h *histogram) {
	for i := 0; ; i++ {
		t0 := time.Now()
		if !t0.Before(deadline) {
			return
		}
		var err error
		if i%4 == 3 {
			_, err = db.Exec("INSERT INTO events (worker, seq) VALUES (?, ?)", g, i)
			if err == nil {
				c.inserts.Add(1)
			}
		} else {
			err = increment(db, 1+rand.IntN(numAccounts))
			if err == nil {
				c.commits.Add(1)
			}
		}
		h.record(time.Since(t0))
		if err != nil {
			c.fail(err)
		}
	}
}

// increment adds 1 to the balance of account id the way application code
// often does: read, compute, write, commit. It returns nil only if the
// transaction committed.
func increment(db *sql.DB, id int) error {
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after a Commit
	var balance int64
	if err := tx.QueryRow("SELECT balance FROM accounts WHERE id = ?", id).Scan(&balance); err != nil {
		return err
	}
	if _, err := tx.Exec("UPDATE accounts SET balance = ? WHERE id = ?", balance+1, id); err != nil {
		return err
	}
	return tx.Commit()
}

// showProgress writes a progress line for the run to w every 250 ms,
// overwriting it with \r, until the returned func is called; that func
// clears the line.
func showProgress(w io.Writer, name string, start time.Time, c *counters) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		width := 0
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				if width > 0 {
					fmt.Fprintf(w, "\r%s\r", strings.Repeat(" ", width))
				}
				return
			case <-t.C:
				ops := c.commits.Load() + c.inserts.Load() + c.errors.Load()
				line := fmt.Sprintf("%-16s %5.1fs  %8d ops  %7d errors",
					name, time.Since(start).Seconds(), ops, c.errors.Load())
				width = max(width, len(line))
				fmt.Fprintf(w, "\r%-*s", width, line)
			}
		}
	}()
	return func() { close(done); <-finished }
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
	row("", func(r *result) string { return r.name })
	row("transactions/s", func(r *result) string { return fmt.Sprintf("%.0f", perSecond(r.commits, r.elapsed)) })
	row("inserts/s", func(r *result) string { return fmt.Sprintf("%.0f", perSecond(r.inserts, r.elapsed)) })
	row("errors", func(r *result) string {
		if r.errors == 0 {
			return "0"
		}
		return fmt.Sprintf("%d (%d busy)", r.errors, r.busy)
	})
	row("lost updates", func(r *result) string { return fmt.Sprint(r.lostUpdates) })
	row("missing inserts", func(r *result) string { return fmt.Sprint(r.missingInserts) })
	row("mean", func(r *result) string { return formatDuration(r.lat.mean()) })
	row("p50", func(r *result) string { return formatDuration(r.lat.quantile(0.50)) })
	row("p99", func(r *result) string { return formatDuration(r.lat.quantile(0.99)) })
	row("p99.9", func(r *result) string { return formatDuration(r.lat.quantile(0.999)) })
	row("max", func(r *result) string { return formatDuration(r.lat.max) })
	tw.Flush()
}

// writeReading writes a few sentences computed from the results: what went
// wrong in the modernc runs, and how sqlite-safe compares with the tuned
// one. rs is in the order of setups. It reports whether sqlite-safe was
// clean.
func writeReading(w io.Writer, rs []*result) bool {
	safe, tuned := rs[len(rs)-1], rs[1]
	for _, r := range rs[:len(rs)-1] {
		ops := r.commits + r.inserts + r.errors
		if r.errors == 0 {
			fmt.Fprintf(w, "%s: no errors in %d operations", r.name, ops)
		} else {
			fmt.Fprintf(w, "%s: %d of %d operations failed (%.1f%%), %d of them with SQLITE_BUSY \"database is locked\"",
				r.name, r.errors, ops, math.Floor(1000*float64(r.errors)/float64(ops))/10, r.busy) // floor: 100% only if all failed
		}
		fmt.Fprintf(w, "%s.\n", lossText(r))
	}
	if !safe.ok() {
		fmt.Fprintf(w, "sqlite-safe: BUG: %d errors, %d lost updates, %d missing inserts; it should show none. "+
			"Please report this", safe.errors, safe.lostUpdates, safe.missingInserts)
		if safe.firstErr != "" {
			fmt.Fprintf(w, " (first error: %s)", safe.firstErr)
		}
		fmt.Fprintln(w, ".")
		return false
	}
	p50, tunedP50 := safe.lat.quantile(0.50), tuned.lat.quantile(0.50)
	p999, tunedP999 := safe.lat.quantile(0.999), tuned.lat.quantile(0.999)
	fmt.Fprintf(w, "sqlite-safe: 0 errors and nothing lost; against %s, p50 is %s vs %s (%s) and p99.9 is %s vs %s (%s).\n",
		tuned.name, formatDuration(p50), formatDuration(tunedP50), compare(float64(p50), float64(tunedP50), "lower", "higher"),
		formatDuration(p999), formatDuration(tunedP999), compare(float64(p999), float64(tunedP999), "lower", "higher"))
	fmt.Fprintf(w, "sqlite-safe committed %.0f transactions/s against %.0f for %s (%s).\n",
		perSecond(safe.commits, safe.elapsed), perSecond(tuned.commits, tuned.elapsed), tuned.name,
		compare(perSecond(safe.commits, safe.elapsed), perSecond(tuned.commits, tuned.elapsed), "fewer", "more"))
	fmt.Fprintf(w, "Why the medians differ: sqlite-safe serves writers first in, first out, so each waits its turn and its median "+
		"sits near its mean (%s); SQLite's busy handler lets whoever retries at the right moment in at once and leaves "+
		"the others sleeping, so %s has a low median, a mean of %s, and the long tail above.\n",
		formatDuration(safe.lat.mean()), tuned.name, formatDuration(tuned.lat.mean()))
	return true
}

// lossText describes the lost updates and missing inserts of r, if any.
func lossText(r *result) string {
	switch {
	case r.lostUpdates == 0 && r.missingInserts == 0:
		return "; nothing lost"
	default:
		return fmt.Sprintf("; %d lost updates, %d missing inserts", r.lostUpdates, r.missingInserts)
	}
}

// compare says how a relates to b as a ratio: "23x lower" if a is smaller,
// "1.8x higher" if larger (with the words given), "within 5%" if close.
func compare(a, b float64, smaller, larger string) string {
	switch {
	case a <= 0 || b <= 0:
		return "no ratio"
	case math.Max(a, b)/math.Min(a, b) < 1.05:
		return "within 5%"
	case a < b:
		return formatRatio(b/a) + " " + smaller
	default:
		return formatRatio(a/b) + " " + larger
	}
}

// formatRatio writes a ratio with two significant digits below 10.
func formatRatio(x float64) string {
	if x < 10 {
		return fmt.Sprintf("%.1fx", x)
	}
	return fmt.Sprintf("%.0fx", x)
}

// perSecond is n per second of d.
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// formatDuration writes d with two or three significant digits in the
// largest unit that keeps it at or above 1: 850ns, 12µs, 3.4ms, 1.2s.
func formatDuration(d time.Duration) string {
	units := []struct {
		size time.Duration
		name string
	}{{time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "µs"}}
	for _, u := range units {
		if d >= u.size {
			v := float64(d) / float64(u.size)
			if v < 10 {
				return fmt.Sprintf("%.1f%s", v, u.name)
			}
			return fmt.Sprintf("%.0f%s", v, u.name)
		}
	}
	return fmt.Sprintf("%dns", d)
}

// histogram is a log-linear latency histogram: exact below 64 ns, then 32
// buckets per power of two, so a quantile read at a bucket's middle is off
// by under 1.6%. It is a fixed 15 KB and record never allocates, so each
// goroutine can keep its own and they are merged at the end.
type histogram struct {
	counts [(64 - subBits + 1) << subBits]int64
	n      int64
	sum    time.Duration
	max    time.Duration
}

// subBits is log2 of the number of buckets per power of two.
const subBits = 5

// record adds one latency.
func (h *histogram) record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucket(uint64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// merge adds the counts of o to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// mean returns the mean latency, or 0 if none was recorded.
func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// quantile returns the latency below which a fraction q of the recorded
// ones lie (the middle of its bucket, at most the maximum), or 0 if there
// are none.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(h.n))), 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(middle(i)), h.max)
		}
	}
	return h.max
}

// bucket returns the index of the bucket of v: v itself below 2<<subBits,
// then 1<<subBits buckets for each power of two, told apart by the subBits
// bits after the leading one.
func bucket(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)<<subBits + int(v>>shift) - 1<<subBits
}

// middle returns the middle of bucket i, the inverse of bucket.
func middle(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	shift := i>>subBits - 1
	low := uint64(1<<subBits+i&(1<<subBits-1)) << shift
	return low + (uint64(1)<<shift)/2
}

// outputWidth is the widest line the demo prints: it fits an 80- or
// 100-column terminal without wrapping there.
const outputWidth = 100

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

package peers

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"
)

// Family is what one runner program knows: the configurations it opens and
// how it opens a connection of its own driver for the transaction-lock
// probe.
type Family struct {
	Configs map[string]Opener
	// ProbeDriver and ProbeDSN open a connection with no busy timeout on
	// the database at path, through the same SQLite library as the
	// configurations (so that SQLite's own POSIX-lock bookkeeping covers
	// both). See Settings.TxLock.
	ProbeDriver string
	ProbeDSN    func(path string) string
	// BeforeClose, when set, is called with the cell's handles once its
	// calls have run, before they are closed (a runner's own report).
	BeforeClose func(h *Handles)
}

// Main is the main function of a runner program (cmd/run-*): it runs one
// cell and prints its Result as one line of JSON, or with -prepare creates
// the template database. It exits 0 when it printed a result (which may
// list problems), 1 when it could not run the cell, 2 on bad flags or when
// the cell outlived its watchdog.
func Main(f Family) {
	os.Exit(run(f, os.Args[1:], os.Stdout, os.Stderr))
}

// run is Main with its arguments and output.
func run(f Family, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "the configuration to open")
	workload := fs.String("workload", "", "the workload to run")
	path := fs.String("db", "", "the database file: a fresh copy of the template")
	duration := fs.Duration("duration", time.Second, "how long the measured calls run")
	warmup := fs.Duration("warmup", 200*time.Millisecond, "how long the same calls run, unmeasured, before")
	prepare := fs.Int("prepare", 0, "create the template at -db with this many rows in t through -config, and exit")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the cell (warm-up and measured calls) to this file")
	blockProfile := fs.String("blockprofile", "", "write a blocking profile of the cell to this file (every blocking event)")
	mutexProfile := fs.String("mutexprofile", "", "write a mutex contention profile of the cell to this file (every event)")
	traceFile := fs.String("trace", "", "write an execution trace of the cell to this file (go tool trace)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	open, ok := f.Configs[*config]
	if !ok || *path == "" {
		fmt.Fprintf(stderr, "peers: this runner opens %s; give -config, -db and -workload\n", strings.Join(configNames(f), ", "))
		return 2
	}
	if *prepare > 0 {
		if err := createTemplate(open, *path, *prepare); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	cfg, ok := LookupConfig(*config)
	wl, wok := LookupWorkload(*workload)
	if !ok || !wok || cfg.Limit != wl.Limit() {
		fmt.Fprintf(stderr, "peers: %s does not run workload %q\n", *config, *workload)
		return 2
	}
	watchdog := time.AfterFunc(*warmup+*duration+2*time.Minute, func() {
		fmt.Fprintf(stderr, "peers: %s %s still running after %v; every goroutine:\n", *config, *workload, *warmup+*duration+2*time.Minute)
		pprof.Lookup("goroutine").WriteTo(stderr, 2)
		os.Exit(2)
	})
	defer watchdog.Stop()
	stop, err := startProfiles(*cpuProfile, *blockProfile, *mutexProfile, *traceFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	res, err := runCell(f, open, cfg, wl, *path, *warmup, *duration)
	if perr := stop(); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	out, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}

// startProfiles starts the profiles asked for (a file name each, empty for
// none); stop writes them.
func startProfiles(cpu, block, mutex, traceOut string) (stop func() error, err error) {
	var cpuFile, traceFile *os.File
	if cpu != "" {
		if cpuFile, err = os.Create(cpu); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(cpuFile); err != nil {
			cpuFile.Close()
			return nil, err
		}
	}
	if traceOut != "" {
		if traceFile, err = os.Create(traceOut); err != nil {
			return nil, err
		}
		if err := trace.Start(traceFile); err != nil {
			traceFile.Close()
			return nil, err
		}
	}
	if block != "" {
		runtime.SetBlockProfileRate(1)
	}
	if mutex != "" {
		runtime.SetMutexProfileFraction(1)
	}
	return func() error {
		var first error
		keep := func(err error) {
			if first == nil {
				first = err
			}
		}
		if cpuFile != nil {
			pprof.StopCPUProfile()
			keep(cpuFile.Close())
		}
		if traceFile != nil {
			trace.Stop()
			keep(traceFile.Close())
		}
		for _, p := range []struct{ name, file string }{{"block", block}, {"mutex", mutex}} {
			if p.file == "" {
				continue
			}
			f, err := os.Create(p.file)
			if err != nil {
				keep(err)
				continue
			}
			keep(pprof.Lookup(p.name).WriteTo(f, 0))
			keep(f.Close())
		}
		return first
	}, nil
}

// configNames returns the configurations of f, in the order of Configs.
func configNames(f Family) []string {
	var names []string
	for _, c := range Configs {
		if _, ok := f.Configs[c.Name]; ok {
			names = append(names, c.Name)
		}
	}
	return names
}

// createTemplate creates the database every cell copies: WAL, table t with
// rows rows of templateValue, the counter table with CounterRows rows at
// 0, checkpointed and closed so that the file alone is the database.
func createTemplate(open Opener, path string, rows int) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("peers: the template %s exists already; give a new path", path)
	}
	h, err := open(path, "NORMAL")
	if err != nil {
		return err
	}
	err = fillTemplate(h.Writer, rows)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("peers: create the template: %w", err)
	}
	for _, suffix := range []string{"-wal", "-journal"} {
		if _, err := os.Stat(path + suffix); err == nil {
			return fmt.Errorf("peers: the template's %s is still there after close: the file alone is not the database", suffix)
		}
	}
	return nil
}

// fillTemplate creates the tables of the template on db.
func fillTemplate(db *sql.DB, rows int) error {
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		"CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
		"CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
	} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	for i := range rows {
		if _, err := tx.Exec("INSERT INTO t(id, v) VALUES (?, ?)", i+1, templateValue); err != nil {
			return err
		}
	}
	for i := range CounterRows {
		if _, err := tx.Exec("INSERT INTO counter(id, n) VALUES (?, 0)", i+1); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

// counts are what the exact-count check compares: the rows of t and the
// sum of the counters.
type counts struct{ rows, sum int64 }

// readCounts reads the counts through db.
func readCounts(db *sql.DB) (counts, error) {
	var c counts
	err := db.QueryRow("SELECT (SELECT count(*) FROM t), (SELECT coalesce(sum(n), 0) FROM counter)").Scan(&c.rows, &c.sum)
	if err != nil {
		return counts{}, fmt.Errorf("peers: read the counts: %w", err)
	}
	return c, nil
}

// runCell opens the configuration, reads its settings back, runs the
// workload's streams for warmup and then for d, checks the counts and
// returns the measured phase.
func runCell(f Family, open Opener, cfg Config, wl Workload, path string, warmup, d time.Duration) (res Result, err error) {
	res = Result{Config: cfg.Name, Workload: wl.Name}
	h, err := open(path, wl.Sync)
	if err != nil {
		return res, err
	}
	defer func() {
		if f.BeforeClose != nil {
			f.BeforeClose(h)
		}
		if cerr := h.Close(); cerr != nil && err == nil {
			res.Problems = append(res.Problems, "close: "+cerr.Error())
		}
	}()
	if err := h.Reader.QueryRow("SELECT sqlite_version()").Scan(&res.SQLite); err != nil {
		return res, fmt.Errorf("peers: sqlite_version(): %w", err)
	}
	settings, problems, err := readSettings(f, h, path, wl.Sync)
	if err != nil {
		return res, err
	}
	res.Settings, res.Problems = settings, problems
	before, err := readCounts(h.Writer)
	if err != nil {
		return res, err
	}
	streams, cleanup, err := buildStreams(h, wl, int(before.rows))
	if err != nil {
		return res, err
	}
	var want counts
	var measured phase
	for i, pd := range []time.Duration{warmup, d} {
		if pd <= 0 {
			continue
		}
		ph := runPhase(streams, pd, uint64(i+1))
		for _, st := range ph.streams {
			want.rows += st.inserted
			want.sum += st.incremented
		}
		measured = ph
	}
	if err := cleanup(); err != nil {
		res.Problems = append(res.Problems, "close the prepared statements: "+err.Error())
	}
	after, err := readCounts(h.Writer)
	if err != nil {
		return res, err
	}
	if got := after.rows - before.rows; got != want.rows {
		res.Problems = append(res.Problems, fmt.Sprintf("t has %d new rows, the successful calls inserted %d", got, want.rows))
	}
	if got := after.sum - before.sum; got != want.sum {
		res.Problems = append(res.Problems, fmt.Sprintf("the counters rose by %d, the successful calls incremented them %d times", got, want.sum))
	}
	res.Seconds = measured.elapsed.Seconds()
	for i, s := range streams {
		st := measured.streams[i]
		out := Stream{
			Name:       s.name,
			Calls:      st.calls,
			Errors:     st.errors,
			FirstError: st.firstError,
			Ops:        st.calls * s.rowsPerCall,
			P50:        int64(st.hist.Quantile(0.50)),
			P99:        int64(st.hist.Quantile(0.99)),
			P999:       int64(st.hist.Quantile(0.999)),
			Max:        int64(st.hist.Max()),
		}
		if res.Seconds > 0 {
			out.PerSec = float64(out.Ops) / res.Seconds
		}
		res.Streams = append(res.Streams, out)
	}
	return res, nil
}

// readSettings reads the settings back twice: inside a write transaction
// on the writer, where it also probes whether the transaction took the
// write lock at BEGIN, and through plain queries on the reader. It returns
// them with what differs from the configured settings (WAL, busy_timeout
// 5000, synchronous as the workload asks, BEGIN IMMEDIATE).
func readSettings(f Family, h *Handles, path, sync string) ([]Settings, []string, error) {
	ctx := context.Background()
	tx, err := h.Writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("peers: begin a write transaction: %w", err)
	}
	w, err := pragmas(tx.QueryRow)
	if err == nil {
		w.Via = "write tx"
		w.TxLock, err = probeTxLock(ctx, f, tx, path)
	}
	if rerr := tx.Rollback(); err == nil {
		err = rerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("peers: read the writer's settings: %w", err)
	}
	r, err := pragmas(h.Reader.QueryRow)
	if err != nil {
		return nil, nil, fmt.Errorf("peers: read the reader's settings: %w", err)
	}
	r.Via = "query"
	wantSync := map[string]int64{"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}[sync]
	var problems []string
	for _, s := range []Settings{w, r} {
		if s.JournalMode != "wal" {
			problems = append(problems, fmt.Sprintf("%s: journal_mode is %s, want wal", s.Via, s.JournalMode))
		}
		if s.BusyTimeout != 5000 {
			problems = append(problems, fmt.Sprintf("%s: busy_timeout is %d, want 5000", s.Via, s.BusyTimeout))
		}
		if s.Synchronous != wantSync {
			problems = append(problems, fmt.Sprintf("%s: synchronous is %d, want %d (%s)", s.Via, s.Synchronous, wantSync, sync))
		}
	}
	if w.TxLock != "immediate" {
		problems = append(problems, fmt.Sprintf("write tx: a write transaction began %s, want immediate", w.TxLock))
	}
	return []Settings{w, r}, problems, nil
}

// pragmas reads the settings through query (a QueryRow).
func pragmas(query func(string, ...any) *sql.Row) (Settings, error) {
	var s Settings
	for _, p := range []struct {
		name string
		dst  any
	}{
		{"journal_mode", &s.JournalMode},
		{"busy_timeout", &s.BusyTimeout},
		{"synchronous", &s.Synchronous},
		{"foreign_keys", &s.ForeignKeys},
	} {
		if err := query("PRAGMA " + p.name).Scan(p.dst); err != nil {
			return s, fmt.Errorf("PRAGMA %s: %w", p.name, err)
		}
	}
	return s, nil
}

// probeTxLock reports how tx began: it reads in tx (so that a transaction
// that began deferred holds only a read snapshot), then tries BEGIN
// IMMEDIATE on a connection of its own with no busy timeout. If that gets
// the write lock, tx did not hold it: "deferred".
func probeTxLock(ctx context.Context, f Family, tx *sql.Tx, path string) (string, error) {
	var n int64
	if err := tx.QueryRow("SELECT count(*) FROM counter").Scan(&n); err != nil {
		return "", err
	}
	probe, err := sql.Open(f.ProbeDriver, f.ProbeDSN(path))
	if err != nil {
		return "", err
	}
	defer probe.Close()
	conn, err := probe.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("open the probe: %w", err)
	}
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	if err == nil {
		_, err = conn.ExecContext(ctx, "ROLLBACK")
		return "deferred", err
	}
	if msg := strings.ToLower(err.Error()); strings.Contains(msg, "locked") || strings.Contains(msg, "busy") {
		return "immediate", nil
	}
	return "", errors.Join(errors.New("the probe's BEGIN IMMEDIATE failed otherwise than busy"), err)
}

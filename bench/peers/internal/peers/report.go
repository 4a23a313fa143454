package peers

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Cell is one run of a runner, as cmd/peers records it.
type Cell struct {
	Round    int     `json:"round"`
	Config   string  `json:"config"`
	Workload string  `json:"workload"`
	Result   *Result `json:"result,omitempty"`
	// Error is why the runner gave no result (its exit status and the end
	// of its standard error).
	Error string `json:"error,omitempty"`
	// Stderr is what a runner that gave a result wrote to its standard
	// error (sqlite-safe's slow-lock warnings, for one): not a failure,
	// but shown.
	Stderr string `json:"stderr,omitempty"`
	// Handoffs is the machine's cache-line handoff rate between two CPUs,
	// per second, measured just before the cell (0: not measured).
	Handoffs float64 `json:"handoffs_per_sec,omitempty"`
}

// Good reports whether the cell counts in the medians: it gave a result
// and the result lists no problem.
func (c Cell) Good() bool { return c.Error == "" && c.Result != nil && len(c.Result.Problems) == 0 }

// Summary is one configuration's medians over the good rounds of one
// stream of one workload.
type Summary struct {
	PerSec, P99, P999 float64 // medians; latencies in ns
	Errors            int64   // failed calls, summed over the good rounds
	Good, Rounds      int     // rounds counted, rounds run
}

// summaryKey names a summary.
type summaryKey struct{ workload, stream, config string }

// Summaries are the summaries of a set of cells.
type Summaries map[summaryKey]*Summary

// Summarize computes the summaries of cells.
func Summarize(cells []Cell) Summaries {
	type acc struct {
		perSec, p99, p999 []float64
		errors            int64
		rounds            int
	}
	accs := map[summaryKey]*acc{}
	get := func(k summaryKey) *acc {
		if accs[k] == nil {
			accs[k] = &acc{}
		}
		return accs[k]
	}
	for _, c := range cells {
		wl, ok := LookupWorkload(c.Workload)
		if !ok {
			continue
		}
		for _, name := range wl.Streams() {
			a := get(summaryKey{c.Workload, name, c.Config})
			a.rounds++
			if !c.Good() {
				continue
			}
			for _, s := range c.Result.Streams {
				if s.Name != name {
					continue
				}
				a.perSec = append(a.perSec, s.PerSec)
				if s.Calls+s.Errors > 0 { // no call, no latency
					a.p99 = append(a.p99, float64(s.P99))
					a.p999 = append(a.p999, float64(s.P999))
				}
				a.errors += s.Errors
			}
		}
	}
	out := Summaries{}
	for k, a := range accs {
		out[k] = &Summary{
			PerSec: Median(a.perSec), P99: Median(a.p99), P999: Median(a.p999),
			Errors: a.errors, Good: len(a.perSec), Rounds: a.rounds,
		}
	}
	return out
}

// Get returns the summary of a configuration on a stream of a workload, or
// nil if it has no good round.
func (s Summaries) Get(workload, stream, config string) *Summary {
	sum := s[summaryKey{workload, stream, config}]
	if sum == nil || sum.Good == 0 {
		return nil
	}
	return sum
}

// Best returns the configuration among configs with the highest median
// rate on a stream of a workload, and its summary; nil if none has a good
// round.
func (s Summaries) Best(workload, stream string, configs []Config) (Config, *Summary) {
	var best Config
	var bs *Summary
	for _, c := range configs {
		if sum := s.Get(workload, stream, c.Name); sum != nil && (bs == nil || sum.PerSec > bs.PerSec) {
			best, bs = c, sum
		}
	}
	return best, bs
}

// row is one row of the tables: a stream of a workload.
type row struct {
	wl     Workload
	stream string
}

// label returns the row's first cell: the workload's name, with the
// stream's when the workload has more than one.
func (r row) label() string {
	if len(r.wl.Streams()) > 1 {
		return r.wl.Name + " " + r.stream
	}
	return r.wl.Name
}

// tableRows returns the rows of workloads.
func tableRows(workloads []Workload) []row {
	var out []row
	for _, w := range workloads {
		for _, s := range w.Streams() {
			out = append(out, row{w, s})
		}
	}
	return out
}

// FormatRate formats a rate per second: 950, 85.9k, 1.23M.
func FormatRate(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v < 1e3:
		return fmt.Sprintf("%.0f", v)
	case v < 1e6:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.2fM", v/1e6)
	}
}

// FormatNs formats a latency in nanoseconds: 850 ns, 12.3 µs, 4.7 ms, 1.20 s.
func FormatNs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v < 1e3:
		return fmt.Sprintf("%.0f ns", v)
	case v < 1e6:
		return fmt.Sprintf("%.1f µs", v/1e3)
	case v < 1e9:
		return fmt.Sprintf("%.1f ms", v/1e6)
	default:
		return fmt.Sprintf("%.2f s", v/1e9)
	}
}

// formatRatio formats a/b, in bold below 1.
func formatRatio(a, b float64) string {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "-"
	}
	r := a / b
	if r < 1 {
		return fmt.Sprintf("**%.2f**", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// table writes a Markdown table.
func table(w io.Writer, header []string, body [][]string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(header)))
	for _, r := range body {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	fmt.Fprintln(w)
}

// ReportInput is what WriteReport writes about.
type ReportInput struct {
	Header    []string   // lines before the tables: the command, the machine, the load
	Workloads []Workload // the rows, in order
	Configs   []Config   // the columns, in order
	Cells     []Cell
	Fsync     []Stream // the fdatasync measurement of each round; may be empty
}

// WriteReport writes the Markdown report of a run: the ratio of sqlite-safe
// to the best peer per workload, the rates, p99, p99.9 and errors of every
// configuration, the limits, the settings read back, and every problem.
func WriteReport(w io.Writer, in ReportInput) {
	sums := Summarize(in.Cells)
	for _, l := range in.Header {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)

	var peers, pure, columns []Config
	var safe *Config
	for _, c := range in.Configs {
		switch {
		case c.Name == "sqlite-safe":
			safe = &c
			columns = append(columns, c)
		case c.Peer:
			peers = append(peers, c)
			if c.PureGo {
				pure = append(pure, c)
			}
			columns = append(columns, c)
		}
	}
	var measured, limits []Workload
	for _, wl := range in.Workloads {
		if wl.Limit() {
			limits = append(limits, wl)
		} else {
			measured = append(measured, wl)
		}
	}
	cell := func(v float64, format func(float64) string, s *Summary) string {
		if s == nil {
			return "-"
		}
		out := format(v)
		if s.Good < s.Rounds {
			out += fmt.Sprintf(" (%d of %d)", s.Good, s.Rounds)
		}
		return out
	}

	if safe != nil && len(peers) > 0 && len(measured) > 0 {
		fmt.Fprintln(w, "### sqlite-safe / best peer (ops/s medians)")
		fmt.Fprintln(w)
		var body [][]string
		for _, r := range tableRows(measured) {
			s := sums.Get(r.wl.Name, r.stream, safe.Name)
			bc, bs := sums.Best(r.wl.Name, r.stream, peers)
			pc, ps := sums.Best(r.wl.Name, r.stream, pure)
			line := []string{r.label() + ": " + r.wl.Doc, cell(val(s, perSec), FormatRate, s)}
			if bs != nil {
				line = append(line, bc.Name+" "+FormatRate(bs.PerSec), formatRatio(val(s, perSec), bs.PerSec))
			} else {
				line = append(line, "-", "-")
			}
			if ps != nil {
				line = append(line, pc.Name+" "+FormatRate(ps.PerSec), formatRatio(val(s, perSec), ps.PerSec))
			} else {
				line = append(line, "-", "-")
			}
			line = append(line, cell(val(s, p999), FormatNs, s))
			if bs != nil {
				line = append(line, FormatNs(bs.P999))
			} else {
				line = append(line, "-")
			}
			body = append(body, line)
		}
		table(w, []string{"workload", "sqlite-safe", "best peer", "sqlite-safe / best", "best pure-Go peer", "sqlite-safe / best pure-Go", "p99.9 sqlite-safe", "p99.9 best peer"}, body)
	}

	if len(measured) > 0 && len(columns) > 0 {
		header := []string{"workload"}
		for _, c := range columns {
			header = append(header, c.Name)
		}
		for _, t := range []struct {
			title  string
			value  func(*Summary) float64
			format func(float64) string
		}{
			{"ops/s (median)", perSec, FormatRate},
			{"p99 latency (median)", p99, FormatNs},
			{"p99.9 latency (median)", p999, FormatNs},
			{"failed calls (sum over the rounds)", errorsOf, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
		} {
			fmt.Fprintf(w, "### %s\n\n", t.title)
			var body [][]string
			for _, r := range tableRows(measured) {
				line := []string{r.label()}
				for _, c := range columns {
					s := sums.Get(r.wl.Name, r.stream, c.Name)
					line = append(line, cell(val(s, t.value), t.format, s))
				}
				body = append(body, line)
			}
			table(w, header, body)
		}
	}

	if len(limits) > 0 || len(in.Fsync) > 0 {
		fmt.Fprintln(w, "### Limits (medians)")
		fmt.Fprintln(w)
		var body [][]string
		for _, wl := range limits {
			for _, c := range in.Configs {
				if !c.Limit {
					continue
				}
				for _, st := range wl.Streams() {
					s := sums.Get(wl.Name, st, c.Name)
					body = append(body, []string{wl.Name + ": " + wl.Doc, c.Name, st,
						cell(val(s, perSec), FormatRate, s), cell(val(s, p99), FormatNs, s),
						cell(val(s, p999), FormatNs, s), cell(val(s, errorsOf), func(v float64) string { return fmt.Sprintf("%.0f", v) }, s)})
				}
			}
		}
		if len(in.Fsync) > 0 {
			var rate, q99, q999 []float64
			for _, s := range in.Fsync {
				rate = append(rate, s.PerSec)
				q99 = append(q99, float64(s.P99))
				q999 = append(q999, float64(s.P999))
			}
			body = append(body, []string{"the disk: 4 KiB pwrite + fdatasync, one goroutine", "-", "fdatasyncs",
				FormatRate(Median(rate)), FormatNs(Median(q99)), FormatNs(Median(q999)), "0"})
		}
		table(w, []string{"limit", "configuration", "counts", "per second", "p99", "p99.9", "failed calls"}, body)
	}

	writeMachine(w, in.Cells)
	if safe != nil && len(peers) > 0 {
		writeRounds(w, in.Cells, *safe, peers, measured)
	}
	writeSettings(w, in)
	writeProblems(w, in.Cells)
}

// slowPhase is the fraction of the run's highest handoff rate below which a
// cell counts as run while the CPUs were placed apart.
const slowPhase = 0.5

// handoffRange returns the lowest and highest handoff rate measured before
// the cells, 0 and 0 if none was.
func handoffRange(cells []Cell) (lo, hi float64) {
	for _, c := range cells {
		if c.Handoffs <= 0 {
			continue
		}
		if lo == 0 || c.Handoffs < lo {
			lo = c.Handoffs
		}
		hi = max(hi, c.Handoffs)
	}
	return lo, hi
}

// writeMachine writes the handoff rates measured before the cells, by
// round, when there are any.
func writeMachine(w io.Writer, cells []Cell) {
	lo, hi := handoffRange(cells)
	if hi == 0 {
		return
	}
	fmt.Fprintln(w, "### The CPUs during the run")
	fmt.Fprintln(w)
	var all []float64
	byRound := map[int][]float64{}
	var rounds []int
	for _, c := range cells {
		if c.Handoffs <= 0 {
			continue
		}
		all = append(all, c.Handoffs)
		if byRound[c.Round] == nil {
			rounds = append(rounds, c.Round)
		}
		byRound[c.Round] = append(byRound[c.Round], c.Handoffs)
	}
	fmt.Fprintf(w, "Cache-line handoffs between two CPUs, measured for 100 ms before each cell: median %s/s, lowest %s/s, highest %s/s.\n",
		FormatRate(Median(all)), FormatRate(lo), FormatRate(hi))
	if lo < slowPhase*hi {
		var slow int
		for _, v := range all {
			if v < slowPhase*hi {
				slow++
			}
		}
		fmt.Fprintf(w, "The rate changed by %.1fx during the run (%d of %d cells ran below half the highest): the CPUs were placed apart at times.\n", hi/lo, slow, len(all))
		fmt.Fprintln(w, "Every configuration whose goroutines share a lock slows down with it (many readers most), so compare configurations within a round (below).")
	}
	fmt.Fprintln(w)
	var body [][]string
	slices.Sort(rounds)
	for _, r := range rounds {
		v := byRound[r]
		body = append(body, []string{fmt.Sprint(r), FormatRate(slices.Min(v)), FormatRate(Median(v)), FormatRate(slices.Max(v))})
	}
	table(w, []string{"round", "lowest /s", "median /s", "highest /s"}, body)
}

// writeRounds writes sqlite-safe's ratio to the best peer of each round,
// marking a ratio whose two cells ran in different phases of the CPUs'
// placement (one below half the run's highest handoff rate, one not).
func writeRounds(w io.Writer, cells []Cell, safe Config, peers []Config, measured []Workload) {
	var rounds []int
	byRound := map[int][]Cell{}
	for _, c := range cells {
		if byRound[c.Round] == nil {
			rounds = append(rounds, c.Round)
		}
		byRound[c.Round] = append(byRound[c.Round], c)
	}
	if len(rounds) < 2 || len(measured) == 0 {
		return
	}
	slices.Sort(rounds)
	_, hi := handoffRange(cells)
	handoffs := map[summaryKey]float64{}
	for _, c := range cells {
		if c.Handoffs > 0 {
			handoffs[summaryKey{c.Workload, fmt.Sprint(c.Round), c.Config}] = c.Handoffs
		}
	}
	slow := func(wl, config string, round int) bool {
		v := handoffs[summaryKey{wl, fmt.Sprint(round), config}]
		return v > 0 && v < slowPhase*hi
	}
	sums := map[int]Summaries{}
	for _, r := range rounds {
		sums[r] = Summarize(byRound[r])
	}
	fmt.Fprintln(w, "### sqlite-safe / best peer, round by round")
	fmt.Fprintln(w)
	if hi > 0 {
		fmt.Fprintln(w, "`~` marks a ratio whose two cells ran in different placements of the CPUs (one below half the run's highest handoff rate, the other not).")
		fmt.Fprintln(w)
	}
	header := []string{"workload"}
	for _, r := range rounds {
		header = append(header, fmt.Sprintf("round %d", r))
	}
	var body [][]string
	for _, row := range tableRows(measured) {
		line := []string{row.label()}
		for _, r := range rounds {
			s := sums[r].Get(row.wl.Name, row.stream, safe.Name)
			bc, bs := sums[r].Best(row.wl.Name, row.stream, peers)
			if s == nil || bs == nil {
				line = append(line, "-")
				continue
			}
			v := formatRatio(s.PerSec, bs.PerSec)
			if hi > 0 && slow(row.wl.Name, safe.Name, r) != slow(row.wl.Name, bc.Name, r) {
				v += " ~"
			}
			line = append(line, v)
		}
		body = append(body, line)
	}
	table(w, header, body)
}

// The values of a summary the tables show.
func perSec(s *Summary) float64   { return s.PerSec }
func p99(s *Summary) float64      { return s.P99 }
func p999(s *Summary) float64     { return s.P999 }
func errorsOf(s *Summary) float64 { return float64(s.Errors) }

// val returns f(s), or NaN for a nil s.
func val(s *Summary, f func(*Summary) float64) float64 {
	if s == nil {
		return math.NaN()
	}
	return f(s)
}

// writeSettings writes the settings every configuration read back, each
// distinct value once; synchronous apart for the NORMAL and FULL cells.
func writeSettings(w io.Writer, in ReportInput) {
	type key struct{ config, via string }
	type seen struct {
		version, journal, busy, fk, txlock []string
		sync                               map[string][]string
	}
	all := map[key]*seen{}
	var order []key
	for _, c := range in.Cells {
		if c.Result == nil {
			continue
		}
		wl, _ := LookupWorkload(c.Workload)
		for _, s := range c.Result.Settings {
			k := key{c.Config, s.Via}
			if all[k] == nil {
				all[k] = &seen{sync: map[string][]string{}}
				order = append(order, k)
			}
			a := all[k]
			add := func(list *[]string, v string) {
				if v != "" && !slices.Contains(*list, v) {
					*list = append(*list, v)
				}
			}
			add(&a.version, c.Result.SQLite)
			add(&a.journal, s.JournalMode)
			add(&a.busy, fmt.Sprint(s.BusyTimeout))
			add(&a.fk, fmt.Sprint(s.ForeignKeys))
			add(&a.txlock, s.TxLock)
			l := a.sync[wl.Sync]
			add(&l, fmt.Sprint(s.Synchronous))
			a.sync[wl.Sync] = l
		}
	}
	if len(order) == 0 {
		return
	}
	rank := func(name string) int {
		return slices.IndexFunc(in.Configs, func(c Config) bool { return c.Name == name })
	}
	slices.SortStableFunc(order, func(a, b key) int {
		if d := rank(a.config) - rank(b.config); d != 0 {
			return d
		}
		return strings.Compare(b.via, a.via) // "write tx" before "query"
	})
	fmt.Fprintln(w, "### Settings read back in every cell")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each distinct value seen; `via` is where: inside a write transaction on the writer, or by plain queries")
	fmt.Fprintln(w, "(as reads go). txlock is probed: after a read in the write transaction, a connection of its own with")
	fmt.Fprintln(w, "busy_timeout 0 tries BEGIN IMMEDIATE; `immediate` means it was refused, so the write lock was taken at BEGIN.")
	fmt.Fprintln(w)
	var body [][]string
	for _, k := range order {
		a := all[k]
		var syncs []string
		for _, mode := range []string{"NORMAL", "FULL"} {
			if l := a.sync[mode]; len(l) > 0 {
				syncs = append(syncs, strings.Join(l, "/")+" in "+mode+" cells")
			}
		}
		txlock := strings.Join(a.txlock, "/")
		if txlock == "" {
			txlock = "-"
		}
		body = append(body, []string{k.config, k.via, strings.Join(a.version, "/"), strings.Join(a.journal, "/"),
			strings.Join(a.busy, "/"), strings.Join(syncs, ", "), strings.Join(a.fk, "/"), txlock})
	}
	table(w, []string{"configuration", "via", "SQLite", "journal_mode", "busy_timeout", "synchronous", "foreign_keys", "txlock"}, body)
}

// writeProblems writes every cell that failed or listed a problem, or says
// that none did.
func writeProblems(w io.Writer, cells []Cell) {
	fmt.Fprintln(w, "### Problems")
	fmt.Fprintln(w)
	n := 0
	for _, c := range cells {
		var msgs []string
		if c.Error != "" {
			msgs = append(msgs, c.Error)
		}
		if c.Result != nil {
			msgs = append(msgs, c.Result.Problems...)
		}
		for _, m := range msgs {
			fmt.Fprintf(w, "- round %d, %s, %s: %s\n", c.Round, c.Workload, c.Config, strings.ReplaceAll(m, "\n", " "))
			n++
		}
	}
	for _, c := range cells {
		if c.Result != nil {
			for _, st := range c.Result.Streams {
				if st.Errors > 0 {
					fmt.Fprintf(w, "- round %d, %s, %s: %d %s failed (counted, not a failure of the cell); the first: %s\n",
						c.Round, c.Workload, c.Config, st.Errors, st.Name, strings.ReplaceAll(st.FirstError, "\n", " "))
				}
			}
		}
		if c.Stderr != "" {
			fmt.Fprintf(w, "- round %d, %s, %s wrote to standard error (not a failure): %s\n", c.Round, c.Workload, c.Config, strings.ReplaceAll(c.Stderr, "\n", " "))
		}
	}
	if n == 0 {
		fmt.Fprintf(w, "No failure in %d cells: every count exact (rows inserted = successful inserts, counter sums = successful\n", len(cells))
		fmt.Fprintln(w, "increments), every setting as configured.")
	}
	fmt.Fprintln(w)
}

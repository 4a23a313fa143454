package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestDemo runs a short demo in-process and reads its table back.
func TestDemo(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run([]string{"demo", "-goroutines", "4", "-duration", "300ms"}, &stdout, &stderr) }()
	var code int
	select {
	case code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not finish within 60s")
	}
	out := stdout.String()
	if code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}

	// It fits a 100-column terminal.
	for _, line := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(line); n > outputWidth {
			t.Errorf("a line of %d columns: %q", n, line)
		}
	}

	// The table: a header line naming the runs, then one line per row, with
	// columns at least 3 spaces apart (cells may contain single spaces).
	sep := regexp.MustCompile(`\s{3,}`)
	names := []string{"modernc defaults", "modernc tuned", "sqlite-safe"}
	rows := map[string][]string{}
	header := false
	for _, line := range strings.Split(out, "\n") {
		cells := sep.Split(strings.TrimSpace(line), -1)
		if strings.HasPrefix(line, " ") && strings.Join(cells, "|") == strings.Join(names, "|") {
			header = true
			continue
		}
		if header && len(cells) == 1+len(names) {
			rows[cells[0]] = cells[1:]
		}
	}
	if !header {
		t.Fatalf("no header with columns %q in:\n%s", names, out)
	}
	for _, label := range []string{"transactions/s", "inserts/s", "errors", "lost updates",
		"missing inserts", "mean", "p50", "p99", "p99.9", "max"} {
		if len(rows[label]) != len(names) {
			t.Errorf("row %q missing or not %d columns", label, len(names))
		}
	}
	if t.Failed() {
		t.Fatalf("output:\n%s", out)
	}

	const safe = 2 // the sqlite-safe column
	for _, label := range []string{"errors", "lost updates", "missing inserts"} {
		if got := rows[label][safe]; got != "0" {
			t.Errorf("sqlite-safe %s = %q, want 0", label, got)
		}
	}
	for col, name := range names {
		for _, label := range []string{"transactions/s", "inserts/s"} {
			v, err := strconv.ParseFloat(rows[label][col], 64)
			// modernc defaults may fail nearly every operation.
			if err != nil || v < 0 || (v == 0 && col > 0) {
				t.Errorf("%s %s = %q, want a positive number", name, label, rows[label][col])
			}
		}
		var prev time.Duration
		for _, label := range []string{"p50", "p99", "p99.9", "max"} {
			d, err := time.ParseDuration(rows[label][col])
			if err != nil || d <= 0 || d < prev*98/100 { // buckets are rounded
				t.Errorf("%s %s = %q, want a duration >= the previous quantile", name, label, rows[label][col])
			}
			prev = d
		}
	}
	if !strings.Contains(out, "sqlite-safe: 0 errors and nothing lost") {
		t.Errorf("no reading for sqlite-safe in:\n%s", out)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestUsageErrors checks the exit status and output of bad command lines.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		want     int
		inStderr string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{nil, 2, "usage: sqlite-safe"},
		{[]string{"help", "frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"demo", "-sync", "sometimes"}, 2, `invalid -sync "SOMETIMES"`},
		{[]string{"demo", "-goroutines", "0"}, 2, "-goroutines must be at least 1"},
		{[]string{"demo", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"demo", "-nosuchflag"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if got := run(tt.args, &stdout, &stderr); got != tt.want {
			t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
		}
		if !strings.Contains(stderr.String(), tt.inStderr) || !strings.Contains(stderr.String(), "usage: sqlite-safe") {
			t.Errorf("run(%q) stderr = %q, want it to contain %q and the usage", tt.args, stderr.String(), tt.inStderr)
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q) wrote to stdout: %q", tt.args, stdout.String())
		}
	}
}

// TestHelp checks that help goes to stdout with status 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"help", "help"}, {"help", "demo"}, {"demo", "-h"}} {
		var stdout, stderr bytes.Buffer
		got := run(args, &stdout, &stderr)
		if got != 0 || !strings.Contains(stdout.String()+stderr.String(), "usage: sqlite-safe") {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want 0 and the usage", args, got, stdout.String(), stderr.String())
		}
	}
}

// TestHistogram checks that every value falls in a bucket whose middle is
// within 1.6% of it, and that quantiles come out in order.
func TestHistogram(t *testing.T) {
	t.Parallel()
	for _, v := range []uint64{0, 1, 31, 32, 63, 64, 65, 100, 999, 12345, 1e6, 3.4e6, 1e9, 1 << 40, 1<<63 - 1, 1<<64 - 1} {
		m := middle(bucket(v))
		if diff := float64(m) - float64(v); diff > 0.016*float64(v) || -diff > 0.016*float64(v) {
			t.Errorf("middle(bucket(%d)) = %d, more than 1.6%% off", v, m)
		}
	}
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want*98/100 || got > c.want*102/100 {
			t.Errorf("quantile(%v) = %v, want about %v", c.q, got, c.want)
		}
	}
}

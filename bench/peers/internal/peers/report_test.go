package peers

import (
	"math"
	"strings"
	"testing"
)

// cellOf returns a good cell of one stream.
func cellOf(round int, config, workload, stream string, perSec float64, p999 int64) Cell {
	return Cell{Round: round, Config: config, Workload: workload, Result: &Result{
		Config: config, Workload: workload,
		Streams: []Stream{{Name: stream, Calls: 1, PerSec: perSec, P99: p999 / 2, P999: p999}},
	}}
}

// TestSummarizeMedians: the summary is the median of the good rounds; a
// round with a problem or a runner failure does not count but is counted
// as run.
func TestSummarizeMedians(t *testing.T) {
	bad := cellOf(4, "mattn", "W1-1", "inserts", 1e9, 1)
	bad.Result.Problems = []string{"t has 3 new rows, the successful calls inserted 2"}
	cells := []Cell{
		cellOf(1, "mattn", "W1-1", "inserts", 300, 30),
		cellOf(2, "mattn", "W1-1", "inserts", 100, 10),
		cellOf(3, "mattn", "W1-1", "inserts", 200, 20),
		bad,
		{Round: 5, Config: "mattn", Workload: "W1-1", Error: "run-mattn: exit status 1"},
	}
	s := Summarize(cells).Get("W1-1", "inserts", "mattn")
	if s == nil || s.PerSec != 200 || s.P999 != 20 || s.P99 != 10 || s.Good != 3 || s.Rounds != 5 {
		t.Fatalf("summary %+v, want PerSec 200, P999 20, P99 10, 3 good of 5", s)
	}
}

// TestBestPeer: the best peer is the one with the highest median; a
// configuration with no good round is not a candidate.
func TestBestPeer(t *testing.T) {
	cells := []Cell{
		cellOf(1, "modernc", "W4-8", "reads", 150, 1),
		cellOf(1, "mattn", "W4-8", "reads", 250, 1),
		{Round: 1, Config: "ncruces", Workload: "W4-8", Error: "failed"},
	}
	configs, _ := ParseConfigs("peers")
	c, s := Summarize(cells).Best("W4-8", "reads", configs)
	if s == nil || c.Name != "mattn" || s.PerSec != 250 {
		t.Fatalf("Best = %s %+v, want mattn at 250", c.Name, s)
	}
	if c, s := Summarize(cells).Best("W4-1", "reads", configs); s != nil {
		t.Fatalf("Best of a workload nobody ran = %s %+v, want none", c.Name, s)
	}
}

// TestReportRatio: the report gives, per workload, sqlite-safe's rate, the
// best peer and the best pure-Go peer with the ratios (in bold below 1),
// and the streams of W4-8w as rows of their own.
func TestReportRatio(t *testing.T) {
	two := func(config string, reads, inserts float64) Cell {
		return Cell{Round: 1, Config: config, Workload: "W4-8w", Result: &Result{Streams: []Stream{
			{Name: "reads", Calls: 1, PerSec: reads, P999: 2e6},
			{Name: "inserts", Calls: 1, PerSec: inserts, P999: 3e6},
		}}}
	}
	configs, _ := ParseConfigs("sqlite-safe,modernc,mattn")
	workloads, _ := ParseWorkloads("W1-1,W4-8w")
	var b strings.Builder
	WriteReport(&b, ReportInput{
		Workloads: workloads, Configs: configs,
		Cells: []Cell{
			cellOf(1, "sqlite-safe", "W1-1", "inserts", 90_000, 4_700_000),
			cellOf(1, "modernc", "W1-1", "inserts", 80_000, 1_000_000),
			cellOf(1, "mattn", "W1-1", "inserts", 100_000, 6_600_000),
			two("sqlite-safe", 150_000, 4_000),
			two("modernc", 100_000, 2_000),
			two("mattn", 120_000, 8_000),
		},
	})
	out := b.String()
	for _, want := range []string{
		"| W1-1: autocommit inserts, 1 goroutine | 90.0k | mattn 100.0k | **0.90** | modernc 80.0k | 1.12 | 4.7 ms | 6.6 ms |",
		"| W4-8w reads: 8 readers beside 1 inserting goroutine | 150.0k | mattn 120.0k | 1.25 | modernc 100.0k | 1.50 | 2.0 ms | 2.0 ms |",
		"| W4-8w inserts: 8 readers beside 1 inserting goroutine | 4.0k | mattn 8.0k | **0.50** | modernc 2.0k | 2.00 | 3.0 ms | 3.0 ms |",
		"| W1-1 | 90.0k | 80.0k | 100.0k |",
		"No failure in 6 cells",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks\n%s\nreport:\n%s", want, out)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{FormatRate(950), "950"},
		{FormatRate(85_940), "85.9k"},
		{FormatRate(1_234_000), "1.23M"},
		{FormatRate(math.NaN()), "-"},
		{FormatNs(850), "850 ns"},
		{FormatNs(12_340), "12.3 µs"},
		{FormatNs(4_700_000), "4.7 ms"},
		{FormatNs(1.2e9), "1.20 s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestReportNamesFailedCalls: failed calls do not fail a cell, but the
// report names how many and the first error.
func TestReportNamesFailedCalls(t *testing.T) {
	c := cellOf(2, "modernc", "W1-64", "inserts", 1000, 1)
	c.Result.Streams[0].Errors = 7
	c.Result.Streams[0].FirstError = "database is locked (5) (SQLITE_BUSY)"
	workloads, _ := ParseWorkloads("W1-64")
	configs, _ := ParseConfigs("modernc")
	var b strings.Builder
	WriteReport(&b, ReportInput{Workloads: workloads, Configs: configs, Cells: []Cell{c}})
	want := "- round 2, W1-64, modernc: 7 inserts failed (counted, not a failure of the cell); the first: database is locked (5) (SQLITE_BUSY)"
	if !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "| W1-64 | 7 |") {
		t.Fatalf("the report lacks %q or the errors row; report:\n%s", want, b.String())
	}
}

// TestReportRounds: with handoff rates measured, the report gives their
// range by round, says when they changed by more than 2x, and gives
// sqlite-safe's ratio to the best peer round by round, marking a ratio
// whose two cells ran in different placements of the CPUs.
func TestReportRounds(t *testing.T) {
	at := func(c Cell, handoffs float64) Cell { c.Handoffs = handoffs; return c }
	configs, _ := ParseConfigs("sqlite-safe,modernc")
	workloads, _ := ParseWorkloads("W4-8p")
	var b strings.Builder
	WriteReport(&b, ReportInput{
		Workloads: workloads, Configs: configs,
		Cells: []Cell{
			at(cellOf(1, "sqlite-safe", "W4-8p", "reads", 460_000, 1), 33e6),
			at(cellOf(1, "modernc", "W4-8p", "reads", 430_000, 1), 32e6),
			at(cellOf(2, "modernc", "W4-8p", "reads", 440_000, 1), 30e6),
			at(cellOf(2, "sqlite-safe", "W4-8p", "reads", 280_000, 1), 5.5e6),
		},
	})
	out := b.String()
	for _, want := range []string{
		"median 31.00M/s, lowest 5.50M/s, highest 33.00M/s",
		"changed by 6.0x during the run (1 of 4 cells ran below half the highest)",
		"| 1 | 32.00M | 32.50M | 33.00M |",
		"| 2 | 5.50M | 17.75M | 30.00M |",
		"| W4-8p | 1.07 | **0.64** ~ |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks\n%s\nreport:\n%s", want, out)
		}
	}

	// Without measurements (runs recorded before them), neither the
	// section nor the marks.
	b.Reset()
	WriteReport(&b, ReportInput{
		Workloads: workloads, Configs: configs,
		Cells: []Cell{
			cellOf(1, "sqlite-safe", "W4-8p", "reads", 460_000, 1),
			cellOf(1, "modernc", "W4-8p", "reads", 430_000, 1),
			cellOf(2, "modernc", "W4-8p", "reads", 440_000, 1),
			cellOf(2, "sqlite-safe", "W4-8p", "reads", 280_000, 1),
		},
	})
	out = b.String()
	if strings.Contains(out, "CPUs during") || strings.Contains(out, "~") || !strings.Contains(out, "| W4-8p | 1.07 | **0.64** |") {
		t.Errorf("without handoff rates: want no CPU section, no marks, and the ratios; report:\n%s", out)
	}
}

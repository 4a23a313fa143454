package peers

import (
	"slices"
	"strings"
	"testing"
)

func TestParseWorkloads(t *testing.T) {
	for _, tc := range []struct {
		list string
		want []string
	}{
		{"W4-8", []string{"W4-8"}},
		{"W4", []string{"W4-1", "W4-8", "W4-8w", "W4-1p", "W4-8p"}},
		{"W6, W1-1", []string{"W1-1", "W6"}}, // the order of the tables, spaces allowed
		{"W1-1,W1", []string{"W1-1", "W1-8", "W1-64", "W1-1p"}},
		{"prepared", []string{"W1-1p", "W4-1p", "W4-8p"}},
		{"limits", []string{"L1-1", "L2-1", "L4-1", "Ltx"}},
		{"W2,limits", []string{"W2-64", "L1-1", "L2-1", "L4-1", "Ltx"}},
	} {
		ws, err := ParseWorkloads(tc.list)
		if err != nil {
			t.Errorf("ParseWorkloads(%q): %v", tc.list, err)
			continue
		}
		var got []string
		for _, w := range ws {
			got = append(got, w.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ParseWorkloads(%q) = %v, want %v", tc.list, got, tc.want)
		}
	}
	all, err := ParseWorkloads("all")
	if err != nil || len(all) != len(Workloads) {
		t.Errorf("ParseWorkloads(all) = %d workloads, %v; want %d", len(all), err, len(Workloads))
	}
	for _, bad := range []string{
		"",       // nothing chosen
		"W9",     // no such workload or family
		"W1-1,",  // an empty item
		"w1-1",   // names are case-sensitive
		"W4-8 x", // not a list
	} {
		if _, err := ParseWorkloads(bad); err == nil || !strings.Contains(err.Error(), "W1-1, W1-8") {
			t.Errorf("ParseWorkloads(%q): error %v, want one listing the workloads", bad, err)
		}
	}
}

func TestParseConfigs(t *testing.T) {
	for _, tc := range []struct {
		list string
		want []string
	}{
		{"run-mattn", []string{"mattn", "mattn-2pools"}},
		{"modernc-limit,sqlite-safe", []string{"sqlite-safe", "modernc-limit"}},
		{"peers", []string{"modernc", "modernc-2pools", "mattn", "mattn-2pools", "ncruces", "ncruces-2pools"}},
	} {
		cs, err := ParseConfigs(tc.list)
		if err != nil {
			t.Errorf("ParseConfigs(%q): %v", tc.list, err)
			continue
		}
		var got []string
		for _, c := range cs {
			got = append(got, c.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ParseConfigs(%q) = %v, want %v", tc.list, got, tc.want)
		}
	}
	if _, err := ParseConfigs("sqlite"); err == nil {
		t.Error(`ParseConfigs("sqlite"): no error, want one (no such configuration)`)
	}
}

// TestWorkloadTable: every workload's name is unique and its family is
// what the tables group it by; limits are exactly the L workloads.
func TestWorkloadTable(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range Workloads {
		if seen[w.Name] {
			t.Errorf("workload %s twice", w.Name)
		}
		seen[w.Name] = true
		if w.Limit() != strings.HasPrefix(w.Name, "L") {
			t.Errorf("%s: Limit() = %v", w.Name, w.Limit())
		}
		if w.G < 1 || (w.Sync != "NORMAL" && w.Sync != "FULL") || len(w.Streams()) == 0 {
			t.Errorf("%s: G %d, Sync %q, streams %v", w.Name, w.G, w.Sync, w.Streams())
		}
	}
	for _, c := range Configs {
		if c.Limit && c.Peer {
			t.Errorf("%s is both a limit and a peer", c.Name)
		}
	}
}

// Command run-safe runs one cell of the peers benchmark on sqlite-safe; see
// bench/peers/README.md. cmd/peers runs it.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/bench/peers/internal/peers"

	_ "modernc.org/sqlite" // registers "sqlite", for the probe
)

// safeDSN is sqlite-safe's default DSN: the path alone, and
// _synchronous when the workload wants another mode than the default
// NORMAL.
func safeDSN(path, sync string) string {
	if sync == "NORMAL" {
		return path
	}
	return path + "?_synchronous=" + sync
}

func main() {
	peers.Main(peers.Family{
		BeforeClose: writeStats,
		Configs: map[string]peers.Opener{
			"sqlite-safe": peers.OnePool("sqlite-safe", safeDSN),
		},
		// sqlite-safe runs on modernc.org/sqlite: the probe uses the same
		// SQLite library directly.
		ProbeDriver: "sqlite",
		ProbeDSN:    func(path string) string { return "file:" + path + "?_pragma=busy_timeout(0)" },
	})
}

// writeStats writes the driver's counters of the cell to the file that
// RUN_SAFE_STATS names, if it does, for profiling by hand.
func writeStats(h *peers.Handles) {
	f := os.Getenv("RUN_SAFE_STATS")
	if f == "" {
		return
	}
	st, err := sqlitesafe.GetStats(h.Writer)
	if err != nil {
		fmt.Fprintln(os.Stderr, "run-safe:", err)
		return
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "run-safe:", err)
	}
}

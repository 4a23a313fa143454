// Command run-safe runs one cell of the peers benchmark on sqlite-safe; see
// bench/peers/README.md. cmd/peers runs it.
package main

import (
	"github.com/sqlitesafe/sqlitesafe/bench/peers/internal/peers"

	_ "github.com/sqlitesafe/sqlitesafe" // registers "sqlite-safe"
	_ "modernc.org/sqlite"               // registers "sqlite", for the probe
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
		Configs: map[string]peers.Opener{
			"sqlite-safe": peers.OnePool("sqlite-safe", safeDSN),
		},
		// sqlite-safe runs on modernc.org/sqlite: the probe uses the same
		// SQLite library directly.
		ProbeDriver: "sqlite",
		ProbeDSN:    func(path string) string { return "file:" + path + "?_pragma=busy_timeout(0)" },
	})
}

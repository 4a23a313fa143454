// Command run-mattn runs one cell of the peers benchmark on
// github.com/mattn/go-sqlite3 (cgo), tuned, in one pool or two; see
// bench/peers/README.md. cmd/peers runs it. It needs cgo and a C compiler.
package main

import (
	"github.com/sqlitesafe/sqlitesafe/bench/peers/internal/peers"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"
)

// tunedDSN is mattn/go-sqlite3 with WAL, a 5 s busy timeout, the
// synchronous mode asked for and BEGIN IMMEDIATE, in its own DSN keys.
func tunedDSN(path, sync string) string {
	return "file:" + path + "?_busy_timeout=5000&_journal_mode=WAL&_synchronous=" + sync + "&_txlock=immediate"
}

func main() {
	peers.Main(peers.Family{
		Configs: map[string]peers.Opener{
			"mattn":        peers.OnePool("sqlite3", tunedDSN),
			"mattn-2pools": peers.TwoPools("sqlite3", tunedDSN),
		},
		// mattn sets a 5 s busy timeout unless told otherwise.
		ProbeDriver: "sqlite3",
		ProbeDSN:    func(path string) string { return "file:" + path + "?_busy_timeout=0" },
	})
}

// Command run-modernc runs one cell of the peers benchmark on
// modernc.org/sqlite, tuned, in one pool or two, or the limits on one
// connection; it also creates the template database. See
// bench/peers/README.md. cmd/peers runs it.
package main

import (
	"github.com/sqlitesafe/sqlitesafe/bench/peers/internal/peers"

	_ "modernc.org/sqlite" // registers "sqlite"
)

// tunedDSN is modernc.org/sqlite as the usual "database is locked" guides
// configure it: WAL, a 5 s busy timeout, the synchronous mode asked for and
// BEGIN IMMEDIATE.
func tunedDSN(path, sync string) string {
	return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")&_txlock=immediate"
}

func main() {
	peers.Main(peers.Family{
		Configs: map[string]peers.Opener{
			"modernc":        peers.OnePool("sqlite", tunedDSN),
			"modernc-2pools": peers.TwoPools("sqlite", tunedDSN),
			"modernc-limit":  peers.OneConn("sqlite", tunedDSN),
		},
		ProbeDriver: "sqlite",
		ProbeDSN:    func(path string) string { return "file:" + path + "?_pragma=busy_timeout(0)" },
	})
}

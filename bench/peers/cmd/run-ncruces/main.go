// Command run-ncruces runs one cell of the peers benchmark on
// github.com/ncruces/go-sqlite3's database/sql driver, tuned, in one pool
// or two; see bench/peers/README.md. cmd/peers runs it.
package main

import (
	"github.com/sqlitesafe/sqlitesafe/bench/peers/internal/peers"

	_ "github.com/ncruces/go-sqlite3/driver" // registers "sqlite3"
)

// tunedDSN is ncruces/go-sqlite3 with a 5 s busy timeout (first, as its
// documentation asks), WAL, the synchronous mode asked for and BEGIN
// IMMEDIATE (its default, given anyway).
func tunedDSN(path, sync string) string {
	return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")&_txlock=immediate"
}

func main() {
	peers.Main(peers.Family{
		Configs: map[string]peers.Opener{
			"ncruces":        peers.OnePool("sqlite3", tunedDSN),
			"ncruces-2pools": peers.TwoPools("sqlite3", tunedDSN),
		},
		// Without any _pragma the driver sets a busy timeout of a minute.
		ProbeDriver: "sqlite3",
		ProbeDSN:    func(path string) string { return "file:" + path + "?_pragma=busy_timeout(0)" },
	})
}

// Package dqlite runs sqlite-safe on a dqlite cluster: imported once,
//
//	import _ "github.com/sqlitesafe/sqlitesafe/dqlite"
//
// it registers the dqlite:// scheme with the sqlite-safe driver, so that the same application
// code (database/sql, sqlx, gorm, bun, goose) runs on a replicated cluster by changing the DSN:
//
//	db, err := sql.Open("sqlite-safe", "dqlite://10.0.0.1:9001,10.0.0.2:9001,10.0.0.3:9001/app.db")
//
// The connections go through go-dqlite's pure-Go client (github.com/canonical/go-dqlite, package
// driver): no cgo, no C compiler. Build with -tags nosqlite3, so that go-dqlite's client package
// does not compile github.com/mattn/go-sqlite3; a build without the tag fails with an undefined
// name that says so:
//
//	go build -tags nosqlite3 ./...
//
// What carries over from a local file: the writer queue (per database and cluster, FIFO, bounded
// by the context and by the busy timeout plus the failover timeout), group commit, BEGIN
// IMMEDIATE, transactions begun as SQL text, connection-local state on a pinned connection,
// read-only transactions that refuse writes, readers that never wait for the writer queue
// (connections to the leader with PRAGMA query_only), Stats (with Stats.Cluster) and the slow-lock
// warnings.
//
// What the engine does for dqlite: every autocommit write runs in a transaction of the driver's
// with a marker row (table _sqlitesafe_commit, one row per handle) written just before COMMIT; a
// COMMIT whose connection to the leader is lost (a failover) is resolved on the new leader by
// reading the marker, so a write reported successful committed once, and a write reported failed
// did not commit: sqlitesafe.ErrNotCommitted, or sqlitesafe.ErrOutcomeUnknown when no leader
// answered within the failover timeout (DSN key _failover_timeout, default 20 s). Autocommit
// writes found not committed are run again by the driver, and a BEGIN that finds its connection
// lost is sent again on a connection to the new leader. driver.ErrBadConn never reaches
// database/sql once a request may have reached a node. "database is locked" from another client
// at BEGIN IMMEDIATE is waited out within the busy timeout. Foreign keys are off unless the DSN
// asks (_foreign_keys=on), as in SQLite. The statements that abort a dqlite 1.11 leader never
// reach it: an autocommit RETURNING runs inside the driver's transaction; journal_mode changes
// and page_size assignments are refused (journal_mode=WAL is answered wal); ATTACH, DETACH,
// wal_checkpoint and scripts of several statements with arguments are refused with errors that
// say why. Checkpoint and Backup return sqlitesafe.ErrNotAvailable.
//
// NOTES.md has the measurements of plain go-dqlite this is built against.
package dqlite

// Package engine is the seam between the sqlite-safe driver and the engines
// it can run on other than modernc.org/sqlite's local files. An engine is
// registered for a DSN scheme by a package of its own (the dqlite module's
// import registers "dqlite"); the driver then opens the physical connections
// of a database through it, and runs everything else (the writer queue,
// group commit, routing, transactions, Stats) as it does for a file.
//
// The package is internal: only the driver and its nested modules (which
// share its import path) use it.
package engine

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"
	"time"
)

// Engine opens the databases of one scheme.
type Engine interface {
	// Database returns the database t names. It connects to nothing
	// yet. Each call returns a Database of its own: one per handle.
	Database(t Target) (Database, error)
}

// Target is a database of an engine, as a DSN names it.
type Target struct {
	Addrs           []string      // the nodes, host:port
	Name            string        // the database's name on them
	BusyTimeout     time.Duration // bounds a wait for the write lock held by another client
	FailoverTimeout time.Duration // bounds a wait for a leader
}

// Role is what a physical connection is for.
type Role uint8

const (
	// Writer is the handle's shared writer, or a logical connection's own
	// read-write connection.
	Writer Role = iota
	// Reader is a connection that refuses writes (PRAGMA query_only).
	Reader
)

// Database is one handle's database on an engine.
type Database interface {
	// Open connects a physical connection for role and sets it up.
	Open(ctx context.Context, role Role) (Conn, error)
	// Leader is the address of the node that serves the database now,
	// "" when none is known.
	Leader(ctx context.Context) string
	// Stats counts what the engine did.
	Stats() Stats
	// Close releases what the Database holds (not its connections).
	Close() error
}

// Conn is a physical connection of an engine. Its errors carry SQLite's
// result codes (Code); an error after which the request may nevertheless
// have been applied is a *LostError, never driver.ErrBadConn.
type Conn interface {
	driver.Conn
	driver.ExecerContext
	driver.QueryerContext
	driver.ConnBeginTx
	driver.ConnPrepareContext

	// InTx reports whether a transaction is open on the connection.
	InTx(ctx context.Context) (bool, error)
	// Commit ends the open write transaction with query: COMMIT or END,
	// or the RELEASE of a savepoint (which commits when the savepoint is
	// the outermost). nil: done. An error wrapping ErrNotCommitted: it is
	// not committed and never will be. ErrOutcomeUnknown: the engine
	// could not find out. Any other error: query failed, and nothing was
	// committed.
	Commit(ctx context.Context, query string) error
}

// Stats is what an engine counts for a Database.
type Stats struct {
	Leader          string // the address serving the database at the last connection
	LeaderChanges   int64  // connections made to another leader than the one before
	Resolved        int64  // interrupted COMMITs found committed on the new leader
	NotCommitted    int64  // interrupted COMMITs (or transactions) found not committed
	OutcomeUnknown  int64  // interrupted COMMITs no leader could answer for in time
	BeginRetries    int64  // BEGIN IMMEDIATE retried because another client held the lock
	ConnectionsLost int64  // requests that failed with the connection to the node
}

var (
	// ErrNotCommitted is wrapped by the error of a write transaction that
	// failed and is known not to have committed: running it again applies
	// it once.
	ErrNotCommitted = errors.New("sqlitesafe: not committed")
	// ErrOutcomeUnknown is wrapped by the error of a COMMIT that may or
	// may not have committed.
	ErrOutcomeUnknown = errors.New("sqlitesafe: outcome unknown")
)

// LostError is a request that failed with the connection that carried it:
// the node may have applied it.
type LostError struct {
	Op  string // what was asked
	Err error  // what the connection said
}

func (e *LostError) Error() string {
	return "sqlitesafe: the connection to the node was lost during " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause. It is never driver.ErrBadConn: database/sql
// would run the request again on another connection.
func (e *LostError) Unwrap() error { return e.Err }

// Coder is an error with an SQLite extended result code.
type Coder interface {
	Code() int
}

var registry struct {
	sync.Mutex
	m map[string]Engine
}

// Register makes e the engine of DSNs that begin with scheme + "://".
func Register(scheme string, e Engine) {
	registry.Lock()
	defer registry.Unlock()
	if registry.m == nil {
		registry.m = make(map[string]Engine)
	}
	registry.m[scheme] = e
}

// Lookup returns the engine of scheme, or nil.
func Lookup(scheme string) Engine {
	registry.Lock()
	defer registry.Unlock()
	return registry.m[scheme]
}

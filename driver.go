// Package sqlitesafe is a database/sql driver for SQLite that ends
// "database is locked" inside a process.
//
//	import _ "github.com/sqlitesafe/sqlitesafe"
//
//	db, err := sql.Open("sqlite-safe", "app.db")
//
// It wraps the pure-Go modernc.org/sqlite (no cgo) and is a drop-in
// replacement for it: the DSN keys of modernc.org/sqlite and of
// github.com/mattn/go-sqlite3 work.
//
// # DSN
//
// A DSN is a file path or a "file:" URI, followed by '?' and parameters:
//
//	app.db
//	file:/var/lib/app/app.db?_busy_timeout=10s&_pragma=cache_size(-20000)
//	app.db?mode=ro
//	:memory:
//
// SQLite's URI parameters (mode, cache, vfs, immutable, nolock, ...) work
// on plain paths too: the driver always hands SQLite a URI. Keys that start
// with '_' are checked: an unknown one, or a bad value, is an error that
// names the key and the values it takes. ParseDSN and Config.FormatDSN
// convert between a DSN and a Config; NewConnector opens a Config with
// sql.OpenDB.
//
// Unless the DSN says otherwise a database is put in WAL mode, with a 5 s
// busy timeout and synchronous=NORMAL, and each setting is read back after it
// is set: opening fails with ErrWALUnavailable if WAL did not take.
//
// # Transactions
//
// A write transaction (BeginTx without ReadOnly) begins with BEGIN
// IMMEDIATE, so it never fails halfway for want of the write lock. BEGIN,
// SAVEPOINT, COMMIT, END, RELEASE and ROLLBACK sent as SQL on a pinned
// *sql.Conn are recognised: a BEGIN becomes BEGIN IMMEDIATE and the writer
// lock is held until the transaction ends. A transaction begun by SQL text
// and left open when the connection goes back to the pool is rolled back.
//
// # Readers and the writer
//
// All the handles of a process on one database file share one writer queue.
// Every write, and every write transaction, waits its turn in it, first in
// first out; autocommit writes queued behind each other are committed
// together, each with its own result (a group commit). Statements that
// cannot write, and read-only transactions, run on read-only (mode=ro)
// connections and never wait for the writer: in WAL mode they see the last
// committed data while a write transaction is open. A statement a reader
// refuses as a write runs again on the writer.
//
// A connection that creates state of its own (a TEMP table, ATTACH, a
// PRAGMA that sets a connection setting) keeps a SQLite connection of its
// own from then on, so that its later statements, reads included, see that
// state. An in-memory database (":memory:", mode=memory, vfs=memdb) is one
// database for the whole *sql.DB, served by one SQLite connection.
//
// # Context and cancellation
//
// A wait for the writer lock ends when the caller's context ends or when the
// busy timeout passes, whichever is first; the error is a
// *LockTimeoutError that says how long the caller waited and what holds the
// lock, since when, and where it took it (the file:line of its BeginTx,
// Exec or Query). It wraps the context's error, or matches ErrLockTimeout.
// Statements already running stop when their context ends, as in
// modernc.org/sqlite.
//
// # Errors
//
// Errors from SQLite are modernc.org/sqlite's *sqlite.Error, reachable with
// errors.As; its Code method gives the extended result code. The driver's
// own errors are the sentinels ErrInvalidDSN (with *DSNError),
// ErrLockTimeout (with *LockTimeoutError), ErrReaderTimeout, ErrReadOnly,
// ErrWALUnavailable, ErrSetting and ErrClosed.
package sqlitesafe

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
)

// DriverName is the name the driver is registered under.
const DriverName = "sqlite-safe"

func init() {
	sql.Register(DriverName, &Driver{})
}

// Driver is the sqlite-safe database/sql driver. sql.Open("sqlite-safe",
// dsn) is all most programs need; NewConnector builds a handle from a
// Config.
type Driver struct {
	mu     sync.Mutex
	conns  map[string]*connector // for Open, by DSN
	handle *connector            // the handle this Driver is the Driver of, or nil
}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

// OpenConnector implements driver.DriverContext: sql.Open calls it, so a
// bad DSN is reported by sql.Open.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	return newConnector(d, cfg)
}

// Open implements driver.Driver. database/sql does not call it (it uses
// OpenConnector); a direct call opens a connection on a connector shared by
// all Open calls with the same DSN, so that they share one writer.
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	d.mu.Lock()
	c, ok := d.conns[dsn]
	if !ok {
		cfg, err := ParseDSN(dsn)
		if err == nil {
			c, err = newConnector(d, cfg)
		}
		if err != nil {
			d.mu.Unlock()
			return nil, err
		}
		if d.conns == nil {
			d.conns = make(map[string]*connector)
		}
		d.conns[dsn] = c
	}
	d.mu.Unlock()
	return c.Connect(context.Background())
}

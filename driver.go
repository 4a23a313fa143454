// Package sqlitesafe is a database/sql driver for SQLite that ends
// "database is locked" inside a process, and makes it rare and visible
// across processes.
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
// The keys, and the values each takes (the README has a line on each):
//
//	mode                           ro, rw, rwc or memory
//	vfs                            the name of a registered VFS
//	immutable                      1, 0, yes, no, true, false, on or off
//	cache                          shared or private
//	_busy_timeout, _timeout        a positive number of milliseconds or a duration such as 5s
//	_journal_mode, _journal        DELETE, TRUNCATE, PERSIST, MEMORY, WAL or OFF
//	_synchronous, _sync            OFF, NORMAL, FULL or EXTRA, or 0 to 3
//	_foreign_keys, _fk             1, 0, yes, no, true, false, on or off
//	_txlock                        deferred, immediate or exclusive
//	_auto_vacuum, _vacuum          NONE, FULL or INCREMENTAL, or 0 to 2
//	_query_only                    1, 0, yes, no, true, false, on or off
//	_pragma                        name(value), name=value or name, holding one PRAGMA without ';'
//	_time_format                   sqlite, datetime or string_no_monotonic
//	_time_integer_format           unix, unix_milli, unix_micro or unix_nano
//	_timezone                      a name time.LoadLocation knows, such as UTC or Europe/Berlin
//	_inttotime                     1, t, true, 0, f or false
//	_texttotime                    1, t, true, 0, f or false
//	_dqs                           1, t, true, 0, f or false
//	_defensive                     1, t, true, 0, f or false
//	_error_rc                      1, t, true, 0, f or false
//	_writer_queue                  on or off
//	_group_commit                  on or off
//	_max_readers                   a whole number, 0 or more
//	_process_queue                 on or off
//	_network_fs                    refuse or allow
//	_slow_hold                     a positive number of milliseconds, a duration such as 500ms, or 0, off or a negative one to turn the warning off
//	_slow_wait                     a positive number of milliseconds, a duration such as 500ms, or 0, off or a negative one to turn the warning off
//	_journal_size_limit            a positive number of bytes, or -1 for no limit
//	_checkpointing                 background or commit
//	_cache_size                    a whole number, not 0: pages if positive, KiB if negative
//	_case_sensitive_like, _cslike  1, 0, yes, no, true, false, on or off
//	_ignore_check_constraints      1, 0, yes, no, true, false, on or off
//	_recursive_triggers, _rt       1, 0, yes, no, true, false, on or off
//	_secure_delete                 1, 0, yes, no, true, false, on or off, or FAST
//	_writable_schema               1, 0, yes, no, true, false, on or off
//	_locking_mode, _locking        NORMAL
//	_mutex                         no or full
//	_stmt_cache_size               a whole number, 0 or more
//	_loc                           auto or UTC
//	_defer_foreign_keys, _defer_fk 1, 0, yes, no, true, false, on or off
//	_auth, _auth_user, _auth_pass, _auth_crypt, _auth_salt refused, whatever the value
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
// # Several processes
//
// The writers of every sqlite-safe process on a file also queue across
// processes, on an exclusive flock of a side file next to the database,
// FILE-writer.lock, taken before BEGIN IMMEDIATE and released after COMMIT
// or ROLLBACK: a waiting process sleeps in the kernel until the lock is free
// instead of polling in SQLite's busy handler, and a process that dies drops
// the lock with it. The wait is bounded by the busy timeout and the caller's
// context like the wait inside the process. _process_queue=off turns it off;
// programs using other drivers on the same file still meet sqlite-safe's
// writers in SQLite's busy handler.
//
// Before the first connection opens a file, the driver checks what SQLite
// reports late or not at all: a database on a network or FUSE file system
// is refused (ErrNetworkFS; _network_fs=allow opens it knowingly), a missing
// or unwritable directory fails at once with what to do, a database file
// the process may not write serves reads and refuses writes at once with
// ErrReadOnly, and a -wal without its -shm (or a -shm whose -wal is gone) is
// explained in the log. Nothing is ever deleted.
//
// # Diagnostics
//
// GetStats returns, for the file a *sql.DB is open on, the writer queue's
// counters and latency histograms, who holds the lock now and where it took
// it, SQLite's busy errors by code, the readers, and the -wal file's size.
// A writer that holds the lock longer than _slow_hold (1 s) or waits longer
// than _slow_wait (1 s) is reported once through log/slog (Config.Logger, or
// slog.Default), with the holder's file:line.
//
// Checkpoint checkpoints the WAL under the writer queue; the WAL is bounded
// by journal_size_limit (64 MiB unless _journal_size_limit says otherwise),
// and closing the last handle of the process on a file checkpoints it.
// Backup copies a live database without holding the writers up. Raw and
// RawRead reach modernc.org/sqlite's own connection (backup API, Serialize,
// hooks) safely with respect to the writer queue.
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
// ErrWALUnavailable, ErrNetworkFS, ErrSetting, ErrClosed and
// ErrNotSQLiteSafe.
//
// # ORMs
//
// Tools built on database/sql need only the driver name:
//
//	sqlx:  sqlx.Open("sqlite-safe", dsn)
//	gorm:  gorm.Open(sqlite.New(sqlite.Config{DriverName: "sqlite-safe", DSN: dsn}), &gorm.Config{})
//	bun:   bun.NewDB(sqldb, sqlitedialect.New())
//	goose: goose.NewProvider(goose.DialectSQLite3, sqldb, fsys)
//
// where sqldb comes from sql.Open("sqlite-safe", dsn); goose's package-level
// functions take goose.SetDialect("sqlite3").
//
// Their transactions (gorm's Transaction, bun's RunInTx, goose's
// migrations) are write transactions: BEGIN IMMEDIATE, in the writer queue.
// The compat module's tests and examples show each tool at work, with what
// it needs (github.com/sqlitesafe/sqlitesafe/compat).
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
	return newConnector(cfg)
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
			c, err = newConnector(cfg)
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

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
//	_read_anchor                   on or off
//	_process_queue                 on or off
//	_network_fs                    refuse or allow
//	_failover_timeout              a positive number of milliseconds or a duration such as 5s
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
// Importing the package configures SQLite for the whole process, once, at
// init: SQLite's mutexes (each database's wal-index mutex is shared by
// every connection) become ones that never hand the processor to a waiter
// on release, except to a writer connection, which comes first at them;
// every page cache gets a group of its own, with no mutex shared by all
// connections (sqlite3_release_memory and the soft heap limit then no
// longer shrink page caches); and the unix VFS sleeps through Go's
// scheduler, so that a writer is not starved by reading goroutines. Plain
// modernc.org/sqlite connections of the program run on them too. The
// environment variable SQLITESAFE_SCHED=off, set when the program starts,
// leaves SQLite as modernc.org/sqlite ships it.
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
// AllStats returns the Stats of every file open in the process, for
// exporters: ExpvarStats is ready for expvar.Publish, and the module
// github.com/sqlitesafe/sqlitesafe/prometheus has a Prometheus collector.
// Through a driver wrapper (otelsql, sqlmw, sqlhooks) db.Driver() is the
// wrapper's and GetStats cannot see the handle: GetStatsFile,
// CheckpointFile and BackupFile reach it by the database's path. Call sites
// in messages skip the frames of database/sql, the wrappers and the ORMs.
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
// ErrWALUnavailable, ErrNetworkFS, ErrSetting, ErrClosed, ErrNotSQLiteSafe
// and ErrNotOpen.
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
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"

	_ "github.com/sqlitesafe/sqlitesafe/internal/sqlitesched" // before SQLite initializes
)

// DriverName is the name the driver is registered under.
const DriverName = "sqlite-safe"

func init() {
	sql.Register(DriverName, &Driver{})
}

// Driver is the sqlite-safe database/sql driver. sql.Open("sqlite-safe",
// dsn) is all most programs need; NewConnector builds a handle from a
// Config.
//
// A driver wrapper (tracing, hooks, middleware) that wraps only
// driver.Driver calls Open for every connection; one that wraps
// OpenConnector may not pass database/sql's Close on to the connector. Either
// way the handle behind the wrapper opens its SQLite connections with its
// first connection and closes them, checkpointing the -wal as db.Close
// does, when its last connection closes; the next connection opens the
// database again. An in-memory database stays open between connections
// (closing it would lose it), until a wrapper passes Close on (otelsql
// does; for Open, it stays). The handle's metrics, checkpoint and backup
// are reached by file name: GetStatsFile, CheckpointFile, BackupFile.
type Driver struct {
	mu     sync.Mutex
	conns  map[string]*lease // for Open, by DSN
	handle *connector        // the handle this Driver is the Driver of, or nil
	lease  *lease            // the lease this Driver is the Driver of, or nil
}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

// OpenConnector implements driver.DriverContext: sql.Open calls it, so a
// bad DSN is reported by sql.Open.
//
// Called by database/sql, it returns the handle's connector, which
// database/sql closes with the *sql.DB. Called by anything else (a driver
// wrapper, which may not pass Close on), it returns a connector whose
// SQLite connections live only as long as the logical connections opened on
// it, as Open's do.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if calledByDatabaseSQL() {
		return newConnector(cfg)
	}
	l, err := newLease(d, cfg)
	if err != nil {
		return nil, err
	}
	// A Driver of its own, as a connector has, so that GetStats of a
	// *sql.DB opened on this connector directly finds the lease.
	l.drv = &Driver{lease: l}
	return &leaseConnector{l: l}, nil
}

// calledByDatabaseSQL reports whether OpenConnector's caller is package
// database/sql (sql.Open) rather than a wrapper.
func calledByDatabaseSQL() bool {
	var pcs [8]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "github.com/sqlitesafe/sqlitesafe.") {
			return strings.HasPrefix(f.Function, "database/sql.")
		}
		if !more {
			return false
		}
	}
}

// Open implements driver.Driver. database/sql does not call it (it uses
// OpenConnector); a wrapper that wraps only driver.Driver does, once per
// connection. The connections opened with the same DSN share one handle,
// and so one writer; the handle closes with their last connection and
// opens again with the next.
func (d *Driver) Open(dsn string) (driver.Conn, error) {
	d.mu.Lock()
	l, ok := d.conns[dsn]
	if !ok {
		cfg, err := ParseDSN(dsn)
		if err == nil {
			l, err = newLease(d, cfg)
		}
		if err != nil {
			d.mu.Unlock()
			return nil, err
		}
		if d.conns == nil {
			d.conns = make(map[string]*lease)
		}
		d.conns[dsn] = l
	}
	d.mu.Unlock()
	return l.connect(context.Background())
}

// lease keeps a handle open while logical connections are open on it: the
// first connection opens it, the last one to close closes it (database/sql
// never sees this handle, so never closes it). An in-memory database's
// handle stays open, since closing it would lose the database, until its
// leaseConnector is closed.
type lease struct {
	drv *Driver // what its connector's Driver method returns
	cfg *Config // validated, owned

	mu     sync.Mutex
	c      *connector // the open handle, or nil
	refs   int        // logical connections counted on c
	closed bool       // the leaseConnector was closed: an in-memory handle closes too
}

func newLease(d *Driver, cfg *Config) (*lease, error) {
	if cfg == nil {
		return nil, &DSNError{Reason: "nil *Config"}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &lease{drv: d, cfg: cfg.Clone()}, nil
}

// current returns the open handle, or nil.
func (l *lease) current() *connector {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

// connect opens a logical connection, opening the handle if none is open. A
// connection that opens while the last one closes gets a new handle: the
// closing one is out of the lease before it closes.
func (l *lease) connect(ctx context.Context) (driver.Conn, error) {
	l.mu.Lock()
	c := l.c
	if c == nil {
		var err error
		if c, err = newConnector(l.cfg); err != nil {
			l.mu.Unlock()
			return nil, err
		}
		c.lease = l
		l.c = c
	}
	l.refs++
	l.mu.Unlock()
	lc, err := c.Connect(ctx)
	if err != nil {
		return nil, errors.Join(err, l.release(c))
	}
	return lc, nil
}

// release counts off one logical connection of c and closes c after the
// last one.
func (l *lease) release(c *connector) error {
	l.mu.Lock()
	l.refs--
	last := l.refs == 0 && l.c == c && (!c.memory || l.closed)
	if last {
		l.c = nil
	}
	l.mu.Unlock()
	if !last {
		return nil
	}
	return c.Close()
}

// connClosed is told by each logical connection as it closes, so that a
// leased handle closes with its last connection; an error closing it is
// joined to *errp, the connection's Close error.
func (c *connector) connClosed(errp *error) {
	if c.lease == nil {
		return
	}
	if err := c.lease.release(c); err != nil {
		*errp = errors.Join(*errp, err)
	}
}

// leaseConnector is the connector OpenConnector gives a wrapper.
type leaseConnector struct{ l *lease }

var (
	_ driver.Connector = (*leaseConnector)(nil)
	_ io.Closer        = (*leaseConnector)(nil)
)

// Connect implements driver.Connector.
func (lc *leaseConnector) Connect(ctx context.Context) (driver.Conn, error) {
	return lc.l.connect(ctx)
}

// Driver implements driver.Connector.
func (lc *leaseConnector) Driver() driver.Driver { return lc.l.drv }

// Close implements io.Closer, for the wrappers that pass database/sql's
// Close on. A file's handle closes with its last connection anyway
// (database/sql closes every connection, those in use when they are put
// back); an in-memory database's closes now, or with its last connection.
func (lc *leaseConnector) Close() error {
	l := lc.l
	l.mu.Lock()
	l.closed = true
	c := l.c
	if l.refs > 0 || c == nil {
		l.mu.Unlock()
		return nil
	}
	l.c = nil
	l.mu.Unlock()
	return c.Close()
}

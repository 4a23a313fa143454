package sqlitesafe

import (
	"log/slog"
	"maps"
	"slices"
	"time"
)

// DefaultBusyTimeout is how long a connection waits for the write lock (the
// writer queue inside the process, SQLite's busy handler across processes)
// when the DSN does not say: the _busy_timeout key, Config.BusyTimeout.
const DefaultBusyTimeout = 5 * time.Second

// DefaultFailoverTimeout is the failover timeout of a dqlite:// DSN that
// sets none: longer than the failovers measured on a three-node loopback
// cluster (4.5 to 10.5 s), which the default busy timeout is not.
const DefaultFailoverTimeout = 20 * time.Second

// Defaults of the diagnostics and the WAL bound; see Config.
const (
	// DefaultSlowHold is how long a writer may hold the write lock before
	// a warning is logged: a write transaction open this long makes every
	// other writer of the process wait at least as long.
	DefaultSlowHold = time.Second
	// DefaultSlowWait is how long a writer may wait for the write lock
	// before a warning naming the holder is logged: a fifth of the default
	// busy timeout, early enough to act before waits fail.
	DefaultSlowWait = time.Second
	// DefaultJournalSizeLimit is PRAGMA journal_size_limit unless the DSN
	// says otherwise: after a checkpoint resets the WAL, a -wal file larger
	// than this is truncated to it. 64 MiB is sixteen times the WAL that
	// SQLite's automatic checkpoint lets grow (1000 pages of 4 KiB), so a
	// normal load never pays for regrowing the file, while a burst or a
	// long reader does not leave gigabytes behind.
	DefaultJournalSizeLimit = 64 << 20
)

// Config is a parsed DSN. Build one with ParseDSN or as a literal; the zero
// value of every field selects the default, so
//
//	sqlitesafe.NewConnector(&sqlitesafe.Config{Path: "app.db"})
//
// opens app.db with WAL, a 5 s busy timeout, synchronous=NORMAL and BEGIN
// IMMEDIATE write transactions. FormatDSN turns a Config back into a DSN.
type Config struct {
	// Path is the database file as the DSN names it: a file path, or
	// ":memory:". In a "file:" URI it is the decoded path part. Empty
	// opens a private temporary database for the handle, as ":memory:"
	// does (SQLite's own "" gives each connection a database of its own).
	Path string

	// Cluster lists the nodes (host:port) of a dqlite cluster, for a
	// "dqlite://HOST:PORT,HOST:PORT/NAME" DSN; Path is then the database's
	// name on the cluster. Nil for a local database. Opening a Config with
	// a Cluster needs the engine's import:
	//
	//	import _ "github.com/sqlitesafe/sqlitesafe/dqlite"
	Cluster []string

	// Mode is SQLite's URI parameter "mode": ro, rw, rwc or memory. The
	// default (empty) opens read-write and creates the file. ModeReadOnly
	// opens a read-only handle: nothing in the file is changed.
	Mode Mode
	// VFS is SQLite's URI parameter "vfs": the name of the VFS to open the
	// database with. Empty selects the default VFS.
	VFS string
	// Immutable is SQLite's URI parameter "immutable=1": the file cannot
	// change while open, so SQLite reads it without locks. It makes the
	// handle read-only.
	Immutable bool
	// URIParams holds SQLite's other URI parameters (cache, nolock, psow,
	// modeof) and any other key without a leading underscore. They are
	// passed to SQLite unchanged; cache must be shared or private, and
	// mode, vfs and immutable belong in their fields. Nil when empty.
	URIParams map[string]string

	// BusyTimeout bounds every wait for the write lock: for the writer
	// queue inside the process and, across processes, SQLite's busy
	// handler. DSN key _busy_timeout (alias _timeout), in milliseconds or
	// as a Go duration ("5s"). Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// JournalMode is PRAGMA journal_mode. DSN key _journal_mode (alias
	// _journal). Empty means WAL.
	JournalMode JournalMode
	// Synchronous is PRAGMA synchronous. DSN key _synchronous (alias
	// _sync). Empty means NORMAL.
	Synchronous Synchronous
	// ForeignKeys is PRAGMA foreign_keys. DSN key _foreign_keys (alias
	// _fk). Empty leaves SQLite's setting (off) as it is.
	ForeignKeys ForeignKeys
	// TxLock is how write transactions begin: BEGIN IMMEDIATE, EXCLUSIVE
	// or DEFERRED. DSN key _txlock. Empty means immediate.
	TxLock TxLock
	// AutoVacuum is PRAGMA auto_vacuum, applied before anything else writes
	// the file. DSN key _auto_vacuum (alias _vacuum). Empty leaves it as it
	// is.
	AutoVacuum AutoVacuum
	// QueryOnly sets PRAGMA query_only on every connection. DSN key
	// _query_only.
	QueryOnly bool
	// Pragmas are run as "PRAGMA " + p on every connection the driver
	// opens, in this order, after busy_timeout, auto_vacuum and the
	// settings of the fields below (CacheSize to WritableSchema), and
	// before foreign_keys, journal_mode and synchronous; one that changes
	// the file runs on the first connection only. DSN key _pragma, which
	// may repeat. A _pragma that sets busy_timeout, journal_mode,
	// synchronous, foreign_keys, auto_vacuum, query_only or
	// journal_size_limit is folded into its field instead, and one that
	// sets locking_mode or defer_foreign_keys is checked as that key.
	Pragmas []string

	// CacheSize is PRAGMA cache_size on every connection: pages when
	// positive, KiB when negative. DSN key _cache_size. Zero leaves
	// SQLite's default (-2000: about 2 MB).
	CacheSize int64
	// CaseSensitiveLike is PRAGMA case_sensitive_like on every
	// connection. DSN key _case_sensitive_like (alias _cslike).
	CaseSensitiveLike bool
	// IgnoreCheckConstraints is PRAGMA ignore_check_constraints on every
	// connection. DSN key _ignore_check_constraints.
	IgnoreCheckConstraints bool
	// RecursiveTriggers is PRAGMA recursive_triggers on every connection.
	// DSN key _recursive_triggers (alias _rt).
	RecursiveTriggers bool
	// SecureDelete is PRAGMA secure_delete on every connection. DSN key
	// _secure_delete. Empty leaves SQLite's setting (off).
	SecureDelete SecureDelete
	// WritableSchema is PRAGMA writable_schema on every connection. DSN
	// key _writable_schema. Misused, it corrupts the database.
	WritableSchema bool

	// TimeFormat is modernc.org/sqlite's _time_format: how time.Time
	// values are written ("sqlite", "datetime" or "string_no_monotonic").
	TimeFormat string
	// TimeIntegerFormat is modernc.org/sqlite's _time_integer_format:
	// write time.Time values as integers ("unix", "unix_milli",
	// "unix_micro" or "unix_nano").
	TimeIntegerFormat string
	// Timezone is modernc.org/sqlite's _timezone, a name for
	// time.LoadLocation used for reading and writing times.
	Timezone string
	// IntToTime is modernc.org/sqlite's _inttotime.
	IntToTime bool
	// TextToTime is modernc.org/sqlite's _texttotime.
	TextToTime bool
	// DisableDQS turns off SQLite's double-quoted string literal quirk:
	// modernc.org/sqlite's _dqs=0.
	DisableDQS bool
	// Defensive is modernc.org/sqlite's _defensive.
	Defensive bool
	// ErrorRC is modernc.org/sqlite's _error_rc.
	ErrorRC bool

	// DisableWriterQueue turns the in-process writer queue off: each
	// connection then writes on a read-write connection of its own and
	// relies on SQLite's busy handler alone, as plain modernc.org/sqlite
	// does. DSN key _writer_queue=off.
	DisableWriterQueue bool
	// DisableGroupCommit makes every autocommit write its own transaction.
	// By default, writes that queue up behind each other are committed
	// together, each keeping its own result and error. DSN key
	// _group_commit=off.
	DisableGroupCommit bool
	// MaxReaders caps the read-only connections a handle keeps open at
	// once; a read waits (bounded by BusyTimeout) for a free one. Zero
	// means no cap beyond database/sql's own pool. DSN key _max_readers.
	MaxReaders int
	// DisableReadAnchor turns the read anchor off. By default, while only
	// reads run on a WAL file (none of the process's writes or checkpoints
	// for 10 ms) and they come close together, the process keeps one read
	// transaction open on a connection of its own, at most 100 ms at a
	// time, so that its readers take SQLite's read locks without a system
	// call each: a point read costs a third less. It is given up before
	// each write and checkpoint of the process, and left for 2 s when the
	// -wal changed while it was held (another process wrote); other
	// processes' checkpoints that must wait for every reader (RESTART,
	// TRUNCATE) wait for it as for any reader, up to 100 ms. DSN key
	// _read_anchor=off.
	DisableReadAnchor bool

	// DisableProcessQueue turns off the writer queue across processes. By
	// default the writers of every sqlite-safe process on a file also
	// queue on an OS lock (flock) on a side file next to the database,
	// FILE-writer.lock, taken before BEGIN IMMEDIATE and released after
	// COMMIT or ROLLBACK: waiters sleep in the kernel and are woken when
	// the lock is free, instead of polling in SQLite's busy handler. The
	// kernel drops the lock of a process that dies. DSN key
	// _process_queue=off.
	DisableProcessQueue bool
	// AllowNetworkFS opens a database on a network file system (NFS,
	// SMB/CIFS, ...) or a FUSE file system, which sqlite-safe otherwise
	// refuses: their locks are not reliable, and SQLite can corrupt a
	// database whose locks fail. DSN key _network_fs=allow.
	AllowNetworkFS bool
	// SlowHold is how long a writer may hold the write lock before one
	// warning, with where the hold began, is logged. DSN key _slow_hold
	// (milliseconds or a Go duration; 0, off or a negative value turns it
	// off). Zero means DefaultSlowHold; negative turns the warning off.
	SlowHold time.Duration
	// SlowWait is how long a writer may wait for the write lock before one
	// warning, naming the holder, is logged. DSN key _slow_wait, as
	// _slow_hold. Zero means DefaultSlowWait; negative turns it off.
	SlowWait time.Duration
	// FailoverTimeout bounds, on a dqlite cluster, a request's wait for a
	// leader when none answers, and the resolution of a COMMIT the
	// failover interrupted. DSN key _failover_timeout. Zero means
	// DefaultFailoverTimeout. Not for a local database.
	FailoverTimeout time.Duration
	// JournalSizeLimit is PRAGMA journal_size_limit in bytes: the size the
	// -wal file is truncated to after a checkpoint. DSN key
	// _journal_size_limit (also _pragma=journal_size_limit(N)). Zero means
	// DefaultJournalSizeLimit; negative means no limit (SQLite's own
	// default).
	JournalSizeLimit int64
	// Checkpointing says who checkpoints a WAL database: the driver, in
	// the background between writes (CheckpointingBackground, the
	// default), or SQLite, inside commits (CheckpointingCommit). DSN key
	// _checkpointing.
	Checkpointing Checkpointing
	// Logger receives the warnings (slow holders, slow waiters). Nil means
	// slog.Default() at the time of the warning. It has no DSN key.
	Logger *slog.Logger
}

// Mode is SQLite's URI parameter "mode".
type Mode string

// The values of Mode.
const (
	ModeDefault         Mode = ""
	ModeReadOnly        Mode = "ro"
	ModeReadWrite       Mode = "rw"
	ModeReadWriteCreate Mode = "rwc"
	ModeMemory          Mode = "memory"
)

// JournalMode is a value of PRAGMA journal_mode.
type JournalMode string

// The values of JournalMode.
const (
	JournalDefault  JournalMode = ""
	JournalWAL      JournalMode = "WAL"
	JournalDelete   JournalMode = "DELETE"
	JournalTruncate JournalMode = "TRUNCATE"
	JournalPersist  JournalMode = "PERSIST"
	JournalMemory   JournalMode = "MEMORY"
	JournalOff      JournalMode = "OFF"
)

// Synchronous is a value of PRAGMA synchronous.
type Synchronous string

// The values of Synchronous.
const (
	SynchronousDefault Synchronous = ""
	SynchronousOff     Synchronous = "OFF"
	SynchronousNormal  Synchronous = "NORMAL"
	SynchronousFull    Synchronous = "FULL"
	SynchronousExtra   Synchronous = "EXTRA"
)

// ForeignKeys is the PRAGMA foreign_keys asked for.
type ForeignKeys string

// The values of ForeignKeys.
const (
	ForeignKeysDefault ForeignKeys = ""
	ForeignKeysOn      ForeignKeys = "on"
	ForeignKeysOff     ForeignKeys = "off"
)

// TxLock is how a write transaction begins.
type TxLock string

// The values of TxLock.
const (
	TxLockDefault   TxLock = ""
	TxLockImmediate TxLock = "immediate"
	TxLockExclusive TxLock = "exclusive"
	TxLockDeferred  TxLock = "deferred"
)

// AutoVacuum is a value of PRAGMA auto_vacuum.
type AutoVacuum string

// The values of AutoVacuum.
const (
	AutoVacuumDefault     AutoVacuum = ""
	AutoVacuumNone        AutoVacuum = "NONE"
	AutoVacuumFull        AutoVacuum = "FULL"
	AutoVacuumIncremental AutoVacuum = "INCREMENTAL"
)

// SecureDelete is a value of PRAGMA secure_delete.
type SecureDelete string

// The values of SecureDelete.
const (
	SecureDeleteDefault SecureDelete = ""
	SecureDeleteOn      SecureDelete = "on"
	SecureDeleteOff     SecureDelete = "off"
	SecureDeleteFast    SecureDelete = "FAST"
)

// Clone returns a copy of c that shares nothing with it: URIParams and
// Pragmas are copied too.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	cc := *c
	cc.URIParams = maps.Clone(c.URIParams)
	cc.Pragmas = slices.Clone(c.Pragmas)
	cc.Cluster = slices.Clone(c.Cluster)
	return &cc
}

// slowHold returns SlowHold with the default applied; 0 means no warning.
func (c *Config) slowHold() time.Duration { return threshold(c.SlowHold, DefaultSlowHold) }

// slowWait returns SlowWait with the default applied; 0 means no warning.
func (c *Config) slowWait() time.Duration { return threshold(c.SlowWait, DefaultSlowWait) }

func threshold(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// journalSizeLimit returns the value for PRAGMA journal_size_limit.
func (c *Config) journalSizeLimit() int64 {
	switch {
	case c.JournalSizeLimit == 0:
		return DefaultJournalSizeLimit
	case c.JournalSizeLimit < 0:
		return -1
	}
	return c.JournalSizeLimit
}

// logger returns the Logger for warnings.
func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// readOnly reports whether every connection to the database is read-only.
func (c *Config) readOnly() bool { return c.Mode == ModeReadOnly || c.Immutable }

// inMemory reports whether the database lives in memory, not in a file:
// ":memory:", mode=memory, vfs=memdb, or no path at all (a private
// temporary database).
func (c *Config) inMemory() bool {
	return c.Path == "" || c.Path == ":memory:" || c.Mode == ModeMemory || c.VFS == "memdb"
}

// busyTimeout returns BusyTimeout, or DefaultBusyTimeout for zero.
func (c *Config) busyTimeout() time.Duration {
	if c.BusyTimeout == 0 {
		return DefaultBusyTimeout
	}
	return c.BusyTimeout
}

// journalMode returns JournalMode, or JournalWAL for zero.
func (c *Config) journalMode() JournalMode {
	if c.JournalMode == "" {
		return JournalWAL
	}
	return c.JournalMode
}

// synchronous returns Synchronous, or SynchronousNormal for zero.
func (c *Config) synchronous() Synchronous {
	if c.Synchronous == "" {
		return SynchronousNormal
	}
	return c.Synchronous
}

// txLock returns TxLock, or TxLockImmediate for zero.
func (c *Config) txLock() TxLock {
	if c.TxLock == "" {
		return TxLockImmediate
	}
	return c.TxLock
}

package sqlitesafe

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/sqliteuri"
)

// DSNError reports a DSN, or a Config, that cannot be used as given. Its
// message names the key and the value at fault and what would be accepted,
// and never holds the whole DSN, which may carry secrets. errors.Is(err,
// ErrInvalidDSN) reports true for every DSNError.
type DSNError struct {
	// Key is the DSN key at fault ("_txlock", "mode", "_pragma"), or empty
	// when the fault is in the path or the shape of the DSN.
	Key string
	// Value is the value at fault as the DSN gave it, or empty.
	Value string
	// Reason is the message after the "sqlitesafe: " prefix; it names Key
	// and Value where there are any.
	Reason string
	// Err is the underlying error, if any: from time.LoadLocation for
	// _timezone, from net/url for a malformed escape.
	Err error
}

// Error returns "sqlitesafe: " + e.Reason, followed by e.Err if there is one.
func (e *DSNError) Error() string {
	if e.Err != nil {
		return "sqlitesafe: " + e.Reason + ": " + e.Err.Error()
	}
	return "sqlitesafe: " + e.Reason
}

// Unwrap returns e.Err.
func (e *DSNError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalidDSN.
func (e *DSNError) Is(target error) bool { return target == ErrInvalidDSN }

// A dsnKey is one DSN key. Everything the driver knows about a key is in
// its entry in dsnKeys: ParseDSN, FormatDSN, validation, the "did you
// mean" suggestions, the README's key table and the package doc's key
// list all come from there.
type dsnKey struct {
	name    string   // the key, as FormatDSN writes it
	aliases []string // other names ParseDSN takes for it
	sets    string   // what it sets, for the error when two keys set it; "" for name
	pragma  string   // the PRAGMA it sets, or ""
	folded  bool     // a _pragma of that PRAGMA is read as this key
	modernc bool     // modernc.org/sqlite reads it: passed on in the URI
	field   string   // the Config field, for the key table
	values  string   // the values it takes: in its errors ("want ...") and the key table
	def     string   // the default, for the key table
	doc     string   // one line, for the key table
	dqlite  bool     // the key means the same on a dqlite:// DSN; the others are refused there

	// flag is the field of a boolean key, which takes values as its
	// values say (valSQLiteBool, valGoBool or valOnOff); FormatDSN writes
	// on ("1" when empty) for a true field, and on "off" or "0" means the
	// field says the opposite of the key (DisableWriterQueue, DisableDQS).
	// A flag key has no parse or format.
	flag func(c *Config) *bool
	on   string

	// parse sets the field from a value: errBadValue for a value the key
	// does not take, a refusal for one the driver cannot honour, or the
	// cause of a bad value.
	parse func(c *Config, v string) error
	// format returns the value to write for c's field, and whether to
	// write it: only when it is not the default. Nil for a key that
	// FormatDSN never writes (one that has no field of its own).
	format func(c *Config) (string, bool)
	// apply returns the value to set PRAGMA pragma to on every connection
	// and what the PRAGMA then reads back ("" when it cannot be read);
	// value "" when the field is the default. Nil for the keys the
	// connection setup applies itself.
	apply func(c *Config) (value, readBack string)
}

// errBadValue is what parse returns for a value the key does not take.
var errBadValue = errors.New("bad value")

// A refusal is what parse returns for a value the driver cannot honour:
// why, and what to do instead.
type refusal struct {
	why      string
	wholeKey bool // the key is refused whatever its value (which is not echoed)
}

func (r *refusal) Error() string { return r.why }

// The values keys take, as their errors and the key table name them.
const (
	valSQLiteBool = "1, 0, yes, no, true, false, on or off"
	valGoBool     = "1, t, true, 0, f or false"
	valOnOff      = "on or off"
	valDuration   = "a positive number of milliseconds or a duration such as 5s"
	valSlow       = "a positive number of milliseconds, a duration such as 500ms, or 0, off or a negative one to turn the warning off"
)

// dsnKeys is the table of DSN keys, in the order FormatDSN writes them.
var dsnKeys = []dsnKey{
	// SQLite's URI parameters.
	{name: "mode", field: "Mode", values: "ro, rw, rwc or memory", def: "rwc",
		doc: "SQLite: `ro` makes a read-only handle: the driver changes nothing in the file, and writes fail at once with `ErrReadOnly`.",
		// SQLite compares mode values case-sensitively.
		parse:  enum(func(c *Config) *Mode { return &c.Mode }, nil, false, ModeReadOnly, ModeReadWrite, ModeReadWriteCreate, ModeMemory),
		format: func(c *Config) (string, bool) { return string(c.Mode), c.Mode != "" }},
	{name: "vfs", field: "VFS", values: "the name of a registered VFS",
		doc: "SQLite: the VFS to open with. `memdb` gives an in-memory database.",
		parse: func(c *Config, v string) error {
			if v == "" {
				return errBadValue
			}
			c.VFS = v
			return nil
		},
		format: func(c *Config) (string, bool) { return c.VFS, c.VFS != "" }},
	{name: "immutable", field: "Immutable", values: valSQLiteBool, def: "0",
		doc:  "SQLite: the file cannot change; a read-only handle, read without locks.",
		flag: func(c *Config) *bool { return &c.Immutable }},
	{name: "cache", field: "URIParams", values: "shared or private", def: "private",
		doc: "SQLite's shared cache. For a file it is ignored: connections sharing a cache wait for each other on table locks, " +
			"contention the writer queue makes needless. For `mode=memory`, `cache=shared` names one database shared by every handle with the same name.",
		parse: func(c *Config, v string) error {
			if v != "shared" && v != "private" {
				return errBadValue
			}
			if c.URIParams == nil {
				c.URIParams = make(map[string]string)
			}
			c.URIParams["cache"] = v
			return nil
		},
		format: func(c *Config) (string, bool) { v, ok := c.URIParams["cache"]; return v, ok }},

	// The PRAGMA keys of modernc.org/sqlite and mattn/go-sqlite3.
	{name: "_busy_timeout", dqlite: true, aliases: []string{"_timeout"}, sets: "the busy timeout", pragma: "busy_timeout", folded: true,
		field: "BusyTimeout", values: valDuration, def: "5s",
		doc: "How long a write waits for the write lock: in the writer queue inside the process, in SQLite's busy handler across processes.",
		parse: func(c *Config, v string) error {
			d, ok := parseMillis(v)
			if !ok || d <= 0 {
				return errBadValue
			}
			c.BusyTimeout = d
			return nil
		},
		format: func(c *Config) (string, bool) { return formatMillis(c.BusyTimeout), c.BusyTimeout != 0 }},
	{name: "_journal_mode", dqlite: true, aliases: []string{"_journal"}, sets: "the journal mode", pragma: "journal_mode", folded: true,
		field: "JournalMode", values: "DELETE, TRUNCATE, PERSIST, MEMORY, WAL or OFF", def: "WAL",
		doc: "PRAGMA journal_mode, read back: opening a file fails with `ErrWALUnavailable` if WAL does not take. " +
			"An in-memory database keeps its journal in memory whatever is asked (as SQLite does), unless `OFF`.",
		parse: func(c *Config, v string) error {
			switch m := JournalMode(strings.ToUpper(v)); m {
			case JournalDelete, JournalTruncate, JournalPersist, JournalMemory, JournalWAL, JournalOff:
				c.JournalMode = m
				return nil
			}
			return errBadValue
		},
		format: func(c *Config) (string, bool) { return string(c.JournalMode), c.JournalMode != "" }},
	{name: "_synchronous", aliases: []string{"_sync"}, sets: "synchronous", pragma: "synchronous", folded: true,
		field: "Synchronous", values: "OFF, NORMAL, FULL or EXTRA, or 0 to 3", def: "NORMAL",
		doc: "PRAGMA synchronous on every connection, read back.",
		parse: enum(func(c *Config) *Synchronous { return &c.Synchronous }, strings.ToUpper, true,
			SynchronousOff, SynchronousNormal, SynchronousFull, SynchronousExtra),
		format: func(c *Config) (string, bool) { return string(c.Synchronous), c.Synchronous != "" }},
	{name: "_foreign_keys", dqlite: true, aliases: []string{"_fk"}, sets: "foreign keys", pragma: "foreign_keys", folded: true,
		field: "ForeignKeys", values: valSQLiteBool, def: "SQLite's (off)",
		doc: "PRAGMA foreign_keys on every connection, read back.",
		parse: func(c *Config, v string) error {
			on, ok := parseSQLiteBool(v)
			if !ok {
				return errBadValue
			}
			c.ForeignKeys = ForeignKeysOff
			if on {
				c.ForeignKeys = ForeignKeysOn
			}
			return nil
		},
		format: func(c *Config) (string, bool) { return string(c.ForeignKeys), c.ForeignKeys != "" }},
	{name: "_txlock", dqlite: true, field: "TxLock", values: "deferred, immediate or exclusive", def: "immediate",
		doc: "How write transactions begin, also a `BEGIN` typed as SQL. The writer queue is taken at BEGIN whatever the mode.",
		parse: enum(func(c *Config) *TxLock { return &c.TxLock }, strings.ToLower, false,
			TxLockDeferred, TxLockImmediate, TxLockExclusive),
		format: func(c *Config) (string, bool) { return string(c.TxLock), c.TxLock != "" }},
	{name: "_auto_vacuum", aliases: []string{"_vacuum"}, sets: "auto-vacuum", pragma: "auto_vacuum", folded: true,
		field: "AutoVacuum", values: "NONE, FULL or INCREMENTAL, or 0 to 2", def: "unchanged",
		doc: "PRAGMA auto_vacuum, set before anything else writes the file.",
		parse: enum(func(c *Config) *AutoVacuum { return &c.AutoVacuum }, strings.ToUpper, true,
			AutoVacuumNone, AutoVacuumFull, AutoVacuumIncremental),
		format: func(c *Config) (string, bool) { return string(c.AutoVacuum), c.AutoVacuum != "" }},
	{name: "_query_only", dqlite: true, sets: "query-only", pragma: "query_only", folded: true,
		field: "QueryOnly", values: valSQLiteBool, def: "off",
		doc:  "PRAGMA query_only on every connection.",
		flag: func(c *Config) *bool { return &c.QueryOnly }},
	{name: "_pragma", dqlite: true, field: "Pragmas", values: "name(value), name=value or name, holding one PRAGMA without ';'",
		doc: "Runs `PRAGMA name = value` on every connection, in DSN order; repeatable. A PRAGMA that changes the file (`user_version`, `page_size`, ...) " +
			"runs once, on the writer; connection settings (`cache_size`, `temp_store`, ...) run on readers too. " +
			"`busy_timeout`, `journal_mode`, `synchronous`, `foreign_keys`, `auto_vacuum`, `query_only` and `journal_size_limit` are folded into their keys; " +
			"`locking_mode` and `defer_foreign_keys` are checked as their keys are."},

	// The keys modernc.org/sqlite reads itself.
	{name: "_time_format", modernc: true, field: "TimeFormat", values: "sqlite, datetime or string_no_monotonic",
		doc: "modernc.org/sqlite: how `time.Time` is written.",
		// modernc.org/sqlite compares case-sensitively.
		parse:  enum(func(c *Config) *string { return &c.TimeFormat }, nil, false, "sqlite", "datetime", "string_no_monotonic"),
		format: func(c *Config) (string, bool) { return c.TimeFormat, c.TimeFormat != "" }},
	{name: "_time_integer_format", modernc: true, field: "TimeIntegerFormat", values: "unix, unix_milli, unix_micro or unix_nano",
		doc:    "modernc.org/sqlite: write `time.Time` as an integer.",
		parse:  enum(func(c *Config) *string { return &c.TimeIntegerFormat }, nil, false, "unix", "unix_milli", "unix_micro", "unix_nano"),
		format: func(c *Config) (string, bool) { return c.TimeIntegerFormat, c.TimeIntegerFormat != "" }},
	{name: "_timezone", sets: "the time zone", modernc: true, field: "Timezone",
		values: "a name time.LoadLocation knows, such as UTC or Europe/Berlin",
		doc:    "modernc.org/sqlite: the zone for reading and writing times; text without a zone is read as a time in it.",
		parse: func(c *Config, v string) error {
			if v == "" {
				return errBadValue
			}
			if _, err := time.LoadLocation(v); err != nil {
				return err
			}
			c.Timezone = v
			return nil
		},
		format: func(c *Config) (string, bool) { return c.Timezone, c.Timezone != "" }},
	{name: "_inttotime", modernc: true, field: "IntToTime", values: valGoBool, def: "false",
		doc:  "modernc.org/sqlite: scan integers in DATE, DATETIME and TIMESTAMP columns as `time.Time`.",
		flag: func(c *Config) *bool { return &c.IntToTime }},
	{name: "_texttotime", modernc: true, field: "TextToTime", values: valGoBool, def: "false",
		doc:  "modernc.org/sqlite: scan text in DATE, DATETIME, TIME and TIMESTAMP columns as `time.Time`.",
		flag: func(c *Config) *bool { return &c.TextToTime }},
	{name: "_dqs", modernc: true, field: "DisableDQS", values: valGoBool, def: "true",
		doc:  "modernc.org/sqlite: `0` turns off SQLite's double-quoted string literal quirk.",
		flag: func(c *Config) *bool { return &c.DisableDQS }, on: "0"},
	{name: "_defensive", modernc: true, field: "Defensive", values: valGoBool, def: "false",
		doc:  "modernc.org/sqlite: SQLite's defensive mode.",
		flag: func(c *Config) *bool { return &c.Defensive }},
	{name: "_error_rc", modernc: true, field: "ErrorRC", values: valGoBool, def: "false",
		doc:  "modernc.org/sqlite: error message form.",
		flag: func(c *Config) *bool { return &c.ErrorRC }},

	// This driver's keys.
	{name: "_writer_queue", dqlite: true, field: "DisableWriterQueue", values: valOnOff, def: "on",
		doc: "`off`: no in-process queue; each connection writes on its own, as tuned modernc.org/sqlite does " +
			"(BEGIN IMMEDIATE and the busy handler). For comparison, or for a program that never writes from two goroutines.",
		flag: func(c *Config) *bool { return &c.DisableWriterQueue }, on: "off"},
	{name: "_group_commit", dqlite: true, field: "DisableGroupCommit", values: valOnOff, def: "on",
		doc:  "`on`: autocommit writes queued behind each other commit in one transaction, each with its own result and error. `off`: one transaction per write.",
		flag: func(c *Config) *bool { return &c.DisableGroupCommit }, on: "off"},
	{name: "_max_readers", dqlite: true, field: "MaxReaders", values: "a whole number, 0 or more", def: "0 (no cap beyond database/sql's pool)",
		doc:    "Read-only connections open at most; a read waits (bounded by the busy timeout, `ErrReaderTimeout`) for a free one.",
		parse:  integer(func(c *Config) *int { return &c.MaxReaders }, func(n int) bool { return n >= 0 }),
		format: formatInt(func(c *Config) int { return c.MaxReaders })},
	{name: "_read_anchor", field: "DisableReadAnchor", values: valOnOff, def: "on",
		doc: "`on`: while only reads run on a WAL file and they come close together, the process keeps one read transaction open (at most 100 ms at a time, " +
			"given up before each of its writes and checkpoints) so that its readers take SQLite's read locks without a system call each. " +
			"`off`: each read takes its own, as with other drivers.",
		flag: func(c *Config) *bool { return &c.DisableReadAnchor }, on: "off"},
	{name: "_process_queue", field: "DisableProcessQueue", values: valOnOff, def: "on",
		doc: "`on`: the writers of every sqlite-safe process on the file also queue on an `flock` of `FILE-writer.lock`, taken before `BEGIN IMMEDIATE` " +
			"and released after `COMMIT`/`ROLLBACK` (kept up to 250 µs for the process's next write while no other process waits); waiters sleep in the kernel, a dead process drops the lock. See [Several processes](#several-processes).",
		flag: func(c *Config) *bool { return &c.DisableProcessQueue }, on: "off"},
	{name: "_network_fs", field: "AllowNetworkFS", values: "refuse or allow", def: "refuse",
		doc: "A database on NFS, SMB/CIFS, 9p, sshfs or another network or FUSE file system is refused at open (`ErrNetworkFS`): " +
			"their locks are not reliable. `allow` opens it knowingly, with a warning.",
		parse: func(c *Config, v string) error {
			switch strings.ToLower(v) {
			case "refuse":
				c.AllowNetworkFS = false
			case "allow":
				c.AllowNetworkFS = true
			default:
				return errBadValue
			}
			return nil
		},
		format: func(c *Config) (string, bool) { return "allow", c.AllowNetworkFS }},
	{name: "_failover_timeout", dqlite: true, field: "FailoverTimeout", values: valDuration, def: "20s",
		doc: "dqlite:// only: how long a request waits for a leader when none answers (a failover took 4.5-10.5 s here), " +
			"and the longest an interrupted COMMIT takes to be resolved; past it the error is `ErrOutcomeUnknown` or the wait's.",
		parse: func(c *Config, v string) error {
			d, ok := parseMillis(v)
			if !ok || d <= 0 {
				return errBadValue
			}
			c.FailoverTimeout = d
			return nil
		},
		format: func(c *Config) (string, bool) { return formatMillis(c.FailoverTimeout), c.FailoverTimeout != 0 }},
	{name: "_slow_hold", dqlite: true, field: "SlowHold", values: valSlow, def: "1s",
		doc:    "A writer holding the lock this long is reported once through `log/slog`, with where it took the lock.",
		parse:  slow(func(c *Config) *time.Duration { return &c.SlowHold }),
		format: formatSlow(func(c *Config) time.Duration { return c.SlowHold })},
	{name: "_slow_wait", dqlite: true, field: "SlowWait", values: valSlow, def: "1s",
		doc:    "A writer waiting this long is reported once, naming the holder and its file:line.",
		parse:  slow(func(c *Config) *time.Duration { return &c.SlowWait }),
		format: formatSlow(func(c *Config) time.Duration { return c.SlowWait })},
	{name: "_journal_size_limit", sets: "the journal size limit", pragma: "journal_size_limit", folded: true,
		field: "JournalSizeLimit", values: "a positive number of bytes, or -1 for no limit", def: "67108864 (64 MiB)",
		doc: "PRAGMA journal_size_limit on the writers, and the bound of the `-wal`: the checkpointer resets it when it passes a quarter of this, holding this process's new reads back briefly if they overlap.",
		// Any negative value means no limit, as in SQLite; 0 would read as
		// the default in the Config.
		parse:  integer(func(c *Config) *int64 { return &c.JournalSizeLimit }, func(n int64) bool { return n != 0 }),
		format: formatInt(func(c *Config) int64 { return c.JournalSizeLimit })},
	{name: "_checkpointing", field: "Checkpointing", values: "background or commit", def: "background",
		doc: "Who checkpoints the WAL: the driver, between writes (wal_autocheckpoint=0 on its connections; the `-wal` kept bounded), or SQLite, inside the commit that crosses 1000 pages.",
		parse: enum(func(c *Config) *Checkpointing { return &c.Checkpointing }, strings.ToLower, false,
			CheckpointingBackground, CheckpointingCommit),
		format: func(c *Config) (string, bool) { return string(c.Checkpointing), c.Checkpointing != "" }},

	// The other keys of mattn/go-sqlite3.
	{name: "_cache_size", dqlite: true, pragma: "cache_size", field: "CacheSize",
		values: "a whole number, not 0: pages if positive, KiB if negative", def: "SQLite's (-2000)",
		doc:    "PRAGMA cache_size on every connection, read back.",
		parse:  integer(func(c *Config) *int64 { return &c.CacheSize }, func(n int64) bool { return n != 0 }),
		format: formatInt(func(c *Config) int64 { return c.CacheSize }),
		apply: func(c *Config) (string, string) {
			if c.CacheSize == 0 {
				return "", ""
			}
			n := strconv.FormatInt(c.CacheSize, 10)
			return n, n
		}},
	{name: "_case_sensitive_like", dqlite: true, aliases: []string{"_cslike"}, sets: "case-sensitive LIKE", pragma: "case_sensitive_like",
		field: "CaseSensitiveLike", values: valSQLiteBool, def: "off",
		doc:   "PRAGMA case_sensitive_like on every connection (it cannot be read back).",
		flag:  func(c *Config) *bool { return &c.CaseSensitiveLike },
		apply: applyTrue(func(c *Config) bool { return c.CaseSensitiveLike }, "")},
	{name: "_ignore_check_constraints", dqlite: true, pragma: "ignore_check_constraints",
		field: "IgnoreCheckConstraints", values: valSQLiteBool, def: "off",
		doc:   "PRAGMA ignore_check_constraints on every connection, read back.",
		flag:  func(c *Config) *bool { return &c.IgnoreCheckConstraints },
		apply: applyTrue(func(c *Config) bool { return c.IgnoreCheckConstraints }, "1")},
	{name: "_recursive_triggers", dqlite: true, aliases: []string{"_rt"}, sets: "recursive triggers", pragma: "recursive_triggers",
		field: "RecursiveTriggers", values: valSQLiteBool, def: "off",
		doc:   "PRAGMA recursive_triggers on every connection, read back.",
		flag:  func(c *Config) *bool { return &c.RecursiveTriggers },
		apply: applyTrue(func(c *Config) bool { return c.RecursiveTriggers }, "1")},
	{name: "_secure_delete", pragma: "secure_delete", field: "SecureDelete", values: valSQLiteBool + ", or FAST", def: "off",
		doc: "PRAGMA secure_delete on every connection, read back.",
		parse: func(c *Config, v string) error {
			if strings.EqualFold(v, "fast") {
				c.SecureDelete = SecureDeleteFast
				return nil
			}
			on, ok := parseSQLiteBool(v)
			if !ok {
				return errBadValue
			}
			c.SecureDelete = SecureDeleteOff
			if on {
				c.SecureDelete = SecureDeleteOn
			}
			return nil
		},
		format: func(c *Config) (string, bool) { return string(c.SecureDelete), c.SecureDelete != "" },
		apply: func(c *Config) (string, string) {
			switch c.SecureDelete {
			case SecureDeleteOn:
				return "1", "1"
			case SecureDeleteOff:
				return "0", "0"
			case SecureDeleteFast:
				return "FAST", "2"
			}
			return "", ""
		}},
	{name: "_writable_schema", pragma: "writable_schema", field: "WritableSchema", values: valSQLiteBool, def: "off",
		doc:   "PRAGMA writable_schema on every connection, read back. Misused, it corrupts the database.",
		flag:  func(c *Config) *bool { return &c.WritableSchema },
		apply: applyTrue(func(c *Config) bool { return c.WritableSchema }, "1")},
	{name: "_locking_mode", aliases: []string{"_locking"}, sets: "the locking mode", pragma: "locking_mode",
		values: "NORMAL", def: "NORMAL",
		doc: "Accepted as `NORMAL` (no effect: it is SQLite's default). `EXCLUSIVE` is refused: the writer would keep the file locked, " +
			"and the driver's readers need shared access to it.",
		parse: func(c *Config, v string) error {
			switch strings.ToUpper(v) {
			case "NORMAL":
				return nil
			case "EXCLUSIVE":
				return &refusal{why: "with locking_mode EXCLUSIVE the writer connection keeps its lock on the file, and the driver's read-only " +
					"connections need shared access to it: every read would wait out the busy timeout and fail with \"database is locked\"; " +
					"leave locking_mode at NORMAL: inside the process the writer queue already orders the writes, across processes the " +
					"process queue (_process_queue) does, and file permissions keep other programs out"}
			}
			return errBadValue
		}},
	{name: "_mutex", values: "no or full",
		doc: "mattn/go-sqlite3's SQLite mutex mode; accepted, no effect: a modernc.org/sqlite connection is used by one goroutine at a time, " +
			"and the writer queue serialises the writes.",
		parse: func(c *Config, v string) error {
			if !strings.EqualFold(v, "no") && !strings.EqualFold(v, "full") {
				return errBadValue
			}
			return nil
		}},
	{name: "_stmt_cache_size", values: "a whole number, 0 or more",
		doc: "mattn/go-sqlite3's per-connection statement cache; accepted, no effect: sqlite-safe keeps the statements of " +
			"up to 64 queries prepared on each of its connections already, so `db.Prepare` gains nothing " +
			"(it is a little slower than `db.Query` of the same text: BENCHMARKS.md, Prepared point reads).",
		parse: integer(nil, func(n int) bool { return n >= 0 })},
	{name: "_loc", sets: "the time zone", values: "auto or UTC", field: "Timezone",
		doc: "mattn/go-sqlite3's time zone of times read. `auto` is accepted as modernc.org/sqlite's time handling: " +
			"the same instants, but in the zone they were stored in (UTC for text without a zone), not converted to `time.Local`. " +
			"`UTC` is `_timezone=UTC`. Other zones are refused: see `_timezone`.",
		parse: func(c *Config, v string) error {
			switch {
			case strings.EqualFold(v, "auto") || v == "Local":
				return nil
			case v == "UTC":
				c.Timezone = "UTC"
				return nil
			case v == "":
				return errBadValue
			}
			if _, err := time.LoadLocation(v); err != nil {
				return err
			}
			return &refusal{why: "mattn/go-sqlite3 reads text without a zone as UTC and converts it to this zone, while " +
				"modernc.org/sqlite's _timezone reads such text as a time in the zone, a different instant; " +
				"leave _loc out (times read keep their instant, in UTC) and convert with t.In, or use _timezone knowing the difference"}
		}},
	{name: "_defer_foreign_keys", dqlite: true, aliases: []string{"_defer_fk"}, sets: "deferred foreign keys", pragma: "defer_foreign_keys",
		values: valSQLiteBool, def: "off",
		doc: "Accepted when off (SQLite's default). On is refused: SQLite turns defer_foreign_keys off at the end of every transaction, " +
			"so a DSN could only defer the first one.",
		parse: func(c *Config, v string) error {
			on, ok := parseSQLiteBool(v)
			switch {
			case !ok:
				return errBadValue
			case on:
				return &refusal{why: "SQLite turns defer_foreign_keys off at the end of every transaction, so a DSN setting would only reach " +
					"the first write on the driver's shared writer connection; run PRAGMA defer_foreign_keys = ON as the first statement " +
					"of each transaction that needs it, or declare the foreign keys DEFERRABLE INITIALLY DEFERRED"}
			}
			return nil
		}},
	{name: "_auth", aliases: []string{"_auth_user", "_auth_pass", "_auth_crypt", "_auth_salt"}, values: "refused, whatever the value",
		doc: "mattn/go-sqlite3's user authentication: refused, modernc.org/sqlite has no user-authentication extension. " +
			"Limit access with file permissions; open read-only users with `mode=ro`.",
		parse: func(*Config, string) error {
			return &refusal{wholeKey: true, why: "modernc.org/sqlite has no user-authentication extension " +
				"(SQLite has deprecated it), so no user or password can be checked; limit access to the database with file permissions, " +
				"and open the handles of read-only users with mode=ro"}
		}},
}

// keyIndex finds an entry of dsnKeys by name or alias.
var keyIndex = func() map[string]*dsnKey {
	m := make(map[string]*dsnKey)
	for i := range dsnKeys {
		k := &dsnKeys[i]
		for _, n := range append([]string{k.name}, k.aliases...) {
			if m[n] != nil {
				panic("sqlitesafe: DSN key " + n + " twice in dsnKeys")
			}
			m[n] = k
		}
	}
	return m
}()

// pragmaKey returns the entry of the key that sets PRAGMA name, or nil.
func pragmaKey(name string) *dsnKey {
	for i := range dsnKeys {
		if dsnKeys[i].pragma != "" && dsnKeys[i].pragma == name {
			return &dsnKeys[i]
		}
	}
	return nil
}

// setting names what the key sets, for "both set" errors.
func (k *dsnKey) setting() string {
	if k.sets != "" {
		return k.sets
	}
	return k.name
}

// parseValue sets k's field in c from the value v.
func (k *dsnKey) parseValue(c *Config, v string) error {
	if k.flag == nil {
		return k.parse(c, v)
	}
	on, ok := parseSQLiteBool(v)
	if k.values == valGoBool {
		b, err := strconv.ParseBool(v)
		on, ok = b, err == nil
	}
	if !ok {
		return errBadValue
	}
	*k.flag(c) = on == (k.on == "" || k.on == "1")
	return nil
}

// formatValue returns the value FormatDSN writes for k's field in c, and
// whether it writes one.
func (k *dsnKey) formatValue(c *Config) (string, bool) {
	switch {
	case k.flag != nil && k.on == "":
		return "1", *k.flag(c)
	case k.flag != nil:
		return k.on, *k.flag(c)
	case k.format != nil:
		return k.format(c)
	}
	return "", false
}

// formats reports whether k has a field that FormatDSN writes.
func (k *dsnKey) formats() bool { return k.flag != nil || k.format != nil }

// fail turns an error of parse into a *DSNError. key is the key in the
// DSN; label is how the message names it: the key, or "_pragma=name".
func (k *dsnKey) fail(key, label, value string, err error) *DSNError {
	if r, ok := errors.AsType[*refusal](err); ok {
		if r.wholeKey {
			return &DSNError{Key: key, Reason: fmt.Sprintf("DSN key %q is not supported: %s", label, r.why)}
		}
		return &DSNError{Key: key, Value: value, Reason: fmt.Sprintf("%q for %q is not supported: %s", value, label, r.why)}
	}
	e := badValue(key, label, value, k.values)
	if err != errBadValue {
		e.Err = err
	}
	return e
}

// The value parsers and formatters the table shares.

// enum parses one of values, compared after fold (exactly for nil);
// numbered also takes a value's index ("0" for the first), as SQLite does
// for synchronous and auto_vacuum.
func enum[T ~string](field func(*Config) *T, fold func(string) string, numbered bool, values ...T) func(*Config, string) error {
	return func(c *Config, v string) error {
		norm := v
		if fold != nil {
			norm = fold(v)
		}
		i := slices.Index(values, T(norm))
		if numbered && len(v) == 1 && '0' <= v[0] && int(v[0]-'0') < len(values) {
			i = int(v[0] - '0')
		}
		if i < 0 {
			return errBadValue
		}
		*field(c) = values[i]
		return nil
	}
}

// integer parses a whole number that ok takes into field, or only checks
// it for a nil field.
func integer[T int | int64](field func(*Config) *T, ok func(T) bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || int64(T(n)) != n || !ok(T(n)) {
			return errBadValue
		}
		if field != nil {
			*field(c) = T(n)
		}
		return nil
	}
}

// formatInt writes a whole number that is not 0.
func formatInt[T int | int64](field func(*Config) T) func(*Config) (string, bool) {
	return func(c *Config) (string, bool) { n := field(c); return strconv.FormatInt(int64(n), 10), n != 0 }
}

// slow parses a warning threshold: 0 or off for none (-1), else
// milliseconds or a Go duration, a negative one also meaning none.
func slow(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "0" || strings.EqualFold(v, "off") {
			*field(c) = -1
			return nil
		}
		d, ok := parseMillis(v)
		if !ok || d == 0 {
			return errBadValue
		}
		*field(c) = d
		return nil
	}
}

// formatSlow writes a warning threshold: "off" for -1.
func formatSlow(field func(*Config) time.Duration) func(*Config) (string, bool) {
	return func(c *Config) (string, bool) {
		d := field(c)
		if d == -1 {
			return "off", true
		}
		return formatMillis(d), d != 0
	}
}

// applyTrue sets a boolean PRAGMA to 1 when the field is true.
func applyTrue(field func(*Config) bool, readBack string) func(*Config) (string, string) {
	return func(c *Config) (string, string) {
		if !field(c) {
			return "", ""
		}
		return "1", readBack
	}
}

// parseSQLiteBool reads a boolean as SQLite's URI parameters and PRAGMAs
// take it: 1 0 yes no true false on off, in any case.
func parseSQLiteBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "yes", "true", "on":
		return true, true
	case "0", "no", "false", "off":
		return false, true
	}
	return false, false
}

// parseMillis reads whole milliseconds or a Go duration, of either sign.
func parseMillis(s string) (time.Duration, bool) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms > math.MaxInt64/int64(time.Millisecond) || ms < math.MinInt64/int64(time.Millisecond) {
			return 0, false
		}
		return time.Duration(ms) * time.Millisecond, true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// formatMillis writes d in milliseconds when it is a whole number of
// them, else as a Go duration.
func formatMillis(d time.Duration) string {
	if d%time.Millisecond == 0 {
		return strconv.FormatInt(int64(d/time.Millisecond), 10)
	}
	return d.String()
}

// badValue is the error for a value that key does not take. label is how
// the message names the key: the key itself, or "_pragma=journal_mode" for
// a value folded from a _pragma.
func badValue(key, label, value, want string) *DSNError {
	return &DSNError{
		Key:    key,
		Value:  value,
		Reason: fmt.Sprintf("invalid value %q for %q (want %s)", value, label, want),
	}
}

// ParseDSN parses a DSN into a Config. A DSN is a database path and an
// optional query:
//
//	app.db
//	/var/lib/app/app.db?_txlock=deferred&_pragma=cache_size(-20000)
//	file:app.db?mode=ro
//	file:///var/lib/app/my%20app.db?_busy_timeout=10s
//	:memory:
//
// In a plain path the path is everything before the first '?', taken
// literally. A DSN starting with "file:" is an SQLite URI: the path may
// follow "//" or "//localhost" (any other authority is an error), %HH
// escapes in it are decoded as SQLite decodes them, and the query ends at
// '#'. ":memory:" and "file::memory:" give Path ":memory:". An empty path
// ("" or "?_fk=1") is a private temporary database for the handle.
//
// The query is key=value pairs separated by '&', each unescaped as
// url.QueryUnescape does ("+" is a space). The keys, and the values each
// takes, are listed in the package documentation. Keys without a leading
// underscore that are not listed there (nolock, psow, modeof, ...) are
// SQLite's URI parameters, kept in URIParams and passed on unchecked; they
// work on plain paths too.
//
// Enumerated values are case-insensitive, except that mode and cache are
// matched as SQLite matches them and _time_format and _time_integer_format
// as modernc.org/sqlite does: case-sensitively. A _pragma setting
// busy_timeout, journal_mode, synchronous, foreign_keys, auto_vacuum,
// query_only or journal_size_limit (unqualified or in schema main) is
// checked as the key of that name and folded into its field; one setting
// locking_mode to EXCLUSIVE or defer_foreign_keys on is refused, as
// _locking_mode and _defer_foreign_keys are. Any other key with a leading
// underscore, any key but _pragma given twice, a key together with its
// alias, and a key together with a _pragma that sets the same are errors.
// Every error is a *DSNError.
func ParseDSN(dsn string) (*Config, error) {
	var (
		path, query string
		cluster     []string
		err         error
	)
	if rest, ok := strings.CutPrefix(dsn, dqliteScheme); ok {
		cluster, path, query, err = splitClusterDSN(rest)
	} else {
		path, query, err = splitDSN(dsn)
	}
	if err != nil {
		return nil, err
	}
	p := dsnParser{c: &Config{Path: path, Cluster: cluster}, seen: make(map[string]string)}
	for frag := range strings.SplitSeq(query, "&") {
		if frag == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(frag, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return nil, &DSNError{Key: rawKey, Value: rawValue, Err: err,
				Reason: fmt.Sprintf("malformed escape in DSN query %q", frag)}
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, &DSNError{Key: key, Value: rawValue, Err: err,
				Reason: fmt.Sprintf("malformed escape in DSN query %q", frag)}
		}
		if key == "" {
			return nil, &DSNError{Value: value,
				Reason: fmt.Sprintf("DSN query %q has no key", frag)}
		}
		if strings.IndexByte(key, 0) >= 0 || strings.IndexByte(value, 0) >= 0 {
			return nil, &DSNError{Key: key, Value: value,
				Reason: fmt.Sprintf("DSN key %q: a NUL byte in the key or value", key)}
		}
		if err := p.set(key, value); err != nil {
			return nil, err
		}
	}
	if err := p.c.validate(); err != nil {
		return nil, err
	}
	return p.c, nil
}

// splitDSN splits dsn into the database path (decoded, for a "file:" URI)
// and the raw query.
func splitDSN(dsn string) (path, query string, err error) {
	rest, isURI := strings.CutPrefix(dsn, "file:")
	if !isURI {
		path, query, _ = strings.Cut(dsn, "?")
		return path, query, nil
	}
	// In an SQLite URI a '#' ends both the path and the query.
	rest, _, _ = strings.Cut(rest, "#")
	rawPath, query, _ := strings.Cut(rest, "?")
	if after, ok := strings.CutPrefix(rawPath, "//"); ok {
		authority := after
		rawPath = ""
		if i := strings.IndexByte(after, '/'); i >= 0 {
			authority, rawPath = after[:i], after[i:]
		}
		if authority != "" && authority != "localhost" {
			return "", "", &DSNError{Value: authority,
				Reason: fmt.Sprintf("invalid authority %q in a file: DSN (want none or localhost)", authority)}
		}
	}
	return unescapeURIPath(rawPath), query, nil
}

// unescapeURIPath decodes the %HH escapes in the path of an SQLite URI as
// SQLite does: a '%' not followed by two hex digits stands for itself.
func unescapeURIPath(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if hi, ok := unhex(s[i+1]); ok {
				if lo, ok := unhex(s[i+2]); ok {
					b = append(b, hi<<4|lo)
					i += 2
					continue
				}
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// dsnParser fills in a Config from the keys of a DSN, one at a time.
type dsnParser struct {
	c *Config
	// seen maps each setting to the label of the key that set it, to catch
	// a key given twice, a key and its alias, a key and a _pragma.
	seen map[string]string
}

// claim records that label sets setting, or returns the error for a
// setting already set. key is the DSN key behind label.
func (p *dsnParser) claim(key, label, setting string) error {
	prev, ok := p.seen[setting]
	if !ok {
		p.seen[setting] = label
		return nil
	}
	if prev == label {
		return &DSNError{Key: key, Reason: fmt.Sprintf("DSN key %q given more than once", label)}
	}
	return &DSNError{Key: key,
		Reason: fmt.Sprintf("DSN keys %q and %q both set %s; give one", prev, label, setting)}
}

// set applies one key of the DSN query.
func (p *dsnParser) set(key, value string) error {
	if key == "_pragma" {
		return p.pragma(value)
	}
	k := keyIndex[key]
	switch {
	case k != nil:
		return p.apply(k, key, key, value)
	case strings.HasPrefix(key, "_"):
		return unknownKey(key, value)
	}
	if err := checkURIKey(key, value); err != nil {
		return err
	}
	if err := p.claim(key, key, key); err != nil {
		return err
	}
	if p.c.URIParams == nil {
		p.c.URIParams = make(map[string]string)
	}
	p.c.URIParams[key] = value
	return nil
}

// apply parses value into k's field. key is the DSN key, label how the
// errors name it.
func (p *dsnParser) apply(k *dsnKey, key, label, value string) error {
	if err := p.claim(key, label, k.setting()); err != nil {
		return err
	}
	if err := k.parseValue(p.c, value); err != nil {
		return k.fail(key, label, value, err)
	}
	return nil
}

// pragma applies one _pragma: folded into its key when it sets a PRAGMA
// that a key sets and folds, else appended to Pragmas.
func (p *dsnParser) pragma(text string) error {
	pr, err := parsePragma(text)
	if err != nil {
		return err
	}
	k := pr.key()
	if k == nil || !k.folded {
		p.c.Pragmas = append(p.c.Pragmas, pr.text)
		return nil
	}
	label := "_pragma=" + pr.name
	if !pr.hasValue {
		return &DSNError{Key: "_pragma", Value: text,
			Reason: fmt.Sprintf("%q needs a value: the driver sets %s itself", label, pr.name)}
	}
	return p.apply(k, "_pragma", label, pr.value)
}

// parsedPragma is a _pragma taken apart.
type parsedPragma struct {
	text     string // trimmed, as it will be run after "PRAGMA "
	name     string // lower case, without the schema
	main     bool   // unqualified, or in schema main
	value    string // trimmed
	hasValue bool
}

// key returns the DSN key that sets the PRAGMA, or nil.
func (pr *parsedPragma) key() *dsnKey {
	if !pr.main {
		return nil
	}
	return pragmaKey(pr.name)
}

// parsePragma checks the text of one _pragma: "name(value)", "name=value"
// or "name", where name may be qualified by a schema ("main.cache_size"),
// with no ';' anywhere.
func parsePragma(text string) (parsedPragma, error) {
	bad := badValue("_pragma", "_pragma", text, dsnKeyPragmaValues)
	t := strings.TrimSpace(text)
	if t == "" || strings.ContainsAny(t, ";\x00") {
		return parsedPragma{}, bad
	}
	pr := parsedPragma{text: t}
	name := t
	if i := strings.IndexAny(t, "(="); i >= 0 {
		name, pr.value, pr.hasValue = strings.TrimSpace(t[:i]), t[i+1:], true
		if t[i] == '(' {
			inner, ok := strings.CutSuffix(pr.value, ")")
			if !ok {
				return parsedPragma{}, bad
			}
			pr.value = inner
		}
		pr.value = strings.TrimSpace(pr.value)
		if pr.value == "" {
			return parsedPragma{}, bad
		}
	}
	schema, bare, qualified := strings.Cut(name, ".")
	if !qualified {
		schema, bare = "", name
	}
	if !isIdent(bare) || qualified && !isIdent(schema) {
		return parsedPragma{}, bad
	}
	pr.name = strings.ToLower(bare)
	pr.main = schema == "" || strings.EqualFold(schema, "main")
	return pr, nil
}

// dsnKeyPragmaValues is what a _pragma takes, as its errors say.
var dsnKeyPragmaValues = keyIndex["_pragma"].values

// isIdent reports whether s is a bare SQL identifier: ASCII letters,
// digits and '_', not starting with a digit.
func isIdent(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// sqliteKeys are the URI parameters SQLite knows. It matches them
// case-sensitively and ignores any other key.
var sqliteKeys = []string{"mode", "vfs", "immutable", "cache", "nolock", "psow", "modeof"}

// checkURIKey returns an error for a key that is one of SQLite's own in the
// wrong case ("Mode"): SQLite would ignore it without a word, and
// "Mode=ro" would open the database read-write.
func checkURIKey(key, value string) error {
	for _, k := range sqliteKeys {
		if key != k && strings.EqualFold(key, k) {
			return &DSNError{Key: key, Value: value,
				Reason: fmt.Sprintf("unknown DSN key %q (did you mean %q?)", key, k)}
		}
	}
	return nil
}

// unknownKey is the error for a key with a leading underscore that no
// driver reads, with the known key closest to it as a suggestion.
func unknownKey(key, value string) *DSNError {
	reason := fmt.Sprintf("unknown DSN key %q", key)
	if s := suggestKey(key); s != "" {
		reason += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return &DSNError{Key: key, Value: value, Reason: reason}
}

// suggestKey returns the known key (or alias) with a leading underscore
// nearest to key by edit distance, ignoring case, or "" when none is near
// enough to be a likely typo.
func suggestKey(key string) string {
	lower := strings.ToLower(key)
	best, bestDist := "", math.MaxInt
	for i := range dsnKeys {
		for _, name := range append([]string{dsnKeys[i].name}, dsnKeys[i].aliases...) {
			if d := editDistance(lower, name); strings.HasPrefix(name, "_") && d < bestDist {
				best, bestDist = name, d
			}
		}
	}
	if bestDist > 2 || bestDist*2 >= len(best) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// FormatDSN returns a DSN that ParseDSN turns back into c. It writes the
// path, then only the keys whose fields are not the default, in the order
// of the key table in the package documentation, with SQLite's other URI
// parameters (URIParams, sorted by key) after cache. Keys and values are
// escaped with url.QueryEscape.
//
// The path is written as it is unless it holds a '?' or '#' or starts with
// "file:"; then the DSN is a "file:" URI with '%', '?' and '#' in the path
// escaped. Durations are written in milliseconds when they are a whole
// number of them, else as Go durations.
func (c *Config) FormatDSN() string {
	var b strings.Builder
	if len(c.Cluster) > 0 {
		b.WriteString(formatClusterDSN(c.Cluster, c.Path))
	} else if strings.ContainsAny(c.Path, "?#") || strings.HasPrefix(c.Path, "file:") {
		b.WriteString(sqliteuri.FromPath(c.Path))
	} else {
		b.WriteString(c.Path)
	}
	q := queryWriter{b: &b, escape: url.QueryEscape}
	for _, uri := range []bool{true, false} {
		for i := range dsnKeys {
			k := &dsnKeys[i]
			if strings.HasPrefix(k.name, "_") == uri {
				continue
			}
			if k.name == "_pragma" {
				for _, p := range c.Pragmas {
					q.add(k.name, p)
				}
			} else if v, ok := k.formatValue(c); ok {
				q.add(k.name, v)
			}
		}
		if uri {
			for _, k := range slices.Sorted(maps.Keys(c.URIParams)) {
				if keyIndex[k] == nil {
					q.add(k, c.URIParams[k])
				}
			}
		}
	}
	return b.String()
}

// queryWriter appends key=value pairs to b: '?' before the first, '&'
// before the others, keys and values escaped with escape.
type queryWriter struct {
	b      *strings.Builder
	escape func(string) string
	n      int
}

func (q *queryWriter) add(key, value string) {
	if q.n == 0 {
		q.b.WriteByte('?')
	} else {
		q.b.WriteByte('&')
	}
	q.n++
	q.b.WriteString(q.escape(key))
	q.b.WriteByte('=')
	q.b.WriteString(q.escape(value))
}

// sqliteEscape escapes s for the query of the URI handed to SQLite: every
// byte but the unreserved ones (RFC 3986) as %HH, which SQLite and
// net/url (as modernc.org/sqlite reads the query) decode alike. It never
// writes '+', which SQLite would keep as '+' and net/url read as a space.
func sqliteEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// sqliteURI returns the name to open with modernc.org/sqlite: a "file:"
// URI holding the path, SQLite's URI parameters and the keys
// modernc.org/sqlite reads itself, and always _txlock. It leaves out the
// PRAGMA keys, which the driver runs itself, and the driver's own keys.
//
// readOnly asks for a reader: mode=ro whatever Mode says, and
// cache=private in place of any cache parameter, so that a reader never
// shares a cache (and its locks) with the writer. It is not meant for an
// in-memory database, which has no file for a reader to open.
func (c *Config) sqliteURI(readOnly bool) string {
	var b strings.Builder
	b.WriteString(sqliteuri.FromPath(c.Path))
	q := queryWriter{b: &b, escape: sqliteEscape}
	switch {
	case readOnly:
		q.add("mode", string(ModeReadOnly))
	case c.Mode != "":
		q.add("mode", string(c.Mode))
	}
	if c.VFS != "" {
		q.add("vfs", c.VFS)
	}
	if c.Immutable {
		q.add("immutable", "1")
	}
	params := c.URIParams
	if readOnly {
		params = maps.Clone(c.URIParams)
		if params == nil {
			params = make(map[string]string, 1)
		}
		params["cache"] = "private"
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		q.add(k, params[k])
	}
	for i := range dsnKeys {
		if k := &dsnKeys[i]; k.modernc {
			if v, ok := k.formatValue(c); ok {
				q.add(k.name, v)
			}
		}
	}
	q.add("_txlock", string(c.txLock()))
	return b.String()
}

// validate makes the checks ParseDSN makes for a Config built in code: the
// error names the DSN key of the field at fault. A field is valid when
// parsing the value FormatDSN writes for it gives the field back, so that
// every valid Config survives FormatDSN and ParseDSN.
func (c *Config) validate() error {
	if strings.IndexByte(c.Path, 0) >= 0 {
		return &DSNError{Reason: "the database path holds a NUL byte"}
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	for i := range dsnKeys {
		k := &dsnKeys[i]
		v, ok := k.formatValue(c)
		if !ok {
			continue
		}
		if strings.IndexByte(v, 0) >= 0 {
			return badValue(k.name, k.name, v, k.values)
		}
		var back Config
		if err := k.parseValue(&back, v); err != nil {
			return k.fail(k.name, k.name, v, err)
		}
		if w, _ := k.formatValue(&back); w != v {
			return badValue(k.name, k.name, v, k.values)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.URIParams)) {
		v := c.URIParams[k]
		if err := checkURIKey(k, v); err != nil {
			return err
		}
		switch {
		case k == "" || strings.HasPrefix(k, "_") || strings.IndexByte(k, 0) >= 0:
			return &DSNError{Key: k, Value: v,
				Reason: fmt.Sprintf("URIParams key %q is not an SQLite URI parameter", k)}
		case k != "cache" && keyIndex[k] != nil:
			return &DSNError{Key: k, Value: v,
				Reason: fmt.Sprintf("URIParams key %q has a Config field of its own; set that", k)}
		case strings.IndexByte(v, 0) >= 0:
			return &DSNError{Key: k, Value: v,
				Reason: fmt.Sprintf("DSN key %q: a NUL byte in the value", k)}
		}
	}
	for _, text := range c.Pragmas {
		if err := c.checkPragma(text); err != nil {
			return err
		}
	}
	if c.Defensive && c.JournalMode == JournalOff {
		// Defensive mode makes SQLite ignore journal_mode=OFF without a
		// word; modernc.org/sqlite rejects the pair for that reason.
		return &DSNError{Key: "_journal_mode", Value: string(c.JournalMode),
			Reason: `"_journal_mode" OFF has no effect under "_defensive" (SQLite ignores it); drop one`}
	}
	if c.Defensive && c.WritableSchema {
		return &DSNError{Key: "_writable_schema", Value: "1",
			Reason: `"_writable_schema" has no effect under "_defensive" (SQLite ignores it); drop one`}
	}
	return nil
}

// checkPragma checks one of c.Pragmas: one PRAGMA, not one that a key
// folds (that key's field is the place), not one that a key refuses, and
// not one that sets what a field of c sets.
func (c *Config) checkPragma(text string) error {
	pr, err := parsePragma(text)
	if err != nil {
		return err
	}
	k := pr.key()
	switch {
	case k == nil:
		return nil
	case k.folded:
		return &DSNError{Key: "_pragma", Value: text,
			Reason: fmt.Sprintf("_pragma %q sets %s, which has a Config field of its own; set that", text, pr.name)}
	}
	label := "_pragma=" + pr.name
	if pr.hasValue {
		if err := k.parseValue(new(Config), pr.value); err != nil {
			if _, ok := errors.AsType[*refusal](err); ok {
				return k.fail("_pragma", label, pr.value, err)
			}
		}
	}
	if k.formats() {
		if _, ok := k.formatValue(c); ok {
			return &DSNError{Key: "_pragma", Value: text,
				Reason: fmt.Sprintf("DSN keys %q and %q both set %s; give one", k.name, label, k.setting())}
		}
	}
	return nil
}

// connSetting is a PRAGMA the driver sets on every connection it opens.
type connSetting struct {
	pragma, value string
	readBack      string // what the PRAGMA reads after it is set; "" when it cannot be read
}

// connSettings returns the PRAGMAs of the keys in the table that set a
// connection setting (cache_size, recursive_triggers, ...), in table order.
// The connection setup runs them after busy_timeout and auto_vacuum and
// before the Pragmas, and reads each back.
func (c *Config) connSettings() []connSetting {
	var s []connSetting
	for i := range dsnKeys {
		k := &dsnKeys[i]
		if k.apply == nil {
			continue
		}
		if v, back := k.apply(c); v != "" {
			s = append(s, connSetting{pragma: k.pragma, value: v, readBack: back})
		}
	}
	return s
}

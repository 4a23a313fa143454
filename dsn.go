package sqlitesafe

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultBusyTimeout is how long a connection waits for the write lock (the
// writer queue inside the process, SQLite's busy handler across processes)
// when the DSN does not say: the _busy_timeout key, Config.BusyTimeout.
const DefaultBusyTimeout = 5 * time.Second

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
	// ":memory:". In a "file:" URI it is the decoded path part.
	Path string

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
	// opens, in this order, after busy_timeout and auto_vacuum and before
	// foreign_keys, journal_mode and synchronous. DSN key _pragma, which
	// may repeat. A _pragma that sets busy_timeout, journal_mode,
	// synchronous, foreign_keys, auto_vacuum or query_only is folded into
	// the field of that name instead.
	Pragmas []string

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
	// (milliseconds or a Go duration; 0 or off turns it off). Zero means
	// DefaultSlowHold; negative turns the warning off.
	SlowHold time.Duration
	// SlowWait is how long a writer may wait for the write lock before one
	// warning, naming the holder, is logged. DSN key _slow_wait, as
	// _slow_hold. Zero means DefaultSlowWait; negative turns it off.
	SlowWait time.Duration
	// JournalSizeLimit is PRAGMA journal_size_limit in bytes: the size the
	// -wal file is truncated to after a checkpoint. DSN key
	// _journal_size_limit (also _pragma=journal_size_limit(N)). Zero means
	// DefaultJournalSizeLimit; negative means no limit (SQLite's own
	// default).
	JournalSizeLimit int64
	// Logger receives the warnings (slow holders, slow waiters). Nil means
	// slog.Default() at the time of the warning. It has no DSN key.
	Logger *slog.Logger

	// Checkpointing says who checkpoints a WAL database: the driver in the
	// background (CheckpointingBackground, the default) or SQLite inside
	// commits (CheckpointingCommit).
	Checkpointing Checkpointing
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

// The valid values, as the messages of DSNError name them.
const (
	wantMode        = "want ro, rw, rwc or memory"
	wantVFS         = "want the name of a registered VFS"
	wantSQLiteBool  = "want 1, 0, yes, no, true, false, on or off"
	wantCache       = "want shared or private"
	wantBusyTimeout = "want a positive number of milliseconds or a duration such as 5s"
	wantJournalMode = "want DELETE, TRUNCATE, PERSIST, MEMORY, WAL or OFF"
	wantSynchronous = "want OFF, NORMAL, FULL or EXTRA, or 0 to 3"
	wantTxLock      = "want deferred, immediate or exclusive"
	wantAutoVacuum  = "want NONE, FULL or INCREMENTAL, or 0 to 2"
	wantPragma      = "want name(value), name=value or name, holding one PRAGMA without ';'"
	wantTimeFormat  = "want sqlite, datetime or string_no_monotonic"
	wantTimeInt     = "want unix, unix_milli, unix_micro or unix_nano"
	wantTimezone    = "want a name time.LoadLocation knows, such as UTC or Europe/Berlin"
	wantGoBool      = "want 1, t, true, 0, f or false"
	wantOnOff       = "want on or off"
	wantMaxReaders  = "want a whole number, 0 or more"
	wantNetworkFS   = "want refuse or allow"
	wantSlow        = "want a positive number of milliseconds, a duration such as 500ms, or 0 or off to turn the warning off"
	wantSizeLimit   = "want a positive number of bytes, or -1 for no limit"
	wantPath        = `give a file path or ":memory:"`
)

// badValue is the error for a value that key does not take. label is how
// the message names the key: the key itself, or "_pragma=journal_mode" for
// a value folded from a _pragma.
func badValue(key, label, value, want string) *DSNError {
	return &DSNError{
		Key:    key,
		Value:  value,
		Reason: fmt.Sprintf("invalid value %q for %q (%s)", value, label, want),
	}
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

// underscoreKeys are the keys with a leading underscore that ParseDSN
// knows, for the suggestion in unknownKey. The switch in
// (*dsnParser).set is the authority on what each means.
var underscoreKeys = []string{
	"_busy_timeout", "_timeout",
	"_journal_mode", "_journal",
	"_synchronous", "_sync",
	"_foreign_keys", "_fk",
	"_txlock",
	"_auto_vacuum", "_vacuum",
	"_query_only",
	"_pragma",
	"_time_format", "_time_integer_format", "_timezone",
	"_inttotime", "_texttotime", "_dqs", "_defensive", "_error_rc",
	"_writer_queue", "_group_commit", "_max_readers",
	"_process_queue", "_network_fs", "_slow_hold", "_slow_wait", "_journal_size_limit",
}

// suggestKey returns the known key nearest to key by edit distance,
// ignoring case, or "" when none is near enough to be a likely typo.
func suggestKey(key string) string {
	lower := strings.ToLower(key)
	best, bestDist := "", math.MaxInt
	for _, k := range underscoreKeys {
		if d := editDistance(lower, k); d < bestDist {
			best, bestDist = k, d
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
// '#'. ":memory:" and "file::memory:" give Path ":memory:".
//
// The query is key=value pairs separated by '&', each unescaped as
// url.QueryUnescape does ("+" is a space). Keys without a leading
// underscore are SQLite's URI parameters, honoured for plain paths too:
// mode (ro, rw, rwc, memory), vfs, immutable (1, 0, yes, no, true, false,
// on, off), cache (shared, private) and any other (nolock, psow, modeof)
// into URIParams unchecked. Keys with a leading underscore:
//
//	_busy_timeout, _timeout   milliseconds (5000) or a duration (5s), > 0
//	_journal_mode, _journal   DELETE TRUNCATE PERSIST MEMORY WAL OFF
//	_synchronous, _sync       0 OFF 1 NORMAL 2 FULL 3 EXTRA
//	_foreign_keys, _fk        on or off (also 1 0 true false yes no)
//	_txlock                   deferred immediate exclusive
//	_auto_vacuum, _vacuum     0 NONE 1 FULL 2 INCREMENTAL
//	_query_only               on or off (also 1 0 true false yes no)
//	_pragma                   name(value), name=value or name; repeatable
//	_time_format              sqlite datetime string_no_monotonic
//	_time_integer_format      unix unix_milli unix_micro unix_nano
//	_timezone                 a name for time.LoadLocation
//	_inttotime, _texttotime   as strconv.ParseBool
//	_dqs, _defensive          as strconv.ParseBool
//	_error_rc                 as strconv.ParseBool
//	_writer_queue             on or off (also 1 0 true false yes no)
//	_group_commit             on or off (also 1 0 true false yes no)
//	_max_readers              a whole number, 0 or more
//
// Enumerated values are case-insensitive, except that mode and cache are
// matched as SQLite matches them and _time_format and _time_integer_format
// as modernc.org/sqlite does: case-sensitively. A _pragma setting
// busy_timeout, journal_mode, synchronous, foreign_keys, auto_vacuum or
// query_only (unqualified or in schema main) is checked as the key of that
// name and folded into its field. Any other key with a leading underscore,
// any key but _pragma given twice, a key together with its alias, and a
// _pragma that sets what a key sets are errors. Every error is a *DSNError.
func ParseDSN(dsn string) (*Config, error) {
	if dsn == "" {
		return nil, &DSNError{Reason: "empty DSN: " + wantPath}
	}
	path, query, err := splitDSN(dsn)
	if err != nil {
		return nil, err
	}
	p := dsnParser{c: &Config{Path: path}, seen: make(map[string]string)}
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
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
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
	c := p.c
	switch key {
	case "mode":
		if err := p.claim(key, key, key); err != nil {
			return err
		}
		m, ok := parseMode(value)
		if !ok {
			return badValue(key, key, value, wantMode)
		}
		c.Mode = m
	case "vfs":
		if err := p.claim(key, key, key); err != nil {
			return err
		}
		if value == "" {
			return badValue(key, key, value, wantVFS)
		}
		c.VFS = value
	case "immutable":
		if err := p.claim(key, key, key); err != nil {
			return err
		}
		on, ok := parseSQLiteBool(value)
		if !ok {
			return badValue(key, key, value, wantSQLiteBool)
		}
		c.Immutable = on
	case "cache":
		if value != "shared" && value != "private" {
			return badValue(key, key, value, wantCache)
		}
		return p.uriParam(key, value)

	case "_busy_timeout", "_timeout":
		return p.busyTimeout(key, key, value)
	case "_journal_mode", "_journal":
		return p.journalMode(key, key, value)
	case "_synchronous", "_sync":
		return p.synchronous(key, key, value)
	case "_foreign_keys", "_fk":
		return p.foreignKeys(key, key, value)
	case "_txlock":
		if err := p.claim(key, key, key); err != nil {
			return err
		}
		l, ok := parseTxLock(value)
		if !ok {
			return badValue(key, key, value, wantTxLock)
		}
		c.TxLock = l
	case "_auto_vacuum", "_vacuum":
		return p.autoVacuum(key, key, value)
	case "_query_only":
		return p.queryOnly(key, key, value)
	case "_pragma":
		return p.pragma(value)

	case "_time_format":
		if err := p.claim(key, key, key); err != nil {
			return err
		}
		if !validTimeFormat(value) {
			return badValue(key, key, value, wantTimeFormat)
		}
		c.TimeFormat = value
	case "_time_integer_format":
		if err := p.claim(key, key, key); err != nil {
			return err
		}
		if !validTimeIntegerFormat(value) {
			return badValue(key, key, value, wantTimeInt)
		}
		c.TimeIntegerFormat = value
	case "_timezone":
		if err := p.claim(key, key, key); err != nil {
			return err
		}
		if err := checkTimezone(value); err != nil {
			return err
		}
		c.Timezone = value
	case "_inttotime":
		return p.goBool(key, value, &c.IntToTime, false)
	case "_texttotime":
		return p.goBool(key, value, &c.TextToTime, false)
	case "_dqs":
		return p.goBool(key, value, &c.DisableDQS, true)
	case "_defensive":
		return p.goBool(key, value, &c.Defensive, false)
	case "_error_rc":
		return p.goBool(key, value, &c.ErrorRC, false)

	case "_writer_queue":
		return p.onOff(key, value, &c.DisableWriterQueue)
	case "_group_commit":
		return p.onOff(key, value, &c.DisableGroupCommit)
	case "_max_readers":
		if err := p.claim(key, key, key); err != nil {
			return err
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return badValue(key, key, value, wantMaxReaders)
		}
		c.MaxReaders = n
	case "_process_queue":
		return p.onOff(key, value, &c.DisableProcessQueue)
	case "_network_fs":
		if err := p.claim(key, key, key); err != nil {
			return err
		}
		switch strings.ToLower(value) {
		case "refuse":
			c.AllowNetworkFS = false
		case "allow":
			c.AllowNetworkFS = true
		default:
			return badValue(key, key, value, wantNetworkFS)
		}
	case "_slow_hold":
		return p.slow(key, value, &c.SlowHold)
	case "_slow_wait":
		return p.slow(key, value, &c.SlowWait)
	case "_journal_size_limit":
		return p.journalSizeLimit(key, key, value)

	default:
		if strings.HasPrefix(key, "_") {
			return unknownKey(key, value)
		}
		if err := checkURIKey(key, value); err != nil {
			return err
		}
		return p.uriParam(key, value)
	}
	return nil
}

// uriParam puts key into URIParams, for SQLite to read.
func (p *dsnParser) uriParam(key, value string) error {
	if err := p.claim(key, key, key); err != nil {
		return err
	}
	if p.c.URIParams == nil {
		p.c.URIParams = make(map[string]string)
	}
	p.c.URIParams[key] = value
	return nil
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

// The setters below take the DSN key and its label: the two are the same
// for a key, and for a _pragma the key is "_pragma" and the label is
// "_pragma=" + the PRAGMA's name.

func (p *dsnParser) busyTimeout(key, label, value string) error {
	if err := p.claim(key, label, "the busy timeout"); err != nil {
		return err
	}
	d, ok := parseBusyTimeout(value)
	if !ok {
		return badValue(key, label, value, wantBusyTimeout)
	}
	p.c.BusyTimeout = d
	return nil
}

func (p *dsnParser) journalMode(key, label, value string) error {
	if err := p.claim(key, label, "the journal mode"); err != nil {
		return err
	}
	m, ok := parseJournalMode(value)
	if !ok {
		return badValue(key, label, value, wantJournalMode)
	}
	p.c.JournalMode = m
	return nil
}

func (p *dsnParser) synchronous(key, label, value string) error {
	if err := p.claim(key, label, "synchronous"); err != nil {
		return err
	}
	s, ok := parseSynchronous(value)
	if !ok {
		return badValue(key, label, value, wantSynchronous)
	}
	p.c.Synchronous = s
	return nil
}

func (p *dsnParser) foreignKeys(key, label, value string) error {
	if err := p.claim(key, label, "foreign keys"); err != nil {
		return err
	}
	on, ok := parseSQLiteBool(value)
	if !ok {
		return badValue(key, label, value, wantSQLiteBool)
	}
	p.c.ForeignKeys = ForeignKeysOff
	if on {
		p.c.ForeignKeys = ForeignKeysOn
	}
	return nil
}

func (p *dsnParser) autoVacuum(key, label, value string) error {
	if err := p.claim(key, label, "auto-vacuum"); err != nil {
		return err
	}
	v, ok := parseAutoVacuum(value)
	if !ok {
		return badValue(key, label, value, wantAutoVacuum)
	}
	p.c.AutoVacuum = v
	return nil
}

func (p *dsnParser) queryOnly(key, label, value string) error {
	if err := p.claim(key, label, "query-only"); err != nil {
		return err
	}
	on, ok := parseSQLiteBool(value)
	if !ok {
		return badValue(key, label, value, wantSQLiteBool)
	}
	p.c.QueryOnly = on
	return nil
}

// goBool sets *field from a value of modernc.org/sqlite's boolean keys,
// which it reads with strconv.ParseBool; invert is for _dqs, whose field
// says the opposite of the key.
func (p *dsnParser) goBool(key, value string, field *bool, invert bool) error {
	if err := p.claim(key, key, key); err != nil {
		return err
	}
	on, err := strconv.ParseBool(value)
	if err != nil {
		return badValue(key, key, value, wantGoBool)
	}
	*field = on != invert
	return nil
}

func (p *dsnParser) journalSizeLimit(key, label, value string) error {
	if err := p.claim(key, label, "the journal size limit"); err != nil {
		return err
	}
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n == 0 || n < -1 {
		return badValue(key, label, value, wantSizeLimit)
	}
	p.c.JournalSizeLimit = n
	return nil
}

// slow sets a warning threshold: a duration, or 0/off for none.
func (p *dsnParser) slow(key, value string, field *time.Duration) error {
	if err := p.claim(key, key, key); err != nil {
		return err
	}
	if value == "0" || strings.EqualFold(value, "off") {
		*field = -1
		return nil
	}
	d, ok := parseBusyTimeout(value)
	if !ok {
		return badValue(key, key, value, wantSlow)
	}
	*field = d
	return nil
}

// onOff sets *disable from one of this driver's on/off keys.
func (p *dsnParser) onOff(key, value string, disable *bool) error {
	if err := p.claim(key, key, key); err != nil {
		return err
	}
	on, ok := parseSQLiteBool(value)
	if !ok {
		return badValue(key, key, value, wantOnOff)
	}
	*disable = !on
	return nil
}

// pragma applies one _pragma: folded into its field when it sets one the
// Config has, else appended to Pragmas.
func (p *dsnParser) pragma(text string) error {
	pr, err := parsePragma(text)
	if err != nil {
		return err
	}
	if pr.field == "" {
		p.c.Pragmas = append(p.c.Pragmas, pr.text)
		return nil
	}
	label := "_pragma=" + pr.field
	if !pr.hasValue {
		return &DSNError{Key: "_pragma", Value: text,
			Reason: fmt.Sprintf("%q needs a value: the driver sets %s itself", label, pr.field)}
	}
	switch pr.field {
	case "busy_timeout":
		return p.busyTimeout("_pragma", label, pr.value)
	case "journal_mode":
		return p.journalMode("_pragma", label, pr.value)
	case "synchronous":
		return p.synchronous("_pragma", label, pr.value)
	case "foreign_keys":
		return p.foreignKeys("_pragma", label, pr.value)
	case "auto_vacuum":
		return p.autoVacuum("_pragma", label, pr.value)
	case "journal_size_limit":
		return p.journalSizeLimit("_pragma", label, pr.value)
	case "query_only":
		return p.queryOnly("_pragma", label, pr.value)
	}
	panic("sqlitesafe: unhandled folded pragma " + pr.field)
}

// parsedPragma is a _pragma taken apart.
type parsedPragma struct {
	text     string // trimmed, as it will be run after "PRAGMA "
	field    string // the lower-case name when the PRAGMA has a Config field, else ""
	value    string // trimmed
	hasValue bool
}

// foldedPragmas are the PRAGMAs that have a Config field of their own.
var foldedPragmas = []string{
	"busy_timeout", "journal_mode", "synchronous", "foreign_keys", "auto_vacuum", "query_only",
	"journal_size_limit",
}

// parsePragma checks the text of one _pragma: "name(value)", "name=value"
// or "name", where name may be qualified by a schema ("main.cache_size"),
// with no ';' anywhere.
func parsePragma(text string) (parsedPragma, error) {
	t := strings.TrimSpace(text)
	if t == "" || strings.Contains(t, ";") {
		return parsedPragma{}, badValue("_pragma", "_pragma", text, wantPragma)
	}
	pr := parsedPragma{text: t}
	name := t
	if i := strings.IndexAny(t, "(="); i >= 0 {
		name, pr.value, pr.hasValue = strings.TrimSpace(t[:i]), t[i+1:], true
		if t[i] == '(' {
			inner, ok := strings.CutSuffix(pr.value, ")")
			if !ok {
				return parsedPragma{}, badValue("_pragma", "_pragma", text, wantPragma)
			}
			pr.value = inner
		}
		pr.value = strings.TrimSpace(pr.value)
		if pr.value == "" {
			return parsedPragma{}, badValue("_pragma", "_pragma", text, wantPragma)
		}
	}
	schema, bare, qualified := strings.Cut(name, ".")
	if !qualified {
		schema, bare = "", name
	}
	if !isIdent(bare) || qualified && !isIdent(schema) {
		return parsedPragma{}, badValue("_pragma", "_pragma", text, wantPragma)
	}
	if bare = strings.ToLower(bare); schema == "" || strings.EqualFold(schema, "main") {
		if slices.Contains(foldedPragmas, bare) {
			pr.field = bare
		}
	}
	return pr, nil
}

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

// The value parsers. Each reports whether s is a value the key takes.

func parseMode(s string) (Mode, bool) {
	// SQLite compares mode values case-sensitively.
	switch m := Mode(s); m {
	case ModeReadOnly, ModeReadWrite, ModeReadWriteCreate, ModeMemory:
		return m, true
	}
	return "", false
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

// parseBusyTimeout reads whole milliseconds (at least 1) or a positive Go
// duration.
func parseBusyTimeout(s string) (time.Duration, bool) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 1 || ms > math.MaxInt64/int64(time.Millisecond) {
			return 0, false
		}
		return time.Duration(ms) * time.Millisecond, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

func parseJournalMode(s string) (JournalMode, bool) {
	switch m := JournalMode(strings.ToUpper(s)); m {
	case JournalDelete, JournalTruncate, JournalPersist, JournalMemory, JournalWAL, JournalOff:
		return m, true
	}
	return "", false
}

func parseSynchronous(s string) (Synchronous, bool) {
	switch strings.ToUpper(s) {
	case "0", "OFF":
		return SynchronousOff, true
	case "1", "NORMAL":
		return SynchronousNormal, true
	case "2", "FULL":
		return SynchronousFull, true
	case "3", "EXTRA":
		return SynchronousExtra, true
	}
	return "", false
}

func parseTxLock(s string) (TxLock, bool) {
	switch l := TxLock(strings.ToLower(s)); l {
	case TxLockDeferred, TxLockImmediate, TxLockExclusive:
		return l, true
	}
	return "", false
}

func parseAutoVacuum(s string) (AutoVacuum, bool) {
	switch strings.ToUpper(s) {
	case "0", "NONE":
		return AutoVacuumNone, true
	case "1", "FULL":
		return AutoVacuumFull, true
	case "2", "INCREMENTAL":
		return AutoVacuumIncremental, true
	}
	return "", false
}

// validTimeFormat reports whether modernc.org/sqlite knows s as a
// _time_format; it compares case-sensitively.
func validTimeFormat(s string) bool {
	switch s {
	case "sqlite", "datetime", "string_no_monotonic":
		return true
	}
	return false
}

// validTimeIntegerFormat reports whether modernc.org/sqlite knows s as a
// _time_integer_format; it compares case-sensitively.
func validTimeIntegerFormat(s string) bool {
	switch s {
	case "unix", "unix_milli", "unix_micro", "unix_nano":
		return true
	}
	return false
}

// checkTimezone returns an error unless modernc.org/sqlite can load the
// _timezone name.
func checkTimezone(name string) error {
	if name == "" {
		return badValue("_timezone", "_timezone", name, wantTimezone)
	}
	if _, err := time.LoadLocation(name); err != nil {
		e := badValue("_timezone", "_timezone", name, wantTimezone)
		e.Err = err
		return e
	}
	return nil
}

// FormatDSN returns a DSN that ParseDSN turns back into c. It writes the
// path, then only the fields that are not zero, in this order: mode, vfs,
// immutable, the URIParams sorted by key, then _busy_timeout,
// _journal_mode, _synchronous, _foreign_keys, _txlock, _auto_vacuum,
// _query_only, one _pragma for each of Pragmas, _time_format,
// _time_integer_format, _timezone, _inttotime, _texttotime, _dqs,
// _defensive, _error_rc, _writer_queue, _group_commit and _max_readers.
// Keys and values are escaped with url.QueryEscape.
//
// The path is written as it is unless it holds a '?' or '#' or starts with
// "file:"; then the DSN is a "file:" URI with '%', '?' and '#' in the path
// escaped. BusyTimeout is written in milliseconds when it is a whole
// number of them, else as a Go duration.
func (c *Config) FormatDSN() string {
	var b strings.Builder
	if strings.ContainsAny(c.Path, "?#") || strings.HasPrefix(c.Path, "file:") {
		b.WriteString(uriPath(c.Path))
	} else {
		b.WriteString(c.Path)
	}
	q := queryWriter{b: &b, escape: url.QueryEscape}
	if c.Mode != "" {
		q.add("mode", string(c.Mode))
	}
	if c.VFS != "" {
		q.add("vfs", c.VFS)
	}
	if c.Immutable {
		q.add("immutable", "1")
	}
	for _, k := range slices.Sorted(maps.Keys(c.URIParams)) {
		q.add(k, c.URIParams[k])
	}
	if c.BusyTimeout != 0 {
		q.add("_busy_timeout", formatBusyTimeout(c.BusyTimeout))
	}
	if c.JournalMode != "" {
		q.add("_journal_mode", string(c.JournalMode))
	}
	if c.Synchronous != "" {
		q.add("_synchronous", string(c.Synchronous))
	}
	if c.ForeignKeys != "" {
		q.add("_foreign_keys", string(c.ForeignKeys))
	}
	if c.TxLock != "" {
		q.add("_txlock", string(c.TxLock))
	}
	if c.AutoVacuum != "" {
		q.add("_auto_vacuum", string(c.AutoVacuum))
	}
	if c.QueryOnly {
		q.add("_query_only", "1")
	}
	for _, p := range c.Pragmas {
		q.add("_pragma", p)
	}
	c.addModerncKeys(&q)
	if c.DisableWriterQueue {
		q.add("_writer_queue", "off")
	}
	if c.DisableGroupCommit {
		q.add("_group_commit", "off")
	}
	if c.MaxReaders != 0 {
		q.add("_max_readers", strconv.Itoa(c.MaxReaders))
	}
	if c.DisableProcessQueue {
		q.add("_process_queue", "off")
	}
	if c.AllowNetworkFS {
		q.add("_network_fs", "allow")
	}
	if c.SlowHold != 0 {
		q.add("_slow_hold", formatSlow(c.SlowHold))
	}
	if c.SlowWait != 0 {
		q.add("_slow_wait", formatSlow(c.SlowWait))
	}
	switch {
	case c.JournalSizeLimit < 0:
		q.add("_journal_size_limit", "-1")
	case c.JournalSizeLimit > 0:
		q.add("_journal_size_limit", strconv.FormatInt(c.JournalSizeLimit, 10))
	}
	return b.String()
}

// addModerncKeys adds the keys that modernc.org/sqlite reads itself, in
// the order of the Config fields.
func (c *Config) addModerncKeys(q *queryWriter) {
	if c.TimeFormat != "" {
		q.add("_time_format", c.TimeFormat)
	}
	if c.TimeIntegerFormat != "" {
		q.add("_time_integer_format", c.TimeIntegerFormat)
	}
	if c.Timezone != "" {
		q.add("_timezone", c.Timezone)
	}
	if c.IntToTime {
		q.add("_inttotime", "1")
	}
	if c.TextToTime {
		q.add("_texttotime", "1")
	}
	if c.DisableDQS {
		q.add("_dqs", "0")
	}
	if c.Defensive {
		q.add("_defensive", "1")
	}
	if c.ErrorRC {
		q.add("_error_rc", "1")
	}
}

// formatSlow writes a warning threshold: "off" when negative.
func formatSlow(d time.Duration) string {
	if d < 0 {
		return "off"
	}
	return formatBusyTimeout(d)
}

// formatBusyTimeout writes d in milliseconds when it is a whole number of
// them, else as a Go duration.
func formatBusyTimeout(d time.Duration) string {
	if d%time.Millisecond == 0 {
		return strconv.FormatInt(int64(d/time.Millisecond), 10)
	}
	return d.String()
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

// uriPath returns path as the start of a "file:" URI: '%', '?' and '#'
// escaped, and an absolute path after "file://", so that a path starting
// with "//" is never read as an authority.
func uriPath(path string) string {
	var b strings.Builder
	b.WriteString("file:")
	if strings.HasPrefix(path, "/") {
		b.WriteString("//")
	}
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
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

// Clone returns a copy of c that shares nothing with it: URIParams and
// Pragmas are copied too.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	cc := *c
	cc.URIParams = maps.Clone(c.URIParams)
	cc.Pragmas = slices.Clone(c.Pragmas)
	return &cc
}

// validate makes the checks ParseDSN makes for a Config built in code: the
// error names the DSN key of the field at fault.
func (c *Config) validate() error {
	if c.Path == "" {
		return &DSNError{Reason: "empty database path: " + wantPath}
	}
	if strings.IndexByte(c.Path, 0) >= 0 {
		return &DSNError{Reason: "the database path holds a NUL byte"}
	}
	if c.Mode != "" {
		if _, ok := parseMode(string(c.Mode)); !ok {
			return badValue("mode", "mode", string(c.Mode), wantMode)
		}
	}
	if strings.IndexByte(c.VFS, 0) >= 0 {
		return badValue("vfs", "vfs", c.VFS, wantVFS)
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
		case k == "mode" || k == "vfs" || k == "immutable":
			return &DSNError{Key: k, Value: v,
				Reason: fmt.Sprintf("URIParams key %q has a Config field of its own; set that", k)}
		case k == "cache" && v != "shared" && v != "private":
			return badValue(k, k, v, wantCache)
		case strings.IndexByte(v, 0) >= 0:
			return &DSNError{Key: k, Value: v,
				Reason: fmt.Sprintf("DSN key %q: a NUL byte in the value", k)}
		}
	}
	if c.BusyTimeout < 0 {
		return badValue("_busy_timeout", "_busy_timeout", c.BusyTimeout.String(), wantBusyTimeout)
	}
	if c.JournalMode != "" {
		if m, ok := parseJournalMode(string(c.JournalMode)); !ok || m != c.JournalMode {
			return badValue("_journal_mode", "_journal_mode", string(c.JournalMode), wantJournalMode)
		}
	}
	if c.Synchronous != "" {
		if s, ok := parseSynchronous(string(c.Synchronous)); !ok || s != c.Synchronous {
			return badValue("_synchronous", "_synchronous", string(c.Synchronous), wantSynchronous)
		}
	}
	if c.ForeignKeys != "" && c.ForeignKeys != ForeignKeysOn && c.ForeignKeys != ForeignKeysOff {
		return badValue("_foreign_keys", "_foreign_keys", string(c.ForeignKeys), wantOnOff)
	}
	if c.TxLock != "" {
		if l, ok := parseTxLock(string(c.TxLock)); !ok || l != c.TxLock {
			return badValue("_txlock", "_txlock", string(c.TxLock), wantTxLock)
		}
	}
	if c.AutoVacuum != "" {
		if v, ok := parseAutoVacuum(string(c.AutoVacuum)); !ok || v != c.AutoVacuum {
			return badValue("_auto_vacuum", "_auto_vacuum", string(c.AutoVacuum), wantAutoVacuum)
		}
	}
	for _, text := range c.Pragmas {
		pr, err := parsePragma(text)
		if err != nil {
			return err
		}
		if strings.IndexByte(text, 0) >= 0 {
			return badValue("_pragma", "_pragma", text, wantPragma)
		}
		if pr.field != "" {
			return &DSNError{Key: "_pragma", Value: text,
				Reason: fmt.Sprintf("_pragma %q sets %s, which has a Config field of its own; set that", text, pr.field)}
		}
	}
	if c.TimeFormat != "" && !validTimeFormat(c.TimeFormat) {
		return badValue("_time_format", "_time_format", c.TimeFormat, wantTimeFormat)
	}
	if c.TimeIntegerFormat != "" && !validTimeIntegerFormat(c.TimeIntegerFormat) {
		return badValue("_time_integer_format", "_time_integer_format", c.TimeIntegerFormat, wantTimeInt)
	}
	if c.Timezone != "" {
		if err := checkTimezone(c.Timezone); err != nil {
			return err
		}
	}
	if c.Defensive && c.JournalMode == JournalOff {
		// Defensive mode makes SQLite ignore journal_mode=OFF without a
		// word; modernc.org/sqlite rejects the pair for that reason.
		return &DSNError{Key: "_journal_mode", Value: string(c.JournalMode),
			Reason: `"_journal_mode" OFF has no effect under "_defensive" (SQLite ignores it); drop one`}
	}
	if c.MaxReaders < 0 {
		return badValue("_max_readers", "_max_readers", strconv.Itoa(c.MaxReaders), wantMaxReaders)
	}
	return nil
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

// inMemory reports whether the database lives in memory, not in a file.
func (c *Config) inMemory() bool {
	return c.Path == ":memory:" || c.Mode == ModeMemory || c.VFS == "memdb"
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
	b.WriteString(uriPath(c.Path))
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
	c.addModerncKeys(&q)
	q.add("_txlock", string(c.txLock()))
	return b.String()
}

package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sqlitesafe/sqlitesafe"
)

// secret is part of the path of most DSNs below, so that an error message
// that printed the whole DSN (or its path) would be caught.
const secret = "/srv/secret-7f3a9c/app.db"

var parseDSNTests = []struct {
	dsn  string
	want sqlitesafe.Config
}{
	// Plain paths: everything before the first '?', literally.
	{"app.db", sqlitesafe.Config{Path: "app.db"}},
	{secret, sqlitesafe.Config{Path: secret}},
	{"/tmp/x.db?_txlock=deferred", sqlitesafe.Config{Path: "/tmp/x.db", TxLock: sqlitesafe.TxLockDeferred}},
	{"my%20app.db", sqlitesafe.Config{Path: "my%20app.db"}},
	{"a#b.db?_fk=1", sqlitesafe.Config{Path: "a#b.db", ForeignKeys: sqlitesafe.ForeignKeysOn}},
	{"FILE:x.db", sqlitesafe.Config{Path: "FILE:x.db"}},
	{"x.db?", sqlitesafe.Config{Path: "x.db"}},
	{"x.db?&&_fk=1&", sqlitesafe.Config{Path: "x.db", ForeignKeys: sqlitesafe.ForeignKeysOn}},
	{"x.db?psow=a?b", sqlitesafe.Config{Path: "x.db", URIParams: map[string]string{"psow": "a?b"}}},

	// file: URIs.
	{"file:app.db", sqlitesafe.Config{Path: "app.db"}},
	{"file:/abs/x.db", sqlitesafe.Config{Path: "/abs/x.db"}},
	{"file:///abs/x.db", sqlitesafe.Config{Path: "/abs/x.db"}},
	{"file://localhost/abs/x.db", sqlitesafe.Config{Path: "/abs/x.db"}},
	{"file:////abs/x.db", sqlitesafe.Config{Path: "//abs/x.db"}},
	{"file:%2F%2Fhost/x.db", sqlitesafe.Config{Path: "//host/x.db"}}, // decoded after the authority check
	{"file:my%20app%3f%23.db", sqlitesafe.Config{Path: "my app?#.db"}},
	{"file:100%.db", sqlitesafe.Config{Path: "100%.db"}},       // '%' without hex digits stays
	{"file:a%zzb%2", sqlitesafe.Config{Path: "a%zzb%2"}},       // as SQLite does
	{"file:file%3Ax.db", sqlitesafe.Config{Path: "file:x.db"}}, // a path that looks like a URI
	{"file:x.db?_fk=1#frag&_txlock=bogus", sqlitesafe.Config{Path: "x.db", ForeignKeys: sqlitesafe.ForeignKeysOn}},
	{"file:x.db#frag?mode=ro", sqlitesafe.Config{Path: "x.db"}},
	{"file:x.db?psow=%3F%23", sqlitesafe.Config{Path: "x.db", URIParams: map[string]string{"psow": "?#"}}},

	// No path: a private temporary database, as SQLite's "" is.
	{"", sqlitesafe.Config{}},
	{"?_txlock=deferred", sqlitesafe.Config{TxLock: sqlitesafe.TxLockDeferred}},
	{"file:?mode=memory", sqlitesafe.Config{Mode: sqlitesafe.ModeMemory}},
	{"file://localhost", sqlitesafe.Config{}},

	// In memory.
	{":memory:", sqlitesafe.Config{Path: ":memory:"}},
	{":memory:?_journal_mode=WAL", sqlitesafe.Config{Path: ":memory:", JournalMode: sqlitesafe.JournalWAL}},
	{"file::memory:", sqlitesafe.Config{Path: ":memory:"}},
	{"file::memory:?cache=shared", sqlitesafe.Config{Path: ":memory:", URIParams: map[string]string{"cache": "shared"}}},
	{"file:x?mode=memory", sqlitesafe.Config{Path: "x", Mode: sqlitesafe.ModeMemory}},
	{"x?vfs=memdb", sqlitesafe.Config{Path: "x", VFS: "memdb"}},

	// SQLite's URI parameters, on plain paths too.
	{"app.db?mode=ro", sqlitesafe.Config{Path: "app.db", Mode: sqlitesafe.ModeReadOnly}},
	{"file:app.db?mode=rw", sqlitesafe.Config{Path: "app.db", Mode: sqlitesafe.ModeReadWrite}},
	{"app.db?mode=rwc", sqlitesafe.Config{Path: "app.db", Mode: sqlitesafe.ModeReadWriteCreate}},
	{"app.db?vfs=unix-excl", sqlitesafe.Config{Path: "app.db", VFS: "unix-excl"}},
	{"app.db?vfs=a+b%2Bc", sqlitesafe.Config{Path: "app.db", VFS: "a b+c"}},
	{"app.db?immutable=1", sqlitesafe.Config{Path: "app.db", Immutable: true}},
	{"app.db?immutable=YES", sqlitesafe.Config{Path: "app.db", Immutable: true}},
	{"app.db?immutable=on", sqlitesafe.Config{Path: "app.db", Immutable: true}},
	{"app.db?immutable=0", sqlitesafe.Config{Path: "app.db"}},
	{"app.db?immutable=false", sqlitesafe.Config{Path: "app.db"}},
	{"app.db?cache=private", sqlitesafe.Config{Path: "app.db", URIParams: map[string]string{"cache": "private"}}},
	{"app.db?nolock=1&psow=0&modeof=%2Ftmp%2Fref.db", sqlitesafe.Config{Path: "app.db",
		URIParams: map[string]string{"nolock": "1", "psow": "0", "modeof": "/tmp/ref.db"}}},
	{"app.db?nolock", sqlitesafe.Config{Path: "app.db", URIParams: map[string]string{"nolock": ""}}},
	{"app.db?x-custom=%26%3D", sqlitesafe.Config{Path: "app.db", URIParams: map[string]string{"x-custom": "&="}}},

	// _busy_timeout and its alias _timeout.
	{"a?_busy_timeout=5000", sqlitesafe.Config{Path: "a", BusyTimeout: 5 * time.Second}},
	{"a?_busy_timeout=1", sqlitesafe.Config{Path: "a", BusyTimeout: time.Millisecond}},
	{"a?_busy_timeout=5s", sqlitesafe.Config{Path: "a", BusyTimeout: 5 * time.Second}},
	{"a?_busy_timeout=1.5ms", sqlitesafe.Config{Path: "a", BusyTimeout: 1500 * time.Microsecond}},
	{"a?_timeout=250ms", sqlitesafe.Config{Path: "a", BusyTimeout: 250 * time.Millisecond}},
	{"a?_timeout=2m", sqlitesafe.Config{Path: "a", BusyTimeout: 2 * time.Minute}},

	// _journal_mode and _journal.
	{"a?_journal_mode=wal", sqlitesafe.Config{Path: "a", JournalMode: sqlitesafe.JournalWAL}},
	{"a?_journal_mode=DELETE", sqlitesafe.Config{Path: "a", JournalMode: sqlitesafe.JournalDelete}},
	{"a?_journal_mode=Truncate", sqlitesafe.Config{Path: "a", JournalMode: sqlitesafe.JournalTruncate}},
	{"a?_journal=persist", sqlitesafe.Config{Path: "a", JournalMode: sqlitesafe.JournalPersist}},
	{"a?_journal=MEMORY", sqlitesafe.Config{Path: "a", JournalMode: sqlitesafe.JournalMemory}},
	{"a?_journal=off", sqlitesafe.Config{Path: "a", JournalMode: sqlitesafe.JournalOff}},

	// _synchronous and _sync.
	{"a?_synchronous=0", sqlitesafe.Config{Path: "a", Synchronous: sqlitesafe.SynchronousOff}},
	{"a?_synchronous=off", sqlitesafe.Config{Path: "a", Synchronous: sqlitesafe.SynchronousOff}},
	{"a?_synchronous=1", sqlitesafe.Config{Path: "a", Synchronous: sqlitesafe.SynchronousNormal}},
	{"a?_synchronous=Normal", sqlitesafe.Config{Path: "a", Synchronous: sqlitesafe.SynchronousNormal}},
	{"a?_sync=2", sqlitesafe.Config{Path: "a", Synchronous: sqlitesafe.SynchronousFull}},
	{"a?_sync=FULL", sqlitesafe.Config{Path: "a", Synchronous: sqlitesafe.SynchronousFull}},
	{"a?_sync=3", sqlitesafe.Config{Path: "a", Synchronous: sqlitesafe.SynchronousExtra}},
	{"a?_sync=extra", sqlitesafe.Config{Path: "a", Synchronous: sqlitesafe.SynchronousExtra}},

	// _foreign_keys and _fk.
	{"a?_foreign_keys=1", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOn}},
	{"a?_foreign_keys=true", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOn}},
	{"a?_foreign_keys=YES", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOn}},
	{"a?_fk=on", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOn}},
	{"a?_fk=0", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOff}},
	{"a?_fk=False", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOff}},
	{"a?_fk=no", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOff}},
	{"a?_foreign_keys=OFF", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOff}},

	// _txlock.
	{"a?_txlock=immediate", sqlitesafe.Config{Path: "a", TxLock: sqlitesafe.TxLockImmediate}},
	{"a?_txlock=EXCLUSIVE", sqlitesafe.Config{Path: "a", TxLock: sqlitesafe.TxLockExclusive}},
	{"a?_txlock=Deferred", sqlitesafe.Config{Path: "a", TxLock: sqlitesafe.TxLockDeferred}},

	// _auto_vacuum and _vacuum.
	{"a?_auto_vacuum=0", sqlitesafe.Config{Path: "a", AutoVacuum: sqlitesafe.AutoVacuumNone}},
	{"a?_auto_vacuum=none", sqlitesafe.Config{Path: "a", AutoVacuum: sqlitesafe.AutoVacuumNone}},
	{"a?_auto_vacuum=1", sqlitesafe.Config{Path: "a", AutoVacuum: sqlitesafe.AutoVacuumFull}},
	{"a?_vacuum=Full", sqlitesafe.Config{Path: "a", AutoVacuum: sqlitesafe.AutoVacuumFull}},
	{"a?_vacuum=2", sqlitesafe.Config{Path: "a", AutoVacuum: sqlitesafe.AutoVacuumIncremental}},
	{"a?_vacuum=INCREMENTAL", sqlitesafe.Config{Path: "a", AutoVacuum: sqlitesafe.AutoVacuumIncremental}},

	// _query_only.
	{"a?_query_only=1", sqlitesafe.Config{Path: "a", QueryOnly: true}},
	{"a?_query_only=on", sqlitesafe.Config{Path: "a", QueryOnly: true}},
	{"a?_query_only=off", sqlitesafe.Config{Path: "a"}},

	// _pragma: kept in order, trimmed; schema-qualified names of other
	// schemas are not folded.
	{"a?_pragma=cache_size(-2000)", sqlitesafe.Config{Path: "a", Pragmas: []string{"cache_size(-2000)"}}},
	{"a?_pragma=+cache_size+=+-2000+", sqlitesafe.Config{Path: "a", Pragmas: []string{"cache_size = -2000"}}},
	{"a?_pragma=optimize&_pragma=temp_store(memory)&_pragma=mmap_size=0",
		sqlitesafe.Config{Path: "a", Pragmas: []string{"optimize", "temp_store(memory)", "mmap_size=0"}}},
	{"a?_pragma=main.cache_size=1", sqlitesafe.Config{Path: "a", Pragmas: []string{"main.cache_size=1"}}},
	{"a?_pragma=temp.synchronous(OFF)", sqlitesafe.Config{Path: "a", Pragmas: []string{"temp.synchronous(OFF)"}}},
	{"a?_pragma=cache_size(-2000)&_txlock=deferred&_pragma=optimize",
		sqlitesafe.Config{Path: "a", TxLock: sqlitesafe.TxLockDeferred, Pragmas: []string{"cache_size(-2000)", "optimize"}}},

	// _pragma folded into its field.
	{"a?_pragma=busy_timeout(2500)", sqlitesafe.Config{Path: "a", BusyTimeout: 2500 * time.Millisecond}},
	{"a?_pragma=busy_timeout%3D10s", sqlitesafe.Config{Path: "a", BusyTimeout: 10 * time.Second}},
	{"a?_pragma=journal_mode(wal)", sqlitesafe.Config{Path: "a", JournalMode: sqlitesafe.JournalWAL}},
	{"a?_pragma=++JOURNAL_MODE+=+delete++", sqlitesafe.Config{Path: "a", JournalMode: sqlitesafe.JournalDelete}},
	{"a?_pragma=main.journal_mode=truncate", sqlitesafe.Config{Path: "a", JournalMode: sqlitesafe.JournalTruncate}},
	{"a?_pragma=synchronous(full)", sqlitesafe.Config{Path: "a", Synchronous: sqlitesafe.SynchronousFull}},
	{"a?_pragma=foreign_keys(1)", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOn}},
	{"a?_pragma=foreign_keys=off", sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOff}},
	{"a?_pragma=auto_vacuum(incremental)", sqlitesafe.Config{Path: "a", AutoVacuum: sqlitesafe.AutoVacuumIncremental}},
	{"a?_pragma=query_only(true)", sqlitesafe.Config{Path: "a", QueryOnly: true}},
	{"a?_pragma=foreign_keys(1)&_pragma=cache_size(100)",
		sqlitesafe.Config{Path: "a", ForeignKeys: sqlitesafe.ForeignKeysOn, Pragmas: []string{"cache_size(100)"}}},

	// Keys modernc.org/sqlite reads.
	{"a?_time_format=sqlite", sqlitesafe.Config{Path: "a", TimeFormat: "sqlite"}},
	{"a?_time_format=datetime", sqlitesafe.Config{Path: "a", TimeFormat: "datetime"}},
	{"a?_time_format=string_no_monotonic", sqlitesafe.Config{Path: "a", TimeFormat: "string_no_monotonic"}},
	{"a?_time_integer_format=unix", sqlitesafe.Config{Path: "a", TimeIntegerFormat: "unix"}},
	{"a?_time_integer_format=unix_nano", sqlitesafe.Config{Path: "a", TimeIntegerFormat: "unix_nano"}},
	{"a?_timezone=UTC", sqlitesafe.Config{Path: "a", Timezone: "UTC"}},
	{"a?_timezone=Europe%2FBerlin", sqlitesafe.Config{Path: "a", Timezone: "Europe/Berlin"}},
	{"a?_inttotime=1", sqlitesafe.Config{Path: "a", IntToTime: true}},
	{"a?_inttotime=false", sqlitesafe.Config{Path: "a"}},
	{"a?_texttotime=T", sqlitesafe.Config{Path: "a", TextToTime: true}},
	{"a?_dqs=0", sqlitesafe.Config{Path: "a", DisableDQS: true}},
	{"a?_dqs=false", sqlitesafe.Config{Path: "a", DisableDQS: true}},
	{"a?_dqs=1", sqlitesafe.Config{Path: "a"}},
	{"a?_defensive=true", sqlitesafe.Config{Path: "a", Defensive: true}},
	{"a?_error_rc=TRUE", sqlitesafe.Config{Path: "a", ErrorRC: true}},

	// This driver's keys.
	{"a?_writer_queue=off", sqlitesafe.Config{Path: "a", DisableWriterQueue: true}},
	{"a?_writer_queue=0", sqlitesafe.Config{Path: "a", DisableWriterQueue: true}},
	{"a?_writer_queue=on", sqlitesafe.Config{Path: "a"}},
	{"a?_group_commit=OFF", sqlitesafe.Config{Path: "a", DisableGroupCommit: true}},
	{"a?_group_commit=yes", sqlitesafe.Config{Path: "a"}},
	{"a?_max_readers=4", sqlitesafe.Config{Path: "a", MaxReaders: 4}},
	{"a?_max_readers=0", sqlitesafe.Config{Path: "a"}},
	{"a?_process_queue=off", sqlitesafe.Config{Path: "a", DisableProcessQueue: true}},
	{"a?_process_queue=on", sqlitesafe.Config{Path: "a"}},
	{"a?_network_fs=allow", sqlitesafe.Config{Path: "a", AllowNetworkFS: true}},
	{"a?_network_fs=refuse", sqlitesafe.Config{Path: "a"}},
	{"a?_slow_hold=250ms", sqlitesafe.Config{Path: "a", SlowHold: 250 * time.Millisecond}},
	{"a?_slow_hold=2000", sqlitesafe.Config{Path: "a", SlowHold: 2 * time.Second}},
	{"a?_slow_hold=off", sqlitesafe.Config{Path: "a", SlowHold: -1}},
	{"a?_slow_wait=0", sqlitesafe.Config{Path: "a", SlowWait: -1}},
	{"a?_slow_hold=-1s", sqlitesafe.Config{Path: "a", SlowHold: -time.Second}}, // negative is off, as in the Config
	{"a?_slow_wait=-5000", sqlitesafe.Config{Path: "a", SlowWait: -5 * time.Second}},
	{"a?_journal_size_limit=-5", sqlitesafe.Config{Path: "a", JournalSizeLimit: -5}}, // any negative is no limit, as in SQLite
	{"a?_journal_size_limit=1048576", sqlitesafe.Config{Path: "a", JournalSizeLimit: 1 << 20}},
	{"a?_journal_size_limit=-1", sqlitesafe.Config{Path: "a", JournalSizeLimit: -1}},
	{"a?_pragma=journal_size_limit(4096)", sqlitesafe.Config{Path: "a", JournalSizeLimit: 4096}},

	// The other keys of mattn/go-sqlite3.
	{"a?_cache_size=-20000", sqlitesafe.Config{Path: "a", CacheSize: -20000}},
	{"a?_cache_size=500", sqlitesafe.Config{Path: "a", CacheSize: 500}},
	{"a?_case_sensitive_like=1", sqlitesafe.Config{Path: "a", CaseSensitiveLike: true}},
	{"a?_cslike=0", sqlitesafe.Config{Path: "a"}},
	{"a?_ignore_check_constraints=true", sqlitesafe.Config{Path: "a", IgnoreCheckConstraints: true}},
	{"a?_recursive_triggers=on", sqlitesafe.Config{Path: "a", RecursiveTriggers: true}},
	{"a?_rt=1", sqlitesafe.Config{Path: "a", RecursiveTriggers: true}},
	{"a?_secure_delete=FAST", sqlitesafe.Config{Path: "a", SecureDelete: sqlitesafe.SecureDeleteFast}},
	{"a?_secure_delete=fast", sqlitesafe.Config{Path: "a", SecureDelete: sqlitesafe.SecureDeleteFast}},
	{"a?_secure_delete=yes", sqlitesafe.Config{Path: "a", SecureDelete: sqlitesafe.SecureDeleteOn}},
	{"a?_secure_delete=0", sqlitesafe.Config{Path: "a", SecureDelete: sqlitesafe.SecureDeleteOff}},
	{"a?_writable_schema=1", sqlitesafe.Config{Path: "a", WritableSchema: true}},
	{"a?_locking_mode=NORMAL", sqlitesafe.Config{Path: "a"}}, // SQLite's default: nothing to do
	{"a?_locking=normal", sqlitesafe.Config{Path: "a"}},
	{"a?_pragma=locking_mode(normal)", sqlitesafe.Config{Path: "a", Pragmas: []string{"locking_mode(normal)"}}},
	{"a?_pragma=locking_mode", sqlitesafe.Config{Path: "a", Pragmas: []string{"locking_mode"}}},                                 // a read, harmless
	{"a?_pragma=temp.locking_mode(EXCLUSIVE)", sqlitesafe.Config{Path: "a", Pragmas: []string{"temp.locking_mode(EXCLUSIVE)"}}}, // TEMP is private anyway
	{"a?_mutex=no", sqlitesafe.Config{Path: "a"}},                                                                               // no effect: the writer queue serialises
	{"a?_mutex=FULL", sqlitesafe.Config{Path: "a"}},                                                                             // no effect
	{"a?_stmt_cache_size=32", sqlitesafe.Config{Path: "a"}},                                                                     // no effect: modernc has no statement cache
	{"a?_loc=auto", sqlitesafe.Config{Path: "a"}},                                                                               // modernc's time handling
	{"a?_loc=AUTO", sqlitesafe.Config{Path: "a"}},                                                                               // mattn compares auto case-insensitively
	{"a?_loc=Local", sqlitesafe.Config{Path: "a"}},                                                                              // mattn's time.LoadLocation("Local") is auto
	{"a?_loc=UTC", sqlitesafe.Config{Path: "a", Timezone: "UTC"}},
	{"a?_defer_foreign_keys=0", sqlitesafe.Config{Path: "a"}}, // off is SQLite's default
	{"a?_defer_fk=false", sqlitesafe.Config{Path: "a"}},
	{"a?_pragma=defer_foreign_keys(off)", sqlitesafe.Config{Path: "a", Pragmas: []string{"defer_foreign_keys(off)"}}},
	{"a?_pragma=cache_size(-2000)&_cslike=1", sqlitesafe.Config{Path: "a", CaseSensitiveLike: true, Pragmas: []string{"cache_size(-2000)"}}},

	// Everything at once.
	{"file:///srv/my%20app.db?mode=rwc&vfs=unix&immutable=0&cache=shared&nolock=1" +
		"&_timeout=2s&_journal=wal&_sync=full&_fk=on&_txlock=exclusive&_vacuum=incremental&_query_only=0" +
		"&_pragma=cache_size(-2000)&_pragma=temp_store=memory" +
		"&_time_format=datetime&_time_integer_format=unix_milli&_timezone=UTC&_inttotime=1&_texttotime=1" +
		"&_dqs=0&_defensive=1&_error_rc=1&_writer_queue=off&_group_commit=off&_max_readers=8",
		sqlitesafe.Config{
			Path:               "/srv/my app.db",
			Mode:               sqlitesafe.ModeReadWriteCreate,
			VFS:                "unix",
			URIParams:          map[string]string{"cache": "shared", "nolock": "1"},
			BusyTimeout:        2 * time.Second,
			JournalMode:        sqlitesafe.JournalWAL,
			Synchronous:        sqlitesafe.SynchronousFull,
			ForeignKeys:        sqlitesafe.ForeignKeysOn,
			TxLock:             sqlitesafe.TxLockExclusive,
			AutoVacuum:         sqlitesafe.AutoVacuumIncremental,
			Pragmas:            []string{"cache_size(-2000)", "temp_store=memory"},
			TimeFormat:         "datetime",
			TimeIntegerFormat:  "unix_milli",
			Timezone:           "UTC",
			IntToTime:          true,
			TextToTime:         true,
			DisableDQS:         true,
			Defensive:          true,
			ErrorRC:            true,
			DisableWriterQueue: true,
			DisableGroupCommit: true,
			MaxReaders:         8,
		}},
}

func TestParseDSN(t *testing.T) {
	for _, tt := range parseDSNTests {
		got, err := sqlitesafe.ParseDSN(tt.dsn)
		if err != nil {
			t.Errorf("ParseDSN(%q): %v", tt.dsn, err)
			continue
		}
		if diff := cmp.Diff(&tt.want, got); diff != "" {
			t.Errorf("ParseDSN(%q) mismatch (-want +got):\n%s", tt.dsn, diff)
		}
	}
}

var parseDSNErrorTests = []struct {
	dsn   string
	key   string // DSNError.Key, named in the message when not empty
	value string // DSNError.Value, named in the message when not empty
	msg   string // more text the message must hold
}{
	// An authority other than localhost.
	{"file://evil.example" + secret, "", "evil.example", "want none or localhost"},
	// %00 would cut the path short inside SQLite.
	{"file:" + secret + "%00.bak", "", "", "NUL"}, // SQLite would open the path cut at the NUL

	// Malformed query escapes name the fragment only.
	{secret + "?_pragma=a%zz", "_pragma", "a%zz", "malformed escape"}, // %zz is not an escape
	{secret + "?%zz=1&_fk=1", "%zz", "", "malformed escape"},          // in the key too
	// A NUL byte in a value.
	{secret + "?_pragma=x%00", "_pragma", "", "NUL"}, // SQLite would run the text cut at the NUL
	// A value without a key.
	{secret + "?=deferred", "", "", "no key"}, // a value of no key

	// Typos in keys are errors, with a suggestion when one is close.
	{secret + "?_busy_timout=5000", "_busy_timout", "", `did you mean "_busy_timeout"?`}, // one letter dropped
	{secret + "?_TXLOCK=immediate", "_TXLOCK", "", `did you mean "_txlock"?`},            // keys are case-sensitive
	{secret + "?_journalmode=WAL", "_journalmode", "", `did you mean "_journal_mode"?`},  // the underscore dropped
	{secret + "?_frobnicate=1", "_frobnicate", "", "unknown DSN key"},                    // nothing near enough to suggest
	{secret + "?_=1", "_", "", "unknown DSN key"},                                        // a bare underscore is no key
	// SQLite matches its keys case-sensitively: "Mode=ro" would open read-write.
	{secret + "?Mode=ro", "Mode", "", `did you mean "mode"?`}, // SQLite would ignore it and open read-write

	// Keys given twice, a key with its alias, a key and a _pragma.
	{secret + "?_txlock=deferred&_txlock=immediate", "_txlock", "", "given more than once"},                                                             // which one would win is a guess
	{secret + "?mode=ro&mode=rw", "mode", "", "given more than once"},                                                                                   // SQLite would take one silently
	{secret + "?nolock=1&nolock=1", "nolock", "", "given more than once"},                                                                               // even for a key passed to SQLite
	{secret + "?_busy_timeout=1000&_timeout=2000", "_timeout", "", `"_busy_timeout" and "_timeout" both set the busy timeout; give one`},                // mattn lets the alias win; we ask
	{secret + "?_sync=1&_synchronous=1", "_synchronous", "", "both set"},                                                                                // even when they agree
	{secret + "?_journal_mode=WAL&_pragma=journal_mode(DELETE)", "_pragma", "", `"_journal_mode" and "_pragma=journal_mode" both set the journal mode`}, // modernc runs both, in its own order
	{secret + "?_pragma=foreign_keys(1)&_fk=0", "_fk", "", "both set foreign keys"},                                                                     // the order of keys must not decide
	{secret + "?_pragma=journal_mode=WAL&_pragma=journal_mode=WAL", "_pragma", "", "given more than once"},                                              // a folded _pragma is a key
	{secret + "?_dqs=0&_dqs=0", "_dqs", "", "given more than once"},                                                                                     // modernc rejects a repeated _defensive; all keys alike here

	// Bad values of SQLite's URI parameters.
	{secret + "?mode=RO", "mode", "RO", "want ro, rw, rwc or memory"},         // SQLite is case-sensitive here
	{secret + "?mode=memroy", "mode", "memroy", "want ro, rw, rwc or memory"}, // a typo SQLite would refuse late
	{secret + "?mode=", "mode", "", "want ro, rw, rwc or memory"},             // empty is no mode
	{secret + "?vfs=", "vfs", "", "VFS"},                                      // empty names no VFS
	{secret + "?immutable=maybe", "immutable", "maybe", "want 1, 0"},          // SQLite would read it as false
	{secret + "?cache=Shared", "cache", "Shared", "want shared or private"},   // SQLite compares case-sensitively

	// Bad values of the PRAGMA keys.
	{secret + "?_busy_timeout=0", "_busy_timeout", "0", "want a positive number of milliseconds or a duration such as 5s"}, // 0 would turn the busy handler off
	{secret + "?_busy_timeout=-5", "_busy_timeout", "-5", "want a positive"},                                               // no negative wait
	{secret + "?_timeout=0s", "_timeout", "0s", "want a positive"},                                                         // as 0
	{secret + "?_timeout=-1s", "_timeout", "-1s", "want a positive"},                                                       // as -5
	{secret + "?_busy_timeout=5x", "_busy_timeout", "5x", "want a positive"},                                               // not a duration
	{secret + "?_busy_timeout=99999999999999999", "_busy_timeout", "99999999999999999", "want a positive"},                 // overflows
	{secret + "?_busy_timeout=", "_busy_timeout", "", "want a positive"},                                                   // modernc would skip the PRAGMA; we say so
	{secret + "?_journal_mode=wall", "_journal_mode", "wall", "want DELETE, TRUNCATE, PERSIST, MEMORY, WAL or OFF"},        // SQLite would ignore it and keep the old mode
	{secret + "?_synchronous=4", "_synchronous", "4", "want OFF, NORMAL, FULL or EXTRA"},                                   // there are levels 0 to 3
	{secret + "?_fk=2", "_fk", "2", "want 1, 0"},                                                                           // not a boolean
	{secret + "?_txlock=sometimes", "_txlock", "sometimes", "want deferred, immediate or exclusive"},                       // no such BEGIN
	{secret + "?_auto_vacuum=3", "_auto_vacuum", "3", "want NONE, FULL or INCREMENTAL"},                                    // modes 0 to 2
	{secret + "?_query_only=maybe", "_query_only", "maybe", "want 1, 0"},                                                   // not a boolean

	// Bad _pragma values.
	{secret + "?_pragma=", "_pragma", "", "want name(value)"},                                                  // nothing to run
	{secret + "?_pragma=+++", "_pragma", "", "want name(value)"},                                               // spaces only
	{secret + "?_pragma=cache_size%3D1%3BATTACH+'x.db'+AS+x", "_pragma", "cache_size=1;ATTACH", "without ';'"}, // modernc would run the ATTACH too
	{secret + "?_pragma=cache_size()", "_pragma", "cache_size()", "want name(value)"},                          // an empty value
	{secret + "?_pragma=cache_size(1", "_pragma", "cache_size(1", "want name(value)"},                          // unbalanced
	{secret + "?_pragma=1abc", "_pragma", "1abc", "want name(value)"},                                          // not an identifier
	{secret + "?_pragma=cache+size", "_pragma", "cache size", "want name(value)"},                              // two words
	{secret + "?_pragma=journal_mode", "_pragma", "journal_mode", "needs a value"},                             // a read of a folded PRAGMA sets nothing
	{secret + "?_pragma=busy_timeout(0)", "_pragma", "0", `"_pragma=busy_timeout" (want a positive`},           // checked as _busy_timeout
	{secret + "?_pragma=synchronous(LOW)", "_pragma", "LOW", "want OFF, NORMAL"},                               // checked as _synchronous
	{secret + "?_pragma=main.foreign_keys=sure", "_pragma", "sure", "want 1, 0"},                               // schema main is folded too

	// Bad values of the keys modernc.org/sqlite reads, checked as it does.
	{secret + "?_time_format=SQLITE", "_time_format", "SQLITE", "want sqlite, datetime or string_no_monotonic"},      // modernc is case-sensitive
	{secret + "?_time_integer_format=unix_seconds", "_time_integer_format", "unix_seconds", "want unix, unix_milli"}, // no such format
	{secret + "?_timezone=Mars%2FOlympus_Mons", "_timezone", "Mars/Olympus_Mons", "time.LoadLocation"},               // no such zone
	{secret + "?_timezone=", "_timezone", "", "time.LoadLocation"},                                                   // empty names no zone
	{secret + "?_inttotime=yes", "_inttotime", "yes", "want 1, t, true, 0, f or false"},                              // strconv.ParseBool
	{secret + "?_texttotime=2", "_texttotime", "2", "want 1, t"},                                                     // strconv.ParseBool refuses it
	{secret + "?_dqs=off", "_dqs", "off", "want 1, t"},                                                               // modernc reads its keys with strconv.ParseBool
	{secret + "?_defensive=on", "_defensive", "on", "want 1, t"},                                                     // as _dqs
	{secret + "?_error_rc=", "_error_rc", "", "want 1, t"},                                                           // empty is no boolean
	{secret + "?_defensive=1&_journal_mode=off", "_journal_mode", "OFF", `"_defensive"`},                             // SQLite would ignore the OFF

	// Bad values of this driver's keys.
	{secret + "?_writer_queue=sometimes", "_writer_queue", "sometimes", "want on or off"},                               // not a boolean
	{secret + "?_group_commit=", "_group_commit", "", "want on or off"},                                                 // empty is no boolean
	{secret + "?_max_readers=-1", "_max_readers", "-1", "want a whole number, 0 or more"},                               // no negative cap
	{secret + "?_max_readers=lots", "_max_readers", "lots", "want a whole number"},                                      // not a number
	{secret + "?_process_queue=maybe", "_process_queue", "maybe", "want on or off"},                                     // not a boolean
	{secret + "?_network_fs=yes", "_network_fs", "yes", "want refuse or allow"},                                         // allowing must be said in words
	{secret + "?_slow_hold=0s", "_slow_hold", "0s", "to turn the warning off"},                                          // 0 is off, 0s is not a threshold
	{secret + "?_slow_wait=soon", "_slow_wait", "soon", "want a positive number of milliseconds"},                       // not a duration
	{secret + "?_journal_size_limit=0", "_journal_size_limit", "0", "want a positive number of bytes, or -1"},           // 0 would read as the default in the Config
	{secret + "?_journal_size_limit=64MB", "_journal_size_limit", "64MB", "want a positive number of bytes"},            // bytes, without units
	{secret + "?_journal_size_limit=1&_pragma=journal_size_limit(2)", "_pragma", "", "both set the journal size limit"}, // the order of keys must not decide
	{secret + "?_max_readers=99999999999999999999", "_max_readers", "99999999999999999999", "want a whole number"},      // overflows int

	// Bad values of mattn/go-sqlite3's other keys.
	{secret + "?_cache_size=0", "_cache_size", "0", "not 0"},                                                                            // 0 would read as the default in the Config
	{secret + "?_cache_size=2MB", "_cache_size", "2MB", "pages"},                                                                        // a number of pages or KiB
	{secret + "?_cslike=maybe", "_cslike", "maybe", "want 1, 0"},                                                                        // not a boolean
	{secret + "?_rt=2", "_rt", "2", "want 1, 0"},                                                                                        // not a boolean
	{secret + "?_secure_delete=slow", "_secure_delete", "slow", "or FAST"},                                                              // a boolean or FAST
	{secret + "?_writable_schema=", "_writable_schema", "", "want 1, 0"},                                                                // empty is no boolean
	{secret + "?_mutex=yes", "_mutex", "yes", "want no or full"},                                                                        // mattn takes no or full only
	{secret + "?_stmt_cache_size=-1", "_stmt_cache_size", "-1", "0 or more"},                                                            // mattn refuses it too
	{secret + "?_locking_mode=SHARED", "_locking_mode", "SHARED", "want NORMAL"},                                                        // no such mode
	{secret + "?_loc=Nowhere%2FAtAll", "_loc", "Nowhere/AtAll", "want auto or UTC"},                                                     // not a zone at all
	{secret + "?_rt=1&_recursive_triggers=0", "_recursive_triggers", "", `"_rt" and "_recursive_triggers" both set recursive triggers`}, // mattn lets the alias win; we ask
	{secret + "?_cache_size=100&_pragma=cache_size(200)", "_pragma", "", `"_cache_size" and "_pragma=cache_size" both set`},             // which runs last would decide
	{secret + "?_loc=UTC&_timezone=UTC", "_timezone", "", `"_loc" and "_timezone" both set the time zone`},                              // _loc=UTC is _timezone=UTC
	{secret + "?_defensive=1&_writable_schema=1", "_writable_schema", "", `"_defensive"`},                                               // SQLite would ignore writable_schema

	// Keys the driver cannot honour: refused with why and what to do.
	{secret + "?_locking_mode=EXCLUSIVE", "_locking_mode", "EXCLUSIVE", "read-only connections need shared access"},  // readers would wait out the busy timeout
	{secret + "?_locking=exclusive", "_locking", "exclusive", "leave locking_mode at NORMAL"},                        // the alias, any case
	{secret + "?_pragma=locking_mode(EXCLUSIVE)", "_pragma", "EXCLUSIVE", `"_pragma=locking_mode" is not supported`}, // the same through _pragma
	{secret + "?_pragma=main.locking_mode=exclusive", "_pragma", "exclusive", "database is locked"},                  // in schema main too
	{secret + "?_defer_foreign_keys=1", "_defer_foreign_keys", "1", "DEFERRABLE INITIALLY DEFERRED"},                 // SQLite resets it at every COMMIT
	{secret + "?_defer_fk=on", "_defer_fk", "on", "end of every transaction"},                                        // the alias
	{secret + "?_pragma=defer_foreign_keys(ON)", "_pragma", "ON", "first statement of each transaction"},             // the same through _pragma
	{secret + "?_loc=Europe%2FBerlin", "_loc", "Europe/Berlin", "_timezone reads such text as a time in the zone"},   // mattn and modernc read zone-less text differently
	{secret + "?_auth", "_auth", "", "no user-authentication extension"},                                             // modernc has no user authentication
	{secret + "?_auth_user=admin", "_auth_user", "", "file permissions"},                                             // as _auth
	{secret + "?_auth_pass=hunter2", "_auth_pass", "", "mode=ro"},                                                    // the password is not echoed (checked below)
	{secret + "?_auth_crypt=SHA256", "_auth_crypt", "", "not supported"},                                             // as _auth
	{secret + "?_auth_salt=pepper", "_auth_salt", "", "not supported"},                                               // as _auth
}

func TestParseDSNErrors(t *testing.T) {
	for _, tt := range parseDSNErrorTests {
		c, err := sqlitesafe.ParseDSN(tt.dsn)
		if err == nil {
			t.Errorf("ParseDSN(%q) = %+v, want an error", tt.dsn, c)
			continue
		}
		if c != nil {
			t.Errorf("ParseDSN(%q) returned a Config with its error", tt.dsn)
		}
		msg := err.Error()
		if !errors.Is(err, sqlitesafe.ErrInvalidDSN) {
			t.Errorf("ParseDSN(%q): %v is not ErrInvalidDSN", tt.dsn, err)
		}
		var de *sqlitesafe.DSNError
		if !errors.As(err, &de) {
			t.Errorf("ParseDSN(%q): %v (%T) is not a *DSNError", tt.dsn, err, err)
			continue
		}
		if de.Key != tt.key {
			t.Errorf("ParseDSN(%q): Key = %q, want %q", tt.dsn, de.Key, tt.key)
		}
		if tt.value != "" && de.Value != tt.value && !strings.HasPrefix(de.Value, tt.value) {
			t.Errorf("ParseDSN(%q): Value = %q, want %q", tt.dsn, de.Value, tt.value)
		}
		if !strings.HasPrefix(msg, "sqlitesafe: ") {
			t.Errorf("ParseDSN(%q): message %q does not start with \"sqlitesafe: \"", tt.dsn, msg)
		}
		for _, want := range []string{tt.key, tt.value, tt.msg} {
			if !strings.Contains(msg, want) {
				t.Errorf("ParseDSN(%q): message %q does not hold %q", tt.dsn, msg, want)
			}
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("ParseDSN(%q): message %q holds the password", tt.dsn, msg)
		}
		if tt.dsn != "" && strings.Contains(msg, tt.dsn) || strings.Contains(msg, "secret-7f3a9c") {
			t.Errorf("ParseDSN(%q): message %q holds the DSN or its path", tt.dsn, msg)
		}
	}
}

func TestDSNErrorUnwrap(t *testing.T) {
	_, err := sqlitesafe.ParseDSN("a?_timezone=Nowhere%2FAtAll")
	var de *sqlitesafe.DSNError
	if !errors.As(err, &de) {
		t.Fatalf("ParseDSN: %v, want a *DSNError", err)
	}
	if de.Err == nil || errors.Unwrap(err) != de.Err {
		t.Errorf("Unwrap() = %v, want time.LoadLocation's error", errors.Unwrap(err))
	}
	if !strings.HasSuffix(err.Error(), ": "+de.Err.Error()) {
		t.Errorf("message %q does not end with the cause %q", err, de.Err)
	}
	if !errors.Is(err, sqlitesafe.ErrInvalidDSN) {
		t.Errorf("%v is not ErrInvalidDSN", err)
	}

	_, err = sqlitesafe.ParseDSN("a?_pragma=%g0")
	if !errors.As(err, &de) || de.Err == nil {
		t.Errorf("ParseDSN: %v, want a *DSNError wrapping net/url's error", err)
	}
}

func TestFormatDSN(t *testing.T) {
	tests := []struct {
		c    sqlitesafe.Config
		want string
	}{
		{sqlitesafe.Config{Path: "app.db"}, "app.db"},
		{sqlitesafe.Config{Path: ":memory:"}, ":memory:"},
		{sqlitesafe.Config{Path: "my app%20.db"}, "my app%20.db"},
		{sqlitesafe.Config{Path: "what?.db"}, "file:what%3F.db"},
		{sqlitesafe.Config{Path: "/srv/a#b%.db"}, "file:///srv/a%23b%25.db"},
		{sqlitesafe.Config{Path: "//srv/a?"}, "file:////srv/a%3F"},
		{sqlitesafe.Config{Path: "file:x"}, "file:file:x"},
		{sqlitesafe.Config{Path: "a", BusyTimeout: 5 * time.Second}, "a?_busy_timeout=5000"},
		{sqlitesafe.Config{Path: "a", BusyTimeout: 1500 * time.Microsecond}, "a?_busy_timeout=1.5ms"},
		{sqlitesafe.Config{Path: "a", DisableDQS: true, ForeignKeys: sqlitesafe.ForeignKeysOff}, "a?_foreign_keys=off&_dqs=0"},
		{sqlitesafe.Config{Path: "a", Pragmas: []string{"cache_size = -2000", "optimize"}},
			"a?_pragma=cache_size+%3D+-2000&_pragma=optimize"},
		{sqlitesafe.Config{
			Path:               "/srv/app.db",
			Mode:               sqlitesafe.ModeReadWriteCreate,
			VFS:                "unix",
			Immutable:          true,
			URIParams:          map[string]string{"nolock": "1", "cache": "shared", "modeof": "/a b"},
			BusyTimeout:        2 * time.Second,
			JournalMode:        sqlitesafe.JournalWAL,
			Synchronous:        sqlitesafe.SynchronousFull,
			ForeignKeys:        sqlitesafe.ForeignKeysOn,
			TxLock:             sqlitesafe.TxLockExclusive,
			AutoVacuum:         sqlitesafe.AutoVacuumIncremental,
			QueryOnly:          true,
			Pragmas:            []string{"cache_size(-2000)"},
			TimeFormat:         "datetime",
			TimeIntegerFormat:  "unix_milli",
			Timezone:           "Europe/Berlin",
			IntToTime:          true,
			TextToTime:         true,
			DisableDQS:         true,
			Defensive:          true,
			ErrorRC:            true,
			DisableWriterQueue: true,
			DisableGroupCommit: true,
			MaxReaders:         8,
		}, "/srv/app.db?mode=rwc&vfs=unix&immutable=1&cache=shared&modeof=%2Fa+b&nolock=1" +
			"&_busy_timeout=2000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=on&_txlock=exclusive" +
			"&_auto_vacuum=INCREMENTAL&_query_only=1&_pragma=cache_size%28-2000%29" +
			"&_time_format=datetime&_time_integer_format=unix_milli&_timezone=Europe%2FBerlin" +
			"&_inttotime=1&_texttotime=1&_dqs=0&_defensive=1&_error_rc=1" +
			"&_writer_queue=off&_group_commit=off&_max_readers=8"},
		{sqlitesafe.Config{Path: "a", CacheSize: -20000, CaseSensitiveLike: true, IgnoreCheckConstraints: true,
			RecursiveTriggers: true, SecureDelete: sqlitesafe.SecureDeleteFast, WritableSchema: true},
			"a?_cache_size=-20000&_case_sensitive_like=1&_ignore_check_constraints=1&_recursive_triggers=1" +
				"&_secure_delete=FAST&_writable_schema=1"},
		{sqlitesafe.Config{}, ""},
		{sqlitesafe.Config{TxLock: sqlitesafe.TxLockDeferred}, "?_txlock=deferred"},
		{sqlitesafe.Config{Path: "a", JournalSizeLimit: -5, SlowHold: -5 * time.Second, SlowWait: -1500 * time.Microsecond},
			"a?_slow_hold=-5000&_slow_wait=-1.5ms&_journal_size_limit=-5"},
		{sqlitesafe.Config{Path: "a", DisableProcessQueue: true, AllowNetworkFS: true,
			SlowHold: -1, SlowWait: 1500 * time.Microsecond, JournalSizeLimit: -1},
			"a?_process_queue=off&_network_fs=allow&_slow_hold=off&_slow_wait=1.5ms&_journal_size_limit=-1"},
	}
	for _, tt := range tests {
		if got := tt.c.FormatDSN(); got != tt.want {
			t.Errorf("FormatDSN(%+v)\n got %q\nwant %q", tt.c, got, tt.want)
		}
		checkRoundTrip(t, tt.want)
	}
}

func TestFormatDSNRoundTrip(t *testing.T) {
	for _, tt := range parseDSNTests {
		checkRoundTrip(t, tt.dsn)
	}
}

// checkRoundTrip checks, for a DSN that ParseDSN accepts, that formatting
// and parsing again gives the same Config and formatting that gives the
// same DSN.
func checkRoundTrip(t *testing.T, dsn string) {
	t.Helper()
	c1, err := sqlitesafe.ParseDSN(dsn)
	if err != nil {
		t.Errorf("ParseDSN(%q): %v", dsn, err)
		return
	}
	dsn1 := c1.FormatDSN()
	c2, err := sqlitesafe.ParseDSN(dsn1)
	if err != nil {
		t.Errorf("ParseDSN(%q) (formatted from %q): %v", dsn1, dsn, err)
		return
	}
	if diff := cmp.Diff(c1, c2); diff != "" {
		t.Errorf("ParseDSN(%q) (formatted from %q) mismatch (-first +second):\n%s", dsn1, dsn, diff)
	}
	if dsn2 := c2.FormatDSN(); dsn2 != dsn1 {
		t.Errorf("FormatDSN not at a fixed point for %q:\n first %q\nsecond %q", dsn, dsn1, dsn2)
	}
}

// TestConfigRoundTrip checks that a Config built in code survives
// FormatDSN then ParseDSN exactly, for values that have no DSN spelling of
// their own (a negative limit, a negative threshold) and the new keys.
func TestConfigRoundTrip(t *testing.T) {
	for _, c := range []sqlitesafe.Config{
		{Path: "a", JournalSizeLimit: -5},
		{Path: "a", JournalSizeLimit: math.MinInt64},
		{Path: "a", SlowHold: -5 * time.Second},
		{Path: "a", SlowWait: -1},
		{Path: "a", SlowWait: -time.Nanosecond},
		{Path: "a", SlowHold: math.MinInt64, SlowWait: math.MaxInt64},
		{Path: "a", BusyTimeout: math.MaxInt64},
		{Path: "a", CacheSize: math.MinInt64, SecureDelete: sqlitesafe.SecureDeleteOff},
		{Path: "", Mode: sqlitesafe.ModeMemory, URIParams: map[string]string{"cache": "shared"}},
		{Path: "a", URIParams: map[string]string{"nolock": "", "a-b": "&=+ %"}},
	} {
		if _, err := sqlitesafe.NewConnector(&c); err != nil {
			t.Errorf("NewConnector(%+v): %v", c, err)
			continue
		}
		back, err := sqlitesafe.ParseDSN(c.FormatDSN())
		if err != nil {
			t.Errorf("ParseDSN(%q): %v", c.FormatDSN(), err)
			continue
		}
		if diff := cmp.Diff(&c, back); diff != "" {
			t.Errorf("ParseDSN(%q) mismatch (-config +parsed):\n%s", c.FormatDSN(), diff)
		}
	}
}

func TestConfigClone(t *testing.T) {
	c := &sqlitesafe.Config{
		Path:       "a",
		URIParams:  map[string]string{"nolock": "1"},
		Pragmas:    []string{"optimize"},
		MaxReaders: 3,
	}
	cc := c.Clone()
	if diff := cmp.Diff(c, cc); diff != "" {
		t.Fatalf("Clone mismatch (-orig +clone):\n%s", diff)
	}
	cc.URIParams["nolock"] = "0"
	cc.Pragmas[0] = "cache_size(1)"
	if c.URIParams["nolock"] != "1" || c.Pragmas[0] != "optimize" {
		t.Errorf("changing the clone changed the original: %+v", c)
	}
	if (*sqlitesafe.Config)(nil).Clone() != nil {
		t.Errorf("nil.Clone() != nil")
	}
	if got := (&sqlitesafe.Config{Path: "a"}).Clone(); got.URIParams != nil || got.Pragmas != nil {
		t.Errorf("Clone of empty map and slice = %+v, want nil ones", got)
	}
}

func FuzzParseDSN(f *testing.F) {
	for _, tt := range parseDSNTests {
		f.Add(tt.dsn)
	}
	for _, tt := range parseDSNErrorTests {
		f.Add(tt.dsn)
	}
	for _, dsn := range []string{"dqlite://127.0.0.1:9001,127.0.0.1:9002/app.db?_busy_timeout=3s&_failover_timeout=30s",
		"dqlite://h:1/my%20db?_fk=on&_pragma=cache_size(-2000)", "dqlite://h:1/db?_synchronous=FULL", "dqlite://h/db"} {
		f.Add(dsn)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		c, err := sqlitesafe.ParseDSN(dsn)
		if err != nil {
			var de *sqlitesafe.DSNError
			if !errors.As(err, &de) || !errors.Is(err, sqlitesafe.ErrInvalidDSN) {
				t.Fatalf("ParseDSN(%q): %v (%T), want a *DSNError", dsn, err, err)
			}
			if c != nil {
				t.Fatalf("ParseDSN(%q) returned a Config with its error", dsn)
			}
			if len(dsn) >= 8 && strings.Contains(err.Error(), dsn) {
				t.Fatalf("ParseDSN(%q): message %q holds the whole DSN", dsn, err)
			}
			return
		}
		checkRoundTrip(t, dsn)
	})
}

// compatTests are DSNs written for github.com/mattn/go-sqlite3 and
// modernc.org/sqlite: every key of mattn's README, every key modernc
// documents, and DSNs from public Go code. DIR is a fresh directory.
//
// Each has one outcome. "same": it opens, and each of reads gives its
// value on every kind of connection the driver opens (a reader, the writer,
// a pinned connection); with modernc set, plain modernc.org/sqlite gives
// the same values (for keys it knows; it ignores mattn's silently).
// "noeffect": it opens, and the key is documented as accepted without
// effect. "refused": sql.Open fails at once with a *DSNError naming key
// and holding refused, what to do instead.
var compatTests = []struct {
	from    string // mattn, modernc, or "public" for DSNs from public code
	dsn     string
	outcome string   // same, noeffect or refused
	reads   []string // "pragma=want" or "SELECT ...=want"; "TIME" compares a stored time.Time with modernc's
	modernc bool
	key     string // the key refused
	refused string
	seed    bool // create DIR/a.db with a table seed(x) first (mode=ro, immutable)
}{
	// mattn/go-sqlite3's README, key by key.
	{from: "mattn", dsn: "DIR/a.db?_auth", outcome: "refused", key: "_auth", refused: "file permissions"},
	{from: "mattn", dsn: "DIR/a.db?_auth_user=admin&_auth_pass=secret", outcome: "refused", key: "_auth_user", refused: "mode=ro"},
	{from: "mattn", dsn: "DIR/a.db?_auth_pass=secret", outcome: "refused", key: "_auth_pass", refused: "no user-authentication extension"},
	{from: "mattn", dsn: "DIR/a.db?_auth_crypt=SSHA256", outcome: "refused", key: "_auth_crypt", refused: "file permissions"},
	{from: "mattn", dsn: "DIR/a.db?_auth_salt=xyz", outcome: "refused", key: "_auth_salt", refused: "file permissions"},
	{from: "mattn", dsn: "DIR/a.db?_auto_vacuum=full", outcome: "same", reads: []string{"auto_vacuum=1"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_vacuum=2", outcome: "same", reads: []string{"auto_vacuum=2"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_busy_timeout=3000", outcome: "same", reads: []string{"busy_timeout=3000"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_timeout=250", outcome: "same", reads: []string{"busy_timeout=250"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_case_sensitive_like=1", outcome: "same", reads: []string{"SELECT 'a' LIKE 'A'=0"}},
	{from: "mattn", dsn: "DIR/a.db?_cslike=true", outcome: "same", reads: []string{"SELECT 'a' LIKE 'A'=0"}},
	{from: "mattn", dsn: "DIR/a.db?_defer_foreign_keys=1", outcome: "refused", key: "_defer_foreign_keys", refused: "PRAGMA defer_foreign_keys = ON"},
	{from: "mattn", dsn: "DIR/a.db?_defer_fk=0", outcome: "same", reads: []string{"defer_foreign_keys=0"}},
	{from: "mattn", dsn: "DIR/a.db?_foreign_keys=1", outcome: "same", reads: []string{"foreign_keys=1"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_fk=false", outcome: "same", reads: []string{"foreign_keys=0"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_ignore_check_constraints=1", outcome: "same", reads: []string{"ignore_check_constraints=1"}},
	{from: "mattn", dsn: "file:DIR/a.db?immutable=1", outcome: "same", reads: []string{"SELECT count(*) FROM seed=1"}, seed: true},
	{from: "mattn", dsn: "DIR/a.db?_journal_mode=WAL", outcome: "same", reads: []string{"journal_mode=wal"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_journal=TRUNCATE", outcome: "same", reads: []string{"journal_mode=truncate"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_locking_mode=EXCLUSIVE", outcome: "refused", key: "_locking_mode", refused: "leave locking_mode at NORMAL"},
	{from: "mattn", dsn: "DIR/a.db?_locking=NORMAL", outcome: "same", reads: []string{"locking_mode=normal"}},
	{from: "mattn", dsn: "file:DIR/a.db?mode=ro", outcome: "same", reads: []string{"SELECT count(*) FROM seed=1"}, seed: true},
	{from: "mattn", dsn: "file:DIR/a.db?mode=rw", outcome: "same", reads: []string{"SELECT count(*) FROM seed=1"}, seed: true, modernc: true},
	{from: "mattn", dsn: "file:DIR/a.db?mode=rwc", outcome: "same", reads: []string{"journal_mode=wal"}},
	{from: "mattn", dsn: "file:m1?mode=memory", outcome: "same", reads: []string{"journal_mode=memory"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_mutex=no", outcome: "noeffect"},
	{from: "mattn", dsn: "DIR/a.db?_mutex=full", outcome: "noeffect"},
	{from: "mattn", dsn: "DIR/a.db?_query_only=1", outcome: "same", reads: []string{"query_only=1"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_recursive_triggers=1", outcome: "same", reads: []string{"recursive_triggers=1"}},
	{from: "mattn", dsn: "DIR/a.db?_rt=on", outcome: "same", reads: []string{"recursive_triggers=1"}},
	{from: "mattn", dsn: "DIR/a.db?_secure_delete=FAST", outcome: "same", reads: []string{"secure_delete=2"}},
	{from: "mattn", dsn: "DIR/a.db?_secure_delete=true", outcome: "same", reads: []string{"secure_delete=1"}},
	{from: "mattn", dsn: "DIR/a.db?cache=shared", outcome: "noeffect"}, // ignored for a file: see the cache key
	{from: "mattn", dsn: "DIR/a.db?cache=private", outcome: "same", reads: []string{"journal_mode=wal"}},
	{from: "mattn", dsn: "DIR/a.db?_synchronous=FULL", outcome: "same", reads: []string{"synchronous=2"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_sync=0", outcome: "same", reads: []string{"synchronous=0"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_loc=auto", outcome: "noeffect", reads: []string{"TIME"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_loc=UTC", outcome: "same", reads: []string{"SELECT 1=1"}},
	{from: "mattn", dsn: "DIR/a.db?_loc=Asia%2FTokyo", outcome: "refused", key: "_loc", refused: "convert with t.In"},
	{from: "mattn", dsn: "DIR/a.db?_txlock=deferred", outcome: "same", reads: []string{"SELECT 1=1"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_txlock=exclusive", outcome: "same", reads: []string{"SELECT 1=1"}, modernc: true},
	{from: "mattn", dsn: "DIR/a.db?_writable_schema=1", outcome: "same", reads: []string{"writable_schema=1"}},
	{from: "mattn", dsn: "DIR/a.db?_cache_size=-4000", outcome: "same", reads: []string{"cache_size=-4000"}},
	{from: "mattn", dsn: "DIR/a.db?_stmt_cache_size=16", outcome: "noeffect"},

	// modernc.org/sqlite's keys.
	{from: "modernc", dsn: "DIR/a.db?_pragma=cache_size(-3000)&_pragma=foreign_keys(1)", outcome: "same",
		reads: []string{"cache_size=-3000", "foreign_keys=1"}, modernc: true},
	{from: "modernc", dsn: "DIR/a.db?_pragma=busy_timeout(2000)&_pragma=journal_mode(WAL)", outcome: "same",
		reads: []string{"busy_timeout=2000", "journal_mode=wal"}, modernc: true},
	{from: "modernc", dsn: "DIR/a.db?_pragma=locking_mode(EXCLUSIVE)", outcome: "refused", key: "_pragma", refused: "locking_mode"},
	{from: "modernc", dsn: "DIR/a.db?_time_format=sqlite", outcome: "same", reads: []string{"TIME"}, modernc: true},
	{from: "modernc", dsn: "DIR/a.db?_time_format=datetime", outcome: "same", reads: []string{"TIME"}, modernc: true},
	{from: "modernc", dsn: "DIR/a.db?_time_integer_format=unix_milli", outcome: "same", reads: []string{"TIME"}, modernc: true},
	{from: "modernc", dsn: "DIR/a.db?_timezone=Europe%2FBerlin", outcome: "same", reads: []string{"TIME"}, modernc: true},
	{from: "modernc", dsn: "DIR/a.db?_inttotime=1&_texttotime=1", outcome: "same", reads: []string{"TIME"}, modernc: true},
	{from: "modernc", dsn: "DIR/a.db?_dqs=0", outcome: "same", reads: []string{`SELECT count(*) FROM pragma_table_list WHERE name = 'x'=0`}, modernc: true},
	{from: "modernc", dsn: "DIR/a.db?_defensive=1", outcome: "same", reads: []string{"TIME"}, modernc: true},
	{from: "modernc", dsn: "DIR/a.db?_error_rc=1", outcome: "same", reads: []string{"TIME"}, modernc: true},
	{from: "modernc", dsn: "file:/m2?vfs=memdb", outcome: "same", reads: []string{"journal_mode=memory"}, modernc: true},

	// The in-memory forms with WAL asked for: SQLite keeps the journal in memory.
	{from: "modernc", dsn: ":memory:?_journal_mode=WAL", outcome: "same", reads: []string{"journal_mode=memory"}, modernc: true},
	{from: "modernc", dsn: "file::memory:?_journal_mode=WAL", outcome: "same", reads: []string{"journal_mode=memory"}, modernc: true},
	{from: "modernc", dsn: "file:m3?mode=memory&_journal_mode=WAL", outcome: "same", reads: []string{"journal_mode=memory"}, modernc: true},
	{from: "modernc", dsn: "file:/m4?vfs=memdb&_journal_mode=WAL", outcome: "same", reads: []string{"journal_mode=memory"}, modernc: true},
	{from: "modernc", dsn: ":memory:?_journal_mode=OFF", outcome: "same", reads: []string{"journal_mode=off"}, modernc: true},

	// DSNs from public Go code (searched for sql.Open with sqlite3 and sqlite).
	{from: "public", dsn: "file:DIR/admin.db?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate", outcome: "same",
		reads: []string{"busy_timeout=10000", "journal_mode=wal"}, modernc: true},
	{from: "public", dsn: "DIR/a.db?_busy_timeout=5000", outcome: "same", reads: []string{"busy_timeout=5000"}, modernc: true},
	{from: "public", dsn: "DIR/resources.db?_busy_timeout=5000&_journal_mode=WAL", outcome: "same",
		reads: []string{"busy_timeout=5000", "journal_mode=wal"}, modernc: true},
	{from: "public", dsn: "DIR/a.db?_busy_timeout=5000&_foreign_keys=on", outcome: "same",
		reads: []string{"busy_timeout=5000", "foreign_keys=1"}, modernc: true},
	{from: "public", dsn: "DIR/ez.db?_busy_timeout=9999999", outcome: "same", reads: []string{"busy_timeout=9999999"}, modernc: true},
	{from: "public", dsn: ":memory:?_loc=auto", outcome: "noeffect", reads: []string{"TIME"}, modernc: true},
	{from: "public", dsn: "DIR/orvix.db?_loc=auto&_busy_timeout=5000&_txlock=immediate", outcome: "noeffect",
		reads: []string{"busy_timeout=5000"}, modernc: true},
	{from: "public", dsn: "file:TestX?mode=memory&cache=shared&parseTime=true&_loc=auto", outcome: "noeffect",
		reads: []string{"journal_mode=memory"}, modernc: true},
	{from: "public", dsn: "DIR/a.db?_loc=auto&_time_format=sqlite", outcome: "noeffect", reads: []string{"TIME"}, modernc: true},
	{from: "public", dsn: "DIR/a.db?_journal=wal&_busy_timeout=5000&_synchronous=normal&_fk=1&_loc=auto", outcome: "noeffect",
		reads: []string{"journal_mode=wal", "busy_timeout=5000", "synchronous=1", "foreign_keys=1"}, modernc: true},
	// SQLite itself refuses cache=share ("no such cache mode"); the _locking=exclusive after it is refused too.
	{from: "public", dsn: "DIR/a.db?_mutex=no&cache=share&_txlock=immediate&_locking=exclusive", outcome: "refused", key: "cache", refused: "shared or private"},
	{from: "public", dsn: "DIR/a.db?_mutex=no&_txlock=immediate&_locking=exclusive", outcome: "refused", key: "_locking", refused: "NORMAL"},
	{from: "public", dsn: "DIR/rebound.db?_mutex=no", outcome: "noeffect"},
	{from: "public", dsn: "DIR/a.db?_mutex=no&_timeout=60", outcome: "noeffect", reads: []string{"busy_timeout=60"}, modernc: true},
	{from: "public", dsn: "DIR/a.db?mode=rwc&_journal_mode=memory&_synchronous=off&_mutex=no&_foreign_keys=on", outcome: "noeffect",
		reads: []string{"journal_mode=memory", "synchronous=0", "foreign_keys=1"}, modernc: true},
	{from: "public", dsn: "file:DIR/data.db?_fk=1&_mutex=no&_cslike=0", outcome: "noeffect",
		reads: []string{"foreign_keys=1", "SELECT 'a' LIKE 'A'=1"}, modernc: true},
	{from: "public", dsn: "DIR/view.db?_journal=MEMORY&cache=shared&_mutex=no", outcome: "noeffect",
		reads: []string{"journal_mode=memory"}, modernc: true},
	{from: "public", dsn: ":memory:?_journal_mode=WAL&_busy_timeout=5000", outcome: "same",
		reads: []string{"journal_mode=memory", "busy_timeout=5000"}, modernc: true},
	{from: "public", dsn: ":memory:?_journal_mode=WAL&_foreign_keys=on", outcome: "same",
		reads: []string{"journal_mode=memory", "foreign_keys=1"}, modernc: true},
	{from: "public", dsn: "file::memory:?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=busy_timeout(5000)&_pragma=journal_size_limit(200000000)&_txlock=immediate", outcome: "same",
		reads: []string{"foreign_keys=1", "journal_mode=memory", "synchronous=1", "busy_timeout=5000"}, modernc: true},
	{from: "public", dsn: "file:memori_demo?mode=memory&cache=shared", outcome: "same", reads: []string{"journal_mode=memory"}, modernc: true},
	{from: "public", dsn: ":memory:?_journal_mode=WAL&_foreign_keys=ON", outcome: "same",
		reads: []string{"journal_mode=memory", "foreign_keys=1"}, modernc: true},
	{from: "public", dsn: "DIR/a.db?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(ON)&_pragma=synchronous(NORMAL)",
		outcome: "same", reads: []string{"journal_mode=wal", "busy_timeout=5000", "foreign_keys=1", "synchronous=1"}, modernc: true},
}

func TestDSNCompat(t *testing.T) {
	counts := map[string]int{}
	for _, tt := range compatTests {
		t.Run(tt.dsn, func(t *testing.T) {
			counts[tt.outcome]++
			dsn := strings.ReplaceAll(tt.dsn, "DIR", t.TempDir())
			seed := func(dsn string) {
				if tt.seed {
					db := open(t, "sqlite", strings.TrimPrefix(strings.Split(dsn, "?")[0], "file:"))
					mustExec(t, db, "CREATE TABLE seed(x)", "INSERT INTO seed VALUES (1)")
					db.Close()
				}
			}
			seed(dsn)
			start := time.Now()
			db, err := sql.Open("sqlite-safe", dsn)
			if tt.outcome == "refused" {
				if err == nil {
					db.Close()
					t.Fatalf("sql.Open succeeded, want a refusal of %s", tt.key)
				}
				var de *sqlitesafe.DSNError
				if !errors.As(err, &de) || de.Key != tt.key {
					t.Fatalf("sql.Open: %v, want a *DSNError for %q", err, tt.key)
				}
				if msg := err.Error(); !strings.Contains(msg, tt.key) || !strings.Contains(msg, tt.refused) {
					t.Errorf("message %q does not hold %q and %q", msg, tt.key, tt.refused)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("refused after %v, want at once", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Ping(); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			ro := strings.Contains(dsn, "mode=ro") || strings.Contains(dsn, "immutable=1") || strings.Contains(dsn, "_query_only=1") // BEGIN IMMEDIATE fails under query_only
			for _, r := range tt.reads {
				got := readSetting(t, db, r, ro)
				want := ""
				if r != "TIME" {
					i := strings.LastIndexByte(r, '=')
					want = r[i+1:]
					for where, v := range got {
						if v != want {
							t.Errorf("%s on the %s: %q, want %q", r[:i], where, v, want)
						}
					}
				}
				if !tt.modernc {
					continue
				}
				// The same DSN on plain modernc.org/sqlite, in a directory of its own.
				mdsn := strings.ReplaceAll(tt.dsn, "DIR", t.TempDir())
				seed(mdsn)
				m := open(t, "sqlite", mdsn)
				m.SetMaxOpenConns(1)
				mv := readSetting(t, m, r, true)["reader"]
				if r == "TIME" {
					want = got["reader"]
				}
				if mv != want {
					t.Errorf("%s: modernc.org/sqlite gives %q, sqlite-safe %q", r, mv, want)
				}
			}
		})
	}
	t.Logf("outcomes of %d DSNs: %v", len(compatTests), counts)
}

// readSetting runs the read r ("pragma=want", "SELECT ...=want" or TIME)
// on a reader and, unless readOnly, in a write transaction (the writer)
// and on a pinned connection, and returns what each gave.
func readSetting(t *testing.T, db *sql.DB, r string, readOnly bool) map[string]string {
	t.Helper()
	ctx := context.Background()
	q := r
	if i := strings.LastIndexByte(r, '='); i >= 0 {
		q = r[:i]
	}
	if !strings.HasPrefix(q, "SELECT") && q != "TIME" {
		q = "PRAGMA " + q
	}
	got := map[string]string{}
	read := func(where string, c interface {
		execer
		queryer
	}) {
		if q == "TIME" {
			// A time.Time as the DSN's time keys store it, and scanned back.
			mustExec(t, c, "CREATE TABLE IF NOT EXISTS tt(t DATETIME)", "DELETE FROM tt")
			at := time.Date(2024, 3, 10, 1, 2, 3, 4000, time.FixedZone("X", 3600))
			if _, err := c.ExecContext(ctx, "INSERT INTO tt VALUES (?)", at); err != nil {
				t.Fatalf("insert a time: %v", err)
			}
			var stored, scanned any
			if err := c.QueryRowContext(ctx, "SELECT t, t FROM tt").Scan(&stored, &scanned); err != nil {
				t.Fatalf("read the time: %v", err)
			}
			got[where] = fmt.Sprintf("%T %v", stored, stored)
			return
		}
		var v any
		if err := c.QueryRowContext(ctx, q).Scan(&v); err != nil {
			t.Fatalf("%s on the %s: %v", q, where, err)
		}
		got[where] = fmt.Sprint(v)
	}
	if readOnly || q == "TIME" {
		read("reader", db)
		return got
	}
	read("reader", db)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	read("writer", tx)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mustExec(t, conn, "PRAGMA temp_store = 0") // a connection setting: the connection keeps a SQLite connection of its own
	read("pinned", conn)
	return got
}

// TestEmptyDSN checks that sql.Open("sqlite-safe", "") is a private
// temporary database for the handle, as in modernc.org/sqlite, so that
// wrappers that probe the driver with an empty DSN (otelsql.Register) work.
func TestEmptyDSN(t *testing.T) {
	db, err := sql.Open("sqlite-safe", "")
	if err != nil {
		t.Fatalf(`sql.Open("sqlite-safe", ""): %v`, err)
	}
	defer db.Close()
	if _, ok := db.Driver().(*sqlitesafe.Driver); !ok {
		t.Fatalf("db.Driver() = %T, want *sqlitesafe.Driver", db.Driver())
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	mustExec(t, db, "CREATE TABLE t(x)")
	// Every connection of the handle sees the one database.
	errs := parallel(8, 25, func(g, i int) error {
		_, err := db.Exec("INSERT INTO t VALUES (?)", g*100+i)
		return err
	})
	noErrors(t, "inserts", errs)
	if n := queryInt(t, db, "SELECT count(DISTINCT x) FROM t"); n != 200 {
		t.Errorf("%d distinct rows, want 200", n)
	}
	// Another handle has a database of its own.
	other := openSafe(t, "?_fk=1")
	if n := queryInt(t, other, "SELECT count(*) FROM sqlite_schema WHERE name = 't'"); n != 0 {
		t.Errorf("a second empty-path handle sees the first one's table")
	}
	if n := queryInt(t, other, "PRAGMA foreign_keys"); n != 1 {
		t.Errorf("foreign_keys = %d on an empty-path handle with _fk=1, want 1", n)
	}
}

// TestMemoryJournalWAL checks that an in-memory database opens with
// _journal_mode=WAL, as SQLite, mattn/go-sqlite3 and modernc.org/sqlite
// open it: its journal stays in memory, and writes work.
func TestMemoryJournalWAL(t *testing.T) {
	for _, dsn := range []string{
		":memory:?_journal_mode=WAL",
		"file::memory:?_journal=wal&_busy_timeout=2000",
		"file:memwal?mode=memory&cache=shared&_pragma=journal_mode(WAL)",
		"file:/memwal?vfs=memdb&_journal_mode=WAL",
		"?_journal_mode=WAL",
	} {
		db := openSafe(t, dsn)
		mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
		var mode string
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "memory" {
			t.Errorf("%s: journal_mode %q, %v; want memory", dsn, mode, err)
		}
		db.Close()
	}
	// A file still must get WAL: the check applies to files.
	db := openSafe(t, dbPath(t)+"?_journal_mode=WAL")
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("file: journal_mode %q, %v; want wal", mode, err)
	}
}

// TestLockingModeExclusiveRefused checks that locking_mode=EXCLUSIVE is
// refused at once, naming locking_mode, instead of a 5 s wait and
// "database is locked".
func TestLockingModeExclusiveRefused(t *testing.T) {
	for _, q := range []string{"_locking_mode=EXCLUSIVE", "_locking=exclusive", "_pragma=locking_mode(EXCLUSIVE)", "_pragma=locking_mode%3Dexclusive"} {
		start := time.Now()
		db, err := sql.Open("sqlite-safe", dbPath(t)+"?"+q)
		if err == nil {
			db.Close()
			t.Errorf("%s: sql.Open succeeded", q)
			continue
		}
		if !strings.Contains(err.Error(), "locking_mode") || !strings.Contains(err.Error(), "read-only connections need shared access") {
			t.Errorf("%s: %v, want it to name locking_mode and why", q, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %v", q, d)
		}
	}
}

// TestDeferForeignKeysInTransaction checks the alternative the refusal of
// _defer_foreign_keys=1 gives: PRAGMA defer_foreign_keys = ON as the first
// statement of a transaction defers the checks to its COMMIT.
func TestDeferForeignKeysInTransaction(t *testing.T) {
	db := openSafe(t, dbPath(t)+"?_fk=1")
	mustExec(t, db, "CREATE TABLE p(id INTEGER PRIMARY KEY)", "CREATE TABLE c(p INTEGER REFERENCES p(id))")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx, "PRAGMA defer_foreign_keys = ON", "INSERT INTO c VALUES (1)", "INSERT INTO p VALUES (1)")
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit with the child inserted first: %v", err)
	}
	// Without it the same order fails at the child's INSERT.
	tx, err = db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO c VALUES (2)"); err == nil {
		t.Errorf("child without a parent inserted: foreign keys not checked")
	}
}

package sqlitesafe

import (
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"
)

func TestSQLiteURI(t *testing.T) {
	full := &Config{
		Path:              "/srv/a b%?#.db",
		Mode:              ModeReadWriteCreate,
		VFS:               "unix-excl",
		Immutable:         true,
		URIParams:         map[string]string{"nolock": "1", "cache": "shared", "modeof": "/x y+z&w=v;"},
		BusyTimeout:       time.Second,
		JournalMode:       JournalDelete,
		Synchronous:       SynchronousFull,
		ForeignKeys:       ForeignKeysOn,
		TxLock:            TxLockDeferred,
		AutoVacuum:        AutoVacuumFull,
		QueryOnly:         true,
		Pragmas:           []string{"cache_size(-2000)"},
		TimeFormat:        "datetime",
		TimeIntegerFormat: "unix_milli",
		Timezone:          "Europe/Berlin",
		IntToTime:         true,
		TextToTime:        true,
		DisableDQS:        true,
		Defensive:         true,
		ErrorRC:           true,

		DisableWriterQueue: true,
		DisableGroupCommit: true,
		MaxReaders:         3,
	}
	const fullQuery = "&immutable=1&cache=shared&modeof=%2Fx%20y%2Bz%26w%3Dv%3B&nolock=1" +
		"&_time_format=datetime&_time_integer_format=unix_milli&_timezone=Europe%2FBerlin" +
		"&_inttotime=1&_texttotime=1&_dqs=0&_defensive=1&_error_rc=1&_txlock=deferred"
	readOnlyFull := full.Clone()
	readOnlyFull.URIParams["cache"] = "private"

	tests := []struct {
		c        *Config
		readOnly bool
		want     string
	}{
		{&Config{Path: "app.db"}, false, "file:app.db?_txlock=immediate"},
		{&Config{Path: "app.db"}, true, "file:app.db?mode=ro&cache=private&_txlock=immediate"},
		{&Config{Path: ":memory:"}, false, "file::memory:?_txlock=immediate"},
		{&Config{Path: "x", Mode: ModeMemory, URIParams: map[string]string{"cache": "shared"}}, false,
			"file:x?mode=memory&cache=shared&_txlock=immediate"},
		{&Config{Path: "//srv/x.db", TxLock: TxLockExclusive}, false, "file:////srv/x.db?_txlock=exclusive"},
		{&Config{Path: "file:x", Mode: ModeReadWrite}, true, "file:file:x?mode=ro&cache=private&_txlock=immediate"},
		{&Config{Path: "x", Mode: ModeReadOnly}, false, "file:x?mode=ro&_txlock=immediate"},
		{full, false, "file:///srv/a b%25%3F%23.db?mode=rwc&vfs=unix-excl" + fullQuery},
		{full, true, "file:///srv/a b%25%3F%23.db?mode=ro&vfs=unix-excl" +
			strings.Replace(fullQuery, "cache=shared", "cache=private", 1)},
	}
	for _, tt := range tests {
		if got := tt.c.sqliteURI(tt.readOnly); got != tt.want {
			t.Errorf("sqliteURI(%v) of %+v\n got %q\nwant %q", tt.readOnly, tt.c, got, tt.want)
		}
	}
	if full.URIParams["cache"] != "shared" {
		t.Errorf("sqliteURI(true) changed URIParams: %v", full.URIParams)
	}
}

// TestSQLiteURIOpens checks that modernc.org/sqlite opens the file the URI
// names, for a path holding the characters that need escaping, and takes
// every key sqliteURI writes.
func TestSQLiteURIOpens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "my db %41 ?x=1&y #z+.db")
	c := &Config{
		Path:              path,
		URIParams:         map[string]string{"cache": "private", "psow": "1"},
		TxLock:            TxLockImmediate,
		TimeFormat:        "sqlite",
		TimeIntegerFormat: "unix_nano",
		Timezone:          "Europe/Berlin",
		IntToTime:         true,
		TextToTime:        true,
		DisableDQS:        true,
		Defensive:         true,
		ErrorRC:           true,
	}

	db, err := sql.Open("sqlite", c.sqliteURI(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t(x TEXT); INSERT INTO t VALUES ('one')"); err != nil {
		t.Fatalf("create table through %q: %v", c.sqliteURI(false), err)
	}
	// _dqs=0 reached SQLite: a double-quoted unknown name is an error, not
	// a string.
	if _, err := db.Exec(`SELECT "no such column" FROM t`); err == nil {
		t.Errorf("double-quoted string accepted: _dqs=0 did not take effect")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != filepath.Base(path) {
		t.Fatalf("files in the directory: %q, want just %q", names, filepath.Base(path))
	}

	db, err = sql.Open("sqlite", c.sqliteURI(true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var x string
	if err := db.QueryRow("SELECT x FROM t").Scan(&x); err != nil || x != "one" {
		t.Fatalf("read through %q: %q, %v; want \"one\"", c.sqliteURI(true), x, err)
	}
	if _, err := db.Exec("INSERT INTO t VALUES ('two')"); err == nil {
		t.Errorf("write through the read-only URI %q succeeded", c.sqliteURI(true))
	}
}

func TestConfigValidate(t *testing.T) {
	valid := []*Config{
		{Path: "a"},
		{Path: ":memory:", Mode: ModeMemory, VFS: "memdb"},
		{Path: "a", URIParams: map[string]string{"cache": "shared", "nolock": "1", "x": ""}},
		{Path: "a", BusyTimeout: time.Nanosecond, JournalMode: JournalOff, Synchronous: SynchronousExtra,
			ForeignKeys: ForeignKeysOff, TxLock: TxLockDeferred, AutoVacuum: AutoVacuumNone, QueryOnly: true},
		{Path: "a", Pragmas: []string{"cache_size(1)", " optimize ", "temp.journal_mode=OFF"}},
		{Path: "a", TimeFormat: "string_no_monotonic", TimeIntegerFormat: "unix_micro", Timezone: "UTC"},
		{Path: "a", Defensive: true, JournalMode: JournalWAL, MaxReaders: 10},
	}
	for _, c := range valid {
		if err := c.validate(); err != nil {
			t.Errorf("validate(%+v): %v", c, err)
		}
	}

	invalid := []struct {
		c   *Config
		key string
	}{
		{&Config{Path: "a\x00b"}, ""},                                                        // SQLite would see "a"
		{&Config{Path: "a", Mode: "RO"}, "mode"},                                             // SQLite is case-sensitive
		{&Config{Path: "a", VFS: "x\x00"}, "vfs"},                                            // NUL
		{&Config{Path: "a", URIParams: map[string]string{"_txlock": "deferred"}}, "_txlock"}, // not an SQLite key
		{&Config{Path: "a", URIParams: map[string]string{"mode": "ro"}}, "mode"},             // has a field
		{&Config{Path: "a", URIParams: map[string]string{"immutable": "1"}}, "immutable"},    // has a field
		{&Config{Path: "a", URIParams: map[string]string{"Mode": "ro"}}, "Mode"},             // SQLite would ignore it
		{&Config{Path: "a", URIParams: map[string]string{"cache": "none"}}, "cache"},         // bad value
		{&Config{Path: "a", URIParams: map[string]string{"": "x"}}, ""},                      // no key
		{&Config{Path: "a", BusyTimeout: -time.Second}, "_busy_timeout"},
		{&Config{Path: "a", JournalMode: "wal"}, "_journal_mode"}, // the constants are upper case
		{&Config{Path: "a", Synchronous: "1"}, "_synchronous"},
		{&Config{Path: "a", ForeignKeys: "yes"}, "_foreign_keys"},
		{&Config{Path: "a", TxLock: "IMMEDIATE"}, "_txlock"},
		{&Config{Path: "a", AutoVacuum: "2"}, "_auto_vacuum"},
		{&Config{Path: "a", Pragmas: []string{""}}, "_pragma"},
		{&Config{Path: "a", Pragmas: []string{"cache_size=1; DROP TABLE t"}}, "_pragma"},
		{&Config{Path: "a", Pragmas: []string{"cache_size(1"}}, "_pragma"},
		{&Config{Path: "a", Pragmas: []string{"journal_mode=DELETE"}}, "_pragma"}, // has a field
		{&Config{Path: "a", Pragmas: []string{"user_version=\x00"}}, "_pragma"},
		{&Config{Path: "a", TimeFormat: "rfc3339"}, "_time_format"},
		{&Config{Path: "a", TimeIntegerFormat: "unix_ms"}, "_time_integer_format"},
		{&Config{Path: "a", Timezone: "Nowhere/Atall"}, "_timezone"},
		{&Config{Path: "a", Defensive: true, JournalMode: JournalOff}, "_journal_mode"},
		{&Config{Path: "a", MaxReaders: -1}, "_max_readers"},
	}
	for _, tt := range invalid {
		err := tt.c.validate()
		var de *DSNError
		if !errors.As(err, &de) || !errors.Is(err, ErrInvalidDSN) {
			t.Errorf("validate(%+v) = %v, want a *DSNError", tt.c, err)
			continue
		}
		if de.Key != tt.key {
			t.Errorf("validate(%+v): Key = %q, want %q (%v)", tt.c, de.Key, tt.key, err)
		}
		if !strings.HasPrefix(err.Error(), "sqlitesafe: ") || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("validate(%+v): message %q", tt.c, err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	var zero Config
	if got := zero.busyTimeout(); got != DefaultBusyTimeout {
		t.Errorf("busyTimeout() = %v, want %v", got, DefaultBusyTimeout)
	}
	if got := zero.journalMode(); got != JournalWAL {
		t.Errorf("journalMode() = %v, want WAL", got)
	}
	if got := zero.synchronous(); got != SynchronousNormal {
		t.Errorf("synchronous() = %v, want NORMAL", got)
	}
	if got := zero.txLock(); got != TxLockImmediate {
		t.Errorf("txLock() = %v, want immediate", got)
	}
	set := Config{BusyTimeout: time.Second, JournalMode: JournalDelete, Synchronous: SynchronousOff, TxLock: TxLockDeferred}
	if set.busyTimeout() != time.Second || set.journalMode() != JournalDelete ||
		set.synchronous() != SynchronousOff || set.txLock() != TxLockDeferred {
		t.Errorf("accessors of %+v do not return the fields", set)
	}

	for _, tt := range []struct {
		c                  Config
		readOnly, inMemory bool
	}{
		{Config{Path: "a"}, false, false},
		{Config{Path: "a", Mode: ModeReadOnly}, true, false},
		{Config{Path: "a", Immutable: true}, true, false},
		{Config{Path: "a", Mode: ModeReadWrite}, false, false},
		{Config{Path: ":memory:"}, false, true},
		{Config{Path: "a", Mode: ModeMemory}, false, true},
		{Config{Path: "/a", VFS: "memdb"}, false, true},
	} {
		if got := tt.c.readOnly(); got != tt.readOnly {
			t.Errorf("readOnly() of %+v = %v", tt.c, got)
		}
		if got := tt.c.inMemory(); got != tt.inMemory {
			t.Errorf("inMemory() of %+v = %v", tt.c, got)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the DSN key table in README.md and the key list in driver.go from dsnKeys")

// The README's key table lies between these lines.
const (
	readmeBegin = "<!-- The DSN key table is generated from dsnKeys in dsn.go: go test -run TestDSNKeyDocs -update -->\n"
	readmeEnd   = "<!-- end of the DSN key table -->\n"
	docBegin    = "// The keys, and the values each takes (the README has a line on each):\n//\n"
)

// keyTable is the README's key table, from dsnKeys.
func keyTable() string {
	var b strings.Builder
	b.WriteString("| key | values | default | dqlite:// | meaning |\n|---|---|---|---|---|\n")
	for _, k := range dsnKeys {
		names := "`" + strings.Join(append([]string{k.name}, k.aliases...), "`, `") + "`"
		cluster := "refused"
		if k.dqlite {
			cluster = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", names, k.values, k.def, cluster, k.doc)
	}
	b.WriteString("| `nolock`, `psow`, `modeof`, other keys without `_` | | | refused | SQLite's URI parameters, passed on as they are. |\n")
	b.WriteString("\nAn empty path (`\"\"`, or `?_fk=1`) opens a private temporary database for the handle, gone when it closes: " +
		"SQLite's `\"\"` gives each connection a database of its own, which a pool of connections cannot share, " +
		"so it is served as `:memory:` is, by one connection.\n")
	return b.String()
}

// keyList is the package doc's key list, from dsnKeys.
func keyList() string {
	var b strings.Builder
	for _, k := range dsnKeys {
		fmt.Fprintf(&b, "//\t%-30s %s\n", strings.Join(append([]string{k.name}, k.aliases...), ", "), k.values)
	}
	return b.String()
}

// TestDSNKeyDocs checks that the README's key table and the package doc's
// key list are the ones dsnKeys gives; -update rewrites them.
func TestDSNKeyDocs(t *testing.T) {
	for _, f := range []struct {
		file, begin, end, want string
	}{
		{"README.md", readmeBegin, readmeEnd, "\n" + keyTable() + "\n"},
		{"driver.go", docBegin, "//\n", keyList()},
	} {
		data, err := os.ReadFile(f.file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		_, rest, ok := strings.Cut(text, f.begin)
		got, _, ok2 := strings.Cut(rest, f.end)
		if !ok || !ok2 {
			t.Fatalf("%s: no %q ... %q section", f.file, f.begin, f.end)
		}
		if got == f.want {
			continue
		}
		if *update {
			head := text[:strings.Index(text, f.begin)+len(f.begin)]
			if err := os.WriteFile(f.file, []byte(head+f.want+rest[len(got):]), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s: the DSN keys differ from dsnKeys; run go test -run TestDSNKeyDocs -update\n got:\n%s\nwant:\n%s", f.file, got, f.want)
	}
}

// TestDSNKeyTable checks the table itself: every key has a doc and its
// values, a key that formats parses what it formats, and a folded PRAGMA
// key has a field.
func TestDSNKeyTable(t *testing.T) {
	for _, k := range dsnKeys {
		if k.doc == "" || k.values == "" || k.parse == nil && k.flag == nil && k.name != "_pragma" {
			t.Errorf("%s: missing doc, values or parse", k.name)
		}
		if k.folded && !k.formats() {
			t.Errorf("%s: folded from _pragma but without a field", k.name)
		}
		if (k.apply != nil) != (k.pragma != "" && !k.folded && k.formats()) {
			t.Errorf("%s: a connection setting must have apply, and only it", k.name)
		}
		if k.flag != nil && (k.parse != nil || k.format != nil || k.values != valSQLiteBool && k.values != valGoBool && k.values != valOnOff) {
			t.Errorf("%s: a flag key takes boolean values, without parse or format", k.name)
		}
		if k.modernc && !k.formats() {
			t.Errorf("%s: passed to modernc.org/sqlite but never written", k.name)
		}
	}
}

// FuzzConfigRoundTrip checks that every Config that validates survives
// FormatDSN then ParseDSN exactly, for the fields whose values have more
// than one spelling or none in a DSN.
func FuzzConfigRoundTrip(f *testing.F) {
	f.Add("a", int64(0), int64(-5), int64(-5e9), int64(0), "WAL", "off", "UTC", "cache_size(1)", "shared", true)
	f.Add("", int64(1500), int64(1), int64(-1), int64(-2000), "wal", "FAST", "Local", "locking_mode(EXCLUSIVE)", "x", false)
	f.Add("/a b?#%", int64(-1), int64(0), int64(0), int64(1), "", "", "", "", "", true)
	f.Fuzz(func(t *testing.T, path string, busy, sizeLimit, slowHold, cacheSize int64,
		journal, secureDelete, tz, pragma, cache string, on bool) {
		c := &Config{
			Path:              path,
			BusyTimeout:       time.Duration(busy),
			JournalSizeLimit:  sizeLimit,
			SlowHold:          time.Duration(slowHold),
			SlowWait:          -time.Duration(slowHold),
			CacheSize:         cacheSize,
			JournalMode:       JournalMode(journal),
			SecureDelete:      SecureDelete(secureDelete),
			Timezone:          tz,
			RecursiveTriggers: on,
			DisableDQS:        on,
		}
		if pragma != "" {
			c.Pragmas = []string{pragma}
		}
		if cache != "" {
			c.URIParams = map[string]string{"cache": cache}
		}
		if c.validate() != nil {
			return
		}
		dsn := c.FormatDSN()
		back, err := ParseDSN(dsn)
		if err != nil {
			t.Fatalf("ParseDSN(%q) of a valid Config: %v", dsn, err)
		}
		if diff := cmp.Diff(c, back); diff != "" {
			t.Fatalf("ParseDSN(%q) mismatch (-config +parsed):\n%s", dsn, diff)
		}
	})
}

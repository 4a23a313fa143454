package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sqlitesafe/sqlitesafe"
)

func TestParseClusterDSN(t *testing.T) {
	for _, tt := range []struct {
		dsn  string
		want sqlitesafe.Config
	}{
		{"dqlite://127.0.0.1:9001/app.db", sqlitesafe.Config{Cluster: []string{"127.0.0.1:9001"}, Path: "app.db"}},
		{"dqlite://a:1,b:2,[::1]:3/app?_busy_timeout=3s&_failover_timeout=30s&_fk=1&_max_readers=4",
			sqlitesafe.Config{Cluster: []string{"a:1", "b:2", "[::1]:3"}, Path: "app", BusyTimeout: 3 * time.Second,
				FailoverTimeout: 30 * time.Second, ForeignKeys: sqlitesafe.ForeignKeysOn, MaxReaders: 4}},
		{"dqlite://h:1/my%20db?_journal_mode=wal&_txlock=immediate&_pragma=cache_size(-2000)",
			sqlitesafe.Config{Cluster: []string{"h:1"}, Path: "my db", JournalMode: sqlitesafe.JournalWAL,
				TxLock: sqlitesafe.TxLockImmediate, Pragmas: []string{"cache_size(-2000)"}}},
	} {
		got, err := sqlitesafe.ParseDSN(tt.dsn)
		if err != nil {
			t.Errorf("ParseDSN(%q): %v", tt.dsn, err)
			continue
		}
		if diff := cmp.Diff(&tt.want, got); diff != "" {
			t.Errorf("ParseDSN(%q) (-want +got):\n%s", tt.dsn, diff)
		}
		back, err := sqlitesafe.ParseDSN(got.FormatDSN())
		if err != nil {
			t.Errorf("ParseDSN(FormatDSN()) of %q = %q: %v", tt.dsn, got.FormatDSN(), err)
		} else if diff := cmp.Diff(got, back); diff != "" {
			t.Errorf("%q does not survive FormatDSN (%q):\n%s", tt.dsn, got.FormatDSN(), diff)
		}
	}
}

// TestClusterDSNRefusals: the keys that make no sense on a dqlite cluster are refused, each with
// an error naming the key.
func TestClusterDSNRefusals(t *testing.T) {
	const base = "dqlite://127.0.0.1:9001,127.0.0.1:9002/app.db"
	for _, tt := range []struct{ query, key, says string }{
		{"_journal_mode=DELETE", "_journal_mode", "WAL"},
		{"_synchronous=FULL", "_synchronous", "Raft"},
		{"_process_queue=off", "_process_queue", "local files"},
		{"_network_fs=allow", "_network_fs", "local files"},
		{"mode=ro", "mode", "nodes open"},
		{"vfs=unix-none", "vfs", "nodes open"},
		{"immutable=1", "immutable", "nodes open"},
		{"_auto_vacuum=FULL", "_auto_vacuum", "manage the file"},
		{"_txlock=deferred", "_txlock", "IMMEDIATE"},
		{"_journal_size_limit=1000", "_journal_size_limit", "manage the file"},
		{"_time_format=sqlite", "_time_format", "go-dqlite"},
		{"_pragma=page_size(4096)", "_pragma", "settings of the connection"},
		{"_pragma=journal_mode(DELETE)", "_journal_mode", "WAL"},
		{"nolock=1", "nolock", "URI parameter"},
	} {
		_, err := sqlitesafe.ParseDSN(base + "?" + tt.query)
		var de *sqlitesafe.DSNError
		if !errors.As(err, &de) || de.Key != tt.key || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: %v (key %q), want a DSNError for key %q saying %q", tt.query, err, keyOf(de), tt.key, tt.says)
		}
	}
	for _, tt := range []struct{ dsn, says string }{
		{"dqlite://127.0.0.1:9001", "names a database"},
		{"dqlite://127.0.0.1:9001/", "names a database"},
		{"dqlite://127.0.0.1/app.db", "HOST:PORT"},
		{"dqlite://127.0.0.1:0/app.db", "port"},
		{"dqlite://127.0.0.1:9001/dir/app.db", "without '/'"},
		{"app.db?_failover_timeout=5s", "dqlite://"},
	} {
		if _, err := sqlitesafe.ParseDSN(tt.dsn); !errors.Is(err, sqlitesafe.ErrInvalidDSN) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("ParseDSN(%q): %v, want an invalid DSN saying %q", tt.dsn, err, tt.says)
		}
	}
}

func keyOf(de *sqlitesafe.DSNError) string {
	if de == nil {
		return ""
	}
	return de.Key
}

// TestClusterWithoutEngine: a dqlite:// DSN in a program that does not import the engine fails
// with an error that names the import, and touches nothing.
func TestClusterWithoutEngine(t *testing.T) {
	db, err := sql.Open("sqlite-safe", "dqlite://127.0.0.1:9001/app.db")
	if err == nil {
		err = db.PingContext(context.Background())
		db.Close()
	}
	if err == nil || !strings.Contains(err.Error(), `import _ "github.com/sqlitesafe/sqlitesafe/dqlite"`) {
		t.Fatalf("open without the engine: %v, want an error naming the import", err)
	}
	if _, err := sqlitesafe.NewConnector(&sqlitesafe.Config{Cluster: []string{"127.0.0.1:9001"}, Path: "app.db"}); err == nil ||
		!strings.Contains(err.Error(), "sqlitesafe/dqlite") {
		t.Fatalf("NewConnector without the engine: %v, want an error naming the import", err)
	}
}

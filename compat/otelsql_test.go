package compat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/XSAM/otelsql"
	"github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// otelsqlSpans records the spans of the otelsql driver registered below.
var otelsqlSpans = tracetest.NewSpanRecorder()

// otelsqlDriver is the name otelsql.Register gives the traced sqlite-safe.
var otelsqlDriver = sync.OnceValues(func() (string, error) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelsqlSpans))
	return otelsql.Register(sqlitesafe.DriverName, otelsql.WithTracerProvider(tp))
})

// otelsqlWrapped is sqlite-safe's Driver wrapped by otelsql.WrapDriver and
// registered under a name of its own.
var otelsqlWrapped = sync.OnceValue(func() string {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelsqlSpans))
	sql.Register("otelsql-wrapdriver-sqlite-safe", otelsql.WrapDriver(&sqlitesafe.Driver{}, otelsql.WithTracerProvider(tp)))
	return "otelsql-wrapdriver-sqlite-safe"
})

// otelsqlWays are the three ways otelsql opens a database.
var otelsqlWays = []string{"Register", "Open", "WrapDriver"}

func openOtelsql(t *testing.T, way, dsn string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	switch way {
	case "Register":
		name, rerr := otelsqlDriver()
		if rerr != nil {
			t.Fatalf("otelsql.Register(%q): %v", sqlitesafe.DriverName, rerr)
		}
		db, err = sql.Open(name, dsn)
	case "Open":
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(otelsqlSpans))
		db, err = otelsql.Open(sqlitesafe.DriverName, dsn, otelsql.WithTracerProvider(tp))
	case "WrapDriver":
		db, err = sql.Open(otelsqlWrapped(), dsn)
	}
	if err != nil {
		t.Fatalf("otelsql %s: %v", way, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// otelsql.Register, otelsql.Open and otelsql.WrapDriver work with
// sqlite-safe, and read-modify-write transactions through each from 16
// goroutines lose no update; the metrics of the traced handle are reached by
// file, and closing the *sql.DB leaves no -wal.
func TestOtelsqlReadModifyWrite(t *testing.T) {
	for _, way := range otelsqlWays {
		t.Run(way, func(t *testing.T) { otelsqlReadModifyWrite(t, way) })
	}
}

func otelsqlReadModifyWrite(t *testing.T, way string) {
	dbtest.Watchdog(t, 2*time.Minute)
	path := filepath.Join(t.TempDir(), "app.db")
	db := openOtelsql(t, way, path)
	for _, q := range []string{
		"CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
		"INSERT INTO counter VALUES (1, 0)",
		"CREATE TABLE done(g INTEGER, i INTEGER, PRIMARY KEY (g, i))",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	before, err := sqlitesafe.GetStatsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	spans := len(otelsqlSpans.Ended())

	const goroutines, each = 16, 12
	dbtest.NoErrors(t, "read-modify-writes", dbtest.Parallel(goroutines, each, func(g, i int) error {
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		var n int
		if err := tx.QueryRow("SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
			return err
		}
		time.Sleep(time.Millisecond) // the window a lost update needs
		if _, err := tx.Exec("UPDATE counter SET n = ? WHERE id = 1", n+1); err != nil {
			return err
		}
		if _, err := tx.Exec("INSERT INTO done VALUES (?, ?)", g, i); err != nil {
			return err
		}
		return tx.Commit()
	}))

	var n, done int
	if err := db.QueryRow("SELECT n, (SELECT count(*) FROM done) FROM counter WHERE id = 1").Scan(&n, &done); err != nil {
		t.Fatal(err)
	}
	if n != goroutines*each || done != goroutines*each {
		t.Fatalf("counter = %d with %d transactions recorded, want %d and %d", n, done, goroutines*each, goroutines*each)
	}
	if got := len(otelsqlSpans.Ended()) - spans; got < goroutines*each {
		t.Errorf("%d spans for %d transactions: the calls did not go through otelsql", got, goroutines*each)
	}

	if _, err := sqlitesafe.GetStats(db); !errors.Is(err, sqlitesafe.ErrNotSQLiteSafe) {
		t.Errorf("GetStats through otelsql = %v, want ErrNotSQLiteSafe", err)
	}
	st, err := sqlitesafe.GetStatsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Writes - before.Writes; got != goroutines*each {
		t.Errorf("GetStatsFile: Writes went up by %d, want %d (one per transaction)", got, goroutines*each)
	}
	if r, err := sqlitesafe.CheckpointFile(context.Background(), path, sqlitesafe.CheckpointPassive); err != nil || r.Log < 0 {
		t.Errorf("CheckpointFile through otelsql: %+v, %v", r, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the -wal is still there after Close (%v)", err)
	}
}

// A slow holder through otelsql is reported at the application's line, not
// at otelsql's.
func TestOtelsqlSlowHoldSite(t *testing.T) {
	dbtest.Watchdog(t, time.Minute)
	var buf dbtest.SyncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)

	db := openOtelsql(t, "Register", filepath.Join(t.TempDir(), "app.db")+"?_slow_hold=50ms")
	if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(context.Background(), nil)
	_, file, line, _ := runtime.Caller(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s/%s:%d", filepath.Base(filepath.Dir(file)), filepath.Base(file), line-1)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "held the write lock") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "held the write lock") {
		t.Fatalf("no slow-hold warning after holding the lock past _slow_hold; log:\n%s", out)
	}
	if !strings.Contains(out, "site="+want) || strings.Contains(out, "otelsql@") {
		t.Errorf("the slow-hold warning does not name %s (the BeginTx above) but:\n%s", want, out)
	}
}

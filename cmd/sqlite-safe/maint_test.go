//go:build linux

package main

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/sqliteuri"
)

// openWAL opens path (a WAL database) with plain modernc.org/sqlite and
// automatic checkpoints off, so that what it writes stays in the -wal.
func openWAL(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	return db
}

// count returns the rows of t in the database at path, opened read-only.
func count(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteuri.FromPath(path)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var check string
	if err := db.QueryRow("PRAGMA quick_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("quick_check of %s: %q, %v", path, check, err)
	}
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBackupCommand backs up a database whose latest transactions are
// still in its -wal, and checks the copy, that the source is unchanged, and
// the errors.
func TestBackupCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	createDB(t, src, "WAL", 10)
	w := openWAL(t, src)
	if _, err := w.Exec("INSERT INTO t (v) SELECT v FROM t"); err != nil { // 10 more rows, in the -wal
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	dst := filepath.Join(t.TempDir(), "copy.db")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"backup", src, dst}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	assertUnchanged(t, dir, before)
	if out := stdout.String(); !strings.Contains(out, "wrote "+dst) || !strings.Contains(out, "pages of 4096 bytes") {
		t.Errorf("output: %q", out)
	}
	if n := count(t, dst); n != 20 {
		t.Errorf("the copy has %d rows, want 20 (the -wal's included)", n)
	}

	// The destination exists: refused, and left alone.
	copyBytes, _ := os.ReadFile(dst)
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"backup", src, dst}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "exists") {
		t.Errorf("backup onto an existing file: exit %d, %q", code, stderr.String())
	}
	if b, _ := os.ReadFile(dst); !bytes.Equal(b, copyBytes) {
		t.Error("the existing destination was changed")
	}

	// A missing source is not created.
	missing := filepath.Join(dir, "missing.db")
	stderr.Reset()
	if code := run([]string{"backup", missing, filepath.Join(dir, "x.db")}, &stdout, &stderr); code != 1 {
		t.Errorf("missing source: exit %d, %q", code, stderr.String())
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the missing source was created: %v", err)
	}

	// Usage.
	for _, args := range [][]string{{"backup"}, {"backup", src}, {"backup", src, dst, "more"}} {
		stderr.Reset()
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage: sqlite-safe backup") {
			t.Errorf("run(%q) = %d, %q", args, code, stderr.String())
		}
	}
}

// TestBackupRollbackSource checks that backing up a rollback-journal
// database leaves it byte for byte as it was: not switched to WAL.
func TestBackupRollbackSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	createDB(t, src, "DELETE", 5)
	before := snapshot(t, dir)
	dst := filepath.Join(t.TempDir(), "copy.db")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"backup", src, dst}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	assertUnchanged(t, dir, before)
	if n := count(t, dst); n != 5 {
		t.Errorf("the copy has %d rows, want 5", n)
	}
}

// TestCheckpointCommand checkpoints a -wal with frames in each mode, a -wal
// pinned by a reader (busy: exit 1), and refuses what is not a WAL
// database.
func TestCheckpointCommand(t *testing.T) {
	// Not in parallel: it shortens the wait of every checkpoint command.
	defer func(d time.Duration) { checkpointWait = d }(checkpointWait)
	checkpointWait = 100 * time.Millisecond
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "WAL", 10)
	w := openWAL(t, path)
	insert := func() {
		t.Helper()
		if _, err := w.Exec("INSERT INTO t (v) SELECT v FROM t LIMIT 10"); err != nil {
			t.Fatal(err)
		}
	}
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{path}, "checkpoint TRUNCATE of " + path + ": done, all"},
		{[]string{path, "--mode", "passive"}, "checkpoint PASSIVE of " + path + ": done, all"},
		{[]string{"--mode=FULL", path}, "checkpoint FULL of " + path + ": done, all"},
		{[]string{path, "-mode", "restart"}, "checkpoint RESTART of " + path + ": done, all"},
	} {
		insert()
		if walSize() == 0 {
			t.Fatal("nothing in the -wal to checkpoint")
		}
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"checkpoint"}, tt.args...), &stdout, &stderr); code != 0 {
			t.Errorf("checkpoint %q: exit %d, %s", tt.args, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tt.want) {
			t.Errorf("checkpoint %q: %q, want %q", tt.args, stdout.String(), tt.want)
		}
		if tt.args[len(tt.args)-1] == path && len(tt.args) == 1 && !strings.Contains(stdout.String(), "the -wal is 0 B") {
			t.Errorf("TRUNCATE left the -wal: %q", stdout.String())
		}
	}
	if n := count(t, path); n != 50 {
		t.Errorf("%d rows after the checkpoints, want 50", n)
	}

	// A reader at an old snapshot keeps RESTART from finishing.
	r, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tx, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	insert()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"checkpoint", path}, &stdout, &stderr); code != 1 {
		t.Errorf("checkpoint with a reader: exit %d, want 1; %s%s", code, stdout.String(), stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "busy") || !strings.Contains(out, "sqlite-safe doctor") {
		t.Errorf("busy checkpoint said %q", out)
	}
	tx.Rollback()

	// Not a WAL database, missing, bad mode.
	rb := filepath.Join(dir, "rollback.db")
	createDB(t, rb, "DELETE", 1)
	rbBefore, _ := os.ReadFile(rb)
	stderr.Reset()
	if code := run([]string{"checkpoint", rb}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "rollback-journal mode") {
		t.Errorf("rollback database: exit %d, %q", code, stderr.String())
	}
	if b, _ := os.ReadFile(rb); !bytes.Equal(b, rbBefore) {
		t.Error("the rollback database was changed")
	}
	if _, err := os.Stat(rb + "-wal"); !os.IsNotExist(err) {
		t.Errorf("a -wal appeared next to the rollback database: %v", err)
	}
	missing := filepath.Join(dir, "missing.db")
	if code := run([]string{"checkpoint", missing}, &stdout, &stderr); code != 1 {
		t.Errorf("missing: exit %d", code)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("checkpoint created %s: %v", missing, err)
	}
	for _, args := range [][]string{{"checkpoint"}, {"checkpoint", path, "--mode", "sometimes"}, {"checkpoint", path, path}} {
		stderr.Reset()
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage: sqlite-safe checkpoint") {
			t.Errorf("run(%q) = %d, %q", args, code, stderr.String())
		}
	}
}

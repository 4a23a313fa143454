//go:build linux

package main

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// ownLocks returns this process's locks on the file at path.
func ownLocks(t *testing.T, path string) []proclocks.Lock {
	t.Helper()
	locks, err := proclocks.Own(path)
	if err != nil {
		t.Fatal(err)
	}
	return locks
}

// The doctor run inside a program that has the database open, with a read
// transaction, leaves that program's locks on the database and its -shm as
// they were, in WAL and in rollback mode.
func TestDoctorInProcessKeepsLocks(t *testing.T) {
	for _, mode := range []string{"WAL", "DELETE"} {
		t.Run(mode, func(t *testing.T) {
			path := t.TempDir() + "/app.db"
			createDB(t, path, mode, 10)
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			tx, err := db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			var n int
			if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 10 {
				t.Fatalf("%d rows, %v", n, err)
			}
			files := []string{path}
			if mode == "WAL" {
				files = append(files, path+"-shm")
			}
			before := map[string][]proclocks.Lock{}
			for _, f := range files {
				before[f] = ownLocks(t, f)
				if len(before[f]) == 0 {
					t.Fatalf("no lock of this process on %s during a read transaction", f)
				}
			}
			_, r := doctor(t, path)
			if !r.SQLite {
				t.Errorf("the doctor did not read the header: %+v", r.Findings)
			}
			for _, f := range files {
				if d := cmp.Diff(before[f], ownLocks(t, f)); d != "" {
					t.Errorf("this process's locks on %s after the doctor (-before +after):\n%s", f, d)
				}
			}
		})
	}
}

// A lock file more open than the database is reported with the chmod that
// fixes it; one as private as the database is fine.
func TestDoctorLockFileWider(t *testing.T) {
	path := t.TempDir() + "/app.db"
	createDB(t, path, "WAL", 1)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	lock := path + "-writer.lock"
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lock, 0o644); err != nil {
		t.Fatal(err)
	}
	_, r := doctor(t, path)
	expect(t, r, "lock file", statusWarning, "more open than the database", "stop every sqlite-safe writer", "chmod 0600 "+lock)
	if err := os.Chmod(lock, 0o600); err != nil {
		t.Fatal(err)
	}
	_, r = doctor(t, path)
	expect(t, r, "lock file", statusOK, "no more open")
}

// The temporary files of dead backups are reported, with the rm that
// removes them; a running backup's are not among them.
func TestDoctorBackupLeftovers(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/app.db"
	createDB(t, path, "WAL", 1)
	_, r := doctor(t, path)
	if f := r.findings("backup leftovers"); len(f) != 0 {
		t.Fatalf("leftovers reported in a clean directory: %+v", f)
	}
	dead := []string{".app.db.partial-123", ".app.db.partial-123-journal", ".nightly.db.partial-9"}
	for _, name := range append(dead, ".nightly.db.partial-10") {
		if err := os.WriteFile(dir+"/"+name, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A running backup holds an OFD write lock on its file's first byte.
	f, err := os.OpenFile(dir+"/.nightly.db.partial-10", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Start: 0, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), 37 /* F_OFD_SETLK */, &lk); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	_, r = doctor(t, path)
	words := []string{"3 files", "did not finish"}
	for _, name := range dead {
		words = append(words, dir+"/"+name)
	}
	expect(t, r, "backup leftovers", statusWarning, words...)
	expect(t, r, "backup leftovers", statusInfo, "running", ".nightly.db.partial-10")
	for _, f := range r.findings("backup leftovers") {
		if f.Status == statusWarning && strings.Contains(f.Detail+f.WhatToDo, "partial-10") {
			t.Errorf("the running backup's file is reported as left over: %+v", f)
		}
	}
	assertUnchanged(t, dir, before)
}

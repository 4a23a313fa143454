//go:build linux

package main

import (
	"context"
	"database/sql"
	"os"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// ownLocks returns this process's locks on the file at path.
func ownLocks(t *testing.T, path string) []proclocks.Lock {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	all, err := proclocks.Read()
	if err != nil {
		t.Fatal(err)
	}
	var out []proclocks.Lock
	for _, l := range all {
		if l.PID == os.Getpid() && l.On(uint64(st.Dev), st.Ino) {
			out = append(out, l)
		}
	}
	return out
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

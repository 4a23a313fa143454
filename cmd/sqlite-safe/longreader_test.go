//go:build linux

package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sqlitesafe/sqlitesafe"
)

// A read that never ends blocks checkpoints in an application using the
// driver: Checkpoint reports it, GetStats shows the -wal growing and the
// failed checkpoint, and the doctor names the process holding the read.
// Once the read ends, all three say the problem is gone.
func TestLongReaderBlocksCheckpoints(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite-safe", path+"?_busy_timeout=200&_slow_hold=off")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reader, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback()
	var n int
	if err := reader.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	for range 70 {
		if _, err := db.Exec("INSERT INTO t(v) VALUES (zeroblob(1 << 20))"); err != nil {
			t.Fatal(err)
		}
	}

	r, err := sqlitesafe.Checkpoint(ctx, db, sqlitesafe.CheckpointTruncate)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Busy {
		t.Fatalf("a TRUNCATE checkpoint beside an open read = %+v, want Busy", r)
	}
	st, err := sqlitesafe.GetStats(db)
	if err != nil {
		t.Fatal(err)
	}
	if st.WALSize < 64<<20 || !st.LastCheckpoint.Busy || st.LastCheckpointAt.IsZero() {
		t.Errorf("Stats: WALSize %d, LastCheckpoint %+v; want a -wal over 64 MiB and the busy checkpoint", st.WALSize, st.LastCheckpoint)
	}
	if st.ReadersOpen < 1 || st.ReadersIdle >= st.ReadersOpen {
		t.Errorf("Stats: ReadersOpen %d, ReadersIdle %d; want the long reader in use", st.ReadersOpen, st.ReadersIdle)
	}

	_, rep := doctor(t, path)
	me := fmt.Sprintf("pid %d", os.Getpid())
	expect(t, rep, "wal size", statusWarning, "checkpoints cannot finish", me, "read mark")

	if err := reader.Rollback(); err != nil {
		t.Fatal(err)
	}
	if r, err = sqlitesafe.Checkpoint(ctx, db, sqlitesafe.CheckpointTruncate); err != nil || r.Busy {
		t.Fatalf("TRUNCATE after the read ended = %+v, %v", r, err)
	}
	if st, _ = sqlitesafe.GetStats(db); st.WALSize != 0 || st.LastCheckpoint.Busy {
		t.Errorf("Stats after: WALSize %d, LastCheckpoint %+v; want 0 and not busy", st.WALSize, st.LastCheckpoint)
	}
	_, rep = doctor(t, path)
	for _, f := range rep.findings("wal size") {
		if f.Status == statusWarning || f.Status == statusProblem {
			t.Errorf("the doctor still warns about the -wal after the checkpoint: %+v", f)
		}
	}
}

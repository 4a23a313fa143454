//go:build linux

package sqlitesafe_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// openDescriptors counts this process's descriptors open on path or on its
// -wal, -shm and -journal.
func openDescriptors(path string) (int, error) {
	dir := "/proc/self/fd"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && strings.HasPrefix(target, path) {
			n++
		}
	}
	return n, nil
}

func init() {
	// checkpointFirst opens a handle of its own whose first call is a
	// Checkpoint, then closes it, and reports the error and the
	// descriptors left open on the database's files.
	childRoles["checkpointFirst"] = func(spec childSpec, _ *sql.DB, res *childResult) error {
		before, err := openDescriptors(spec.DSN)
		if err != nil {
			return err
		}
		db, err := sql.Open("sqlite-safe", spec.DSN)
		if err != nil {
			return err
		}
		_, cerr := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate)
		if err := db.Close(); err != nil {
			return fmt.Errorf("close: %w", err)
		}
		after, err := openDescriptors(spec.DSN)
		if err != nil {
			return err
		}
		res.Samples = append(res.Samples, fmt.Sprint(cerr))
		if errors.Is(cerr, sqlitesafe.ErrReadOnly) {
			res.Errors = 1
		}
		res.Committed = int64(after - before)
		return nil
	}
}

// The decision that a file the process may not write makes the handle
// read-only is made before anything reads it: a Checkpoint as the first call
// on such a handle is refused with ErrReadOnly, and closing the handle
// leaves no descriptor open.
func TestCheckpointFirstOnUnwritableFile(t *testing.T) {
	watchdog(t, time.Minute)
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a child as another user")
	}
	dir := otherUserDir(t, true)
	path := filepath.Join(dir, "app.db")
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, path)
	stdout, stderr, err := runUnprivileged(t, childSpec{Role: "checkpointFirst", Driver: "sqlite-safe", DSN: path})
	if err != nil {
		t.Fatalf("child: %v\n%s\n%s", err, stdout, stderr)
	}
	res := parseResult(t, stdout)
	if res.Errors != 1 {
		t.Errorf("Checkpoint as the first call returned %v, want ErrReadOnly", res.Samples)
	}
	if !strings.Contains(res.Samples[0], "not writable") {
		t.Errorf("the error does not say why the handle is read-only: %s", res.Samples[0])
	}
	if res.Committed != 0 {
		t.Errorf("%d descriptors on the database's files stay open after db.Close", res.Committed)
	}
	if after := fileHash(t, path); after != before {
		t.Error("the read-only database file changed")
	}
}

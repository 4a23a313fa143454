package sqlitesafe_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A failed open leaves the directory as it was: no lock file, nothing.
func TestFailedOpenLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirNames(t, dir)
	for _, dsn := range []string{"missing.db?mode=rw", "missing.db?mode=ro", "missing.db?mode=rw&_txlock=immediate"} {
		db := openSafe(t, filepath.Join(dir, dsn))
		if err := db.Ping(); err == nil {
			t.Fatalf("%s: opened", dsn)
		}
		if _, err := db.Exec("CREATE TABLE t(x)"); err == nil {
			t.Fatalf("%s: wrote", dsn)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if after := dirNames(t, dir); !slices.Equal(before, after) {
			t.Errorf("after a failed open of %s the directory holds %q, before %q", dsn, after, before)
		}
	}
}

func init() {
	// backup: one Backup of the database to spec.Dir/copy.db.
	childRoles["backup"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		if err := sqlitesafe.Backup(context.Background(), db, filepath.Join(spec.Dir, "copy.db")); err != nil {
			return err
		}
		res.Committed = 1
		return nil
	}
}

// partials returns the names of the temporary files of backups to
// dir/copy.db.
func partials(t *testing.T, dir string) []string {
	var out []string
	for _, name := range dirNames(t, dir) {
		if strings.HasPrefix(name, ".copy.db.partial-") {
			out = append(out, name)
		}
	}
	return out
}

// Eight backups SIGKILLed while they copy leave their temporary files; each
// next backup to the same place removes those of the dead ones, and the
// successful one at the end leaves none at all.
func TestKilledBackupsLeaveNothing(t *testing.T) {
	watchdog(t, 3*time.Minute)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 24000) INSERT INTO t(v) SELECT randomblob(1000) FROM n")
	dst := t.TempDir()
	seen := map[string]bool{}
	for k := range 8 {
		c := startChild(t, childSpec{Role: "backup", Driver: "sqlite-safe", DSN: path, Dir: dst, WaitGo: true})
		c.waitReady(30 * time.Second)
		c.start()
		// Kill it once it has written into a temporary file of its own.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("backup %d: no new temporary file with data after 20s (%q)", k, partials(t, dst))
			}
			fresh := ""
			for _, name := range partials(t, dst) {
				fi, err := os.Stat(filepath.Join(dst, name))
				if err == nil && fi.Size() > 0 && !strings.HasSuffix(name, "-journal") && !seen[name] {
					fresh = name
				}
			}
			if fresh != "" {
				seen[fresh] = true
				break
			}
		}
		c.kill()
	}
	left := partials(t, dst)
	if len(seen) != 8 || len(left) == 0 {
		t.Fatalf("the 8 killed backups wrote %d temporary files and left %q: the test did not kill them mid-copy", len(seen), left)
	}
	t.Logf("after 8 killed backups: %q", left)
	if err := sqlitesafe.Backup(context.Background(), db, filepath.Join(dst, "copy.db")); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dst); !slices.Equal(names, []string{"copy.db"}) {
		t.Errorf("after the successful backup the directory holds %q, want only copy.db", names)
	}
	cp := open(t, "sqlite", "file:"+filepath.Join(dst, "copy.db")+"?mode=ro")
	if n := queryInt(t, cp, "SELECT count(*) FROM t"); n != 24000 {
		t.Errorf("the copy has %d rows, want 24000", n)
	}
}

package sqlitesafe_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// files lists the names in dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestReadOnlyHandle(t *testing.T) {
	t.Parallel()
	for _, query := range []string{"mode=ro", "immutable=1"} {
		for _, form := range []string{"plain", "uri"} {
			t.Run(query+"/"+form, func(t *testing.T) {
				watchdog(t, time.Minute)
				dir := t.TempDir()
				path := filepath.Join(dir, "app.db")
				// A database in the rollback journal mode, made by plain
				// modernc.org/sqlite and closed.
				raw := open(t, "sqlite", path)
				mustExec(t, raw, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1), (2)")
				raw.Close()
				before, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}

				dsn := path + "?" + query
				if form == "uri" {
					dsn = "file:" + dsn
				}
				db := openSafe(t, dsn)
				if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 2 {
					t.Fatalf("%d rows, want 2", n)
				}
				if got := pragmaOf(t, db, "journal_mode"); got != "delete" {
					t.Errorf("journal_mode = %s, want delete: the driver must not change a read-only file", got)
				}
				// Writes fail at once, in every form.
				start := time.Now()
				for _, w := range []func() error{
					func() error { _, err := db.Exec("INSERT INTO t VALUES (3)"); return err },
					func() error { _, err := db.Query("INSERT INTO t VALUES (3) RETURNING x"); return err },
					func() error {
						tx, err := db.Begin()
						if err != nil {
							return err
						}
						defer tx.Rollback()
						_, err = tx.Exec("INSERT INTO t VALUES (3)")
						return err
					},
					func() error { _, err := db.Exec("BEGIN; INSERT INTO t VALUES (3); COMMIT"); return err },
				} {
					err := w()
					if !errors.Is(err, sqlitesafe.ErrReadOnly) || sqliteCode(err)&0xff != 8 {
						t.Errorf("write through a read-only handle: %v, want ErrReadOnly wrapping SQLITE_READONLY", err)
					}
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("refusing four writes took %s", d)
				}
				db.Close()
				after, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(before, after) {
					t.Error("the database file changed")
				}
				if got := files(t, dir); !slices.Equal(got, []string{"app.db"}) {
					t.Errorf("files beside the database: %v, want only app.db (no -wal, no -shm)", got)
				}
			})
		}
	}
}

func TestPlainPathModeReadOnlyIsHonoured(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	mustExec(t, open(t, "sqlite", path), "CREATE TABLE t(x)")
	// Control: modernc.org/sqlite drops the query of a plain path, so
	// mode=ro is silently ignored and the write succeeds.
	if _, err := open(t, "sqlite", path+"?mode=ro").Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("control: plain path with mode=ro refused a write: %v", err)
	}
	_, err := openSafe(t, path+"?mode=ro").Exec("INSERT INTO t VALUES (2)")
	if !errors.Is(err, sqlitesafe.ErrReadOnly) {
		t.Fatalf("sqlite-safe, plain path with mode=ro: %v, want ErrReadOnly", err)
	}
}

func TestMaxReaders(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t)+"?_max_readers=1&_busy_timeout=200ms")
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1), (2)")
	rows, err := db.Query("SELECT x FROM t")
	if err != nil {
		t.Fatal(err)
	}
	// The only reader is busy with rows: a second read waits for it, and
	// gives up after the busy timeout, saying which key to raise.
	_, err = db.Query("SELECT x FROM t")
	if !errors.Is(err, sqlitesafe.ErrReaderTimeout) {
		t.Fatalf("second reader: %v, want ErrReaderTimeout", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := db.QueryContext(ctx, "SELECT x FROM t"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second reader with a context: %v, want context.DeadlineExceeded", err)
	}
	// Writes do not need a reader.
	mustExec(t, db, "INSERT INTO t VALUES (3)")
	rows.Close()
	// Once the rows are closed the reader is free again, and many
	// goroutines share it.
	errs := parallel(8, 10, func(g, i int) error {
		var n int64
		return db.QueryRow("SELECT count(*) FROM t").Scan(&n)
	})
	noErrors(t, "reads through one reader", errs)
}

package sqlitesafe_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

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

// Opening another handle on a database while a read transaction is open on
// it leaves the process's locks on the database file as they were: the
// checks at open never close a descriptor of the file (which would drop
// every POSIX lock the process holds on it, the transaction's SHARED lock
// among them). The first handle is sqlite-safe, or plain modernc.org/sqlite
// (which the driver's registry does not know).
func TestOpenKeepsLocks(t *testing.T) {
	watchdog(t, time.Minute)
	for _, first := range []string{"sqlite-safe", "sqlite"} {
		t.Run(first, func(t *testing.T) {
			path := dbPath(t)
			setup := openSafe(t, path)
			mustExec(t, setup, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
			// Closed, so that its background checkpointer, which opens a
			// connection of its own after writes, takes no lock of its
			// own while the locks are compared.
			if err := setup.Close(); err != nil {
				t.Fatal(err)
			}
			dsn := path
			if first == "sqlite" {
				dsn = "file:" + path + "?_pragma=busy_timeout(5000)"
			}
			db1 := open(t, first, dsn)
			ctx := context.Background()
			tx, err := db1.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if n := queryInt(t, tx, "SELECT count(*) FROM t"); n != 1 {
				t.Fatalf("%d rows", n)
			}
			before := ownLocks(t, path)
			if !slices.ContainsFunc(before, func(l proclocks.Lock) bool { return l.Kind == "POSIX" && l.Type == "READ" }) {
				t.Fatalf("no read lock on the database during a read transaction: %+v", before)
			}
			for _, second := range []string{path + "?mode=ro", path} {
				db2 := openSafe(t, second)
				if err := db2.Ping(); err != nil {
					t.Fatal(err)
				}
				if n := queryInt(t, db2, "SELECT count(*) FROM t"); n != 1 {
					t.Fatalf("%s: %d rows", second, n)
				}
				if d := cmp.Diff(before, ownLocks(t, path)); d != "" {
					t.Errorf("this process's locks on the database after opening %q (-before +after):\n%s", second, d)
				}
				if err := db2.Close(); err != nil {
					t.Fatal(err)
				}
			}
			// The read transaction still sees its snapshot, and still
			// holds its lock.
			if n := queryInt(t, tx, "SELECT count(*) FROM t"); n != 1 {
				t.Fatalf("%d rows", n)
			}
		})
	}
}

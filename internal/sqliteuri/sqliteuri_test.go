package sqliteuri_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/sqlitesafe/sqlitesafe/internal/sqliteuri"
	_ "modernc.org/sqlite"
)

func TestFromPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"app.db", "file:app.db"},
		{"/var/lib/app.db", "file:///var/lib/app.db"},
		{"//srv/app.db", "file:////srv/app.db"},
		{"/d/50%?#x.db", "file:///d/50%25%3F%23x.db"},
		{"dir/a b.db", "file:dir/a b.db"},
	} {
		if got := sqliteuri.FromPath(tc.in); got != tc.want {
			t.Errorf("FromPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// SQLite opens the file the URI names, not another: a name with the
// characters a URI gives a meaning to.
func TestFromPathOpensThatFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "50%?mode=memory#x.db")
	db, err := sql.Open("sqlite", sqliteuri.FromPath(path)+"?mode=rwc")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database is not at %q: %v", path, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files in the directory: %q, want only the database", names)
	}
}

package sqlitesafe

import (
	"context"
	"path/filepath"
	"testing"
)

// The driver asks SQLite itself whether a transaction is open and how many
// rows completed statements changed; with the modernc.org/sqlite this module
// requires, it must be able to, or group commit and transaction tracking fall
// back to failing closed.
func TestSQLiteState(t *testing.T) {
	if !moderncLayout() {
		t.Fatal("modernc.org/sqlite's connection layout is not the one sqlitestate.go reads")
	}
	p, err := openPhys("file:" + filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ctx := context.Background()
	run := func(q string) {
		t.Helper()
		if err := p.run(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	in := func() bool {
		t.Helper()
		in, err := p.inTx()
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	run("CREATE TABLE t(x)")
	run("CREATE TRIGGER no99 BEFORE INSERT ON t WHEN NEW.x = 99 BEGIN SELECT RAISE(ROLLBACK, 'no'); END")
	if in() {
		t.Fatal("in a transaction after CREATE TABLE")
	}
	run("BEGIN")
	if !in() {
		t.Fatal("not in a transaction after BEGIN")
	}
	before, _ := p.totalChanges()
	run("INSERT INTO t VALUES (1), (2)")
	if after, _ := p.totalChanges(); after-before != 2 {
		t.Fatalf("total changes moved by %d for two rows", after-before)
	}
	if r := p.lastResult().(completedResult); r.rows != 2 || r.id != 2 {
		t.Fatalf("last result %+v, want 2 rows, id 2", r)
	}
	// An error that rolls the whole transaction back ends it in SQLite.
	if err := p.run(ctx, "INSERT INTO t VALUES (99)"); err == nil {
		t.Fatal("RAISE(ROLLBACK) did not fail")
	}
	if in() {
		t.Fatal("in a transaction after RAISE(ROLLBACK)")
	}
}

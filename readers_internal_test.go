package sqlitesafe

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestReaderOfTheLastRead: a logical connection reads again on the reader
// its last read ran on when that one is idle, though another connection gave
// a reader back since (the pool alone would hand out that one, the last given
// back).
func TestReaderOfTheLastRead(t *testing.T) {
	db, err := sql.Open(DriverName, filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conns := make([]*sql.Conn, 2)
	for i := range conns {
		if conns[i], err = db.Conn(ctx); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	read := func(sc *sql.Conn) *phys {
		t.Helper()
		var n int
		if err := sc.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		var last *phys
		if err := sc.Raw(func(dc any) error { last = dc.(*conn).last; return nil }); err != nil {
			t.Fatal(err)
		}
		return last
	}
	// Both readers open and idle, each last used by one connection.
	holding, err := conns[0].QueryContext(ctx, "SELECT x FROM t")
	if err != nil {
		t.Fatal(err)
	}
	r1 := read(conns[1])
	holding.Close()
	r0 := read(conns[0])
	if r0 == nil || r1 == nil || r0 == r1 {
		t.Fatalf("readers %p and %p: want two", r0, r1)
	}
	for range 3 {
		if got := read(conns[1]); got != r1 {
			t.Fatalf("connection 1 read on %p, want its last reader %p", got, r1)
		}
		if got := read(conns[0]); got != r0 {
			t.Fatalf("connection 0 read on %p, want its last reader %p", got, r0)
		}
	}
}

package sqlitesafe

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
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

// TestKeptReader: a logical connection keeps the reader of its reads
// between them (the pool lends it once); a read open on it counts for the
// checkpointer's reports as any other; closing the connection gives it
// back to the pool, which keeps it idle.
func TestKeptReader(t *testing.T) {
	db, err := sql.Open(DriverName, filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	c, err := handleOf(db)
	if err != nil {
		t.Fatal(err)
	}
	rp := &c.readers
	ctx := context.Background()
	sc, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kept *phys
	for i := range 3 {
		var n int
		if err := sc.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		var last *phys
		sc.Raw(func(dc any) error { last = dc.(*conn).last; return nil })
		rp.mu.Lock()
		nkept, nout := len(rp.kept), len(rp.out)
		rp.mu.Unlock()
		if i == 0 {
			kept = last
		}
		if last != kept || last.hold.Load() != holdKept || nkept != 1 || nout != 0 {
			t.Fatalf("read %d: on %p (first %p), hold %d, %d kept, %d lent; want the first reader, kept (%d), 1 and 0",
				i, last, kept, last.hold.Load(), nkept, nout, holdKept)
		}
	}
	if _, _, ok := rp.oldest(); ok {
		t.Fatal("the pool reports a read in use while none is")
	}
	before := time.Now()
	rows, err := sc.QueryContext(ctx, "SELECT x FROM t")
	if err != nil {
		t.Fatal(err)
	}
	if kept.hold.Load() != holdKeptBusy {
		t.Fatalf("hold %d while the rows are open, want %d", kept.hold.Load(), holdKeptBusy)
	}
	since, site, ok := rp.oldest()
	if !ok || since.Before(before.Add(-time.Millisecond)) || site != "" {
		t.Fatalf("oldest read with the rows open: %v %q %v; want one since %v, no site", since, site, ok, before)
	}
	if fileSince, found := c.file.oldestReaderSince(); !found || !fileSince.Equal(since) {
		t.Fatalf("the file's oldest read: since %v (%v), want %v", fileSince, found, since)
	}
	rows.Close()
	db.SetMaxIdleConns(0) // sc's driver connection closes as sc gives it back
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.kept) != 0 || len(rp.idle) != 1 || rp.idle[0] != kept || kept.hold.Load() != holdPool {
		t.Fatalf("after the connection closed: %d kept, idle %v, hold %d; want 0 kept and the reader idle", len(rp.kept), rp.idle, kept.hold.Load())
	}
}

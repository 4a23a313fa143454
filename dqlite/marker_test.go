//go:build linux

package dqlite

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/canonical/go-dqlite/client"
	dqdriver "github.com/canonical/go-dqlite/driver"

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
)

func TestMarker(t *testing.T) {
	watchdog(t, 2*time.Minute)
	c := cluster.Start(t, 3)
	ctx := context.Background()

	t.Run("ResolveAfterCommitAndRollback", func(t *testing.T) {
		db := c.OpenPlain(t, "resolve.db")
		mustExec(t, db, "CREATE TABLE t (v INTEGER)")
		if err := ensureMarkerTable(ctx, db); err != nil {
			t.Fatal(err)
		}
		m, err := newMarker()
		if err != nil {
			t.Fatal(err)
		}
		connect := func(ctx context.Context) (*sql.Conn, error) { return db.Conn(ctx) }

		// Nothing committed yet: seq 1 is not.
		if o, err := m.resolve(ctx, connect, 1); err != nil || o != outcomeNotCommitted {
			t.Fatalf("resolve before any commit: %v, %v; want not committed", o, err)
		}
		o, err := m.writeTx(ctx, connect, func(ctx context.Context, tx execer) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)")
			return err
		})
		if err != nil || o != outcomeCommitted {
			t.Fatalf("writeTx: %v, %v", o, err)
		}
		if o, err := m.resolve(ctx, connect, 1); err != nil || o != outcomeCommitted {
			t.Fatalf("resolve of the committed seq 1: %v, %v; want committed", o, err)
		}
		if o, err := m.resolve(ctx, connect, 2); err != nil || o != outcomeNotCommitted {
			t.Fatalf("resolve of seq 2, never run: %v, %v; want not committed", o, err)
		}

		// A transaction that fails before COMMIT writes neither its rows nor its marker.
		boom := errors.New("boom")
		o, err = m.writeTx(ctx, connect, func(ctx context.Context, tx execer) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (2)"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || o != outcomeNotCommitted {
			t.Fatalf("failing writeTx: %v, %v; want boom, not committed", o, err)
		}
		if n := count(t, db, "SELECT count(*) FROM t"); n != 1 {
			t.Fatalf("want 1 row after the rolled-back transaction, got %d", n)
		}
		var seq int64
		if err := db.QueryRow(selectMarker, m.client).Scan(&seq); err != nil || seq != 1 {
			t.Fatalf("marker row: seq %d, %v; want 1", seq, err)
		}
		// Another writer's marker is its own row.
		m2, _ := newMarker()
		if o, err := m2.resolve(ctx, connect, 1); err != nil || o != outcomeNotCommitted {
			t.Fatalf("resolve for another client: %v, %v; want not committed", o, err)
		}
		if n := count(t, db, "SELECT count(*) FROM "+markerTable); n != 1 {
			t.Fatalf("want 1 marker row (one per writer that committed), got %d", n)
		}
	})

	t.Run("ResolveWaitsForAnOpenWriteTransaction", func(t *testing.T) {
		db := c.OpenPlain(t, "wait.db")
		if err := ensureMarkerTable(ctx, db); err != nil {
			t.Fatal(err)
		}
		m, _ := newMarker()
		connect := func(ctx context.Context) (*sql.Conn, error) { return db.Conn(ctx) }
		// Another connection writes this writer's marker for seq 1 and holds its transaction
		// open: until it commits, the answer is not final, and resolve must wait for it.
		other, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		mustExec(t, other, "BEGIN IMMEDIATE")
		if err := m.mark(ctx, other, 1); err != nil {
			t.Fatal(err)
		}
		const hold = 300 * time.Millisecond
		go func() {
			time.Sleep(hold)
			_, _ = other.ExecContext(ctx, "COMMIT")
		}()
		start := time.Now()
		o, err := m.resolve(ctx, connect, 1)
		took := time.Since(start)
		if err != nil || o != outcomeCommitted {
			t.Fatalf("resolve: %v, %v; want committed", o, err)
		}
		if took < hold-50*time.Millisecond {
			t.Fatalf("resolve answered after %v, before the open transaction committed (%v)", took, hold)
		}
	})

	t.Run("ResolveAfterConnectionDrop", func(t *testing.T) {
		// A client whose connection breaks inside its write transaction, after the marker and
		// before COMMIT: the leader rolls the transaction back, and resolve, which waits for
		// BEGIN IMMEDIATE, then says not committed.
		db := c.OpenPlain(t, "drop.db")
		mustExec(t, db, "CREATE TABLE t (v INTEGER)")
		if err := ensureMarkerTable(ctx, db); err != nil {
			t.Fatal(err)
		}
		m, _ := newMarker()
		connect := func(ctx context.Context) (*sql.Conn, error) { return db.Conn(ctx) }
		// The client that will crash has a handle of its own whose network connections we
		// keep, to close them under go-dqlite as a crash would (go-dqlite's Conn.Close is
		// not idempotent: a second Close panics, "close of closed channel").
		var mu sync.Mutex
		var dialed []net.Conn
		dial := func(ctx context.Context, addr string) (net.Conn, error) {
			nc, err := client.DefaultDialFunc(ctx, addr)
			if err == nil {
				mu.Lock()
				dialed = append(dialed, nc)
				mu.Unlock()
			}
			return nc, err
		}
		crashing := c.OpenPlain(t, "drop.db", dqdriver.WithDialFunc(dial))
		conn, err := crashing.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		mustExec(t, conn, "BEGIN IMMEDIATE")
		mustExec(t, conn, "INSERT INTO t VALUES (1)")
		if err := m.mark(ctx, conn, m.next()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		for _, nc := range dialed {
			nc.Close()
		}
		mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		o, err := m.resolve(rctx, connect, 1)
		t.Logf("resolve after the client's connection dropped inside its transaction: %v, %v after %v", o, err, time.Since(start).Round(time.Millisecond))
		if err != nil || o != outcomeNotCommitted {
			t.Fatalf("resolve: %v, %v; want not committed", o, err)
		}
		if n := count(t, db, "SELECT count(*) FROM t"); n != 0 {
			t.Fatalf("want the dropped transaction's row absent, got %d rows", n)
		}
	})

	t.Run("ResolveBoundedWithoutLeader", func(t *testing.T) {
		// A marker whose connections all fail (as when no node answers) gives up with
		// errOutcomeUnknown when its context ends.
		m, _ := newMarker()
		connect := func(ctx context.Context) (*sql.Conn, error) { return nil, errors.New("dial: connection refused") }
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		o, err := m.resolve(ctx, connect, 1)
		if o != outcomeUnknown || !errors.Is(err, errOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("resolve without a leader: %v, %v; want outcome unknown wrapping the deadline", o, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("resolve took %v past a 200 ms context", took)
		}
	})

	t.Run("WritersWaitAtBeginImmediate", func(t *testing.T) {
		// 8 writers with their own markers (as 8 processes would be), each waiting out
		// "database is locked" at BEGIN IMMEDIATE: none fails, and the state is exact.
		db := c.OpenPlain(t, "wait8.db")
		mustExec(t, db, "CREATE TABLE t (g INTEGER, i INTEGER, PRIMARY KEY (g, i))")
		if err := ensureMarkerTable(ctx, db); err != nil {
			t.Fatal(err)
		}
		connect := func(ctx context.Context) (*sql.Conn, error) { return db.Conn(ctx) }
		const writers = 8
		deadline := time.Now().Add(1500 * time.Millisecond)
		done := make([]int, writers)
		errs := make(chan error, writers)
		for g := 0; g < writers; g++ {
			go func() {
				m, _ := newMarker()
				for i := 0; time.Now().Before(deadline); i++ {
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second) // the default busy timeout
					_, err := m.writeTx(wctx, connect, func(ctx context.Context, tx execer) error {
						_, err := tx.ExecContext(ctx, "INSERT INTO t (g, i) VALUES (?, ?)", g, i)
						return err
					})
					cancel()
					if err != nil {
						errs <- err
						return
					}
					done[g]++
				}
				errs <- nil
			}()
		}
		for g := 0; g < writers; g++ {
			if err := <-errs; err != nil {
				t.Errorf("writer: %v", err)
			}
		}
		total := 0
		for g, n := range done {
			total += n
			if got := count(t, db, "SELECT count(*) FROM t WHERE g = ? AND i < ?", g, n); got != n {
				t.Errorf("writer %d committed %d, table has %d of them", g, n, got)
			}
		}
		if got := count(t, db, "SELECT count(*) FROM t"); got != total {
			t.Errorf("table has %d rows, %d committed", got, total)
		}
		if got := count(t, db, "SELECT count(*) FROM "+markerTable); got != writers {
			t.Errorf("want %d marker rows, got %d", writers, got)
		}
		t.Logf("8 writers waiting at BEGIN IMMEDIATE for 1.5 s: %d transactions committed, 0 errors (%v per writer)", total, done)
	})

	t.Run("Cost", func(t *testing.T) {
		db := c.OpenPlain(t, "cost.db")
		mustExec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
		if err := ensureMarkerTable(ctx, db); err != nil {
			t.Fatal(err)
		}
		m, _ := newMarker()
		connect := func(ctx context.Context) (*sql.Conn, error) { return db.Conn(ctx) }
		insert := func(ctx context.Context, tx execer) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO t (v) VALUES ('0123456789abcdef0123456789abcdef')")
			return err
		}
		// Without the marker: the same path (a connection, BEGIN IMMEDIATE, the insert, COMMIT).
		plain := func() error {
			conn, err := m.begin(ctx, connect)
			if err != nil {
				return err
			}
			defer conn.Close()
			if err := insert(ctx, conn); err != nil {
				return err
			}
			_, err = conn.ExecContext(ctx, "COMMIT")
			return err
		}
		marked := func() error {
			_, err := m.writeTx(ctx, connect, insert)
			return err
		}
		// Pairs, alternating which of the two goes first, so that both see the same load.
		const pairs = 300
		var plainT, markedT []time.Duration
		timed := func(f func() error, dst *[]time.Duration) {
			start := time.Now()
			if err := f(); err != nil {
				t.Fatal(err)
			}
			*dst = append(*dst, time.Since(start))
		}
		for i := 0; i < pairs; i++ {
			if i%2 == 0 {
				timed(plain, &plainT)
				timed(marked, &markedT)
			} else {
				timed(marked, &markedT)
				timed(plain, &plainT)
			}
		}
		pct := func(ds []time.Duration, q float64) time.Duration {
			s := append([]time.Duration(nil), ds...)
			sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
			return s[int(q*float64(len(s)-1))]
		}
		p, mk := pct(plainT, 0.5), pct(markedT, 0.5)
		cost := float64(mk-p) / float64(p) * 100
		t.Logf("write transaction of one insert, %d pairs: median without marker %v, with marker %v: cost %+.1f%% (p90 %v vs %v)",
			pairs, p.Round(time.Microsecond), mk.Round(time.Microsecond), cost,
			pct(plainT, 0.9).Round(time.Microsecond), pct(markedT, 0.9).Round(time.Microsecond))
		if n := count(t, db, "SELECT count(*) FROM t"); n != 2*pairs {
			t.Fatalf("want %d rows, got %d", 2*pairs, n)
		}
		if cost > 50 {
			t.Fatalf("the marker costs %.1f%% per write transaction, want well under 50%%", cost)
		}
	})
}

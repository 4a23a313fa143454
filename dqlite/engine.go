package dqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canonical/go-dqlite/client"
	dqdriver "github.com/canonical/go-dqlite/driver"
	_ "github.com/sqlitesafe/sqlitesafe" // registers "sqlite-safe", whose dqlite:// scheme this serves
	"github.com/sqlitesafe/sqlitesafe/internal/engine"
)

func init() {
	engine.Register("dqlite", dqliteEngine{})
}

// dqliteEngine opens databases on dqlite clusters through go-dqlite's
// pure-Go client.
type dqliteEngine struct{}

// The client's reconnection backoff: go-dqlite's default (a factor of
// 100 ms, capped at 1 s) adds up to a second to every failover; these add
// at most 50 ms (measured in NOTES.md).
const (
	backoffFactor = 10 * time.Millisecond
	backoffCap    = 50 * time.Millisecond
)

// Database implements engine.Engine.
func (dqliteEngine) Database(t engine.Target) (engine.Database, error) {
	store := client.NewInmemNodeStore()
	infos := make([]client.NodeInfo, len(t.Addrs))
	for i, a := range t.Addrs {
		infos[i] = client.NodeInfo{ID: uint64(i + 1), Address: a}
	}
	if err := store.Set(context.Background(), infos); err != nil {
		return nil, fmt.Errorf("sqlitesafe: dqlite: node store: %w", err)
	}
	drv, err := dqdriver.New(store,
		dqdriver.WithConnectionBackoffFactor(backoffFactor),
		dqdriver.WithConnectionBackoffCap(backoffCap))
	if err != nil {
		return nil, fmt.Errorf("sqlitesafe: dqlite: %w", err)
	}
	dc, err := drv.OpenConnector(t.Name)
	if err != nil {
		return nil, fmt.Errorf("sqlitesafe: dqlite: %w", err)
	}
	m, err := newMarker()
	if err != nil {
		return nil, err
	}
	m.failoverTimeout = t.FailoverTimeout
	db := &database{t: t, store: store, dc: dc, marker: m}
	// The resolution of an interrupted COMMIT reads on connections of its
	// own, through database/sql: a connection it finds broken is simply
	// replaced.
	db.resolver = sql.OpenDB(dc)
	db.resolver.SetMaxIdleConns(1)
	return db, nil
}

// database is one handle's database on a cluster.
type database struct {
	t        engine.Target
	store    client.NodeStore
	dc       driver.Connector
	marker   *marker
	resolver *sql.DB

	markerTable atomic.Bool // the marker table is known to exist

	mu     sync.Mutex
	leader string

	leaderChanges, lost, beginRetries, unknown atomic.Int64
}

// Open implements engine.Database: a connection to the leader, found
// within the failover timeout (or ctx, if it ends first).
func (db *database) Open(ctx context.Context, role engine.Role) (engine.Conn, error) {
	octx, cancel := context.WithTimeout(ctx, db.t.FailoverTimeout)
	defer cancel()
	dc, err := db.dc.Connect(octx)
	if err != nil {
		if ctx.Err() == nil && octx.Err() != nil {
			return nil, fmt.Errorf("sqlitesafe: dqlite: no leader of %s answered within the failover timeout (%s, DSN key _failover_timeout): %w",
				strings.Join(db.t.Addrs, ","), db.t.FailoverTimeout, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sqlitesafe: dqlite: connect to the leader: %w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("sqlitesafe: dqlite: connect to the leader: %w", err)
	}
	c, ok := dc.(*dqdriver.Conn)
	if !ok {
		dc.Close()
		return nil, fmt.Errorf("sqlitesafe: dqlite: unexpected connection type %T", dc)
	}
	if role == engine.Writer {
		// A connection of its own to ask: not on the way of the write
		// that waits for this one (after a failover, every write does).
		go db.noteLeader(context.WithoutCancel(ctx))
	}
	return &conn{db: db, c: c}, nil
}

// noteLeader records the leader's address, counting a change.
func (db *database) noteLeader(ctx context.Context) {
	addr := db.Leader(ctx)
	if addr == "" {
		return
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.leader != "" && db.leader != addr {
		db.leaderChanges.Add(1)
	}
	db.leader = addr
}

// Leader implements engine.Database.
func (db *database) Leader(ctx context.Context) string {
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cli, err := client.FindLeader(lctx, db.store)
	if err != nil {
		return ""
	}
	defer cli.Close()
	info, err := cli.Leader(lctx)
	if err != nil || info == nil {
		return ""
	}
	return info.Address
}

// Stats implements engine.Database.
func (db *database) Stats() engine.Stats {
	db.mu.Lock()
	leader := db.leader
	db.mu.Unlock()
	return engine.Stats{
		Leader:          leader,
		LeaderChanges:   db.leaderChanges.Load(),
		Resolved:        db.marker.resolvedCommitted.Load(),
		NotCommitted:    db.marker.resolvedNotCommitted.Load(),
		OutcomeUnknown:  db.unknown.Load(),
		BeginRetries:    db.beginRetries.Load(),
		ConnectionsLost: db.lost.Load(),
	}
}

// Close implements engine.Database.
func (db *database) Close() error { return db.resolver.Close() }

// conn is one connection to the leader. Its errors carry SQLite's codes
// (codedError), and a request that lost the connection fails with an
// *engine.LostError, never with driver.ErrBadConn: database/sql would run
// it again on another connection, and it may have been applied.
type conn struct {
	db     *database
	c      *dqdriver.Conn
	lost   bool // a request lost the connection: nothing more is sent on it
	closed bool
}

var (
	_ engine.Conn      = (*conn)(nil)
	_ driver.Validator = (*conn)(nil)
)

// errBadConn stands for go-dqlite's driver.ErrBadConn inside a LostError.
var errBadConn = errors.New("go-dqlite: bad connection (the node closed it, lost its leadership, or is gone)")

// wrap gives err the driver's form.
func (c *conn) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, driver.ErrBadConn) {
		c.lose()
		return &engine.LostError{Op: op, Err: errBadConn}
	}
	var de dqdriver.Error
	if errors.As(err, &de) {
		return &codedError{err: de}
	}
	return err
}

// lose marks the connection lost and closes it: the leader rolls back its
// open transaction, if it is still the leader.
func (c *conn) lose() {
	if !c.lost {
		c.lost = true
		c.db.lost.Add(1)
	}
	c.closeOnce()
}

func (c *conn) closeOnce() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.c.Close() // go-dqlite's Close panics when called twice
}

// lostErr is the error of a request on a connection lost before.
func (c *conn) lostErr(op string) error {
	return &engine.LostError{Op: op, Err: errors.New("the connection was lost before")}
}

// codedError is an SQLite error answered by a node.
type codedError struct{ err dqdriver.Error }

func (e *codedError) Error() string { return e.err.Message }
func (e *codedError) Code() int     { return e.err.Code }
func (e *codedError) Unwrap() error { return e.err }

// Prepare implements driver.Conn.
func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext implements driver.ConnPrepareContext.
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.lost {
		return nil, c.lostErr("prepare")
	}
	st, err := c.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, c.wrap("prepare", err)
	}
	return st, nil
}

// ExecContext implements driver.ExecerContext. BEGIN IMMEDIATE waits out
// another client's write lock within the busy timeout: dqlite has no busy
// handler, and answers "database is locked" at once.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.lost {
		return nil, c.lostErr("exec")
	}
	if isBeginImmediate(query) {
		return c.beginImmediate(ctx, query, args)
	}
	res, err := c.c.ExecContext(ctx, query, args)
	return res, c.wrap("exec", err)
}

// isBeginImmediate reports whether query is BEGIN IMMEDIATE (or
// EXCLUSIVE), as the driver sends it.
func isBeginImmediate(query string) bool {
	q := strings.ToUpper(strings.TrimSpace(query))
	return strings.HasPrefix(q, "BEGIN IMMEDIATE") || strings.HasPrefix(q, "BEGIN EXCLUSIVE")
}

// beginImmediate runs query, a BEGIN IMMEDIATE, again while another client
// holds the write lock, after 0.5 to 2 ms of jitter (so that clients
// waiting at once do not retry in step), until the busy timeout or ctx.
func (c *conn) beginImmediate(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	deadline := time.Now().Add(c.db.t.BusyTimeout)
	for {
		res, err := c.c.ExecContext(ctx, query, args)
		if err == nil {
			return res, nil
		}
		err = c.wrap("BEGIN IMMEDIATE", err)
		var ce *codedError
		if !errors.As(err, &ce) || ce.Code()&0xff != dqdriver.ErrBusy {
			return nil, err
		}
		wait := 500*time.Microsecond + rand.N(1500*time.Microsecond)
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("sqlitesafe: dqlite: another client of the cluster held the write lock for the whole busy timeout (%s): %w", c.db.t.BusyTimeout, err)
		}
		c.db.beginRetries.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("sqlitesafe: dqlite: waiting for another client's write lock: %w (%w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// QueryContext implements driver.QueryerContext.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.lost {
		return nil, c.lostErr("query")
	}
	rows, err := c.c.QueryContext(ctx, query, args)
	if err != nil {
		return nil, c.wrap("query", err)
	}
	return &connRows{Rows: rows.(*dqdriver.Rows), c: c}, nil
}

// connRows gives the errors of go-dqlite's rows the driver's form.
type connRows struct {
	*dqdriver.Rows
	c *conn
}

// Next implements driver.Rows.
func (r *connRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err == nil || err == io.EOF {
		return err
	}
	return r.c.wrap("reading rows", err)
}

// ColumnTypeScanType implements driver.RowsColumnTypeScanType.
func (r *connRows) ColumnTypeScanType(i int) reflect.Type { return r.Rows.ColumnTypeScanType(i) }

// ColumnTypeDatabaseTypeName implements driver.RowsColumnTypeDatabaseTypeName.
func (r *connRows) ColumnTypeDatabaseTypeName(i int) string {
	return r.Rows.ColumnTypeDatabaseTypeName(i)
}

// Begin implements driver.Conn.
//
// Deprecated: the driver calls BeginTx.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx implements driver.ConnBeginTx: BEGIN IMMEDIATE for a write
// transaction (go-dqlite's own sends a deferred BEGIN, which fails at its
// first write when another client writes), BEGIN for a read-only one.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	q := "BEGIN IMMEDIATE"
	if opts.ReadOnly {
		q = "BEGIN"
	}
	if _, err := c.ExecContext(ctx, q, nil); err != nil {
		return nil, err
	}
	return &tx{c: c}, nil
}

// tx is a transaction begun with BeginTx. The driver commits with
// conn.Commit.
type tx struct{ c *conn }

func (t *tx) Commit() error { return t.c.Commit(context.Background(), "COMMIT") }

func (t *tx) Rollback() error {
	_, err := t.c.ExecContext(context.Background(), "ROLLBACK", nil)
	return err
}

// loseAtInTx, set by tests, makes InTx lose the connection when it returns
// true: a failover at that moment, made to happen on every run.
var loseAtInTx atomic.Pointer[func() bool]

// InTx implements engine.Conn. dqlite does not say whether a transaction
// is open: BEGIN does, by failing inside one.
func (c *conn) InTx(ctx context.Context) (bool, error) {
	if c.lost {
		return false, c.lostErr("asking for the transaction")
	}
	if h := loseAtInTx.Load(); h != nil && (*h)() {
		// What a BEGIN that loses the connection does (wrap).
		c.lose()
		return false, &engine.LostError{Op: "BEGIN", Err: errBadConn}
	}
	_, err := c.c.ExecContext(ctx, "BEGIN", nil)
	if err == nil {
		_, err = c.c.ExecContext(ctx, "ROLLBACK", nil)
		return false, c.wrap("ROLLBACK", err)
	}
	err = c.wrap("BEGIN", err)
	var ce *codedError
	if errors.As(err, &ce) && strings.Contains(ce.Error(), "within a transaction") {
		return true, nil
	}
	return false, err
}

// Commit implements engine.Conn: the marker row, COMMIT, and, when the
// connection is lost on the way, the answer of the leader of the moment.
func (c *conn) Commit(ctx context.Context, query string) error {
	if c.lost {
		c.db.marker.brokenBeforeCommit.Add(1)
		return fmt.Errorf("%w: the connection to the leader was lost during the transaction, which the cluster rolled back", engine.ErrNotCommitted)
	}
	// The marker and the COMMIT go in one request, a script without
	// arguments (the client id is hex, the seq a number): one round trip
	// to the leader, and they reach it together or not at all. A script
	// stops at its first error, so a marker that fails is never followed
	// by the COMMIT. A RELEASE commits only the outermost savepoint; the
	// marker is then in the transaction that goes on, and resolves it as
	// well.
	seq := c.db.marker.next()
	var script strings.Builder
	created := c.db.markerTable.Load()
	if !created {
		script.WriteString(createMarkerTable + "; ")
	}
	fmt.Fprintf(&script, "INSERT INTO %s (client, seq) VALUES ('%s', %d) ON CONFLICT (client) DO UPDATE SET seq = excluded.seq; %s",
		markerTable, c.db.marker.client, seq, query)
	ends := !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(query)), "RELEASE")
	_, err := c.c.ExecContext(ctx, script.String(), nil)
	if err == nil {
		if ends && !created {
			c.db.markerTable.Store(true)
		}
		return nil
	}
	err = c.wrap(query, err)
	if !errors.As(err, new(*engine.LostError)) {
		return err // the node's answer: not committed
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.db.t.FailoverTimeout)
	defer cancel()
	outcome, rerr := c.db.marker.resolve(rctx, c.db.resolver.Conn, seq)
	switch outcome {
	case outcomeCommitted:
		c.db.marker.resolvedCommitted.Add(1)
		c.db.markerTable.Store(true)
		return nil
	case outcomeNotCommitted:
		c.db.marker.resolvedNotCommitted.Add(1)
		return fmt.Errorf("%w: the connection to the leader was lost at COMMIT, and the new leader does not have the transaction: %w", engine.ErrNotCommitted, err)
	}
	c.db.unknown.Add(1)
	return fmt.Errorf("%w: the connection to the leader was lost at COMMIT, and no leader answered within the failover timeout (%s): %w",
		engine.ErrOutcomeUnknown, c.db.t.FailoverTimeout, rerr)
}

// IsValid implements driver.Validator.
func (c *conn) IsValid() bool { return !c.lost && !c.closed }

// Close implements driver.Conn.
func (c *conn) Close() error { return c.closeOnce() }

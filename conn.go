package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"fmt"
)

// conn is the connection a *sql.DB sees: a logical connection that owns no
// SQLite connection of its own until it needs one. It routes each call:
//
//   - inside a transaction, to the connection the transaction runs on;
//   - a write, to the handle's shared writer under the file's writer queue;
//   - a read, to a read-only connection from the handle's reader pool;
//   - once it has created connection-local state (TEMP objects, ATTACH, a
//     connection setting), everything to a read-write connection of its own.
type conn struct {
	c      *connector
	tx     *txState // the open transaction, or nil
	own    *phys    // this connection's own SQLite connection, or nil
	pinned bool     // own holds connection-local state: every statement goes there
	closed bool
	last   *phys // the reader it keeps between its reads, or ran its last read on (readerPool.acquire)

	// wr is the request onWriter submits, kept from one write to the
	// next: a connection runs one call at a time.
	wr writeRequest
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
)

// queueOn reports whether writes take the writer queue.
func (c *connector) queueOn() bool { return !c.cfg.DisableWriterQueue && !c.readOnly }

// procOn reports whether writers also take the cross-process lock.
func (c *connector) procOn() bool {
	return !c.cfg.DisableProcessQueue && c.queueOn() && !c.memory
}

// ExecContext implements driver.ExecerContext.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	res, _, err := c.do(call{ctx: ctx, query: query, info: classify(query), args: args})
	return res, err
}

// QueryContext implements driver.QueryerContext.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	_, rows, err := c.do(call{ctx: ctx, query: query, info: classify(query), args: args, rows: true})
	return rows, err
}

// call is one Exec or Query: the statement, its classification and its
// arguments. Exec and Query take the same routes; they differ only in what
// they return.
type call struct {
	ctx   context.Context
	query string
	info  *stmtInfo
	args  []driver.NamedValue
	rows  bool // a Query: the caller wants rows, not a result

	retried bool // a read that lost its connection to a cluster, run again once
}

// on runs the call on p: an Exec's result, or a Query's rows and the cached
// statement they come from (marked in use until the rows are closed).
func (op *call) on(p *phys) (driver.Result, driver.Rows, *cachedStmt, error) {
	if op.rows {
		rows, cs, err := p.query(op.ctx, op.query, op.info, op.args)
		return nil, rows, cs, err
	}
	res, err := p.exec(op.ctx, op.query, op.info, op.args)
	return res, nil, nil, err
}

// target is where a statement runs.
type target uint8

const (
	toTx        target = iota // the open transaction's connection
	toTxControl               // BEGIN or SAVEPOINT as text: the writer, then the transaction it opens
	toWriter                  // the handle's shared writer, under the writer queue
	toOwn                     // the logical connection's own SQLite connection
	toReader                  // a read-only connection from the handle's pool
)

// connState is what the routing of a statement depends on.
type connState struct {
	inTx     bool // a transaction is open on the connection
	pinned   bool // the connection holds connection-local state
	memory   bool // an in-memory database: one connection does everything
	readOnly bool // the handle cannot write
	queue    bool // writes take the writer queue
}

// route decides where a statement with flags f runs. It is the one routing
// decision of the driver: Exec, Query and prepared statements all take it.
func route(s connState, f stmtFlags) target {
	switch {
	case s.inTx:
		return toTx
	case f&flagTxControl != 0:
		return toTxControl
	case s.memory:
		return toWriter
	case f&flagSession != 0 || s.pinned:
		return toOwn
	case f&flagWrite != 0 && !s.readOnly:
		if s.queue {
			return toWriter
		}
		return toOwn
	}
	return toReader
}

func (c *conn) state() connState {
	return connState{
		inTx:     c.tx != nil,
		pinned:   c.pinned,
		memory:   c.c.memory,
		readOnly: c.c.readOnly,
		queue:    c.c.queueOn(),
	}
}

// do routes one call and runs it.
func (c *conn) do(op call) (res driver.Result, rows driver.Rows, err error) {
	if c.closed {
		return nil, nil, driver.ErrBadConn
	}
	if c.c.db != nil {
		if err := refuseOnCluster(op.query, op.info, len(op.args)); err != nil {
			return nil, nil, err
		}
		if op.info.flags&flagJournalMode != 0 {
			// WAL, which it is already: asked, not set (a dqlite 1.11
			// leader is not to be trusted with journal_mode changes).
			op.query = "PRAGMA journal_mode"
			op.info = classify(op.query)
		}
	}
	switch route(c.state(), op.info.flags) {
	case toTx:
		res, rows, err = c.onTx(op)
	case toTxControl:
		res, rows, err = c.onTxControl(op)
	case toWriter:
		res, rows, err = c.onWriter(op)
	case toOwn:
		res, rows, err = c.onOwn(op)
	default:
		return c.onReader(op)
	}
	if err != nil {
		err = c.c.busyError(err)
	}
	return res, rows, err
}

// onWriter runs a statement outside any transaction on the handle's shared
// writer, through the writer queue. Autocommit Execs queued back to back
// share a group commit. A Query's rows are read in full before the lock is
// released: the statement has committed when Query returns, and the caller
// can iterate, and write, at leisure.
func (c *conn) onWriter(op call) (driver.Result, driver.Rows, error) {
	kind := holdExec
	if op.rows {
		kind = holdQuery
	}
	req := &c.wr
	*req = writeRequest{
		call:  op,
		c:     c.c,
		batch: !op.rows && op.info.flags&flagBatchable != 0 && !c.c.cfg.DisableGroupCommit,
		wait:  waiter{ready: req.wait.ready},
	}
	// Nothing of the call is kept past it: not its context, arguments
	// or results.
	defer func() { *req = writeRequest{wait: waiter{ready: req.wait.ready}} }()
	run := c.c.runBatch
	if c.c.db != nil {
		run = c.c.runRemoteBatch
	}
	if err := c.c.file.queue.submit(req, c.c.queueTimeout(), c.c.holderHere(kind), run); err != nil {
		return nil, nil, err
	}
	return req.res, req.out, req.err
}

// onOwn runs a statement on this connection's own SQLite connection,
// pinning the connection to it when the statement creates connection-local
// state. A write takes the writer queue; the rows of a write are read in
// full before the queue is released.
func (c *conn) onOwn(op call) (driver.Result, driver.Rows, error) {
	own, locked, err := c.ownFor(op.ctx, op.info)
	if err != nil {
		return nil, nil, err
	}
	if locked {
		defer c.c.file.queue.unlock()
		res, rows, err := runWrite(own, op)
		return res, rows, c.c.readOnlyError(err)
	}
	res, rows, cs, err := op.on(own)
	switch {
	case err != nil:
		return nil, nil, c.c.readOnlyError(err)
	case rows == nil:
		return res, nil, nil
	}
	return nil, &connRows{inner: rows, cs: cs}, nil
}

// ownFor returns this connection's own SQLite connection for a statement:
// it pins the connection when the statement creates connection-local state,
// and takes the writer queue for a write (locked: the caller unlocks).
func (c *conn) ownFor(ctx context.Context, info *stmtInfo) (own *phys, locked bool, err error) {
	own, err = c.ownPhys(ctx)
	if err != nil {
		return nil, false, err
	}
	if info.flags&flagSession != 0 {
		c.pinned = true
	}
	if info.flags&flagWrite == 0 || !c.c.queueOn() {
		return own, false, nil
	}
	if err := c.c.file.queue.lock(ctx, c.c.queueTimeout(), c.c.holderHere(holdSession)); err != nil {
		return nil, false, err
	}
	c.c.beforeWrite(info)
	return own, true, nil
}

// ownPhys returns this connection's own SQLite connection, opening it.
func (c *conn) ownPhys(ctx context.Context) (*phys, error) {
	if c.own != nil {
		if c.own.broken {
			return nil, driver.ErrBadConn
		}
		return c.own, nil
	}
	p, err := c.c.openSession(ctx)
	if err != nil {
		return nil, err
	}
	c.own = p
	return p, nil
}

// onReader runs a statement that cannot write on a reader; a Query's rows
// keep the reader until they are closed. If the reader refuses the statement
// as a write after all, it runs again as a write: a misjudgement costs time,
// not an error.
func (c *conn) onReader(op call) (driver.Result, driver.Rows, error) {
	r, err := c.c.readers.acquire(op.ctx, &c.last)
	if err != nil {
		return nil, nil, err
	}
	res, rows, cs, err := op.on(r)
	if err == nil && rows != nil {
		return nil, &connRows{inner: rows, cs: cs, reader: r, pool: &c.c.readers, last: &c.last}, nil
	}
	c.c.readers.release(r, &c.last)
	if err != nil && isLost(err) && !op.retried {
		// A read is safe to run again: on a connection to the leader
		// of the moment, the idle ones being to the one lost.
		c.c.readers.closeIdle()
		op.retried = true
		return c.onReader(op)
	}
	if err != nil && sqliteCode(err) == codeReadOnly {
		// SQLITE_READONLY itself: the statement writes. Its extended
		// codes (a -shm it cannot map, a moved file, ...) are not
		// about the statement, and are reported as they are.
		if c.c.readOnly {
			return nil, nil, c.c.readOnlyError(err)
		}
		c.c.file.queue.stats.reruns.Add(1)
		op.info = op.info.asWrite(op.query)
		return c.do(op)
	}
	return res, nil, err
}

// PrepareContext implements driver.ConnPrepareContext. The statement is
// checked by preparing it where it would run now; each execution is routed
// afresh, and every SQLite connection keeps its own prepared copy.
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.closed {
		return nil, driver.ErrBadConn
	}
	info := classify(query)
	var err error
	switch {
	case c.tx != nil:
		err = check(ctx, c.tx.ph, query, info)
	case c.pinned:
		err = check(ctx, c.own, query, info)
	case !c.c.memory:
		var r *phys
		if r, err = c.c.readers.get(ctx); err == nil {
			err = check(ctx, r, query, info)
			c.c.readers.put(r)
		}
	}
	if err != nil {
		return nil, err
	}
	return &stmt{c: c, query: query, info: info}, nil
}

// check prepares query on p to report errors at Prepare time.
func check(ctx context.Context, p *phys, query string, info *stmtInfo) error {
	if cacheable(info) && p.remote == nil {
		_, err := p.stmt(ctx, query)
		return err
	}
	st, err := p.preparer.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	return st.Close()
}

// Prepare implements driver.Conn.
func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// Begin implements driver.Conn.
//
// Deprecated: database/sql calls BeginTx.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// Ping implements driver.Pinger: it checks that the database can be read.
func (c *conn) Ping(ctx context.Context) error {
	if c.closed {
		return driver.ErrBadConn
	}
	_, rows, err := c.do(call{ctx: ctx, query: "SELECT 1", info: classify("SELECT 1"), rows: true})
	if err != nil {
		return err
	}
	return rows.Close()
}

// Close implements driver.Conn. An open transaction is rolled back.
func (c *conn) Close() (err error) {
	if c.closed {
		return nil
	}
	c.closed = true
	defer c.c.connClosed(&err) // a leased handle closes with its last connection
	c.rollbackOpen()
	c.c.readers.unkeep(&c.last)
	if c.own != nil {
		err := c.own.close()
		c.own = nil
		return err
	}
	return nil
}

// ResetSession implements driver.SessionResetter: database/sql calls it
// before reusing a connection. A transaction begun by SQL text and left open
// is rolled back.
func (c *conn) ResetSession(ctx context.Context) error {
	if c.closed || (c.own != nil && c.own.broken) {
		return driver.ErrBadConn
	}
	if c.tx != nil && c.tx.text {
		c.rollbackOpen()
	}
	return nil
}

// IsValid implements driver.Validator: database/sql calls it when the
// connection goes back to the pool. A transaction begun by SQL text and left
// open is rolled back then, so that it does not hold the writer lock while
// the connection sits idle.
func (c *conn) IsValid() bool {
	if c.tx != nil && c.tx.text {
		c.rollbackOpen()
	}
	return !c.closed && (c.own == nil || !c.own.broken)
}

// readOnlyError marks a write refused by a read-only handle, keeping SQLite's
// error in the chain.
func (c *connector) readOnlyError(err error) error {
	if err == nil || !c.readOnly || !isReadOnly(err) {
		return err
	}
	if c.readOnlyWhy != "" {
		return fmt.Errorf("%w: %s is read-only: %s; make it writable for the user the program runs as, or open it with mode=ro: %w",
			ErrReadOnly, c.name, c.readOnlyWhy, err)
	}
	return fmt.Errorf("%w: %s is opened read-only (mode=ro or immutable=1): %w", ErrReadOnly, c.name, err)
}

// busyError names the other process behind SQLITE_BUSY: inside the
// process the writer queue keeps SQLite's busy handler from ever waiting, so
// a busy timeout that ran out there was spent waiting for another process.
func (c *connector) busyError(err error) error {
	if sqliteCode(err) != codeBusy || !c.queueOn() || c.file == nil || c.file.queue.key == "" {
		return err
	}
	who := "another process"
	if writers, _ := sqliteLockers(c.file.queue.key); len(writers) > 0 {
		who += " (" + pidList(writers) + ")"
	}
	return fmt.Errorf("sqlitesafe: %s held the write lock of %s for the whole busy timeout (%s); "+
		"writers in this process queue behind each other, not behind it: find what it is doing (sqlite-safe doctor %s lists the processes using the file): %w",
		who, c.name, round(c.cfg.busyTimeout()), c.name, err)
}

// refuseWrite is the error of an operation that writes the database (what)
// asked of a read-only handle.
func (c *connector) refuseWrite(what string) error {
	if c.readOnlyWhy != "" {
		return fmt.Errorf("%w: %s writes the database, and %s is read-only: %s; make it writable for the user the program runs as",
			ErrReadOnly, what, c.name, c.readOnlyWhy)
	}
	return fmt.Errorf("%w: %s writes the database, and %s is opened read-only (mode=ro or immutable=1)", ErrReadOnly, what, c.name)
}

// checkWriter marks the shared writer broken when SQLite says it is no
// longer usable, so that the next holder of the queue reopens it.
func (c *connector) checkWriter(w *phys) {
	if v, ok := w.conn.(driver.Validator); ok && !v.IsValid() {
		w.broken = true
	}
}

// asWrite returns a copy of in that routes as a write, and caches it for
// query: a reader refused query as a write.
func (in *stmtInfo) asWrite(query string) *stmtInfo {
	w := *in
	w.flags |= flagWrite
	remember(query, &w)
	return &w
}

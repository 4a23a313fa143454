package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"errors"
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
	return c.exec(ctx, query, classify(query), args)
}

// QueryContext implements driver.QueryerContext.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.query(ctx, query, classify(query), args)
}

func (c *conn) exec(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	if c.closed {
		return nil, driver.ErrBadConn
	}
	f := info.flags
	switch {
	case c.tx != nil:
		return c.execInTx(ctx, query, info, args)
	case f&flagTxControl != 0:
		return c.execTxControl(ctx, query, info, args)
	case c.c.memory:
		return c.execShared(ctx, query, info, args)
	case f&flagSession != 0 || c.pinned:
		return c.execOwn(ctx, query, info, args)
	case f&flagWrite != 0 && !c.c.readOnly:
		return c.execWrite(ctx, query, info, args)
	}
	return c.execRead(ctx, query, info, args)
}

func (c *conn) query(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Rows, error) {
	if c.closed {
		return nil, driver.ErrBadConn
	}
	f := info.flags
	switch {
	case c.tx != nil:
		return c.queryInTx(ctx, query, info, args)
	case f&flagTxControl != 0:
		if f&flagMulti != 0 {
			return nil, errors.New("sqlitesafe: a script with transaction control returns no rows; run it with Exec")
		}
		if _, err := c.execTxControl(ctx, query, info, args); err != nil {
			return nil, err
		}
		return emptyRows{}, nil
	case c.c.memory:
		return c.queryShared(ctx, query, info, args)
	case f&flagSession != 0 || c.pinned:
		return c.queryOwn(ctx, query, info, args)
	case f&flagWrite != 0 && !c.c.readOnly:
		return c.queryWrite(ctx, query, info, args)
	}
	return c.queryRead(ctx, query, info, args)
}

// execWrite runs an autocommit write outside any transaction.
func (c *conn) execWrite(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	if !c.c.queueOn() {
		return c.execOwn(ctx, query, info, args)
	}
	return c.execShared(ctx, query, info, args)
}

// execShared runs a statement on the handle's shared writer, through the
// writer queue, where it may share a group commit.
func (c *conn) execShared(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	req := &writeRequest{
		ctx:   ctx,
		c:     c.c,
		query: query,
		info:  info,
		args:  args,
		batch: info.flags&flagBatchable != 0 && !c.c.cfg.DisableGroupCommit,
	}
	if err := c.c.file.queue.submit(req, c.c.cfg.busyTimeout(), c.c.holderHere(holdExec), c.c.runBatch); err != nil {
		return nil, err
	}
	return req.res, req.err
}

// queryWrite runs a writing query (INSERT ... RETURNING, say) outside any
// transaction: on the shared writer under the writer queue, or on this
// connection's own when the queue is off.
func (c *conn) queryWrite(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Rows, error) {
	if !c.c.queueOn() {
		return c.queryOwn(ctx, query, info, args)
	}
	return c.queryShared(ctx, query, info, args)
}

// queryShared runs a query on the shared writer under the writer queue. The
// rows are read in full before the lock is released, so the statement's
// transaction has committed when Query returns and the caller can iterate,
// and write, at leisure.
func (c *conn) queryShared(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Rows, error) {
	q := &c.c.file.queue
	if err := q.lock(ctx, c.c.cfg.busyTimeout(), c.c.holderHere(holdQuery)); err != nil {
		return nil, err
	}
	defer q.unlock()
	w, err := c.c.sharedWriter(ctx)
	if err != nil {
		return nil, err
	}
	c.c.beforeWrite(info)
	rows, cs, err := w.query(ctx, query, info, args)
	if err != nil {
		c.c.checkWriter(w)
		return nil, err
	}
	return bufferRows(rows, cs)
}

// execOwn runs a statement on this connection's own SQLite connection,
// pinning the connection to it when the statement creates connection-local
// state. A write takes the writer queue.
func (c *conn) execOwn(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	own, locked, err := c.ownFor(ctx, info)
	if err != nil {
		return nil, err
	}
	if locked {
		defer c.c.file.queue.unlock()
	}
	res, err := own.exec(ctx, query, info, args)
	return res, c.c.readOnlyError(err)
}

// queryOwn is execOwn for queries. Rows of a write are read in full before
// the writer queue is released.
func (c *conn) queryOwn(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Rows, error) {
	own, locked, err := c.ownFor(ctx, info)
	if err != nil {
		return nil, err
	}
	if locked {
		defer c.c.file.queue.unlock()
	}
	rows, cs, err := own.query(ctx, query, info, args)
	if err != nil {
		return nil, c.c.readOnlyError(err)
	}
	if locked {
		return bufferRows(rows, cs)
	}
	return &connRows{inner: rows, cs: cs}, nil
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
	if err := c.c.file.queue.lock(ctx, c.c.cfg.busyTimeout(), c.c.holderHere(holdSession)); err != nil {
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

// execRead runs a statement that cannot write on a reader. If the reader
// refuses it as a write after all, it runs again on the writer: a
// misjudgement costs time, not an error.
func (c *conn) execRead(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	r, err := c.c.readers.get(ctx)
	if err != nil {
		return nil, err
	}
	res, err := r.exec(ctx, query, info, args)
	c.c.readers.put(r)
	if err != nil && isReadOnly(err) {
		if c.c.readOnly {
			return nil, c.c.readOnlyError(err)
		}
		c.c.file.queue.stats.reruns.Add(1)
		return c.execWrite(ctx, query, info.asWrite(query), args)
	}
	return res, err
}

// queryRead is execRead for queries: the rows keep the reader until closed.
func (c *conn) queryRead(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Rows, error) {
	r, err := c.c.readers.get(ctx)
	if err != nil {
		return nil, err
	}
	rows, cs, err := r.query(ctx, query, info, args)
	if err != nil {
		c.c.readers.put(r)
		if isReadOnly(err) {
			if c.c.readOnly {
				return nil, c.c.readOnlyError(err)
			}
			c.c.file.queue.stats.reruns.Add(1)
			return c.queryWrite(ctx, query, info.asWrite(query), args)
		}
		return nil, err
	}
	return &connRows{inner: rows, cs: cs, reader: r, pool: &c.c.readers}, nil
}

// execInTx runs a statement inside the open transaction.
func (c *conn) execInTx(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	t := c.tx
	res, err := t.ph.exec(ctx, query, info, args)
	if err != nil && t.readOnly && isReadOnly(err) {
		err = fmt.Errorf("%w: the transaction is read-only: %w", ErrReadOnly, err)
	} else {
		err = c.c.readOnlyError(err)
	}
	if t.text && (info.flags&flagTxControl != 0 || err != nil) {
		c.checkTextTx()
	}
	return res, err
}

// queryInTx runs a query inside the open transaction.
func (c *conn) queryInTx(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Rows, error) {
	t := c.tx
	rows, cs, err := t.ph.query(ctx, query, info, args)
	if err != nil {
		if t.readOnly && isReadOnly(err) {
			err = fmt.Errorf("%w: the transaction is read-only: %w", ErrReadOnly, err)
		} else {
			err = c.c.readOnlyError(err)
		}
		if t.text {
			c.checkTextTx()
		}
		return nil, err
	}
	if t.text && info.flags&flagTxControl != 0 {
		c.checkTextTx()
	}
	return &connRows{inner: rows, cs: cs}, nil
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
	if cacheable(info) {
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
	rows, err := c.query(ctx, "SELECT 1", classify("SELECT 1"), nil)
	if err != nil {
		return err
	}
	return rows.Close()
}

// Close implements driver.Conn. An open transaction is rolled back.
func (c *conn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	c.rollbackOpen()
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

package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
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

// txState is an open transaction: where it runs and what it holds.
type txState struct {
	ph        *phys
	locked    bool      // holds the file's writer queue
	reader    bool      // ph is borrowed from the reader pool
	readOnly  bool      // begun with TxOptions.ReadOnly
	queryOnly bool      // PRAGMA query_only was set for it and must be reset
	text      bool      // begun by SQL text (BEGIN, SAVEPOINT), not BeginTx
	dtx       driver.Tx // modernc.org/sqlite's transaction, for BeginTx ones
}

// queueOn reports whether writes take the writer queue.
func (c *connector) queueOn() bool { return !c.cfg.DisableWriterQueue && !c.readOnly }

// procOn reports whether writers also take the cross-process lock.
func (c *connector) procOn() bool {
	return !c.cfg.DisableProcessQueue && c.queueOn() && !c.memory
}

// holderHere describes the caller as a holder of the writer lock. Opening
// and closing a handle do not queue with other processes: they write nothing
// another process must wait for (SQLite's own locks cover setting the
// journal mode, and the checkpoint on close does not wait), and a close must
// not fail because another process is writing.
func (c *connector) holderHere(kind holdKind) holder {
	proc := c.procOn() && kind != holdOpen && kind != holdClose
	return holder{kind: kind, since: time.Now(), site: captureSite(), c: c, proc: proc}
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

// checkTextTx asks SQLite whether a transaction begun by SQL text is still
// open, and ends it on our side if not: COMMIT, ROLLBACK, the RELEASE of the
// outermost savepoint, or an error that rolled it back.
func (c *conn) checkTextTx() {
	in, err := c.tx.ph.inTx()
	if err != nil || !in {
		c.endTx(false)
	}
}

// execTxControl runs transaction control sent as SQL outside a transaction:
// BEGIN (made BEGIN IMMEDIATE), SAVEPOINT, or a script holding them. It takes
// the writer lock first; if a transaction is open afterwards, the lock stays
// with it until it ends.
func (c *conn) execTxControl(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	t, err := c.writeTarget(ctx, holdTextTx)
	if err != nil {
		return nil, err
	}
	if info.flags&flagBegin != 0 {
		query = info.withBegin(query, c.c.cfg.txLock())
	}
	c.tx = t
	t.text = true
	res, err := t.ph.exec(ctx, query, info, args)
	c.checkTextTx()
	return res, c.c.readOnlyError(err)
}

// writeTarget picks the connection a write transaction runs on and takes
// what it needs: the writer queue, or a reader on a read-only handle.
func (c *conn) writeTarget(ctx context.Context, kind holdKind) (*txState, error) {
	t := &txState{}
	switch {
	case c.c.readOnly && !c.pinned:
		r, err := c.c.readers.get(ctx)
		if err != nil {
			return nil, err
		}
		t.ph, t.reader = r, true
		return t, nil
	case c.c.memory || (!c.pinned && c.c.queueOn()):
		q := &c.c.file.queue
		if err := q.lock(ctx, c.c.cfg.busyTimeout(), c.c.holderHere(kind)); err != nil {
			return nil, err
		}
		w, err := c.c.sharedWriter(ctx)
		if err != nil {
			q.unlock()
			return nil, err
		}
		t.ph, t.locked = w, true
		return t, nil
	}
	own, err := c.ownPhys(ctx)
	if err != nil {
		return nil, err
	}
	if c.c.queueOn() {
		if err := c.c.file.queue.lock(ctx, c.c.cfg.busyTimeout(), c.c.holderHere(kind)); err != nil {
			return nil, err
		}
		t.locked = true
	}
	t.ph = own
	return t, nil
}

// release gives back what a transaction held.
func (c *conn) release(t *txState) {
	switch {
	case t.reader:
		c.c.readers.put(t.ph)
	case t.locked:
		if t.ph == c.c.writer {
			c.c.checkWriter(t.ph)
		}
		c.c.file.queue.unlock()
	}
}

// BeginTx implements driver.ConnBeginTx. A write transaction takes the
// writer lock (waiting in the queue, bounded by ctx and the busy timeout)
// and begins with BEGIN IMMEDIATE; it holds the lock until Commit or
// Rollback. A read-only transaction runs on a reader and never waits for the
// writer.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.closed {
		return nil, driver.ErrBadConn
	}
	if c.tx != nil {
		return nil, errors.New("sqlitesafe: a transaction is already open on this connection")
	}
	var t *txState
	var err error
	if opts.ReadOnly {
		t, err = c.readTarget(ctx)
	} else {
		t, err = c.writeTarget(ctx, holdTx)
	}
	if err != nil {
		return nil, err
	}
	dtx, err := t.ph.beginner.BeginTx(ctx, driver.TxOptions{ReadOnly: opts.ReadOnly || c.c.readOnly})
	if err != nil {
		t.ph.ensureNoTx()
		c.release(t)
		return nil, err
	}
	t.dtx = dtx
	t.readOnly = opts.ReadOnly
	c.tx = t
	if opts.ReadOnly && !t.reader {
		// A read-write connection: make it refuse writes for now.
		if err := t.ph.run(ctx, "PRAGMA query_only = 1"); err != nil {
			c.endTx(true)
			return nil, err
		}
		t.queryOnly = true
	}
	return &tx{c: c}, nil
}

// readTarget picks the connection a read-only transaction runs on.
func (c *conn) readTarget(ctx context.Context) (*txState, error) {
	switch {
	case c.c.memory:
		return c.writeTarget(ctx, holdTx)
	case c.pinned:
		own, err := c.ownPhys(ctx)
		if err != nil {
			return nil, err
		}
		return &txState{ph: own}, nil
	}
	r, err := c.c.readers.get(ctx)
	if err != nil {
		return nil, err
	}
	return &txState{ph: r, reader: true}, nil
}

// endTx forgets the open transaction and releases what it held. check makes
// sure first that SQLite is out of the transaction too (after a failed
// COMMIT, say), rolling back what is left.
func (c *conn) endTx(check bool) {
	t := c.tx
	c.tx = nil
	defer c.release(t)
	if t.queryOnly && !c.c.cfg.QueryOnly {
		if err := t.ph.run(context.Background(), "PRAGMA query_only = 0"); err != nil {
			t.ph.broken = true
		}
	}
	if check {
		t.ph.ensureNoTx()
	}
}

// tx is a transaction begun with BeginTx.
type tx struct {
	c *conn
}

// Commit implements driver.Tx. Whatever COMMIT returns, the writer lock is
// released and the connection is out of the transaction afterwards.
func (t *tx) Commit() error {
	st := t.c.tx
	if st == nil || st.dtx == nil {
		return errors.New("sqlitesafe: commit: the transaction has already ended")
	}
	err := st.dtx.Commit()
	t.c.endTx(err != nil)
	return t.c.c.readOnlyError(err)
}

// Rollback implements driver.Tx.
func (t *tx) Rollback() error {
	st := t.c.tx
	if st == nil || st.dtx == nil {
		return errors.New("sqlitesafe: rollback: the transaction has already ended")
	}
	err := st.dtx.Rollback()
	t.c.endTx(err != nil)
	return err
}

// rollbackOpen rolls back a transaction still open when the connection is
// closed or handed back to the pool.
func (c *conn) rollbackOpen() {
	if c.tx == nil {
		return
	}
	if c.tx.dtx != nil {
		c.tx.dtx.Rollback()
	} else {
		c.tx.ph.run(context.Background(), "ROLLBACK")
	}
	c.endTx(true)
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

// runBatch runs a batch of autocommit writes on the shared writer; the
// caller holds the writer queue. A batch of more than one write is a group
// commit: one transaction, each write keeping its own result and error.
func (c *connector) runBatch(batch []*writeRequest) {
	// Reopening a broken writer is the handle's business, not one
	// caller's: no caller's context may fail the others' writes.
	w, err := c.sharedWriter(context.Background())
	if err != nil {
		for _, r := range batch {
			r.err = err
		}
		return
	}
	defer c.checkWriter(w)
	if len(batch) == 1 {
		r := batch[0]
		c.beforeWrite(r.info)
		r.res, r.err = w.exec(r.ctx, r.query, r.info, r.args)
		return
	}
	if err := w.run(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		err = fmt.Errorf("sqlitesafe: begin a group commit on %s: %w", c.name, err)
		for _, r := range batch {
			r.err = err
		}
		return
	}
	for i, r := range batch {
		r.res, r.err = w.exec(r.ctx, r.query, r.info, r.args)
		if r.err == nil {
			continue
		}
		if in, err := w.inTx(); err == nil && in {
			continue // the statement failed alone; the others stand
		}
		// The error rolled back the whole transaction (ON CONFLICT
		// ROLLBACK, RAISE(ROLLBACK), an I/O error): the writes before it
		// are gone. Run them again, and the rest, each on its own.
		w.ensureNoTx()
		runAlone(w, batch[:i])
		runAlone(w, batch[i+1:])
		return
	}
	if err := w.run(context.Background(), "COMMIT"); err != nil {
		// Nothing is committed (a deferred foreign key failed, say): run
		// each write on its own, so that each gets its own outcome.
		w.ensureNoTx()
		runAlone(w, batch)
	}
}

// runAlone runs each request as its own autocommit statement.
func runAlone(w *phys, batch []*writeRequest) {
	for _, r := range batch {
		r.res, r.err = w.exec(r.ctx, r.query, r.info, r.args)
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

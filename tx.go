package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
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

// checkTextTx asks SQLite whether a transaction begun by SQL text is still
// open, and ends it on our side if not: COMMIT, ROLLBACK, the RELEASE of the
// outermost savepoint, or an error that rolled it back. When it cannot ask
// (the connection to a cluster's leader was lost asking, which rolls the
// transaction back), the transaction ends on our side only if ends: the
// statement ends it (flagTxEnd), or began it and fails. Otherwise it stays
// on its lost connection until the application's ROLLBACK or COMMIT, so that
// the statements in between fail instead of running outside it. It returns
// the error of the asking.
func (c *conn) checkTextTx(ends bool) error {
	in, err := c.tx.ph.inTx()
	if err == nil && !in || err != nil && ends {
		c.endTx(false)
	}
	return err
}

// onTx runs a statement inside the open transaction. After transaction
// control sent as text, or an error, it asks SQLite whether a transaction
// begun by text is still open.
func (c *conn) onTx(op call) (driver.Result, driver.Rows, error) {
	t := c.tx
	if op.info.flags&flagTxEnd != 0 {
		// COMMIT, RELEASE or ROLLBACK runs to its end: reported as its
		// context's error, a COMMIT that completed would be a lie.
		op.ctx = context.WithoutCancel(op.ctx)
	}
	var (
		res  driver.Result
		rows driver.Rows
		cs   *cachedStmt
		err  error
	)
	if t.ph.remote != nil && op.info.flags&flagTxEnd != 0 && op.info.flags&flagMulti == 0 && isCommitText(op.query) {
		// The engine's COMMIT, which resolves one a failover interrupts.
		if err = t.ph.commitWith(op.query); err == nil && op.rows {
			rows = emptyRows{}
		}
	} else {
		res, rows, cs, err = op.on(t.ph)
	}
	if t.ph.remote != nil {
		// A transaction whose connection was lost is rolled back.
		err = notCommitted(err)
	}
	if err != nil && op.info.flags&flagTxEnd != 0 {
		err = commitError(err)
	}
	if err != nil {
		if t.readOnly && isReadOnly(err) {
			err = fmt.Errorf("%w: the transaction is read-only: %w", ErrReadOnly, err)
		} else {
			err = c.c.readOnlyError(err)
		}
	}
	if t.text && (op.info.flags&flagTxControl != 0 || err != nil) {
		ends := op.info.flags&flagTxEnd != 0
		if ierr := c.checkTextTx(ends); ierr != nil && err == nil && !ends {
			// A SAVEPOINT inside the transaction, say: it ran,
			// but the transaction is lost with its connection.
			err = notCommitted(ierr)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if rows != nil {
		return nil, &connRows{inner: rows, cs: cs}, nil
	}
	return res, nil, nil
}

// onTxControl runs transaction control sent as SQL outside a transaction:
// BEGIN (made BEGIN IMMEDIATE), SAVEPOINT, or a script holding them. It takes
// the writer lock first; if a transaction is open afterwards, the lock stays
// with it until it ends. Through Query it returns no rows.
func (c *conn) onTxControl(op call) (driver.Result, driver.Rows, error) {
	if op.rows && op.info.flags&flagMulti != 0 {
		return nil, nil, errors.New("sqlitesafe: a script with transaction control returns no rows; run it with Exec")
	}
	t, err := c.txTarget(op.ctx, holdTextTx, true)
	if err != nil {
		return nil, nil, err
	}
	if op.info.flags&flagBegin != 0 {
		op.query = op.info.withBegin(op.query, c.c.cfg.txLock())
	}
	c.tx = t
	t.text = true
	res, err := t.ph.exec(op.ctx, op.query, op.info, op.args)
	for tries := 0; err != nil && op.info.flags&flagMulti == 0 && c.c.beginAgain(op.ctx, t, err, &tries); {
		res, err = t.ph.exec(op.ctx, op.query, op.info, op.args)
	}
	if ierr := c.checkTextTx(true); ierr != nil && err == nil {
		// BEGIN ran, but the connection was lost asking whether the
		// transaction is open: it is gone with its connection.
		err = ierr
	}
	if err != nil {
		if op.info.flags&flagMulti == 0 {
			err = notCommitted(err) // a lone BEGIN or SAVEPOINT began nothing
		}
		return nil, nil, c.c.readOnlyError(err)
	}
	if op.rows {
		return nil, emptyRows{}, nil
	}
	return res, nil, nil
}

// txTarget picks the connection a transaction runs on, by the same routing
// as a statement (a write transaction routes as a write, a read-only one as
// a read), and takes what it needs: the writer queue for a write (and for
// anything on an in-memory database), or a reader.
func (c *conn) txTarget(ctx context.Context, kind holdKind, write bool) (*txState, error) {
	var f stmtFlags
	if write {
		f = flagWrite
	}
	s := c.state()
	s.inTx = false
	t := &txState{}
	switch route(s, f) {
	case toWriter:
		q := &c.c.file.queue
		if err := q.lock(ctx, c.c.queueTimeout(), c.c.holderHere(kind)); err != nil {
			return nil, err
		}
		w, err := c.c.sharedWriter(ctx)
		if err != nil {
			q.unlock()
			return nil, err
		}
		t.ph, t.locked = w, true
	case toOwn:
		own, err := c.ownPhys(ctx)
		if err != nil {
			return nil, err
		}
		if write && c.c.queueOn() {
			if err := c.c.file.queue.lock(ctx, c.c.queueTimeout(), c.c.holderHere(kind)); err != nil {
				return nil, err
			}
			t.locked = true
		}
		t.ph = own
	default:
		r, err := c.c.readers.acquire(ctx, &c.last)
		if err != nil {
			return nil, err
		}
		// Where the read transaction began, should it keep a
		// checkpoint from resetting the -wal.
		r.site.Store(hereSite())
		t.ph, t.reader = r, true
	}
	return t, nil
}

// release gives back what a transaction held.
func (c *conn) release(t *txState) {
	switch {
	case t.reader:
		c.c.readers.release(t.ph, &c.last)
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
	t, err := c.txTarget(ctx, holdTx, !opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	dopts := driver.TxOptions{ReadOnly: opts.ReadOnly || c.c.readOnly}
	dtx, err := t.ph.beginner.BeginTx(ctx, dopts)
	for tries := 0; err != nil && c.c.beginAgain(ctx, t, err, &tries); {
		dtx, err = t.ph.beginner.BeginTx(ctx, dopts)
	}
	if err != nil {
		t.ph.ensureNoTx()
		c.release(t)
		return nil, c.c.busyError(notCommitted(err))
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

// Commit implements driver.Tx. COMMIT runs to its end whatever the
// transaction's context says (modernc.org/sqlite's Commit would report a
// COMMIT that completed as the context's error), so an error means nothing
// was committed, but for ErrOutcomeUnknown. Whatever COMMIT returns, the
// writer lock is released and the connection is out of the transaction
// afterwards.
func (t *tx) Commit() error {
	st := t.c.tx
	if st == nil || st.dtx == nil {
		return errors.New("sqlitesafe: commit: the transaction has already ended")
	}
	var err error
	if st.reader || st.readOnly {
		err = st.ph.run(context.Background(), "COMMIT") // nothing to resolve
	} else {
		err = st.ph.commit()
	}
	if err != nil {
		err = t.c.c.busyError(commitError(notCommitted(err)))
	}
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

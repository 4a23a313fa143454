package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
)

// How a write outside a transaction runs, so that its outcome is SQLite's: a
// call that returns an error has written nothing, and one that returns
// success has committed.
//
// modernc.org/sqlite reports a statement whose context ended while it ran as
// the context's error even when the statement completed (and, outside a
// transaction, committed). A context that cannot end needs nothing more. For
// the others:
//
//   - a single INSERT, UPDATE, DELETE or REPLACE (what group commit batches)
//     runs as it is; when it comes back with its context's error, SQLite's
//     count of changed rows says whether it completed, and if it did, the
//     call succeeds with its result;
//   - VACUUM and journal_mode changes, which SQLite refuses inside a
//     transaction, are not interrupted once they run (the context bounded
//     their wait for the writer);
//   - any other write (RETURNING rows, a script, DDL) runs in a transaction
//     of its own: an error rolls it back, and COMMIT runs whatever the
//     context says. A query whose context has ended by the time its rows
//     are read is rolled back too: database/sql reports the context's error
//     from the rows of such a query.
//
// database/sql itself can still report a context's error after the driver
// has committed a write through Query: Rows.Next, Rows.Err and Row.Scan
// return the context's error when the context ends after Query returned and
// before the rows were read. Row.Err and the error of QueryContext are the
// driver's, and exact.

// runWrite runs op, a statement outside any transaction, on p, which the
// caller holds under the writer queue. A Query's rows are read in full.
func runWrite(p *phys, op call) (driver.Result, driver.Rows, error) {
	f := op.info.flags
	if p.remote != nil {
		return runRemoteWrite(p, op)
	}
	switch {
	case op.ctx.Done() == nil || f&flagWrite == 0:
		return runBuffered(p, op)
	case f&flagNoTx != 0:
		op.ctx = context.WithoutCancel(op.ctx)
		return runBuffered(p, op)
	case f&flagBatchable != 0 && !op.rows:
		res, err := execChecked(p, op)
		return res, nil, err
	}
	return runInOwnTx(p, op)
}

// runBuffered runs op on p, reading a Query's rows in full.
func runBuffered(p *phys, op call) (driver.Result, driver.Rows, error) {
	res, rows, cs, err := op.on(p)
	if err == nil && rows != nil {
		rows, err = bufferRows(rows, cs)
	}
	return res, rows, err
}

// execChecked runs a single INSERT, UPDATE, DELETE or REPLACE on p, inside a
// transaction or not, and reports it as completed when it did: a statement
// that completed is never reported as its context's error.
func execChecked(p *phys, op call) (driver.Result, error) {
	if p.remote != nil {
		// On a cluster the context bounded the wait for the queue: a
		// request interrupted now would lose the connection, and with
		// it the whole batch, at every run.
		op.ctx = context.WithoutCancel(op.ctx)
	}
	if op.ctx.Done() == nil {
		return p.exec(op.ctx, op.query, op.info, op.args)
	}
	before, ok := p.totalChanges()
	res, err := p.exec(op.ctx, op.query, op.info, op.args)
	if err == nil || !ok || op.ctx.Err() == nil || !errors.Is(err, op.ctx.Err()) {
		return res, err
	}
	// SQLite adds a statement's changes to the total when it completes,
	// and only then: a statement interrupted, or rolled back, adds none.
	if after, ok := p.totalChanges(); ok && after != before {
		return p.lastResult(), nil
	}
	return nil, err
}

// runInOwnTx runs op on p in a transaction of its own.
func runInOwnTx(p *phys, op call) (driver.Result, driver.Rows, error) {
	bg := context.Background()
	if err := p.run(bg, "BEGIN IMMEDIATE"); err != nil {
		return nil, nil, err
	}
	res, rows, err := runBuffered(p, op)
	if err == nil && op.rows && op.ctx.Err() != nil {
		// database/sql would report the context's error from the rows
		// of a query whose context has ended: do not commit a write
		// the caller will be told failed.
		err = op.ctx.Err()
	}
	if err != nil {
		p.ensureNoTx()
		return nil, nil, err
	}
	if err := p.commit(); err != nil {
		err = commitError(err)
		p.ensureNoTx()
		return nil, nil, err
	}
	return res, rows, nil
}

// commitError describes a failed COMMIT. Most failures leave nothing
// committed (a deferred foreign key, a full disk); an I/O error may come
// after the commit record reached the -wal, and the transaction is then
// committed or not depending on what the disk kept.
func commitError(err error) error {
	if sqliteCode(err)&0xff == codeIOErr {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return err
}

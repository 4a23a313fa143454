package sqlitesafe

import (
	"context"
	"database/sql"
	"database/sql/driver"
)

// Raw runs f with the modernc.org/sqlite connection that sc writes on, for
// what database/sql cannot express: the online backup API (NewBackup),
// Serialize and Deserialize, commit, rollback and pre-update hooks
// (sqlite.HookRegisterer), file controls. f gets modernc's driver.Conn;
// assert it to the interface you need.
//
// f runs holding the writer lock, as a write transaction does: other
// writers of the process (and, with the process queue, of other processes)
// wait until f returns, and nothing else writes on the connection meanwhile.
// Inside a transaction open on sc, f runs on that transaction's connection
// (the lock is already held). A transaction f leaves open is rolled back when
// it returns. Do not keep the connection after f returns: it is shared by
// the handle. Hooks registered on it stay registered, and fire for the
// writes of every connection of the handle, until the connection is
// replaced (after an error that breaks it) or the handle is closed.
//
// On a read-only handle f gets a read-only connection and takes no lock.
// For reading at length without holding writers up, use RawRead.
func Raw(ctx context.Context, sc *sql.Conn, f func(driverConn any) error) error {
	return sc.Raw(func(dc any) error {
		lc, ok := dc.(*conn)
		if !ok {
			return ErrNotSQLiteSafe
		}
		return lc.raw(ctx, f)
	})
}

// RawRead runs f with one of the handle's read-only modernc.org/sqlite
// connections (mode=ro), taking no lock: for long reads through modernc's
// own API, such as Serialize, without holding writers up. Inside a
// transaction open on sc, f runs on that transaction's connection.
func RawRead(ctx context.Context, sc *sql.Conn, f func(driverConn any) error) error {
	return sc.Raw(func(dc any) error {
		lc, ok := dc.(*conn)
		if !ok {
			return ErrNotSQLiteSafe
		}
		return lc.rawRead(ctx, f)
	})
}

func (c *conn) raw(ctx context.Context, f func(any) error) error {
	if c.closed {
		return driver.ErrBadConn
	}
	if c.tx != nil {
		return f(c.tx.ph.conn)
	}
	t, err := c.txTarget(ctx, holdRaw, true)
	if err != nil {
		return err
	}
	defer func() {
		t.ph.ensureNoTx()
		c.release(t)
	}()
	return f(t.ph.conn)
}

func (c *conn) rawRead(ctx context.Context, f func(any) error) error {
	if c.closed {
		return driver.ErrBadConn
	}
	switch {
	case c.tx != nil:
		return f(c.tx.ph.conn)
	case c.c.memory || c.pinned:
		return c.raw(ctx, f)
	}
	r, err := c.c.readers.get(ctx)
	if err != nil {
		return err
	}
	defer func() {
		r.ensureNoTx()
		c.c.readers.put(r)
	}()
	return f(r.conn)
}

package peers

import (
	"database/sql"
	"errors"
	"fmt"
)

// Handles are the pools of one configuration.
type Handles struct {
	Writer *sql.DB // write transactions and autocommit writes
	Reader *sql.DB // reads; the Writer itself for a configuration of one pool
}

// Close closes both pools.
func (h *Handles) Close() error {
	err := h.Writer.Close()
	if h.Reader != h.Writer {
		err = errors.Join(err, h.Reader.Close())
	}
	return err
}

// Opener opens the pools of a configuration on the database file at path,
// with PRAGMA synchronous set to sync (NORMAL or FULL).
type Opener func(path, sync string) (*Handles, error)

// DSNFunc returns the DSN of the database file at path with PRAGMA
// synchronous set to sync.
type DSNFunc func(path, sync string) string

// poolIdle is the idle connections every pool that may grow keeps. The
// default of database/sql, 2, would close and reopen connections all the
// time under 8 or 64 goroutines, which measures the open, not the driver;
// every configuration gets the same setting.
const poolIdle = 64

// OnePool opens one *sql.DB that every call goes through, as most programs
// do.
func OnePool(driver string, dsn DSNFunc) Opener {
	return func(path, sync string) (*Handles, error) {
		db, err := openPool(driver, dsn(path, sync), 0, poolIdle)
		if err != nil {
			return nil, err
		}
		return &Handles{Writer: db, Reader: db}, nil
	}
}

// TwoPools opens the pattern PocketBase and the usual guides recommend: a
// writer *sql.DB with SetMaxOpenConns(1), through which every write goes,
// and a reader *sql.DB with the same DSN for the reads.
func TwoPools(driver string, dsn DSNFunc) Opener {
	return func(path, sync string) (*Handles, error) {
		w, err := openPool(driver, dsn(path, sync), 1, 1)
		if err != nil {
			return nil, err
		}
		r, err := openPool(driver, dsn(path, sync), 0, poolIdle)
		if err != nil {
			w.Close()
			return nil, err
		}
		return &Handles{Writer: w, Reader: r}, nil
	}
}

// OneConn opens one *sql.DB of at most one connection, for the limits.
func OneConn(driver string, dsn DSNFunc) Opener {
	return func(path, sync string) (*Handles, error) {
		db, err := openPool(driver, dsn(path, sync), 1, 1)
		if err != nil {
			return nil, err
		}
		return &Handles{Writer: db, Reader: db}, nil
	}
}

// openPool opens and pings a pool with the given limits (0: no limit on
// open connections).
func openPool(driver, dsn string, maxOpen, maxIdle int) (*sql.DB, error) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("peers: open %s: %w", driver, err)
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxIdle)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("peers: open %s: %w", driver, err)
	}
	return db, nil
}

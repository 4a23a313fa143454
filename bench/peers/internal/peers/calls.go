package peers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The statements of the workloads.
const (
	insertSQL     = "INSERT INTO t(v) VALUES (?)"
	readSQL       = "SELECT v FROM t WHERE id = ?"
	read3SQL      = "SELECT id, v FROM t WHERE id >= ? ORDER BY id LIMIT 3"
	counterGetSQL = "SELECT n FROM counter WHERE id = ?"
	counterSetSQL = "UPDATE counter SET n = ? WHERE id = ?"
	// templateValue is v of every row of the template.
	templateValue = "hello"
)

// buildStreams returns the streams of workload wl on h, whose table t has
// rows rows to read from, and a cleanup that closes what they prepared.
func buildStreams(h *Handles, wl Workload, rows int) (streams []*stream, cleanup func() error, err error) {
	ctx := context.Background()
	var closers []func() error
	cleanup = func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		closers = nil
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	prepare := func(db *sql.DB, query string) (*sql.Stmt, error) {
		st, err := db.Prepare(query)
		if err != nil {
			return nil, fmt.Errorf("peers: prepare %q: %w", query, err)
		}
		closers = append(closers, st.Close)
		return st, nil
	}
	conn := func(db *sql.DB) (*sql.Conn, error) {
		c, err := db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("peers: take a connection: %w", err)
		}
		closers = append(closers, c.Close)
		return c, nil
	}
	insertStream := func(g int) (*stream, error) {
		ins := func(w *worker) error { return insertVia(h.Writer, w) }
		if wl.Prepared {
			st, err := prepare(h.Writer, insertSQL)
			if err != nil {
				return nil, err
			}
			ins = func(w *worker) error { return insertStmt(st, w) }
		}
		return &stream{name: "inserts", g: g, rowsPerCall: 1, call: ins}, nil
	}
	readStream := func(g int) (*stream, error) {
		rd := func(w *worker) error { return checkRead(h.Reader.QueryRow(readSQL, w.rng.IntN(rows)+1)) }
		if wl.Prepared {
			st, err := prepare(h.Reader, readSQL)
			if err != nil {
				return nil, err
			}
			rd = func(w *worker) error { return checkRead(st.QueryRow(w.rng.IntN(rows) + 1)) }
		}
		return &stream{name: "reads", g: g, rowsPerCall: 1, call: rd}, nil
	}

	switch wl.Kind {
	case Insert:
		s, err := insertStream(wl.G)
		if err != nil {
			return nil, nil, err
		}
		return []*stream{s}, cleanup, nil
	case Read:
		s, err := readStream(wl.G)
		if err != nil {
			return nil, nil, err
		}
		return []*stream{s}, cleanup, nil
	case ReadBesideInsert:
		r, err := readStream(wl.G)
		if err != nil {
			return nil, nil, err
		}
		i, err := insertStream(1)
		if err != nil {
			return nil, nil, err
		}
		return []*stream{r, i}, cleanup, nil
	case RMW:
		return []*stream{{name: "transactions", g: wl.G, rowsPerCall: 1, call: func(w *worker) error {
			return rmw(h.Writer, w, false)
		}}}, cleanup, nil
	case Mixed:
		return []*stream{{name: "calls", g: wl.G, rowsPerCall: 1, call: func(w *worker) error {
			if w.rng.IntN(10) == 0 {
				return rmw(h.Writer, w, true)
			}
			return read3(h.Reader, w.rng.IntN(rows-2)+1)
		}}}, cleanup, nil
	case Bulk:
		return []*stream{{name: "rows", g: 1, rowsPerCall: BulkRows, call: func(w *worker) error {
			return bulk(h.Writer, w)
		}}}, cleanup, nil
	case LimitInsert:
		c, err := conn(h.Writer)
		if err != nil {
			return nil, nil, err
		}
		st, err := c.PrepareContext(ctx, insertSQL)
		if err != nil {
			return nil, nil, fmt.Errorf("peers: prepare %q: %w", insertSQL, err)
		}
		closers = append(closers, st.Close)
		return []*stream{{name: "inserts", g: 1, rowsPerCall: 1, call: func(w *worker) error {
			return insertStmt(st, w)
		}}}, cleanup, nil
	case LimitRead:
		c, err := conn(h.Reader)
		if err != nil {
			return nil, nil, err
		}
		st, err := c.PrepareContext(ctx, readSQL)
		if err != nil {
			return nil, nil, fmt.Errorf("peers: prepare %q: %w", readSQL, err)
		}
		closers = append(closers, st.Close)
		return []*stream{{name: "reads", g: 1, rowsPerCall: 1, call: func(w *worker) error {
			return checkRead(st.QueryRow(w.rng.IntN(rows) + 1))
		}}}, cleanup, nil
	case LimitTx:
		c, err := conn(h.Writer)
		if err != nil {
			return nil, nil, err
		}
		var tx *sql.Tx
		var st *sql.Stmt
		s := &stream{name: "rows", g: 1, rowsPerCall: 1}
		s.begin = func() error {
			var err error
			if tx, err = c.BeginTx(ctx, nil); err != nil {
				return err
			}
			if st, err = tx.Prepare(insertSQL); err != nil {
				tx.Rollback()
				return err
			}
			return nil
		}
		s.call = func(w *worker) error { return insertStmt(st, w) }
		s.end = func() error {
			if err := st.Close(); err != nil {
				tx.Rollback()
				return err
			}
			return tx.Commit()
		}
		return []*stream{s}, cleanup, nil
	}
	return nil, nil, fmt.Errorf("peers: workload %s has no calls", wl.Name)
}

// insertVia inserts one row through db, unprepared.
func insertVia(db *sql.DB, w *worker) error {
	if _, err := db.Exec(insertSQL, "x"); err != nil {
		return err
	}
	w.inserted++
	return nil
}

// insertStmt inserts one row through a prepared statement.
func insertStmt(st *sql.Stmt, w *worker) error {
	if _, err := st.Exec("x"); err != nil {
		return err
	}
	w.inserted++
	return nil
}

// checkRead scans a point read of a template row and checks its value.
func checkRead(row *sql.Row) error {
	var v string
	if err := row.Scan(&v); err != nil {
		return err
	}
	if v != templateValue {
		return fmt.Errorf("peers: read %q, want %q", v, templateValue)
	}
	return nil
}

// read3 reads the rows from id on, which must be id, id+1 and id+2 of the
// template.
func read3(db *sql.DB, id int) error {
	rs, err := db.Query(read3SQL, id)
	if err != nil {
		return err
	}
	defer rs.Close()
	n := 0
	for rs.Next() {
		var got int
		var v string
		if err := rs.Scan(&got, &v); err != nil {
			return err
		}
		if got != id+n || v != templateValue {
			return fmt.Errorf("peers: read row %d %q, want %d %q", got, v, id+n, templateValue)
		}
		n++
	}
	if err := rs.Err(); err != nil {
		return err
	}
	if n != 3 {
		return fmt.Errorf("peers: read %d rows from id %d, want 3", n, id)
	}
	return rs.Close()
}

// rmw is one read-modify-write transaction on a random counter row: read
// n, (with insert, insert a row of t,) write n+1, commit.
func rmw(db *sql.DB, w *worker, insert bool) error {
	k := w.rng.IntN(CounterRows) + 1
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	var n int64
	if err := tx.QueryRow(counterGetSQL, k).Scan(&n); err != nil {
		tx.Rollback()
		return err
	}
	if insert {
		if _, err := tx.Exec(insertSQL, "x"); err != nil {
			tx.Rollback()
			return err
		}
	}
	if _, err := tx.Exec(counterSetSQL, n+1, k); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	w.incremented++
	if insert {
		w.inserted++
	}
	return nil
}

// bulk inserts BulkRows rows in one transaction.
func bulk(db *sql.DB, w *worker) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	for range BulkRows {
		if _, err := tx.Exec(insertSQL, "x"); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	w.inserted += BulkRows
	return nil
}

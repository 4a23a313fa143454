package sqlitesafe

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/engine"
	"github.com/sqlitesafe/sqlitesafe/internal/sqlitesched"
	"modernc.org/libc"
	"modernc.org/sqlite"
)

// phys is one modernc.org/sqlite connection. It is used by one goroutine at a
// time: the writer by the holder of the writer queue, a reader by the
// borrower, a session connection by its logical connection.
type phys struct {
	conn     driver.Conn // modernc.org/sqlite's connection, or an engine's
	remote   engine.Conn // the engine's connection (a dqlite cluster's), nil for modernc.org/sqlite's
	execer   driver.ExecerContext
	queryer  driver.QueryerContext
	beginner driver.ConnBeginTx
	preparer driver.ConnPrepareContext

	stmts map[string]*cachedStmt
	ctl   map[string]*cachedStmt // the driver's own BEGIN IMMEDIATE and COMMIT, prepared (run)
	// last is the cached statement found last, for lastQuery: a statement
	// run again and again on the connection (a prepared one, a loop)
	// finds it without hashing its text.
	last      *cachedStmt
	lastQuery string
	broken    bool       // a statement left it in an unknown state: close, do not reuse
	stats     *fileStats // counts its SQLITE_BUSY and SQLITE_LOCKED errors; may be nil

	// A reader's borrowing, kept by its pool: since when (see monoNow;
	// 0 while no read uses it), where a read transaction on it was begun
	// (nil for a query), its place in the pool's list of readers in use
	// (out) or kept (kept), and whether a logical connection keeps it
	// between its reads (hold).
	since  atomic.Int64
	site   atomic.Pointer[callSite]
	outIdx int
	hold   atomic.Int32
	used   atomic.Int64 // when its last read began (a monoNow reading)

	// first is the libc.TLS ID by which SQLite's mutexes let this
	// connection come first (comeFirst), or 0.
	first int32

	// keeper is the libc.TLS of a writer connection whose WAL write lock
	// the process keeps between its transactions (keepWriteLock), or nil.
	keeper *libc.TLS
}

// comeFirst makes p, a writer connection, come first at SQLite's mutexes
// (sqlitesched.SetFirst) while it is open.
func (p *phys) comeFirst() {
	if h := p.handle(); h != nil && sqlitesched.SetFirst(h.tls.ID, true) {
		p.first = h.tls.ID
	}
}

// keepWriteLock lets the process keep the WAL write lock p lets go at the
// end of a transaction, until the cross-process queue's lock is let go or the
// sweep finds it idle (sqlitesched.Keep).
func (p *phys) keepWriteLock() {
	if h := p.handle(); h != nil && sqlitesched.WriteLockKept() {
		sqlitesched.Keep(h.tls, true)
		p.keeper = h.tls
	}
}

// cachedStmt is a prepared statement kept by a phys for its query text.
type cachedStmt struct {
	exec  driver.StmtExecContext
	query driver.StmtQueryContext
	close func() error
	inUse bool // rows from it are open
}

// maxCachedStmts bounds the statements a connection keeps prepared.
const maxCachedStmts = 64

var (
	moderncOnce sync.Once
	moderncDrv  driver.Driver
)

// moderncDriver returns the driver modernc.org/sqlite registers as "sqlite":
// the one that carries the functions, collations and hooks registered with
// its package-level Register functions.
func moderncDriver() driver.Driver {
	moderncOnce.Do(func() {
		db, err := sql.Open("sqlite", "")
		if err != nil {
			panic("sqlitesafe: modernc.org/sqlite is not registered: " + err.Error())
		}
		moderncDrv = db.Driver()
		db.Close()
	})
	return moderncDrv
}

// openPhys opens name, a file: URI for modernc.org/sqlite.
func openPhys(name string) (*phys, error) {
	conn, err := moderncDriver().Open(name)
	if err != nil {
		return nil, err
	}
	return newPhys(conn)
}

// openEngineConn opens a connection of the engine's database db.
func openEngineConn(ctx context.Context, db engine.Database, role engine.Role) (*phys, error) {
	conn, err := db.Open(ctx, role)
	if err != nil {
		return nil, err
	}
	p, err := newPhys(conn)
	if err != nil {
		return nil, err
	}
	p.remote = conn
	return p, nil
}

// newPhys wraps an open connection, which it closes if it lacks a method
// the driver needs.
func newPhys(conn driver.Conn) (*phys, error) {
	p := &phys{conn: conn}
	var ok1, ok2, ok3, ok4 bool
	p.execer, ok1 = conn.(driver.ExecerContext)
	p.queryer, ok2 = conn.(driver.QueryerContext)
	p.beginner, ok3 = conn.(driver.ConnBeginTx)
	p.preparer, ok4 = conn.(driver.ConnPrepareContext)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		conn.Close()
		return nil, fmt.Errorf("sqlitesafe: %T connection lacks a context method", conn)
	}
	return p, nil
}

// cacheable reports whether a query's prepared statement may be kept.
func cacheable(info *stmtInfo) bool {
	return info.flags&(flagMulti|flagTxControl|flagSession) == 0
}

// stmt returns the cached prepared statement for query, preparing it if need
// be. It returns nil (and no error) when the statement is in use.
func (p *phys) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if cs := p.last; cs != nil && query == p.lastQuery {
		if cs.inUse {
			return nil, nil
		}
		return cs, nil
	}
	if cs, ok := p.stmts[query]; ok {
		if cs.inUse {
			return nil, nil
		}
		p.last, p.lastQuery = cs, query
		return cs, nil
	}
	cs, err := p.prepare(ctx, query)
	if cs == nil {
		return nil, err
	}
	if len(p.stmts) >= maxCachedStmts {
		p.evict()
	}
	if p.stmts == nil {
		p.stmts = make(map[string]*cachedStmt)
	}
	p.stmts[query] = cs
	p.last, p.lastQuery = cs, query
	return cs, nil
}

// prepare prepares query on p for a cache. It returns nil (and no error)
// when the driver's statement cannot be run with a context.
func (p *phys) prepare(ctx context.Context, query string) (*cachedStmt, error) {
	st, err := p.preparer.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ex, ok1 := st.(driver.StmtExecContext)
	qu, ok2 := st.(driver.StmtQueryContext)
	if !ok1 || !ok2 {
		st.Close()
		return nil, nil
	}
	return &cachedStmt{exec: ex, query: qu, close: st.Close}, nil
}

// evict closes the cached statements that are not in use.
func (p *phys) evict() {
	p.last, p.lastQuery = nil, ""
	for q, cs := range p.stmts {
		if !cs.inUse {
			cs.close()
			delete(p.stmts, q)
		}
	}
}

// exec runs query as an Exec.
func (p *phys) exec(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	res, err := p.execNoted(ctx, query, info, args)
	if err != nil {
		p.note(err)
	}
	return res, err
}

func (p *phys) execNoted(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	if p.remote != nil {
		return p.execRemote(ctx, query, info, args)
	}
	if cacheable(info) {
		cs, err := p.stmt(ctx, query)
		if err != nil {
			return nil, err
		}
		if cs != nil {
			return cs.exec.ExecContext(ctx, args)
		}
	}
	return p.execer.ExecContext(ctx, query, args)
}

// note counts err in the file's Stats if it is a lock error, and marks the
// connection broken if err lost it.
func (p *phys) note(err error) {
	if p.stats != nil {
		p.stats.recordError(err)
	}
	if isLost(err) {
		p.broken = true
		if p.stats != nil {
			p.stats.leaderLost.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
}

// query runs query as a Query. When the rows come from a cached statement,
// that statement is returned too, marked in use: the caller marks it free
// once the rows are closed.
func (p *phys) query(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Rows, *cachedStmt, error) {
	if p.remote != nil {
		rows, err := p.queryRemote(ctx, query, info, args)
		if err != nil {
			p.note(err)
		}
		return rows, nil, err
	}
	if cacheable(info) {
		cs, err := p.stmt(ctx, query)
		if err != nil {
			return nil, nil, err
		}
		if cs != nil {
			rows, err := cs.query.QueryContext(ctx, args)
			if err != nil {
				p.note(err)
				return nil, nil, err
			}
			cs.inUse = true
			return rows, cs, nil
		}
	}
	rows, err := p.queryer.QueryContext(ctx, query, args)
	if err != nil {
		p.note(err)
	}
	return rows, nil, err
}

// run executes a statement of the driver's own, caching only BEGIN
// IMMEDIATE and COMMIT (ctlStmt).
func (p *phys) run(ctx context.Context, query string) error {
	var err error
	if cs := p.ctlStmt(ctx, query); cs != nil {
		_, err = cs.exec.ExecContext(ctx, nil)
	} else {
		_, err = p.execer.ExecContext(ctx, query, nil)
	}
	if err != nil {
		p.note(err)
	}
	return err
}

// ctlStmt returns query prepared on p when it is BEGIN IMMEDIATE or COMMIT,
// which a writer runs for each group commit and transaction: prepared once
// per connection instead of at every run. It returns nil for any other
// statement, and when it cannot prepare: the caller runs the text.
func (p *phys) ctlStmt(ctx context.Context, query string) *cachedStmt {
	if p.remote != nil || query != "BEGIN IMMEDIATE" && query != "COMMIT" {
		return nil
	}
	if cs, ok := p.ctl[query]; ok {
		return cs
	}
	cs, _ := p.prepare(ctx, query)
	if cs == nil {
		return nil
	}
	if p.ctl == nil {
		p.ctl = make(map[string]*cachedStmt, 2)
	}
	p.ctl[query] = cs
	return cs
}

// inTx reports whether the connection is inside a transaction, as SQLite
// says (sqlite3_get_autocommit). When SQLite cannot be asked, it errs, and
// marks the connection broken: the caller treats the state as unknown, and
// the connection is closed rather than trusted (closing rolls back).
func (p *phys) inTx() (bool, error) {
	if p.remote != nil {
		in, err := p.remote.InTx(context.Background())
		if err != nil {
			p.broken = true
		}
		return in, err
	}
	if auto, ok := p.autocommit(); ok {
		return !auto, nil
	}
	p.broken = true
	return false, errTxStateUnknown
}

// errTxStateUnknown is the error of inTx when SQLite cannot be asked.
var errTxStateUnknown = errors.New("sqlitesafe: cannot ask SQLite whether a transaction is open (unknown modernc.org/sqlite connection layout)")

// ensureNoTx makes sure the connection is outside any transaction, rolling
// back what is left. A connection it cannot bring back is marked broken.
func (p *phys) ensureNoTx() {
	in, err := p.inTx()
	if err != nil || !in {
		return
	}
	if err := p.run(context.Background(), "ROLLBACK"); err != nil {
		p.broken = true
		return
	}
	if in, err := p.inTx(); err != nil || in {
		p.broken = true
	}
}

// close closes the cached statements and the connection.
func (p *phys) close() error {
	if p.first != 0 {
		sqlitesched.SetFirst(p.first, false)
		p.first = 0
	}
	if p.keeper != nil {
		sqlitesched.Keep(p.keeper, false)
		p.keeper = nil
	}
	p.last, p.lastQuery = nil, ""
	for q, cs := range p.stmts {
		cs.close()
		delete(p.stmts, q)
	}
	for q, cs := range p.ctl {
		cs.close()
		delete(p.ctl, q)
	}
	return p.conn.Close()
}

// queryValue runs a query of the driver's own that returns one value.
func (p *phys) queryValue(ctx context.Context, query string) (string, error) {
	rows, err := p.queryer.QueryContext(ctx, query, nil)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	if len(dest) == 0 {
		return "", fmt.Errorf("sqlitesafe: %s returned no column", query)
	}
	if err := rows.Next(dest); err != nil {
		return "", fmt.Errorf("sqlitesafe: %s returned no row: %w", query, err)
	}
	switch v := dest[0].(type) {
	case int64:
		return strconv.FormatInt(v, 10), nil
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case nil:
		return "", nil
	default:
		return fmt.Sprint(v), nil
	}
}

// queryInts runs a query of the driver's own that returns one row of n
// integers.
func (p *phys) queryInts(ctx context.Context, query string, n int) ([]int64, error) {
	rows, err := p.queryer.QueryContext(ctx, query, nil)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vals := make([]driver.Value, n)
	if err := rows.Next(vals); err != nil {
		return nil, err
	}
	out := make([]int64, n)
	for i, v := range vals {
		x, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("sqlitesafe: %s gave %v, want %d integers", query, vals, n)
		}
		out[i] = x
	}
	return out, nil
}

// sqliteCode returns the extended result code of the SQLite error in err's
// chain, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	var ce engine.Coder
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return 0
}

// isLost reports whether err lost the connection to a node: the request
// may have been applied.
func isLost(err error) bool {
	var le *engine.LostError
	return errors.As(err, &le)
}

// commit commits the open transaction, as COMMIT, or as the engine commits
// (which resolves a COMMIT the connection lost).
func (p *phys) commit() error { return p.commitWith("COMMIT") }

// commitWith ends the open transaction with query (COMMIT, END, or a
// RELEASE, which may commit).
func (p *phys) commitWith(query string) error {
	if p.remote != nil {
		err := p.remote.Commit(context.Background(), query)
		if err != nil {
			p.note(err)
		}
		return err
	}
	return p.run(context.Background(), query)
}

// SQLite's primary result codes the driver looks at.
const (
	codeBusy     = 5
	codeLocked   = 6
	codeReadOnly = 8
	codeIOErr    = 10
)

// isReadOnly reports whether err is SQLite refusing a write on a read-only
// connection (SQLITE_READONLY or one of its extended codes).
func isReadOnly(err error) bool { return sqliteCode(err)&0xff == codeReadOnly }

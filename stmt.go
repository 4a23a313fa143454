package sqlitesafe

import (
	"context"
	"database/sql/driver"
)

// stmt is a prepared statement as database/sql sees it: the query text and
// its classification. Each execution is routed like the same call on the
// connection; every SQLite connection it runs on keeps its own prepared copy.
type stmt struct {
	c     *conn
	query string
	info  *stmtInfo
}

var (
	_ driver.Stmt             = (*stmt)(nil)
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

// Close implements driver.Stmt. The SQLite connections keep their copies in
// their statement caches.
func (s *stmt) Close() error { return nil }

// NumInput implements driver.Stmt: -1, SQLite checks the arguments.
func (s *stmt) NumInput() int { return -1 }

// ExecContext implements driver.StmtExecContext.
func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	res, _, err := s.c.do(call{ctx: ctx, query: s.query, info: s.info, args: args})
	return res, err
}

// QueryContext implements driver.StmtQueryContext.
func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	_, rows, err := s.c.do(call{ctx: ctx, query: s.query, info: s.info, args: args, rows: true})
	return rows, err
}

// Exec implements driver.Stmt.
//
// Deprecated: database/sql calls ExecContext.
func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), named(args))
}

// Query implements driver.Stmt.
//
// Deprecated: database/sql calls QueryContext.
func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), named(args))
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, v := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return nv
}

package sqlitesafe

import (
	"database/sql/driver"
	"reflect"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite's own state of a connection, asked of SQLite rather than inferred:
// whether a transaction is open (sqlite3_get_autocommit), how many rows the
// completed statements changed (sqlite3_total_changes64), and the outcome of
// the last one (sqlite3_changes64, sqlite3_last_insert_rowid).
//
// modernc.org/sqlite keeps the sqlite3* and the libc.TLS its calls run on in
// the first two fields of its connection, and uses them so itself (its
// Commit calls sqlite3_get_autocommit the same way). It does not export them:
// moderncLayout checks by reflection, once, that the fields are still there,
// named and typed so; if not, every accessor reports !ok and the driver falls
// back to what needs no handle, failing closed.

// moderncConn is the start of modernc.org/sqlite's connection.
type moderncConn struct {
	db  uintptr // *sqlite3
	tls *libc.TLS
}

// moderncLayout reports whether conn is a modernc.org/sqlite connection that
// starts as moderncConn does.
var moderncLayout = sync.OnceValue(func() bool {
	conn, err := moderncDriver().Open(":memory:")
	if err != nil {
		return false
	}
	defer conn.Close()
	t := reflect.TypeOf(conn)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct || t.Elem().NumField() < 2 {
		return false
	}
	s := t.Elem()
	db, tls := s.Field(0), s.Field(1)
	return s.PkgPath() == "modernc.org/sqlite" &&
		db.Name == "db" && db.Type.Kind() == reflect.Uintptr && db.Offset == unsafe.Offsetof(moderncConn{}.db) &&
		tls.Name == "tls" && tls.Type == reflect.TypeFor[*libc.TLS]() && tls.Offset == unsafe.Offsetof(moderncConn{}.tls)
})

// handle returns p's sqlite3* and TLS, or nil if the layout is not known or
// the connection is closed. p must not be in use by another goroutine.
func (p *phys) handle() *moderncConn {
	if p.remote != nil || !moderncLayout() {
		return nil
	}
	h := (*moderncConn)(reflect.ValueOf(p.conn).UnsafePointer())
	if h.db == 0 || h.tls == nil {
		return nil
	}
	return h
}

// autocommit reports whether SQLite has no transaction open on p; ok is false
// when it cannot be asked.
func (p *phys) autocommit() (auto, ok bool) {
	h := p.handle()
	if h == nil {
		return false, false
	}
	return sqlite3.Xsqlite3_get_autocommit(h.tls, h.db) != 0, true
}

// totalChanges returns the rows changed by the statements completed on p
// since it opened; ok is false when it cannot be asked.
func (p *phys) totalChanges() (n int64, ok bool) {
	h := p.handle()
	if h == nil {
		return 0, false
	}
	return sqlite3.Xsqlite3_total_changes64(h.tls, h.db), true
}

// lastResult is the result of the last statement completed on p, as modernc
// would have reported it.
func (p *phys) lastResult() driver.Result {
	h := p.handle()
	if h == nil {
		return nil
	}
	return completedResult{
		id:   sqlite3.Xsqlite3_last_insert_rowid(h.tls, h.db),
		rows: sqlite3.Xsqlite3_changes64(h.tls, h.db),
	}
}

// completedResult is the driver.Result of a statement that completed although
// modernc.org/sqlite reported its context's error.
type completedResult struct{ id, rows int64 }

func (r completedResult) LastInsertId() (int64, error) { return r.id, nil }
func (r completedResult) RowsAffected() (int64, error) { return r.rows, nil }

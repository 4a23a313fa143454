package sqlitesched

import (
	"testing"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// BenchmarkMutexUncontended is one sqlite3_mutex_enter and leave by a
// connection alone at the mutex: a recursive one (SQLite's connection
// mutex, which every API call of a connection takes) and a fast one.
func BenchmarkMutexUncontended(b *testing.B) {
	for _, c := range []struct {
		name string
		typ  int32
	}{{"recursive", sqlite3.SQLITE_MUTEX_RECURSIVE}, {"fast", sqlite3.SQLITE_MUTEX_FAST}} {
		b.Run(c.name, func(b *testing.B) {
			tls := libc.NewTLS()
			defer tls.Close()
			m := sqlite3.Xsqlite3_mutex_alloc(tls, c.typ)
			defer sqlite3.Xsqlite3_mutex_free(tls, m)
			b.ReportAllocs()
			for b.Loop() {
				sqlite3.Xsqlite3_mutex_enter(tls, m)
				sqlite3.Xsqlite3_mutex_leave(tls, m)
			}
		})
	}
}

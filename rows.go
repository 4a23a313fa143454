package sqlitesafe

import (
	"database/sql/driver"
	"io"
	"reflect"
)

// connRows are the rows of a query that streams from a SQLite connection. On
// Close they give back what they hold: the reader they borrowed, the cached
// statement they used.
type connRows struct {
	inner  driver.Rows
	cs     *cachedStmt // statement to mark free, or nil
	reader *phys       // reader to release, or nil
	pool   *readerPool
	last   **phys // the reader slot of the logical connection, for release
	closed bool
}

var (
	_ driver.Rows                           = (*connRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*connRows)(nil)
	_ driver.RowsColumnTypeLength           = (*connRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*connRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*connRows)(nil)
	_ driver.RowsColumnTypeScanType         = (*connRows)(nil)
)

// Columns implements driver.Rows.
func (r *connRows) Columns() []string { return r.inner.Columns() }

// Next implements driver.Rows.
func (r *connRows) Next(dest []driver.Value) error { return r.inner.Next(dest) }

// Close implements driver.Rows.
func (r *connRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.inner.Close()
	if r.cs != nil {
		r.cs.inUse = false
	}
	if r.reader != nil {
		r.pool.release(r.reader, r.last)
	}
	return err
}

// ColumnTypeDatabaseTypeName implements driver.RowsColumnTypeDatabaseTypeName.
func (r *connRows) ColumnTypeDatabaseTypeName(i int) string { return typeName(r.inner, i) }

// ColumnTypeLength implements driver.RowsColumnTypeLength.
func (r *connRows) ColumnTypeLength(i int) (int64, bool) { return typeLength(r.inner, i) }

// ColumnTypeNullable implements driver.RowsColumnTypeNullable.
func (r *connRows) ColumnTypeNullable(i int) (bool, bool) { return typeNullable(r.inner, i) }

// ColumnTypePrecisionScale implements driver.RowsColumnTypePrecisionScale.
func (r *connRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	return typePrecisionScale(r.inner, i)
}

// ColumnTypeScanType implements driver.RowsColumnTypeScanType.
func (r *connRows) ColumnTypeScanType(i int) reflect.Type { return scanType(r.inner, i) }

func typeName(r driver.Rows, i int) string {
	if t, ok := r.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func typeLength(r driver.Rows, i int) (int64, bool) {
	if t, ok := r.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func typeNullable(r driver.Rows, i int) (bool, bool) {
	if t, ok := r.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func typePrecisionScale(r driver.Rows, i int) (int64, int64, bool) {
	if t, ok := r.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func scanType(r driver.Rows, i int) reflect.Type {
	if t, ok := r.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

// bufferedRows are rows read in full while a lock was held, so that the lock
// could be released before the caller iterates. The column types are those
// the statement reported on its first row.
type bufferedRows struct {
	cols  []string
	types []columnType
	rows  [][]driver.Value
	next  int
}

type columnType struct {
	name             string
	length           int64
	lengthOK         bool
	nullable         bool
	nullableOK       bool
	precision, scale int64
	precisionOK      bool
	scan             reflect.Type
}

var (
	_ driver.Rows                           = (*bufferedRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*bufferedRows)(nil)
	_ driver.RowsColumnTypeLength           = (*bufferedRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*bufferedRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*bufferedRows)(nil)
	_ driver.RowsColumnTypeScanType         = (*bufferedRows)(nil)
)

// bufferRows reads rows to the end and closes them, marking cs free. The
// close matters: for an autocommit write it is what commits.
func bufferRows(rows driver.Rows, cs *cachedStmt) (driver.Rows, error) {
	defer func() {
		if cs != nil {
			cs.inUse = false
		}
	}()
	b := &bufferedRows{cols: rows.Columns()}
	b.types = make([]columnType, len(b.cols))
	for i := range b.types {
		t := &b.types[i]
		t.name = typeName(rows, i)
		t.length, t.lengthOK = typeLength(rows, i)
		t.nullable, t.nullableOK = typeNullable(rows, i)
		t.precision, t.scale, t.precisionOK = typePrecisionScale(rows, i)
		t.scan = scanType(rows, i)
	}
	for {
		dest := make([]driver.Value, len(b.cols))
		err := rows.Next(dest)
		if err == io.EOF {
			break
		}
		if err != nil {
			rows.Close()
			return nil, err
		}
		for i, v := range dest {
			if bs, ok := v.([]byte); ok {
				dest[i] = append([]byte(nil), bs...) // the driver may reuse it
			}
		}
		b.rows = append(b.rows, dest)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return b, nil
}

// Columns implements driver.Rows.
func (b *bufferedRows) Columns() []string { return b.cols }

// Close implements driver.Rows.
func (b *bufferedRows) Close() error {
	b.rows, b.next = nil, 0
	return nil
}

// Next implements driver.Rows.
func (b *bufferedRows) Next(dest []driver.Value) error {
	if b.next >= len(b.rows) {
		return io.EOF
	}
	copy(dest, b.rows[b.next])
	b.rows[b.next] = nil
	b.next++
	return nil
}

// ColumnTypeDatabaseTypeName implements driver.RowsColumnTypeDatabaseTypeName.
func (b *bufferedRows) ColumnTypeDatabaseTypeName(i int) string { return b.types[i].name }

// ColumnTypeLength implements driver.RowsColumnTypeLength.
func (b *bufferedRows) ColumnTypeLength(i int) (int64, bool) {
	return b.types[i].length, b.types[i].lengthOK
}

// ColumnTypeNullable implements driver.RowsColumnTypeNullable.
func (b *bufferedRows) ColumnTypeNullable(i int) (bool, bool) {
	return b.types[i].nullable, b.types[i].nullableOK
}

// ColumnTypePrecisionScale implements driver.RowsColumnTypePrecisionScale.
func (b *bufferedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	t := b.types[i]
	return t.precision, t.scale, t.precisionOK
}

// ColumnTypeScanType implements driver.RowsColumnTypeScanType.
func (b *bufferedRows) ColumnTypeScanType(i int) reflect.Type { return b.types[i].scan }

// emptyRows are the rows of a statement that returns none.
type emptyRows struct{}

func (emptyRows) Columns() []string              { return nil }
func (emptyRows) Close() error                   { return nil }
func (emptyRows) Next(dest []driver.Value) error { return io.EOF }

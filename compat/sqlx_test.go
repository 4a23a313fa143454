package compat_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
)

type sqlxItem struct {
	ID      int64     `db:"id"`
	G       int       `db:"g"`
	I       int       `db:"i"`
	Name    string    `db:"name"`
	Created time.Time `db:"created"`
}

type sqlxNote struct {
	ID   int64  `db:"id"`
	Body string `db:"body"`
}

var sqlxSchema = []string{
	`CREATE TABLE items(id INTEGER PRIMARY KEY, g INTEGER NOT NULL, i INTEGER NOT NULL,
		name TEXT NOT NULL, created DATETIME NOT NULL, UNIQUE(g, i))`,
	`CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL)`,
	dbtest.CounterSchema[0],
	dbtest.CounterSchema[1],
}

// sqlxRMW is one read-modify-write transaction on the counter through sqlx.
func sqlxRMW(ctx context.Context, db *sqlx.DB) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int64
	if err := tx.Get(&n, "SELECT n FROM counter WHERE id = ?", 1); err != nil {
		return err
	}
	time.Sleep(ormPause)
	if _, err := tx.Exec("UPDATE counter SET n = ? WHERE id = ?", n+1, 1); err != nil {
		return err
	}
	return tx.Commit()
}

// TestSqlxBindVars shows that sqlx needs nothing registered for
// "sqlite-safe": sqlx does not know the name, gives it the bind type
// UNKNOWN, and treats UNKNOWN as '?', which is what SQLite takes. Rebind,
// In and the named-parameter functions all produce '?' and run.
func TestSqlxBindVars(t *testing.T) {
	dbtest.Watchdog(t, time.Minute)
	if bt := sqlx.BindType("sqlite-safe"); bt != sqlx.UNKNOWN && bt != sqlx.QUESTION {
		t.Fatalf("sqlx.BindType(sqlite-safe) = %d, want UNKNOWN or QUESTION", bt)
	}
	db, err := sqlx.Connect("sqlite-safe", dbtest.Path(t))
	if err != nil {
		t.Fatalf("sqlx.Connect: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if got := db.Rebind("SELECT ? + ?"); got != "SELECT ? + ?" {
		t.Fatalf("Rebind changed the query to %q; want it unchanged, with '?'", got)
	}
	dbtest.MustExec(t, db, sqlxSchema...)
	for i := range 5 {
		if _, err := db.NamedExec(`INSERT INTO items(g, i, name, created) VALUES (:g, :i, :name, :created)`,
			sqlxItem{G: 0, I: i, Name: fmt.Sprint("n", i), Created: time.Now()}); err != nil {
			t.Fatalf("NamedExec: %v", err)
		}
	}

	q, args, err := sqlx.In("SELECT * FROM items WHERE i IN (?) ORDER BY i", []int{1, 3, 4})
	if err != nil {
		t.Fatalf("sqlx.In: %v", err)
	}
	q = db.Rebind(q)
	if !strings.Contains(q, "IN (?, ?, ?)") {
		t.Fatalf("In + Rebind gave %q; want the list expanded to '?, ?, ?'", q)
	}
	var got []sqlxItem
	if err := db.Select(&got, q, args...); err != nil {
		t.Fatalf("Select with In: %v", err)
	}
	if len(got) != 3 || got[0].I != 1 || got[1].I != 3 || got[2].I != 4 {
		t.Fatalf("Select with In returned %+v; want the items 1, 3 and 4", got)
	}

	nq, nargs, err := db.BindNamed("SELECT count(*) FROM items WHERE i >= :lo AND i < :hi", map[string]any{"lo": 1, "hi": 4})
	if err != nil {
		t.Fatalf("BindNamed: %v", err)
	}
	if nq != "SELECT count(*) FROM items WHERE i >= ? AND i < ?" {
		t.Fatalf("BindNamed gave %q; want '?' placeholders", nq)
	}
	if n := dbtest.QueryInt(t, db, nq, nargs...); n != 3 {
		t.Fatalf("named count = %d, want 3", n)
	}

	stmt, err := db.PrepareNamed("SELECT name FROM items WHERE i = :i")
	if err != nil {
		t.Fatalf("PrepareNamed: %v", err)
	}
	defer stmt.Close()
	var name string
	if err := stmt.Get(&name, map[string]any{"i": 2}); err != nil || name != "n2" {
		t.Fatalf("NamedStmt.Get = %q, %v; want n2", name, err)
	}
}

// TestSqlxConcurrent runs sqlx's API from 16 goroutines at once: NamedExec,
// NamedQuery of an INSERT ... RETURNING, Get into a struct (with a time.Time
// that must come back equal), read-modify-write transactions with BeginTxx,
// then Select, on a file and in memory. Nothing fails and nothing is lost.
func TestSqlxConcurrent(t *testing.T) {
	t.Run("File", func(t *testing.T) { sqlxConcurrent(t, dbtest.Path(t)) })
	// ":memory:" is one database for the whole handle.
	t.Run("Memory", func(t *testing.T) { sqlxConcurrent(t, ":memory:") })
}

func sqlxConcurrent(t *testing.T, dsn string) {
	dbtest.Watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db, err := sqlx.Open("sqlite-safe", dsn)
	if err != nil {
		t.Fatalf("sqlx.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	dbtest.MustExec(t, db, sqlxSchema...)

	var (
		mu      sync.Mutex
		noteIDs []int64
	)
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		it := sqlxItem{G: g, I: i, Name: fmt.Sprintf("item %d/%d", g, i), Created: time.Now().Round(0)}
		if _, err := db.NamedExecContext(ctx,
			`INSERT INTO items(g, i, name, created) VALUES (:g, :i, :name, :created)`, it); err != nil {
			return fmt.Errorf("NamedExec: %w", err)
		}
		rows, err := db.NamedQueryContext(ctx,
			`INSERT INTO notes(body) VALUES (:name) RETURNING id, body`, it)
		if err != nil {
			return fmt.Errorf("NamedQuery RETURNING: %w", err)
		}
		var notes []sqlxNote
		for rows.Next() {
			var n sqlxNote
			if err := rows.StructScan(&n); err != nil {
				rows.Close()
				return fmt.Errorf("StructScan: %w", err)
			}
			notes = append(notes, n)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(notes) != 1 || notes[0].Body != it.Name || notes[0].ID == 0 {
			return fmt.Errorf("RETURNING gave %+v; want one note with body %q and an id", notes, it.Name)
		}
		mu.Lock()
		noteIDs = append(noteIDs, notes[0].ID)
		mu.Unlock()

		var back sqlxItem
		if err := db.GetContext(ctx, &back, "SELECT * FROM items WHERE g = ? AND i = ?", g, i); err != nil {
			return fmt.Errorf("Get: %w", err)
		}
		if back.Name != it.Name || !back.Created.Equal(it.Created) {
			return fmt.Errorf("Get read back %q at %v; want %q at %v", back.Name, back.Created, it.Name, it.Created)
		}
		return sqlxRMW(ctx, db)
	})
	dbtest.NoErrors(t, "sqlx on sqlite-safe", errs)

	want := ormGoroutines * ormIterations
	var items []sqlxItem
	if err := db.Select(&items, "SELECT * FROM items ORDER BY g, i"); err != nil {
		t.Fatalf("Select: %v", err)
	}
	if len(items) != want {
		t.Fatalf("%d items, want %d", len(items), want)
	}
	slices.Sort(noteIDs)
	if n := len(slices.Compact(noteIDs)); n != want {
		t.Fatalf("RETURNING gave %d distinct note ids, want %d", n, want)
	}
	if n := dbtest.QueryInt(t, db, "SELECT count(*) FROM notes"); n != int64(want) {
		t.Fatalf("%d notes, want %d", n, want)
	}
	if n := dbtest.QueryInt(t, db, "SELECT n FROM counter WHERE id = 1"); n != int64(want) {
		t.Fatalf("counter = %d after %d read-modify-write transactions: %d updates lost", n, want, int64(want)-n)
	}
}

// TestSqlxPreparedAndScripts covers what sqlx's README shows beside the
// basics, from 16 goroutines: MustExec of a schema of several statements,
// one Preparex statement shared by all goroutines, a PrepareNamed INSERT ...
// RETURNING read with Get, and QueryRowx of an INSERT ... RETURNING inside
// MustBegin's transaction.
func TestSqlxPreparedAndScripts(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	db := sqlx.MustConnect("sqlite-safe", dbtest.Path(t))
	t.Cleanup(func() { db.Close() })
	db.MustExec(`
		CREATE TABLE person (id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT UNIQUE);
		CREATE TABLE place (country TEXT, city TEXT NULL, telcode INTEGER);
	`)
	insPlace, err := db.Preparex("INSERT INTO place (country, city, telcode) VALUES (?, ?, ?)")
	if err != nil {
		t.Fatalf("Preparex: %v", err)
	}
	defer insPlace.Close()
	insPerson, err := db.PrepareNamed(
		"INSERT INTO person (first_name, last_name, email) VALUES (:first_name, :last_name, :email) RETURNING id")
	if err != nil {
		t.Fatalf("PrepareNamed: %v", err)
	}
	defer insPerson.Close()
	type person struct {
		ID        int64  `db:"id"`
		FirstName string `db:"first_name"`
		LastName  string `db:"last_name"`
		Email     string `db:"email"`
	}
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		if _, err := insPlace.Exec("Country", fmt.Sprint("city", g), g*100+i); err != nil {
			return fmt.Errorf("prepared Exec: %w", err)
		}
		var id int64
		p := person{FirstName: "Jane", LastName: fmt.Sprint(g), Email: fmt.Sprintf("j%d.%d@example.com", g, i)}
		if err := insPerson.Get(&id, p); err != nil || id == 0 {
			return fmt.Errorf("NamedStmt.Get of RETURNING = %d, %v; want an id", id, err)
		}
		tx := db.MustBegin()
		defer tx.Rollback()
		var id2 int64
		if err := tx.QueryRowx("INSERT INTO person (first_name, email) VALUES (?, ?) RETURNING id",
			"Tx", fmt.Sprintf("t%d.%d@example.com", g, i)).Scan(&id2); err != nil {
			return fmt.Errorf("QueryRowx RETURNING in a transaction: %w", err)
		}
		if _, err := tx.NamedExec("UPDATE person SET last_name = :last_name WHERE id = :id",
			person{ID: id2, LastName: fmt.Sprint(id)}); err != nil {
			return err
		}
		return tx.Commit()
	})
	dbtest.NoErrors(t, "sqlx prepared statements and scripts", errs)
	want := int64(ormGoroutines * ormIterations)
	if n := dbtest.QueryInt(t, db, "SELECT count(*) FROM place"); n != want {
		t.Fatalf("%d places, want %d", n, want)
	}
	if n := dbtest.QueryInt(t, db, "SELECT count(*) FROM person WHERE first_name = 'Jane'"); n != want {
		t.Fatalf("%d persons from the named statement, want %d", n, want)
	}
	// Each transaction's row points at the named statement's row of the
	// same iteration.
	if n := dbtest.QueryInt(t, db, `SELECT count(*) FROM person t JOIN person j ON j.id = CAST(t.last_name AS INTEGER)
		WHERE t.first_name = 'Tx' AND j.first_name = 'Jane'`); n != want {
		t.Fatalf("%d transaction rows point at their named-statement row, want %d", n, want)
	}
}

// TestSqlxControlPlainModernc runs the read-modify-write transactions of
// TestSqlxConcurrent through sqlx on plain modernc.org/sqlite with its
// defaults: they fail with "database is locked".
func TestSqlxControlPlainModernc(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	db, err := sqlx.Open("sqlite", dbtest.Path(t))
	if err != nil {
		t.Fatalf("sqlx.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	dbtest.MustExec(t, db, dbtest.CounterSchema...)
	var ok atomic.Int64
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		err := sqlxRMW(context.Background(), db)
		if err == nil {
			ok.Add(1)
		}
		return err
	})
	dbtest.OnlyBusy(t, "sqlx read-modify-write", errs)
	if n := dbtest.QueryInt(t, db, "SELECT n FROM counter WHERE id = 1"); n != ok.Load() {
		t.Fatalf("counter = %d, want the %d transactions that committed", n, ok.Load())
	}
}

package compat_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
)

// gooseMigrations are three migrations: a table with a counter kept by a
// trigger (a StatementBegin/StatementEnd block), a column added and dropped
// on the table the application writes to, and an index made outside a
// transaction.
var gooseMigrations = fstest.MapFS{
	"00001_stats.sql": {Data: []byte(`-- +goose Up
CREATE TABLE stats (id INTEGER PRIMARY KEY CHECK (id = 1), events INTEGER NOT NULL);
INSERT INTO stats (id, events) SELECT 1, count(*) FROM events;
-- +goose StatementBegin
CREATE TRIGGER events_count AFTER INSERT ON events
BEGIN
    UPDATE stats SET events = events + 1 WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER events_count;
DROP TABLE stats;
`)},
	"00002_note.sql": {Data: []byte(`-- +goose Up
ALTER TABLE events ADD COLUMN note TEXT;

-- +goose Down
ALTER TABLE events DROP COLUMN note;
`)},
	"00003_index.sql": {Data: []byte(`-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX events_g ON events (g);

-- +goose Down
DROP INDEX events_g;
`)},
}

// gooseBackfill is a Go migration, run in goose's transaction: it notes the
// highest event id and marks every event up to it. Inside a write
// transaction no event can come in between the two statements.
var gooseBackfill = goose.NewGoMigration(4,
	&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "CREATE TABLE marks (max_id INTEGER NOT NULL)"); err != nil {
			return err
		}
		var maxID int64
		if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM events").Scan(&maxID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO marks (max_id) VALUES (?)", maxID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE events SET note = 'old' WHERE id <= ?", maxID)
		return err
	}},
	&goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, "DROP TABLE marks")
		return err
	}},
)

// TestGooseWhileWriting runs goose's Up, DownTo(0) and Up (SQL migrations
// with a trigger, a NO TRANSACTION one, and a Go one) through one *sql.DB
// while 16 goroutines write to the same file through another: the
// migrations and every write succeed, writes go on between the migrations,
// no write is lost, and what the migrations computed from the table in their
// transactions matches it exactly.
func TestGooseWhileWriting(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	ctx := context.Background()
	path := dbtest.Path(t)
	app := dbtest.OpenSafe(t, path)
	dbtest.MustExec(t, app, "CREATE TABLE events (id INTEGER PRIMARY KEY, g INTEGER NOT NULL, i INTEGER NOT NULL)")
	migrator := dbtest.OpenSafe(t, path)
	p, err := goose.NewProvider(goose.DialectSQLite3, migrator, gooseMigrations,
		goose.WithGoMigrations(gooseBackfill), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatalf("goose.NewProvider: %v", err)
	}
	const migrations = 4

	done := make(chan struct{})
	var (
		written  atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		writeErr []error
	)
	for g := range ormGoroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					if i >= ormIterations {
						return
					}
				default:
				}
				var err error
				if i%4 == 3 {
					// A write transaction too.
					err = func() error {
						tx, err := app.BeginTx(ctx, nil)
						if err != nil {
							return err
						}
						defer tx.Rollback()
						if _, err := tx.Exec("INSERT INTO events (g, i) VALUES (?, ?)", g, i); err != nil {
							return err
						}
						return tx.Commit()
					}()
				} else {
					_, err = app.ExecContext(ctx, "INSERT INTO events (g, i) VALUES (?, ?)", g, i)
				}
				if err != nil {
					mu.Lock()
					writeErr = append(writeErr, err)
					mu.Unlock()
					continue
				}
				written.Add(1)
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}

	// Each step notes how many writes had succeeded when it ended.
	var marks []int64
	step := func(what string, n int, run func() (int, error)) error {
		got, err := run()
		marks = append(marks, written.Load())
		if err != nil || got != n {
			return fmt.Errorf("%s: %d migrations, %v; want %d", what, got, err, n)
		}
		return nil
	}
	migrate := func() error {
		for written.Load() < ormGoroutines {
			time.Sleep(time.Millisecond) // let the writers start
		}
		marks = append(marks, written.Load())
		for _, s := range []struct {
			what string
			run  func() ([]*goose.MigrationResult, error)
		}{
			{"Up", func() ([]*goose.MigrationResult, error) { return p.Up(ctx) }},
			{"DownTo(0)", func() ([]*goose.MigrationResult, error) { return p.DownTo(ctx, 0) }},
			{"Up again", func() ([]*goose.MigrationResult, error) { return p.Up(ctx) }},
		} {
			if err := step(s.what, migrations, func() (int, error) {
				res, err := s.run()
				return len(res), err
			}); err != nil {
				return err
			}
		}
		return nil
	}
	migErr := migrate()
	close(done)
	wg.Wait()
	if migErr != nil {
		t.Fatalf("goose while writing: %v", migErr)
	}
	dbtest.NoErrors(t, "application writes during migrations", writeErr)
	if marks[len(marks)-1] == marks[0] {
		t.Fatalf("no application write succeeded while the migrations ran (%v): the test shows nothing", marks)
	}
	t.Logf("writes done when each step ended: %v; %d in all", marks, written.Load())

	if v, err := p.GetDBVersion(ctx); err != nil || v != migrations {
		t.Fatalf("GetDBVersion = %d, %v; want %d", v, err, migrations)
	}
	status, err := p.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if len(status) != migrations {
		t.Fatalf("Status lists %d migrations, want %d", len(status), migrations)
	}
	for _, s := range status {
		if s.State != goose.StateApplied {
			t.Errorf("migration %d is %s, want applied", s.Source.Version, s.State)
		}
	}
	n := dbtest.QueryInt(t, app, "SELECT count(*) FROM events")
	if n != written.Load() {
		t.Fatalf("%d events, want the %d writes that succeeded", n, written.Load())
	}
	if c := dbtest.QueryInt(t, app, "SELECT events FROM stats"); c != n {
		t.Fatalf("trigger counted %d events, the table has %d: the migration was not atomic with the writes", c, n)
	}
	old := dbtest.QueryInt(t, app, "SELECT count(*) FROM events WHERE note = 'old'")
	upTo := dbtest.QueryInt(t, app, "SELECT count(*) FROM events WHERE id <= (SELECT max_id FROM marks)")
	if old != upTo {
		t.Fatalf("the Go migration marked %d events, %d were there when it ran: it was not atomic with the writes", old, upTo)
	}
	if dbtest.QueryInt(t, app, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'events_g'") != 1 {
		t.Fatal("index events_g (the NO TRANSACTION migration) missing after the second Up")
	}
}

// TestGooseGlobalAPI uses goose's package-level functions, as its README
// shows them (SetBaseFS, SetDialect, Up, Down, Status, GetDBVersion), on
// sqlite-safe.
func TestGooseGlobalAPI(t *testing.T) {
	dbtest.Watchdog(t, time.Minute)
	db := dbtest.OpenSafe(t, dbtest.Path(t))
	dbtest.MustExec(t, db, "CREATE TABLE events (id INTEGER PRIMARY KEY, g INTEGER NOT NULL, i INTEGER NOT NULL)")
	goose.SetBaseFS(gooseMigrations)
	goose.SetLogger(goose.NopLogger()) // Status prints otherwise
	t.Cleanup(func() { goose.SetBaseFS(nil) })
	if err := goose.SetDialect("sqlite3"); err != nil {
		t.Fatal(err)
	}
	if err := goose.Up(db, "."); err != nil {
		t.Fatalf("goose.Up: %v", err)
	}
	if v, err := goose.GetDBVersion(db); err != nil || v != 3 {
		t.Fatalf("GetDBVersion = %d, %v; want 3", v, err)
	}
	if err := goose.Down(db, "."); err != nil {
		t.Fatalf("goose.Down: %v", err)
	}
	if v, err := goose.GetDBVersion(db); err != nil || v != 2 {
		t.Fatalf("GetDBVersion after Down = %d, %v; want 2", v, err)
	}
	if err := goose.Status(db, "."); err != nil {
		t.Fatalf("goose.Status: %v", err)
	}
	if err := goose.Up(db, "."); err != nil {
		t.Fatalf("goose.Up again: %v", err)
	}
	dbtest.MustExec(t, db, "INSERT INTO events (g, i) VALUES (1, 1)")
	if n := dbtest.QueryInt(t, db, "SELECT events FROM stats"); n != 1 {
		t.Fatalf("stats.events = %d after one insert, want 1", n)
	}
}

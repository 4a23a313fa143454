package compat_test

import (
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
)

// golang-migrate's "sqlite" database driver works on any *sql.DB given to
// WithInstance; its sqlite:// URL opens plain modernc.org/sqlite instead.
// (Its "sqlite3" driver imports github.com/mattn/go-sqlite3: not used here.)

// migrateMigrations are two migrations, each several statements that
// golang-migrate runs in one Exec inside its transaction: a table with a
// counter kept by a trigger and initialised from the table the application
// writes to, then a column added to that table and filled for the rows
// there when the migration ran, which it notes in marks.
var migrateMigrations = fstest.MapFS{
	"1_stats.up.sql": {Data: []byte(`
CREATE TABLE stats (id INTEGER PRIMARY KEY CHECK (id = 1), events INTEGER NOT NULL);
INSERT INTO stats (id, events) SELECT 1, count(*) FROM events;
CREATE TRIGGER events_count AFTER INSERT ON events
BEGIN
    UPDATE stats SET events = events + 1 WHERE id = 1;
END;
`)},
	"1_stats.down.sql": {Data: []byte(`DROP TRIGGER events_count; DROP TABLE stats;`)},
	"2_note.up.sql": {Data: []byte(`
ALTER TABLE events ADD COLUMN note TEXT;
CREATE TABLE marks (max_id INTEGER NOT NULL);
INSERT INTO marks (max_id) SELECT coalesce(max(id), 0) FROM events;
UPDATE events SET note = 'old' WHERE id <= (SELECT max_id FROM marks);
`)},
	"2_note.down.sql": {Data: []byte(`DROP TABLE marks; ALTER TABLE events DROP COLUMN note;`)},
}

const migrateVersions = 2

// newMigrate returns a golang-migrate instance on db, with WithInstance.
func newMigrate(t *testing.T, db *sql.DB) (*migrate.Migrate, error) {
	t.Helper()
	src, err := iofs.New(migrateMigrations, ".")
	if err != nil {
		t.Fatalf("iofs.New: %v", err)
	}
	drv, err := sqlite.WithInstance(db, &sqlite.Config{})
	if err != nil {
		return nil, err
	}
	return migrate.NewWithInstance("iofs", src, "sqlite", drv)
}

// migrateCause returns the database's error inside golang-migrate's
// database.Error, which has no Unwrap.
func migrateCause(err error) error {
	var de *database.Error
	if errors.As(err, &de) && de.OrigErr != nil {
		return de.OrigErr
	}
	return err
}

// eventWriters inserts events into db from ormGoroutines goroutines, each
// at least ormIterations times and on until stop is called, which returns
// the errors they met. written counts the inserts that succeeded.
func eventWriters(db *sql.DB, written *atomic.Int64) (stop func() []error) {
	done := make(chan struct{})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
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
				if _, err := db.Exec("INSERT INTO events (g, i) VALUES (?, ?)", g, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				} else {
					written.Add(1)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	return func() []error {
		close(done)
		wg.Wait()
		return errs
	}
}

// migrateUpDownUp runs Up, Down and Up, and returns the number of
// successful writes seen when it started and when each step ended. Between
// two steps it waits up to wait for a write to succeed after the step:
// without the wait, no write of the writers (who pause 200 us between
// writes) went in between the start and the end of the three steps in 33
// of 300 runs of TestMigrateWhileWriting at fa1cd54 and 4 of 300 at 359dbcf.
func migrateUpDownUp(m *migrate.Migrate, written *atomic.Int64, wait time.Duration) (marks []int64, err error) {
	marks = append(marks, written.Load())
	for i, s := range []struct {
		what string
		run  func() error
	}{{"Up", m.Up}, {"Down", m.Down}, {"Up again", m.Up}} {
		if i > 0 {
			for deadline := time.Now().Add(wait); written.Load() == marks[i] && time.Now().Before(deadline); {
				time.Sleep(100 * time.Microsecond)
			}
		}
		err := s.run()
		marks = append(marks, written.Load())
		if err != nil {
			return marks, fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return marks, nil
}

// TestMigrateWhileWriting runs golang-migrate's Up, Down and Up through one
// sqlite-safe *sql.DB (WithInstance) while 16 goroutines insert into the
// same file through another: every migration and every write succeeds,
// writes go on between the steps, none is lost, and what the migrations
// computed from the table in their transactions matches it exactly.
func TestMigrateWhileWriting(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	path := dbtest.Path(t)
	app := dbtest.OpenSafe(t, path)
	dbtest.MustExec(t, app, "CREATE TABLE events (id INTEGER PRIMARY KEY, g INTEGER NOT NULL, i INTEGER NOT NULL)")
	m, err := newMigrate(t, dbtest.OpenSafe(t, path))
	if err != nil {
		t.Fatalf("golang-migrate on sqlite-safe: %v", err)
	}

	var written atomic.Int64
	stop := eventWriters(app, &written)
	for written.Load() < ormGoroutines {
		time.Sleep(time.Millisecond) // let the writers start
	}
	marks, migErr := migrateUpDownUp(m, &written, 5*time.Second)
	writeErrs := stop()
	if migErr != nil {
		t.Fatalf("golang-migrate while writing: %v", migErr)
	}
	dbtest.NoErrors(t, "application writes during migrations", writeErrs)
	if marks[len(marks)-1] == marks[0] {
		t.Fatalf("no application write succeeded while the migrations ran (%v), in 5 s after a step: the test shows nothing", marks)
	}
	t.Logf("writes done when each step ended: %v; %d in all", marks, written.Load())

	if v, dirty, err := m.Version(); err != nil || v != migrateVersions || dirty {
		t.Fatalf("Version = %d, dirty %v, %v; want %d, clean", v, dirty, err, migrateVersions)
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
	if old != upTo || old == 0 {
		t.Fatalf("the migration marked %d events, %d were there when it ran: it was not atomic with the writes", old, upTo)
	}
}

// TestMigrateControlPlainModernc runs the same migrations and writes on
// plain modernc.org/sqlite with its defaults, with WithInstance as above:
// writes or migrations fail with "database is locked".
func TestMigrateControlPlainModernc(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	path := dbtest.Path(t)
	app := dbtest.Open(t, "sqlite", path)
	dbtest.MustExec(t, app, "CREATE TABLE events (id INTEGER PRIMARY KEY, g INTEGER NOT NULL, i INTEGER NOT NULL)")
	migrator := dbtest.Open(t, "sqlite", path)
	var written atomic.Int64
	stop := eventWriters(app, &written)
	m, err := newMigrate(t, migrator)
	var errs []error
	if err != nil {
		errs = append(errs, migrateCause(err))
	} else {
		_, err = migrateUpDownUp(m, &written, 0)
		if err != nil {
			errs = append(errs, migrateCause(err))
		}
	}
	errs = append(errs, stop()...)
	dbtest.OnlyBusy(t, "golang-migrate and writes", errs)
	if n := dbtest.QueryInt(t, app, "SELECT count(*) FROM events"); n != written.Load() {
		t.Fatalf("%d events, want the %d writes that succeeded", n, written.Load())
	}
}

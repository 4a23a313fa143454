package sqlitesafe_test

// Integration tests with the ORMs and tools people put in front of
// database/sql: sqlx, gorm (through gorm.io/driver/sqlite, which builds with
// CGO_ENABLED=0: its mattn/go-sqlite3 import is then a stub that registers
// "sqlite3" and is never used here), bun and goose. Each runs under real
// concurrency against a file (some in memory too) and checks the exact
// final state.
//
// The controls run the same workload through plain modernc.org/sqlite with
// its defaults (sql.Open("sqlite", path)), which is what a user of sqlx or
// gorm gets by pointing the tool at modernc.org/sqlite. rawCareful (BEGIN
// IMMEDIATE and a 5 s busy timeout) is not used for them: on workloads this
// small it usually completes without an error, its hazard being latency and
// unfairness (see the demo), which a test cannot assert on reliably.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

// Workload sizes: 16 goroutines, few enough iterations to stay fast under
// the race detector on two cores.
const (
	ormGoroutines = 16
	ormIterations = 12
)

// ormPause widens the window between the read and the write of a
// read-modify-write transaction, so that concurrent transactions overlap.
const ormPause = time.Millisecond

// ---------------------------------------------------------------- sqlx

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
	counterSchema[0],
	counterSchema[1],
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
	watchdog(t, time.Minute)
	if bt := sqlx.BindType("sqlite-safe"); bt != sqlx.UNKNOWN && bt != sqlx.QUESTION {
		t.Fatalf("sqlx.BindType(sqlite-safe) = %d, want UNKNOWN or QUESTION", bt)
	}
	db, err := sqlx.Connect("sqlite-safe", dbPath(t))
	if err != nil {
		t.Fatalf("sqlx.Connect: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if got := db.Rebind("SELECT ? + ?"); got != "SELECT ? + ?" {
		t.Fatalf("Rebind changed the query to %q; want it unchanged, with '?'", got)
	}
	mustExec(t, db, sqlxSchema...)
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
	if n := queryInt(t, db, nq, nargs...); n != 3 {
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
	t.Run("File", func(t *testing.T) { sqlxConcurrent(t, dbPath(t)) })
	// ":memory:" is one database for the whole handle.
	t.Run("Memory", func(t *testing.T) { sqlxConcurrent(t, ":memory:") })
}

func sqlxConcurrent(t *testing.T, dsn string) {
	watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db, err := sqlx.Open("sqlite-safe", dsn)
	if err != nil {
		t.Fatalf("sqlx.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	mustExec(t, db, sqlxSchema...)

	var (
		mu      sync.Mutex
		noteIDs []int64
	)
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
	noErrors(t, "sqlx on sqlite-safe", errs)

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
	if n := queryInt(t, db, "SELECT count(*) FROM notes"); n != int64(want) {
		t.Fatalf("%d notes, want %d", n, want)
	}
	if n := queryInt(t, db, "SELECT n FROM counter WHERE id = 1"); n != int64(want) {
		t.Fatalf("counter = %d after %d read-modify-write transactions: %d updates lost", n, want, int64(want)-n)
	}
}

// TestSqlxPreparedAndScripts covers what sqlx's README shows beside the
// basics, from 16 goroutines: MustExec of a schema of several statements,
// one Preparex statement shared by all goroutines, a PrepareNamed INSERT ...
// RETURNING read with Get, and QueryRowx of an INSERT ... RETURNING inside
// MustBegin's transaction.
func TestSqlxPreparedAndScripts(t *testing.T) {
	watchdog(t, 2*time.Minute)
	db := sqlx.MustConnect("sqlite-safe", dbPath(t))
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
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
	noErrors(t, "sqlx prepared statements and scripts", errs)
	want := int64(ormGoroutines * ormIterations)
	if n := queryInt(t, db, "SELECT count(*) FROM place"); n != want {
		t.Fatalf("%d places, want %d", n, want)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM person WHERE first_name = 'Jane'"); n != want {
		t.Fatalf("%d persons from the named statement, want %d", n, want)
	}
	// Each transaction's row points at the named statement's row of the
	// same iteration.
	if n := queryInt(t, db, `SELECT count(*) FROM person t JOIN person j ON j.id = CAST(t.last_name AS INTEGER)
		WHERE t.first_name = 'Tx' AND j.first_name = 'Jane'`); n != want {
		t.Fatalf("%d transaction rows point at their named-statement row, want %d", n, want)
	}
}

// TestSqlxControlPlainModernc runs the read-modify-write transactions of
// TestSqlxConcurrent through sqlx on plain modernc.org/sqlite with its
// defaults: they fail with "database is locked".
func TestSqlxControlPlainModernc(t *testing.T) {
	watchdog(t, 2*time.Minute)
	db, err := sqlx.Open("sqlite", dbPath(t))
	if err != nil {
		t.Fatalf("sqlx.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	mustExec(t, db, counterSchema...)
	var ok atomic.Int64
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		err := sqlxRMW(context.Background(), db)
		if err == nil {
			ok.Add(1)
		}
		return err
	})
	onlyBusy(t, "sqlx read-modify-write", errs)
	if n := queryInt(t, db, "SELECT n FROM counter WHERE id = 1"); n != ok.Load() {
		t.Fatalf("counter = %d, want the %d transactions that committed", n, ok.Load())
	}
}

// ---------------------------------------------------------------- gorm

type gormAccount struct {
	ID        uint   `gorm:"primaryKey"`
	Name      string `gorm:"uniqueIndex"`
	Balance   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

type gormTransfer struct {
	ID     uint `gorm:"primaryKey"`
	FromID uint
	ToID   uint
	Amount int64
}

type gormItem struct {
	ID        uint `gorm:"primaryKey"`
	G, I      int
	Label     string
	CreatedAt time.Time
}

type gormTag struct {
	ID   uint   `gorm:"primaryKey"`
	Name string `gorm:"uniqueIndex;not null"`
	Uses int
}

type gormUser struct {
	ID     uint `gorm:"primaryKey"`
	Name   string
	Orders []gormOrder `gorm:"foreignKey:UserID"`
}

type gormOrder struct {
	ID     uint `gorm:"primaryKey"`
	UserID uint
	Item   string
}

// openGorm opens d with gorm, silent, and closes it when the test ends.
func openGorm(t *testing.T, d gorm.Dialector, cfg gorm.Config) *gorm.DB {
	t.Helper()
	cfg.Logger = logger.Discard
	db, err := gorm.Open(d, &cfg)
	if err != nil {
		t.Fatalf("gorm.Open: %v", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatalf("gorm DB(): %v", err)
	}
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

// gormSafe opens path with gorm on sqlite-safe, by driver name.
func gormSafe(t *testing.T, path string, cfg gorm.Config) *gorm.DB {
	return openGorm(t, sqlite.Dialector{DriverName: "sqlite-safe", DSN: path}, cfg)
}

const (
	gormAccounts       = 8
	gormInitialBalance = 1000
)

var errInsufficient = errors.New("insufficient funds")

// gormMigrateAccounts creates the accounts, each with the initial balance.
func gormMigrateAccounts(t *testing.T, db *gorm.DB) {
	t.Helper()
	if err := db.AutoMigrate(&gormAccount{}, &gormTransfer{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	for i := range gormAccounts {
		if err := db.Create(&gormAccount{Name: fmt.Sprint("acct", i), Balance: gormInitialBalance}).Error; err != nil {
			t.Fatalf("Create account: %v", err)
		}
	}
}

// gormTransferMoney moves money between two accounts in a gorm transaction: read
// both, check, Save both, log the transfer. Without serialised write
// transactions it loses updates or fails.
func gormTransferMoney(db *gorm.DB, g, i int) error {
	from := uint(1 + (g+i)%gormAccounts)
	to := uint(1 + (g*3+i+1)%gormAccounts)
	if from == to {
		to = 1 + to%gormAccounts
	}
	amount := int64(1 + (g*i)%9)
	return db.Transaction(func(tx *gorm.DB) error {
		var a, b gormAccount
		if err := tx.First(&a, from).Error; err != nil {
			return err
		}
		if err := tx.First(&b, to).Error; err != nil {
			return err
		}
		if a.Balance < amount {
			return errInsufficient
		}
		time.Sleep(ormPause)
		a.Balance -= amount
		b.Balance += amount
		if err := tx.Save(&a).Error; err != nil {
			return err
		}
		if err := tx.Save(&b).Error; err != nil {
			return err
		}
		return tx.Create(&gormTransfer{FromID: from, ToID: to, Amount: amount}).Error
	})
}

// checkGormLedger checks that the total is conserved and that each balance
// is the initial one plus what the transfer log says came in, less what went
// out: a lost update breaks it.
func checkGormLedger(t *testing.T, db *gorm.DB, wantTransfers int64) {
	t.Helper()
	var accounts []gormAccount
	if err := db.Order("id").Find(&accounts).Error; err != nil {
		t.Fatalf("Find accounts: %v", err)
	}
	var transfers []gormTransfer
	if err := db.Find(&transfers).Error; err != nil {
		t.Fatalf("Find transfers: %v", err)
	}
	if int64(len(transfers)) != wantTransfers {
		t.Fatalf("%d transfers logged, want the %d that committed", len(transfers), wantTransfers)
	}
	want := map[uint]int64{}
	for _, a := range accounts {
		want[a.ID] = gormInitialBalance
	}
	for _, tr := range transfers {
		want[tr.FromID] -= tr.Amount
		want[tr.ToID] += tr.Amount
	}
	var total int64
	for _, a := range accounts {
		total += a.Balance
		if a.Balance != want[a.ID] {
			t.Errorf("account %d: balance %d, want %d from the transfer log (lost update)", a.ID, a.Balance, want[a.ID])
		}
	}
	if total != gormAccounts*gormInitialBalance {
		t.Fatalf("total %d, want %d: money was created or destroyed", total, gormAccounts*gormInitialBalance)
	}
}

// gormTransfers runs the transfer workload and returns the errors other than
// errInsufficient, and how many transfers committed.
func gormTransfers(db *gorm.DB) (errs []error, committed int64) {
	var ok atomic.Int64
	errs = parallel(ormGoroutines, ormIterations, func(g, i int) error {
		err := gormTransferMoney(db, g, i)
		switch {
		case err == nil:
			ok.Add(1)
		case errors.Is(err, errInsufficient):
			err = nil
		}
		return err
	})
	return errs, ok.Load()
}

// gormVariants are the ways a gorm user opens sqlite-safe: by DriverName
// with gorm's defaults (a transaction around each Create), with
// SkipDefaultTransaction, with PrepareStmt, through Conn with a *sql.DB of
// their own, and in memory.
var gormVariants = []struct {
	name string
	open func(t *testing.T, path string) *gorm.DB
}{
	{"DriverName", func(t *testing.T, path string) *gorm.DB {
		return gormSafe(t, path, gorm.Config{})
	}},
	{"SkipDefaultTransaction", func(t *testing.T, path string) *gorm.DB {
		return gormSafe(t, path, gorm.Config{SkipDefaultTransaction: true})
	}},
	{"PrepareStmt", func(t *testing.T, path string) *gorm.DB {
		return gormSafe(t, path, gorm.Config{PrepareStmt: true})
	}},
	{"Conn", func(t *testing.T, path string) *gorm.DB {
		return openGorm(t, sqlite.New(sqlite.Config{Conn: openSafe(t, path)}), gorm.Config{})
	}},
	// ":memory:", as gorm's own examples have it: one database for the
	// whole handle (plain modernc.org/sqlite gives each pooled connection
	// an empty one of its own).
	{"Memory", func(t *testing.T, _ string) *gorm.DB {
		return gormSafe(t, ":memory:", gorm.Config{})
	}},
}

// TestGormTransfer moves money between accounts in gorm transactions from 16
// goroutines (read both balances, Save both, log it), in each way of opening
// gorm: no error, the total is conserved and every balance matches the log.
func TestGormTransfer(t *testing.T) {
	for _, v := range gormVariants {
		t.Run(v.name, func(t *testing.T) {
			watchdog(t, 2*time.Minute)
			db := v.open(t, dbPath(t))
			gormMigrateAccounts(t, db)
			errs, committed := gormTransfers(db)
			noErrors(t, "gorm transfers on sqlite-safe", errs)
			if committed == 0 {
				t.Fatal("no transfer committed")
			}
			checkGormLedger(t, db, committed)
		})
	}
}

// TestGormControlPlainModernc runs the transfers of TestGormTransfer, and
// the Creates of TestGormCreate, through gorm on plain modernc.org/sqlite
// with its defaults: they fail with "database is locked".
func TestGormControlPlainModernc(t *testing.T) {
	t.Run("Transfer", func(t *testing.T) {
		watchdog(t, 2*time.Minute)
		db := openGorm(t, sqlite.Dialector{DriverName: "sqlite", DSN: dbPath(t)}, gorm.Config{})
		gormMigrateAccounts(t, db)
		errs, committed := gormTransfers(db)
		onlyBusy(t, "gorm transfers", errs)
		checkGormLedger(t, db, committed)
	})
	// Even plain Creates fail: gorm wraps each in a (deferred) transaction.
	t.Run("Create", func(t *testing.T) {
		watchdog(t, 2*time.Minute)
		db := openGorm(t, sqlite.Dialector{DriverName: "sqlite", DSN: dbPath(t)}, gorm.Config{})
		if err := db.AutoMigrate(&gormItem{}); err != nil {
			t.Fatalf("AutoMigrate: %v", err)
		}
		var ok atomic.Int64
		errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
			err := db.Create(&gormItem{G: g, I: i}).Error
			if err == nil {
				ok.Add(1)
			}
			return err
		})
		onlyBusy(t, "gorm Create", errs)
		var n int64
		if err := db.Model(&gormItem{}).Count(&n).Error; err != nil || n != ok.Load() {
			t.Fatalf("Count = %d, %v; want the %d Creates that succeeded", n, err, ok.Load())
		}
	})
}

// TestGormCreate creates rows from 16 goroutines with gorm's Create, which
// sends INSERT ... RETURNING through QueryContext (inside gorm's own
// transaction unless SkipDefaultTransaction): every row gets its own id, all
// are there, and CreatedAt reads back equal.
func TestGormCreate(t *testing.T) {
	for _, v := range gormVariants {
		t.Run(v.name, func(t *testing.T) {
			watchdog(t, 2*time.Minute)
			db := v.open(t, dbPath(t))
			if err := db.AutoMigrate(&gormItem{}); err != nil {
				t.Fatalf("AutoMigrate: %v", err)
			}
			var (
				mu  sync.Mutex
				ids []uint
			)
			errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
				it := gormItem{G: g, I: i, Label: fmt.Sprintf("%d/%d", g, i)}
				if err := db.Create(&it).Error; err != nil {
					return err
				}
				if it.ID == 0 {
					return errors.New("Create left ID 0; want the id from RETURNING")
				}
				var back gormItem
				if err := db.First(&back, it.ID).Error; err != nil {
					return fmt.Errorf("First(%d): %w", it.ID, err)
				}
				if back.G != g || back.I != i || back.Label != it.Label || !back.CreatedAt.Equal(it.CreatedAt) {
					return fmt.Errorf("read back %+v, want %+v", back, it)
				}
				mu.Lock()
				ids = append(ids, it.ID)
				mu.Unlock()
				return nil
			})
			noErrors(t, "gorm Create on sqlite-safe", errs)
			want := ormGoroutines * ormIterations
			slices.Sort(ids)
			if n := len(slices.Compact(ids)); n != want {
				t.Fatalf("%d distinct ids, want %d", n, want)
			}
			var count int64
			if err := db.Model(&gormItem{}).Count(&count).Error; err != nil || count != int64(want) {
				t.Fatalf("Count = %d, %v; want %d", count, err, want)
			}
		})
	}
}

// TestGormUpdateExpr updates balances with gorm.Expr("balance - ?") from 16
// goroutines, through Update and Updates: each decrement lands once.
func TestGormUpdateExpr(t *testing.T) {
	watchdog(t, 2*time.Minute)
	db := gormSafe(t, dbPath(t), gorm.Config{})
	gormMigrateAccounts(t, db)
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		id := uint(1 + g%gormAccounts)
		if i%2 == 0 {
			return db.Model(&gormAccount{ID: id}).Update("balance", gorm.Expr("balance - ?", 1)).Error
		}
		return db.Model(&gormAccount{}).Where("id = ?", id).
			Updates(map[string]any{"balance": gorm.Expr("balance - ?", 1)}).Error
	})
	noErrors(t, "gorm Update with gorm.Expr", errs)
	var accounts []gormAccount
	if err := db.Order("id").Find(&accounts).Error; err != nil {
		t.Fatal(err)
	}
	perAccount := int64(ormGoroutines / gormAccounts * ormIterations)
	for _, a := range accounts {
		if a.Balance != gormInitialBalance-perAccount {
			t.Errorf("account %d: balance %d, want %d", a.ID, a.Balance, gormInitialBalance-perAccount)
		}
	}
}

// TestGormNestedTransaction runs gorm transactions with nested ones (gorm
// sends SAVEPOINT and ROLLBACK TO SAVEPOINT as SQL inside the transaction)
// from 16 goroutines: the failed inner transaction is undone, the others and
// the outer one stay.
func TestGormNestedTransaction(t *testing.T) {
	watchdog(t, 2*time.Minute)
	db := gormSafe(t, dbPath(t), gorm.Config{})
	if err := db.AutoMigrate(&gormItem{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	errInner := errors.New("inner fails")
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		return db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&gormItem{G: g, I: i, Label: "outer"}).Error; err != nil {
				return err
			}
			err := tx.Transaction(func(tx2 *gorm.DB) error {
				if err := tx2.Create(&gormItem{G: g, I: i, Label: "undone"}).Error; err != nil {
					return err
				}
				return errInner
			})
			if !errors.Is(err, errInner) {
				return fmt.Errorf("inner transaction returned %v, want %v", err, errInner)
			}
			return tx.Transaction(func(tx2 *gorm.DB) error {
				return tx2.Create(&gormItem{G: g, I: i, Label: "inner"}).Error
			})
		})
	})
	noErrors(t, "gorm nested transactions", errs)
	want := int64(ormGoroutines * ormIterations)
	for label, n := range map[string]int64{"outer": want, "inner": want, "undone": 0} {
		var got int64
		if err := db.Model(&gormItem{}).Where("label = ?", label).Count(&got).Error; err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("%d rows labelled %q, want %d", got, label, n)
		}
	}
}

// TestGormFirstOrCreate races FirstOrCreate on a unique key from 16
// goroutines. Inside a transaction (BEGIN IMMEDIATE: the lookup and the
// insert are one step) there is exactly one row per key and no error. Bare,
// gorm's lookup and insert are two statements, so a loser of the race gets
// a UNIQUE violation (as on any database), never "database is locked", and
// there is still one row per key.
func TestGormFirstOrCreate(t *testing.T) {
	const keys = 6
	t.Run("Transaction", func(t *testing.T) {
		watchdog(t, 2*time.Minute)
		db := gormSafe(t, dbPath(t), gorm.Config{})
		if err := db.AutoMigrate(&gormTag{}); err != nil {
			t.Fatalf("AutoMigrate: %v", err)
		}
		errs := parallel(ormGoroutines, keys, func(g, i int) error {
			name := fmt.Sprint("tag", (g+i)%keys)
			return db.Transaction(func(tx *gorm.DB) error {
				var tag gormTag
				if err := tx.Where(gormTag{Name: name}).FirstOrCreate(&tag).Error; err != nil {
					return err
				}
				if tag.ID == 0 || tag.Name != name {
					return fmt.Errorf("FirstOrCreate gave %+v, want the row of %q", tag, name)
				}
				return tx.Model(&tag).Update("uses", gorm.Expr("uses + 1")).Error
			})
		})
		noErrors(t, "FirstOrCreate in a transaction", errs)
		var tags []gormTag
		if err := db.Order("name").Find(&tags).Error; err != nil {
			t.Fatal(err)
		}
		if len(tags) != keys {
			t.Fatalf("%d tags, want %d: %+v", len(tags), keys, tags)
		}
		for _, tag := range tags {
			if tag.Uses != ormGoroutines {
				t.Errorf("tag %s used %d times, want %d", tag.Name, tag.Uses, ormGoroutines)
			}
		}
	})
	// The race-free get-or-create without a transaction: INSERT ... ON
	// CONFLICT DO NOTHING, then read the row.
	t.Run("OnConflictDoNothing", func(t *testing.T) {
		watchdog(t, 2*time.Minute)
		db := gormSafe(t, dbPath(t), gorm.Config{})
		if err := db.AutoMigrate(&gormTag{}); err != nil {
			t.Fatalf("AutoMigrate: %v", err)
		}
		var (
			mu  sync.Mutex
			ids = map[string]uint{}
		)
		errs := parallel(ormGoroutines, keys, func(g, i int) error {
			name := fmt.Sprint("tag", (g+i)%keys)
			tag := gormTag{Name: name}
			if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&tag).Error; err != nil {
				return err
			}
			if tag.ID == 0 {
				if err := db.Where("name = ?", name).First(&tag).Error; err != nil {
					return err
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if id, ok := ids[name]; ok && id != tag.ID {
				return fmt.Errorf("%s has ids %d and %d", name, id, tag.ID)
			}
			ids[name] = tag.ID
			return nil
		})
		noErrors(t, "get-or-create with ON CONFLICT DO NOTHING", errs)
		var n int64
		if err := db.Model(&gormTag{}).Count(&n).Error; err != nil || n != keys || len(ids) != keys {
			t.Fatalf("%d tags, %d names seen, %v; want %d", n, len(ids), err, keys)
		}
	})
	t.Run("Bare", func(t *testing.T) {
		watchdog(t, 2*time.Minute)
		db := gormSafe(t, dbPath(t), gorm.Config{})
		if err := db.AutoMigrate(&gormTag{}); err != nil {
			t.Fatalf("AutoMigrate: %v", err)
		}
		errs := parallel(ormGoroutines, keys, func(g, i int) error {
			var tag gormTag
			return db.Where(gormTag{Name: fmt.Sprint("tag", (g+i)%keys)}).FirstOrCreate(&tag).Error
		})
		for _, err := range errs {
			if c := sqliteCode(err); c != 2067 { // SQLITE_CONSTRAINT_UNIQUE
				t.Fatalf("bare FirstOrCreate failed with %v (code %d), want nothing or a UNIQUE violation (2067)", err, c)
			}
		}
		t.Logf("bare FirstOrCreate: %d UNIQUE violations out of %d calls", len(errs), ormGoroutines*keys)
		var n int64
		if err := db.Model(&gormTag{}).Count(&n).Error; err != nil || n != keys {
			t.Fatalf("%d tags, %v; want %d", n, err, keys)
		}
	})
}

// TestGormAssociations creates users with their orders (gorm inserts the
// associations in the same transaction, with upserts and RETURNING) from 16
// goroutines while others Preload them: all are there, each with its orders.
func TestGormAssociations(t *testing.T) {
	watchdog(t, 2*time.Minute)
	db := gormSafe(t, dbPath(t), gorm.Config{})
	if err := db.AutoMigrate(&gormUser{}, &gormOrder{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	const orders = 3
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		if g%4 == 3 {
			// A reader: every user it sees has all its orders.
			var users []gormUser
			if err := db.Preload("Orders").Find(&users).Error; err != nil {
				return err
			}
			for _, u := range users {
				if len(u.Orders) != orders {
					return fmt.Errorf("user %d preloaded with %d orders, want %d", u.ID, len(u.Orders), orders)
				}
			}
			return nil
		}
		u := gormUser{Name: fmt.Sprintf("u%d/%d", g, i)}
		for k := range orders {
			u.Orders = append(u.Orders, gormOrder{Item: fmt.Sprint("item", k)})
		}
		return db.Create(&u).Error
	})
	noErrors(t, "gorm associations", errs)
	var users []gormUser
	if err := db.Preload("Orders").Find(&users).Error; err != nil {
		t.Fatal(err)
	}
	wantUsers := ormGoroutines * 3 / 4 * ormIterations
	if len(users) != wantUsers {
		t.Fatalf("%d users, want %d", len(users), wantUsers)
	}
	for _, u := range users {
		if len(u.Orders) != orders {
			t.Fatalf("user %d has %d orders, want %d", u.ID, len(u.Orders), orders)
		}
	}
}

// TestGormUpsertAndBatches covers gorm's upserts and batch inserts from 16
// goroutines: Create with clause.OnConflict incrementing a counter (INSERT
// ... ON CONFLICT DO UPDATE ... RETURNING), and CreateInBatches, whose
// multi-row INSERT ... RETURNING must give every row its id.
func TestGormUpsertAndBatches(t *testing.T) {
	watchdog(t, 2*time.Minute)
	db := gormSafe(t, dbPath(t), gorm.Config{})
	if err := db.AutoMigrate(&gormTag{}, &gormItem{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	const keys, batch = 4, 25
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		tag := gormTag{Name: fmt.Sprint("k", (g+i)%keys), Uses: 1}
		if err := db.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "name"}},
			DoUpdates: clause.Assignments(map[string]any{"uses": gorm.Expr("uses + 1")}),
		}).Create(&tag).Error; err != nil {
			return fmt.Errorf("upsert: %w", err)
		}
		if i%4 != 0 {
			return nil
		}
		items := make([]gormItem, batch)
		for k := range items {
			items[k] = gormItem{G: g, I: i*1000 + k, Label: "batch"}
		}
		if err := db.CreateInBatches(&items, 10).Error; err != nil {
			return fmt.Errorf("CreateInBatches: %w", err)
		}
		for _, it := range items {
			if it.ID == 0 {
				return errors.New("CreateInBatches left an ID 0; want every row's id from RETURNING")
			}
		}
		return nil
	})
	noErrors(t, "gorm upserts and batches", errs)
	var total int64
	if err := db.Model(&gormTag{}).Select("sum(uses)").Scan(&total).Error; err != nil {
		t.Fatal(err)
	}
	if total != ormGoroutines*ormIterations {
		t.Fatalf("upserts counted %d uses, want %d", total, ormGoroutines*ormIterations)
	}
	var tags, items int64
	db.Model(&gormTag{}).Count(&tags)
	db.Model(&gormItem{}).Count(&items)
	if tags != keys || items != ormGoroutines*ormIterations/4*batch {
		t.Fatalf("%d tags and %d items, want %d and %d", tags, items, keys, ormGoroutines*ormIterations/4*batch)
	}
}

// TestGormForeignKeysDSN opens gorm with the DSN many gorm and
// modernc.org/sqlite guides give (_pragma=foreign_keys(1), busy_timeout,
// journal_mode): foreign keys are enforced on every connection, so an
// order for a missing user fails with SQLITE_CONSTRAINT_FOREIGNKEY, and
// users with orders created from 16 goroutines all land.
func TestGormForeignKeysDSN(t *testing.T) {
	watchdog(t, 2*time.Minute)
	dsn := dbPath(t) + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	db := gormSafe(t, dsn, gorm.Config{})
	if err := db.AutoMigrate(&gormUser{}, &gormOrder{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		if i%3 == 2 {
			err := db.Create(&gormOrder{UserID: 1 << 30, Item: "orphan"}).Error
			if c := sqliteCode(err); c != 787 {
				return fmt.Errorf("order for a missing user: %v (code %d), want SQLITE_CONSTRAINT_FOREIGNKEY (787)", err, c)
			}
			return nil
		}
		return db.Create(&gormUser{Name: "u", Orders: []gormOrder{{Item: "a"}}}).Error
	})
	noErrors(t, "gorm with foreign keys", errs)
	var orphans, orders int64
	db.Model(&gormOrder{}).Where("item = ?", "orphan").Count(&orphans)
	db.Model(&gormOrder{}).Count(&orders)
	want := int64(ormGoroutines * (ormIterations - ormIterations/3))
	if orphans != 0 || orders != want {
		t.Fatalf("%d orphan orders and %d in all, want 0 and %d", orphans, orders, want)
	}
}

// TestGormAutoMigrateWhileWriting changes a model with AutoMigrate (a new
// column and index) and AlterColumn (which copies the table into a new one
// in a transaction) through one handle while 16 goroutines Create rows of
// the old model through another: every Create succeeds, no row or value is
// lost, and the schema is the new one.
func TestGormAutoMigrateWhileWriting(t *testing.T) {
	watchdog(t, 2*time.Minute)
	type v1 struct {
		ID   uint `gorm:"primaryKey"`
		Name string
		Age  int
	}
	type v2 struct {
		ID    uint `gorm:"primaryKey"`
		Name  string
		Age   string // AlterColumn: gorm rebuilds the table in a transaction
		Email string `gorm:"index"`
	}
	path := dbPath(t)
	app := gormSafe(t, path, gorm.Config{})
	admin := gormSafe(t, path, gorm.Config{})
	if err := app.Table("people").AutoMigrate(&v1{}); err != nil {
		t.Fatal(err)
	}
	var migErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(5 * time.Millisecond)
		if migErr = admin.Table("people").AutoMigrate(&v2{}); migErr == nil {
			migErr = admin.Table("people").Migrator().AlterColumn(&v2{}, "Age")
		}
	}()
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		time.Sleep(time.Millisecond)
		return app.Table("people").Create(&v1{Name: fmt.Sprint(g, "/", i), Age: i}).Error
	})
	wg.Wait()
	if migErr != nil {
		t.Fatalf("AutoMigrate while writing: %v", migErr)
	}
	noErrors(t, "gorm Create during AutoMigrate", errs)
	if !admin.Table("people").Migrator().HasColumn(&v2{}, "Email") {
		t.Fatal("column email missing after AutoMigrate")
	}
	var typ string
	if err := admin.Raw("SELECT type FROM pragma_table_info('people') WHERE name = 'age'").Scan(&typ).Error; err != nil || !strings.EqualFold(typ, "text") {
		t.Fatalf("column age has type %q, %v; want text after AlterColumn", typ, err)
	}
	var n, sum int64
	app.Table("people").Count(&n)
	app.Table("people").Select("sum(age)").Scan(&sum)
	if n != ormGoroutines*ormIterations || sum != ormGoroutines*ormIterations*(ormIterations-1)/2 {
		t.Fatalf("%d people with ages summing to %d, want %d and %d", n, sum,
			ormGoroutines*ormIterations, ormGoroutines*ormIterations*(ormIterations-1)/2)
	}
}

// TestGormUniqueErrorCode shows what a UNIQUE violation looks like through
// gorm, even with TranslateError (which does not recognise
// modernc.org/sqlite's errors): modernc.org/sqlite's *sqlite.Error, code
// 2067, reachable with errors.As.
func TestGormUniqueErrorCode(t *testing.T) {
	watchdog(t, time.Minute)
	db := gormSafe(t, dbPath(t), gorm.Config{TranslateError: true})
	if err := db.AutoMigrate(&gormTag{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	if err := db.Create(&gormTag{Name: "x"}).Error; err != nil {
		t.Fatal(err)
	}
	err := db.Create(&gormTag{Name: "x"}).Error
	if c := sqliteCode(err); c != 2067 {
		t.Fatalf("duplicate Create returned %v (code %d), want SQLITE_CONSTRAINT_UNIQUE (2067)", err, c)
	}
}

// ---------------------------------------------------------------- bun

type bunAccount struct {
	bun.BaseModel `bun:"table:accounts"`
	ID            int64  `bun:"id,pk,autoincrement"`
	Name          string `bun:"name,notnull,unique"`
	Balance       int64  `bun:"balance,notnull"`
}

type bunTransfer struct {
	bun.BaseModel `bun:"table:transfers"`
	ID            int64     `bun:"id,pk,autoincrement"`
	FromID        int64     `bun:"from_id,notnull"`
	ToID          int64     `bun:"to_id,notnull"`
	Amount        int64     `bun:"amount,notnull"`
	At            time.Time `bun:"at,notnull"`
}

// openBun opens path with bun on sqlite-safe and creates the tables.
func openBun(t *testing.T, path string) *bun.DB {
	t.Helper()
	db := bun.NewDB(openSafe(t, path), sqlitedialect.New())
	ctx := context.Background()
	for _, m := range []any{(*bunAccount)(nil), (*bunTransfer)(nil)} {
		if _, err := db.NewCreateTable().Model(m).IfNotExists().Exec(ctx); err != nil {
			t.Fatalf("NewCreateTable: %v", err)
		}
		// Again: IfNotExists makes it a no-op.
		if _, err := db.NewCreateTable().Model(m).IfNotExists().Exec(ctx); err != nil {
			t.Fatalf("NewCreateTable IfNotExists on an existing table: %v", err)
		}
	}
	return db
}

// TestBunInsertReturning inserts from 16 goroutines with bun, which sends
// INSERT ... RETURNING "id" through QueryContext and scans the id into the
// model: each gets its own id, all rows are there.
func TestBunInsertReturning(t *testing.T) {
	watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db := openBun(t, dbPath(t))
	var (
		mu  sync.Mutex
		ids []int64
	)
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		a := &bunAccount{Name: fmt.Sprintf("a%d/%d", g, i), Balance: int64(g*100 + i)}
		if _, err := db.NewInsert().Model(a).Exec(ctx); err != nil {
			return err
		}
		// And with an explicit RETURNING of more than the key.
		b := &bunAccount{Name: fmt.Sprintf("b%d/%d", g, i), Balance: 1}
		if _, err := db.NewInsert().Model(b).Returning("id, balance").Exec(ctx); err != nil {
			return err
		}
		if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
			return fmt.Errorf("ids %d and %d: want two distinct ids from RETURNING", a.ID, b.ID)
		}
		var back bunAccount
		if err := db.NewSelect().Model(&back).Where("id = ?", a.ID).Scan(ctx); err != nil {
			return err
		}
		if back.Name != a.Name || back.Balance != a.Balance {
			return fmt.Errorf("read back %+v, want %+v", back, a)
		}
		mu.Lock()
		ids = append(ids, a.ID, b.ID)
		mu.Unlock()
		return nil
	})
	noErrors(t, "bun inserts", errs)
	want := 2 * ormGoroutines * ormIterations
	slices.Sort(ids)
	if n := len(slices.Compact(ids)); n != want {
		t.Fatalf("%d distinct ids, want %d", n, want)
	}
	n, err := db.NewSelect().Model((*bunAccount)(nil)).Count(ctx)
	if err != nil || n != int64(want) {
		t.Fatalf("Count = %d, %v; want %d", n, err, want)
	}
}

// TestBunRunInTx moves money between accounts with bun's RunInTx (nil
// options: a write transaction) from 16 goroutines, each with a nested
// RunInTx (a SAVEPOINT) that fails and is undone: no error, no lost update,
// nothing of the failed savepoints left.
func TestBunRunInTx(t *testing.T) {
	watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db := openBun(t, dbPath(t))
	const accounts, initial = 8, 1000
	for i := range accounts {
		if _, err := db.NewInsert().Model(&bunAccount{Name: fmt.Sprint("acct", i), Balance: initial}).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	errUndo := errors.New("undo")
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		from, to := int64(1+(g+i)%accounts), int64(1+(g+i+1+g%3)%accounts)
		amount := int64(1 + (g+i)%5)
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var a, b bunAccount
			if err := tx.NewSelect().Model(&a).Where("id = ?", from).Scan(ctx); err != nil {
				return err
			}
			if err := tx.NewSelect().Model(&b).Where("id = ?", to).Scan(ctx); err != nil {
				return err
			}
			time.Sleep(ormPause)
			a.Balance -= amount
			b.Balance += amount
			for _, m := range []*bunAccount{&a, &b} {
				if _, err := tx.NewUpdate().Model(m).Column("balance").WherePK().Exec(ctx); err != nil {
					return err
				}
			}
			err := tx.RunInTx(ctx, nil, func(ctx context.Context, sp bun.Tx) error {
				if _, err := sp.NewInsert().Model(&bunTransfer{FromID: from, ToID: to, Amount: -1, At: time.Now()}).Exec(ctx); err != nil {
					return err
				}
				return errUndo
			})
			if !errors.Is(err, errUndo) {
				return fmt.Errorf("nested RunInTx returned %v, want %v", err, errUndo)
			}
			_, err = tx.NewInsert().Model(&bunTransfer{FromID: from, ToID: to, Amount: amount, At: time.Now()}).Exec(ctx)
			return err
		})
	})
	noErrors(t, "bun RunInTx", errs)

	var transfers []bunTransfer
	if err := db.NewSelect().Model(&transfers).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if len(transfers) != ormGoroutines*ormIterations {
		t.Fatalf("%d transfers, want %d", len(transfers), ormGoroutines*ormIterations)
	}
	want := map[int64]int64{}
	for _, tr := range transfers {
		if tr.Amount < 0 {
			t.Fatalf("transfer %+v from a savepoint that was rolled back is there", tr)
		}
		want[tr.FromID] -= tr.Amount
		want[tr.ToID] += tr.Amount
	}
	var all []bunAccount
	if err := db.NewSelect().Model(&all).Order("id").Scan(ctx); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, a := range all {
		total += a.Balance
		if a.Balance != initial+want[a.ID] {
			t.Errorf("account %d: balance %d, want %d from the transfer log (lost update)", a.ID, a.Balance, initial+want[a.ID])
		}
	}
	if total != accounts*initial {
		t.Fatalf("total %d, want %d", total, accounts*initial)
	}
}

// TestBunBulkAndUpsert inserts slices with bun (one multi-row INSERT ...
// RETURNING "id" that must fill every element) and upserts with On("CONFLICT
// ... DO UPDATE") from 16 goroutines, and reads in a read-only RunInTx.
func TestBunBulkAndUpsert(t *testing.T) {
	watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db := openBun(t, dbPath(t))
	const keys = 4
	errs := parallel(ormGoroutines, ormIterations, func(g, i int) error {
		bulk := []bunAccount{
			{Name: fmt.Sprintf("x%d/%d", g, i)},
			{Name: fmt.Sprintf("y%d/%d", g, i)},
			{Name: fmt.Sprintf("z%d/%d", g, i)},
		}
		if _, err := db.NewInsert().Model(&bulk).Exec(ctx); err != nil {
			return fmt.Errorf("bulk insert: %w", err)
		}
		for _, a := range bulk {
			if a.ID == 0 {
				return fmt.Errorf("bulk insert left %+v without an id", a)
			}
		}
		up := &bunAccount{Name: fmt.Sprint("key", (g+i)%keys), Balance: 1}
		if _, err := db.NewInsert().Model(up).
			On("CONFLICT (name) DO UPDATE").Set("balance = balance + EXCLUDED.balance").
			Exec(ctx); err != nil {
			return fmt.Errorf("upsert: %w", err)
		}
		return db.RunInTx(ctx, &sql.TxOptions{ReadOnly: true}, func(ctx context.Context, tx bun.Tx) error {
			n, err := tx.NewSelect().Model((*bunAccount)(nil)).Count(ctx)
			if err == nil && n < 3 {
				err = fmt.Errorf("read-only transaction counted %d accounts after this goroutine's 3", n)
			}
			return err
		})
	})
	noErrors(t, "bun bulk inserts and upserts", errs)
	var sum int64
	if err := db.NewSelect().Model((*bunAccount)(nil)).ColumnExpr("sum(balance)").
		Where("name LIKE 'key%'").Scan(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	if sum != ormGoroutines*ormIterations {
		t.Fatalf("upserts summed to %d, want %d", sum, ormGoroutines*ormIterations)
	}
	n, err := db.NewSelect().Model((*bunAccount)(nil)).Count(ctx)
	if want := int64(3*ormGoroutines*ormIterations + keys); err != nil || n != want {
		t.Fatalf("Count = %d, %v; want %d", n, err, want)
	}
}

// ---------------------------------------------------------------- goose

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
	watchdog(t, 2*time.Minute)
	ctx := context.Background()
	path := dbPath(t)
	app := openSafe(t, path)
	mustExec(t, app, "CREATE TABLE events (id INTEGER PRIMARY KEY, g INTEGER NOT NULL, i INTEGER NOT NULL)")
	migrator := openSafe(t, path)
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
	noErrors(t, "application writes during migrations", writeErr)
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
	n := queryInt(t, app, "SELECT count(*) FROM events")
	if n != written.Load() {
		t.Fatalf("%d events, want the %d writes that succeeded", n, written.Load())
	}
	if c := queryInt(t, app, "SELECT events FROM stats"); c != n {
		t.Fatalf("trigger counted %d events, the table has %d: the migration was not atomic with the writes", c, n)
	}
	old := queryInt(t, app, "SELECT count(*) FROM events WHERE note = 'old'")
	upTo := queryInt(t, app, "SELECT count(*) FROM events WHERE id <= (SELECT max_id FROM marks)")
	if old != upTo {
		t.Fatalf("the Go migration marked %d events, %d were there when it ran: it was not atomic with the writes", old, upTo)
	}
	if queryInt(t, app, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'events_g'") != 1 {
		t.Fatal("index events_g (the NO TRANSACTION migration) missing after the second Up")
	}
}

// TestGooseGlobalAPI uses goose's package-level functions, as its README
// shows them (SetBaseFS, SetDialect, Up, Down, Status, GetDBVersion), on
// sqlite-safe.
func TestGooseGlobalAPI(t *testing.T) {
	watchdog(t, time.Minute)
	db := openSafe(t, dbPath(t))
	mustExec(t, db, "CREATE TABLE events (id INTEGER PRIMARY KEY, g INTEGER NOT NULL, i INTEGER NOT NULL)")
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
	mustExec(t, db, "INSERT INTO events (g, i) VALUES (1, 1)")
	if n := queryInt(t, db, "SELECT events FROM stats"); n != 1 {
		t.Fatalf("stats.events = %d after one insert, want 1", n)
	}
}

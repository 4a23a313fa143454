package compat_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

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
	errs = dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
		return openGorm(t, sqlite.New(sqlite.Config{Conn: dbtest.OpenSafe(t, path)}), gorm.Config{})
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
			dbtest.Watchdog(t, 2*time.Minute)
			db := v.open(t, dbtest.Path(t))
			gormMigrateAccounts(t, db)
			errs, committed := gormTransfers(db)
			dbtest.NoErrors(t, "gorm transfers on sqlite-safe", errs)
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
		dbtest.Watchdog(t, 2*time.Minute)
		db := openGorm(t, sqlite.Dialector{DriverName: "sqlite", DSN: dbtest.Path(t)}, gorm.Config{})
		gormMigrateAccounts(t, db)
		errs, committed := gormTransfers(db)
		dbtest.OnlyBusy(t, "gorm transfers", errs)
		checkGormLedger(t, db, committed)
	})
	// Even plain Creates fail: gorm wraps each in a (deferred) transaction.
	t.Run("Create", func(t *testing.T) {
		dbtest.Watchdog(t, 2*time.Minute)
		db := openGorm(t, sqlite.Dialector{DriverName: "sqlite", DSN: dbtest.Path(t)}, gorm.Config{})
		if err := db.AutoMigrate(&gormItem{}); err != nil {
			t.Fatalf("AutoMigrate: %v", err)
		}
		var ok atomic.Int64
		errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
			err := db.Create(&gormItem{G: g, I: i}).Error
			if err == nil {
				ok.Add(1)
			}
			return err
		})
		dbtest.OnlyBusy(t, "gorm Create", errs)
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
			dbtest.Watchdog(t, 2*time.Minute)
			db := v.open(t, dbtest.Path(t))
			if err := db.AutoMigrate(&gormItem{}); err != nil {
				t.Fatalf("AutoMigrate: %v", err)
			}
			var (
				mu  sync.Mutex
				ids []uint
			)
			errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
			dbtest.NoErrors(t, "gorm Create on sqlite-safe", errs)
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
	dbtest.Watchdog(t, 2*time.Minute)
	db := gormSafe(t, dbtest.Path(t), gorm.Config{})
	gormMigrateAccounts(t, db)
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		id := uint(1 + g%gormAccounts)
		if i%2 == 0 {
			return db.Model(&gormAccount{ID: id}).Update("balance", gorm.Expr("balance - ?", 1)).Error
		}
		return db.Model(&gormAccount{}).Where("id = ?", id).
			Updates(map[string]any{"balance": gorm.Expr("balance - ?", 1)}).Error
	})
	dbtest.NoErrors(t, "gorm Update with gorm.Expr", errs)
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
	dbtest.Watchdog(t, 2*time.Minute)
	db := gormSafe(t, dbtest.Path(t), gorm.Config{})
	if err := db.AutoMigrate(&gormItem{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	errInner := errors.New("inner fails")
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
	dbtest.NoErrors(t, "gorm nested transactions", errs)
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
		dbtest.Watchdog(t, 2*time.Minute)
		db := gormSafe(t, dbtest.Path(t), gorm.Config{})
		if err := db.AutoMigrate(&gormTag{}); err != nil {
			t.Fatalf("AutoMigrate: %v", err)
		}
		errs := dbtest.Parallel(ormGoroutines, keys, func(g, i int) error {
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
		dbtest.NoErrors(t, "FirstOrCreate in a transaction", errs)
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
		dbtest.Watchdog(t, 2*time.Minute)
		db := gormSafe(t, dbtest.Path(t), gorm.Config{})
		if err := db.AutoMigrate(&gormTag{}); err != nil {
			t.Fatalf("AutoMigrate: %v", err)
		}
		var (
			mu  sync.Mutex
			ids = map[string]uint{}
		)
		errs := dbtest.Parallel(ormGoroutines, keys, func(g, i int) error {
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
		dbtest.NoErrors(t, "get-or-create with ON CONFLICT DO NOTHING", errs)
		var n int64
		if err := db.Model(&gormTag{}).Count(&n).Error; err != nil || n != keys || len(ids) != keys {
			t.Fatalf("%d tags, %d names seen, %v; want %d", n, len(ids), err, keys)
		}
	})
	t.Run("Bare", func(t *testing.T) {
		dbtest.Watchdog(t, 2*time.Minute)
		db := gormSafe(t, dbtest.Path(t), gorm.Config{})
		if err := db.AutoMigrate(&gormTag{}); err != nil {
			t.Fatalf("AutoMigrate: %v", err)
		}
		errs := dbtest.Parallel(ormGoroutines, keys, func(g, i int) error {
			var tag gormTag
			return db.Where(gormTag{Name: fmt.Sprint("tag", (g+i)%keys)}).FirstOrCreate(&tag).Error
		})
		for _, err := range errs {
			if c := dbtest.Code(err); c != 2067 { // SQLITE_CONSTRAINT_UNIQUE
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
	dbtest.Watchdog(t, 2*time.Minute)
	db := gormSafe(t, dbtest.Path(t), gorm.Config{})
	if err := db.AutoMigrate(&gormUser{}, &gormOrder{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	const orders = 3
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
	dbtest.NoErrors(t, "gorm associations", errs)
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
	dbtest.Watchdog(t, 2*time.Minute)
	db := gormSafe(t, dbtest.Path(t), gorm.Config{})
	if err := db.AutoMigrate(&gormTag{}, &gormItem{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	const keys, batch = 4, 25
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
	dbtest.NoErrors(t, "gorm upserts and batches", errs)
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
	dbtest.Watchdog(t, 2*time.Minute)
	dsn := dbtest.Path(t) + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	db := gormSafe(t, dsn, gorm.Config{})
	if err := db.AutoMigrate(&gormUser{}, &gormOrder{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		if i%3 == 2 {
			err := db.Create(&gormOrder{UserID: 1 << 30, Item: "orphan"}).Error
			if c := dbtest.Code(err); c != 787 {
				return fmt.Errorf("order for a missing user: %v (code %d), want SQLITE_CONSTRAINT_FOREIGNKEY (787)", err, c)
			}
			return nil
		}
		return db.Create(&gormUser{Name: "u", Orders: []gormOrder{{Item: "a"}}}).Error
	})
	dbtest.NoErrors(t, "gorm with foreign keys", errs)
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
	dbtest.Watchdog(t, 2*time.Minute)
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
	path := dbtest.Path(t)
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
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		time.Sleep(time.Millisecond)
		return app.Table("people").Create(&v1{Name: fmt.Sprint(g, "/", i), Age: i}).Error
	})
	wg.Wait()
	if migErr != nil {
		t.Fatalf("AutoMigrate while writing: %v", migErr)
	}
	dbtest.NoErrors(t, "gorm Create during AutoMigrate", errs)
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
	dbtest.Watchdog(t, time.Minute)
	db := gormSafe(t, dbtest.Path(t), gorm.Config{TranslateError: true})
	if err := db.AutoMigrate(&gormTag{}); err != nil {
		t.Fatalf("AutoMigrate: %v", err)
	}
	if err := db.Create(&gormTag{Name: "x"}).Error; err != nil {
		t.Fatal(err)
	}
	err := db.Create(&gormTag{Name: "x"}).Error
	if c := dbtest.Code(err); c != 2067 {
		t.Fatalf("duplicate Create returned %v (code %d), want SQLITE_CONSTRAINT_UNIQUE (2067)", err, c)
	}
}

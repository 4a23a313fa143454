package compat_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
	"xorm.io/xorm"
	"xorm.io/xorm/dialects"
	"xorm.io/xorm/log"
)

// xorm knows drivers by name: "sqlite-safe" needs one call, once per
// program, giving it the SQLite dialect xorm uses for "sqlite" and
// "sqlite3". Without it NewEngine fails with "unsupported driver name".
func init() {
	dialects.RegisterDriver("sqlite-safe", dialects.QueryDriver("sqlite3"))
}

type xormAccount struct {
	ID      int64  `xorm:"'id' pk autoincr"`
	Name    string `xorm:"unique notnull"`
	Balance int64  `xorm:"notnull"`
}

type xormTransfer struct {
	ID     int64 `xorm:"'id' pk autoincr"`
	FromID int64 `xorm:"notnull"`
	ToID   int64 `xorm:"notnull"`
	Amount int64 `xorm:"notnull"`
}

const (
	xormAccounts       = 8
	xormInitialBalance = 1000
)

// openXorm opens dsn with xorm on driver, silent, creates the tables with
// Sync and the accounts, each with the initial balance.
func openXorm(t *testing.T, driver, dsn string) *xorm.Engine {
	t.Helper()
	engine, err := xorm.NewEngine(driver, dsn)
	if err != nil {
		t.Fatalf("xorm.NewEngine(%q): %v", driver, err)
	}
	t.Cleanup(func() { engine.Close() })
	engine.SetLogger(log.DiscardLogger{})
	if err := engine.Sync(new(xormAccount), new(xormTransfer)); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	for i := range xormAccounts {
		if _, err := engine.Insert(&xormAccount{Name: fmt.Sprint("acct", i), Balance: xormInitialBalance}); err != nil {
			t.Fatalf("Insert account: %v", err)
		}
	}
	return engine
}

// xormTransferMoney moves money between two accounts in one xorm
// transaction (a Session with Begin and Commit): read both, update both,
// log the transfer.
func xormTransferMoney(engine *xorm.Engine, g, i int) error {
	from := int64(1 + (g+i)%xormAccounts)
	to := int64(1 + (g*3+i+1)%xormAccounts)
	if from == to {
		to = 1 + to%xormAccounts
	}
	amount := int64(1 + (g*i)%9)
	s := engine.NewSession()
	defer s.Close()
	if err := s.Begin(); err != nil {
		return err
	}
	var a, b xormAccount
	for _, acct := range []struct {
		id int64
		to *xormAccount
	}{{from, &a}, {to, &b}} {
		has, err := s.ID(acct.id).Get(acct.to)
		if err != nil {
			return err
		}
		if !has {
			return fmt.Errorf("account %d not found", acct.id)
		}
	}
	time.Sleep(ormPause)
	a.Balance -= amount
	b.Balance += amount
	for _, acct := range []*xormAccount{&a, &b} {
		if _, err := s.ID(acct.ID).Cols("balance").Update(acct); err != nil {
			return err
		}
	}
	if _, err := s.Insert(&xormTransfer{FromID: from, ToID: to, Amount: amount}); err != nil {
		return err
	}
	return s.Commit()
}

// xormTransfers runs the transfers from 16 goroutines and returns the
// errors and how many committed.
func xormTransfers(engine *xorm.Engine) (errs []error, committed int64) {
	var ok atomic.Int64
	errs = dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		err := xormTransferMoney(engine, g, i)
		if err == nil {
			ok.Add(1)
		}
		return err
	})
	return errs, ok.Load()
}

// checkXormLedger checks that each balance is the initial one plus what the
// transfer log says came in, less what went out, and that the log has the
// transfers that committed: a lost update or a half-applied transfer breaks
// it.
func checkXormLedger(t *testing.T, engine *xorm.Engine, wantTransfers int64) {
	t.Helper()
	var accounts []xormAccount
	if err := engine.OrderBy("id").Find(&accounts); err != nil {
		t.Fatalf("Find accounts: %v", err)
	}
	var transfers []xormTransfer
	if err := engine.Find(&transfers); err != nil {
		t.Fatalf("Find transfers: %v", err)
	}
	if int64(len(transfers)) != wantTransfers {
		t.Fatalf("%d transfers logged, want the %d that committed", len(transfers), wantTransfers)
	}
	want := map[int64]int64{}
	for _, tr := range transfers {
		want[tr.FromID] -= tr.Amount
		want[tr.ToID] += tr.Amount
	}
	var total int64
	for _, a := range accounts {
		total += a.Balance
		if a.Balance != xormInitialBalance+want[a.ID] {
			t.Errorf("account %d: balance %d, want %d from the transfer log (lost update)", a.ID, a.Balance, xormInitialBalance+want[a.ID])
		}
	}
	if len(accounts) != xormAccounts || total != xormAccounts*xormInitialBalance {
		t.Fatalf("%d accounts with a total of %d, want %d and %d", len(accounts), total, xormAccounts, xormAccounts*xormInitialBalance)
	}
}

// TestXormTransfer moves money between accounts in xorm transactions from
// 16 goroutines on sqlite-safe: no error, every balance matches the log.
func TestXormTransfer(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	engine := openXorm(t, "sqlite-safe", dbtest.Path(t))
	errs, committed := xormTransfers(engine)
	dbtest.NoErrors(t, "xorm transfers on sqlite-safe", errs)
	if committed != ormGoroutines*ormIterations {
		t.Fatalf("%d transfers committed, want %d", committed, ormGoroutines*ormIterations)
	}
	checkXormLedger(t, engine, committed)
}

// TestXormInsertAndTransaction inserts from 16 goroutines with xorm's
// Insert (which reads the id from LastInsertId) and, in the same
// goroutines, runs engine.Transaction closures that insert, read back and
// update: every row gets its own id, all are there, each updated once.
func TestXormInsertAndTransaction(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	engine := openXorm(t, "sqlite-safe", dbtest.Path(t))
	var (
		mu  sync.Mutex
		ids []int64
	)
	errUndo := errors.New("undo")
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		a := &xormAccount{Name: fmt.Sprintf("a%d/%d", g, i)}
		if _, err := engine.Insert(a); err != nil {
			return fmt.Errorf("Insert: %w", err)
		}
		var b xormAccount
		if _, err := engine.Transaction(func(s *xorm.Session) (any, error) {
			b = xormAccount{Name: fmt.Sprintf("b%d/%d", g, i)}
			if _, err := s.Insert(&b); err != nil {
				return nil, err
			}
			b.Balance = a.ID
			_, err := s.ID(b.ID).Cols("balance").Update(&b)
			return nil, err
		}); err != nil {
			return fmt.Errorf("Transaction: %w", err)
		}
		// A transaction that fails leaves nothing.
		if _, err := engine.Transaction(func(s *xorm.Session) (any, error) {
			if _, err := s.Insert(&xormAccount{Name: fmt.Sprintf("undone%d/%d", g, i)}); err != nil {
				return nil, err
			}
			return nil, errUndo
		}); !errors.Is(err, errUndo) {
			return fmt.Errorf("failing Transaction returned %v, want %v", err, errUndo)
		}
		if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
			return fmt.Errorf("ids %d and %d: want two distinct ids", a.ID, b.ID)
		}
		mu.Lock()
		ids = append(ids, a.ID, b.ID)
		mu.Unlock()
		return nil
	})
	dbtest.NoErrors(t, "xorm inserts and transactions", errs)
	want := 2 * ormGoroutines * ormIterations
	slices.Sort(ids)
	if n := len(slices.Compact(ids)); n != want {
		t.Fatalf("%d distinct ids, want %d", n, want)
	}
	if n, err := engine.Where("name GLOB '[ab][0-9]*'").Count(new(xormAccount)); err != nil || n != int64(want) {
		t.Fatalf("Count = %d, %v; want %d", n, err, want)
	}
	if n, err := engine.Where("name LIKE 'undone%'").Count(new(xormAccount)); err != nil || n != 0 {
		t.Fatalf("%d rows from failed transactions, %v; want 0", n, err)
	}
	// Each b row holds the id of its a row, written in its transaction.
	if n := dbtest.QueryInt(t, engine.DB().DB, `SELECT count(*) FROM xorm_account b JOIN xorm_account a
		ON a.id = b.balance AND a.name = 'a' || substr(b.name, 2) WHERE b.name LIKE 'b%'`); n != int64(want/2) {
		t.Fatalf("%d transaction rows point at their Insert's row, want %d", n, want/2)
	}
}

// TestXormControlPlainModernc runs the transfers of TestXormTransfer
// through xorm on plain modernc.org/sqlite (xorm's driver name "sqlite")
// with its defaults: they fail with "database is locked".
func TestXormControlPlainModernc(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	engine := openXorm(t, "sqlite", dbtest.Path(t))
	errs, committed := xormTransfers(engine)
	dbtest.OnlyBusy(t, "xorm transfers", errs)
	checkXormLedger(t, engine, committed)
}

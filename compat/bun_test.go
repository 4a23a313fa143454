package compat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
)

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
	db := bun.NewDB(dbtest.OpenSafe(t, path), sqlitedialect.New())
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
	dbtest.Watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db := openBun(t, dbtest.Path(t))
	var (
		mu  sync.Mutex
		ids []int64
	)
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
	dbtest.NoErrors(t, "bun inserts", errs)
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
	dbtest.Watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db := openBun(t, dbtest.Path(t))
	const accounts, initial = 8, 1000
	for i := range accounts {
		if _, err := db.NewInsert().Model(&bunAccount{Name: fmt.Sprint("acct", i), Balance: initial}).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	errUndo := errors.New("undo")
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
	dbtest.NoErrors(t, "bun RunInTx", errs)

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
	dbtest.Watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db := openBun(t, dbtest.Path(t))
	const keys = 4
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
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
	dbtest.NoErrors(t, "bun bulk inserts and upserts", errs)
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

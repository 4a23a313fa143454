package compat_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/schema"
	"entgo.io/ent/dialect/sql/sqlgraph"
	"entgo.io/ent/schema/field"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
)

// ent's generated client is opened on sqlite-safe with a driver made by
// entsql.OpenDB(dialect.SQLite, db) (then ent.NewClient(ent.Driver(drv))).
// entsql.Open("sqlite-safe", dsn) would take the driver name for the
// dialect, which ent does not know: its migration then fails with
// `sql/schema: unsupported dialect "sqlite-safe"`. These tests use no
// generated code: they call what it calls, the Atlas migration
// (schema.NewMigrate, as client.Schema.Create does), sqlgraph.CreateNode and
// UpdateNode (as Create and UpdateOne do), and transactions from drv.Tx (as
// client.Tx does) with ent's SQL builder.

// entTables are the tables ent would generate for an Account with a unique
// name and a balance, and a Transfer with edges to two accounts.
func entTables() []*schema.Table {
	accountColumns := []*schema.Column{
		{Name: "id", Type: field.TypeInt, Increment: true},
		{Name: "name", Type: field.TypeString, Unique: true},
		{Name: "balance", Type: field.TypeInt64, Default: 0},
	}
	accounts := &schema.Table{Name: "accounts", Columns: accountColumns, PrimaryKey: accountColumns[:1]}
	transferColumns := []*schema.Column{
		{Name: "id", Type: field.TypeInt, Increment: true},
		{Name: "amount", Type: field.TypeInt64},
		{Name: "from_id", Type: field.TypeInt},
		{Name: "to_id", Type: field.TypeInt},
	}
	transfers := &schema.Table{
		Name: "transfers", Columns: transferColumns, PrimaryKey: transferColumns[:1],
		ForeignKeys: []*schema.ForeignKey{
			{Symbol: "transfers_accounts_from", Columns: transferColumns[2:3], RefTable: accounts,
				RefColumns: accountColumns[:1], OnDelete: schema.NoAction},
			{Symbol: "transfers_accounts_to", Columns: transferColumns[3:4], RefTable: accounts,
				RefColumns: accountColumns[:1], OnDelete: schema.NoAction},
		},
	}
	return []*schema.Table{accounts, transfers}
}

const (
	entAccounts       = 8
	entInitialBalance = 1000
)

// openEnt opens path with driver, foreign keys on as ent's migration
// requires, makes the ent driver with entsql.OpenDB, creates the tables
// with ent's migration and the accounts with CreateNode.
func openEnt(t *testing.T, driver, path string) *entsql.Driver {
	t.Helper()
	ctx := context.Background()
	drv := entsql.OpenDB(dialect.SQLite, dbtest.Open(t, driver, "file:"+path+"?_pragma=foreign_keys(1)"))
	m, err := schema.NewMigrate(drv)
	if err != nil {
		t.Fatalf("schema.NewMigrate: %v", err)
	}
	if err := m.Create(ctx, entTables()...); err != nil {
		t.Fatalf("ent migration: %v", err)
	}
	for i := range entAccounts {
		if _, err := entCreateAccount(ctx, drv, fmt.Sprint("acct", i), entInitialBalance); err != nil {
			t.Fatalf("CreateNode: %v", err)
		}
	}
	return drv
}

// entCreateAccount creates an account as ent's generated Create does, and
// returns its id.
func entCreateAccount(ctx context.Context, drv dialect.Driver, name string, balance int64) (int64, error) {
	spec := sqlgraph.NewCreateSpec("accounts", sqlgraph.NewFieldSpec("id", field.TypeInt))
	spec.SetField("name", field.TypeString, name)
	spec.SetField("balance", field.TypeInt64, balance)
	if err := sqlgraph.CreateNode(ctx, drv, spec); err != nil {
		return 0, err
	}
	id, ok := spec.ID.Value.(int64)
	if !ok {
		return 0, fmt.Errorf("CreateNode gave the id %v (%T), want an int64", spec.ID.Value, spec.ID.Value)
	}
	return id, nil
}

// entQueryInt64 runs the builder's query in tx and scans one integer.
func entQueryInt64(ctx context.Context, tx dialect.ExecQuerier, b entsql.Querier) (int64, error) {
	q, args := b.Query()
	var rows entsql.Rows
	if err := tx.Query(ctx, q, args, &rows); err != nil {
		return 0, err
	}
	defer rows.Close()
	return entsql.ScanInt64(rows)
}

// entExec runs the builder's statement in tx.
func entExec(ctx context.Context, tx dialect.ExecQuerier, b entsql.Querier) error {
	q, args := b.Query()
	return tx.Exec(ctx, q, args, nil)
}

// entTransferMoney moves money between two accounts in a transaction from
// drv.Tx, with ent's SQL builder: read both balances, write both, log the
// transfer.
func entTransferMoney(ctx context.Context, drv *entsql.Driver, g, i int) (err error) {
	from := int64(1 + (g+i)%entAccounts)
	to := int64(1 + (g*3+i+1)%entAccounts)
	if from == to {
		to = 1 + to%entAccounts
	}
	amount := int64(1 + (g*i)%9)
	tx, err := drv.Tx(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	b := entsql.Dialect(dialect.SQLite)
	balance := func(id int64) (int64, error) {
		return entQueryInt64(ctx, tx, b.Select("balance").From(b.Table("accounts")).Where(entsql.EQ("id", id)))
	}
	a, err := balance(from)
	if err != nil {
		return err
	}
	c, err := balance(to)
	if err != nil {
		return err
	}
	time.Sleep(ormPause)
	if err := entExec(ctx, tx, b.Update("accounts").Set("balance", a-amount).Where(entsql.EQ("id", from))); err != nil {
		return err
	}
	if err := entExec(ctx, tx, b.Update("accounts").Set("balance", c+amount).Where(entsql.EQ("id", to))); err != nil {
		return err
	}
	if err := entExec(ctx, tx, b.Insert("transfers").Columns("amount", "from_id", "to_id").Values(amount, from, to)); err != nil {
		return err
	}
	return tx.Commit()
}

// entTransfers runs the transfers from 16 goroutines and returns the errors
// and how many committed.
func entTransfers(drv *entsql.Driver) (errs []error, committed int64) {
	var ok atomic.Int64
	errs = dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		err := entTransferMoney(context.Background(), drv, g, i)
		if err == nil {
			ok.Add(1)
		}
		return err
	})
	return errs, ok.Load()
}

// checkEntLedger checks that each balance is the initial one plus what the
// transfer log says came in, less what went out, and that the log has the
// transfers that committed.
func checkEntLedger(t *testing.T, drv *entsql.Driver, wantTransfers int64) {
	t.Helper()
	db := drv.DB()
	if n := dbtest.QueryInt(t, db, "SELECT count(*) FROM transfers"); n != wantTransfers {
		t.Fatalf("%d transfers logged, want the %d that committed", n, wantTransfers)
	}
	if n := dbtest.QueryInt(t, db, `SELECT count(*) FROM accounts a WHERE a.balance != ? +
		coalesce((SELECT sum(amount) FROM transfers WHERE to_id = a.id), 0) -
		coalesce((SELECT sum(amount) FROM transfers WHERE from_id = a.id), 0)`, entInitialBalance); n != 0 {
		t.Errorf("%d accounts whose balance does not match the transfer log (lost update)", n)
	}
	if n := dbtest.QueryInt(t, db, "SELECT sum(balance) FROM accounts"); n != entAccounts*entInitialBalance {
		t.Fatalf("total %d, want %d", n, entAccounts*entInitialBalance)
	}
}

// TestEntTransfer creates the schema with ent's migration on sqlite-safe
// and moves money between accounts in ent transactions from 16 goroutines:
// no error, every transfer committed, every balance matches the log.
func TestEntTransfer(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	drv := openEnt(t, "sqlite-safe", dbtest.Path(t))
	errs, committed := entTransfers(drv)
	dbtest.NoErrors(t, "ent transfers on sqlite-safe", errs)
	if committed != ormGoroutines*ormIterations {
		t.Fatalf("%d transfers committed, want %d", committed, ormGoroutines*ormIterations)
	}
	checkEntLedger(t, drv, committed)
	// The foreign keys ent's migration made are enforced.
	err := entExec(context.Background(), drv, entsql.Dialect(dialect.SQLite).
		Insert("transfers").Columns("amount", "from_id", "to_id").Values(1, 1<<30, 1))
	if c := dbtest.Code(err); c != 787 {
		t.Fatalf("a transfer from a missing account: %v (code %d), want SQLITE_CONSTRAINT_FOREIGNKEY (787)", err, c)
	}
}

// TestEntCreateAndUpdate creates accounts from 16 goroutines as ent's
// generated Create does (sqlgraph.CreateNode) and adds to one balance as
// UpdateOne(...).AddBalance(1) does (sqlgraph.UpdateNode, in its own
// transaction): every account gets its own id, all are there, and every
// addition lands once.
func TestEntCreateAndUpdate(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	ctx := context.Background()
	drv := openEnt(t, "sqlite-safe", dbtest.Path(t))
	var (
		mu  sync.Mutex
		ids []int64
	)
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		id, err := entCreateAccount(ctx, drv, fmt.Sprintf("a%d/%d", g, i), int64(g))
		if err != nil {
			return fmt.Errorf("CreateNode: %w", err)
		}
		spec := sqlgraph.NewUpdateSpec("accounts", []string{"id", "name", "balance"},
			sqlgraph.NewFieldSpec("id", field.TypeInt))
		spec.Node.ID.Value = 1
		spec.AddField("balance", field.TypeInt64, 1)
		if err := sqlgraph.UpdateNode(ctx, drv, spec); err != nil {
			return fmt.Errorf("UpdateNode: %w", err)
		}
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		return nil
	})
	dbtest.NoErrors(t, "ent CreateNode and UpdateNode", errs)
	want := ormGoroutines * ormIterations
	slices.Sort(ids)
	if n := len(slices.Compact(ids)); n != want {
		t.Fatalf("%d distinct ids, want %d", n, want)
	}
	if n := dbtest.QueryInt(t, drv.DB(), "SELECT count(*) FROM accounts WHERE name GLOB 'a[0-9]*'"); n != int64(want) {
		t.Fatalf("%d accounts created, want %d", n, want)
	}
	if n := dbtest.QueryInt(t, drv.DB(), "SELECT balance FROM accounts WHERE id = 1"); n != int64(entInitialBalance+want) {
		t.Fatalf("balance %d after %d additions of 1 to %d: %d lost", n, want, entInitialBalance, int64(entInitialBalance+want)-n)
	}
}

// TestEntControlPlainModernc runs the transfers of TestEntTransfer through
// ent on plain modernc.org/sqlite with its defaults: they fail with
// "database is locked".
func TestEntControlPlainModernc(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	drv := openEnt(t, "sqlite", dbtest.Path(t))
	errs, committed := entTransfers(drv)
	dbtest.OnlyBusy(t, "ent transfers", errs)
	checkEntLedger(t, drv, committed)
}

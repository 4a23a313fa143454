//go:build linux

// Package ormtest runs the tools applications use (sqlx, gorm, bun, goose) on a dqlite:// DSN, on a
// real three-node cluster. It is a package of its own because gorm.io/driver/sqlite imports
// github.com/mattn/go-sqlite3, which the engine's own packages keep out of what they compile
// (without cgo it compiles as a stub, and nothing here calls it).
package ormtest

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	_ "github.com/sqlitesafe/sqlitesafe/dqlite" // registers dqlite:// with sqlite-safe
	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
)

func dsn(c *cluster.Cluster, name string) string {
	return "dqlite://" + strings.Join(c.Addresses(), ",") + "/" + name
}

type item struct {
	ID   int64  `db:"id" gorm:"primaryKey"`
	Name string `db:"name"`
	N    int    `db:"n"`
}

func TestTools(t *testing.T) {
	c := cluster.Start(t, 3)
	ctx := context.Background()

	t.Run("sqlx", func(t *testing.T) {
		db, err := sqlx.Open("sqlite-safe", dsn(c, "sqlx.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.MustExec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER NOT NULL)")
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					if _, err := db.NamedExecContext(ctx, "INSERT INTO items (name, n) VALUES (:name, :n)", item{Name: "g", N: g*100 + i}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var got []item
		if err := db.SelectContext(ctx, &got, "SELECT id, name, n FROM items ORDER BY n"); err != nil {
			t.Fatal(err)
		}
		if len(got) != 320 {
			t.Fatalf("%d items, want 320", len(got))
		}
		tx := db.MustBeginTx(ctx, nil)
		var it item
		if err := tx.GetContext(ctx, &it, "SELECT id, name, n FROM items WHERE n = ?", 1505); err != nil {
			t.Fatal(err)
		}
		tx.MustExecContext(ctx, "UPDATE items SET n = n + 1 WHERE id = ?", it.ID)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.GetContext(ctx, &n, "SELECT n FROM items WHERE id = ?", it.ID); err != nil || n != 1506 {
			t.Fatalf("n = %d, %v; want 1506", n, err)
		}
	})

	for _, skip := range []bool{false, true} {
		name := "gorm"
		if skip {
			name = "gorm-SkipDefaultTransaction"
		}
		t.Run(name, func(t *testing.T) {
			db, err := gorm.Open(sqlite.New(sqlite.Config{DriverName: "sqlite-safe", DSN: dsn(c, name+".db")}),
				&gorm.Config{SkipDefaultTransaction: skip, Logger: logger.Default.LogMode(logger.Silent)})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.AutoMigrate(&item{}); err != nil {
				t.Fatal(err)
			}
			// gorm's Create uses INSERT ... RETURNING: in autocommit (SkipDefaultTransaction)
			// it committed nothing and then aborted a dqlite 1.11 leader through plain go-dqlite.
			for i := range 5 {
				it := item{Name: "x", N: i}
				if err := db.Create(&it).Error; err != nil {
					t.Fatal(err)
				}
				if it.ID != int64(i+1) {
					t.Fatalf("Create gave id %d, want %d", it.ID, i+1)
				}
			}
			if err := db.Model(&item{}).Where("n = ?", 3).Update("name", "three").Error; err != nil {
				t.Fatal(err)
			}
			var got []item
			if err := db.Order("id").Find(&got).Error; err != nil {
				t.Fatal(err)
			}
			if len(got) != 5 || got[3].Name != "three" {
				t.Fatalf("items %+v", got)
			}
			err = db.Transaction(func(tx *gorm.DB) error {
				return tx.Create(&item{Name: "in tx", N: 99}).Error
			})
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			db.Model(&item{}).Count(&n)
			if n != 6 {
				t.Fatalf("%d items, want 6", n)
			}
			for i, node := range c.Nodes {
				if !node.Running() {
					t.Fatalf("node %d is down: %s", i+1, node.Log())
				}
			}
		})
	}

	t.Run("bun", func(t *testing.T) {
		sqldb, err := sql.Open("sqlite-safe", dsn(c, "bun.db"))
		if err != nil {
			t.Fatal(err)
		}
		db := bun.NewDB(sqldb, sqlitedialect.New())
		defer db.Close()
		type account struct {
			bun.BaseModel `bun:"table:accounts"`
			ID            int64  `bun:"id,pk,autoincrement"`
			Name          string `bun:"name,notnull,unique"`
		}
		if _, err := db.NewCreateTable().Model((*account)(nil)).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		// bun inserts with INSERT ... RETURNING "id" through QueryContext, in autocommit.
		var wg sync.WaitGroup
		ids := make([]int64, 8)
		errs := make([]error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := &account{Name: string(rune('a' + g))}
				_, errs[g] = db.NewInsert().Model(a).Exec(ctx)
				ids[g] = a.ID
			}()
		}
		wg.Wait()
		seen := map[int64]bool{}
		for g := range 8 {
			if errs[g] != nil || ids[g] == 0 || seen[ids[g]] {
				t.Fatalf("insert %d: id %d, %v (ids %v)", g, ids[g], errs[g], ids)
			}
			seen[ids[g]] = true
		}
		n, err := db.NewSelect().Model((*account)(nil)).Count(ctx)
		if err != nil || n != 8 {
			t.Fatalf("%d accounts, %v; want 8", n, err)
		}
		for i, node := range c.Nodes {
			if !node.Running() {
				t.Fatalf("node %d is down: %s", i+1, node.Log())
			}
		}
	})

	t.Run("goose", func(t *testing.T) {
		db, err := sql.Open("sqlite-safe", dsn(c, "goose.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := goose.SetDialect("sqlite3"); err != nil {
			t.Fatal(err)
		}
		goose.SetLogger(goose.NopLogger())
		dir := t.TempDir()
		for name, body := range map[string]string{
			"00001_items.sql": "-- +goose Up\nCREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\n-- +goose Down\nDROP TABLE items;\n",
			"00002_seed.sql":  "-- +goose Up\nINSERT INTO items (name) VALUES ('a');\nINSERT INTO items (name) VALUES ('b');\n-- +goose Down\nDELETE FROM items;\n",
		} {
			writeFile(t, dir+"/"+name, body)
		}
		if err := goose.UpContext(ctx, db, dir); err != nil {
			t.Fatal(err)
		}
		v, err := goose.GetDBVersionContext(ctx, db)
		if err != nil || v != 2 {
			t.Fatalf("version %d, %v; want 2", v, err)
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM items").Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d items, %v; want 2", n, err)
		}
		if err := goose.DownContext(ctx, db, dir); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT count(*) FROM items").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d items after down, %v; want 0", n, err)
		}
	})
}

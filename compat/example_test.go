package compat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"

	"github.com/jmoiron/sqlx"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Use sqlx with the driver name: nothing else to call. sqlx does not know
// "sqlite-safe" and so leaves '?' placeholders as they are, which is what
// SQLite takes; Named, In and Rebind work.
func Example_sqlx() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := sqlx.Open("sqlite-safe", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.MustExec("CREATE TABLE page (name TEXT PRIMARY KEY, views INTEGER NOT NULL)")

	type Page struct {
		Name  string `db:"name"`
		Views int    `db:"views"`
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Get or create, then count the view: one transaction.
			tx := db.MustBegin()
			defer tx.Rollback()
			p := Page{Name: fmt.Sprint("/page", i%4)}
			if err := tx.Get(&p, "SELECT * FROM page WHERE name = ?", p.Name); errors.Is(err, sql.ErrNoRows) {
				tx.MustExec("INSERT INTO page (name, views) VALUES (?, 0)", p.Name)
			} else if err != nil {
				log.Fatal(err)
			}
			p.Views++
			if _, err := tx.NamedExec("UPDATE page SET views = :views WHERE name = :name", p); err != nil {
				log.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()

	var pages []Page
	if err := db.Select(&pages, "SELECT * FROM page ORDER BY name"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(pages)
	// Output: [{/page0 10} {/page1 10} {/page2 10} {/page3 10}]
}

// Use gorm with gorm.io/driver/sqlite and the driver name in its Config
// (or a *sql.DB from sql.Open("sqlite-safe", ...) in Config.Conn). It
// builds with CGO_ENABLED=0.
func Example_gorm() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := gorm.Open(sqlite.New(sqlite.Config{
		DriverName: "sqlite-safe",
		DSN:        filepath.Join(dir, "app.db"),
	}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	type Account struct {
		ID      uint
		Name    string `gorm:"uniqueIndex"`
		Balance int
	}
	if err := db.AutoMigrate(&Account{}); err != nil {
		log.Fatal(err)
	}
	if err := db.Create([]*Account{{Name: "alice", Balance: 100}, {Name: "bob", Balance: 100}}).Error; err != nil {
		log.Fatal(err)
	}

	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Read both balances, write both: no "database is locked",
			// no lost update.
			err := db.Transaction(func(tx *gorm.DB) error {
				var alice, bob Account
				if err := tx.First(&alice, "name = ?", "alice").Error; err != nil {
					return err
				}
				if err := tx.First(&bob, "name = ?", "bob").Error; err != nil {
					return err
				}
				alice.Balance -= 2
				bob.Balance += 2
				if err := tx.Save(&alice).Error; err != nil {
					return err
				}
				return tx.Save(&bob).Error
			})
			if err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()

	var accounts []Account
	if err := db.Order("name").Find(&accounts).Error; err != nil {
		log.Fatal(err)
	}
	for _, a := range accounts {
		fmt.Println(a.Name, a.Balance)
	}
	// Output:
	// alice 40
	// bob 160
}

// Use bun on a *sql.DB from sql.Open("sqlite-safe", ...) with bun's SQLite
// dialect.
func Example_bun() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	sqldb, err := sql.Open("sqlite-safe", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	db := bun.NewDB(sqldb, sqlitedialect.New())
	defer db.Close()

	type Post struct {
		ID    int64 `bun:",pk,autoincrement"`
		Title string
		Likes int
	}
	ctx := context.Background()
	if _, err := db.NewCreateTable().Model((*Post)(nil)).IfNotExists().Exec(ctx); err != nil {
		log.Fatal(err)
	}
	post := &Post{Title: "hello"}
	if _, err := db.NewInsert().Model(post).Exec(ctx); err != nil { // INSERT ... RETURNING "id"
		log.Fatal(err)
	}

	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				var p Post
				if err := tx.NewSelect().Model(&p).Where("id = ?", post.ID).Scan(ctx); err != nil {
					return err
				}
				p.Likes++
				_, err := tx.NewUpdate().Model(&p).WherePK().Exec(ctx)
				return err
			})
			if err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()

	var p Post
	if err := db.NewSelect().Model(&p).Where("id = ?", post.ID).Scan(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.ID, p.Title, p.Likes)
	// Output: 1 hello 30
}

package sqlitesafe_test

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
	"github.com/sqlitesafe/sqlitesafe"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Open a database with sql.Open: WAL, a 5 s busy timeout, synchronous=NORMAL
// and BEGIN IMMEDIATE come by default, and any number of goroutines can
// write.
func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := sql.Open("sqlite-safe", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	if _, err := db.Exec("CREATE TABLE visits(n INTEGER)"); err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO visits VALUES (0)"); err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A read-modify-write transaction: no "database is locked",
			// no lost update.
			tx, err := db.BeginTx(context.Background(), nil)
			if err != nil {
				log.Fatal(err)
			}
			defer tx.Rollback()
			var n int
			if err := tx.QueryRow("SELECT n FROM visits").Scan(&n); err != nil {
				log.Fatal(err)
			}
			if _, err := tx.Exec("UPDATE visits SET n = ?", n+1); err != nil {
				log.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()

	var n int
	var mode string
	db.QueryRow("SELECT n FROM visits").Scan(&n)
	db.QueryRow("PRAGMA journal_mode").Scan(&mode)
	fmt.Println(n, mode)
	// Output: 50 wal
}

// Build the configuration in code and open it with sql.OpenDB.
func ExampleNewConnector() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := &sqlitesafe.Config{
		Path:        filepath.Join(dir, "app.db"),
		ForeignKeys: sqlitesafe.ForeignKeysOn,
		Synchronous: sqlitesafe.SynchronousFull,
		Pragmas:     []string{"cache_size(-20000)"},
	}
	connector, err := sqlitesafe.NewConnector(cfg)
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	var fk, sync int
	db.QueryRow("PRAGMA foreign_keys").Scan(&fk)
	db.QueryRow("PRAGMA synchronous").Scan(&sync)
	fmt.Println(fk, sync)
	// Output: 1 2
}

// ParseDSN and FormatDSN convert between a DSN and a Config.
func ExampleParseDSN() {
	cfg, err := sqlitesafe.ParseDSN("file:/var/lib/app/app.db?_timeout=10000&_fk=1&_max_readers=8")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Path, cfg.BusyTimeout, cfg.ForeignKeys, cfg.MaxReaders)
	fmt.Println(cfg.FormatDSN())

	_, err = sqlitesafe.ParseDSN("app.db?_txlock=sometimes")
	fmt.Println(err)
	// Output:
	// /var/lib/app/app.db 10s on 8
	// /var/lib/app/app.db?_busy_timeout=10000&_foreign_keys=on&_max_readers=8
	// sqlitesafe: invalid value "sometimes" for "_txlock" (want deferred, immediate or exclusive)
}

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

// Read the driver's metrics from any *sql.DB it opened: what holds the write
// lock, how long writers waited, SQLite's busy errors.
func ExampleGetStats() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite-safe", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	if _, err := db.Exec("CREATE TABLE events(id INTEGER PRIMARY KEY, kind TEXT)"); err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.Exec("INSERT INTO events(kind) VALUES ('signup')"); err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()

	st, err := sqlitesafe.GetStats(db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("writes:", st.Writes)
	fmt.Println("held now:", st.Held, "waiting:", st.QueueDepth)
	fmt.Println("lock timeouts:", st.LockTimeouts, "busy errors:", len(st.Busy))
	// Output:
	// writes: 11
	// held now: false waiting: 0
	// lock timeouts: 0 busy errors: 0
}

// Back up a live database while it is written, then check the copy.
func ExampleBackup() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite-safe", filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE notes(body TEXT); INSERT INTO notes VALUES ('a'), ('b'), ('c')"); err != nil {
		log.Fatal(err)
	}

	// Writers go on meanwhile; the copy holds what was committed before.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			if _, err := db.Exec("INSERT INTO notes VALUES ('later')"); err != nil {
				log.Fatal(err)
			}
		}
	}()
	dst := filepath.Join(dir, "backup.db")
	if err := sqlitesafe.Backup(context.Background(), db, dst); err != nil {
		log.Fatal(err)
	}
	<-done

	copyDB, err := sql.Open("sqlite-safe", dst+"?mode=ro")
	if err != nil {
		log.Fatal(err)
	}
	defer copyDB.Close()
	var check string
	var early int
	if err := copyDB.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil {
		log.Fatal(err)
	}
	if err := copyDB.QueryRow("SELECT count(*) FROM notes WHERE body != 'later'").Scan(&early); err != nil {
		log.Fatal(err)
	}
	fmt.Println("integrity:", check, "rows from before the backup:", early)
	// Output: integrity: ok rows from before the backup: 3
}

// Checkpoint the WAL now, for example before copying the file by other
// means, and see whether a reader blocked it.
func ExampleCheckpoint() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite-safe", path)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t(x); INSERT INTO t VALUES (1)"); err != nil {
		log.Fatal(err)
	}
	r, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate)
	if err != nil {
		log.Fatal(err)
	}
	wal, err := os.Stat(path + "-wal")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("blocked by a reader:", r.Busy, "-wal bytes:", wal.Size())
	// Output: blocked by a reader: false -wal bytes: 0
}

package sqlitesafe_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"

	"github.com/sqlitesafe/sqlitesafe"
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

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

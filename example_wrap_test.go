package sqlitesafe_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/sqlitesafe/sqlitesafe"
)

// The metrics of a handle a driver wrapper hides: with otelsql, sqlmw or
// sqlhooks in front, db.Driver() is the wrapper's and GetStats(db) returns
// ErrNotSQLiteSafe, but the file's path reaches the handle.
func ExampleGetStatsFile() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.db")

	// Here a wrapper's driver, "test-open-only", that wraps only
	// driver.Driver, as sqlhooks does.
	db, err := sql.Open("test-open-only", path)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"CREATE TABLE t(x)", "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)"} {
		if _, err := db.Exec(q); err != nil {
			log.Fatal(err)
		}
	}

	_, err = sqlitesafe.GetStats(db)
	fmt.Println("GetStats:", errors.Is(err, sqlitesafe.ErrNotSQLiteSafe))
	st, err := sqlitesafe.GetStatsFile(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("writes:", st.Writes)
	// Output:
	// GetStats: true
	// writes: 3
}

// Publishing the metrics of every open file with expvar, under
// /debug/vars.
func ExampleExpvarStats() {
	if expvar.Get("sqlitesafe") == nil { // Publish panics if the name is taken
		expvar.Publish("sqlitesafe", expvar.Func(sqlitesafe.ExpvarStats))
	}

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
	if _, err := db.Exec("CREATE TABLE t(x)"); err != nil {
		log.Fatal(err)
	}
	st, err := sqlitesafe.GetStats(db)
	if err != nil {
		log.Fatal(err)
	}

	// What /debug/vars shows under "sqlitesafe": a JSON object by file.
	var files map[string]sqlitesafe.Stats
	if err := json.Unmarshal([]byte(expvar.Get("sqlitesafe").String()), &files); err != nil {
		log.Fatal(err)
	}
	fmt.Println("writes:", files[st.Path].Writes)
	// Output:
	// writes: 1
}

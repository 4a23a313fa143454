package prometheus_test

import (
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sqlitesafe/sqlitesafe"
	ssprom "github.com/sqlitesafe/sqlitesafe/prometheus"
)

// Registering the collector; promhttp.HandlerFor(reg, ...) then serves the
// metrics of every open database file.
func ExampleNewCollector() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(ssprom.NewCollector())

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

	mfs, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sqlitesafe_writes_total" {
			continue
		}
		for _, m := range mf.Metric {
			if m.Label[0].GetValue() == st.Path {
				fmt.Println(mf.GetName(), mf.GetType(), m.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// sqlitesafe_writes_total COUNTER 1
}

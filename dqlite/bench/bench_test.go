//go:build linux

package bench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
	_ "github.com/sqlitesafe/sqlitesafe/dqlite" // registers the dqlite:// scheme

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
)

// impl is one way of opening a database on the cluster.
type impl struct {
	name string
	open func(b *testing.B, c *cluster.Cluster, db string) *sql.DB
	// serialise: every call takes one mutex, as an application that knows go-dqlite fails
	// concurrent writers with "database is locked" would write it.
	serialise bool
}

var impls = []impl{
	{name: "go-dqlite", open: openPlain},
	{name: "go-dqlite-mutex", open: openPlain, serialise: true},
	{name: "sqlite-safe", open: openSafe},
}

func openPlain(b *testing.B, c *cluster.Cluster, name string) *sql.DB {
	return c.OpenPlain(b, name)
}

func openSafe(b *testing.B, c *cluster.Cluster, name string) *sql.DB {
	db, err := sql.Open("sqlite-safe", "dqlite://"+strings.Join(c.Addresses(), ",")+"/"+name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// numAccounts is the number of rows the read-modify-write transactions fight over.
const numAccounts = 10

// workload is what each call does, and how the database is checked against the calls that
// succeeded.
type workload struct {
	name   string
	schema []string
	call   func(ctx context.Context, db *sql.DB, g, i int) error
	// committed is what the database holds: the rows inserted, or the sum of the balances.
	committed string
}

var workloads = []workload{
	{
		name:   "insert",
		schema: []string{"CREATE TABLE t (g INTEGER NOT NULL, i INTEGER NOT NULL, PRIMARY KEY (g, i))"},
		call: func(ctx context.Context, db *sql.DB, g, i int) error {
			_, err := db.ExecContext(ctx, "INSERT INTO t (g, i) VALUES (?, ?)", g, i)
			return err
		},
		committed: "SELECT count(*) FROM t",
	},
	{
		name: "rmw",
		schema: []string{
			"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
			fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) "+
				"INSERT INTO accounts (id, balance) SELECT i, 0 FROM n", numAccounts),
		},
		call: func(ctx context.Context, db *sql.DB, _, _ int) error {
			id := 1 + rand.IntN(numAccounts)
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			var balance int64
			if err := tx.QueryRowContext(ctx, "SELECT balance FROM accounts WHERE id = ?", id).Scan(&balance); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = ? WHERE id = ?", balance+1, id); err != nil {
				return err
			}
			return tx.Commit()
		},
		committed: "SELECT COALESCE(SUM(balance), 0) FROM accounts",
	},
}

// TestMain drops what the drivers log through log/slog (sqlite-safe's warnings of writers that
// waited long for the lock, many under 32 goroutines), so that they do not bury the results.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// dbSeq numbers the databases: each run of a sub-benchmark writes a fresh one, so that its final
// count is its own.
var dbSeq atomic.Int64

// BenchmarkCluster: autocommit inserts and read-modify-write transactions from 1, 8 and 32
// goroutines, through plain go-dqlite, go-dqlite behind a mutex and sqlite-safe's dqlite://, on
// one three-node cluster on 127.0.0.1. Each call is made once (no retry); b.N calls are shared
// by the goroutines. Metrics: rows/s (rows committed, counted in the database afterwards, per
// second), commits/s (transactions the cluster committed: one per successful call, or, for
// sqlite-safe, from its Stats, which count a group commit once), p99-ms (of the successful
// calls), errors (failed calls, per run) and err-% (of the calls). The database must hold
// exactly the successful calls.
func BenchmarkCluster(b *testing.B) {
	c := cluster.Start(b, 3)
	for _, im := range impls {
		for _, w := range workloads {
			for _, g := range []int{1, 8, 32} {
				b.Run(fmt.Sprintf("%s/%s/g=%d", im.name, w.name, g), func(b *testing.B) {
					benchmark(b, c, im, w, g)
				})
			}
		}
	}
}

func benchmark(b *testing.B, c *cluster.Cluster, im impl, w workload, goroutines int) {
	name := fmt.Sprintf("bench-%s-%s-g%d-%d", im.name, w.name, goroutines, dbSeq.Add(1))
	db := im.open(b, c, name)
	verify := c.OpenPlain(b, name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, q := range w.schema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	var before sqlitesafe.Stats
	haveStats := false
	if im.name == "sqlite-safe" {
		if s, err := sqlitesafe.GetStats(db); err == nil {
			before, haveStats = s, true
		}
	}

	var (
		next    atomic.Int64
		ok      atomic.Int64
		failed  atomic.Int64
		mu      sync.Mutex // im.serialise
		latMu   sync.Mutex
		lats    []time.Duration
		firstMu sync.Mutex
		first   error
		wg      sync.WaitGroup
	)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for g := range goroutines {
		wg.Go(func() {
			var mine []time.Duration
			for i := int(next.Add(1)); i <= b.N; i = int(next.Add(1)) {
				t0 := time.Now()
				if im.serialise {
					mu.Lock()
				}
				err := w.call(ctx, db, g, i)
				if im.serialise {
					mu.Unlock()
				}
				if err != nil {
					failed.Add(1)
					firstMu.Lock()
					if first == nil {
						first = err
					}
					firstMu.Unlock()
					continue
				}
				ok.Add(1)
				mine = append(mine, time.Since(t0))
			}
			latMu.Lock()
			lats = append(lats, mine...)
			latMu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	var committed int64
	if err := verify.QueryRowContext(ctx, w.committed).Scan(&committed); err != nil {
		b.Fatal(err)
	}
	if committed != ok.Load() {
		b.Fatalf("%d calls succeeded (%d failed) but the database holds %d", ok.Load(), failed.Load(), committed)
	}
	commits := float64(ok.Load())
	if haveStats {
		after, err := sqlitesafe.GetStats(db)
		if err != nil {
			b.Fatal(err)
		}
		writes := after.Writes - before.Writes
		grouped := after.GroupedWrites - before.GroupedWrites
		commits = float64(writes - grouped + after.GroupCommits - before.GroupCommits)
	}
	slices.Sort(lats)
	var p99 time.Duration
	if len(lats) > 0 {
		p99 = lats[min(len(lats)-1, max(0, (len(lats)*99+99)/100-1))]
	}
	b.ReportMetric(float64(committed)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(commits/elapsed.Seconds(), "commits/s")
	b.ReportMetric(float64(p99)/float64(time.Millisecond), "p99-ms")
	b.ReportMetric(float64(failed.Load()), "errors")
	b.ReportMetric(100*float64(failed.Load())/float64(b.N), "err-%")
	if first != nil && b.N > 1 {
		b.Logf("N=%d: %d failed, the first: %v", b.N, failed.Load(), first)
	}
}

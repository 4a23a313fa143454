//go:build linux

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/launch"

	dqdriver "github.com/canonical/go-dqlite/driver"
)

// numAccounts is the number of accounts, and of counters, the writes fight over.
const numAccounts = 10

// schema is each run's database: accounts for the read-modify-write transactions, counters for
// the autocommit increments, events for the autocommit inserts, and applied, the log of every
// application of a transaction or an increment (written in the same transaction, by the
// transaction itself or by a trigger), so that an increment applied twice shows.
var schema = []string{
	"CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
	"CREATE TABLE counters (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, op INTEGER)",
	"CREATE TABLE events (op INTEGER PRIMARY KEY, worker INTEGER NOT NULL)",
	"CREATE TABLE applied (op INTEGER NOT NULL, kind TEXT NOT NULL)",
	"CREATE TRIGGER counters_applied AFTER UPDATE ON counters BEGIN " +
		"INSERT INTO applied (op, kind) VALUES (NEW.op, 'increment'); END",
	fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) "+
		"INSERT INTO accounts (id, balance) SELECT i, 0 FROM n", numAccounts),
	"INSERT INTO counters (id, v) SELECT id, 0 FROM accounts",
}

// opKind is what one write does.
type opKind uint8

const (
	opTx     opKind = iota // BEGIN; SELECT balance; UPDATE balance+1; INSERT INTO applied; COMMIT
	opIncr                 // autocommit UPDATE counters SET v = v + 1, op = ? (the trigger logs it)
	opInsert               // autocommit INSERT INTO events (op, worker)
)

var kindNames = [...]string{opTx: "transaction", opIncr: "increment", opInsert: "insert"}

func (k opKind) String() string { return kindNames[k] }

// kindOf is the write a goroutine makes as its i-th: of every 4, two read-modify-write
// transactions, one autocommit increment, one autocommit insert.
func kindOf(i int) opKind {
	switch i % 4 {
	case 1:
		return opIncr
	case 3:
		return opInsert
	default:
		return opTx
	}
}

// op is one write as the application saw it: the per-write log the outcome check reads.
type op struct {
	id    int64 // worker<<32 | sequence: unique in the run
	kind  opKind
	start time.Time // the application asked for the write
	sent  time.Time // the write went to the driver: after the mutex of a serialised setup
	end   time.Time
	err   error
}

// setup is one way of opening the cluster the demo compares.
type setup struct {
	key  string // the -runs name, and the database's name's suffix
	name string
	// open opens database name on the cluster at addrs.
	open func(addrs []string, name, options string) (*sql.DB, error)
	// serialise: every write takes one process-wide mutex, as an application that knows
	// go-dqlite fails concurrent writers would write.
	serialise bool
}

var setups = []setup{
	{key: "go-dqlite", name: "go-dqlite", open: openPlain},
	{key: "mutex", name: "go-dqlite + mutex", open: openPlain, serialise: true},
	{key: "sqlite-safe", name: "sqlite-safe", open: openSafe},
}

// openPlain opens name through go-dqlite's driver package with its defaults.
func openPlain(addrs []string, name, _ string) (*sql.DB, error) {
	drv, err := dqdriver.New(launch.StoreOf(addrs))
	if err != nil {
		return nil, err
	}
	connector, err := drv.OpenConnector(name)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(connector), nil
}

// safeDSN is the sqlite-safe DSN of database name on the cluster at addrs.
func safeDSN(addrs []string, name, options string) string {
	dsn := "dqlite://" + strings.Join(addrs, ",") + "/" + name
	if options != "" {
		dsn += "?" + options
	}
	return dsn
}

// openSafe opens name through sqlite-safe's dqlite:// scheme.
func openSafe(addrs []string, name, options string) (*sql.DB, error) {
	return sql.Open("sqlite-safe", safeDSN(addrs, name, options))
}

// run is one run of the workload on one setup, and what it saw.
type run struct {
	setup setup
	db    *sql.DB

	start    time.Time
	killSent time.Time // just before the SIGKILL
	killed   time.Time // the killed node has exited
	leader   string    // the node killed, for the report
	// killNS is killSent as UnixNano, 0 before the kill; resumedAt is the end, as UnixNano, of
	// the first successful write begun after the kill. Both are read and set by the workers.
	killNS, resumedAt atomic.Int64

	turn sync.Mutex // setup.serialise

	mu  sync.Mutex
	ops []op

	okOps, failedOps atomic.Int64
}

// work is one goroutine: writes until stop is closed, each logged.
func (r *run) work(ctx context.Context, g int, stop <-chan struct{}) {
	var log []op
	defer func() {
		r.mu.Lock()
		r.ops = append(r.ops, log...)
		r.mu.Unlock()
	}()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if ctx.Err() != nil {
			return
		}
		o := op{id: int64(g)<<32 | int64(i), kind: kindOf(i), start: time.Now()}
		if r.setup.serialise {
			r.turn.Lock()
		}
		o.sent = time.Now()
		o.err = r.write(ctx, o)
		if r.setup.serialise {
			r.turn.Unlock()
		}
		o.end = time.Now()
		log = append(log, o)
		if o.err != nil {
			r.failedOps.Add(1)
			continue
		}
		r.okOps.Add(1)
		if k := r.killNS.Load(); k != 0 && o.start.UnixNano() > k {
			r.resumedAt.CompareAndSwap(0, o.end.UnixNano())
		}
	}
}

// write makes one write o.
func (r *run) write(ctx context.Context, o op) error {
	account := 1 + rand.IntN(numAccounts)
	switch o.kind {
	case opInsert:
		_, err := r.db.ExecContext(ctx, "INSERT INTO events (op, worker) VALUES (?, ?)", o.id, o.id>>32)
		return err
	case opIncr:
		_, err := r.db.ExecContext(ctx, "UPDATE counters SET v = v + 1, op = ? WHERE id = ?", o.id, account)
		return err
	}
	// The read-modify-write transaction, as application code often writes it.
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after a Commit
	var balance int64
	if err := tx.QueryRowContext(ctx, "SELECT balance FROM accounts WHERE id = ?", account).Scan(&balance); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = ? WHERE id = ?", balance+1, account); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO applied (op, kind) VALUES (?, 'transaction')", o.id); err != nil {
		return err
	}
	return tx.Commit()
}

// outcome is what the check found for a run.
type outcome struct {
	ops, ok, failed, locked int
	byKind                  [3]int // successful writes by kind
	// lost: reported successful, absent. doubled: in the database more than once.
	// failedButCommitted: reported failed, present.
	lost, doubled, failedButCommitted []op
	inFlight, inFlightCommitted       int // writes open at the kill, and those of them that committed
	lostUpdates                       int64
	errs                              []errCount
	beforeKill                        time.Duration // from the start to the kill
	okBeforeKill                      int           // successful writes that ended before the kill
	txBeforeKill, rowsBeforeKill      int           // of them: transactions; inserts and increments
	latencies                         []time.Duration
	gap                               time.Duration // from the kill to the first successful write begun after it; 0: none
}

type errCount struct {
	msg string
	n   int
}

// sqliteBusy is SQLITE_BUSY, the primary result code of "database is locked".
const sqliteBusy = 5

// isLocked reports whether err is dqlite's "database is locked".
func isLocked(err error) bool {
	var de dqdriver.Error
	if errors.As(err, &de) && de.Code&0xff == sqliteBusy {
		return true
	}
	return strings.Contains(err.Error(), "database is locked")
}

// check reads the database through verify (plain go-dqlite, so that sqlite-safe does not check
// itself) and compares it with the per-write log.
func (r *run) check(ctx context.Context, verify *sql.DB) (*outcome, error) {
	events := map[int64]int{}
	applied := map[int64]int{}
	var counts [2]int64 // applications logged: transactions, increments
	var balances, values int64
	queries := []struct {
		sql  string
		scan func(*sql.Rows) error
	}{
		{"SELECT op FROM events", func(rows *sql.Rows) error {
			var id int64
			err := rows.Scan(&id)
			events[id]++
			return err
		}},
		{"SELECT op, kind FROM applied", func(rows *sql.Rows) error {
			var id int64
			var kind string
			err := rows.Scan(&id, &kind)
			applied[id]++
			if kind == "transaction" {
				counts[0]++
			} else {
				counts[1]++
			}
			return err
		}},
		{"SELECT (SELECT COALESCE(SUM(balance), 0) FROM accounts), (SELECT COALESCE(SUM(v), 0) FROM counters)",
			func(rows *sql.Rows) error { return rows.Scan(&balances, &values) }},
	}
	for _, q := range queries {
		rows, err := verify.QueryContext(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("checking the outcome: %s: %w", q.sql, err)
		}
		for rows.Next() {
			if err := q.scan(rows); err != nil {
				rows.Close()
				return nil, fmt.Errorf("checking the outcome: %w", err)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("checking the outcome: %w", err)
		}
	}
	if values != counts[1] {
		return nil, fmt.Errorf("checking the outcome: the counters sum to %d but %d increments are logged", values, counts[1])
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	out := &outcome{ops: len(r.ops), lostUpdates: counts[0] - balances, beforeKill: r.killSent.Sub(r.start)}
	if ns := r.resumedAt.Load(); ns != 0 {
		out.gap = time.Unix(0, ns).Sub(r.killSent)
	}
	errs := map[string]int{}        // by message with its numbers taken out
	firstErr := map[string]string{} // the first message in full
	for _, o := range r.ops {
		n := applied[o.id]
		if o.kind == opInsert {
			n = events[o.id]
		}
		open := o.sent.Before(r.killSent) && o.end.After(r.killSent)
		if open {
			out.inFlight++
			if n > 0 {
				out.inFlightCommitted++
			}
		}
		if n > 1 {
			out.doubled = append(out.doubled, o)
		}
		if o.err != nil {
			out.failed++
			if isLocked(o.err) {
				out.locked++
			}
			msg := o.kind.String() + ": " + o.err.Error()
			key := digits.ReplaceAllString(msg, "N")
			if errs[key] == 0 {
				firstErr[key] = shorten(msg)
			}
			errs[key]++
			if n > 0 {
				out.failedButCommitted = append(out.failedButCommitted, o)
			}
			continue
		}
		out.ok++
		out.byKind[o.kind]++
		if n == 0 {
			out.lost = append(out.lost, o)
		}
		if o.end.Before(r.killSent) {
			out.okBeforeKill++
			if o.kind == opTx {
				out.txBeforeKill++
			} else {
				out.rowsBeforeKill++
			}
			out.latencies = append(out.latencies, o.end.Sub(o.start))
		}
	}
	for key, n := range errs {
		out.errs = append(out.errs, errCount{firstErr[key], n})
	}
	sort.Slice(out.errs, func(i, j int) bool {
		if out.errs[i].n != out.errs[j].n {
			return out.errs[i].n > out.errs[j].n
		}
		return out.errs[i].msg < out.errs[j].msg
	})
	slices.Sort(out.latencies)
	return out, nil
}

// quantile is the latency below which a fraction q of the successful writes before the kill lie.
func (o *outcome) quantile(q float64) time.Duration {
	if len(o.latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(o.latencies))+0.5) - 1
	return o.latencies[min(max(i, 0), len(o.latencies)-1)]
}

// clean: nothing lost, applied twice or committed after an error, and no lost update.
func (o *outcome) clean() bool {
	return len(o.lost) == 0 && len(o.doubled) == 0 && len(o.failedButCommitted) == 0 && o.lostUpdates == 0
}

// shorten is an error message on one line, cut to at most 300 bytes.
func shorten(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}

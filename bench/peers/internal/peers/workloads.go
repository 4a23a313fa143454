// Package peers is the shared part of the peers benchmark: the workloads and
// configurations it knows, the runner each per-driver program is built
// around (Main), the result a cell prints, and the tables the driver program
// makes from the results.
//
// A cell is one workload run by one configuration in a process of its own
// (one of the cmd/run-* programs) on a fresh copy of one prepared WAL file.
// cmd/peers builds the runners, runs every cell in interleaved rounds and
// prints the medians. See README.md.
package peers

import (
	"fmt"
	"strings"
)

// Kind is what the calls of a workload do.
type Kind int

// The kinds of workload.
const (
	// Insert: autocommit INSERT INTO t(v) VALUES (?), one row per call.
	Insert Kind = iota
	// RMW: BEGIN; SELECT n FROM counter WHERE id = ?; UPDATE counter SET
	// n = ? (the value read plus one); COMMIT, on one of the counter rows.
	RMW
	// Read: SELECT v FROM t WHERE id = ?, a random row of the template.
	Read
	// ReadBesideInsert: G goroutines of Read beside one goroutine of
	// Insert; both rates are reported.
	ReadBesideInsert
	// Mixed: 90% of calls read 3 consecutive rows of t in one query, 10%
	// are a write transaction: read a counter, insert a row, update the
	// counter.
	Mixed
	// Bulk: one transaction of BulkRows inserts per call; the rate is in
	// rows.
	Bulk
	// LimitInsert: Insert through one prepared statement on one connection
	// (a *sql.Conn), from one goroutine.
	LimitInsert
	// LimitRead: Read through one prepared statement on one connection,
	// from one goroutine.
	LimitRead
	// LimitTx: every insert of the cell in one transaction on one
	// connection, through one prepared statement; the commit is timed.
	LimitTx
)

// BulkRows is the number of rows a Bulk call inserts in its transaction.
const BulkRows = 1000

// CounterRows is the number of rows of the counter table that RMW and Mixed
// update: a small set, so that writers meet on the same rows.
const CounterRows = 8

// Workload is one row of the tables: what each call does, from how many
// goroutines, with which synchronous mode.
type Workload struct {
	Name     string // W1-8: the family (W1), a dash, the goroutines; p for prepared
	Kind     Kind
	G        int    // goroutines (for ReadBesideInsert, the readers)
	Sync     string // PRAGMA synchronous: NORMAL or FULL
	Prepared bool   // through a statement prepared once with db.Prepare
	Doc      string // the description in the tables
}

// Limit reports whether the workload is one of the limits, which only a
// limit configuration runs.
func (w Workload) Limit() bool {
	return w.Kind == LimitInsert || w.Kind == LimitRead || w.Kind == LimitTx
}

// Family returns the part of the name before the first dash: W1 for W1-64.
func (w Workload) Family() string {
	f, _, _ := strings.Cut(w.Name, "-")
	return f
}

// Streams returns the names of the rates the workload reports, the main
// one first.
func (w Workload) Streams() []string {
	switch w.Kind {
	case ReadBesideInsert:
		return []string{"reads", "inserts"}
	case Bulk, LimitTx:
		return []string{"rows"}
	case Insert, LimitInsert:
		return []string{"inserts"}
	case Read, LimitRead:
		return []string{"reads"}
	case RMW:
		return []string{"transactions"}
	default:
		return []string{"calls"}
	}
}

// Workloads are every workload, in the order of the tables.
var Workloads = []Workload{
	{"W1-1", Insert, 1, "NORMAL", false, "autocommit inserts, 1 goroutine"},
	{"W1-8", Insert, 8, "NORMAL", false, "autocommit inserts, 8 goroutines"},
	{"W1-64", Insert, 64, "NORMAL", false, "autocommit inserts, 64 goroutines"},
	{"W2-64", Insert, 64, "FULL", false, "autocommit inserts, 64 goroutines, synchronous=FULL"},
	{"W3-32", RMW, 32, "NORMAL", false, "read-modify-write transactions, 32 goroutines"},
	{"W4-1", Read, 1, "NORMAL", false, "point reads by primary key, 1 goroutine"},
	{"W4-8", Read, 8, "NORMAL", false, "point reads, 8 goroutines"},
	{"W4-8w", ReadBesideInsert, 8, "NORMAL", false, "8 readers beside 1 inserting goroutine"},
	{"W5-16", Mixed, 16, "NORMAL", false, "mixed: 90% read 3 rows, 10% write tx (read, insert, update), 16 goroutines"},
	{"W6", Bulk, 1, "NORMAL", false, "bulk load, 1,000 rows per tx, 1 goroutine"},
	{"W1-1p", Insert, 1, "NORMAL", true, "prepared: autocommit inserts, 1 goroutine"},
	{"W4-1p", Read, 1, "NORMAL", true, "prepared: point reads, 1 goroutine"},
	{"W4-8p", Read, 8, "NORMAL", true, "prepared: point reads, 8 goroutines"},
	{"L1-1", LimitInsert, 1, "NORMAL", true, "limit: one prepared connection, 1 goroutine, inserts"},
	{"L2-1", LimitInsert, 1, "FULL", true, "limit: one prepared connection, 1 goroutine, inserts, synchronous=FULL"},
	{"L4-1", LimitRead, 1, "NORMAL", true, "limit: one prepared connection, 1 goroutine, point reads"},
	{"Ltx", LimitTx, 1, "NORMAL", true, "limit: all inserts in one transaction"},
}

// LookupWorkload returns the workload of the given name.
func LookupWorkload(name string) (Workload, bool) {
	for _, w := range Workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// ParseWorkloads returns the workloads a comma-separated list selects, in
// the order of Workloads. An item is a name (W4-8), a family (W4: W4-1,
// W4-8, W4-8w, W4-1p, W4-8p), "prepared" (the prepared variants), "limits"
// (the L workloads) or "all".
func ParseWorkloads(list string) ([]Workload, error) {
	return parseList(list, "workload", Workloads, func(w Workload, item string) bool {
		switch item {
		case "all":
			return true
		case "prepared":
			return w.Prepared && !w.Limit()
		case "limits":
			return w.Limit()
		}
		return w.Name == item || w.Family() == item
	}, func(w Workload) string { return w.Name })
}

// Config is one way of opening the database: a driver and its settings.
type Config struct {
	Name   string // the column in the tables
	Runner string // the program under cmd/ that opens it
	Peer   bool   // one of the peers sqlite-safe is compared with
	PureGo bool   // no cgo
	Limit  bool   // runs the limit workloads (and only them)
	Doc    string
}

// Configs are every configuration, in the order of the tables' columns.
var Configs = []Config{
	{"sqlite-safe", "run-safe", false, true, false, "sqlite-safe, the default DSN (_synchronous=FULL for FULL)"},
	{"modernc", "run-modernc", true, true, false, "modernc.org/sqlite tuned: one *sql.DB"},
	{"modernc-2pools", "run-modernc", true, true, false, "modernc.org/sqlite tuned: a writer *sql.DB with SetMaxOpenConns(1) and a reader *sql.DB"},
	{"mattn", "run-mattn", true, false, false, "mattn/go-sqlite3 (cgo) tuned: one *sql.DB"},
	{"mattn-2pools", "run-mattn", true, false, false, "mattn/go-sqlite3 (cgo) tuned: writer and reader *sql.DB"},
	{"ncruces", "run-ncruces", true, true, false, "ncruces/go-sqlite3 driver tuned: one *sql.DB"},
	{"ncruces-2pools", "run-ncruces", true, true, false, "ncruces/go-sqlite3 driver tuned: writer and reader *sql.DB"},
	{"modernc-limit", "run-modernc", false, true, true, "modernc.org/sqlite tuned, one connection: the limits"},
}

// LookupConfig returns the configuration of the given name.
func LookupConfig(name string) (Config, bool) {
	for _, c := range Configs {
		if c.Name == name {
			return c, true
		}
	}
	return Config{}, false
}

// ParseConfigs returns the configurations a comma-separated list selects,
// in the order of Configs. An item is a name, a runner (run-mattn: both
// mattn configurations), "peers" or "all".
func ParseConfigs(list string) ([]Config, error) {
	return parseList(list, "configuration", Configs, func(c Config, item string) bool {
		return item == "all" || c.Name == item || c.Runner == item || (item == "peers" && c.Peer)
	}, func(c Config) string { return c.Name })
}

// parseList returns the elements of all that some item of the
// comma-separated list matches, in the order of all. An empty list, an
// empty item or an item that matches nothing is an error naming the valid
// names.
func parseList[T any](list, what string, all []T, match func(T, string) bool, name func(T) string) ([]T, error) {
	items := strings.Split(list, ",")
	chosen := make([]bool, len(all))
	for _, item := range items {
		item = strings.TrimSpace(item)
		found := false
		for i, e := range all {
			if item != "" && match(e, item) {
				chosen[i] = true
				found = true
			}
		}
		if !found {
			names := make([]string, len(all))
			for i, e := range all {
				names[i] = name(e)
			}
			return nil, fmt.Errorf("peers: unknown %s %q (want all or a list of %s)", what, item, strings.Join(names, ", "))
		}
	}
	var out []T
	for i, e := range all {
		if chosen[i] {
			out = append(out, e)
		}
	}
	return out, nil
}

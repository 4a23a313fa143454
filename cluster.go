package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/engine"
)

// The driver's side of a database on a dqlite cluster: its DSN, the keys
// and statements that make no sense there, and the engine that opens its
// connections (registered by the github.com/sqlitesafe/sqlitesafe/dqlite
// module). Everything else (the writer queue, group commit, routing,
// transactions, Stats) is the driver's as for a file.

// dqliteScheme begins a DSN that names a database on a dqlite cluster.
const dqliteScheme = "dqlite://"

// dqliteImport is the package whose import registers the dqlite engine.
const dqliteImport = "github.com/sqlitesafe/sqlitesafe/dqlite"

// splitClusterDSN splits the rest of a dqlite:// DSN, HOST:PORT,...,HOST:PORT/NAME?query.
func splitClusterDSN(rest string) (addrs []string, name, query string, err error) {
	rest, query, _ = strings.Cut(rest, "?")
	hosts, rawName, ok := strings.Cut(rest, "/")
	if !ok || rawName == "" {
		return nil, "", "", &DSNError{Reason: "a dqlite:// DSN names a database after the nodes: dqlite://HOST:PORT,HOST:PORT/NAME"}
	}
	name, err = url.PathUnescape(rawName)
	if err != nil {
		return nil, "", "", &DSNError{Err: err, Reason: fmt.Sprintf("malformed escape in the database name %q of a dqlite:// DSN", rawName)}
	}
	for _, a := range strings.Split(hosts, ",") {
		addrs = append(addrs, strings.TrimSpace(a))
	}
	return addrs, name, query, nil
}

// formatClusterDSN writes the start of a dqlite:// DSN.
func formatClusterDSN(addrs []string, name string) string {
	return dqliteScheme + strings.Join(addrs, ",") + "/" + url.PathEscape(name)
}

// validateCluster checks what a Config for a dqlite cluster must be, and
// that the dqlite-only fields are not set for a local database.
func (c *Config) validateCluster() error {
	if len(c.Cluster) == 0 {
		if c.FailoverTimeout != 0 {
			return &DSNError{Key: "_failover_timeout", Value: formatMillis(c.FailoverTimeout),
				Reason: `"_failover_timeout" is for a dqlite:// DSN; a local database has no failover`}
		}
		return nil
	}
	for _, a := range c.Cluster {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return &DSNError{Value: a, Err: err,
				Reason: fmt.Sprintf("dqlite node %q is not HOST:PORT (the nodes of a dqlite:// DSN are separated by commas)", a)}
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return &DSNError{Value: a, Reason: fmt.Sprintf("dqlite node %q: port %q is not a number from 1 to 65535", a, port)}
		}
	}
	if c.Path == "" || strings.ContainsAny(c.Path, "/\x00") || c.Path == ":memory:" {
		return &DSNError{Value: c.Path,
			Reason: fmt.Sprintf("dqlite database name %q: a dqlite database is named by a plain file name on the nodes, without '/'", c.Path)}
	}
	for i := range dsnKeys {
		k := &dsnKeys[i]
		v, ok := k.formatValue(c)
		if !ok || k.name == "_pragma" {
			continue
		}
		switch {
		case !k.dqlite:
			return &DSNError{Key: k.name, Value: v, Reason: fmt.Sprintf("%q has no meaning on a dqlite cluster (%s); drop it from the dqlite:// DSN",
				k.name, clusterWhy(k.name))}
		case k.name == "_journal_mode" && c.JournalMode != JournalWAL:
			return &DSNError{Key: k.name, Value: v, Reason: fmt.Sprintf("%q %s: a dqlite cluster keeps its databases in WAL mode (another journal mode aborts a dqlite 1.11 leader); drop the key", k.name, v)}
		case k.name == "_txlock" && c.TxLock != TxLockImmediate:
			return &DSNError{Key: k.name, Value: v, Reason: fmt.Sprintf("%q %s: write transactions on a dqlite cluster begin IMMEDIATE, the only mode whose wait for another client's write lock the driver can bound; drop the key", k.name, v)}
		}
	}
	for k, v := range c.URIParams {
		return &DSNError{Key: k, Value: v, Reason: fmt.Sprintf("%q is an SQLite URI parameter for local files; a dqlite:// DSN takes none", k)}
	}
	for _, text := range c.Pragmas {
		pr, err := parsePragma(text)
		if err != nil {
			return err
		}
		if pragmas[strings.ToLower(pr.name)] != pragmaSetting {
			return &DSNError{Key: "_pragma", Value: text, Reason: fmt.Sprintf("_pragma %q: on a dqlite cluster a DSN sets only settings of the connection (cache_size, case_sensitive_like, ...); the file's are the cluster's", text)}
		}
	}
	return nil
}

// clusterWhy says why a DSN key is refused on a dqlite cluster.
func clusterWhy(key string) string {
	switch key {
	case "mode", "vfs", "immutable", "cache":
		return "the nodes open their databases themselves"
	case "_synchronous", "_journal_size_limit", "_checkpointing", "_auto_vacuum", "_locking_mode", "_secure_delete", "_writable_schema":
		return "the nodes manage the file, its journal and its durability (Raft replicates every commit)"
	case "_process_queue", "_network_fs":
		return "it concerns local files; clients of a cluster wait for each other at BEGIN IMMEDIATE"
	case "_time_format", "_time_integer_format", "_timezone", "_inttotime", "_texttotime", "_loc":
		return "it is a conversion of modernc.org/sqlite's, which go-dqlite's client does not make"
	}
	return "it is a setting of modernc.org/sqlite or of local files"
}

// failoverTimeout is the bound on a wait for a leader.
func (c *Config) failoverTimeout() time.Duration {
	if c.FailoverTimeout > 0 {
		return c.FailoverTimeout
	}
	return DefaultFailoverTimeout
}

// openEngine returns the engine's Database for a Config with a Cluster.
func openEngine(cfg *Config) (engine.Database, error) {
	e := engine.Lookup("dqlite")
	if e == nil {
		return nil, fmt.Errorf("sqlitesafe: a dqlite:// DSN needs the dqlite engine: add\n\timport _ %q\nto the program (and build it with -tags nosqlite3, so that go-dqlite compiles no cgo)", dqliteImport)
	}
	return e.Database(engine.Target{
		Addrs:           cfg.Cluster,
		Name:            cfg.Path,
		BusyTimeout:     cfg.busyTimeout(),
		FailoverTimeout: cfg.failoverTimeout(),
	})
}

// refuseOnCluster returns the error for a statement the cluster must never
// run: the ones that abort a dqlite 1.11 leader, the ones whose effect would
// stay on one node, and the ones dqlite cannot run as given. nil otherwise.
func refuseOnCluster(query string, info *stmtInfo, args int) error {
	f := info.flags
	facts := info.facts
	switch {
	case f&flagJournalMode != 0 && !isWALAssignment(query):
		return fmt.Errorf("sqlitesafe: dqlite: %q refused: a dqlite cluster keeps its databases in WAL mode, and another journal mode aborts a dqlite 1.11 leader", short(query))
	case facts&factPageSize != 0:
		return fmt.Errorf("sqlitesafe: dqlite: %q refused: changing the page size of a dqlite database aborts a dqlite 1.11 leader; the nodes choose the page size", short(query))
	case facts&factAttach != 0:
		return fmt.Errorf("sqlitesafe: dqlite: %q refused: ATTACH on a dqlite cluster opens a file on the leader's own disk, which is not replicated; keep the tables in one database", short(query))
	case facts&factCheckpoint != 0:
		return fmt.Errorf("sqlitesafe: dqlite: %q refused: the dqlite nodes checkpoint their databases themselves", short(query))
	case f&flagMulti != 0 && args > 0:
		return fmt.Errorf("sqlitesafe: dqlite: a script of several statements with arguments refused (dqlite binds the arguments to the first statement only and runs nothing): run the statements one by one, or the script without arguments")
	}
	return nil
}

// isWALAssignment reports whether query, a PRAGMA journal_mode assignment,
// asks for WAL.
func isWALAssignment(query string) bool {
	q := strings.ToUpper(query)
	return strings.Contains(q, "WAL") && !strings.Contains(q, ";")
}

// short is a statement for a message: its first line, at most 60 bytes.
func short(query string) string {
	q := strings.TrimSpace(query)
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		q = q[:i] + " ..."
	}
	if len(q) > 60 {
		q = q[:57] + "..."
	}
	return q
}

// codeRow is SQLITE_ROW: go-dqlite's error for an Exec of a statement that
// answered a row ("another row available").
const codeRow = 100

// execRemote runs an Exec on an engine's connection. go-dqlite fails an Exec
// of a statement that answers rows: such a statement runs as a Query whose
// rows are read to the end (as modernc.org/sqlite's Exec steps through them),
// and a PRAGMA that answered a row has run.
func (p *phys) execRemote(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	if info.facts&factRows != 0 && info.flags&flagMulti == 0 {
		rows, err := p.remote.QueryContext(ctx, query, args)
		if err != nil {
			return nil, err
		}
		n, err := drain(rows)
		if err != nil {
			return nil, err
		}
		return driver.RowsAffected(n), nil
	}
	res, err := p.remote.ExecContext(ctx, query, args)
	if err != nil && info.facts&factPragma != 0 && sqliteCode(err) == codeRow {
		return driver.RowsAffected(0), nil
	}
	return res, err
}

// queryRemote runs a Query on an engine's connection. go-dqlite fails a
// Query of a statement that answers no row, and runs nothing: such a
// statement runs as an Exec, and answers no rows, as with
// modernc.org/sqlite.
func (p *phys) queryRemote(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Rows, error) {
	switch {
	case info.facts&factRows != 0:
		return p.remote.QueryContext(ctx, query, args)
	case info.facts&factPragma != 0 && info.flags&(flagWrite|flagSession) == 0:
		return p.remote.QueryContext(ctx, query, args) // a PRAGMA read
	case info.facts&factPragma != 0:
		// An assignment: some answer a row (busy_timeout = N), some do
		// not (foreign_keys = OFF). A setting made twice is made once.
		_, err := p.remote.ExecContext(ctx, query, args)
		if err != nil && sqliteCode(err) == codeRow {
			return p.remote.QueryContext(ctx, query, args)
		}
		if err != nil {
			return nil, err
		}
		return emptyRows{}, nil
	}
	if _, err := p.remote.ExecContext(ctx, query, args); err != nil {
		return nil, err
	}
	return emptyRows{}, nil
}

// drain reads rows to the end and closes them, counting them.
func drain(rows driver.Rows) (int64, error) {
	dest := make([]driver.Value, len(rows.Columns()))
	var n int64
	for {
		err := rows.Next(dest)
		if err == io.EOF {
			break
		}
		if err != nil {
			rows.Close()
			return n, err
		}
		n++
	}
	return n, rows.Close()
}

// notCommitted marks err, which ended a write transaction on a cluster
// before its COMMIT was sent, as known not to have committed: the
// connection that lost it was rolled back with it.
func notCommitted(err error) error {
	if err == nil || !isLost(err) || errors.Is(err, ErrNotCommitted) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrNotCommitted, err)
}

// isCommitText reports whether query, transaction control ending a
// transaction, may commit: COMMIT, END or RELEASE (not ROLLBACK).
func isCommitText(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	return len(q) >= 3 && strings.EqualFold(q[:3], "END") ||
		len(q) >= 6 && strings.EqualFold(q[:6], "COMMIT") ||
		len(q) >= 7 && strings.EqualFold(q[:7], "RELEASE")
}

// openRemote opens a connection of a cluster's database and sets it up:
// foreign keys as the DSN says (off unless asked, as SQLite has them; dqlite
// turns them on), the DSN's connection settings, and, on a reader, PRAGMA
// query_only. What the cluster manages (the journal, synchronous, the busy
// handler, which dqlite does not have) is left to it; WAL is read back.
//
// A connection made during an election may be to a node that is about to
// lose (or has just lost) its leadership: one lost while being set up is
// made again, within the failover timeout.
func (c *connector) openRemote(ctx context.Context, reader bool) (*phys, error) {
	deadline := time.Now().Add(c.cfg.failoverTimeout())
	for {
		p, err := c.openRemoteOnce(ctx, reader)
		if err == nil || !isLost(err) || time.Now().After(deadline) {
			return p, err
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (c *connector) openRemoteOnce(ctx context.Context, reader bool) (*phys, error) {
	role := engine.Writer
	if reader {
		role = engine.Reader
	}
	p, err := openEngineConn(ctx, c.db, role)
	if err != nil {
		return nil, fmt.Errorf("sqlitesafe: open %s: %w", c.name, err)
	}
	if c.file != nil {
		p.stats = &c.file.queue.stats
	}
	if err := c.setupRemote(ctx, p, reader); err != nil {
		p.close()
		return nil, err
	}
	if !reader && c.file != nil {
		c.file.queue.stats.leaderLost.Store(0)
	}
	return p, nil
}

func (c *connector) setupRemote(ctx context.Context, p *phys, reader bool) error {
	cfg := c.cfg
	run := func(q string) error {
		if _, err := p.exec(ctx, q, classify(q), nil); err != nil {
			return fmt.Errorf("sqlitesafe: %s on %s: %w", q, c.name, err)
		}
		return nil
	}
	check := func(pragma, want string) error {
		got, err := p.queryValue(ctx, "PRAGMA "+pragma)
		if err != nil {
			return fmt.Errorf("sqlitesafe: read back PRAGMA %s on %s: %w", pragma, c.name, err)
		}
		if !strings.EqualFold(got, want) {
			return fmt.Errorf("%w: PRAGMA %s on %s reads %q, want %q", ErrSetting, pragma, c.name, got, want)
		}
		return nil
	}
	fk := "0"
	if cfg.ForeignKeys == ForeignKeysOn {
		fk = "1"
	}
	if err := run("PRAGMA foreign_keys = " + fk); err != nil {
		return err
	}
	for _, st := range cfg.connSettings() {
		if err := run("PRAGMA " + st.pragma + " = " + st.value); err != nil {
			return err
		}
	}
	for _, pr := range cfg.Pragmas {
		if err := run("PRAGMA " + pr); err != nil {
			return err
		}
	}
	if reader || cfg.QueryOnly {
		if err := run("PRAGMA query_only = 1"); err != nil {
			return err
		}
	}
	if err := check("foreign_keys", fk); err != nil {
		return err
	}
	return check("journal_mode", "wal")
}

// runRemoteWrite runs a write outside any transaction on a cluster's
// writer. Every write runs in a transaction of the driver's (BEGIN
// IMMEDIATE, the statement, COMMIT), whatever its kind: an autocommit
// RETURNING aborts a dqlite 1.11 leader, and a COMMIT of the driver's is one
// the engine can resolve when a failover interrupts it. The caller's context
// bounded the wait for the writer queue; the write itself runs to its end
// (an interrupted request would leave its outcome to be resolved).
func runRemoteWrite(p *phys, op call) (driver.Result, driver.Rows, error) {
	op.ctx = context.WithoutCancel(op.ctx)
	if op.info.flags&flagWrite == 0 || op.info.flags&flagNoTx != 0 {
		return runBuffered(p, op)
	}
	res, rows, err := runInOwnTx(p, op)
	return res, rows, notCommitted(err)
}

// beginAgain reports whether to send a transaction's BEGIN again after it
// failed with err, having moved t to a writer connected to the leader of the
// moment: on a cluster, when the BEGIN found the shared writer's connection
// lost (a failover), which leaves nothing begun. It does so twice at most;
// each new writer waits up to the failover timeout for a leader.
func (c *connector) beginAgain(ctx context.Context, t *txState, err error, tries *int) bool {
	if c.db == nil || !t.locked || t.ph != c.writer || !isLost(err) || *tries >= 2 {
		return false
	}
	*tries++
	t.ph.broken = true
	w, werr := c.sharedWriter(ctx)
	if werr != nil {
		return false
	}
	t.ph = w
	return true
}

// runRemoteBatch runs a batch of autocommit writes on a cluster's writer,
// as runBatch does, and runs again, on a writer connected to the leader of
// the moment, the writes the engine found not committed after their
// connection was lost (a failover): each once per loss, until the failover
// timeout. A write it reports successful has committed once; one it
// reports failed has not committed, but for ErrOutcomeUnknown.
func (c *connector) runRemoteBatch(batch []*writeRequest) {
	deadline := time.Now().Add(c.cfg.failoverTimeout())
	for {
		c.runBatch(batch)
		again := batch[:0:0]
		for _, r := range batch {
			if errors.Is(r.err, ErrNotCommitted) {
				again = append(again, r)
			}
		}
		if len(again) == 0 || time.Now().After(deadline) {
			return
		}
		c.dropWriter()
		c.file.queue.stats.remoteReruns.Add(int64(len(again)))
		for _, r := range again {
			r.res, r.out, r.err = nil, nil, nil
		}
		batch = again
	}
}

// queueTimeout bounds a wait for the writer queue. On a cluster the holder
// may be waiting for a leader, for up to the failover timeout, and the
// writers behind it wait for that leader too.
func (c *connector) queueTimeout() time.Duration {
	if c.db != nil {
		return c.cfg.busyTimeout() + c.cfg.failoverTimeout()
	}
	return c.cfg.busyTimeout()
}

// clusterNote adds to a warning about a cluster's database the leader its
// writer last connected to, and, while a connection to the leader is lost
// and no writer has connected since, that the writers wait for a new one.
func (c *connector) clusterNote(msg string, attrs []any) (string, []any) {
	if c == nil || c.db == nil {
		return msg, attrs
	}
	attrs = append(attrs, slog.String("leader", c.db.Stats().Leader))
	if c.file == nil {
		return msg, attrs
	}
	if lost := c.file.queue.stats.leaderLost.Load(); lost != 0 {
		ago := time.Since(time.Unix(0, lost))
		msg += "; the connection to the leader was lost " + round(ago).String() + " ago: the writer is waiting for a new leader (a failover; _failover_timeout " +
			round(c.cfg.failoverTimeout()).String() + ")"
		attrs = append(attrs, slog.Duration("leader_lost_for", ago))
	}
	return msg, attrs
}

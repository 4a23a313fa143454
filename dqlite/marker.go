package dqlite

// Resolving an interrupted COMMIT on a dqlite cluster by a marker row: the engine's Commit uses
// newMarker, next and resolve; writeTx is the same protocol on database/sql connections, the
// workload of TestFailover and TestMarker.
//
// When the leader dies (or loses leadership) while a COMMIT is in flight, go-dqlite reports
// driver.ErrBadConn although the transaction may have been committed by the cluster: the frames
// reached a quorum before the leader died, and the next leader has them. The client cannot tell
// from the error. So each write transaction records, inside itself and just before COMMIT, a
// marker: the row (client, seq) of a small table, where client names the writer (one per process
// and database) and seq counts its transactions. The marker commits if and only if the
// transaction commits. After an interrupted COMMIT the writer asks the cluster, on a fresh
// connection to whatever node now leads, for its client's row: seq there is at least the
// transaction's seq exactly when it committed.
//
// The read is made under BEGIN IMMEDIATE, which the leader grants only when no other write
// transaction is open on the database: if the old leader is still leading (the client's
// connection broke, not the node), the interrupted transaction is by then committed or rolled
// back (dqlite rolls back the transactions of a connection that closed); if a new leader leads,
// dqlite runs a Raft barrier before the statement, so every entry of the old term it will ever
// commit is applied. Either way the answer is final.
//
// One writer has at most one write transaction open at a time (sqlite-safe's writer queue), so
// one row per client is enough: the table stays as small as the number of writers that ever
// wrote, and the marker adds one small UPSERT to each transaction.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dqdriver "github.com/canonical/go-dqlite/driver"
)

// markerTable is the table that holds one row per writer: the seq of its last committed write
// transaction.
const markerTable = "_sqlitesafe_commit"

const (
	createMarkerTable = "CREATE TABLE IF NOT EXISTS " + markerTable +
		" (client TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID"
	upsertMarker = "INSERT INTO " + markerTable + " (client, seq) VALUES (?, ?)" +
		" ON CONFLICT (client) DO UPDATE SET seq = excluded.seq"
	selectMarker = "SELECT seq FROM " + markerTable + " WHERE client = ?"
)

// commitOutcome is what is known about a write transaction after its COMMIT returned.
type commitOutcome int

const (
	// outcomeCommitted: the transaction is committed (COMMIT succeeded, or its marker is there).
	outcomeCommitted commitOutcome = iota
	// outcomeNotCommitted: the transaction is not committed and never will be; running it
	// again applies it once.
	outcomeNotCommitted
	// outcomeUnknown: the cluster could not be asked before the context ended.
	outcomeUnknown
)

func (o commitOutcome) String() string {
	switch o {
	case outcomeCommitted:
		return "committed"
	case outcomeNotCommitted:
		return "not committed"
	default:
		return "outcome unknown"
	}
}

var (
	// errNotCommitted: a write transaction failed and is known not to have committed.
	errNotCommitted = errors.New("sqlitesafe: dqlite: the transaction did not commit (its connection to the leader broke, and the cluster does not have it); running it again applies it once")
	// errOutcomeUnknown: a COMMIT was interrupted and the cluster could not be asked whether it
	// committed.
	errOutcomeUnknown = errors.New("sqlitesafe: dqlite: the outcome of the transaction is unknown (COMMIT was interrupted and no leader answered in time); check the data before running it again")
)

// defaultFailoverTimeout bounds the wait for a new leader after an interrupted COMMIT. A
// failover of dqlite-demo nodes took 4.5-7.1 s (issue 15; NOTES.md has this module's numbers).
const defaultFailoverTimeout = 20 * time.Second

// marker writes and resolves the marker rows of one writer.
type marker struct {
	client string
	// failoverTimeout bounds the wait for a leader that answers after an interrupted COMMIT.
	failoverTimeout time.Duration

	mu  sync.Mutex
	seq int64

	// Counts, for Stats: interrupted COMMITs resolved as committed and as not committed, and
	// transactions that failed before COMMIT with an error that may have reached a node.
	resolvedCommitted, resolvedNotCommitted, brokenBeforeCommit atomic.Int64
}

// newMarker returns a marker with a fresh random client id.
func newMarker() (*marker, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("sqlitesafe: dqlite: client id: %w", err)
	}
	return &marker{client: hex.EncodeToString(b[:]), failoverTimeout: defaultFailoverTimeout}, nil
}

// ensureMarkerTable creates the marker table if it is missing.
func ensureMarkerTable(ctx context.Context, db execer) error {
	if _, err := db.ExecContext(ctx, createMarkerTable); err != nil {
		return fmt.Errorf("sqlitesafe: dqlite: create %s: %w", markerTable, err)
	}
	return nil
}

// execer is what runs a statement: a *sql.Conn or a *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// next reserves the seq of the writer's next transaction.
func (m *marker) next() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	return m.seq
}

// mark writes the marker of transaction seq; it runs inside the transaction, before COMMIT.
func (m *marker) mark(ctx context.Context, tx execer, seq int64) error {
	if _, err := tx.ExecContext(ctx, upsertMarker, m.client, seq); err != nil {
		return fmt.Errorf("sqlitesafe: dqlite: write commit marker: %w", err)
	}
	return nil
}

// connector gives a fresh connection to the current leader; resolve calls it after a failure.
type connector func(ctx context.Context) (*sql.Conn, error)

// resolve asks the cluster whether transaction seq committed, on fresh connections, retrying
// (every retryEvery) while there is no leader or the database is locked, until ctx ends.
// The marker table must exist (ensureMarkerTable).
func (m *marker) resolve(ctx context.Context, connect connector, seq int64) (commitOutcome, error) {
	const retryEvery = 50 * time.Millisecond
	var last error
	for {
		committed, err := m.resolveOnce(ctx, connect, seq)
		if err == nil {
			if committed {
				return outcomeCommitted, nil
			}
			return outcomeNotCommitted, nil
		}
		last = err
		if !retryable(err) {
			return outcomeUnknown, fmt.Errorf("%w: %w", errOutcomeUnknown, err)
		}
		select {
		case <-ctx.Done():
			return outcomeUnknown, fmt.Errorf("%w: %w (last error: %w)", errOutcomeUnknown, ctx.Err(), last)
		case <-time.After(retryEvery):
		}
	}
}

func (m *marker) resolveOnce(ctx context.Context, connect connector, seq int64) (bool, error) {
	conn, err := connect(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return false, err
	}
	var have int64
	err = conn.QueryRowContext(ctx, selectMarker, m.client).Scan(&have)
	if errors.Is(err, sql.ErrNoRows) || err != nil && strings.Contains(err.Error(), "no such table: "+markerTable) {
		// No marker of this client, or none of anyone's: the table is
		// created with the first marker, in its transaction.
		have, err = 0, nil
	}
	// Nothing was written: ROLLBACK cannot lose anything, and its failure does not change
	// the answer (a broken connection rolls back by itself).
	_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	if err != nil {
		return false, err
	}
	return have >= seq, nil
}

// retryable reports whether err is one that a new attempt on a fresh connection may not get:
// the connection or the leader is gone, no leader is known yet, or another writer holds the
// database.
func retryable(err error) bool {
	if e, ok := dqErrorOf(err); ok && e.Code&0xff == dqdriver.ErrBusy {
		return true
	}
	return mayHaveReached(err)
}

// mayHaveReached reports whether a failed request may nevertheless have reached a node and been
// applied. Only an answer of the server (a dqlite error with a code) says it was not; a broken
// connection (go-dqlite's driver.ErrBadConn, io.EOF, a network error), a lost leadership, and a
// context that ended while the request was out all may hide a commit. SQLITE_IOERR answers count
// as lost leadership (dqlite's not-leader and leadership-lost codes are IOERR extended codes).
func mayHaveReached(err error) bool {
	if err == nil {
		return false
	}
	e, answered := dqErrorOf(err)
	return !answered || e.Code&0xff == sqliteIOErr
}

// sqliteIOErr is SQLITE_IOERR, the primary code of dqlite's leadership errors.
const sqliteIOErr = 10

func dqErrorOf(err error) (dqdriver.Error, bool) {
	var e dqdriver.Error
	ok := errors.As(err, &e)
	return e, ok
}

// writeTx runs fn in a BEGIN IMMEDIATE transaction on a fresh connection, with the marker
// written just before COMMIT, and answers with what is known about its outcome:
//
//   - nil error: committed, once;
//   - errNotCommitted: fn's writes are not in the database (the transaction failed before or at
//     COMMIT and the marker says it did not commit), so running it again applies it once;
//   - errOutcomeUnknown: COMMIT was interrupted and no leader answered within failoverTimeout
//     (which bounds the resolution even when ctx ends first: the answer is still wanted);
//   - any other error: the transaction failed with that error before COMMIT and was rolled back.
//
// "database is locked" at BEGIN IMMEDIATE (another process writing) is waited out, every
// retryEvery, within ctx.
func (m *marker) writeTx(ctx context.Context, connect connector, fn func(ctx context.Context, tx execer) error) (commitOutcome, error) {
	conn, err := m.begin(ctx, connect)
	if err != nil {
		if mayHaveReached(err) {
			// BEGIN itself writes nothing: a broken BEGIN leaves nothing to resolve.
			m.brokenBeforeCommit.Add(1)
			return outcomeNotCommitted, fmt.Errorf("%w: begin: %w", errNotCommitted, err)
		}
		return outcomeNotCommitted, err
	}
	defer conn.Close()
	rollback := func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") }
	if err := fn(ctx, conn); err != nil {
		rollback()
		if mayHaveReached(err) {
			// Without COMMIT nothing of it can be committed: dqlite rolls back the transaction
			// of a connection that breaks, and a new leader never saw it.
			m.brokenBeforeCommit.Add(1)
			return outcomeNotCommitted, fmt.Errorf("%w: %w", errNotCommitted, err)
		}
		return outcomeNotCommitted, err
	}
	seq := m.next()
	if err := m.mark(ctx, conn, seq); err != nil {
		rollback()
		if mayHaveReached(err) {
			m.brokenBeforeCommit.Add(1)
			return outcomeNotCommitted, fmt.Errorf("%w: %w", errNotCommitted, err)
		}
		return outcomeNotCommitted, err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	if err == nil {
		return outcomeCommitted, nil
	}
	if !mayHaveReached(err) {
		// An answer of the server: SQLite refused the COMMIT and the transaction is still
		// open (or already rolled back); it did not commit.
		rollback()
		return outcomeNotCommitted, err
	}
	// The answer is wanted even when the caller has given up: resolve under its own bound.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.failoverTimeout)
	defer cancel()
	outcome, rerr := m.resolve(rctx, connect, seq)
	switch outcome {
	case outcomeCommitted:
		m.resolvedCommitted.Add(1)
		return outcomeCommitted, nil
	case outcomeNotCommitted:
		m.resolvedNotCommitted.Add(1)
		return outcomeNotCommitted, fmt.Errorf("%w: commit: %w", errNotCommitted, err)
	default:
		return outcomeUnknown, fmt.Errorf("%w (COMMIT failed with: %v)", rerr, err)
	}
}

// begin opens a connection and starts BEGIN IMMEDIATE on it, waiting out "database is locked"
// within ctx.
func (m *marker) begin(ctx context.Context, connect connector) (*sql.Conn, error) {
	const retryEvery = 2 * time.Millisecond
	for {
		conn, err := connect(ctx)
		if err != nil {
			return nil, err
		}
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		if err == nil {
			return conn, nil
		}
		conn.Close()
		if e, ok := dqErrorOf(err); !ok || e.Code&0xff != dqdriver.ErrBusy {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sqlitesafe: dqlite: database is locked by another writer: %w (%w)", ctx.Err(), err)
		case <-time.After(retryEvery):
		}
	}
}

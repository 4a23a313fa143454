package sqlitesafe

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/engine"
)

// Sentinel errors, for errors.Is. The errors a program may want to tell
// apart wrap one of these, or SQLite's own error (*sqlite.Error from
// modernc.org/sqlite, whose Code method gives the extended result code), or
// both. Errors of misuse (a second BeginTx on one connection, an unknown
// checkpoint mode, a Commit after the end of its transaction) wrap neither:
// their messages say what was wrong.
var (
	// ErrInvalidDSN is wrapped by every *DSNError: the DSN or Config cannot
	// be used as given.
	ErrInvalidDSN = errors.New("sqlitesafe: invalid DSN")

	// ErrLockTimeout is wrapped by a *LockTimeoutError when the busy
	// timeout ran out before the writer lock was free.
	ErrLockTimeout = errors.New("sqlitesafe: timed out waiting for the write lock")

	// ErrReaderTimeout is returned when the busy timeout ran out before a
	// read-only connection was free (all those _max_readers allows were
	// in use).
	ErrReaderTimeout = errors.New("sqlitesafe: timed out waiting for a reader connection")

	// ErrReadOnly is wrapped by the error of a write through a read-only
	// handle (mode=ro, immutable=1) or inside a read-only transaction. The
	// error also wraps SQLite's own SQLITE_READONLY error.
	ErrReadOnly = errors.New("sqlitesafe: write refused")

	// ErrWALUnavailable is wrapped by the error of opening a database whose
	// journal mode could not be set to WAL (the file system cannot share
	// memory for the WAL index). The message names the DSN key that
	// chooses another journal mode.
	ErrWALUnavailable = errors.New("sqlitesafe: WAL unavailable")

	// ErrNetworkFS is wrapped by the error of opening a database on a
	// network or FUSE file system, whose locks SQLite cannot trust, when
	// the DSN does not allow it (_network_fs=allow).
	ErrNetworkFS = errors.New("sqlitesafe: database on a network file system")

	// ErrNotSQLiteSafe is returned by GetStats, Checkpoint, Backup, Raw and
	// RawRead for a *sql.DB or *sql.Conn of another driver, or of a driver
	// wrapper (otelsql, sqlmw, sqlhooks), which hides the handle: reach
	// that one's file with GetStatsFile, CheckpointFile and BackupFile.
	ErrNotSQLiteSafe = errors.New("sqlitesafe: the *sql.DB was not opened with the sqlite-safe driver " +
		"(if a tracing or hooks driver wraps it, use GetStatsFile, CheckpointFile or BackupFile with the database's path)")

	// ErrNotOpen is wrapped by the error of GetStatsFile, CheckpointFile
	// and BackupFile for a file that no sqlite-safe handle of the process
	// has open.
	ErrNotOpen = errors.New("sqlitesafe: database not open")

	// ErrSetting is wrapped by the error of opening a connection on which a
	// setting did not take: reading it back gave another value.
	ErrSetting = errors.New("sqlitesafe: setting did not take")

	// ErrClosed is returned by a connection or connector used after Close,
	// and by a write that was still waiting for the writer lock when its
	// handle was closed: it did not run.
	ErrClosed = errors.New("sqlitesafe: closed")

	// ErrOutcomeUnknown is wrapped by the error of a COMMIT that failed
	// with an I/O error: SQLite may have written the commit record before
	// the error, so the transaction may or may not be committed. On a
	// dqlite cluster, it is a COMMIT whose connection was lost and which no
	// leader could be asked about within the failover timeout. Read the
	// data back to know. Every other error of a write means that nothing
	// of it was written.
	ErrOutcomeUnknown = engine.ErrOutcomeUnknown

	// ErrNotCommitted is wrapped by the error of a write on a dqlite
	// cluster whose connection to the leader was lost (a failover) and
	// which the driver found not committed. An autocommit write is then
	// run again by the driver, and this error is seen only when the
	// failover timeout ran out first, or for a transaction of the
	// program's own: running it again applies it once.
	ErrNotCommitted = engine.ErrNotCommitted

	// ErrNotAvailable is wrapped by the error of an operation the
	// database's engine does not offer: Checkpoint and Backup on a dqlite
	// cluster.
	ErrNotAvailable = errors.New("sqlitesafe: not available")
)

// LockTimeoutError reports a wait for the writer lock that ran out, because
// the caller's context ended or because the busy timeout passed. It says how
// long the caller waited and what held the lock, and where that holder took
// it.
//
// errors.Is(err, ErrLockTimeout) reports a busy timeout;
// errors.Is(err, context.DeadlineExceeded) or context.Canceled reports the
// caller's context.
type LockTimeoutError struct {
	// File is the database file.
	File string
	// Waited is how long the caller waited.
	Waited time.Duration
	// Holder says what held the lock ("a transaction begun", "an Exec",
	// ...), empty if it was free when the wait ended.
	Holder string
	// HolderSite is the file:line where the holder took the lock: the
	// caller of BeginTx, Exec or Query.
	HolderSite string
	// HeldFor is how long the holder had held the lock.
	HeldFor time.Duration
	// HolderWaitsFor names the other process the holder was itself waiting
	// for, when it was ("another process (pid 1234) holding the database's
	// write lock, in SQLite's busy handler"): the cause is there, not in
	// the holder's code.
	HolderWaitsFor string

	cause error // the context's error, or nil for a busy timeout
}

// Error implements error.
func (e *LockTimeoutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sqlitesafe: waited %s for the write lock on %s", round(e.Waited), e.File)
	if e.cause != nil {
		fmt.Fprintf(&b, " until the context ended (%v)", e.cause)
	} else {
		b.WriteString(" (the busy timeout)")
	}
	switch {
	case e.Holder != "" && e.HeldFor == 0:
		// Another process: its hold time and site are not known here.
		fmt.Fprintf(&b, "; held by %s: find what it is doing (sqlite-safe doctor %s lists the processes using the file)", e.Holder, e.File)
	case e.Holder != "" && e.HolderWaitsFor != "":
		fmt.Fprintf(&b, "; held for %s by %s", round(e.HeldFor), e.Holder)
		if e.HolderSite != "" {
			fmt.Fprintf(&b, " at %s", e.HolderSite)
		}
		fmt.Fprintf(&b, ", which is itself waiting for %s: find what that process is doing (sqlite-safe doctor %s lists the processes using the file)",
			e.HolderWaitsFor, e.File)
	case e.Holder != "":
		fmt.Fprintf(&b, "; held for %s by %s", round(e.HeldFor), e.Holder)
		if e.HolderSite != "" {
			fmt.Fprintf(&b, " at %s", e.HolderSite)
		}
		b.WriteString(": keep write transactions short, close the rows of writing queries, and do not write through the *sql.DB while your own transaction is open (use the *sql.Tx)")
	}
	return b.String()
}

// Unwrap returns the context's error when the context ended the wait.
func (e *LockTimeoutError) Unwrap() error { return e.cause }

// Is reports whether target is ErrLockTimeout and the busy timeout, not the
// context, ended the wait.
func (e *LockTimeoutError) Is(target error) bool {
	return target == ErrLockTimeout && e.cause == nil
}

// round shortens d for messages.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d
}

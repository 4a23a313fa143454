package sqlitesafe

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// CheckpointMode is the mode of a WAL checkpoint, as PRAGMA wal_checkpoint
// takes it.
type CheckpointMode string

// The checkpoint modes. See https://sqlite.org/pragma.html#pragma_wal_checkpoint.
const (
	// CheckpointPassive copies what it can without waiting for readers or
	// writers.
	CheckpointPassive CheckpointMode = "PASSIVE"
	// CheckpointFull waits (up to the busy timeout) until no writer is
	// writing, then copies every frame, waiting for readers of old frames.
	CheckpointFull CheckpointMode = "FULL"
	// CheckpointRestart is CheckpointFull, then also waits for readers so
	// that the next writer starts the WAL from its beginning.
	CheckpointRestart CheckpointMode = "RESTART"
	// CheckpointTruncate is CheckpointRestart, then truncates the -wal file
	// to zero bytes.
	CheckpointTruncate CheckpointMode = "TRUNCATE"
)

// CheckpointResult is what a checkpoint reports.
type CheckpointResult struct {
	// Busy is true when the checkpoint could not finish: a reader still
	// needed frames it could not copy, or (FULL and stronger) it gave up
	// waiting for readers or the writer.
	Busy bool
	// Log is the number of frames in the WAL, Checkpointed the number of
	// them copied into the database. Both are -1 when the database is not
	// in WAL mode.
	Log, Checkpointed int
}

// Checkpoint runs a WAL checkpoint of the given mode (in any case) now, on the writer
// connection and under the writer queue: the process's writers wait while it
// runs, and it never has to compete with them. With CheckpointFull and
// stronger it waits for readers too, up to the busy timeout; a read
// transaction that never ends makes it report Busy (and makes the -wal file
// grow: see Stats.WALSize).
//
// The driver checkpoints on its own as well: SQLite's automatic checkpoint
// after commits, and a TRUNCATE checkpoint when the last handle of the
// process on the file is closed.
func Checkpoint(ctx context.Context, db *sql.DB, mode CheckpointMode) (CheckpointResult, error) {
	c, err := handleOf(db)
	if err != nil {
		return CheckpointResult{}, err
	}
	return c.checkpoint(ctx, mode)
}

func (c *connector) checkpoint(ctx context.Context, mode CheckpointMode) (CheckpointResult, error) {
	given := mode
	mode = CheckpointMode(strings.ToUpper(string(mode)))
	switch mode {
	case CheckpointPassive, CheckpointFull, CheckpointRestart, CheckpointTruncate:
	default:
		return CheckpointResult{}, fmt.Errorf("sqlitesafe: checkpoint mode %q: want PASSIVE, FULL, RESTART or TRUNCATE", string(given))
	}
	if c.readOnly {
		return CheckpointResult{}, fmt.Errorf("%w: %s is opened read-only; a checkpoint writes the database", ErrReadOnly, c.name)
	}
	if err := c.init(ctx); err != nil {
		return CheckpointResult{}, err
	}
	q := &c.file.queue
	if err := q.lock(ctx, c.cfg.busyTimeout(), c.holderHere(holdCheckpoint)); err != nil {
		return CheckpointResult{}, err
	}
	defer q.unlock()
	w, err := c.sharedWriter(ctx)
	if err != nil {
		return CheckpointResult{}, err
	}
	defer c.checkWriter(w)
	return c.runCheckpoint(ctx, w, mode)
}

// runCheckpoint runs the checkpoint on w and records it.
func (c *connector) runCheckpoint(ctx context.Context, w *phys, mode CheckpointMode) (CheckpointResult, error) {
	q := "PRAGMA wal_checkpoint(" + string(mode) + ")"
	rows, err := w.queryer.QueryContext(ctx, q, nil)
	if err != nil {
		c.file.queue.stats.recordError(err)
		return CheckpointResult{}, fmt.Errorf("sqlitesafe: %s on %s: %w", q, c.name, err)
	}
	defer rows.Close()
	vals := make([]driver.Value, 3)
	if err := rows.Next(vals); err != nil {
		return CheckpointResult{}, fmt.Errorf("sqlitesafe: %s on %s: %w", q, c.name, err)
	}
	var r CheckpointResult
	ints := [3]int{}
	for i, v := range vals {
		n, ok := v.(int64)
		if !ok {
			return CheckpointResult{}, fmt.Errorf("sqlitesafe: %s on %s: unexpected result %v", q, c.name, vals)
		}
		ints[i] = int(n)
	}
	r.Busy, r.Log, r.Checkpointed = ints[0] != 0, ints[1], ints[2]
	c.file.queue.stats.recordCheckpoint(r)
	return r, nil
}

// Backup writes a consistent copy of the database to the file dst while the
// application goes on reading and writing. It uses SQLite's online backup
// API on one of the handle's read-only connections, inside one read
// transaction: the copy is the database as of the moment Backup starts
// (every transaction committed before the call is in it), it never takes
// the writer queue, and writes made meanwhile neither wait for it nor make
// it start over. The copy proceeds in steps of 1 MiB and rests
// between steps as long as the step took, so that it uses at most about half
// of one core and leaves the writers their share of the machine.
//
// The copy is written to a temporary file next to dst, synced, and renamed to
// dst only when complete: a failed or interrupted backup leaves no partial
// dst behind. dst must not exist. Cancelling ctx stops the copy between
// steps.
//
// While the backup runs, checkpoints cannot copy past its snapshot, so the
// -wal file grows with the writes made meanwhile; it is truncated to the
// journal size limit at the first checkpoint after.
func Backup(ctx context.Context, db *sql.DB, dst string) error {
	c, err := handleOf(db)
	if err != nil {
		return err
	}
	return c.backup(ctx, dst)
}

// backupStepPages is how many pages one backup step copies: 1 MiB of 4 KiB
// pages. Steps of 4 MiB gave the writers a p99.9 1.7-1.9 times their own
// during a backup of 210 MB; steps of 1 MiB, 1.4-1.9 (median 1.6; BENCHMARKS.md).
const backupStepPages = 256

// backuper is what modernc.org/sqlite's connection offers for the backup
// API.
type backuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

func (c *connector) backup(ctx context.Context, dst string) (err error) {
	if dst == "" {
		return errors.New("sqlitesafe: backup: empty destination path")
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("sqlitesafe: backup of %s to %s: the destination exists; remove it or choose another name", c.name, dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sqlitesafe: backup of %s to %s: %w", c.name, dst, err)
	}
	if err := c.init(ctx); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return fmt.Errorf("sqlitesafe: backup of %s: %w", c.name, err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer func() {
		if err != nil {
			os.Remove(tmpName)
			os.Remove(tmpName + "-journal")
		}
	}()

	var src *phys
	if c.memory {
		// One connection does everything: hold the queue for the copy.
		q := &c.file.queue
		if err := q.lock(ctx, c.cfg.busyTimeout(), c.holderHere(holdQuery)); err != nil {
			return err
		}
		defer q.unlock()
		if src, err = c.sharedWriter(ctx); err != nil {
			return err
		}
	} else {
		if src, err = c.readers.get(ctx); err != nil {
			return err
		}
		defer c.readers.put(src)
	}
	if err := copyDatabase(ctx, src, tmpName); err != nil {
		return fmt.Errorf("sqlitesafe: backup of %s to %s: %w", c.name, dst, err)
	}
	if err := syncFile(tmpName); err != nil {
		return fmt.Errorf("sqlitesafe: backup of %s to %s: %w", c.name, dst, err)
	}
	if err := os.Rename(tmpName, dst); err != nil {
		return fmt.Errorf("sqlitesafe: backup of %s to %s: %w", c.name, dst, err)
	}
	syncFile(filepath.Dir(dst)) // the rename; best effort where directories cannot be synced
	return nil
}

// copyDatabase copies the database src is connected to into the file dst,
// in steps, inside one read transaction on src.
func copyDatabase(ctx context.Context, src *phys, dst string) (err error) {
	b, ok := src.conn.(backuper)
	if !ok {
		return errors.New("modernc.org/sqlite's connection has no backup API")
	}
	// One read transaction for the whole copy: its snapshot is the copy,
	// and writes by other connections meanwhile do not restart it.
	if err := src.run(ctx, "BEGIN"); err != nil {
		return err
	}
	defer src.ensureNoTx()
	if _, err := src.queryValue(ctx, "SELECT count(*) FROM sqlite_schema"); err != nil {
		return err
	}
	bk, err := b.NewBackup(dst)
	if err != nil {
		return err
	}
	defer func() {
		if ferr := bk.Finish(); err == nil {
			err = ferr
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		more, err := bk.Step(backupStepPages)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		rest := time.NewTimer(time.Since(start))
		select {
		case <-ctx.Done():
			rest.Stop()
			return ctx.Err()
		case <-rest.C:
		}
	}
}

// syncFile flushes a file (or directory) to stable storage.
func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Raw runs f with the modernc.org/sqlite connection that sc writes on, for
// what database/sql cannot express: the online backup API (NewBackup),
// Serialize and Deserialize, commit, rollback and pre-update hooks
// (sqlite.HookRegisterer), file controls. f gets modernc's driver.Conn;
// assert it to the interface you need.
//
// f runs holding the writer lock, as a write transaction does: other
// writers of the process (and, with the process queue, of other processes)
// wait until f returns, and nothing else writes on the connection meanwhile.
// Inside a transaction open on sc, f runs on that transaction's connection
// (the lock is already held). A transaction f leaves open is rolled back when
// it returns. Do not keep the connection after f returns: it is shared by
// the handle. Hooks registered on it stay registered, and fire for the
// writes of every connection of the handle, until the connection is
// replaced (after an error that breaks it) or the handle is closed.
//
// On a read-only handle f gets a read-only connection and takes no lock.
// For reading at length without holding writers up, use RawRead.
func Raw(ctx context.Context, sc *sql.Conn, f func(driverConn any) error) error {
	return sc.Raw(func(dc any) error {
		lc, ok := dc.(*conn)
		if !ok {
			return ErrNotSQLiteSafe
		}
		return lc.raw(ctx, f)
	})
}

// RawRead runs f with one of the handle's read-only modernc.org/sqlite
// connections (mode=ro), taking no lock: for long reads through modernc's
// own API, such as Serialize, without holding writers up. Inside a
// transaction open on sc, f runs on that transaction's connection.
func RawRead(ctx context.Context, sc *sql.Conn, f func(driverConn any) error) error {
	return sc.Raw(func(dc any) error {
		lc, ok := dc.(*conn)
		if !ok {
			return ErrNotSQLiteSafe
		}
		return lc.rawRead(ctx, f)
	})
}

func (c *conn) raw(ctx context.Context, f func(any) error) error {
	if c.closed {
		return driver.ErrBadConn
	}
	if c.tx != nil {
		return f(c.tx.ph.conn)
	}
	t, err := c.writeTarget(ctx, holdRaw)
	if err != nil {
		return err
	}
	defer func() {
		t.ph.ensureNoTx()
		c.release(t)
	}()
	return f(t.ph.conn)
}

func (c *conn) rawRead(ctx context.Context, f func(any) error) error {
	if c.closed {
		return driver.ErrBadConn
	}
	switch {
	case c.tx != nil:
		return f(c.tx.ph.conn)
	case c.c.memory || c.pinned:
		return c.raw(ctx, f)
	}
	r, err := c.c.readers.get(ctx)
	if err != nil {
		return err
	}
	defer func() {
		r.ensureNoTx()
		c.c.readers.put(r)
	}()
	return f(r.conn)
}

// closeCheckpoint checkpoints the file and truncates its -wal before the
// last handle of the process closes its writer, so that the -wal does not
// linger. It does not wait: a reader of another process that is still
// reading makes it give up (the -wal then stays for that process to
// finish). The caller holds the writer queue.
func (c *connector) closeCheckpoint(w *phys) {
	if c.memory || c.cfg.journalMode() != JournalWAL {
		return
	}
	ctx := context.Background()
	if err := w.run(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return
	}
	c.runCheckpoint(ctx, w, CheckpointTruncate)
}

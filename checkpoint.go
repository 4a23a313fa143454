package sqlitesafe

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
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
	// Blocker says, when Busy, what kept the checkpoint from finishing: a
	// read transaction of this process and where it was begun, rows of a
	// query not closed, or another process.
	Blocker string
	// HeldReads is how long the checkpoint held new reads of the process
	// back, waiting for the open ones to end (FULL and stronger).
	HeldReads time.Duration
}

// Checkpoint runs a WAL checkpoint of the given mode (in any case) now, from
// a connection of the checkpointer's own. The process's writers wait for it
// (within their busy timeout) only for what it cannot copy beside them:
//
//   - CheckpointPassive copies what it can beside readers and writers.
//   - CheckpointFull, CheckpointRestart and CheckpointTruncate copy what they
//     can the same way, then hold new reads of the process back until the
//     open ones end (at most 200 ms), then take the writer queue to copy
//     the frames written meanwhile and for the last step, waiting at most
//     100 ms for other processes. When a read does not end in time, or
//     another process's reader or writer is in the way, the result is Busy
//     and Blocker names it.
//
// The driver checkpoints on its own as well (see Config.Checkpointing): in
// the background between writes, a RESTART when the WAL passes a quarter of
// its journal_size_limit while reads go on (4 MiB when none is open), and a
// TRUNCATE when the last handle of the process on the file is closed.
func Checkpoint(ctx context.Context, db *sql.DB, mode CheckpointMode) (CheckpointResult, error) {
	c, err := handleOf(db)
	if err != nil {
		return CheckpointResult{}, err
	}
	return c.checkpoint(ctx, mode)
}

// CheckpointFile is Checkpoint for a database file that a sqlite-safe handle
// of the process has open, however it was opened: through a driver wrapper
// (otelsql, sqlmw, sqlhooks) too, where Checkpoint cannot see the handle.
// name is the file's path or the DSN it was opened with. It runs on the
// writer of one of the handles, under the file's writer queue. A file no
// handle has open is an error that wraps ErrNotOpen.
func CheckpointFile(ctx context.Context, name string, mode CheckpointMode) (CheckpointResult, error) {
	_, handles, err := openFile(name)
	if err != nil {
		return CheckpointResult{}, err
	}
	var last error
	for _, c := range handles {
		if c.readOnly {
			continue
		}
		r, err := c.checkpoint(ctx, mode)
		if !errors.Is(err, ErrClosed) {
			return r, err
		}
		last = err // closed meanwhile: another handle may still be open
	}
	if last == nil {
		return CheckpointResult{}, fmt.Errorf("%w: every handle on %s is opened read-only; a checkpoint writes the database", ErrReadOnly, name)
	}
	return CheckpointResult{}, fmt.Errorf("%w: every handle on %s closed during the checkpoint: %w", ErrNotOpen, name, last)
}

func (c *connector) checkpoint(ctx context.Context, mode CheckpointMode) (CheckpointResult, error) {
	if c.db != nil {
		return CheckpointResult{}, fmt.Errorf("%w: Checkpoint of %s: the dqlite nodes checkpoint their databases themselves", ErrNotAvailable, c.name)
	}
	given := mode
	mode = CheckpointMode(strings.ToUpper(string(mode)))
	switch mode {
	case CheckpointPassive, CheckpointFull, CheckpointRestart, CheckpointTruncate:
	default:
		return CheckpointResult{}, fmt.Errorf("sqlitesafe: checkpoint mode %q: want PASSIVE, FULL, RESTART or TRUNCATE", string(given))
	}
	if err := c.init(ctx); err != nil {
		return CheckpointResult{}, err
	}
	// After init: it decides whether a file the process may not write
	// makes the handle read-only.
	if c.readOnly {
		return CheckpointResult{}, c.refuseWrite("a checkpoint")
	}
	if c.memory {
		return CheckpointResult{Log: -1, Checkpointed: -1}, nil
	}
	r, err := c.file.ckpt.checkpoint(ctx, mode)
	if err != nil {
		return r, fmt.Errorf("sqlitesafe: checkpoint %s: %w", c.name, err)
	}
	return r, nil
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
	if r, err := runCheckpoint(ctx, w, CheckpointTruncate, 0); err == nil {
		c.file.queue.stats.recordCheckpoint(r)
	}
}

package sqlitesafe

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
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
	if err := c.init(ctx); err != nil {
		return CheckpointResult{}, err
	}
	// After init: it decides whether a file the process may not write
	// makes the handle read-only.
	if c.readOnly {
		return CheckpointResult{}, c.refuseWrite("a checkpoint")
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

// backupStepPages is how many pages one backup step copies: 1 MiB of 4 KiB
// pages. Steps of 4 MiB gave the writers a p99.9 1.7-1.9 times their own
// during a backup of 210 MB; steps of 1 MiB, 1.4-1.9 (median 1.6; BENCHMARKS.md).
const backupStepPages = 256

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

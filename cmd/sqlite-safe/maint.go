package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// runBackup is the backup command: a consistent copy of a database, made
// while the applications that use it go on reading and writing.
func runBackup(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("backup", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), "usage: sqlite-safe backup SRC DST\n\n"+
			"Writes a consistent copy of the SQLite database SRC to the new file DST,\n"+
			"while other processes go on reading and writing SRC. SRC is opened\n"+
			"read-only (mode=ro); SQLite itself may create an empty -wal and a -shm\n"+
			"next to a WAL database that no process has open, as any reader does.\n"+
			"DST must not exist; it appears only once the copy is complete.\n")
	}
	pos, err := parseInterspersed(fset, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(pos) != 2 {
		fmt.Fprintf(stderr, "sqlite-safe backup: want SRC and DST, got %d argument(s)\n", len(pos))
		fset.Usage()
		return 2
	}
	src, dst := pos[0], pos[1]
	if err := backup(src, dst, stdout); err != nil {
		fmt.Fprintf(stderr, "sqlite-safe backup: %v\n", err)
		return 1
	}
	return 0
}

// backup copies src to dst with sqlitesafe.Backup and says what it wrote.
func backup(src, dst string, stdout io.Writer) error {
	// Opening a missing file read-only fails anyway; say it plainly.
	if fi, err := os.Stat(src); err != nil {
		return fmt.Errorf("source: %w", err)
	} else if fi.IsDir() {
		return fmt.Errorf("source %s is a directory", src)
	}
	cfg := sqlitesafe.Config{Path: src, Mode: sqlitesafe.ModeReadOnly}
	db, err := sql.Open("sqlite-safe", cfg.FormatDSN())
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer db.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	if err := sqlitesafe.Backup(ctx, db, dst); err != nil {
		return err
	}
	took := time.Since(start)
	fi, err := os.Stat(dst)
	if err != nil {
		return fmt.Errorf("the copy: %w", err)
	}
	what := formatBytes(fi.Size())
	if b, err := readPrefix(dst, 100); err == nil {
		if h, err := parseDBHeader(b); err == nil {
			what += fmt.Sprintf(", %d pages of %d bytes", fi.Size()/int64(h.pageSize), h.pageSize)
		}
	}
	abs, _ := filepath.Abs(dst)
	fmt.Fprintf(stdout, "wrote %s: %s, a consistent copy of %s as of the start of the backup, in %s\n",
		abs, what, src, took.Round(time.Millisecond))
	return nil
}

// checkpointModes are the modes the checkpoint command takes.
var checkpointModes = map[string]sqlitesafe.CheckpointMode{
	"passive":  sqlitesafe.CheckpointPassive,
	"full":     sqlitesafe.CheckpointFull,
	"restart":  sqlitesafe.CheckpointRestart,
	"truncate": sqlitesafe.CheckpointTruncate,
}

// checkpointWait is how long a checkpoint waits for readers and writers
// (the busy timeout of its handle); the usage and the busy message say 5 s.
// Tests shorten it.
var checkpointWait = 5 * time.Second

// runCheckpoint is the checkpoint command: copy a database's -wal into the
// database file now.
func runCheckpoint(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), "usage: sqlite-safe checkpoint FILE [--mode passive|full|restart|truncate]\n\n"+
			"Copies the -wal of the WAL-mode database FILE into the database file now\n"+
			"(PRAGMA wal_checkpoint), and says how many frames it copied. FULL, RESTART and\n"+
			"TRUNCATE wait up to 5 s for readers and writers; TRUNCATE also empties the\n"+
			"-wal file. The exit status is 1 if the checkpoint could not finish (a reader\n"+
			"still uses the -wal: \"sqlite-safe doctor FILE\" shows which process).\n\nflags:\n")
		fset.PrintDefaults()
	}
	modeName := fset.String("mode", "truncate", "checkpoint mode: passive, full, restart or truncate")
	pos, err := parseInterspersed(fset, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	mode, ok := checkpointModes[strings.ToLower(*modeName)]
	var bad string
	switch {
	case len(pos) == 0:
		bad = "missing FILE"
	case len(pos) > 1:
		bad = fmt.Sprintf("unexpected argument %q (one FILE at a time)", pos[1])
	case !ok:
		bad = fmt.Sprintf("invalid --mode %q (want passive, full, restart or truncate)", *modeName)
	}
	if bad != "" {
		fmt.Fprintf(stderr, "sqlite-safe checkpoint: %s\n", bad)
		fset.Usage()
		return 2
	}
	busy, err := checkpoint(pos[0], mode, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "sqlite-safe checkpoint: %v\n", err)
		return 1
	}
	if busy {
		return 1
	}
	return 0
}

// checkpoint checkpoints the database at path and says what happened. It
// refuses a file that is not a WAL-mode database: sqlite-safe would create
// a missing one, and switch a rollback-journal one to WAL.
func checkpoint(path string, mode sqlitesafe.CheckpointMode, stdout io.Writer) (busy bool, err error) {
	b, err := readPrefix(path, 100)
	if err != nil {
		return false, err
	}
	h, err := parseDBHeader(b)
	switch {
	case len(b) == 0:
		return false, fmt.Errorf("%s is empty: nothing to checkpoint", path)
	case err != nil:
		return false, fmt.Errorf("%s is not a SQLite database: %w", path, err)
	case h.writeVer != 2 || h.readVer != 2:
		return false, fmt.Errorf("%s is in rollback-journal mode, not WAL: it has no -wal to checkpoint "+
			"(and the doctor explains how to switch)", path)
	}
	cfg := sqlitesafe.Config{Path: path, Mode: sqlitesafe.ModeReadWrite, BusyTimeout: checkpointWait}
	db, err := sql.Open("sqlite-safe", cfg.FormatDSN())
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := sqlitesafe.Checkpoint(ctx, db, mode)
	if err != nil {
		return false, err
	}
	walSize := "no -wal"
	if fi, err := os.Stat(path + "-wal"); err == nil {
		walSize = "the -wal is " + formatBytes(fi.Size())
	} else if !errors.Is(err, fs.ErrNotExist) {
		walSize = fmt.Sprintf("the -wal: %v", err)
	}
	switch {
	case res.Log < 0:
		fmt.Fprintf(stdout, "checkpoint %s of %s: the database is not in WAL mode; nothing to do\n", mode, path)
	case res.Busy:
		fmt.Fprintf(stdout, "checkpoint %s of %s: busy, it could not finish: %d of the %d frames in the -wal were "+
			"copied into the database; %s. A reader still uses the -wal (or a writer did not let go within 5 s): "+
			"\"sqlite-safe doctor %s\" shows which process.\n", mode, path, res.Checkpointed, res.Log, walSize, path)
	case res.Checkpointed < res.Log:
		fmt.Fprintf(stdout, "checkpoint %s of %s: %d of the %d frames in the -wal were copied into the database; "+
			"the rest are still needed by a reader; %s\n", mode, path, res.Checkpointed, res.Log, walSize)
	default:
		fmt.Fprintf(stdout, "checkpoint %s of %s: done, all %d frames in the -wal are in the database; %s\n",
			mode, path, res.Log, walSize)
	}
	return res.Busy, nil
}

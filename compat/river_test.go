package compat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
)

// River's SQLite driver takes a *sql.DB: riversqlite.New(db). Its docs
// recommend db.SetMaxOpenConns(1) against "database is locked"; on
// sqlite-safe it is not needed, and these tests do not call it.

// riverArgs is a job that records its number.
type riverArgs struct {
	N int `json:"n"`
}

func (riverArgs) Kind() string { return "compat_record" }

// riverWorker records each job's number in the table done, in one
// transaction with the job's completion (river.JobCompleteTx), and counts
// the runs of each number in memory.
type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	db   *sql.DB
	mu   sync.Mutex
	runs map[int]int
}

func (w *riverWorker) Work(ctx context.Context, job *river.Job[riverArgs]) error {
	w.mu.Lock()
	w.runs[job.Args.N]++
	w.mu.Unlock()
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO done (n, job_id) VALUES (?, ?)", job.Args.N, job.ID); err != nil {
		return err
	}
	if _, err := river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job); err != nil {
		return err
	}
	return tx.Commit()
}

// errorLog is a slog handler that keeps the records at level Error and
// above: River logs the failures of its own background work (the
// producer, the completer, leader election, maintenance) there.
type errorLog struct {
	mu      sync.Mutex
	records []string
}

func (h *errorLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorLog) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	h.mu.Lock()
	h.records = append(h.records, msg)
	h.mu.Unlock()
	return nil
}
func (h *errorLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorLog) WithGroup(string) slog.Handler      { return h }

func (h *errorLog) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.records...)
}

// riverSetup migrates River's schema into db, creates the application's
// tables, and returns a client working the default queue with 16 workers,
// stopped when the test ends, and the error of its Start.
func riverSetup(t *testing.T, db *sql.DB) (*river.Client[*sql.Tx], *riverWorker, *errorLog, error) {
	t.Helper()
	ctx := context.Background()
	drv := riversqlite.New(db)
	migrator, err := rivermigrate.New(drv, nil)
	if err != nil {
		t.Fatalf("rivermigrate.New: %v", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		t.Fatalf("River migration: %v", err)
	}
	dbtest.MustExec(t, db,
		"CREATE TABLE done (n INTEGER PRIMARY KEY, job_id INTEGER NOT NULL)",
		"CREATE TABLE orders (n INTEGER PRIMARY KEY)")
	w := &riverWorker{db: db, runs: map[int]int{}}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	logs := &errorLog{}
	client, err := river.NewClient(drv, &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: ormGoroutines}},
		Workers:           workers,
		Logger:            slog.New(logs),
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("river.NewClient: %v", err)
	}
	startErr := client.Start(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		client.Stop(ctx)
	})
	return client, w, logs, startErr
}

// riverInsert inserts job number n: even numbers with client.Insert, odd
// ones with client.InsertTx in a transaction that also inserts the order
// the job is for.
func riverInsert(ctx context.Context, client *river.Client[*sql.Tx], db *sql.DB, n int) error {
	if n%2 == 0 {
		_, err := client.Insert(ctx, riverArgs{N: n}, nil)
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO orders (n) VALUES (?)", n); err != nil {
		return err
	}
	if _, err := client.InsertTx(ctx, tx, riverArgs{N: n}, nil); err != nil {
		return err
	}
	return tx.Commit()
}

// TestRiverJobsOnce inserts jobs into River from 16 goroutines (with Insert
// and, in the application's own transactions, InsertTx) while a client
// started on the same sqlite-safe *sql.DB works them, with 16 workers, each
// completing its job in one transaction with the work: every insert
// succeeds, every job runs exactly once and is completed at its first
// attempt, and River's background work logs no error.
func TestRiverJobsOnce(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db := dbtest.OpenSafe(t, dbtest.Path(t))
	client, w, logs, err := riverSetup(t, db)
	if err != nil {
		t.Fatalf("client.Start: %v", err)
	}
	completed, cancel := client.Subscribe(river.EventKindJobCompleted)
	defer cancel()

	jobs := ormGoroutines * ormIterations
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		return riverInsert(ctx, client, db, g*ormIterations+i)
	})
	dbtest.NoErrors(t, "River inserts on sqlite-safe", errs)

	timeout := time.After(time.Minute)
	for seen := 0; seen < jobs; seen++ {
		select {
		case <-completed:
		case <-timeout:
			t.Fatalf("%d of %d jobs completed after a minute", seen, jobs)
		}
	}
	stopCtx, stopCancel := context.WithTimeout(ctx, 10*time.Second)
	defer stopCancel()
	if err := client.Stop(stopCtx); err != nil {
		t.Fatalf("client.Stop: %v", err)
	}

	w.mu.Lock()
	for n := range jobs {
		if w.runs[n] != 1 {
			t.Errorf("job %d ran %d times, want once", n, w.runs[n])
		}
	}
	if len(w.runs) != jobs {
		t.Errorf("%d job numbers ran, want %d", len(w.runs), jobs)
	}
	w.mu.Unlock()
	if n := dbtest.QueryInt(t, db, "SELECT count(*) FROM done WHERE n BETWEEN 0 AND ?", jobs-1); n != int64(jobs) {
		t.Fatalf("%d jobs recorded their work, want %d", n, jobs)
	}
	if n := dbtest.QueryInt(t, db, "SELECT count(*) FROM orders"); n != int64(jobs/2) {
		t.Fatalf("%d orders, want %d", n, jobs/2)
	}
	if n := dbtest.QueryInt(t, db, "SELECT count(*) FROM river_job"); n != int64(jobs) {
		t.Fatalf("%d jobs in river_job, want %d", n, jobs)
	}
	if n := dbtest.QueryInt(t, db, `SELECT count(*) FROM river_job j JOIN done d ON d.job_id = j.id
		WHERE j.state = 'completed' AND j.attempt = 1 AND j.finalized_at IS NOT NULL`); n != int64(jobs) {
		t.Fatalf("%d jobs completed at their first attempt with their work recorded, want %d", n, jobs)
	}
	if recs := logs.all(); len(recs) > 0 {
		t.Fatalf("River logged %d errors, first: %s", len(recs), recs[0])
	}
}

// TestRiverControlPlainModernc runs the inserts of TestRiverJobsOnce, with
// a client working them, on plain modernc.org/sqlite with its defaults (and
// no SetMaxOpenConns(1)): inserts (and sometimes the client's Start) fail
// with "database is locked", and no job is there whose insert failed.
func TestRiverControlPlainModernc(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	ctx := context.Background()
	db := dbtest.Open(t, "sqlite", dbtest.Path(t))
	client, _, logs, startErr := riverSetup(t, db)
	var (
		mu       sync.Mutex
		inserted []int
	)
	errs := dbtest.Parallel(ormGoroutines, ormIterations, func(g, i int) error {
		n := g*ormIterations + i
		err := riverInsert(ctx, client, db, n)
		if err == nil {
			mu.Lock()
			inserted = append(inserted, n)
			mu.Unlock()
		}
		return err
	})
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := client.Stop(stopCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("client.Stop: %v", err)
	}
	if startErr != nil {
		errs = append(errs, startErr) // the client's Start can fail too
	}
	dbtest.OnlyBusy(t, "River's Start and inserts", errs)
	if n := dbtest.QueryInt(t, db, "SELECT count(*) FROM river_job"); n != int64(len(inserted)) {
		t.Fatalf("%d jobs in river_job, want the %d whose insert succeeded", n, len(inserted))
	}
	t.Logf("River logged %d errors on plain modernc.org/sqlite%s", len(logs.all()), firstOf(logs.all()))
}

// firstOf returns ", first: " and the first of recs, or nothing.
func firstOf(recs []string) string {
	if len(recs) == 0 {
		return ""
	}
	return fmt.Sprintf(", first: %.200s", recs[0])
}

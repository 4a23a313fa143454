package prometheus_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sqlitesafe/sqlitesafe"
	"github.com/sqlitesafe/sqlitesafe/internal/dbtest"
	ssprom "github.com/sqlitesafe/sqlitesafe/prometheus"
)

// openOnly is a driver wrapper that wraps only driver.Driver, as sqlhooks
// does: the collector must see the handle behind it too.
type openOnly struct{ inner driver.Driver }

func (w openOnly) Open(dsn string) (driver.Conn, error) { return w.inner.Open(dsn) }

func init() { sql.Register("prom-test-open-only", openOnly{&sqlitesafe.Driver{}}) }

func mustOpen(t *testing.T, driverName, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// scrape gets /metrics from srv and parses the text exposition.
func scrape(t *testing.T, srv *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: not the text exposition format: %v", err)
	}
	return mfs
}

// series returns the metric of family name whose file label is file, or nil.
func series(mfs map[string]*dto.MetricFamily, name, file string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			if l.GetName() == "file" && l.GetValue() == file {
				return m
			}
		}
	}
	return nil
}

// value is the value of a counter or gauge series; the test fails if there
// is none, or if it has the wrong type.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name, file string, typ dto.MetricType) float64 {
	t.Helper()
	m := series(mfs, name, file)
	if m == nil {
		t.Fatalf("no %s{file=%q} in the scrape", name, file)
	}
	if got := mfs[name].GetType(); got != typ {
		t.Fatalf("%s is a %v, want a %v", name, got, typ)
	}
	if typ == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// checkHistogram compares a histogram series with the Stats histogram it
// comes from.
func checkHistogram(t *testing.T, mfs map[string]*dto.MetricFamily, name, file string, want []sqlitesafe.Bucket, sum time.Duration) {
	t.Helper()
	m := series(mfs, name, file)
	if m == nil || mfs[name].GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("no histogram %s{file=%q} in the scrape", name, file)
	}
	h := m.GetHistogram()
	var n uint64
	finite := 0
	for _, b := range want {
		n += uint64(b.Count)
		if b.UpTo == 0 {
			continue
		}
		if finite >= len(h.Bucket) {
			t.Fatalf("%s has %d buckets, want one per finite Stats bucket", name, len(h.Bucket))
		}
		got := h.Bucket[finite]
		if got.GetUpperBound() != b.UpTo.Seconds() || got.GetCumulativeCount() != n {
			t.Errorf("%s bucket le=%g: %d, want le=%g: %d", name, got.GetUpperBound(), got.GetCumulativeCount(), b.UpTo.Seconds(), n)
		}
		finite++
	}
	if h.GetSampleCount() != n || h.GetSampleSum() != sum.Seconds() {
		t.Errorf("%s: count %d, sum %g; want %d, %g", name, h.GetSampleCount(), h.GetSampleSum(), n, sum.Seconds())
	}
}

// A scrape of the collector during a concurrent load is valid and its
// counters only go up; once the load stops, a scrape says exactly what
// GetStats says. A handle behind a wrapper is scraped too, and its series go
// when it closes.
func TestScrapeDuringLoad(t *testing.T) {
	dbtest.Watchdog(t, 2*time.Minute)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	wrappedPath := filepath.Join(dir, "wrapped.db")
	db := mustOpen(t, "sqlite-safe", path)
	mustExec(t, db,
		"CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
		"INSERT INTO counter VALUES (1, 0)",
		"CREATE TABLE t(x INTEGER PRIMARY KEY)")
	wrapped := mustOpen(t, "prom-test-open-only", wrappedPath)
	mustExec(t, wrapped, "CREATE TABLE t(x INTEGER PRIMARY KEY)")

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(ssprom.NewCollector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.PanicOnError}))
	defer srv.Close()

	st0, err := sqlitesafe.GetStats(db)
	if err != nil {
		t.Fatal(err)
	}
	file := st0.Path

	stop := make(chan struct{})
	var scrapes atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := -1.0
		for {
			select {
			case <-stop:
				return
			default:
			}
			mfs := scrape(t, srv)
			m := series(mfs, "sqlitesafe_writes_total", file)
			if m == nil {
				t.Errorf("a scrape during the load has no sqlitesafe_writes_total for %s", file)
				return
			}
			if v := m.GetCounter().GetValue(); v < last {
				t.Errorf("sqlitesafe_writes_total went back from %g to %g", last, v)
				return
			} else {
				last = v
			}
			scrapes.Add(1)
		}
	}()

	// Each goroutine runs at least each rounds, and on until the
	// collector has been scraped minScrapes times during the load (a
	// scrape competes with the load for the processors: a fixed amount of
	// load saw as few as one).
	const goroutines, each, minScrapes = 8, 25, 3
	loadEnd := time.Now().Add(time.Minute)
	errs, ops := dbtest.ParallelUntil(goroutines, each, func() bool {
		return scrapes.Load() < minScrapes && time.Now().Before(loadEnd)
	}, func(g, i int) error {
		if err := readModifyWrite(db); err != nil {
			return err
		}
		if _, err := db.Exec("INSERT INTO t VALUES (?)", g*1_000_000+i); err != nil {
			return err
		}
		_, err := wrapped.Exec("INSERT INTO t VALUES (?)", g*1_000_000+i)
		return err
	})
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors under load, first: %v", len(errs), errs[0])
	}
	if n := scrapes.Load(); n < minScrapes {
		t.Errorf("only %d scrapes during a minute of load", n)
	}
	var n int64
	if err := db.QueryRow("SELECT n FROM counter").Scan(&n); err != nil || n != ops {
		t.Fatalf("counter = %d, %v; want %d", n, err, ops)
	}
	for _, h := range []*sql.DB{db, wrapped} {
		var rows int64
		if err := h.QueryRow("SELECT count(*) FROM t").Scan(&rows); err != nil || rows != ops {
			t.Fatalf("t has %d rows, %v; want %d", rows, err, ops)
		}
	}
	t.Logf("%d scrapes during %d rounds of load", scrapes.Load(), ops)

	// Quiet now, once the background checkpointer has caught up with the
	// writes (two Stats 300 ms apart, more than its longest interval,
	// agree): the scrape and GetStats agree exactly.
	prev := sqlitesafe.Stats{Checkpoints: -1}
	for i := 0; ; i++ {
		st, err := sqlitesafe.GetStats(db)
		if err != nil {
			t.Fatal(err)
		}
		if st.Checkpoints == prev.Checkpoints && st.Acquires == prev.Acquires {
			break
		}
		if i == 50 {
			t.Fatal("the checkpointer kept running 15 s after the writes stopped")
		}
		prev = st
		time.Sleep(300 * time.Millisecond)
	}
	st, err := sqlitesafe.GetStats(db)
	if err != nil {
		t.Fatal(err)
	}
	mfs := scrape(t, srv)
	counters := map[string]int64{
		"sqlitesafe_writes_total":                     st.Writes,
		"sqlitesafe_group_commits_total":              st.GroupCommits,
		"sqlitesafe_grouped_writes_total":             st.GroupedWrites,
		"sqlitesafe_lock_acquires_total":              st.Acquires,
		"sqlitesafe_lock_timeouts_total":              st.LockTimeouts,
		"sqlitesafe_process_waits_total":              st.ProcessWaits,
		"sqlitesafe_slow_holds_total":                 st.SlowHolds,
		"sqlitesafe_slow_waits_total":                 st.SlowWaits,
		"sqlitesafe_reader_reruns_total":              st.Reruns,
		"sqlitesafe_checkpoints_total":                st.Checkpoints,
		"sqlitesafe_busy_checkpoints_total":           st.BusyCheckpoints,
		"sqlitesafe_checkpoint_delayed_writers_total": st.CheckpointDelayedWriters,
		"sqlitesafe_read_hold_backs_total":            st.ReadHoldBacks,
		"sqlitesafe_held_reads_total":                 st.HeldReads,
		"sqlitesafe_read_anchors_total":               st.ReadAnchors,
		"sqlitesafe_read_yields_total":                st.ReadYields,
	}
	for name, want := range counters {
		if got := value(t, mfs, name, file, dto.MetricType_COUNTER); got != float64(want) {
			t.Errorf("%s = %g, GetStats says %d", name, got, want)
		}
	}
	if st.Writes-st0.Writes < 2*ops {
		t.Errorf("Writes went up by %d, want at least %d", st.Writes-st0.Writes, 2*ops)
	}
	if got := value(t, mfs, "sqlitesafe_process_wait_seconds_total", file, dto.MetricType_COUNTER); got != st.ProcessWaitTotal.Seconds() {
		t.Errorf("sqlitesafe_process_wait_seconds_total = %g, GetStats says %s", got, st.ProcessWaitTotal)
	}
	gauges := map[string]float64{
		"sqlitesafe_queue_depth":           float64(st.QueueDepth),
		"sqlitesafe_lock_held":             0,
		"sqlitesafe_lock_held_seconds":     0,
		"sqlitesafe_lock_wait_max_seconds": st.WaitMax.Seconds(),
		"sqlitesafe_lock_hold_max_seconds": st.HoldMax.Seconds(),
		"sqlitesafe_process_queue":         1,
		"sqlitesafe_readers_open":          float64(st.ReadersOpen),
		"sqlitesafe_readers_idle":          float64(st.ReadersIdle),
		"sqlitesafe_wal_size_bytes":        float64(st.WALSize),
	}
	for name, want := range gauges {
		if got := value(t, mfs, name, file, dto.MetricType_GAUGE); got != want {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
	if st.QueueDepth != 0 || st.Held || !st.ProcessQueue || st.WALSize == 0 || st.ReadersOpen == 0 {
		t.Errorf("GetStats after the load: %+v; want no queue, no holder, the process queue, a -wal, readers", st)
	}
	checkHistogram(t, mfs, "sqlitesafe_lock_wait_seconds", file, st.WaitHistogram, st.WaitTotal)
	checkHistogram(t, mfs, "sqlitesafe_lock_hold_seconds", file, st.HoldHistogram, st.HoldTotal)
	if m := series(mfs, "sqlitesafe_lock_wait_seconds", file); m.GetHistogram().GetSampleCount() != uint64(st.Waits) {
		t.Errorf("sqlitesafe_lock_wait_seconds count %d, GetStats Waits %d", m.GetHistogram().GetSampleCount(), st.Waits)
	}
	if got := value(t, mfs, "sqlitesafe_checkpoint_seconds_total", file, dto.MetricType_COUNTER); got != st.CheckpointTotal.Seconds() {
		t.Errorf("sqlitesafe_checkpoint_seconds_total = %g, GetStats says %s", got, st.CheckpointTotal)
	}
	// The background checkpointer may or may not have run during the load.
	if has := series(mfs, "sqlitesafe_last_checkpoint_timestamp_seconds", file) != nil; has != !st.LastCheckpointAt.IsZero() {
		t.Errorf("a last_checkpoint series: %v; a checkpoint ran: %v", has, !st.LastCheckpointAt.IsZero())
	}

	// A checkpoint shows up.
	r, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointTruncate)
	if err != nil {
		t.Fatal(err)
	}
	mfs = scrape(t, srv)
	st, _ = sqlitesafe.GetStats(db)
	if got := value(t, mfs, "sqlitesafe_last_checkpoint_checkpointed_frames", file, dto.MetricType_GAUGE); got != float64(r.Checkpointed) {
		t.Errorf("sqlitesafe_last_checkpoint_checkpointed_frames = %g, want %d", got, r.Checkpointed)
	}
	if got := value(t, mfs, "sqlitesafe_last_checkpoint_timestamp_seconds", file, dto.MetricType_GAUGE); got != float64(st.LastCheckpointAt.UnixNano())/1e9 {
		t.Errorf("sqlitesafe_last_checkpoint_timestamp_seconds = %f, want %v", got, st.LastCheckpointAt)
	}
	if got := value(t, mfs, "sqlitesafe_wal_size_bytes", file, dto.MetricType_GAUGE); got != 0 {
		t.Errorf("sqlitesafe_wal_size_bytes = %g after a TRUNCATE checkpoint, want 0", got)
	}

	// The wrapped handle: scraped under its own path, gone once closed.
	ws, err := sqlitesafe.GetStatsFile(wrappedPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := value(t, mfs, "sqlitesafe_writes_total", ws.Path, dto.MetricType_COUNTER); got != float64(ws.Writes) || ws.Writes < ops {
		t.Errorf("wrapped handle: sqlitesafe_writes_total = %g, GetStatsFile says %d (want at least %d)", got, ws.Writes, ops)
	}
	if err := wrapped.Close(); err != nil {
		t.Fatal(err)
	}
	if m := series(scrape(t, srv), "sqlitesafe_writes_total", ws.Path); m != nil {
		t.Errorf("the wrapped handle's series are still scraped after it closed")
	}
}

func readModifyWrite(db *sql.DB) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
		return err
	}
	if _, err := tx.Exec("UPDATE counter SET n = ? WHERE id = 1", n+1); err != nil {
		return err
	}
	return tx.Commit()
}

// The metrics follow Prometheus's naming conventions (promlint), and every
// metric the collector sends is one it describes (the pedantic registry
// checks that on each Gather).
func TestLint(t *testing.T) {
	db := mustOpen(t, "sqlite-safe", filepath.Join(t.TempDir(), "app.db"))
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	if _, err := sqlitesafe.Checkpoint(context.Background(), db, sqlitesafe.CheckpointPassive); err != nil {
		t.Fatal(err)
	}
	c := ssprom.NewCollector()
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Errorf("Gather: %v", err)
	}
	if n := testutil.CollectAndCount(c, "sqlitesafe_writes_total"); n < 1 {
		t.Errorf("%d sqlitesafe_writes_total series with a file open, want at least 1", n)
	}
}

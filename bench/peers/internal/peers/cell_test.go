package peers

import (
	"database/sql"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // registers "sqlite"
)

// tuned is modernc.org/sqlite configured as the benchmark's peers are.
func tuned(path, sync string) string {
	return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")&_txlock=immediate"
}

// family is a runner's family on modernc.org/sqlite.
var family = Family{
	Configs: map[string]Opener{
		"modernc":        OnePool("sqlite", tuned),
		"modernc-2pools": TwoPools("sqlite", tuned),
		"modernc-limit":  OneConn("sqlite", tuned),
	},
	ProbeDriver: "sqlite",
	ProbeDSN:    func(path string) string { return "file:" + path + "?_pragma=busy_timeout(0)" },
}

// watchdog fails the test binary with every goroutine's stack if the test
// is still running after d: a hang must not stall the run.
func watchdog(t *testing.T, d time.Duration) {
	timer := time.AfterFunc(d, func() {
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		panic(t.Name() + ": still running after " + d.String())
	})
	t.Cleanup(func() { timer.Stop() })
}

// templateCopy creates a template of 100 rows in a temporary directory
// and returns the path of a copy of it, as cmd/peers gives each cell.
func templateCopy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "template.db")
	if err := createTemplate(family.Configs["modernc"], tmpl, 100); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.db")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCellsCountExactly: every workload, on one pool, two pools and the
// limit connection, ends with every count exact, the settings as
// configured and calls made in every stream.
func TestCellsCountExactly(t *testing.T) {
	watchdog(t, 5*time.Minute)
	for _, wl := range Workloads {
		configs := []string{"modernc", "modernc-2pools"}
		if wl.Limit() {
			configs = []string{"modernc-limit"}
		}
		for _, name := range configs {
			t.Run(wl.Name+"/"+name, func(t *testing.T) {
				cfg, _ := LookupConfig(name)
				res, err := runCell(family, family.Configs[name], cfg, wl, templateCopy(t), 10*time.Millisecond, 40*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Problems) > 0 {
					t.Fatalf("problems: %v", res.Problems)
				}
				if len(res.Streams) != len(wl.Streams()) {
					t.Fatalf("%d streams, want %v", len(res.Streams), wl.Streams())
				}
				// The lone inserter of W4-8w may not be scheduled at all in
				// 40 ms beside 8 readers on 2 cores: only the main stream
				// must have made calls.
				for i, s := range res.Streams {
					if s.Name != wl.Streams()[i] || s.Errors != 0 || (i == 0 && (s.Ops < 1 || s.PerSec <= 0)) {
						t.Errorf("stream %+v: want %s with calls and no error", s, wl.Streams()[i])
					}
				}
				if len(res.Settings) != 2 || res.Settings[0].TxLock != "immediate" || res.SQLite == "" {
					t.Errorf("settings %+v, SQLite %q", res.Settings, res.SQLite)
				}
			})
		}
	}
}

// TestCountCheckFails: a row the calls did not insert, added by a trigger,
// makes the cell list a problem; so does a counter increment more.
func TestCountCheckFails(t *testing.T) {
	watchdog(t, 2*time.Minute)
	for _, tc := range []struct {
		workload, trigger, want string
	}{
		{"W1-8", "CREATE TRIGGER extra AFTER INSERT ON t WHEN NEW.v = 'x' BEGIN INSERT INTO t(v) VALUES ('y'); END",
			"new rows, the successful calls inserted"},
		{"W3-32", "CREATE TRIGGER extra AFTER UPDATE ON counter WHEN NEW.id = 1 AND OLD.n = 0 BEGIN UPDATE counter SET n = n + 1 WHERE id = 2; END",
			"the counters rose by"},
	} {
		t.Run(tc.workload, func(t *testing.T) {
			path := templateCopy(t)
			db, err := sql.Open("sqlite", tuned(path, "NORMAL"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(tc.trigger); err != nil {
				t.Fatal(err)
			}
			db.Close()
			wl, _ := LookupWorkload(tc.workload)
			cfg, _ := LookupConfig("modernc")
			res, err := runCell(family, family.Configs["modernc"], cfg, wl, path, 0, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(res.Problems, "; "), tc.want) {
				t.Fatalf("problems %q, want one saying %q", res.Problems, tc.want)
			}
		})
	}
}

// TestSettingsProblems: a configuration that begins its write
// transactions deferred, or has another busy timeout, is reported as such:
// the settings read back are what the tables print.
func TestSettingsProblems(t *testing.T) {
	watchdog(t, time.Minute)
	for _, tc := range []struct {
		dsn  DSNFunc
		want []string
	}{
		{func(path, sync string) string {
			return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=synchronous(" + sync + ")"
		}, []string{"write tx: a write transaction began deferred, want immediate"}},
		{func(path, sync string) string {
			return "file:" + path + "?_pragma=busy_timeout(1000)&_pragma=synchronous(FULL)&_txlock=immediate"
		}, []string{
			"write tx: busy_timeout is 1000, want 5000",
			"write tx: synchronous is 2, want 1 (NORMAL)",
			"query: busy_timeout is 1000, want 5000",
		}},
	} {
		path := templateCopy(t)
		h, err := OnePool("sqlite", tc.dsn)(path, "NORMAL")
		if err != nil {
			t.Fatal(err)
		}
		settings, problems, err := readSettings(family, h, path, "NORMAL")
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(strings.Join(problems, "\n"), w) {
				t.Errorf("problems %q lack %q (settings %+v)", problems, w, settings)
			}
		}
	}
}

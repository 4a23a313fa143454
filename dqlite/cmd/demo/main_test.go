//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/cluster"
	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/launch"
)

// TestMain runs the demo itself when the test binary is started as the child of TestInterrupt.
func TestMain(m *testing.M) {
	if os.Getenv("DQLITE_DEMO_CHILD") == "1" {
		os.Exit(command(strings.Fields(os.Getenv("DQLITE_DEMO_ARGS")), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// leftovers fails t if a dqlite-demo process or a demo directory is left under tmp.
func leftovers(t *testing.T, tmp string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(launch.ProcessesUnder(tmp)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if pids := launch.ProcessesUnder(tmp); len(pids) > 0 {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Errorf("dqlite-demo processes left running: %v", pids)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the temporary directory: %s", e.Name())
	}
}

// tableRows reads the side-by-side table: the header's column names, and each row's cells.
func tableRows(t *testing.T, out string, names []string) map[string][]string {
	t.Helper()
	sep := regexp.MustCompile(`\s{3,}`)
	rows := map[string][]string{}
	header := false
	for _, line := range strings.Split(out, "\n") {
		cells := sep.Split(strings.TrimSpace(line), -1)
		if !header {
			header = strings.HasPrefix(line, " ") && strings.Join(cells, "|") == strings.Join(names, "|")
			continue
		}
		if len(cells) == 1+len(names) {
			rows[cells[0]] = cells[1:]
		}
	}
	if !header {
		t.Fatalf("no header with columns %q in:\n%s", names, out)
	}
	return rows
}

// TestDemo runs the demo's three runs, short, and reads the table: each run killed the leader,
// writes resumed, and every write reported successful is in the database; sqlite-safe's run has
// no "database is locked", nothing applied twice and no failed write that committed (the exit
// status says so too). Nothing is left running or on disk after it.
func TestDemo(t *testing.T) {
	cluster.Skip(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- command([]string{"-goroutines", "4", "-duration", "500ms"}, &stdout, &stderr)
	}()
	var code int
	select {
	case code = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the demo did not finish within 3 minutes; stderr:\n%s", stderr.String())
	}
	out := stdout.String()
	if code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	names := []string{"go-dqlite", "go-dqlite + mutex", "sqlite-safe"}
	rows := tableRows(t, out, names)
	for _, label := range []string{"writes", "errors", "leader killed at", "writes resumed after",
		"in flight at the kill", "lost (acknowledged, absent)", "applied twice", "failed but committed", "lost updates"} {
		if len(rows[label]) != len(names) {
			t.Errorf("row %q missing or not %d columns in:\n%s", label, len(names), out)
		}
	}
	for i, name := range names {
		if got := rows["lost (acknowledged, absent)"][i]; got != "0" {
			t.Errorf("%s: %s writes reported successful are not in the database", name, got)
		}
		if got := rows["lost updates"][i]; got != "0" {
			t.Errorf("%s: %s lost updates", name, got)
		}
		if !regexp.MustCompile(`^\d+\.\d\ds$`).MatchString(rows["writes resumed after"][i]) {
			t.Errorf("%s: writes resumed after %q", name, rows["writes resumed after"][i])
		}
	}
	// Behind the mutex and in sqlite-safe no write meets another: no "database is locked".
	for _, i := range []int{1, 2} {
		if got := rows["errors"][i]; got != "0" && !strings.HasSuffix(got, "(0 locked)") {
			t.Errorf("%s: errors %q", names[i], got)
		}
	}
	for _, label := range []string{"applied twice", "failed but committed"} {
		if got := rows[label][2]; got != "0" {
			t.Errorf("sqlite-safe: %s %s", label, got)
		}
	}
	if n := strings.Count(stderr.String(), ": SIGKILL of the leader, node "); n != 3 {
		t.Errorf("%d kills reported, want 3; stderr:\n%s", n, stderr.String())
	}
	leftovers(t, tmp)
}

// TestInterrupt: Ctrl-C (SIGINT) in the middle of a run ends the demo with status 130, every node
// stopped and its directory removed.
func TestInterrupt(t *testing.T) {
	cluster.Skip(t)
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DQLITE_DEMO_CHILD=1", "TMPDIR="+tmp,
		"DQLITE_DEMO_ARGS=-runs mutex -goroutines 4 -duration 20s")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var stderr bytes.Buffer
	writing := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderrPipe)
		signalled := false
		for sc.Scan() {
			stderr.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "goroutines writing") {
				signalled = true
				close(writing)
			}
		}
		_, _ = io.Copy(&stderr, stderrPipe)
	}()
	select {
	case <-writing:
	case <-time.After(60 * time.Second):
		t.Fatalf("the demo did not start writing within 60 s; stderr:\n%s", stderr.String())
	}
	if n := len(launch.ProcessesUnder(tmp)); n != 3 {
		t.Errorf("%d nodes running while the demo writes, want 3", n)
	}
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { <-copied; waited <- cmd.Wait() }()
	select {
	case err = <-waited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the demo did not exit within 20 s of SIGINT; stderr:\n%s", stderr.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v, want status %d; stderr:\n%s", err, exitInterrupted, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted; every node stopped") {
		t.Errorf("stderr does not say the nodes were stopped:\n%s", stderr.String())
	}
	leftovers(t, tmp)
}

// TestMissingBinary: without dqlite-demo on PATH the demo says what to install and fails.
func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var stdout, stderr bytes.Buffer
	code := command(nil, &stdout, &stderr)
	if code == 0 {
		t.Fatalf("exit status 0 without dqlite-demo; stdout:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "apt-get install -y go-dqlite") {
		t.Errorf("stderr does not name the package: %q", stderr.String())
	}
}

// TestBadFlags: usage errors exit 2 and name the problem.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-runs", "plain"}, `invalid -runs entry "plain"`},
		{[]string{"-goroutines", "0"}, "-goroutines must be at least 1"},
		{[]string{"-duration", "0s"}, "-duration must be positive"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		if code := command(tc.args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit status %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: stderr %q does not contain %q", tc.args, stderr.String(), tc.want)
		}
	}
}

// TestCheck: the outcome check finds, in a real database on a cluster, a write reported
// successful that is absent (lost), one reported failed that is present (failed but committed),
// and an increment applied twice, and counts the writes in flight at the kill.
func TestCheck(t *testing.T) {
	c := cluster.Start(t, 3)
	db := c.OpenPlain(t, "check")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range schema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now()
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	r := &run{setup: setup{key: "go-dqlite", name: "go-dqlite"}, db: db, start: base, killSent: at(100)}
	failed := errors.New("driver: bad connection")
	// What is in the database: insert 1 and 2, transaction 3 once, increment 4 twice.
	for _, q := range []string{
		"INSERT INTO events (op, worker) VALUES (1, 0), (2, 0)",
		"UPDATE accounts SET balance = balance + 1 WHERE id = 1",
		"INSERT INTO applied (op, kind) VALUES (3, 'transaction')",
		"UPDATE counters SET v = v + 1, op = 4 WHERE id = 1",
		"UPDATE counters SET v = v + 1, op = 4 WHERE id = 2",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	r.ops = []op{
		{id: 1, kind: opInsert, start: at(0), sent: at(0), end: at(10)},                 // ok
		{id: 2, kind: opInsert, start: at(90), sent: at(90), end: at(200), err: failed}, // failed but committed, in flight
		{id: 3, kind: opTx, start: at(20), sent: at(20), end: at(30)},                   // ok
		{id: 4, kind: opIncr, start: at(95), sent: at(95), end: at(300)},                // applied twice, in flight
		{id: 5, kind: opTx, start: at(40), sent: at(40), end: at(50)},                   // lost
		{id: 6, kind: opTx, start: at(60), sent: at(60), end: at(70), err: failed},      // failed, absent: fine
	}
	r.resumedAt.Store(at(400).UnixNano())
	out, err := r.check(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ops []op) []int64 {
		var s []int64
		for _, o := range ops {
			s = append(s, o.id)
		}
		return s
	}
	if got := ids(out.lost); len(got) != 1 || got[0] != 5 {
		t.Errorf("lost %v, want [5]", got)
	}
	if got := ids(out.failedButCommitted); len(got) != 1 || got[0] != 2 {
		t.Errorf("failed but committed %v, want [2]", got)
	}
	if got := ids(out.doubled); len(got) != 1 || got[0] != 4 {
		t.Errorf("applied twice %v, want [4]", got)
	}
	if out.ops != 6 || out.ok != 4 || out.failed != 2 {
		t.Errorf("ops %d ok %d failed %d, want 6, 4, 2", out.ops, out.ok, out.failed)
	}
	if out.inFlight != 2 || out.inFlightCommitted != 2 {
		t.Errorf("in flight %d (%d committed), want 2 (2)", out.inFlight, out.inFlightCommitted)
	}
	if out.gap != 300*time.Millisecond {
		t.Errorf("gap %v, want 300ms", out.gap)
	}
	if out.lostUpdates != 0 {
		t.Errorf("lost updates %d, want 0 (one transaction logged, balances sum to 1)", out.lostUpdates)
	}
	if out.clean() {
		t.Error("clean() is true for an outcome with a lost write")
	}
}

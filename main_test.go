package sqlitesafe_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// childEnv names the environment variable that makes the test binary a
// child process of a multi-process test instead of running the tests: it
// holds the child's childSpec as JSON.
const childEnv = "SQLITESAFE_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childMain(spec))
	}
	os.Exit(m.Run())
}

// raceEnabled reports whether the test binary was built with -race, which
// makes modernc.org/sqlite many times slower: the multi-process tests do
// less work then.
var raceEnabled = func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}()

// childSpec is what a child process is asked to do.
type childSpec struct {
	Role       string        // a key of childRoles
	Driver     string        // "sqlite-safe" or "sqlite"
	DSN        string        // the database to open
	Goroutines int           // concurrent workers
	Iterations int           // per worker; 0 means: until Duration has passed
	Duration   time.Duration // with Iterations 0: how long to work
	Rows       int           // rows per transaction, for the roles that insert
	Pause      time.Duration // a pause inside each transaction
	Base       int64         // the first id a crash writer uses
	Source     int           // a number the child writes into its rows
	Deadline   time.Time     // the child exits, with status 3, at this time
	WaitGo     bool          // wait for "go" on stdin after printing "ready"
	Latencies  bool          // report the latency of every operation
	Dir        string        // a directory, for the roles that work on its files
	Env        []string      `json:"-"` // more of the child's environment, such as sqlitesched.Env+"=off"
}

// childResult is what a child reports on its "result" line.
type childResult struct {
	Committed    int64    // operations that succeeded
	Errors       int64    // operations that failed
	Busy         int64    // of which SQLITE_BUSY (or an extended code of it)
	LockTimeouts int64    // of which sqlitesafe.ErrLockTimeout
	Samples      []string // the first few error messages
	Latencies    []int64  // of every operation, in ns, when asked for
	MaxGap       int64    // ns: the longest time the process went without a commit
	Elapsed      int64    // ns: from "go" to the end of the last operation
}

// childRoles are the things a child process can do. Each runs in the child,
// reads its parameters from spec and writes its report into res; what it
// prints on stdout besides is up to it.
var childRoles = map[string]func(spec childSpec, db *sql.DB, res *childResult) error{}

// childMain runs a child process and returns its exit status.
func childMain(specJSON string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "child: bad spec: %v\n", err)
		return 2
	}
	// Whatever happens, the child does not outlive its deadline.
	time.AfterFunc(time.Until(spec.Deadline), func() {
		fmt.Fprintf(os.Stderr, "child %s: deadline passed\n", spec.Role)
		os.Exit(3)
	})
	role := childRoles[spec.Role]
	if role == nil {
		fmt.Fprintf(os.Stderr, "child: unknown role %q\n", spec.Role)
		return 2
	}
	db, err := sql.Open(spec.Driver, spec.DSN)
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: open: %v\n", err)
		return 1
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		fmt.Fprintf(os.Stderr, "child: ping: %v\n", err)
		return 1
	}
	fmt.Println("ready")
	if spec.WaitGo {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil || line != "go\n" {
			fmt.Fprintf(os.Stderr, "child: waiting for go: %q %v\n", line, err)
			return 1
		}
	}
	var res childResult
	if err := role(spec, db, &res); err != nil {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", spec.Role, err)
		return 1
	}
	out, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		return 1
	}
	fmt.Printf("result %s\n", out)
	return 0
}

// tally records the outcome of operations in a child; safe for concurrent
// use.
type tally struct {
	mu      sync.Mutex
	res     *childResult
	start   time.Time
	last    time.Time // the last commit
	latency bool      // record every latency
}

func newTally(res *childResult, latency bool) *tally {
	now := time.Now()
	return &tally{res: res, start: now, last: now, latency: latency}
}

// done records an operation that started at start and ended now with err.
func (t *tally) done(start time.Time, err error) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.latency {
		t.res.Latencies = append(t.res.Latencies, int64(now.Sub(start)))
	}
	if err == nil {
		t.res.Committed++
		if gap := int64(now.Sub(t.last)); gap > t.res.MaxGap {
			t.res.MaxGap = gap
		}
		t.last = now
		return
	}
	t.res.Errors++
	switch {
	case isBusy(err):
		t.res.Busy++
	case errors.Is(err, sqlitesafe.ErrLockTimeout):
		t.res.LockTimeouts++
	}
	if len(t.res.Samples) < 5 {
		t.res.Samples = append(t.res.Samples, err.Error())
	}
}

// finish closes the tally: the time since the last commit counts as a gap.
func (t *tally) finish() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if gap := int64(now.Sub(t.last)); gap > t.res.MaxGap {
		t.res.MaxGap = gap
	}
	t.res.Elapsed = int64(now.Sub(t.start))
}

// work runs op on spec.Goroutines goroutines, spec.Iterations times each or
// until spec.Duration has passed, and tallies the outcomes (and, if
// spec.Latencies, the latency of each).
func work(spec childSpec, res *childResult, op func(g, i int) error) {
	tl := newTally(res, spec.Latencies)
	end := tl.start.Add(spec.Duration)
	var wg sync.WaitGroup
	for g := range spec.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; spec.Iterations == 0 || i < spec.Iterations; i++ {
				if spec.Iterations == 0 && !time.Now().Before(end) {
					return
				}
				start := time.Now()
				tl.done(start, op(g, i))
			}
		}()
	}
	wg.Wait()
	tl.finish()
}

// child is a running child process, seen from the parent.
type child struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer // written by exec until Wait returns

	mu    sync.Mutex
	lines []string      // stdout, line by line
	ready chan struct{} // closed when the child prints "ready"
	eof   chan struct{} // closed when its stdout ends

	waitOnce sync.Once
	waitErr  error
}

// startChild starts the test binary as a child process doing spec. The child
// is killed, if still running, when the test ends.
func startChild(t testing.TB, spec childSpec) *child {
	t.Helper()
	if spec.Deadline.IsZero() {
		spec.Deadline = time.Now().Add(time.Minute)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The parent's own deadline for the child: a little after the child's.
	ctx, cancel := context.WithDeadline(context.Background(), spec.Deadline.Add(5*time.Second))
	c := &child{t: t, ready: make(chan struct{}), eof: make(chan struct{})}
	c.cmd = exec.CommandContext(ctx, exe, "-test.run=^$")
	c.cmd.Env = append(append(os.Environ(), spec.Env...), childEnv+"="+string(specJSON))
	c.cmd.Stderr = &c.stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.wait()
		cancel()
	})
	go func() {
		defer close(c.eof)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 64<<20) // a result line with latencies is long
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.lines = append(c.lines, line)
			c.mu.Unlock()
			if line == "ready" {
				close(c.ready)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	return c
}

// waitReady waits until the child prints "ready", and fails the test if it
// dies or takes longer than d.
func (c *child) waitReady(d time.Duration) {
	c.t.Helper()
	select {
	case <-c.ready:
	case <-c.eof:
		c.wait()
		c.t.Fatalf("child %d died before it was ready: %v\n%s", c.cmd.Process.Pid, c.waitErr, c.stderr.String())
	case <-time.After(d):
		c.t.Fatalf("child %d not ready after %s", c.cmd.Process.Pid, d)
	}
}

// start tells a child waiting for "go" to go.
func (c *child) start() {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		c.t.Fatalf("child %d: %v", c.cmd.Process.Pid, err)
	}
}

// wait waits for the child to exit, reading its stdout to the end first.
func (c *child) wait() error {
	c.waitOnce.Do(func() {
		<-c.eof
		c.waitErr = c.cmd.Wait()
	})
	return c.waitErr
}

// kill SIGKILLs the child and waits for it to die; it fails the test unless
// the kill is what ended it.
func (c *child) kill() {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGKILL)
	err := c.wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return
		}
	}
	c.t.Fatalf("child %d ended before it was killed: %v\n%s", c.cmd.Process.Pid, err, c.stderr.String())
}

// output returns the lines the child printed so far.
func (c *child) output() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// result waits for the child to exit, fails the test unless it exited with
// status 0, and returns the result it printed.
func (c *child) result() childResult {
	c.t.Helper()
	if err := c.wait(); err != nil {
		c.t.Fatalf("child %d: %v\n%s", c.cmd.Process.Pid, err, c.stderr.String())
	}
	for _, line := range c.output() {
		if js, ok := strings.CutPrefix(line, "result "); ok {
			var res childResult
			if err := json.Unmarshal([]byte(js), &res); err != nil {
				c.t.Fatalf("child %d: result %q: %v", c.cmd.Process.Pid, js, err)
			}
			return res
		}
	}
	c.t.Fatalf("child %d printed no result\n%s", c.cmd.Process.Pid, c.stderr.String())
	return childResult{}
}

// runChildren starts one child per spec, waits until all are ready, starts
// them together and returns their results.
func runChildren(t testing.TB, specs []childSpec) []childResult {
	t.Helper()
	children := make([]*child, len(specs))
	for i, spec := range specs {
		spec.WaitGo = true
		children[i] = startChild(t, spec)
	}
	for _, c := range children {
		c.waitReady(30 * time.Second)
	}
	for _, c := range children {
		c.start()
	}
	results := make([]childResult, len(children))
	for i, c := range children {
		results[i] = c.result()
	}
	return results
}

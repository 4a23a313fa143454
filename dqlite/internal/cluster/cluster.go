//go:build linux

// Package cluster starts dqlite clusters of dqlite-demo nodes on 127.0.0.1 for tests.
//
// Each node is a dqlite-demo process (Debian's go-dqlite package: apt-get install -y go-dqlite)
// in its own process group, with its data directory under the test's temporary directory. The
// cluster stops every node it started with SIGKILL, by PID and by process group, in t.Cleanup, so
// that nothing is left running when a test fails; the nodes also get SIGKILL from the kernel when
// the test binary dies (Pdeathsig).
//
//	c := cluster.Start(t, 3)
//	db := c.OpenPlain(t, "app.db") // plain go-dqlite, for controls
//	leader := c.MustLeader(t)
//	c.Kill(t, leader)
//	c.Restart(t, leader)
package cluster

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/canonical/go-dqlite/client"
	dqdriver "github.com/canonical/go-dqlite/driver"
)

// Binary is the program each node runs.
const Binary = "dqlite-demo"

// InstallHint says how to get Binary on Debian.
const InstallHint = "apt-get install -y go-dqlite"

// StartTimeout bounds the wait for a fresh cluster to reach its voters, and for a restarted node
// to be back in it.
const StartTimeout = 30 * time.Second

// Node is one dqlite-demo process of a Cluster.
type Node struct {
	// Index is the node's position in Cluster.Nodes, from 0.
	Index int
	// API is the address of dqlite-demo's HTTP API, 127.0.0.1:PORT.
	API string
	// DB is the address the node serves dqlite on, 127.0.0.1:PORT; clients connect here.
	DB string
	// Dir is the node's data directory.
	Dir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	log  *os.File
}

// PID is the process id of the running node, or 0 when it is not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil || n.exited() {
		return 0
	}
	return n.cmd.Process.Pid
}

// Running reports whether the node's process is alive (started and not yet exited).
func (n *Node) Running() bool { return n.PID() != 0 }

// exited reports whether the current process has been waited for; n.mu is held.
func (n *Node) exited() bool {
	if n.done == nil {
		return true
	}
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// LogPath is the file that holds the node's stdout and stderr, over all its runs.
func (n *Node) LogPath() string { return n.Dir + ".log" }

// Cluster is a set of dqlite-demo nodes started by Start.
type Cluster struct {
	// Nodes are the cluster's nodes; Nodes[0] is the one the others joined.
	Nodes []*Node
	// Dir holds every node's data directory and log.
	Dir string
}

// Skip skips t with a message naming the package to install when Binary is not on PATH.
func Skip(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		t.Skipf("%s not found (%v): install the dqlite servers with: %s", Binary, err, InstallHint)
	}
}

// Start starts n nodes on free 127.0.0.1 ports, the first alone and the others joining it, and
// waits until the leader reports n voters (at most 3: dqlite-demo keeps the others standby or
// spare). It skips t when Binary is missing and registers a cleanup that SIGKILLs every node.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	Skip(t)
	if n < 1 {
		t.Fatalf("cluster: want at least 1 node, got %d", n)
	}
	c := &Cluster{Dir: t.TempDir()}
	t.Cleanup(func() { // runs before t.TempDir's own cleanup removes Dir
		c.StopAll()
		if t.Failed() {
			c.logTails(t)
		}
	})
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			// A port picked as free may have been taken by someone else before the node bound it.
			t.Logf("cluster: start attempt %d failed, retrying on new ports: %v", attempt, lastErr)
			c.StopAll()
			c.Nodes = nil
		}
		if lastErr = c.start(attempt, n); lastErr == nil {
			return c
		}
	}
	t.Fatalf("cluster: %d nodes did not start: %v", n, lastErr)
	return nil
}

func (c *Cluster) start(attempt, n int) error {
	for i := 0; i < n; i++ {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		node := &Node{
			Index: i,
			API:   fmt.Sprintf("127.0.0.1:%d", ports[0]),
			DB:    fmt.Sprintf("127.0.0.1:%d", ports[1]),
			Dir:   filepath.Join(c.Dir, fmt.Sprintf("try%d-n%d", attempt, i+1)),
		}
		c.Nodes = append(c.Nodes, node)
		if err := c.spawn(node); err != nil {
			return err
		}
		if i == 0 {
			// The others join this one: it must be serving before they ask.
			ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
			err := c.waitNode(ctx, node)
			cancel()
			if err != nil {
				return err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	want := n
	if want > 3 {
		want = 3
	}
	return c.WaitVoters(ctx, want)
}

// spawn starts node's process, joining Nodes[0] unless node is Nodes[0].
func (c *Cluster) spawn(node *Node) error {
	node.mu.Lock()
	defer node.mu.Unlock()
	if !node.exited() {
		return fmt.Errorf("cluster: node %d is already running (pid %d)", node.Index+1, node.cmd.Process.Pid)
	}
	args := []string{"--api", node.API, "--db", node.DB, "-D", node.Dir}
	for _, other := range c.Nodes {
		if other != node {
			args = append(args, "--join", other.DB)
		}
	}
	logf, err := os.OpenFile(node.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	fmt.Fprintf(logf, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), Binary, strings.Join(args, " "))
	cmd := exec.Command(Binary, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cluster: start node %d: %w", node.Index+1, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	node.cmd, node.done, node.log = cmd, done, logf
	return nil
}

// waitNode waits until node answers a leadership query with a known leader, which it does once it
// is part of a cluster with a leader, and serves its API, which it does once it has started.
func (c *Cluster) waitNode(ctx context.Context, node *Node) error {
	for {
		if !node.Running() {
			return fmt.Errorf("cluster: node %d (%s) exited: %s", node.Index+1, node.DB, tail(node.LogPath(), 5))
		}
		leader, err := nodeLeader(ctx, node.DB)
		if err == nil && leader != "" {
			// dqlite-demo listens on its API address only after its own start-up statement
			// (a CREATE TABLE in database "demo") has run: a node killed or whose leader is
			// killed before then exits with "call exec-sql ...: EOF".
			var conn net.Conn
			if conn, err = net.DialTimeout("tcp", node.API, time.Second); err == nil {
				conn.Close()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: node %d (%s) has no leader: %v (last error %v)", node.Index+1, node.DB, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nodeLeader asks the node at addr (not the cluster) who it thinks the leader is.
func nodeLeader(ctx context.Context, addr string) (string, error) {
	actx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cli, err := client.New(actx, addr)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	info, err := cli.Leader(actx)
	if err != nil {
		return "", err
	}
	if info == nil {
		return "", nil
	}
	return info.Address, nil
}

// AskLeader asks node itself (not the cluster) which address it takes for the leader's; "" when
// it knows none.
func (c *Cluster) AskLeader(ctx context.Context, node *Node) (string, error) {
	return nodeLeader(ctx, node.DB)
}

// Addresses are the DB addresses of all nodes, running or not.
func (c *Cluster) Addresses() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.DB
	}
	return addrs
}

// Store is a node store holding every node's DB address, for go-dqlite's client and driver.
func (c *Cluster) Store() client.NodeStore {
	infos := make([]client.NodeInfo, len(c.Nodes))
	for i, n := range c.Nodes {
		infos[i] = client.NodeInfo{Address: n.DB}
	}
	store := client.NewInmemNodeStore()
	_ = store.Set(context.Background(), infos)
	return store
}

// Info asks the cluster's leader for the cluster's members.
func (c *Cluster) Info(ctx context.Context) ([]client.NodeInfo, error) {
	cli, err := client.FindLeader(ctx, c.Store())
	if err != nil {
		return nil, fmt.Errorf("cluster: find leader: %w", err)
	}
	defer cli.Close()
	return cli.Cluster(ctx)
}

// WaitVoters waits until the leader reports at least want voters and every voter that is one of
// ours is running and agrees there is a leader.
func (c *Cluster) WaitVoters(ctx context.Context, want int) error {
	var last string
	for {
		infos, err := c.Info(ctx)
		if err == nil {
			voters := 0
			ready := true
			for _, info := range infos {
				if info.Role != client.Voter {
					continue
				}
				voters++
				node := c.byAddress(info.Address)
				if node == nil || !node.Running() {
					ready = false
					continue
				}
				if l, err := nodeLeader(ctx, node.DB); err != nil || l == "" {
					ready = false
				}
			}
			if voters >= want && ready {
				return nil
			}
			last = fmt.Sprintf("%d voters of %d wanted in %v", voters, want, infos)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for %d voters: %v (last: %s)", want, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) byAddress(addr string) *Node {
	for _, n := range c.Nodes {
		if n.DB == addr {
			return n
		}
	}
	return nil
}

// Leader asks the cluster for its leader and returns our node of that address. It waits (until
// ctx is done) while there is no leader.
func (c *Cluster) Leader(ctx context.Context) (*Node, error) {
	cli, err := client.FindLeader(ctx, c.Store())
	if err != nil {
		return nil, fmt.Errorf("cluster: find leader: %w", err)
	}
	defer cli.Close()
	info, err := cli.Leader(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: ask leader: %w", err)
	}
	if info == nil {
		return nil, errors.New("cluster: no leader")
	}
	node := c.byAddress(info.Address)
	if node == nil {
		return nil, fmt.Errorf("cluster: leader %s is not one of our nodes", info.Address)
	}
	return node, nil
}

// MustLeader is Leader bounded by StartTimeout, failing t on error.
func (c *Cluster) MustLeader(t testing.TB) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	node, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// Kill sends SIGKILL to node's process (by PID, and to its process group) and waits until it has
// exited. It is a no-op for a node that is not running.
func (c *Cluster) Kill(t testing.TB, node *Node) {
	t.Helper()
	if err := node.kill(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func (n *Node) kill(wait time.Duration) error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil || done == nil {
		return nil
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = syscall.Kill(-pid, syscall.SIGKILL) // its own group (Setpgid), in case it forked
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("cluster: node %d (pid %d) did not exit %v after SIGKILL", n.Index+1, pid, wait)
	}
}

// Restart starts a node that is not running again, with its data directory and ports, and waits
// until it is back in the cluster with the voters.
func (c *Cluster) Restart(t testing.TB, node *Node) {
	t.Helper()
	if err := c.spawn(node); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := c.waitNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	want := len(c.Nodes)
	if want > 3 {
		want = 3
	}
	if err := c.WaitVoters(ctx, want); err != nil {
		t.Fatal(err)
	}
}

// StopAll SIGKILLs every node that runs and waits for each to exit. Start registers it with
// t.Cleanup; calling it earlier is fine.
func (c *Cluster) StopAll() {
	for _, n := range c.Nodes {
		_ = n.kill(10 * time.Second)
	}
}

// OpenPlain opens database name on the cluster through plain go-dqlite (its driver package, as
// an application would), closed at cleanup. Options are go-dqlite's driver options.
func (c *Cluster) OpenPlain(t testing.TB, name string, opts ...dqdriver.Option) *sql.DB {
	t.Helper()
	drv, err := dqdriver.New(c.Store(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	connector, err := drv.OpenConnector(name)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

func (c *Cluster) logTails(t testing.TB) {
	for _, n := range c.Nodes {
		t.Logf("cluster: node %d (%s) log tail:\n%s", n.Index+1, n.DB, tail(n.LogPath(), 20))
	}
}

// tail is the last lines of the file at path.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	parts := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return string(bytes.Join(parts, []byte("\n")))
}

// Log is the whole log of node, over all its runs.
func (n *Node) Log() string {
	b, err := os.ReadFile(n.LogPath())
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// freePorts returns k distinct ports on 127.0.0.1 that were free a moment ago.
func freePorts(k int) ([]int, error) {
	ports := make([]int, 0, k)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for len(ports) < k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cluster: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

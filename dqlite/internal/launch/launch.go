//go:build linux

// Package launch starts, kills, restarts and stops clusters of dqlite-demo nodes on 127.0.0.1,
// for programs (the dqlite demo, the benchmarks) and, through package cluster, for tests.
//
// Each node is a dqlite-demo process (Debian's go-dqlite package: apt-get install -y go-dqlite)
// in its own process group, with its data directory and log under the cluster's directory. Stop
// SIGKILLs every node the cluster started, by PID and by process group, and waits until each has
// exited; the nodes also get SIGKILL from the kernel when the program that started them dies
// (Pdeathsig), so a crash, a panic or a SIGKILL of the program leaves nothing running.
//
//	c, err := launch.Start(ctx, dir, 3)
//	if err != nil { ... }
//	defer c.Stop()
//	leader, err := c.Leader(ctx)
//	err = c.Kill(leader)
//	err = c.Restart(ctx, leader)
package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/canonical/go-dqlite/client"
)

// Binary is the program each node runs.
const Binary = "dqlite-demo"

// InstallHint says how to get Binary on Debian.
const InstallHint = "apt-get install -y go-dqlite"

// StartTimeout is a bound, for callers that have none of their own, on the wait for a fresh
// cluster to reach its voters and for a restarted node to be back in it.
const StartTimeout = 30 * time.Second

// killWait bounds the wait for a node to exit after SIGKILL.
const killWait = 10 * time.Second

// ErrStopped is returned by Restart (and Start's retries) once Stop has been called.
var ErrStopped = errors.New("launch: the cluster has been stopped")

// Check reports whether Binary is on PATH; its error names the package to install.
func Check() error {
	if _, err := exec.LookPath(Binary); err != nil {
		return fmt.Errorf("%s not found (%w): install the dqlite servers with: %s", Binary, err, InstallHint)
	}
	return nil
}

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

// Log is the whole log of the node, over all its runs.
func (n *Node) Log() string {
	b, err := os.ReadFile(n.LogPath())
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Name is "node N (ADDRESS)", N counted from 1, for messages.
func (n *Node) Name() string { return fmt.Sprintf("node %d (%s)", n.Index+1, n.DB) }

// kill sends SIGKILL to the node's process, by PID and to its process group, and waits until it
// has exited. It is a no-op for a node that is not running.
func (n *Node) kill() error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil || done == nil {
		return nil
	}
	select {
	case <-done:
		return nil // exited already: its PID may belong to another process by now
	default:
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = syscall.Kill(-pid, syscall.SIGKILL) // its own group (Setpgid), in case it forked
	select {
	case <-done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("launch: %s (pid %d) did not exit %v after SIGKILL", n.Name(), pid, killWait)
	}
}

// Cluster is a set of dqlite-demo nodes started by Start. Its methods may be called from several
// goroutines; Stop may be called at any time, also while another method runs.
type Cluster struct {
	// Nodes are the cluster's nodes; Nodes[0] is the one the others joined.
	Nodes []*Node
	// Dir holds every node's data directory and log.
	Dir string

	mu      sync.Mutex
	stopped bool
}

// Start starts n nodes on free 127.0.0.1 ports with their data under dir (which must exist), the
// first alone and the others joining it, and waits until the leader reports n voters (at most 3:
// dqlite-demo keeps the others standby or spare). A port picked as free may be taken by another
// program before the node binds it, so Start tries up to three sets of ports. On error every node
// it started has been stopped. ctx bounds the whole start; StartTimeout is a sensible bound.
func Start(ctx context.Context, dir string, n int) (*Cluster, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("launch: want at least 1 node, got %d", n)
	}
	c := &Cluster{Dir: dir}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if lastErr = c.start(ctx, attempt, n); lastErr == nil {
			return c, nil
		}
		c.killAll()
		if ctx.Err() != nil || errors.Is(lastErr, ErrStopped) {
			break
		}
		c.mu.Lock()
		c.Nodes = nil
		c.mu.Unlock()
	}
	c.Stop()
	return nil, fmt.Errorf("launch: %d nodes did not start: %w", n, lastErr)
}

func (c *Cluster) start(ctx context.Context, attempt, n int) error {
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
		c.mu.Lock()
		c.Nodes = append(c.Nodes, node)
		c.mu.Unlock()
		if err := c.spawn(node); err != nil {
			return err
		}
		if i == 0 {
			// The others join this one: it must be serving before they ask.
			if err := c.waitNode(ctx, node); err != nil {
				return err
			}
		}
	}
	return c.WaitVoters(ctx, min(n, 3))
}

// spawn starts node's process, joining the other nodes, unless the cluster has been stopped.
func (c *Cluster) spawn(node *Node) error {
	c.mu.Lock()
	defer c.mu.Unlock() // held until the process is recorded, so that Stop cannot miss it
	if c.stopped {
		return ErrStopped
	}
	node.mu.Lock()
	defer node.mu.Unlock()
	if !node.exited() {
		return fmt.Errorf("launch: %s is already running (pid %d)", node.Name(), node.cmd.Process.Pid)
	}
	args := []string{"--api", node.API, "--db", node.DB, "-D", node.Dir}
	for _, other := range c.Nodes {
		if other != node {
			args = append(args, "--join", other.DB)
		}
	}
	logf, err := os.OpenFile(node.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	fmt.Fprintf(logf, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), Binary, strings.Join(args, " "))
	cmd := exec.Command(Binary, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("launch: start %s: %w", node.Name(), err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	node.cmd, node.done = cmd, done
	return nil
}

// waitNode waits until node answers a leadership query with a known leader, which it does once it
// is part of a cluster with a leader, and serves its API, which it does once it has started.
func (c *Cluster) waitNode(ctx context.Context, node *Node) error {
	for {
		if !node.Running() {
			return fmt.Errorf("launch: %s exited: %s", node.Name(), Tail(node.LogPath(), 5))
		}
		leader, err := c.AskLeader(ctx, node)
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
			return fmt.Errorf("launch: %s has no leader: %w (last error %v)", node.Name(), ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// AskLeader asks node itself (not the cluster) which address it takes for the leader's; "" when
// it knows none. Each call waits at most a second.
func (c *Cluster) AskLeader(ctx context.Context, node *Node) (string, error) {
	actx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cli, err := client.New(actx, node.DB)
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

// nodes is a copy of c.Nodes, safe to range over while Start appends.
func (c *Cluster) nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.Nodes...)
}

// Addresses are the DB addresses of all nodes, running or not.
func (c *Cluster) Addresses() []string {
	nodes := c.nodes()
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.DB
	}
	return addrs
}

// Store is a node store holding every node's DB address, for go-dqlite's client and driver.
func (c *Cluster) Store() client.NodeStore { return StoreOf(c.Addresses()) }

// StoreOf is a node store of the DB addresses addrs.
func StoreOf(addrs []string) client.NodeStore {
	infos := make([]client.NodeInfo, len(addrs))
	for i, a := range addrs {
		infos[i] = client.NodeInfo{Address: a}
	}
	store := client.NewInmemNodeStore()
	_ = store.Set(context.Background(), infos)
	return store
}

// PIDs are the process ids of the nodes that run now.
func (c *Cluster) PIDs() []int {
	var pids []int
	for _, n := range c.nodes() {
		if pid := n.PID(); pid != 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Info asks the cluster's leader for the cluster's members.
func (c *Cluster) Info(ctx context.Context) ([]client.NodeInfo, error) {
	cli, err := client.FindLeader(ctx, c.Store())
	if err != nil {
		return nil, fmt.Errorf("launch: find leader: %w", err)
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
				node := c.ByAddress(info.Address)
				if node == nil || !node.Running() {
					ready = false
					continue
				}
				if l, err := c.AskLeader(ctx, node); err != nil || l == "" {
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
			return fmt.Errorf("launch: waiting for %d voters: %w (last: %s)", want, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ByAddress is our node with DB address addr, or nil.
func (c *Cluster) ByAddress(addr string) *Node {
	for _, n := range c.nodes() {
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
		return nil, fmt.Errorf("launch: find leader: %w", err)
	}
	defer cli.Close()
	info, err := cli.Leader(ctx)
	if err != nil {
		return nil, fmt.Errorf("launch: ask leader: %w", err)
	}
	if info == nil {
		return nil, errors.New("launch: no leader")
	}
	node := c.ByAddress(info.Address)
	if node == nil {
		return nil, fmt.Errorf("launch: leader %s is not one of our nodes", info.Address)
	}
	return node, nil
}

// Kill sends SIGKILL to node's process (by PID, and to its process group) and waits until it has
// exited. It is a no-op for a node that is not running.
func (c *Cluster) Kill(node *Node) error { return node.kill() }

// Restart starts a node that is not running again, with its data directory and ports, and waits
// until it is back in the cluster with the voters (bounded by ctx).
func (c *Cluster) Restart(ctx context.Context, node *Node) error {
	if err := c.spawn(node); err != nil {
		return err
	}
	if err := c.waitNode(ctx, node); err != nil {
		return err
	}
	return c.WaitVoters(ctx, min(len(c.nodes()), 3))
}

// Stop SIGKILLs every node that runs, waits for each to exit, and keeps Restart from starting any
// again. It may be called more than once and from any goroutine; the error names the nodes that
// did not exit.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	return c.killAll()
}

func (c *Cluster) killAll() error {
	var errs []error
	for _, n := range c.nodes() {
		if err := n.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LogTails is the last lines of every node's log, for a report of what went wrong.
func (c *Cluster) LogTails(lines int) string {
	var b strings.Builder
	for _, n := range c.nodes() {
		fmt.Fprintf(&b, "%s log tail:\n%s\n", n.Name(), Tail(n.LogPath(), lines))
	}
	return b.String()
}

// Tail is the last lines of the file at path, or the error reading it.
func Tail(path string, lines int) string {
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
			return nil, fmt.Errorf("launch: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ProcessesUnder are the PIDs of the Binary processes (any, not only this program's) whose
// command line names a path under dir: what a cluster in dir left running. It reads /proc.
func ProcessesUnder(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != Binary || !Alive(pid) {
			continue
		}
		for _, a := range args[1:] {
			if a == dir || strings.HasPrefix(a, dir+string(filepath.Separator)) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// Alive reports whether a process with pid exists and is not a zombie.
func Alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces, so look after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

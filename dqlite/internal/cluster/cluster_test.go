//go:build linux

package cluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canonical/go-dqlite/client"

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/launch"
)

func TestStartKillRestart(t *testing.T) {
	c := Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	infos, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, info := range infos {
		if info.Role == client.Voter {
			voters++
		}
		if c.ByAddress(info.Address) == nil {
			t.Errorf("cluster member %s is not one of our nodes", info.Address)
		}
	}
	if voters != 3 {
		t.Fatalf("want 3 voters, got %d: %v", voters, infos)
	}
	for _, n := range c.Nodes {
		if !strings.HasPrefix(n.DB, "127.0.0.1:") || !strings.HasPrefix(n.API, "127.0.0.1:") {
			t.Errorf("node %d not on 127.0.0.1: db %s api %s", n.Index+1, n.DB, n.API)
		}
	}

	leader := c.MustLeader(t)
	pid := leader.PID()
	c.Kill(t, leader)
	if launch.Alive(pid) || leader.Running() {
		t.Fatalf("leader pid %d still alive after Kill", pid)
	}
	next := c.MustLeader(t)
	if next == leader {
		t.Fatalf("the killed node %s is still reported as leader", leader.DB)
	}

	c.Restart(t, leader)
	if !leader.Running() || leader.PID() == pid {
		t.Fatalf("restarted node: running %v, pid %d (was %d)", leader.Running(), leader.PID(), pid)
	}
	if err := c.WaitVoters(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// The restarted node has the cluster's data: it answers with the current leader.
	l, err := c.AskLeader(ctx, leader)
	if err != nil || l == "" {
		t.Fatalf("restarted node knows no leader: %q, %v", l, err)
	}

	pids := []int{}
	for _, n := range c.Nodes {
		pids = append(pids, n.PID())
	}
	c.StopAll()
	for _, p := range pids {
		if launch.Alive(p) {
			t.Errorf("pid %d alive after StopAll", p)
		}
	}
}

// TestNothingLeftRunning runs this test binary as a child whose test starts a cluster, writes the
// nodes' PIDs to a file and then fails (cleanup runs) or exits without cleanup (only Pdeathsig
// stops the nodes), and checks that no node outlives the child.
func TestNothingLeftRunning(t *testing.T) {
	Skip(t)
	if testing.Short() {
		t.Skip("starts two clusters in child processes")
	}
	for _, mode := range []string{"fail", "exit"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pids")
			cmd := exec.Command(os.Args[0], "-test.run=^TestChildCluster$", "-test.count=1")
			// The child's own temporary directories go in this test's:
			// the child that exits without cleanup leaves its nodes'
			// data behind, and this test's cleanup removes it.
			cmd.Env = append(os.Environ(), "CLUSTER_CHILD_MODE="+mode, "CLUSTER_CHILD_PIDS="+pidFile, "TMPDIR="+dir)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("child test passed, want it to fail; output:\n%s", out)
			}
			b, rerr := os.ReadFile(pidFile)
			if rerr != nil {
				t.Fatalf("child wrote no pids (%v); output:\n%s", rerr, out)
			}
			fields := strings.Fields(string(b))
			if len(fields) != 3 {
				t.Fatalf("want 3 pids, got %q", b)
			}
			deadline := time.Now().Add(5 * time.Second)
			for _, f := range fields {
				pid, _ := strconv.Atoi(f)
				for launch.Alive(pid) && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if launch.Alive(pid) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					t.Errorf("node pid %d outlived the child test (mode %s)", pid, mode)
				}
			}
		})
	}
}

// TestChildCluster is the child of TestNothingLeftRunning; it does nothing in a normal run.
func TestChildCluster(t *testing.T) {
	mode := os.Getenv("CLUSTER_CHILD_MODE")
	if mode == "" {
		t.Skip("only run as the child of TestNothingLeftRunning")
	}
	c := Start(t, 3)
	var pids []string
	for _, n := range c.Nodes {
		pids = append(pids, strconv.Itoa(n.PID()))
	}
	if err := os.WriteFile(os.Getenv("CLUSTER_CHILD_PIDS"), []byte(strings.Join(pids, " ")), 0o644); err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "fail":
		t.Fatal("failing on purpose: the cleanup must stop the nodes")
	case "exit":
		os.Exit(3) // no cleanup: Pdeathsig must stop the nodes
	}
}

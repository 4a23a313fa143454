//go:build linux

package launch

import (
	"context"
	"errors"
	"testing"
	"time"
)

func skip(t *testing.T) {
	t.Helper()
	if err := Check(); err != nil {
		t.Skip(err)
	}
}

// TestStartStop: a one-node cluster started without a testing.T runs on 127.0.0.1, Stop leaves
// no process of it running, and a node cannot be restarted after Stop.
func TestStartStop(t *testing.T) {
	skip(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	c, err := Start(ctx, dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	pids := c.PIDs()
	if len(pids) != 1 {
		t.Fatalf("want 1 running node, got pids %v", pids)
	}
	if got := ProcessesUnder(dir); len(got) != 1 || got[0] != pids[0] {
		t.Fatalf("ProcessesUnder(dir) = %v, want %v", got, pids)
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if leader != c.Nodes[0] {
		t.Fatalf("leader %s, want the only node %s", leader.Name(), c.Nodes[0].Name())
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if Alive(pids[0]) || c.Nodes[0].Running() {
		t.Fatalf("pid %d alive after Stop", pids[0])
	}
	if got := ProcessesUnder(dir); len(got) != 0 {
		t.Fatalf("after Stop, processes under dir: %v", got)
	}
	if err := c.Restart(ctx, c.Nodes[0]); !errors.Is(err, ErrStopped) {
		t.Fatalf("Restart after Stop: %v, want ErrStopped", err)
	}
	if got := ProcessesUnder(dir); len(got) != 0 {
		t.Fatalf("after Restart refused, processes under dir: %v", got)
	}
}

// TestStartCanceled: a start whose context ends before the voters are there returns an error
// and leaves nothing running.
func TestStartCanceled(t *testing.T) {
	skip(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c, err := Start(ctx, dir, 3)
	if err == nil {
		c.Stop()
		t.Skip("three nodes reached their voters in 300 ms: nothing to cancel")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want it to wrap context.DeadlineExceeded", err)
	}
	if got := ProcessesUnder(dir); len(got) != 0 {
		t.Fatalf("after a canceled Start, processes under dir: %v", got)
	}
}

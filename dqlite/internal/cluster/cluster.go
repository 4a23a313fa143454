//go:build linux

// Package cluster starts dqlite clusters of dqlite-demo nodes on 127.0.0.1 for tests: package
// launch, with a testing.TB in place of error returns.
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
	"context"
	"database/sql"
	"testing"

	dqdriver "github.com/canonical/go-dqlite/driver"

	"github.com/sqlitesafe/sqlitesafe/dqlite/internal/launch"
)

// Binary is the program each node runs.
const Binary = launch.Binary

// InstallHint says how to get Binary on Debian.
const InstallHint = launch.InstallHint

// StartTimeout bounds the wait for a fresh cluster to reach its voters, and for a restarted node
// to be back in it.
const StartTimeout = launch.StartTimeout

// Node is one dqlite-demo process of a Cluster.
type Node = launch.Node

// Cluster is a set of dqlite-demo nodes started by Start: a launch.Cluster whose Kill and Restart
// fail the test instead of returning an error.
type Cluster struct {
	*launch.Cluster
}

// Skip skips t with a message naming the package to install when Binary is not on PATH.
func Skip(t testing.TB) {
	t.Helper()
	if err := launch.Check(); err != nil {
		t.Skip(err)
	}
}

// Start starts n nodes on free 127.0.0.1 ports in t.TempDir(), the first alone and the others
// joining it, and waits until the leader reports n voters (at most 3: dqlite-demo keeps the others
// standby or spare). It skips t when Binary is missing and registers a cleanup that SIGKILLs every
// node.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	Skip(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	lc, err := launch.Start(ctx, dir, n)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	c := &Cluster{lc}
	t.Cleanup(func() { // runs before t.TempDir's own cleanup removes dir
		if err := c.Cluster.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("cluster: %s", c.LogTails(20))
		}
	})
	return c
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
// exited, failing t if it does not. It is a no-op for a node that is not running.
func (c *Cluster) Kill(t testing.TB, node *Node) {
	t.Helper()
	if err := c.Cluster.Kill(node); err != nil {
		t.Fatal(err)
	}
}

// Restart starts a node that is not running again, with its data directory and ports, and waits
// (at most StartTimeout) until it is back in the cluster with the voters, failing t if it is not.
func (c *Cluster) Restart(t testing.TB, node *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := c.Cluster.Restart(ctx, node); err != nil {
		t.Fatal(err)
	}
}

// StopAll SIGKILLs every node that runs and waits for each to exit. Start registers it with
// t.Cleanup; calling it earlier is fine (the nodes cannot be restarted after it).
func (c *Cluster) StopAll() { _ = c.Cluster.Stop() }

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

//go:build unix

package sqlitesafe_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

// An unprivileged process: a child that runs the test binary as the user
// nobody when the tests run as root (root may write anything), or as the
// same user otherwise. The files it uses are in a directory every user can
// read.

// otherUserDir returns a fresh directory that the unprivileged child can
// read and, if writable, write.
func otherUserDir(t *testing.T, writable bool) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sqlitesafe-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chmod(dir, 0o755)
		os.RemoveAll(dir)
	})
	mode := os.FileMode(0o755)
	if writable {
		mode = 0o777
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runUnprivileged runs the child role with spec as an unprivileged user and
// returns its stdout and stderr, and its error if it failed.
func runUnprivileged(t *testing.T, spec childSpec) (stdout, stderr string, err error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var attr *syscall.SysProcAttr
	if os.Geteuid() == 0 {
		// The test binary lives in a directory only root may enter:
		// copy it where nobody can run it.
		bin := filepath.Join(otherUserDir(t, false), "test.bin")
		copyFile(t, exe, bin, 0o755)
		exe = bin
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	spec.Deadline = time.Now().Add(30 * time.Second)
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	cmd.SysProcAttr = attr
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}

func init() {
	// readThenWrite reads the table, then tries one write and reports
	// how it failed, and how long the failure took.
	childRoles["readThenWrite"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		var n int64
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		res.Committed = n
		start := time.Now()
		_, err := db.Exec("INSERT INTO t VALUES (99)")
		res.Elapsed = int64(time.Since(start))
		if err == nil {
			return errors.New("the write succeeded")
		}
		res.Errors = 1
		if errors.Is(err, sqlitesafe.ErrReadOnly) {
			res.Busy = 0
			res.Samples = append(res.Samples, "ErrReadOnly: "+err.Error())
		} else {
			res.Samples = append(res.Samples, "other: "+err.Error())
		}
		if errors.Is(err, sqlitesafe.ErrLockTimeout) {
			res.LockTimeouts = 1
		}
		return nil
	}
}

// A database file the process may not write: reads work, and a write fails
// at once with ErrReadOnly, saying why, instead of failing the open (SQLite
// would fail setting WAL) or hanging.
func TestReadOnlyFile(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	dir := otherUserDir(t, true)
	path := filepath.Join(dir, "app.db")
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1), (2), (3)")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, path)

	stdout, stderr, err := runUnprivileged(t, childSpec{Role: "readThenWrite", Driver: "sqlite-safe", DSN: path})
	if err != nil {
		t.Fatalf("child: %v\n%s\n%s", err, stdout, stderr)
	}
	res := parseResult(t, stdout)
	if res.Committed != 3 {
		t.Errorf("the read saw %d rows, want 3", res.Committed)
	}
	if len(res.Samples) != 1 || !strings.HasPrefix(res.Samples[0], "ErrReadOnly: ") {
		t.Fatalf("the write failed with %v, want ErrReadOnly", res.Samples)
	}
	for _, want := range []string{"not writable", "-r--r--r--", "mode=ro"} {
		if !strings.Contains(res.Samples[0], want) {
			t.Errorf("the error does not say %q: %s", want, res.Samples[0])
		}
	}
	if res.LockTimeouts != 0 {
		t.Errorf("the write waited out the busy timeout: %s", res.Samples[0])
	}
	t.Logf("the refused write took %s: %s", time.Duration(res.Elapsed), res.Samples[0])
	if after := fileHash(t, path); after != before {
		t.Error("the read-only database file changed")
	}
}

// A directory the process may not write: SQLite could not create -wal and
// -shm there. The open fails at once, naming the directory.
func TestDirectoryNotWritable(t *testing.T) {
	t.Parallel()
	watchdog(t, time.Minute)
	dir := otherUserDir(t, false)
	path := filepath.Join(dir, "app.db")
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, err := runUnprivileged(t, childSpec{Role: "readThenWrite", Driver: "sqlite-safe", DSN: path})
	if err == nil {
		t.Fatalf("the child opened a database in a directory it cannot write:\n%s", stdout)
	}
	for _, want := range []string{"directory " + dir + " is not writable", "-wal and -shm", "mode=ro", "permission denied"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the error does not say %q:\n%s", want, stderr)
		}
	}

	// Read-only, the same database opens and reads: the -shm is not
	// needed once the database is out of WAL... or exists. Here it was
	// checkpointed and closed, so a read-only open must say what is wrong.
	stdout, stderr, err = runUnprivileged(t, childSpec{Role: "readThenWrite", Driver: "sqlite-safe", DSN: path + "?mode=ro"})
	if err == nil {
		t.Fatalf("mode=ro on a WAL database without -shm in a read-only directory opened:\n%s", stdout)
	}
	for _, want := range []string{"WAL mode", "-shm", "immutable=1"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the read-only open error does not say %q:\n%s", want, stderr)
		}
	}
	// immutable=1 reads it.
	stdout, stderr, err = runUnprivileged(t, childSpec{Role: "readThenWrite", Driver: "sqlite-safe", DSN: path + "?immutable=1"})
	if err != nil {
		t.Fatalf("immutable=1: %v\n%s", err, stderr)
	}
	if res := parseResult(t, stdout); res.Committed != 1 || len(res.Samples) != 1 || !strings.HasPrefix(res.Samples[0], "ErrReadOnly") {
		t.Errorf("immutable=1: read %d rows, write %v; want 1 row and ErrReadOnly", res.Committed, res.Samples)
	}
}

func parseResult(t *testing.T, stdout string) childResult {
	t.Helper()
	for _, line := range strings.Split(stdout, "\n") {
		if js, ok := strings.CutPrefix(line, "result "); ok {
			var res childResult
			if err := json.Unmarshal([]byte(js), &res); err != nil {
				t.Fatal(err)
			}
			return res
		}
	}
	t.Fatalf("no result line in the child's output:\n%s", stdout)
	return childResult{}
}

func init() {
	// write1: one insert, reported as committed.
	childRoles["write1"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		if _, err := db.Exec("INSERT INTO t VALUES (7)"); err != nil {
			return err
		}
		res.Committed = 1
		return nil
	}
}

// A lock file the process cannot open (left by another user with a strict
// umask) does not stop it from writing: it warns, and writes without the
// cross-process queue. A lock file this driver creates is as private as the
// database.
func TestUnreadableLockFile(t *testing.T) {
	watchdog(t, time.Minute)
	dir := otherUserDir(t, true)
	path := filepath.Join(dir, "app.db")
	old := syscall.Umask(0o077) // a strict umask, as some cron setups have
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE t(x)")
	syscall.Umask(old)
	for _, name := range []string{path, path + "-writer.lock"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %s under umask 077, want -rw-------", filepath.Base(name), fi.Mode().Perm())
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path+"-writer.lock", 0o000); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runUnprivileged(t, childSpec{Role: "write1", Driver: "sqlite-safe", DSN: path})
	if err != nil {
		t.Fatalf("the child could not write: %v\n%s\n%s", err, stdout, stderr)
	}
	if res := parseResult(t, stdout); res.Committed != 1 {
		t.Fatalf("the child committed %d", res.Committed)
	}
	for _, want := range []string{"will not queue with other processes", "writer.lock", "chmod"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the warning does not say %q:\n%s", want, stderr)
		}
	}
	db = openSafe(t, path)
	if n := queryInt(t, db, "SELECT count(*) FROM t WHERE x = 7"); n != 1 {
		t.Errorf("%d rows from the child, want 1", n)
	}
}

package sqlitesafe_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
)

func TestOpenMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no", "such")
	db := openSafe(t, filepath.Join(dir, "app.db"))
	err := db.Ping()
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Ping = %v, want an error saying the directory %s does not exist", err, dir)
	}
	if !strings.Contains(err.Error(), "create it first") {
		t.Errorf("the error does not say what to do: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory was created: %v", err)
	}
}

func TestOpenNetworkFSRefused(t *testing.T) {
	defer sqlitesafe.SetFSType("nfs4", true, false)()
	path := dbPath(t)
	err := openSafe(t, path).Ping()
	if !errors.Is(err, sqlitesafe.ErrNetworkFS) {
		t.Fatalf("Ping on NFS = %v, want ErrNetworkFS", err)
	}
	for _, want := range []string{path, "network file system", "nfs4", "_network_fs=allow", "local disk"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %q: %v", want, err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the database file was created on a refused file system: %v", err)
	}

	// Allowed knowingly: it opens, with a warning.
	var logs bytes.Buffer
	c, err := sqlitesafe.NewConnector(&sqlitesafe.Config{Path: path, AllowNetworkFS: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	if got := logs.String(); !strings.Contains(got, "network or FUSE file system") || !strings.Contains(got, "fs=nfs4") {
		t.Errorf("no warning for an allowed network file system; log: %q", got)
	}
}

func TestOpenFUSERefused(t *testing.T) {
	defer sqlitesafe.SetFSType("fuse.sshfs", false, true)()
	err := openSafe(t, dbPath(t)).Ping()
	if !errors.Is(err, sqlitesafe.ErrNetworkFS) || !strings.Contains(err.Error(), "FUSE") || !strings.Contains(err.Error(), "fuse.sshfs") {
		t.Fatalf("Ping on FUSE = %v, want ErrNetworkFS naming the FUSE file system", err)
	}
	// immutable=1 takes no locks: nothing to distrust.
	path := dbPath(t)
	func() {
		defer sqlitesafe.SetFSType("ext4", false, false)()
		db := openSafe(t, path)
		mustExec(t, db, "CREATE TABLE t(x)")
		if err := db.Close(); err != nil { // checkpoints: immutable=1 reads no -wal
			t.Fatal(err)
		}
	}()
	if n := queryInt(t, openSafe(t, path+"?immutable=1"), "SELECT count(*) FROM t"); n != 0 {
		t.Fatalf("count = %d", n)
	}
}

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

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// A database file the process may not write: reads work, and a write fails
// at once with ErrReadOnly, saying why, instead of failing the open (SQLite
// would fail setting WAL) or hanging.
func TestReadOnlyFile(t *testing.T) {
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

// walWithFrames makes a WAL database at path whose last rows are still in
// the -wal (no checkpoint), and returns copies of its three files taken
// while it is open, as a crash or a careless copy would leave them.
func walWithFrames(t *testing.T, rows int) (db, wal, shm []byte) {
	t.Helper()
	path := dbPath(t)
	// Plain modernc with automatic checkpoints off, so the rows stay in
	// the -wal.
	raw := open(t, "sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(0)")
	raw.SetMaxOpenConns(1)
	mustExec(t, raw, "CREATE TABLE t(x)")
	for i := range rows {
		if _, err := raw.Exec("INSERT INTO t VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return read(path), read(path + "-wal"), read(path + "-shm")
}

// A -wal left without its -shm is explained, nothing is deleted, and the
// transactions in the -wal are all there.
func TestWALWithoutSHMExplained(t *testing.T) {
	dbb, wal, _ := walWithFrames(t, 50)
	path := dbPath(t)
	os.WriteFile(path, dbb, 0o644)
	os.WriteFile(path+"-wal", wal, 0o644)

	var logs bytes.Buffer
	c, err := sqlitesafe.NewConnector(&sqlitesafe.Config{Path: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if n := queryInt(t, db, "SELECT count(*) FROM t"); n != 50 {
		t.Fatalf("%d rows, want the 50 in the -wal", n)
	}
	got := logs.String()
	for _, want := range []string{"level=WARN", "a -wal file but no -shm file", "Never delete a -wal file", "wal_bytes="} {
		if !strings.Contains(got, want) {
			t.Errorf("the warning does not say %q; log: %s", want, got)
		}
	}
}

// A -shm whose -wal is gone (deleted by hand, or not copied) recorded
// committed transactions that are now lost: the error log says so, and what
// to do; the rows that were checkpointed are still there.
func TestSHMWithoutWALExplained(t *testing.T) {
	dbb, _, shm := walWithFrames(t, 50)
	path := dbPath(t)
	os.WriteFile(path, dbb, 0o644)
	os.WriteFile(path+"-shm", shm, 0o644)

	var logs bytes.Buffer
	c, err := sqlitesafe.NewConnector(&sqlitesafe.Config{Path: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	got := logs.String()
	for _, want := range []string{"level=ERROR", "the -wal file is gone", "restore from a backup", "wal_frames_lost="} {
		if !strings.Contains(got, want) {
			t.Errorf("the error log does not say %q; log: %s", want, got)
		}
	}
	if _, err := os.Stat(path + "-shm"); err != nil {
		t.Errorf("the -shm file is gone after the open: %v", err)
	}
}

package sqlitesafe_test

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlitesafe/sqlitesafe"
)

func TestOpenMissingDirectory(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	path := dbPath(t)
	defer sqlitesafe.SetFSType(path, "nfs4", true, false)()
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
	logs := &syncBuffer{}
	db := openLogged(t, logs, &sqlitesafe.Config{Path: path, AllowNetworkFS: true})
	mustExec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
	if got := logs.String(); !strings.Contains(got, "network or FUSE file system") || !strings.Contains(got, "fs=nfs4") {
		t.Errorf("no warning for an allowed network file system; log: %q", got)
	}
}

func TestOpenFUSERefused(t *testing.T) {
	t.Parallel()
	fuse := dbPath(t)
	defer sqlitesafe.SetFSType(fuse, "fuse.sshfs", false, true)()
	err := openSafe(t, fuse).Ping()
	if !errors.Is(err, sqlitesafe.ErrNetworkFS) || !strings.Contains(err.Error(), "FUSE") || !strings.Contains(err.Error(), "fuse.sshfs") {
		t.Fatalf("Ping on FUSE = %v, want ErrNetworkFS naming the FUSE file system", err)
	}
	// immutable=1 takes no locks: nothing to distrust.
	path := dbPath(t)
	db := openSafe(t, path)
	mustExec(t, db, "CREATE TABLE t(x)")
	if err := db.Close(); err != nil { // checkpoints: immutable=1 reads no -wal
		t.Fatal(err)
	}
	defer sqlitesafe.SetFSType(path, "fuse.sshfs", false, true)()
	if n := queryInt(t, openSafe(t, path+"?immutable=1"), "SELECT count(*) FROM t"); n != 0 {
		t.Fatalf("count = %d", n)
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
	t.Parallel()
	dbb, wal, _ := walWithFrames(t, 50)
	path := dbPath(t)
	os.WriteFile(path, dbb, 0o644)
	os.WriteFile(path+"-wal", wal, 0o644)

	logs := &syncBuffer{}
	db := openLogged(t, logs, &sqlitesafe.Config{Path: path})
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
// to do, and the -shm is left where it is.
func TestSHMWithoutWALExplained(t *testing.T) {
	t.Parallel()
	dbb, _, shm := walWithFrames(t, 50)
	path := dbPath(t)
	os.WriteFile(path, dbb, 0o644)
	os.WriteFile(path+"-shm", shm, 0o644)

	logs := &syncBuffer{}
	db := openLogged(t, logs, &sqlitesafe.Config{Path: path})
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

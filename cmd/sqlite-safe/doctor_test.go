//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sqlitesafe/sqlitesafe/internal/fsinfo"
	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// The helper process: the test binary run again with helperEnv set to a
// mode, and the database in helperDBEnv.
const (
	helperEnv   = "SQLITE_SAFE_DOCTOR_HELPER"
	helperDBEnv = "SQLITE_SAFE_DOCTOR_DB"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperProcess(mode, os.Getenv(helperDBEnv)))
	}
	os.Exit(m.Run())
}

// helperProcess is the child of the tests. In mode "reader" it opens the
// database, begins a read transaction, prints "ready" and waits for its
// stdin to close. In mode "writer" it begins a write transaction large
// enough to spill pages to the database file with a tiny cache (so that
// its -journal is synced and hot), prints "ready" and waits to be killed.
func helperProcess(mode, path string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		return 1
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	switch mode {
	case "reader":
		tx, err := db.Begin()
		if err != nil {
			return fail(err)
		}
		var n int
		if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		tx.Rollback()
	case "writer":
		if _, err := db.Exec("PRAGMA cache_size=10"); err != nil {
			return fail(err)
		}
		tx, err := db.Begin()
		if err != nil {
			return fail(err)
		}
		if _, err := tx.Exec("UPDATE t SET v = randomblob(1000)"); err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return fail(fmt.Errorf("stdin closed before the test killed it"))
	default:
		return fail(fmt.Errorf("unknown mode"))
	}
	return 0
}

// startHelper starts the helper process in mode on path and waits for it
// to say it is ready. Closing stdin ends a reader.
func startHelper(t *testing.T, mode, path string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDBEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper %s said %q, %v", mode, line, err)
	}
	return cmd, stdin
}

// createDB creates a database at path in journal mode (WAL or DELETE)
// with a table t of rows rows, through plain modernc.org/sqlite, and closes
// it.
func createDB(t *testing.T, path, mode string, rows int) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode("+mode+")")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?) "+
		"INSERT INTO t (v) SELECT randomblob(1000) FROM n", rows); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// dirState is what a directory holds: each file's size, mode and content
// hash (the -shm's content is left out: readers write their read marks in
// it).
type dirState map[string]string

func snapshot(t *testing.T, dir string) dirState {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := dirState{}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		v := fmt.Sprintf("%d %v", fi.Size(), fi.Mode())
		if !strings.HasSuffix(e.Name(), "-shm") {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		s[e.Name()] = v
	}
	return s
}

// assertUnchanged fails if dir differs from before.
func assertUnchanged(t *testing.T, dir string, before dirState) {
	t.Helper()
	after := snapshot(t, dir)
	for name, v := range before {
		if after[name] != v {
			t.Errorf("the doctor changed %s: %q, now %q", name, v, after[name])
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("the doctor created %s", name)
		}
	}
}

// doctor runs the doctor command in-process with --json and returns its
// exit status and report.
func doctor(t *testing.T, args ...string) (int, *report) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"doctor", "--json"}, args...), &stdout, &stderr)
	var r report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("doctor %q: exit %d, output is not JSON (%v):\n%s\nstderr: %s", args, code, err, stdout.String(), stderr.String())
	}
	if t.Failed() {
		return code, &r
	}
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			writeFindings(&b, &r)
			t.Logf("doctor %q exited %d:\n%s", args, code, b.String())
		}
	})
	return code, &r
}

// finding returns the findings of check.
func (r *report) findings(check string) []finding {
	var out []finding
	for _, f := range r.Findings {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

// expect checks that r has a finding of check with status whose detail
// contains each of words.
func expect(t *testing.T, r *report, check, status string, words ...string) {
	t.Helper()
	for _, f := range r.findings(check) {
		if f.Status != status {
			continue
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(f.Detail+" "+f.WhatToDo, w)
		}
		if ok {
			return
		}
	}
	t.Errorf("no %s finding %q containing %q; have %+v", status, check, words, r.findings(check))
}

// noWorse fails if r has a finding worse than status (info counts as ok).
func noWorse(t *testing.T, r *report, status string) {
	t.Helper()
	for _, f := range r.Findings {
		if severity[f.Status] < severity[status] {
			t.Errorf("unexpected %s %q: %s", f.Status, f.Check, f.Detail)
		}
	}
}

// TestDoctorHealthyWAL checks a WAL database closed cleanly: nothing to
// report, exit 0, and nothing changed (the doctor's read-only open must not
// create a -wal or -shm).
func TestDoctorHealthyWAL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "WAL", 100)
	before := snapshot(t, dir)
	for _, flag := range []string{"", "--integrity"} {
		args := []string{path}
		if flag != "" {
			args = append(args, flag)
		}
		code, r := doctor(t, args...)
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		noWorse(t, r, statusOK)
		expect(t, r, "file", statusOK, "SQLite 3 database", "4096 bytes")
		expect(t, r, "journal mode", statusOK, "WAL mode")
		expect(t, r, "wal and shm", statusOK, "No -wal and no -shm")
		expect(t, r, "hot journal", statusOK, "No -journal")
		expect(t, r, "permissions", statusOK, "database -rw-r--r--")
		expect(t, r, "file system", statusOK, "local file system")
		expect(t, r, "free space", statusOK, "free")
		expect(t, r, "processes", statusOK, "No process")
		expect(t, r, "locks", statusOK, "No process holds a lock")
		if flag == "" {
			expect(t, r, "quick check", statusOK, "quick_check found nothing wrong")
		} else {
			expect(t, r, "integrity check", statusOK, "integrity_check found nothing wrong")
		}
		if r.JournalMode != "wal" || r.PageSize != 4096 || r.PageCount < 2 || !r.SQLite {
			t.Errorf("facts: journal %q, page size %d, pages %d, sqlite %v", r.JournalMode, r.PageSize, r.PageCount, r.SQLite)
		}
	}
	assertUnchanged(t, dir, before)
}

// TestDoctorRollbackJournal checks a database in rollback-journal mode: a
// warning that says readers and the writer block each other and how to
// switch, exit 0.
func TestDoctorRollbackJournal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "DELETE", 10)
	before := snapshot(t, dir)
	code, r := doctor(t, path)
	if code != 0 {
		t.Errorf("exit %d, want 0 (a warning is not a problem)", code)
	}
	noWorse(t, r, statusWarning)
	expect(t, r, "journal mode", statusWarning, "readers and the writer block each other", "PRAGMA journal_mode=WAL")
	expect(t, r, "quick check", statusOK, "nothing wrong")
	if r.JournalMode != "rollback" {
		t.Errorf("journal_mode = %q, want rollback", r.JournalMode)
	}
	assertUnchanged(t, dir, before)
}

// TestDoctorHotJournal makes a real hot journal (a child process that
// spilled a write transaction to the database file is killed with SIGKILL)
// and checks that the doctor reports it, skips opening the database,
// changes nothing, and that SQLite indeed rolls it back on the next
// read-write open.
func TestDoctorHotJournal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "DELETE", 1000)
	cmd, _ := startHelper(t, "writer", path)
	journal, err := os.ReadFile(path + "-journal")
	if err != nil || !bytes.HasPrefix(journal, journalMagic) {
		t.Fatalf("the writer's -journal has no synced header (%d bytes, %v): no spill happened", len(journal), err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	before := snapshot(t, dir)
	code, r := doctor(t, path)
	assertUnchanged(t, dir, before)
	if code != 0 {
		t.Errorf("exit %d, want 0 (a hot journal is a warning)", code)
	}
	expect(t, r, "hot journal", statusWarning, "hot journal", "rolls the journal back", "Do not delete")
	expect(t, r, "quick check", statusInfo, "Skipped", "hot journal")
	expect(t, r, "processes", statusOK, "No process")
	if len(r.CheckResult) != 0 {
		t.Errorf("the doctor ran a check on a database with a hot journal: %q", r.CheckResult)
	}
	// The human output says so too.
	var out bytes.Buffer
	run([]string{"doctor", path}, &out, io.Discard)
	if !strings.Contains(out.String(), "WARNING  hot journal") {
		t.Errorf("human output:\n%s", out.String())
	}
	assertUnchanged(t, dir, before)

	// SQLite agrees it is hot: a read-write open rolls it back.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA quick_check").Scan(&res); err != nil || res != "ok" {
		t.Errorf("quick_check after the rollback: %q, %v", res, err)
	}
	if _, err := os.Stat(path + "-journal"); !os.IsNotExist(err) {
		t.Errorf("SQLite did not roll back the journal the doctor called hot: %v", err)
	}
}

// TestDoctorLargeWALHeldByReader grows the -wal past the doctor's rule
// while a read transaction of this process keeps checkpoints from
// finishing, and checks that the doctor warns and names this process.
func TestDoctorLargeWALHeldByReader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "WAL", 1)
	reader, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tx, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	writer, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	for range 24 {
		if _, err := writer.Exec("INSERT INTO t (v) VALUES (zeroblob(1 << 20))"); err != nil {
			t.Fatal(err)
		}
	}
	wal, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	db, _ := os.Stat(path)
	if !walTooLarge(wal.Size(), db.Size(), 4096) {
		t.Fatalf("the -wal is %d bytes, the database %d: not past the rule; the test is wrong", wal.Size(), db.Size())
	}
	walBefore, _ := os.ReadFile(path + "-wal")
	dbBefore, _ := os.ReadFile(path)

	code, r := doctor(t, path)
	if code != 0 {
		t.Errorf("exit %d, want 0 (a large -wal is a warning)", code)
	}
	me := fmt.Sprintf("pid %d", os.Getpid())
	expect(t, r, "wal size", statusWarning, "larger than the database", "checkpoints cannot finish", me, "read mark")
	expect(t, r, "processes", statusInfo, me)
	expect(t, r, "locks", statusInfo, me+" holds POSIX READ on -shm", "read transaction")
	var mine *procFacts
	for i := range r.Processes {
		if r.Processes[i].PID == os.Getpid() {
			mine = &r.Processes[i]
		}
	}
	if mine == nil {
		t.Fatalf("this process (%d) is not among %+v", os.Getpid(), r.Processes)
	}
	for _, role := range []string{roleDB, roleWAL, roleSHM} {
		if !slices.ContainsFunc(mine.Files, func(f openFile) bool { return f.Role == role }) {
			t.Errorf("this process's %s is not listed: %+v", role, mine.Files)
		}
	}
	if walAfter, _ := os.ReadFile(path + "-wal"); !bytes.Equal(walBefore, walAfter) {
		t.Error("the doctor changed the -wal")
	}
	if dbAfter, _ := os.ReadFile(path); !bytes.Equal(dbBefore, dbAfter) {
		t.Error("the doctor changed the database")
	}
}

// TestDoctorChildProcess checks that the doctor names another process that
// has the database open, with its read transaction's locks.
func TestDoctorChildProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "WAL", 10)
	cmd, stdin := startHelper(t, "reader", path)
	child := fmt.Sprintf("pid %d", cmd.Process.Pid)
	before := snapshot(t, dir)
	code, r := doctor(t, path)
	assertUnchanged(t, dir, before)
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	expect(t, r, "processes", statusInfo, child, os.Args[0])
	expect(t, r, "locks", statusInfo, child+" holds POSIX READ on -shm", child+" holds POSIX READ on database", "SHARED")
	expect(t, r, "wal and shm", statusOK, "-wal and -shm exist")
	expect(t, r, "quick check", statusOK, "nothing wrong")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("helper: %v", err)
	}
	// With the child gone (it closed cleanly), nothing is open.
	_, r = doctor(t, path)
	expect(t, r, "processes", statusOK, "No process")
}

// TestDoctorDeletedWhileOpen replaces, then deletes, a database that a
// child process has open: the doctor names the process that still uses
// the old file.
func TestDoctorDeletedWhileOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "WAL", 10)
	cmd, _ := startHelper(t, "reader", path)
	child := fmt.Sprintf("pid %d", cmd.Process.Pid)

	// Restored from a copy with mv while in use.
	copyFile(t, path, path+".restore")
	if err := os.Rename(path+".restore", path); err != nil {
		t.Fatal(err)
	}
	code, r := doctor(t, path)
	if code != 1 {
		t.Errorf("replaced: exit %d, want 1", code)
	}
	expect(t, r, "deleted files", statusProblem, "A deleted database file is still open", child, "/proc/")

	// Deleted.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	code, r = doctor(t, path)
	if code != 1 {
		t.Errorf("deleted: exit %d, want 1", code)
	}
	expect(t, r, "file", statusProblem, "does not exist", "app.db-wal and app.db-shm exist")
	expect(t, r, "deleted files", statusProblem, child)
}

// copyFile copies src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDoctorWALWithoutSHM copies a database and its -wal (with committed
// transactions) without the -shm, and the other way round, and checks what
// the doctor says, and that it creates no -shm.
func TestDoctorWALWithoutSHM(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "app.db")
	createDB(t, src, "WAL", 1)
	// Keep the -wal: write with a connection that stays open.
	db, err := sql.Open("sqlite", src+"?_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("INSERT INTO t (v) VALUES (randomblob(5000))"); err != nil {
		t.Fatal(err)
	}

	t.Run("wal only", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.db")
		copyFile(t, src, path)
		copyFile(t, src+"-wal", path+"-wal")
		before := snapshot(t, dir)
		code, r := doctor(t, path)
		assertUnchanged(t, dir, before)
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		expect(t, r, "wal and shm", statusInfo, "without its -shm", "rebuilds it from the -wal", "committed")
		expect(t, r, "quick check", statusInfo, "Skipped", "-shm")
		if r.WALFrames < 2 {
			t.Errorf("wal_frames = %d, want the frames of the insert", r.WALFrames)
		}
	})
	t.Run("shm only", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.db")
		copyFile(t, src, path)
		copyFile(t, src+"-shm", path+"-shm")
		before := snapshot(t, dir)
		code, r := doctor(t, path)
		assertUnchanged(t, dir, before)
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		expect(t, r, "wal and shm", statusWarning, "without its -wal", "lost")
	})
}

// TestDoctorFileSystems injects statfs answers: a network file system is a
// problem that names it, a FUSE one a warning, too little room a problem.
func TestDoctorFileSystems(t *testing.T) {
	// Not in parallel: it replaces statFS for the whole package.
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "WAL", 10)
	defer func(f func(string) (fsinfo.Info, error)) { statFS = f }(statFS)
	fake := func(magic int64, typ string, avail uint64) func(string) (fsinfo.Info, error) {
		return func(string) (fsinfo.Info, error) {
			name, network, fuse := fsinfo.Describe(magic)
			if typ != "" {
				name, network = typ, true
			}
			return fsinfo.Info{Type: name, Magic: magic, Network: network, FUSE: fuse, Avail: avail, Total: 1 << 40}, nil
		}
	}
	tests := []struct {
		name   string
		statfs func(string) (fsinfo.Info, error)
		code   int
		check  string
		status string
		words  []string
	}{
		{"nfs", fake(0x6969, "", 1<<39), 1, "file system", statusProblem, []string{"NFS", "0x6969", "network file system", "local disk"}},
		{"cifs", fake(0xFF534D42, "", 1<<39), 1, "file system", statusProblem, []string{"SMB/CIFS"}},
		{"sshfs", fake(0x65735546, "fuse.sshfs", 1<<39), 1, "file system", statusProblem, []string{"sshfs (FUSE)"}},
		{"fuse", fake(0x65735546, "", 1<<39), 0, "file system", statusWarning, []string{"FUSE", "locks"}},
		{"full", fake(0xEF53, "", 1000), 1, "free space", statusProblem, []string{"1000 B free", "database or disk is full"}},
		{"no room for vacuum", fake(0xEF53, "", 30000), 0, "free space", statusWarning, []string{"VACUUM"}},
		{"statfs fails", func(string) (fsinfo.Info, error) { return fsinfo.Info{}, fmt.Errorf("boom") }, 0,
			"file system", statusWarning, []string{"boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			statFS = tt.statfs
			code, r := doctor(t, path)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			expect(t, r, tt.check, tt.status, tt.words...)
		})
	}
}

// TestDoctorJSON checks the JSON object: findings with all four fields,
// and the facts.
func TestDoctorJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "DELETE", 10)
	var stdout bytes.Buffer
	code := run([]string{"doctor", path, "--json"}, &stdout, io.Discard) // the flag after the file
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	var raw map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	for _, key := range []string{"file", "findings", "files", "directory", "filesystem", "processes", "locks",
		"page_size", "journal_mode"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("no %q in the JSON object", key)
		}
	}
	if raw["file"] != path {
		t.Errorf("file = %v, want %s", raw["file"], path)
	}
	findings, _ := raw["findings"].([]any)
	if len(findings) < 8 {
		t.Fatalf("%d findings", len(findings))
	}
	checks := map[string]bool{}
	for _, f := range findings {
		m, _ := f.(map[string]any)
		for _, key := range []string{"check", "status", "detail", "what_to_do"} {
			if s, _ := m[key].(string); s == "" {
				t.Errorf("finding %v has no %q", m, key)
			}
		}
		if s := m["status"]; s != "ok" && s != "info" && s != "warning" && s != "problem" {
			t.Errorf("status %v", s)
		}
		checks[m["check"].(string)] = true
	}
	for _, c := range []string{"file", "journal mode", "sizes", "hot journal", "wal and shm", "permissions",
		"file system", "free space", "processes", "locks", "quick check"} {
		if !checks[c] {
			t.Errorf("no %q finding", c)
		}
	}
	fs, _ := raw["filesystem"].(map[string]any)
	if fs["type"] == "" || fs["avail"] == nil {
		t.Errorf("filesystem = %v", fs)
	}
}

// TestDoctorReadOnlyFile checks a database file without write permission:
// the doctor reads it, reports it, and changes nothing (mode included).
func TestDoctorReadOnlyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "WAL", 10)
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	code, r := doctor(t, path)
	assertUnchanged(t, dir, before)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	expect(t, r, "permissions", statusProblem, "read-only", "-r--r--r--", "mode=ro")
	expect(t, r, "quick check", statusOK, "nothing wrong")
	expect(t, r, "file", statusOK, "SQLite 3 database")
}

// TestDoctorOtherOwner (as root) gives the database to another user while
// the directory and a -shm stay root's: the classic root cron job.
func TestDoctorOtherOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := t.TempDir() // 0700, root's
	path := filepath.Join(dir, "app.db")
	createDB(t, path, "WAL", 10)
	src := filepath.Join(t.TempDir(), "src.db")
	createDB(t, src, "WAL", 1)
	db, err := sql.Open("sqlite", src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("INSERT INTO t (v) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	copyFile(t, src+"-shm", path+"-shm")
	copyFile(t, src+"-wal", path+"-wal")
	const uid = 54321
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	code, r := doctor(t, path)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	expect(t, r, "permissions", statusProblem, "directory", "not writable by uid 54321")
	expect(t, r, "permissions", statusProblem, "app.db-shm is owned by root:root", "uid 54321 (the database's owner) cannot write it", "cron")
}

// TestDoctorNotADatabase checks a missing file and a file that is not a
// database.
func TestDoctorNotADatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, r := doctor(t, filepath.Join(dir, "missing.db"))
	if code != 1 {
		t.Errorf("missing: exit %d, want 1", code)
	}
	expect(t, r, "file", statusProblem, "does not exist")
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Errorf("the doctor created the missing database: %v", err)
	}

	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("hello, this is not a database at all, but it is long enough to have a header"+
		strings.Repeat(".", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, r = doctor(t, text)
	if code != 1 {
		t.Errorf("text: exit %d, want 1", code)
	}
	expect(t, r, "file", statusProblem, "not a SQLite 3 database", "hello")

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	code, r = doctor(t, empty)
	assertUnchanged(t, dir, before)
	if code != 0 {
		t.Errorf("empty: exit %d, want 0", code)
	}
	expect(t, r, "file", statusWarning, "empty")
}

// TestDoctorUsage checks the command line.
func TestDoctorUsage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.db")
	createDB(t, path, "WAL", 1)
	tests := []struct {
		args     []string
		want     int
		inStderr string
	}{
		{[]string{"doctor"}, 2, "missing FILE"},
		{[]string{"doctor", path, path}, 2, "unexpected argument"},
		{[]string{"doctor", "--nosuchflag", path}, 2, "flag provided but not defined"},
		{[]string{"doctor", path, "--json=maybe"}, 2, "invalid boolean"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if got := run(tt.args, &stdout, &stderr); got != tt.want {
			t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
		}
		if !strings.Contains(stderr.String(), tt.inStderr) || !strings.Contains(stderr.String(), "usage: sqlite-safe doctor") {
			t.Errorf("run(%q) stderr = %q, want %q and the usage", tt.args, stderr.String(), tt.inStderr)
		}
	}
	for _, args := range [][]string{{"doctor", "-h"}, {"help", "doctor"}} {
		var stdout, stderr bytes.Buffer
		if got := run(args, &stdout, &stderr); got != 0 || !strings.Contains(stdout.String()+stderr.String(), "read-only") {
			t.Errorf("run(%q) = %d, %q", args, got, stdout.String()+stderr.String())
		}
	}
	var stdout bytes.Buffer
	run([]string{"help"}, &stdout, io.Discard)
	if !strings.Contains(stdout.String(), "doctor") {
		t.Errorf("help does not list doctor:\n%s", stdout.String())
	}
	// Flags before and after the file, and "--" before a file that looks
	// like a flag.
	for _, args := range [][]string{{"--integrity", path}, {path, "--integrity", "-json"}, {"--", path}} {
		var stdout, stderr bytes.Buffer
		if got := run(append([]string{"doctor"}, args...), &stdout, &stderr); got != 0 {
			t.Errorf("doctor %q = %d, stderr %q", args, got, stderr.String())
		}
	}
}

// TestHumanOutput checks the layout: a summary, problems first and marked,
// each block indented, with what to do.
func TestHumanOutput(t *testing.T) {
	t.Parallel()
	r := &report{File: "/x/app.db"}
	r.add("file", statusOK, "fine.", "")
	r.add("file system", statusProblem, strings.Repeat("word ", 40)+"end.", "Move it.")
	r.add("journal mode", statusWarning, "rollback.", "Switch.")
	var b strings.Builder
	writeFindings(&b, r)
	out := b.String()
	lines := strings.Split(out, "\n")
	if lines[0] != "sqlite-safe doctor /x/app.db" || lines[1] != "1 problem, 1 warning, 1 ok" {
		t.Errorf("summary:\n%s", out)
	}
	p, w, o := strings.Index(out, "PROBLEM  file system"), strings.Index(out, "WARNING  journal mode"), strings.Index(out, "ok       file\n")
	if p < 0 || w < p || o < w {
		t.Errorf("order or labels wrong:\n%s", out)
	}
	for _, l := range lines[2:] {
		if len(l) > 100 {
			t.Errorf("line longer than 100: %q", l)
		}
		if l != "" && !strings.HasPrefix(l, "         ") && !strings.HasPrefix(l, "PROBLEM") &&
			!strings.HasPrefix(l, "WARNING") && !strings.HasPrefix(l, "ok") {
			t.Errorf("line not indented: %q", l)
		}
	}
	if !strings.Contains(out, "What to do: Move it.") || strings.Contains(out, "What to do: Nothing.") {
		t.Errorf("what to do:\n%s", out)
	}
}

// TestParseLocks parses /proc/locks lines and says what SQLite's lock
// bytes mean.
func TestParseLocks(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	dev := uint64(0xfd<<8 | 0x01) // 253:1
	targets := []target{
		{role: roleDB, dev: dev, ino: 1311793, exists: true},
		{role: roleSHM, dev: dev, ino: 1311795, exists: true},
	}
	const text = `1: POSIX  ADVISORY  WRITE 1234 fd:01:1311793 1073741825 1073741825
2: -> POSIX  ADVISORY  WRITE 5678 fd:01:1311793 1073741824 1073741824
3: POSIX  ADVISORY  READ  1234 fd:01:1311793 1073741826 1073742335
4: OFDLCK ADVISORY  READ  -1 fd:01:1311795 128 128
5: POSIX  ADVISORY  READ  42 fd:01:1311795 124 124
6: POSIX  ADVISORY  WRITE 42 fd:01:999 0 EOF
7: FLOCK  ADVISORY  WRITE 99 08:01:1311793 0 EOF
8: POSIX  ADVISORY  WRITE 7 fd:01:1311793 1073741826 1073742335
`
	all, err := proclocks.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	locks := matchLocks(all, targets)
	if len(locks) != 6 {
		t.Fatalf("got %d locks, want 6: %+v", len(locks), locks)
	}
	want := []struct {
		pid     int
		role    string
		waiting bool
		meaning string
	}{
		{1234, roleDB, false, "RESERVED"},
		{5678, roleDB, true, "PENDING (waiting"},
		{1234, roleDB, false, "SHARED"},
		{-1, roleSHM, false, "DMS (a connection is open)"},
		{42, roleSHM, false, "read mark 1 (a read transaction is open)"},
		{7, roleDB, false, "EXCLUSIVE"},
	}
	for i, w := range want {
		l := locks[i]
		l.Meaning = lockMeaning(l)
		if l.PID != w.pid || l.Role != w.role || l.Waiting != w.waiting || !strings.HasPrefix(l.Meaning, w.meaning) {
			t.Errorf("lock %d = %+v, want pid %d on %s waiting %v meaning %q", i, l, w.pid, w.role, w.waiting, w.meaning)
		}
	}
	if locks[3].End != 128 || locks[3].Kind != "OFDLCK" {
		t.Errorf("OFD lock = %+v", locks[3])
	}
	l := lockFacts{Role: roleSHM, Type: "WRITE", Start: 120, End: 127}
	if m := lockMeaning(l); !strings.Contains(m, "WAL write lock") || !strings.Contains(m, "recovery lock") ||
		!strings.Contains(m, "read mark 4, exclusively") {
		t.Errorf("recovery locks mean %q", m)
	}
}

// TestWALRule checks the large -wal rule at its edges.
func TestWALRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		wal, db  int64
		pageSize int
		want     bool
	}{
		{4 * mib, 8192, 4096, false},           // a normal -wal of a small database
		{15 * mib, 8192, 4096, false},          // below 4000 pages
		{16 * mib, 8192, 4096, true},           // above 4000 pages and the database
		{60 * mib, 100 * mib, 4096, false},     // below 64 MiB and the database
		{65 * mib, 1 << 40, 4096, true},        // above 64 MiB, whatever the database
		{300 * mib, 1 << 40, 65536, false},     // 16000 pages of 64 KiB are 1000 MiB
		{1001 * mib, 1 << 40, 65536, true},     // above them
		{200 * mib, 100 * mib, 65536, false},   // larger than the database but below 4000 pages
		{251 * mib, 100 * mib, 65536, true},    // and above
		{walHeaderSize, 8192, 4096, false},     // an empty -wal
		{0, 0, 4096, false},                    // nothing
		{17 * mib, 17*mib + 1, 4096, false},    // not larger than the database
		{64*mib + 1, 1 << 40, 512, true},       // small pages: 64 MiB
		{16*mib + 1, 16 * mib, 512, true},      // 4000 pages of 512 bytes are 2 MB
		{3 * mib, 2 * mib, 512, true},          // ...
		{1900000, 1 * mib, 512, false},         // below 4000 pages of 512 bytes
		{64 * mib, 1 << 40, 4096, false},       // 64 MiB exactly
		{1000 * mib, 1 << 40, 65536, false},    // 16000 pages of 64 KiB exactly
		{walOverDBPage * 4096, 1, 4096, false}, // exactly 4000 pages
	}
	for _, tt := range tests {
		if got := walTooLarge(tt.wal, tt.db, tt.pageSize); got != tt.want {
			t.Errorf("walTooLarge(wal %d, db %d, page %d) = %v, want %v", tt.wal, tt.db, tt.pageSize, got, tt.want)
		}
	}
}

// TestHelpersQuoting checks the URI and shell quoting.
func TestHelpersQuoting(t *testing.T) {
	if got := shellQuote("/var/lib/app.db"); got != "/var/lib/app.db" {
		t.Errorf("shellQuote = %q", got)
	}
	if got := shellQuote("/tmp/it's here.db"); got != `'/tmp/it'\''s here.db'` {
		t.Errorf("shellQuote = %q", got)
	}
	// A database whose path needs escaping opens for the check.
	parent := t.TempDir()
	if err := os.Mkdir(filepath.Join(parent, "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	createDB(t, filepath.Join(parent, "plain", "app.db"), "DELETE", 1)
	dir := filepath.Join(parent, "50% #1?")
	if err := os.Rename(filepath.Join(parent, "plain"), dir); err != nil {
		t.Fatal(err)
	}
	_, r := doctor(t, filepath.Join(dir, "app.db"))
	expect(t, r, "quick check", statusOK, "nothing wrong")
}

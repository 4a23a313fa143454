package sqlitesafe_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlitesafe/sqlitesafe"
	"golang.org/x/sys/unix"
)

func init() {
	// lockall opens every file of spec.Dir in every mode it may, takes
	// every lock it can on each (flock, OFD and POSIX, exclusive or else
	// shared, on the whole file), prints "holding N what", and holds them
	// for spec.Duration.
	childRoles["lockall"] = func(spec childSpec, db *sql.DB, res *childResult) error {
		entries, err := os.ReadDir(spec.Dir)
		if err != nil {
			return err
		}
		var held []string
		var open []*os.File
		for _, e := range entries {
			path := filepath.Join(spec.Dir, e.Name())
			for _, mode := range []int{os.O_RDWR, os.O_RDONLY, os.O_WRONLY} {
				f, err := os.OpenFile(path, mode, 0)
				if err != nil {
					continue
				}
				open = append(open, f)
				what := fmt.Sprintf("%s(mode %d)", e.Name(), mode)
				for _, how := range []int{syscall.LOCK_EX, syscall.LOCK_SH} {
					if syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB) == nil {
						held = append(held, fmt.Sprintf("%s flock %d", what, how))
						break
					}
				}
				for _, cmd := range []int{unix.F_OFD_SETLK, unix.F_SETLK} {
					for _, typ := range []int16{unix.F_WRLCK, unix.F_RDLCK} {
						lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
						if unix.FcntlFlock(f.Fd(), cmd, &lk) == nil {
							held = append(held, fmt.Sprintf("%s fcntl %d type %d", what, cmd, typ))
							break
						}
					}
				}
			}
		}
		fmt.Printf("holding %d %s\n", len(held), strings.Join(held, ", "))
		time.Sleep(spec.Duration)
		for _, f := range open {
			f.Close()
		}
		res.Committed = int64(len(held))
		return nil
	}
}

// startUnprivileged starts the child role of spec as the user nobody (the
// tests run as root) and returns it once it has printed a line starting
// with "holding", and that line.
func startUnprivileged(t *testing.T, spec childSpec) (*exec.Cmd, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(otherUserDir(t, false), "test.bin")
	copyFile(t, exe, bin, 0o755)
	spec.Deadline = time.Now().Add(30 * time.Second)
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "holding") {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, line
		}
	}
	cmd.Wait()
	t.Fatalf("the unprivileged child ended without holding anything")
	return nil, ""
}

// With umask 077 the database is private, and so is every file the driver
// makes beside it: another local user, holding every lock it can take on
// every file of the directory, does not delay the owner's writers. The
// control: the same user against the lock file as it was made before
// (readable by all, and flock needs no more) stops them.
func TestOtherUserCannotStopWriters(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a child as another user")
	}
	watchdog(t, 2*time.Minute)
	dir := otherUserDir(t, false) // others may list it and try its files
	path := filepath.Join(dir, "app.db")
	old := syscall.Umask(0o077)
	db := openSafe(t, path+"?_busy_timeout=1000")
	mustExec(t, db, "CREATE TABLE t(x INTEGER PRIMARY KEY)")
	if err := sqlitesafe.Backup(context.Background(), db, filepath.Join(dir, "copy.db")); err != nil {
		t.Fatal(err)
	}
	syscall.Umask(old)

	dbInfo, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, fi.Name())
		if extra := fi.Mode().Perm() &^ dbInfo.Mode().Perm(); extra != 0 {
			t.Errorf("%s is %s, more open than the database (%s)", fi.Name(), fi.Mode().Perm(), dbInfo.Mode().Perm())
		}
	}
	for _, want := range []string{"app.db-writer.lock", "app.db-wal", "app.db-shm", "copy.db"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("no %s among %q", want, names)
		}
	}

	n := 0
	inserts := func(count int) (slow []string) {
		for range count {
			n++
			start := time.Now()
			_, err := db.Exec("INSERT INTO t VALUES (?)", n)
			if d := time.Since(start); err != nil || d > 200*time.Millisecond {
				slow = append(slow, fmt.Sprintf("insert %d: %s, %v", n, d.Round(time.Millisecond), err))
			}
		}
		return slow
	}
	child, holding := startUnprivileged(t, childSpec{Role: "lockall", Driver: "sqlite", DSN: ":memory:", Dir: dir, Duration: 3 * time.Second})
	t.Logf("the other user: %s", holding)
	if slow := inserts(50); len(slow) > 0 {
		t.Errorf("%d of 50 inserts were slow or failed while another user held what locks it could (%s):\n%s",
			len(slow), holding, strings.Join(slow, "\n"))
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("the other user's child: %v", err)
	}

	// The control: the lock file as it was made before this change.
	if err := os.Chmod(path+"-writer.lock", 0o644); err != nil {
		t.Fatal(err)
	}
	child, holding = startUnprivileged(t, childSpec{Role: "lockall", Driver: "sqlite", DSN: ":memory:", Dir: dir, Duration: 3 * time.Second})
	t.Logf("the other user, with the lock file 0644: %s", holding)
	slow := inserts(2)
	if len(slow) != 2 {
		t.Errorf("the control: %d of 2 inserts were stopped by the other user holding the 0644 lock file; want both (%s)", len(slow), holding)
	}
	for _, s := range slow {
		if !strings.Contains(s, "another process") {
			t.Errorf("the control: %s; want a lock timeout naming another process", s)
		}
	}
	child.Wait()
	var count int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&count); err != nil || count != 50 {
		t.Errorf("%d rows, %v; want the 50 inserts made while the lock file was private", count, err)
	}
}

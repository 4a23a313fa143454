package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/sqlitesafe/sqlitesafe/internal/proclocks"
)

// procRoot is where the doctor reads processes and locks.
const procRoot = "/proc"

// fileIDs returns the owner, group, device and inode of fi, from stat(2).
func fileIDs(fi fs.FileInfo) (uid, gid uint32, dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, 0, false
	}
	return st.Uid, st.Gid, uint64(st.Dev), st.Ino, true
}

// readOnlyFS reports whether dir is on a file system mounted read-only.
func readOnlyFS(dir string) bool {
	return errors.Is(syscall.Access(dir, 2 /* W_OK */), syscall.EROFS)
}

// target is a file the doctor looks for among open files and locks.
type target struct {
	role     string // roleDB, roleWAL, ...
	path     string // absolute, without symlinks
	dev, ino uint64 // valid if exists
	exists   bool
}

// scanProcesses lists the processes that have one of the targets open, by
// reading the links in /proc/*/fd. A link whose name matches but that
// points to a deleted file counts when it is in the targets' directory. It
// also returns the device and inode of the deleted files found (for the
// locks), and the number of processes whose fds could not be read.
func scanProcesses(targets []target) (procs []procFacts, deleted []target, unreadable int, err error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("listing processes: %w", err)
	}
	byBase := map[string]target{}
	for _, t := range targets {
		byBase[filepath.Base(t.path)] = t
	}
	dir := filepath.Dir(targets[0].path)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // a process that just exited
				unreadable++
			}
			continue
		}
		var files []openFile
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			name, isDeleted := strings.CutSuffix(link, " (deleted)")
			t, ok := byBase[filepath.Base(name)]
			if !ok {
				continue
			}
			fdPath := filepath.Join(fdDir, fd.Name())
			fi, err := os.Stat(fdPath)
			if err != nil {
				continue
			}
			_, _, dev, ino, _ := fileIDs(fi)
			switch {
			case isDeleted && filepath.Dir(name) == dir:
				deleted = append(deleted, target{role: t.role, path: name, dev: dev, ino: ino, exists: true})
			case !isDeleted && t.exists && dev == t.dev && ino == t.ino:
			default:
				continue // another file of the same name
			}
			n, _ := strconv.Atoi(fd.Name())
			files = append(files, openFile{Role: t.role, FD: n, Access: fdAccess(pid, fd.Name()), Deleted: isDeleted})
		}
		if len(files) == 0 {
			continue
		}
		p := procFacts{PID: pid, Command: commandLine(pid), Files: files}
		p.UID, p.GIDs = processIDs(pid)
		procs = append(procs, p)
	}
	return procs, deleted, unreadable, nil
}

// fdAccess says whether fd of pid is open read-only or read-write, from
// the flags in /proc/PID/fdinfo/FD.
func fdAccess(pid int, fd string) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "fdinfo", fd))
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			if err != nil {
				return ""
			}
			switch flags & 3 {
			case 0:
				return "read-only"
			case 1:
				return "write-only"
			default:
				return "read-write"
			}
		}
	}
	return ""
}

// commandLine returns the command line of pid on one line, or its name if
// it has none, shortened to 120 characters.
func commandLine(pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
	// Arguments are separated by NULs, and may hold newlines.
	s := strings.Join(strings.FieldsFunc(string(b), func(c rune) bool { return c == 0 || unicode.IsSpace(c) }), " ")
	if err != nil || s == "" {
		b, _ = os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "comm"))
		s = "[" + strings.TrimSpace(string(b)) + "]"
	}
	if r := []rune(s); len(r) > 120 {
		s = string(r[:117]) + "..."
	}
	return s
}

// processIDs returns the effective uid and the groups (effective gid and
// supplementary groups) of pid, from /proc/PID/status. The uid is -1 if
// unknown.
func processIDs(pid int) (uid int64, gids []uint32) {
	uid = -1
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return uid, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid":
			if len(fields) > 1 {
				if n, err := strconv.ParseUint(fields[1], 10, 32); err == nil {
					uid = int64(n)
				}
			}
		case "Gid", "Groups":
			if key == "Gid" && len(fields) > 1 {
				fields = fields[1:2]
			}
			for _, g := range fields {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					gids = append(gids, uint32(n))
				}
			}
		}
	}
	return uid, gids
}

// readLocks returns the locks in /proc/locks on the targets (matched by
// device and inode).
func readLocks(targets []target) ([]lockFacts, error) {
	var files []proclocks.File
	for _, t := range targets {
		if t.exists {
			files = append(files, proclocks.File{Dev: t.dev, Ino: t.ino})
		}
	}
	all, err := proclocks.ReadOn(files...)
	if err != nil {
		return nil, fmt.Errorf("reading locks: %w", err)
	}
	return matchLocks(all, targets), nil
}

// matchLocks returns the locks on the targets, in the order given.
func matchLocks(all []proclocks.Lock, targets []target) []lockFacts {
	var locks []lockFacts
	for _, l := range all {
		i := slices.IndexFunc(targets, func(t target) bool { return t.exists && l.On(t.dev, t.ino) })
		if i < 0 {
			continue
		}
		locks = append(locks, lockFacts{
			PID: l.PID, Role: targets[i].role, Kind: l.Kind, Type: l.Type, Start: l.Start, End: l.End, Waiting: l.Waiting,
		})
	}
	return locks
}

// backupRunning reports whether the sqlite-safe backup writing the
// temporary file at path is running: it holds an OFD write lock on the
// file's first byte until it ends (/proc/locks shows it). known is false if
// that cannot be read.
func backupRunning(path string) (running, known bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, true // a -journal whose file is gone
	}
	_, _, dev, ino, _ := fileIDs(fi)
	all, err := proclocks.ReadOn(proclocks.File{Dev: dev, Ino: ino})
	if err != nil {
		return false, false
	}
	for _, l := range all {
		if l.Kind == "OFDLCK" && l.Type == "WRITE" && !l.Waiting && l.Start == 0 && l.On(dev, ino) {
			return true, true
		}
	}
	return false, true
}

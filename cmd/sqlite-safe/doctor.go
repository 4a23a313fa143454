package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/fsinfo"
	"github.com/sqlitesafe/sqlitesafe/internal/lockfile"
	"github.com/sqlitesafe/sqlitesafe/internal/safefile"
	"github.com/sqlitesafe/sqlitesafe/internal/sqliteuri"
)

// The doctor is read-only: it reads the headers of the database, -wal and
// -journal itself, and opens the database through SQLite only for PRAGMA
// quick_check, with the plain modernc.org/sqlite driver ("sqlite", imported
// by demo.go) and mode=ro, never with sqlite-safe (which would switch the
// database to WAL). It skips that open where even a read-only open would
// change the files (a hot journal, a -wal without its -shm).
//
// Run inside a process that has the database open through SQLite, the
// doctor leaves that process's locks alone: it reads the headers through a
// descriptor the process already has open on the file, where there is one
// (closing another descriptor would release every POSIX lock the process
// holds on the file), and its own SQLite connection closes through SQLite's
// VFS, which keeps the file open while the process holds locks on it.

// statFS describes the file system holding a path; tests replace it.
var statFS = fsinfo.Stat

// The status of a finding, from worst to best.
const (
	statusProblem = "problem"
	statusWarning = "warning"
	statusInfo    = "info"
	statusOK      = "ok"
)

// The roles of the files the doctor looks at.
const (
	roleDB      = "database"
	roleWAL     = "-wal"
	roleSHM     = "-shm"
	roleJournal = "-journal"
	roleDir     = "directory"
)

// finding is one result of the checklist.
type finding struct {
	Check    string `json:"check"`
	Status   string `json:"status"`
	Detail   string `json:"detail"`
	WhatToDo string `json:"what_to_do"`
}

// fileFacts describes one file (or the directory) as stat saw it.
type fileFacts struct {
	Role   string  `json:"role"`
	Path   string  `json:"path"`
	Exists bool    `json:"exists"`
	Size   int64   `json:"size"`
	Mode   string  `json:"mode,omitempty"` // "-rw-r--r--"
	UID    *uint32 `json:"uid,omitempty"`
	GID    *uint32 `json:"gid,omitempty"`
	Owner  string  `json:"owner,omitempty"`
	Group  string  `json:"group,omitempty"`

	perm     fs.FileMode
	uid, gid uint32
	dev, ino uint64
}

// fsFacts is the file system holding the database.
type fsFacts struct {
	Type    string `json:"type"`
	Magic   string `json:"magic"`
	Network bool   `json:"network"`
	FUSE    bool   `json:"fuse"`
	Avail   uint64 `json:"avail"`
	Total   uint64 `json:"total"`
}

// openFile is one descriptor a process has on one of the files.
type openFile struct {
	Role    string `json:"file"`
	FD      int    `json:"fd"`
	Access  string `json:"access,omitempty"` // "read-only", "read-write"
	Deleted bool   `json:"deleted,omitempty"`
}

// procFacts is a process that has one of the files open.
type procFacts struct {
	PID     int        `json:"pid"`
	Command string     `json:"command"`
	UID     int64      `json:"uid"`
	User    string     `json:"user,omitempty"`
	Files   []openFile `json:"files"`

	GIDs []uint32 `json:"-"`
}

// lockFacts is one lock from /proc/locks on one of the files.
type lockFacts struct {
	PID     int    `json:"pid"` // -1 for an OFD lock
	Command string `json:"command,omitempty"`
	Role    string `json:"file"`
	Kind    string `json:"kind"` // POSIX, OFDLCK, FLOCK, LEASE
	Type    string `json:"type"` // READ, WRITE
	Start   int64  `json:"start"`
	End     int64  `json:"end"` // inclusive; -1 for the end of the file
	Waiting bool   `json:"waiting,omitempty"`
	Meaning string `json:"meaning,omitempty"`
}

// report is what the doctor found: facts, and findings about them.
type report struct {
	File        string      `json:"file"`
	Exists      bool        `json:"exists"`
	SQLite      bool        `json:"sqlite"`
	PageSize    int         `json:"page_size,omitempty"`
	PageCount   int64       `json:"page_count,omitempty"`
	JournalMode string      `json:"journal_mode,omitempty"` // "wal" or "rollback", from the header
	WrittenBy   string      `json:"written_by,omitempty"`   // SQLite version that last wrote it
	Files       []fileFacts `json:"files"`
	Directory   *fileFacts  `json:"directory,omitempty"`
	WALFrames   int64       `json:"wal_frames,omitempty"`
	FileSystem  *fsFacts    `json:"filesystem,omitempty"`
	Processes   []procFacts `json:"processes"`
	ProcErrors  int         `json:"proc_unreadable"`
	Locks       []lockFacts `json:"locks"`
	CheckResult []string    `json:"check_result,omitempty"`
	Findings    []finding   `json:"findings"`

	hotJournal    bool // a hot journal: do not open the database
	procsUnknown  bool // the process scan failed altogether
	walWithoutSHM bool // a -wal without -shm: do not open the database
}

// add records a finding. An ok finding needs nothing done.
func (r *report) add(check, status, detail, what string) {
	if what == "" {
		what = "Nothing."
	}
	r.Findings = append(r.Findings, finding{check, status, detail, what})
}

// file returns the facts of the file with role.
func (r *report) file(role string) *fileFacts {
	for i := range r.Files {
		if r.Files[i].Role == role {
			return &r.Files[i]
		}
	}
	return &fileFacts{Role: role}
}

// doctorOptions are the flags of the doctor command.
type doctorOptions struct {
	json      bool
	integrity bool
}

// runDoctor is the doctor command.
func runDoctor(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(fset.Output(), "usage: sqlite-safe doctor FILE [--json] [--integrity]\n\n"+
			"Runs the \"database is locked\" checklist on a SQLite database file (any SQLite\n"+
			"file, not only sqlite-safe's) and says what to do about each finding: journal\n"+
			"mode, -wal/-shm/-journal files and their sizes, a hot journal, owners and\n"+
			"permissions, the file system and free space, the processes that have the\n"+
			"files open and the locks they hold, sqlite-safe's lock file, the leftovers of\n"+
			"backups that died, and PRAGMA quick_check.\n\n"+
			"It is read-only: it never creates, modifies or deletes the database or its\n"+
			"-wal or -journal. The exit status is 0 if it found no problem, 1 if it did,\n"+
			"2 for a usage error.\n\nflags:\n")
		fset.PrintDefaults()
	}
	var o doctorOptions
	fset.BoolVar(&o.json, "json", false, "print the findings and facts as a JSON object")
	fset.BoolVar(&o.integrity, "integrity", false, "run PRAGMA integrity_check (thorough, slower) instead of quick_check")
	files, err := parseInterspersed(fset, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(files) != 1 {
		if len(files) == 0 {
			fmt.Fprintln(stderr, "sqlite-safe doctor: missing FILE")
		} else {
			fmt.Fprintf(stderr, "sqlite-safe doctor: unexpected argument %q (one FILE at a time)\n", files[1])
		}
		fset.Usage()
		return 2
	}
	r := diagnose(files[0], o)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(stderr, "sqlite-safe doctor: %v\n", err)
			return 1
		}
	} else {
		writeFindings(stdout, r)
	}
	for _, f := range r.Findings {
		if f.Status == statusProblem {
			return 1
		}
	}
	return 0
}

// parseInterspersed parses args with fset, letting flags come before and
// after the positional arguments, which it returns. After "--" everything
// is positional.
func parseInterspersed(fset *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for rest := args; ; {
		if err := fset.Parse(rest); err != nil {
			return nil, err
		}
		if fset.NArg() == 0 {
			return pos, nil
		}
		if used := len(rest) - fset.NArg(); used > 0 && rest[used-1] == "--" {
			return append(pos, fset.Args()...), nil
		}
		pos = append(pos, fset.Arg(0))
		rest = fset.Args()[1:]
	}
}

// The journal header magic, and the WAL header magics (big- and
// little-endian checksums).
var journalMagic = []byte{0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7}

const (
	walMagicBE     = 0x377f0683
	walMagicLE     = 0x377f0682
	walHeaderSize  = 32
	walFrameHeader = 24
	sqliteHeader   = "SQLite format 3\x00"
	mib            = 1 << 20
)

// The WAL size rule. SQLite checkpoints after every 1000 pages written to
// the -wal (wal_autocheckpoint's default) and then starts the -wal again from
// its beginning, so a healthy -wal stays about 1000 pages (4 MiB with 4 KiB
// pages) plus the largest transaction. It outgrows that only when
// checkpoints cannot finish: a reader that never ends its read transaction,
// or nothing that checkpoints. The doctor warns above 64 MiB (16 times the
// default point, and at least 16000 pages for large pages), or when the
// -wal is larger than the database itself and past 4000 pages (4 times the
// default point): one transaction writes each page once, so a -wal larger
// than the whole database holds many transactions that were never
// checkpointed.
const (
	walLargeBytes = 64 * mib
	walLargePages = 16000
	walOverDBPage = 4000
)

// walTooLarge applies the WAL size rule.
func walTooLarge(walSize, dbSize int64, pageSize int) bool {
	return walSize > max(walLargeBytes, walLargePages*int64(pageSize)) ||
		(walSize > dbSize && walSize > walOverDBPage*int64(pageSize))
}

// diagnose runs the checklist on path.
func diagnose(path string, o doctorOptions) *report {
	r := &report{File: path, Files: []fileFacts{}, Processes: []procFacts{}, Locks: []lockFacts{}}
	abs, err := filepath.Abs(path)
	if err == nil {
		r.File = abs
	}
	fi, err := os.Stat(r.File)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		var present []string
		for _, s := range []string{"-wal", "-shm", "-journal"} {
			if _, err := os.Lstat(r.File + s); err == nil {
				present = append(present, filepath.Base(r.File+s))
			}
		}
		detail := r.File + " does not exist."
		if len(present) > 0 {
			detail += " Yet " + strings.Join(present, " and ") + " exist: the database was deleted, moved or " +
				"renamed without them, and without the database they are useless (a -wal or -journal belongs " +
				"to one database file)."
		}
		r.add("file", statusProblem, detail, "Check the path: the application may run in another working directory or "+
			"use another name in its DSN. (SQLite creates an empty database when a program opens a missing path "+
			"read-write: an unexpected empty database means a program looked in the wrong place.)")
		// A process may still hold the deleted file.
		var targets []target
		for _, role := range []string{roleDB, roleWAL, roleSHM, roleJournal} {
			p := r.File
			if role != roleDB {
				p += role
			}
			targets = append(targets, target{role: role, path: p})
		}
		if procs, _, _, err := scanProcesses(targets); err == nil {
			for i := range procs {
				procs[i].User = userName(procs[i].UID)
			}
			r.Processes = append(r.Processes, procs...)
			checkDeleted(r)
		}
		return r
	case err != nil:
		r.add("file", statusProblem, fmt.Sprintf("cannot stat %s: %v.", r.File, err),
			"Run the doctor as a user that can reach the file (the application's user, or root).")
		return r
	case fi.IsDir():
		r.add("file", statusProblem, r.File+" is a directory, not a database file.", "Give the path of the database file.")
		return r
	}
	r.Exists = true
	if real, err := filepath.EvalSymlinks(r.File); err == nil && real != r.File {
		// SQLite puts the -wal and -journal next to the real file.
		r.File = real
	}
	dir := filepath.Dir(r.File)

	// Stat everything, then look at processes and locks before the doctor
	// opens any file itself.
	for _, role := range []string{roleDB, roleWAL, roleSHM, roleJournal} {
		p := r.File
		if role != roleDB {
			p += role
		}
		r.Files = append(r.Files, statFile(role, p))
	}
	d := statFile(roleDir, dir)
	r.Directory = &d
	targets := make([]target, 0, len(r.Files))
	for _, f := range r.Files {
		targets = append(targets, target{role: f.Role, path: f.Path, dev: f.dev, ino: f.ino, exists: f.Exists})
	}
	procs, deleted, unreadable, perr := scanProcesses(targets)
	for _, d := range deleted {
		if !slices.ContainsFunc(targets, func(t target) bool { return t.exists && t.dev == d.dev && t.ino == d.ino }) {
			d.role += " (deleted)"
			targets = append(targets, d)
		}
	}
	locks, lerr := readLocks(targets)
	if perr != nil {
		r.procsUnknown = true
	}
	r.ProcErrors = unreadable
	for i := range procs {
		procs[i].User = userName(procs[i].UID)
	}
	r.Processes = append(r.Processes, procs...)
	for i := range locks {
		locks[i].Command = r.command(locks[i].PID)
		locks[i].Meaning = lockMeaning(locks[i])
	}
	r.Locks = append(r.Locks, locks...)

	hdr := checkHeader(r)
	checkJournalMode(r, hdr)
	checkSizes(r, hdr)
	checkJournal(r)
	checkWALAndSHM(r)
	checkDeleted(r)
	checkPermissions(r)
	checkFileSystem(r)
	checkProcesses(r, perr)
	checkLocks(r, lerr)
	checkLockFile(r)
	checkBackupLeftovers(r)
	checkIntegrity(r, hdr, o.integrity)
	return r
}

// statFile describes the file at path.
func statFile(role, path string) fileFacts {
	f := fileFacts{Role: role, Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return f
	}
	f.Exists = true
	f.Size = fi.Size()
	f.perm = fi.Mode()
	f.Mode = fi.Mode().String()
	if uid, gid, dev, ino, ok := fileIDs(fi); ok {
		f.UID, f.GID, f.dev, f.ino = &uid, &gid, dev, ino
		f.uid, f.gid = uid, gid
		f.Owner = userName(int64(uid))
		f.Group = groupName(gid)
	}
	return f
}

// userName returns the name of uid, or "uid N".
func userName(uid int64) string {
	if uid < 0 {
		return "an unknown user"
	}
	if u, err := user.LookupId(strconv.FormatInt(uid, 10)); err == nil {
		return u.Username
	}
	return "uid " + strconv.FormatInt(uid, 10)
}

// groupName returns the name of gid, or "gid N".
func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return "gid " + strconv.FormatUint(uint64(gid), 10)
}

// command returns the command line of pid if it has one of the files open.
func (r *report) command(pid int) string {
	for _, p := range r.Processes {
		if p.PID == pid {
			return p.Command
		}
	}
	return ""
}

// readPrefix reads up to n bytes from the start of path, without closing a
// descriptor of a file this process has open (which would drop its locks
// on the file: the doctor may run inside a program using the database).
func readPrefix(path string, n int) ([]byte, error) { return safefile.Prefix(path, n) }

// dbHeader is what the doctor reads of the database header (the first 100
// bytes; see https://sqlite.org/fileformat.html).
type dbHeader struct {
	pageSize          int
	writeVer, readVer byte
	pageCount         int64 // the in-header size, 0 if not valid
	encoding          uint32
	version           uint32 // SQLITE_VERSION_NUMBER of the last writer
}

// parseDBHeader parses the first 100 bytes of a database.
func parseDBHeader(b []byte) (dbHeader, error) {
	if len(b) < 100 || string(b[:16]) != sqliteHeader {
		n := min(len(b), 16)
		return dbHeader{}, fmt.Errorf("its first bytes are %q, not %q", b[:n], sqliteHeader)
	}
	h := dbHeader{
		pageSize: int(binary.BigEndian.Uint16(b[16:])),
		writeVer: b[18],
		readVer:  b[19],
		encoding: binary.BigEndian.Uint32(b[56:]),
		version:  binary.BigEndian.Uint32(b[96:]),
	}
	if h.pageSize == 1 {
		h.pageSize = 65536
	}
	if h.pageSize < 512 || h.pageSize&(h.pageSize-1) != 0 {
		return h, fmt.Errorf("its page size field says %d, which is not a power of two from 512 to 65536", h.pageSize)
	}
	// The in-header size is valid if the change counter equals the
	// version-valid-for number.
	if n := binary.BigEndian.Uint32(b[28:]); n > 0 && binary.BigEndian.Uint32(b[24:]) == binary.BigEndian.Uint32(b[92:]) {
		h.pageCount = int64(n)
	}
	return h, nil
}

// checkHeader is the "file" check: the file is a SQLite database. It
// returns the header, nil if the file is not one (or is empty).
func checkHeader(r *report) *dbHeader {
	db := r.file(roleDB)
	b, err := readPrefix(r.File, 100)
	if err != nil {
		r.add("file", statusProblem, fmt.Sprintf("cannot read %s: %v.", r.File, err),
			"Run the doctor as the user the application runs as, or as root.")
		return nil
	}
	if len(b) == 0 {
		r.add("file", statusWarning, r.File+" is empty (0 bytes). SQLite treats an empty file as a new database "+
			"with no tables; the first write turns it into one.",
			"If it should hold data, this is the wrong file or it was truncated: look for the real one (the application's "+
				"working directory, its DSN), or restore it from a backup.")
		return nil
	}
	h, err := parseDBHeader(b)
	if err != nil {
		r.add("file", statusProblem, fmt.Sprintf("%s (%s) is not a SQLite 3 database: %v.", r.File, formatBytes(db.Size), err),
			"Check the path. An encrypted database (SQLCipher, SEE) looks like this too, and needs its key and library. "+
				"If this was a SQLite database, its first page was overwritten: restore it from a backup.")
		return nil
	}
	r.SQLite = true
	r.PageSize = h.pageSize
	r.PageCount = h.pageCount
	if h.pageCount == 0 {
		r.PageCount = db.Size / int64(h.pageSize)
	}
	if h.version != 0 {
		r.WrittenBy = fmt.Sprintf("%d.%d.%d", h.version/1000000, h.version/1000%1000, h.version%1000)
	}
	enc := map[uint32]string{1: "UTF-8", 2: "UTF-16le", 3: "UTF-16be"}[h.encoding]
	pages := "pages"
	if r.PageCount == 1 {
		pages = "page"
	}
	detail := fmt.Sprintf("%s is a SQLite 3 database: %d %s of %d bytes (%s)", r.File, r.PageCount, pages, h.pageSize, formatBytes(db.Size))
	if enc != "" {
		detail += ", text in " + enc
	}
	if r.WrittenBy != "" {
		detail += ", last written by SQLite " + r.WrittenBy
	}
	detail += "."
	wal := r.file(roleWAL)
	switch {
	case h.pageCount > 0 && db.Size < h.pageCount*int64(h.pageSize) && (!wal.Exists || wal.Size <= walHeaderSize):
		r.add("file", statusProblem, fmt.Sprintf("%s is shorter than its header says: %s on disk, but %d pages of %d "+
			"bytes (%s) in the header, and no -wal holds the rest. It was truncated: a copy that did not finish, a full "+
			"disk, or a file system that lost data.", r.File, formatBytes(db.Size), h.pageCount, h.pageSize,
			formatBytes(h.pageCount*int64(h.pageSize))),
			"Stop writing to it and keep a copy. Run \"sqlite-safe doctor --integrity\"; restore from a backup, or "+
				"salvage what you can with \"sqlite3 COPY .recover | sqlite3 new.db\" on a copy.")
	case db.Size%int64(h.pageSize) != 0:
		r.add("file", statusWarning, detail+fmt.Sprintf(" But its size is not a whole number of pages (%d bytes "+
			"left over): something other than SQLite wrote to it, or a copy of it did not finish.", db.Size%int64(h.pageSize)),
			"Run \"sqlite-safe doctor --integrity\" on it, and find what wrote to the file.")
	default:
		r.add("file", statusOK, detail, "")
	}
	return &h
}

// checkJournalMode is the "journal mode" check, from header bytes 18/19.
func checkJournalMode(r *report, h *dbHeader) {
	if h == nil {
		return
	}
	switch {
	case h.writeVer == 2 && h.readVer == 2:
		r.JournalMode = "wal"
		r.add("journal mode", statusOK, "WAL mode (header bytes 18 and 19 are 2): readers do not block the writer, "+
			"and the writer does not block readers. Writers still take turns, one at a time.", "")
	case h.writeVer == 1 && h.readVer == 1:
		r.JournalMode = "rollback"
		r.add("journal mode", statusWarning, "Rollback-journal mode (header bytes 18 and 19 are 1: journal_mode DELETE, "+
			"TRUNCATE or PERSIST). In this mode readers and the writer block each other: a writer must wait until no "+
			"reader holds the database to commit, and while it commits no one can read, so both sides get \"database "+
			"is locked\" once their busy timeout runs out.",
			fmt.Sprintf("Switch to WAL once (it is stored in the file) while no other process has it open: "+
				"sqlite3 %s 'PRAGMA journal_mode=WAL;' (it prints \"wal\"). sqlite-safe switches a database to WAL when "+
				"it opens it. WAL needs a local file system (it shares memory through the -shm file) and SQLite 3.7.0 "+
				"or later in every program that opens the file.", shellQuote(r.File)))
	default:
		r.add("journal mode", statusProblem, fmt.Sprintf("Header bytes 18 and 19 are %d and %d; SQLite writes 1 "+
			"(rollback journal) or 2 (WAL). Either a newer file format or a damaged header.", h.writeVer, h.readVer),
			"Open it with the newest sqlite3 you have; if it fails, restore the database from a backup.")
	}
}

// checkSizes is the "sizes" check, and the WAL size rule.
func checkSizes(r *report, h *dbHeader) {
	db, wal, shm, jr := r.file(roleDB), r.file(roleWAL), r.file(roleSHM), r.file(roleJournal)
	part := func(f *fileFacts) string {
		if !f.Exists {
			return "no " + f.Role
		}
		return f.Role + " " + formatBytes(f.Size)
	}
	parts := []string{"database " + formatBytes(db.Size), part(wal), part(shm), part(jr)}
	pageSize := 4096
	if h != nil {
		pageSize = h.pageSize
	}
	if wal.Exists && wal.Size >= walHeaderSize {
		b, err := readPrefix(wal.Path, walHeaderSize)
		if err == nil && len(b) == walHeaderSize {
			if m := binary.BigEndian.Uint32(b); m == walMagicBE || m == walMagicLE {
				if ps := int(binary.BigEndian.Uint32(b[8:])); ps >= 512 && ps <= 65536 {
					pageSize = ps
				}
				r.WALFrames = (wal.Size - walHeaderSize) / int64(walFrameHeader+pageSize)
				parts[1] += fmt.Sprintf(" (up to %s)", plural(r.WALFrames, "frame"))
			} else {
				parts[1] += " (no valid WAL header: it holds no transactions)"
			}
		}
	}
	r.add("sizes", statusInfo, strings.Join(parts, ", ")+".", "")
	if !wal.Exists {
		return
	}
	if !walTooLarge(wal.Size, db.Size, pageSize) {
		r.add("wal size", statusOK, fmt.Sprintf("The -wal is %s: within what checkpoints keep it to (the doctor warns "+
			"above %s, or above the database's size once past %d pages).", formatBytes(wal.Size),
			formatBytes(max(walLargeBytes, walLargePages*int64(pageSize))), walOverDBPage), "")
		return
	}
	var why string
	if wal.Size > max(walLargeBytes, walLargePages*int64(pageSize)) {
		why = fmt.Sprintf("more than %s", formatBytes(max(walLargeBytes, walLargePages*int64(pageSize))))
	} else {
		why = fmt.Sprintf("larger than the database itself (%s)", formatBytes(db.Size))
	}
	detail := fmt.Sprintf("The -wal is %s (up to %s), %s. SQLite copies the -wal into the database "+
		"(a checkpoint) after every 1000 pages written, by default, and then starts it again from the beginning, so "+
		"it normally stays near %s. This one has grown because checkpoints cannot finish: a reader that never ends "+
		"its read transaction keeps the frames it might need, or nothing checkpoints (wal_autocheckpoint=0, or only "+
		"read-only connections). Reads slow down as the -wal grows, and it never shrinks by itself.",
		formatBytes(wal.Size), plural(r.WALFrames, "frame"), why, formatBytes(1000*int64(pageSize)))
	if holders := r.holders(roleWAL, roleSHM); holders != "" {
		detail += " Holding the -wal or -shm open or locked: " + holders + "."
	} else if !r.procsUnknown {
		detail += " No process has it open now: the next connection checkpoints it."
	}
	r.add("wal size", statusWarning, detail, "Find the reader that stays inside a transaction (see \"processes\" and "+
		"\"locks\": a leaked connection, an unclosed Rows, a transaction never committed) and end it. Then a checkpoint "+
		"empties the -wal: sqlite3 "+shellQuote(r.File)+" 'PRAGMA wal_checkpoint(TRUNCATE);' prints 0 first if it "+
		"finished, 1 if a reader still blocks it. Never delete the -wal: it holds committed transactions that are "+
		"not in the database file yet.")
}

// holders names the processes that have one of the roles open or locked.
func (r *report) holders(roles ...string) string {
	var out []string
	for _, p := range r.Processes {
		var what []string
		add := func(s string) {
			if !slices.Contains(what, s) {
				what = append(what, s)
			}
		}
		for _, f := range p.Files {
			if slices.Contains(roles, f.Role) {
				add(f.Role + " open")
			}
		}
		for _, l := range r.Locks {
			if l.PID == p.PID && slices.Contains(roles, l.Role) && l.Meaning != "" {
				add(l.Meaning)
			}
		}
		if len(what) > 0 {
			out = append(out, fmt.Sprintf("pid %d (%s) with %s", p.PID, p.Command, strings.Join(what, ", ")))
		}
	}
	return strings.Join(out, "; ")
}

// lockedDB returns the locks held (not waited for) on the database file.
func (r *report) lockedDB() []lockFacts {
	var out []lockFacts
	for _, l := range r.Locks {
		if l.Role == roleDB && !l.Waiting {
			out = append(out, l)
		}
	}
	return out
}

// checkJournal is the "hot journal" check.
func checkJournal(r *report) {
	jr := r.file(roleJournal)
	if !jr.Exists {
		r.add("hot journal", statusOK, "No -journal: no rollback-journal transaction is running or was left "+
			"unfinished.", "")
		return
	}
	if jr.Size == 0 {
		r.add("hot journal", statusOK, "The -journal is empty (journal_mode=TRUNCATE leaves it so after each "+
			"transaction): nothing to roll back.", "")
		return
	}
	b, err := readPrefix(jr.Path, len(journalMagic))
	if err != nil {
		r.add("hot journal", statusWarning, fmt.Sprintf("The -journal exists (%s) but cannot be read: %v.",
			formatBytes(jr.Size), err), "Run the doctor as root or as the database's owner.")
		return
	}
	if !bytes.Equal(b, journalMagic) {
		if bytes.Count(b, []byte{0}) == len(b) {
			r.add("hot journal", statusOK, fmt.Sprintf("The -journal (%s) has a zeroed header: journal_mode=PERSIST "+
				"leaves it so after each transaction, and a transaction that has not written to the database yet "+
				"looks the same. Nothing to roll back.", formatBytes(jr.Size)), "")
		} else {
			r.add("hot journal", statusInfo, fmt.Sprintf("The -journal (%s) has no valid header: it holds nothing "+
				"to roll back, and the next write transaction replaces it.", formatBytes(jr.Size)), "")
		}
		return
	}
	var users []string
	for _, l := range r.lockedDB() {
		what := l.Meaning
		if what == "" {
			what = "a " + l.Kind + " " + l.Type + " lock"
		}
		users = append(users, fmt.Sprintf("pid %d holds %s", l.PID, what))
	}
	for _, p := range r.Processes {
		for _, f := range p.Files {
			if f.Role == roleJournal {
				users = append(users, fmt.Sprintf("pid %d has the -journal open", p.PID))
			}
		}
	}
	if len(users) > 0 {
		r.add("hot journal", statusInfo, fmt.Sprintf("The -journal (%s) has a valid header and the database is "+
			"locked: a write transaction is in progress (%s). The -journal holds the pages it changes, as they were.",
			formatBytes(jr.Size), strings.Join(slices.Compact(users), "; ")),
			"Nothing, unless it stays: a transaction that stays open blocks every other writer (and, in this mode, "+
				"every reader while it commits). See \"processes\" and \"locks\".")
		return
	}
	if r.procsUnknown {
		r.add("hot journal", statusWarning, fmt.Sprintf("The -journal (%s) has a valid header, and the doctor "+
			"cannot see whether a process holds a lock on the database. If none does, it is a hot journal left by a "+
			"crash, which the next read-write open rolls back.", formatBytes(jr.Size)),
			"Do not delete, rename or move the -journal: without it the database may be corrupt.")
		r.hotJournal = true
		return
	}
	r.hotJournal = true
	r.add("hot journal", statusWarning, fmt.Sprintf("%s (%s, with a valid header) is a hot journal: a write "+
		"transaction did not finish (its process crashed, was killed or lost power while committing) and no process "+
		"holds a lock on the database. The database file may hold part of that transaction; the -journal holds the "+
		"original pages. The next connection that opens the database read-write rolls the journal back, restoring "+
		"the database as it was before that transaction, and deletes it. Read-only connections cannot, and fail "+
		"until that happens.", filepath.Base(jr.Path), formatBytes(jr.Size)),
		"Do not delete, rename or move the -journal, and do not copy the database without it: without it the "+
			"half-written pages stay and the database is corrupt. Let the application open the database, or open it "+
			"once yourself read-write as a user who can write the database and its directory (sqlite3 "+
			shellQuote(r.File)+" 'PRAGMA quick_check;'); the rollback happens then. To be safe, first copy both files "+
			"elsewhere together.")
}

// checkWALAndSHM is the "wal and shm" check: a -wal without its -shm, or a
// -shm without its -wal.
func checkWALAndSHM(r *report) {
	wal, shm := r.file(roleWAL), r.file(roleSHM)
	users := r.dbUsers()
	switch {
	case wal.Exists && shm.Exists:
		if len(users) == 0 && !r.procsUnknown {
			r.add("wal and shm", statusInfo, "The -wal and -shm exist but no process has the database open: the last "+
				"connection did not close normally (it crashed or was killed), or closed in persistent-WAL mode. They "+
				"are fine: the next connection uses them.", "")
			return
		}
		r.add("wal and shm", statusOK, "The -wal and -shm exist, as they do while the database is open in WAL mode.", "")
	case !wal.Exists && !shm.Exists:
		r.add("wal and shm", statusOK, "No -wal and no -shm: no connection has the database open in WAL mode.", "")
	case wal.Exists:
		r.walWithoutSHM = true
		if len(users) > 0 {
			r.add("wal and shm", statusProblem, fmt.Sprintf("The -shm is missing while %s the database open: "+
				"it was deleted under running processes. A process that opens the database now builds a new -shm "+
				"while the running ones keep the deleted one, so they no longer see each other's locks and can "+
				"overwrite each other's transactions (corruption).", strings.Join(users, ", ")+pluralHas(len(users))),
				"Stop every process that uses the database (cleanly, so each closes its connections), then start "+
					"them again: the first to open the database rebuilds the -shm from the -wal. Never delete the "+
					"-wal or -shm of a database in use.")
			return
		}
		detail := "The -wal exists without its -shm. The -shm is only an index of the -wal in shared memory; the " +
			"next connection that opens the database rebuilds it from the -wal, and nothing is lost. It goes " +
			"missing when someone or something (a cleanup job, a copy or backup of only some files) removes or " +
			"skips it."
		if r.WALFrames > 0 {
			detail += fmt.Sprintf(" The -wal holds up to %s: transactions committed but not yet in the "+
				"database file.", plural(r.WALFrames, "frame"))
		}
		r.add("wal and shm", statusInfo, detail, "Nothing to repair: keep the -wal with the database (copy, move "+
			"and back up the two together, and never delete the -wal). The next normal open rebuilds the -shm.")
	default:
		if len(users) > 0 {
			r.add("wal and shm", statusProblem, fmt.Sprintf("The -wal is missing while %s the database open: it "+
				"was deleted under running processes, which go on writing their transactions into the deleted file. "+
				"Other processes do not see them, and they are lost unless the last connection closes cleanly "+
				"(closing checkpoints the -wal into the database).", strings.Join(users, ", ")+pluralHas(len(users))),
				"Before anything else, save the deleted -wal from a process that still has it open: cp /proc/PID/fd/N "+
					"somewhere (\"processes\" lists the descriptors). Then stop the processes cleanly, not with "+
					"kill -9. Never delete the -wal of a database in use.")
			return
		}
		r.add("wal and shm", statusWarning, "The -shm exists without its -wal. The last connection normally removes "+
			"both when it closes; a lone -shm is left when the -wal was deleted by hand or by a cleanup job, and then "+
			"the transactions it held that were not yet checkpointed are lost. The -shm itself is harmless: the next "+
			"open resets it.",
			"Delete nothing. If the -wal was deleted by hand and its transactions matter, restore the database and "+
				"its -wal together from a backup; check the database with \"sqlite-safe doctor --integrity\".")
	}
}

// dbUsers returns "pid N" for each process that has the database open.
func (r *report) dbUsers() []string {
	var out []string
	for _, p := range r.Processes {
		for _, f := range p.Files {
			if f.Role == roleDB && !f.Deleted {
				out = append(out, "pid "+strconv.Itoa(p.PID))
				break
			}
		}
	}
	return out
}

// plural writes n and noun, with an s unless n is 1.
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// pluralHas is " has" for one subject, " have" for more.
func pluralHas(n int) string {
	if n == 1 {
		return " has"
	}
	return " have"
}

// checkDeleted is the "deleted files" check: processes that hold a deleted
// database, or a deleted -wal or -shm that has been created again.
func checkDeleted(r *report) {
	var db, index []string
	for _, p := range r.Processes {
		for _, f := range p.Files {
			if !f.Deleted {
				continue
			}
			ref := fmt.Sprintf("pid %d (%s, fd %d: /proc/%d/fd/%d)", p.PID, p.Command, f.FD, p.PID, f.FD)
			switch {
			case f.Role == roleDB:
				db = append(db, ref)
			case (f.Role == roleWAL || f.Role == roleSHM) && r.file(f.Role).Exists:
				index = append(index, f.Role+" by "+ref)
			}
		}
	}
	if len(db) > 0 {
		r.add("deleted files", statusProblem, "A deleted database file is still open: "+strings.Join(db, "; ")+
			". The file at this path was deleted, or replaced by another (a restore with mv while the application "+
			"ran), while that process kept the old one: it reads and writes a file no one else sees, and its writes "+
			"vanish when it exits.",
			"Restart that process so it opens the current file. If its recent writes matter, first copy the old file "+
				"out through the /proc path above, with its -wal if it has one open.")
	}
	if len(index) > 0 {
		r.add("deleted files", statusProblem, "A deleted file of the database is still in use while a new one exists "+
			"under its name: "+strings.Join(index, "; ")+". Processes on the old and on the new file do not see each "+
			"other's locks or transactions and can corrupt the database.",
			"Stop every process that uses the database, cleanly, and start them again. Never delete the -wal or "+
				"-shm of a database in use.")
	}
}

// accessor is a user who may open the database: its owner, or a process
// that has it open.
type accessor struct {
	uid  int64
	gids []uint32
	who  string
}

// can reports whether a may access f for want (4 read, 2 write, 1 search),
// from the permission bits. Root may always.
func (a accessor) can(f *fileFacts, want fs.FileMode) bool {
	switch {
	case a.uid == 0:
		return true
	case a.uid == int64(f.uid):
		return f.perm>>6&want == want
	case slices.Contains(a.gids, f.gid):
		return f.perm>>3&want == want
	}
	return f.perm&want == want
}

// accessors returns the database's owner and the users of the processes
// that have it open.
func (r *report) accessors() []accessor {
	db := r.file(roleDB)
	owner := accessor{uid: int64(db.uid), who: fmt.Sprintf("%s (the database's owner)", db.Owner)}
	if u, err := user.LookupId(strconv.FormatUint(uint64(db.uid), 10)); err == nil {
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if n, err := strconv.ParseUint(id, 10, 32); err == nil {
					owner.gids = append(owner.gids, uint32(n))
				}
			}
		}
	}
	out := []accessor{owner}
	for _, p := range r.Processes {
		if p.UID < 0 || slices.ContainsFunc(out, func(a accessor) bool { return a.uid == p.UID }) {
			continue
		}
		out = append(out, accessor{uid: p.UID, gids: p.GIDs, who: fmt.Sprintf("%s (pid %d)", p.User, p.PID)})
	}
	return out
}

// checkPermissions is the "permissions" check.
func checkPermissions(r *report) {
	db, dir := r.file(roleDB), r.Directory
	var list []string
	for _, f := range append([]*fileFacts{db, dir}, r.file(roleWAL), r.file(roleSHM), r.file(roleJournal)) {
		if f.Exists {
			list = append(list, fmt.Sprintf("%s %s %s:%s", f.Role, f.Mode, f.Owner, f.Group))
		}
	}
	summary := strings.Join(list, "; ") + "."
	found := false
	if readOnlyFS(dir.Path) {
		found = true
		r.add("permissions", statusProblem, fmt.Sprintf("%s is on a file system mounted read-only: no process can "+
			"write the database or create its -wal, -shm or -journal.", dir.Path),
			"Remount it read-write, or, if the database is meant to be read-only, open it with ?mode=ro&immutable=1.")
	}
	if db.perm&0o200 == 0 {
		found = true
		r.add("permissions", statusProblem, fmt.Sprintf("The database file is read-only (%s, owned by %s): writes "+
			"fail with \"attempt to write a readonly database\" for everyone but root.", db.Mode, db.Owner),
			fmt.Sprintf("If the application writes to it: chmod u+w %s (as its owner or root). If it is meant to be "+
				"read-only, open it with ?mode=ro and ignore this.", shellQuote(r.File)))
	}
	for _, a := range r.accessors() {
		if !a.can(dir, 0o3) {
			found = true
			r.add("permissions", statusProblem, fmt.Sprintf("The directory %s (%s, %s:%s) is not writable by %s. "+
				"SQLite creates the -journal (rollback mode) or the -wal and -shm (WAL mode) in the database's "+
				"directory, so that user's connections fail with \"unable to open database file\" or \"attempt to "+
				"write a readonly database\" as soon as they write (in WAL mode, as soon as they open).",
				dir.Path, dir.Mode, dir.Owner, dir.Group, a.who),
				"Let the application's user write the directory (chown or chmod it), or move the database into a "+
					"directory of its own that the application owns.")
		}
		for _, f := range []*fileFacts{r.file(roleWAL), r.file(roleSHM), r.file(roleJournal)} {
			if !f.Exists || int64(f.uid) == a.uid || a.can(f, 0o6) {
				continue
			}
			found = true
			r.add("permissions", statusProblem, fmt.Sprintf("%s is owned by %s:%s (%s), and %s cannot write it: that "+
				"user's connections fail with \"attempt to write a readonly database\" or \"unable to open database "+
				"file\". The classic cause is a cron job, a migration or a sqlite3 session run as another user (often "+
				"root) while the application runs: whoever opens the database first creates its -wal and -shm.",
				filepath.Base(f.Path), f.Owner, f.Group, f.Mode, a.who),
				fmt.Sprintf("Run such jobs as the application's user (sudo -u %s ...). Then, once no process has the "+
					"database open, give the file back: chown %s:%s %s. Do not delete it: a -wal may hold committed "+
					"transactions.", db.Owner, db.Owner, db.Group, shellQuote(f.Path)))
		}
	}
	if !found {
		r.add("permissions", statusOK, summary, "")
	} else {
		r.add("permissions", statusInfo, summary, "")
	}
}

// fsDisplay is how the doctor names a network file system.
func fsDisplay(typ string) string {
	switch {
	case typ == "nfs":
		return "NFS"
	case typ == "cifs" || typ == "smb2" || typ == "smb3" || typ == "smbfs":
		return "SMB/CIFS (" + typ + ")"
	case strings.HasPrefix(typ, "fuse."):
		return strings.TrimPrefix(typ, "fuse.") + " (FUSE)"
	}
	return typ
}

// checkFileSystem is the "file system" and "free space" checks.
func checkFileSystem(r *report) {
	info, err := statFS(r.File)
	if err != nil {
		r.add("file system", statusWarning, fmt.Sprintf("Could not tell which file system holds the database: %v.", err),
			"Check with: df -T "+shellQuote(r.File))
		return
	}
	r.FileSystem = &fsFacts{Type: info.Type, Magic: fmt.Sprintf("%#x", info.Magic), Network: info.Network,
		FUSE: info.FUSE, Avail: info.Avail, Total: info.Total}
	switch {
	case info.Network:
		r.add("file system", statusProblem, fmt.Sprintf("The database is on %s (statfs magic %#x), a network file "+
			"system. SQLite coordinates processes with file locks, and over %s they are unreliable: two processes "+
			"can both believe they hold the write lock and overwrite each other's pages (corruption), or a lock is "+
			"never released (\"database is locked\" for good). WAL mode's shared memory does not work across machines "+
			"at all.", fsDisplay(info.Type), info.Magic, fsDisplay(info.Type)),
			"Move the database to a local disk of the machine that runs the application, and use network storage "+
				"only for backups (copies made with sqlite-safe backup or sqlite3 .backup). If several machines must "+
				"write the data, use a client/server database.")
	case info.FUSE:
		r.add("file system", statusWarning, fmt.Sprintf("The database is on a FUSE file system (%s): whether its "+
			"locks work, and whether it can map the -shm into memory for WAL mode, depends on the FUSE server. Many "+
			"ignore locks, which lets two writers corrupt the database.", info.Type),
			"Prefer a local file system. If the database must stay here, make sure only one process opens it.")
	case info.Type == "unknown":
		r.add("file system", statusInfo, fmt.Sprintf("The file system is of a type the doctor does not know "+
			"(statfs magic %#x).", info.Magic), "Check with df -T that it is a local disk.")
	default:
		detail := fmt.Sprintf("The database is on %s, a local file system.", info.Type)
		if info.Type == "tmpfs" || info.Type == "ramfs" {
			detail += " It lives in memory: its content is lost at reboot."
		}
		r.add("file system", statusOK, detail, "")
	}

	db, wal := r.file(roleDB), r.file(roleWAL)
	avail := int64(min(info.Avail, 1<<62))
	switch {
	case info.Total == 0:
		// Not known (another operating system).
	case avail < db.Size:
		r.add("free space", statusProblem, fmt.Sprintf("%s free (for users other than root) of %s, less than the "+
			"database (%s). Writes that need new pages fail with \"database or disk is full\", a checkpoint may need "+
			"to grow the database by what the -wal holds, and a VACUUM needs room for a whole copy of the database.",
			formatBytes(avail), formatBytes(int64(min(info.Total, 1<<62))), formatBytes(db.Size)),
			"Free space on that file system, or move the database to one with room. Do not delete the -wal or "+
				"-journal to make room.")
	case avail < 2*db.Size+wal.Size:
		r.add("free space", statusWarning, fmt.Sprintf("%s free (for users other than root): enough for ordinary "+
			"writes, but a VACUUM needs about twice the database's size (%s) and would fail.",
			formatBytes(avail), formatBytes(db.Size)), "Free space before running VACUUM.")
	default:
		r.add("free space", statusOK, fmt.Sprintf("%s free of %s; the database is %s.", formatBytes(avail),
			formatBytes(int64(min(info.Total, 1<<62))), formatBytes(db.Size)), "")
	}
}

// checkProcesses is the "processes" check.
func checkProcesses(r *report, perr error) {
	if perr != nil {
		r.add("processes", statusInfo, fmt.Sprintf("Could not list the processes that have the database open: %v.", perr),
			"Use lsof or fuser on the database, its -wal, -shm and -journal.")
		return
	}
	var unreadable string
	if r.ProcErrors > 0 {
		unreadable = fmt.Sprintf(" The open files of %d processes could not be read (permission denied): run the "+
			"doctor as root to see them all.", r.ProcErrors)
	}
	if len(r.Processes) == 0 {
		status := statusOK
		if unreadable != "" {
			status = statusWarning
		}
		what := ""
		if unreadable != "" {
			what = "Run the doctor again as root (sudo) to see every process."
		}
		r.add("processes", status, "No process has the database, its -wal, -shm or -journal open."+unreadable, what)
		return
	}
	var b strings.Builder
	if len(r.Processes) == 1 {
		b.WriteString("1 process has the database or its files open:")
	} else {
		fmt.Fprintf(&b, "%d processes have the database or its files open:", len(r.Processes))
	}
	for _, p := range r.Processes {
		var files []string
		for _, f := range p.Files {
			s := fmt.Sprintf("%s fd %d", f.Role, f.FD)
			if f.Access != "" {
				s += " " + f.Access
			}
			if f.Deleted {
				s += " (deleted)"
			}
			files = append(files, s)
		}
		fmt.Fprintf(&b, "\npid %d, user %s: %s\n  %s", p.PID, p.User, p.Command, strings.Join(files, ", "))
	}
	status := statusInfo
	if unreadable != "" {
		status = statusWarning
		b.WriteString("\n" + strings.TrimSpace(unreadable))
	}
	r.add("processes", status, b.String(), "If \"database is locked\" persists, one of these keeps a transaction "+
		"open (see the locks): a leaked connection, an unclosed Rows, a BEGIN without COMMIT. Fix or restart that "+
		"process, cleanly if you can: kill -9 is safe for the database, but loses its unfinished transaction.")
}

// SQLite's lock bytes: in the database file (os_unix.c, sqliteInt.h) and in
// the -shm (wal.c).
const (
	pendingByte  = 0x40000000
	reservedByte = pendingByte + 1
	sharedFirst  = pendingByte + 2
	sharedSize   = 510
	shmLockFirst = 120 // WAL_WRITE_LOCK; then CKPT, RECOVER, READ0..READ4
	shmDMS       = 128
)

// lockMeaning says what a lock on one of SQLite's files means.
func lockMeaning(l lockFacts) string {
	end := l.End
	if end < 0 {
		end = 1<<63 - 1
	}
	covers := func(a, b int64) bool { return l.Start <= a && end >= b }
	write := l.Type == "WRITE"
	var m []string
	switch strings.TrimSuffix(l.Role, " (deleted)") {
	case roleDB:
		if covers(pendingByte, pendingByte) {
			if write {
				m = append(m, "PENDING (waiting for readers to finish so it can commit)")
			} else {
				m = append(m, "PENDING byte, briefly, while taking SHARED")
			}
		}
		if covers(reservedByte, reservedByte) {
			m = append(m, "RESERVED (a write transaction is open)")
		}
		if covers(sharedFirst, sharedFirst+sharedSize-1) {
			if write {
				m = append(m, "EXCLUSIVE (writing the database file)")
			} else {
				m = append(m, "SHARED (a transaction, or in WAL mode an open connection)")
			}
		}
	case roleSHM:
		names := []string{"WAL write lock (a write transaction is open)", "checkpoint lock (a checkpoint is running)",
			"recovery lock (rebuilding the -shm)"}
		for i := int64(0); i < 8; i++ {
			if !covers(shmLockFirst+i, shmLockFirst+i) {
				continue
			}
			switch {
			case i < 3:
				m = append(m, names[i])
			case write:
				m = append(m, fmt.Sprintf("read mark %d, exclusively (updating it)", i-3))
			default:
				m = append(m, fmt.Sprintf("read mark %d (a read transaction is open)", i-3))
			}
		}
		if covers(shmDMS, shmDMS) {
			if write {
				m = append(m, "DMS, exclusively (initialising the -shm)")
			} else {
				m = append(m, "DMS (a connection is open)")
			}
		}
	}
	return strings.Join(m, ", ")
}

// checkLocks is the "locks" check.
func checkLocks(r *report, lerr error) {
	if lerr != nil {
		r.add("locks", statusInfo, fmt.Sprintf("Could not read the locks: %v.", lerr), "")
		return
	}
	if len(r.Locks) == 0 {
		r.add("locks", statusOK, "No process holds a lock on the database, its -wal, -shm or -journal.", "")
		return
	}
	var b strings.Builder
	b.WriteString("Locks on the database's files (from /proc/locks):")
	var writers []string
	for _, l := range r.Locks {
		rng := fmt.Sprintf("bytes %d-%d", l.Start, l.End)
		if l.End < 0 {
			rng = fmt.Sprintf("bytes %d-end", l.Start)
		}
		who := fmt.Sprintf("pid %d", l.PID)
		if l.PID < 0 {
			who = "an OFD lock (no pid)"
		}
		verb := "holds"
		if l.Waiting {
			verb = "waits for"
		}
		fmt.Fprintf(&b, "\n%s %s %s %s on %s, %s", who, verb, l.Kind, l.Type, l.Role, rng)
		if l.Meaning != "" {
			fmt.Fprintf(&b, ": %s", l.Meaning)
		}
		if !l.Waiting && (strings.Contains(l.Meaning, "RESERVED") || strings.Contains(l.Meaning, "EXCLUSIVE") ||
			strings.Contains(l.Meaning, "WAL write lock")) {
			writers = append(writers, who)
		}
	}
	if len(writers) > 0 {
		fmt.Fprintf(&b, "\nThe writer now: %s.", strings.Join(slices.Compact(writers), ", "))
	}
	r.add("locks", statusInfo, b.String(), "A lock held by the same process for long (run the doctor again a few "+
		"seconds later) is a transaction left open; that process is the one to look at.")
}

// checkLockFile is the "lock file" check: sqlite-safe's FILE-writer.lock is
// as private as the database (read and write for exactly the users who may
// write it), or any user who may open it can stop the writers.
func checkLockFile(r *report) {
	db := r.file(roleDB)
	f := statFile("lock file", r.File+lockfile.Suffix)
	if !f.Exists || !db.Exists {
		return
	}
	name := filepath.Base(f.Path)
	want := lockfile.Mode(db.perm.Perm())
	have := f.perm.Perm()
	sameOwner := f.UID == nil || db.UID == nil || (f.uid == db.uid && f.gid == db.gid)
	if have&^want == 0 && sameOwner {
		r.add("lock file", statusOK, fmt.Sprintf("%s (sqlite-safe's queue of writers across processes) is %s %s:%s: "+
			"no more open than the database lets its writers be.", name, f.Mode, f.Owner, f.Group), "")
		return
	}
	if have&^want == 0 {
		r.add("lock file", statusInfo, fmt.Sprintf("%s is %s %s:%s, not owned as the database is (%s:%s): users "+
			"who may write the database but are not in the lock file's user or group cannot open it, and their "+
			"writers do not queue with the others (they meet them in SQLite's busy handler).",
			name, f.Mode, f.Owner, f.Group, db.Owner, db.Group),
			fmt.Sprintf("As root: chown %s:%s %s", db.Owner, db.Group, shellQuote(f.Path)))
		return
	}
	r.add("lock file", statusWarning, fmt.Sprintf("%s is %s %s:%s, more open than the database (%s): a user who may "+
		"open it but not write the database can hold its lock (flock needs only a read-only descriptor) and stop "+
		"every sqlite-safe writer of the database, which waits for it and fails with a lock timeout. sqlite-safe "+
		"creates it %s, and narrows one found more open when it runs as the file's owner or root; older versions "+
		"made it readable by all.", name, f.Mode, f.Owner, f.Group, db.Mode, fs.FileMode(want)),
		fmt.Sprintf("As its owner or root: chmod %04o %s && chown %s:%s %s (it is safe while programs run).",
			want, shellQuote(f.Path), db.Owner, db.Group, shellQuote(f.Path)))
}

// checkBackupLeftovers is the "backup leftovers" check: the temporary files
// (.NAME.partial-*, and their -journal) that sqlite-safe backups into the
// database's directory leave when their process dies.
func checkBackupLeftovers(r *report) {
	dir := filepath.Dir(r.File)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var stale, running []string
	var size int64
	unknown := false
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, ".") || !strings.Contains(name, ".partial-") || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		main := filepath.Join(dir, strings.TrimSuffix(name, "-journal"))
		switch live, known := backupRunning(main); {
		case !known:
			unknown = true
			stale = append(stale, name)
		case live:
			running = append(running, name)
			continue
		default:
			stale = append(stale, name)
		}
		size += fi.Size()
	}
	if len(running) > 0 {
		r.add("backup leftovers", statusInfo, fmt.Sprintf("A backup into %s is running: %s.", dir, strings.Join(running, ", ")), "")
	}
	if len(stale) == 0 {
		return
	}
	detail := fmt.Sprintf("%s in %s (%s in all) are temporary files of sqlite-safe backups that did not finish: "+
		"their process died (killed, out of memory, a reboot) before renaming the copy into place. They are not "+
		"usable backups, and nothing else removes them.", plural(int64(len(stale)), "file"), dir, formatBytes(size))
	if unknown {
		detail += " (On this system the doctor cannot tell a running backup's from a dead one's.)"
	}
	var quoted []string
	for _, name := range stale {
		quoted = append(quoted, shellQuote(filepath.Join(dir, name)))
	}
	r.add("backup leftovers", statusWarning, detail, "Remove them once no backup is running: rm "+strings.Join(quoted, " ")+
		". On Linux the next sqlite-safe backup to the same name removes those of dead backups itself.")
}

// checkIntegrity is the "quick check" (or "integrity check") check,
// through a read-only connection of the plain modernc.org/sqlite driver.
func checkIntegrity(r *report, h *dbHeader, integrity bool) {
	name, pragma := "quick check", "quick_check"
	if integrity {
		name, pragma = "integrity check", "integrity_check"
	}
	wal := r.file(roleWAL)
	skip := func(why string) {
		r.add(name, statusInfo, "Skipped: "+why, "Run the doctor again once that is dealt with.")
	}
	immutable := false
	switch {
	case h == nil:
		return
	case r.hotJournal:
		skip("a hot journal exists. A read-write open would roll it back (a change the doctor does not make), and " +
			"a read-only one cannot read the database until that is done.")
		return
	case r.walWithoutSHM:
		skip("the -wal has no -shm, and even a read-only open would create a new -shm next to it; the doctor " +
			"changes nothing.")
		return
	case r.JournalMode == "wal" && !wal.Exists:
		if len(r.dbUsers()) > 0 {
			skip("the database is in WAL mode without a -wal while a process has it open, and opening it would " +
				"create a -wal.")
			return
		}
		// Opening a WAL database creates its -wal and -shm, even read-only;
		// without a -wal, the database file is complete by itself.
		immutable = true
	}
	dsn := sqliteuri.FromPath(r.File) + "?mode=ro&_pragma=busy_timeout(3000)"
	if immutable {
		dsn += "&immutable=1"
	}
	start := time.Now()
	lines, err := runCheck(dsn, pragma)
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		what := "See \"processes\" and \"locks\", and run the doctor again."
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy") {
			what = "A writer holds the database exclusively (see \"locks\"); run the doctor again."
		}
		r.add(name, statusWarning, fmt.Sprintf("Could not run PRAGMA %s through a read-only connection: %v.", pragma, err), what)
		return
	}
	r.CheckResult = lines
	how := "a read-only connection"
	if immutable {
		how = "a read-only connection to the database file alone (immutable=1, since it has no -wal)"
	}
	if len(lines) == 1 && lines[0] == "ok" {
		r.add(name, statusOK, fmt.Sprintf("PRAGMA %s found nothing wrong in %s, through %s.", pragma, took, how), "")
		return
	}
	shown := lines
	if len(shown) > 10 {
		shown = shown[:10]
	}
	r.add(name, statusProblem, fmt.Sprintf("PRAGMA %s found %d problem(s): the database is damaged. First: %s",
		pragma, len(lines), strings.Join(shown, "; ")),
		"Stop writing to it and copy the database with its -wal and -journal elsewhere. Restore from a backup, or "+
			"salvage with \"sqlite3 COPY .recover | sqlite3 new.db\" on the copy. Then find the cause: a network file "+
			"system, a -wal or -journal deleted or left behind when copying, a copy made while it was written, or "+
			"a failing disk.")
}

// runCheck runs PRAGMA pragma on the database dsn names and returns its rows.
func runCheck(dsn, pragma string) ([]string, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(context.Background(), "PRAGMA "+pragma)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		lines = append(lines, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return lines, nil
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(c rune) bool {
		return !(c == '/' || c == '.' || c == '-' || c == '_' || c == '+' || c == ':' || c == ',' ||
			'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// formatBytes writes n in B, KiB, MiB, GiB or TiB, with two or three
// significant digits.
func formatBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		if v < 1024 || unit == "PiB" {
			if v < 10 {
				return fmt.Sprintf("%.1f %s", v, unit)
			}
			return fmt.Sprintf("%.0f %s", v, unit)
		}
	}
	return "" // not reached
}

// severity orders findings for people: problems, then warnings, then the
// rest in the order of the checklist.
var severity = map[string]int{statusProblem: 0, statusWarning: 1, statusInfo: 2, statusOK: 2}

// writeFindings writes the findings for a person: a summary line, then one
// block per finding, problems first.
func writeFindings(w io.Writer, r *report) {
	counts := map[string]int{}
	for _, f := range r.Findings {
		counts[f.Status]++
	}
	var sum []string
	for _, s := range []string{statusProblem, statusWarning, statusInfo, statusOK} {
		if n := counts[s]; n > 0 {
			label := s
			if n > 1 && s != statusOK && s != statusInfo {
				label += "s"
			}
			sum = append(sum, fmt.Sprintf("%d %s", n, label))
		}
	}
	fmt.Fprintf(w, "sqlite-safe doctor %s\n%s\n", r.File, strings.Join(sum, ", "))
	sorted := slices.Clone(r.Findings)
	sort.SliceStable(sorted, func(i, j int) bool { return severity[sorted[i].Status] < severity[sorted[j].Status] })
	const indent = "         "
	for _, f := range sorted {
		label := f.Status
		if f.Status == statusProblem || f.Status == statusWarning {
			label = strings.ToUpper(label)
		}
		fmt.Fprintf(w, "\n%-8s %s\n", label, f.Check)
		writeWrapped(w, indent, f.Detail)
		if f.Status != statusOK && f.WhatToDo != "Nothing." {
			writeWrapped(w, indent, "What to do: "+f.WhatToDo)
		}
	}
}

// writeWrapped writes text, indented, wrapped at 100 columns. Its own
// newlines start new lines, which keep their leading spaces.
func writeWrapped(w io.Writer, indent, text string) {
	const width = 100
	for _, para := range strings.Split(text, "\n") {
		lead := indent + para[:len(para)-len(strings.TrimLeft(para, " "))]
		line, empty := lead, true
		for _, word := range strings.Fields(para) {
			if !empty && len(line)+1+len(word) > width {
				fmt.Fprintln(w, line)
				line, empty = lead, true
			}
			if !empty {
				line += " "
			}
			line, empty = line+word, false
		}
		fmt.Fprintln(w, line)
	}
}

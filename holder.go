package sqlitesafe

import (
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// holdKind says what holds the writer lock, for messages.
type holdKind uint8

const (
	holdExec       holdKind = iota // an autocommit Exec, alone
	holdBatch                      // a group commit of autocommit writes
	holdQuery                      // a write through Query, until its rows are closed
	holdTx                         // a transaction begun with BeginTx
	holdTextTx                     // a transaction begun by SQL text (BEGIN, SAVEPOINT)
	holdOpen                       // opening the database and setting it up
	holdClose                      // closing the handle's writer connection
	holdSession                    // a write on a connection pinned by connection-local state
	holdCheckpoint                 // a checkpoint
	holdRaw                        // a caller using the SQLite connection directly
)

// isWrite reports whether a hold of this kind counts as a write in Stats.
func (k holdKind) isWrite() bool {
	switch k {
	case holdExec, holdBatch, holdQuery, holdTx, holdTextTx, holdSession, holdRaw:
		return true
	}
	return false
}

func (k holdKind) String() string {
	switch k {
	case holdExec:
		return "an Exec"
	case holdBatch:
		return "a group commit of Execs"
	case holdQuery:
		return "a writing Query whose rows are not closed yet"
	case holdTx:
		return "a transaction begun"
	case holdTextTx:
		return "a transaction begun by SQL text"
	case holdOpen:
		return "opening the database"
	case holdClose:
		return "closing the database"
	case holdSession:
		return "a write on a pinned connection"
	case holdCheckpoint:
		return "a checkpoint"
	case holdRaw:
		return "a caller using the SQLite connection directly (sqlitesafe.Raw)"
	}
	return "a writer"
}

// holder is the bookkeeping of the current holder of the lock.
type holder struct {
	kind  holdKind
	since time.Time
	site  *callSite  // shared, never changed: internSite
	c     *connector // the handle, for warnings; nil in tests of the queue
	proc  bool       // take the cross-process lock too

	// Set while it holds the lock, guarded by the queue's mutex.
	procWaiting bool // waiting for the cross-process lock
	procHeld    bool // holding the cross-process lock
	warned      bool // the slow-hold warning for it is out
}

// maxSitePCs bounds the stack recorded for a holder: deep enough to climb out
// of database/sql and an ORM into the caller's code.
const maxSitePCs = 32

// callSite is where a holder took the lock: the program counters of its
// stack, turned into file:line only when a message needs it.
type callSite struct {
	pcs [maxSitePCs]uintptr
	n   int
}

// infrastructure lists the packages whose frames are not the caller's code:
// database/sql, this package, the driver wrappers that trace or hook calls
// on their way to it, and the data libraries built on database/sql.
var infrastructure = []string{
	"runtime.",
	"database/sql.",
	"github.com/sqlitesafe/sqlitesafe.",
	"github.com/XSAM/otelsql.",
	"github.com/ngrok/sqlmw.",
	"github.com/qustavo/sqlhooks.", // v1
	"github.com/qustavo/sqlhooks/", // v2 and later
	"github.com/luna-duclos/instrumentedsql",
	"contrib.go.opencensus.io/integrations/ocsql",
	"github.com/DataDog/dd-trace-go/",
	"gopkg.in/DataDog/dd-trace-go.v1/",
	"github.com/uptrace/opentelemetry-go-extra/otelsql",
	"github.com/jmoiron/sqlx.",
	"gorm.io/",
	"github.com/uptrace/bun",
	"github.com/pressly/goose",
}

// siteCache holds call sites by a hash of their addresses, so that every
// holder taken at one place shares one copy of its site: a holder is copied
// into each waiter and into the queue's record of who holds it, and a site
// of its own would be maxSitePCs addresses, zeroed and scanned at every
// write. An entry is never changed once stored; another site with the same
// hash replaces it.
var siteCache [1 << siteCacheBits]atomic.Pointer[callSite]

const siteCacheBits = 10

// hereSite returns the call site of its caller's callers, shared.
func hereSite() *callSite {
	s := captureSite()
	return internSite(&s)
}

// internSite returns the shared copy of s, storing one if there is none.
func internSite(s *callSite) *callSite {
	slot := &siteCache[siteSlot(s)]
	if c := slot.Load(); c != nil && *c == *s {
		return c
	}
	c := new(callSite)
	*c = *s
	slot.Store(c)
	return c
}

// siteSlot is where s goes in siteCache: an FNV-1a hash of its addresses, a
// word at a time.
func siteSlot(s *callSite) uint64 {
	h := uint64(14695981039346656037)
	for _, pc := range s.pcs[:s.n] {
		h = (h ^ uint64(pc)) * 1099511628211
	}
	return h >> (64 - siteCacheBits)
}

// String returns "dir/file.go:line" of the first frame outside database/sql,
// this package, the driver wrappers and the data libraries built on them (a
// test file counts as the caller's code), or "" if none is known (or s is
// nil).
func (s *callSite) String() string {
	if s == nil || s.n == 0 {
		return ""
	}
	frames := runtime.CallersFrames(s.pcs[:s.n])
	var last runtime.Frame
	for {
		f, more := frames.Next()
		if f.Function != "" && !strings.HasPrefix(f.Function, "runtime.") {
			last = f
			if !isInfrastructure(f.Function) || strings.HasSuffix(f.File, "_test.go") {
				return shortFile(f.File) + ":" + strconv.Itoa(f.Line)
			}
		}
		if !more {
			break
		}
	}
	if last.File == "" {
		return ""
	}
	return shortFile(last.File) + ":" + strconv.Itoa(last.Line)
}

func isInfrastructure(fn string) bool {
	for _, p := range infrastructure {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// shortFile keeps the last directory and the file name of path.
func shortFile(path string) string {
	dir, file := filepath.Split(path)
	return filepath.Join(filepath.Base(dir), file)
}

// holderHere describes the caller as a holder of the writer lock. Opening
// and closing a handle do not queue with other processes: they write nothing
// another process must wait for (SQLite's own locks cover setting the
// journal mode, and the checkpoint on close does not wait), and a close must
// not fail because another process is writing.
func (c *connector) holderHere(kind holdKind) holder {
	proc := c.procOn() && kind != holdOpen && kind != holdClose
	return holder{kind: kind, since: time.Now(), site: hereSite(), c: c, proc: proc}
}

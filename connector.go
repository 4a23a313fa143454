package sqlitesafe

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sqlitesafe/sqlitesafe/internal/engine"
)

// NewConnector returns a connector for sql.OpenDB that opens the database
// cfg describes. The Config is copied: changing it afterwards changes
// nothing. An invalid Config is reported here.
func NewConnector(cfg *Config) (driver.Connector, error) {
	return newConnector(cfg)
}

func newConnector(cfg *Config) (*connector, error) {
	if cfg == nil {
		return nil, &DSNError{Reason: "nil *Config"}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Clone()
	c := &connector{
		cfg:      cfg,
		name:     cfg.Path,
		memory:   cfg.inMemory() && len(cfg.Cluster) == 0,
		readOnly: cfg.readOnly(),
	}
	if len(cfg.Cluster) > 0 {
		db, err := openEngine(cfg)
		if err != nil {
			return nil, err
		}
		c.db = db
		c.name = "dqlite database " + strconv.Quote(cfg.Path)
		c.key = "dqlite:" + strings.Join(slices.Sorted(slices.Values(cfg.Cluster)), ",") + "/" + cfg.Path
	} else if c.memory {
		// One in-memory database for the whole handle: a memdb database
		// named for it, opened by its single connection. A named shared
		// database (cache=shared, or memdb's "/name") is one per name.
		mem := cfg.Clone()
		name := "/sqlitesafe-mem-" + strconv.FormatUint(memSeq.Add(1), 10)
		if cfg.Path != "" && (cfg.URIParams["cache"] == "shared" || (cfg.VFS == "memdb" && strings.HasPrefix(cfg.Path, "/"))) {
			name = "/sqlitesafe-named/" + cfg.Path
		}
		mem.Path, mem.VFS, mem.Mode = name, "memdb", ModeDefault
		delete(mem.URIParams, "cache")
		c.uriRW = mem.sqliteURI(false)
		c.key = "memory:" + name
		c.name = cfg.Path
		if cfg.Path == "" {
			c.name = "the private temporary database"
		}
	} else {
		// A shared cache would make the connections of the process wait
		// for each other on table locks, the contention the writer queue
		// removes: every connection gets a private cache.
		uri := cfg
		if _, ok := cfg.URIParams["cache"]; ok {
			uri = cfg.Clone()
			delete(uri.URIParams, "cache")
		}
		c.uriRW = uri.sqliteURI(c.readOnly)
		c.uriRO = uri.sqliteURI(true)
	}
	// database/sql's DB.Driver returns the connector's Driver: one of its
	// own, so that GetStats, Checkpoint and Backup find the handle.
	c.drv = &Driver{handle: c}
	c.readers = readerPool{c: c, max: cfg.MaxReaders, maxIdle: cfg.MaxReaders}
	if c.readers.maxIdle == 0 {
		c.readers.maxIdle = max(2, runtime.GOMAXPROCS(0))
	}
	c.readers.anchored = c.db == nil && !c.memory && anchorable(cfg)
	return c, nil
}

var memSeq atomic.Uint64

// anchorable reports whether reads of a file opened with cfg take its read
// anchor: a WAL database whose readers take SQLite's locks (not immutable,
// not nolock), whose writes go through the writer queue (which gives the
// anchor up), and with the anchor not turned off (_read_anchor=off).
func anchorable(cfg *Config) bool {
	nolock := cfg.URIParams["nolock"]
	return cfg.journalMode() == JournalWAL && !cfg.Immutable && !cfg.DisableWriterQueue && !cfg.DisableReadAnchor &&
		(nolock == "" || nolock == "0" || strings.EqualFold(nolock, "false") || strings.EqualFold(nolock, "no") || strings.EqualFold(nolock, "off"))
}

// connector opens logical connections on one database. It owns the handle's
// shared writer connection and its pool of read-only connections.
type connector struct {
	drv      *Driver
	cfg      *Config         // validated, owned
	name     string          // the database as the DSN names it, for messages
	memory   bool            // an in-memory database: one connection does everything
	readOnly bool            // mode=ro or immutable=1, or a file we may not write: no writer at all
	uriRW    string          // the name modernc.org/sqlite opens for read-write connections
	uriRO    string          // ... for readers
	key      string          // the registry key of an in-memory database (its memdb name) or of a cluster's
	db       engine.Database // the engine's database, for a dqlite:// DSN; nil for SQLite's own

	// readOnlyWhy says why a handle not opened read-only is read-only,
	// for the errors of refused writes; set by init.
	readOnlyWhy string

	mu     sync.Mutex // guards ready, closed, file
	ready  bool
	closed bool
	file   *fileState

	// shut is closed, for the writer queue: a writer granted the lock
	// after its handle was closed does not run.
	shut atomic.Bool

	// writer is the shared writer connection. It is used, replaced and
	// closed only by the holder of file.queue.
	writer *phys

	readers readerPool

	lease *lease // closes the handle with its last connection (Driver.Open, wrappers); nil for sql.Open's
}

var (
	_ driver.Connector = (*connector)(nil)
	_ io.Closer        = (*connector)(nil)
)

// Connect implements driver.Connector. The first call opens the database and
// sets it up: WAL, busy timeout, synchronous and the DSN's pragmas, each read
// back. Later calls are cheap: a logical connection opens physical ones only
// when it needs them.
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := c.init(ctx); err != nil {
		return nil, err
	}
	return &conn{c: c}, nil
}

// Driver implements driver.Connector.
func (c *connector) Driver() driver.Driver { return c.drv }

// init opens the shared writer once, under the writer queue, so that a
// handle opening the file never races another handle's writes.
func (c *connector) init(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.ready {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := c.fileKey()
	if err != nil {
		return err
	}
	if c.db == nil {
		if err := c.checkFile(key); err != nil {
			return err
		}
	}
	f, err := acquireFile(key, c)
	if err != nil {
		return err
	}
	c.file = f
	if c.readOnly {
		c.ready = true
		return nil
	}
	// The writer's own settings need nothing of other writers; the
	// file's, only when they are not what the DSN asks already.
	w, err := c.openWriter(ctx, false)
	if err == nil {
		if err = c.setupFile(ctx, w); err != nil {
			w.close()
		}
	}
	if err != nil {
		c.file = nil
		releaseFile(f, c)
		var lt *LockTimeoutError
		if errors.As(err, &lt) {
			return err
		}
		return c.explainOpen(key, err)
	}
	c.writer, c.ready = w, true
	return nil
}

// setupFile makes the file's own settings (auto_vacuum, the DSN's PRAGMAs
// that write the file, the journal mode) what the DSN asks, under the writer
// queue, so that setting them never races another handle's writes. When they
// are already so (a file the process or an earlier run has set up), it
// writes nothing and waits for nothing: a handle opened while another holds
// a write transaction opens and reads at once.
func (c *connector) setupFile(ctx context.Context, w *phys) error {
	if c.db != nil || !c.memory && !c.fileSetupNeeded(ctx, w) {
		return nil
	}
	q := &c.file.queue
	if err := q.lock(ctx, c.cfg.busyTimeout(), c.holderHere(holdOpen)); err != nil {
		return err
	}
	defer q.unlock()
	return c.setup(ctx, w, true)
}

// fileSetupNeeded reports whether the file's own settings differ from the
// DSN's, or may.
func (c *connector) fileSetupNeeded(ctx context.Context, w *phys) bool {
	cfg := c.cfg
	if cfg.AutoVacuum != "" {
		want := map[AutoVacuum]string{AutoVacuumNone: "0", AutoVacuumFull: "1", AutoVacuumIncremental: "2"}[cfg.AutoVacuum]
		if got, err := w.queryValue(ctx, "PRAGMA auto_vacuum"); err != nil || got != want {
			return true
		}
	}
	for _, pr := range cfg.Pragmas {
		if classify("PRAGMA "+pr).flags&flagWrite != 0 {
			return true
		}
	}
	got, err := w.queryValue(ctx, "PRAGMA journal_mode")
	return err != nil || !strings.EqualFold(got, string(cfg.journalMode()))
}

// fileKey returns the registry key of the database: the same for every
// spelling of the path (relative, absolute, through symlinks).
func (c *connector) fileKey() (string, error) {
	if c.memory || c.db != nil {
		return c.key, nil
	}
	if v := c.cfg.VFS; v != "" && !strings.HasPrefix(v, "unix") {
		return "vfs:" + v + ":" + c.cfg.Path, nil
	}
	abs, err := filepath.Abs(c.cfg.Path)
	if err != nil {
		return "", fmt.Errorf("sqlitesafe: resolve %s: %w", c.name, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	dir, base := filepath.Split(abs)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		return filepath.Join(real, base), nil
	}
	return abs, nil
}

// Close implements io.Closer: sql.DB.Close calls it. It closes the idle
// readers (the ones in use close when they are given back) and, once the
// writer queue lets it, the writer: the writes queued ahead of it run, and
// the ones queued behind it fail with ErrClosed without running.
func (c *connector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.shut.Store(true)
	f := c.file
	c.mu.Unlock()
	c.readers.close()
	if c.db != nil {
		defer c.db.Close()
	}
	if f == nil {
		return nil
	}
	if c.readOnly {
		releaseFile(f, c)
		return nil
	}
	err := f.queue.lock(context.Background(), c.queueTimeout(), c.holderHere(holdClose))
	if err != nil {
		// Something holds the writer past the busy timeout: finish
		// once it lets go. Until then the file stays registered, so
		// that its lock file stays open under whoever holds it.
		go func() {
			if f.queue.lock(context.Background(), math.MaxInt64, c.holderHere(holdClose)) == nil {
				c.closeWriter(f)
			}
		}()
		return fmt.Errorf("sqlitesafe: close %s: the writer is still in use; it closes when the lock is free: %w", c.name, err)
	}
	return c.closeWriter(f)
}

// closeWriter closes the handle's writer, checkpointing first if it is the
// last handle of the process on the file, then releases the queue and the
// handle's place on the file. The caller holds the queue.
func (c *connector) closeWriter(f *fileState) error {
	var err error
	if c.writer != nil {
		if f.lastHandle(c) && !c.writer.broken && c.db == nil {
			c.closeCheckpoint(c.writer)
		}
		err = c.writer.close()
		c.writer = nil
	}
	f.queue.unlock()
	releaseFile(f, c)
	return err
}

// sharedWriter returns the handle's writer connection, reopening it if a
// failure left it broken. The caller holds the writer queue.
func (c *connector) sharedWriter(ctx context.Context) (*phys, error) {
	if c.writer != nil && !c.writer.broken {
		return c.writer, nil
	}
	if c.writer != nil {
		c.writer.close()
		c.writer = nil
	}
	w, err := c.openWriter(ctx, false)
	if err != nil {
		return nil, err
	}
	c.writer = w
	return w, nil
}

// openWriter opens a read-write connection and sets it up. first is true for
// the connection that sets the file up (journal mode, auto_vacuum, the
// DSN's file-level pragmas).
func (c *connector) openWriter(ctx context.Context, first bool) (*phys, error) {
	w, err := c.open(ctx, false, first)
	if err == nil {
		w.comeFirst()
		if c.procOn() {
			w.keepWriteLock()
		}
	}
	return w, err
}

// openSession opens a connection for one logical connection's own use: a
// read-write one, or a read-only one on a read-only handle.
func (c *connector) openSession(ctx context.Context) (*phys, error) {
	if c.readOnly {
		return c.openReader(ctx)
	}
	return c.openWriter(ctx, false)
}

// openReader opens a read-only (mode=ro) connection and sets it up.
func (c *connector) openReader(ctx context.Context) (*phys, error) {
	return c.open(ctx, true, false)
}

// open opens a read-write or a read-only connection and sets it up.
func (c *connector) open(ctx context.Context, readOnly, first bool) (*phys, error) {
	if c.db != nil {
		return c.openRemote(ctx, readOnly)
	}
	uri, what := c.uriRW, "open"
	if readOnly {
		uri, what = c.uriRO, "open read-only"
	}
	p, err := openPhys(uri)
	if err != nil {
		return nil, fmt.Errorf("sqlitesafe: %s %s: %w", what, c.name, err)
	}
	if c.file != nil {
		p.stats = &c.file.queue.stats
	}
	if err := c.setup(ctx, p, first); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// setup applies the DSN's settings to a new connection and reads the ones
// that matter back. first marks the connection that sets up the file: it
// alone sets auto_vacuum, WAL and the pragmas that change the file.
func (c *connector) setup(ctx context.Context, p *phys, first bool) error {
	cfg := c.cfg
	run := func(q string) error {
		if err := p.run(ctx, q); err != nil {
			return fmt.Errorf("sqlitesafe: %s on %s: %w", q, c.name, err)
		}
		return nil
	}
	ms := int64((cfg.busyTimeout() + time.Millisecond - 1) / time.Millisecond) // whole ms, rounded up
	if err := run("PRAGMA busy_timeout = " + strconv.FormatInt(ms, 10)); err != nil {
		return err
	}
	if first && cfg.AutoVacuum != "" {
		if err := run("PRAGMA auto_vacuum = " + string(cfg.AutoVacuum)); err != nil {
			return err
		}
	}
	settings := cfg.connSettings()
	for _, st := range settings {
		if err := run("PRAGMA " + st.pragma + " = " + st.value); err != nil {
			return err
		}
	}
	for _, pr := range cfg.Pragmas {
		if !first && classify("PRAGMA "+pr).flags&flagWrite != 0 {
			continue // set on the file by the first connection
		}
		if err := run("PRAGMA " + pr); err != nil {
			return err
		}
	}
	if cfg.ForeignKeys != "" {
		if err := run("PRAGMA foreign_keys = " + strings.ToUpper(string(cfg.ForeignKeys))); err != nil {
			return err
		}
	}
	// WAL is a setting of the file, made once; a rollback journal mode is
	// a setting of each connection, made on every one that writes.
	journal := (first || cfg.journalMode() != JournalWAL) && !c.readOnly && (!c.memory || cfg.JournalMode != "")
	if journal {
		if err := run("PRAGMA journal_mode = " + string(cfg.journalMode())); err != nil {
			return err
		}
	}
	if err := run("PRAGMA synchronous = " + string(cfg.synchronous())); err != nil {
		return err
	}
	if cfg.QueryOnly {
		if err := run("PRAGMA query_only = 1"); err != nil {
			return err
		}
	}
	sizeLimit := strconv.FormatInt(cfg.journalSizeLimit(), 10)
	limit := !c.readOnly && !c.memory
	if limit {
		if err := run("PRAGMA journal_size_limit = " + sizeLimit); err != nil {
			return err
		}
		if cfg.checkpointing() == CheckpointingBackground && cfg.journalMode() == JournalWAL {
			// The checkpointer runs them, outside commits.
			if err := run("PRAGMA wal_autocheckpoint = 0"); err != nil {
				return err
			}
		}
	}

	// Read back what was asked for.
	check := func(pragma, want string) error {
		got, err := p.queryValue(ctx, "PRAGMA "+pragma)
		if err != nil {
			return fmt.Errorf("sqlitesafe: read back PRAGMA %s on %s: %w", pragma, c.name, err)
		}
		if !strings.EqualFold(got, want) {
			return c.settingError(pragma, got, want)
		}
		return nil
	}
	if err := check("busy_timeout", strconv.FormatInt(ms, 10)); err != nil {
		return err
	}
	if err := check("synchronous", synchronousLevel[cfg.synchronous()]); err != nil {
		return err
	}
	if cfg.ForeignKeys != "" {
		want := "0"
		if cfg.ForeignKeys == ForeignKeysOn {
			want = "1"
		}
		if err := check("foreign_keys", want); err != nil {
			return err
		}
	}
	if journal {
		want := string(cfg.journalMode())
		if c.memory && cfg.journalMode() != JournalOff {
			// SQLite keeps the journal of an in-memory database in
			// memory whatever is asked, as mattn/go-sqlite3 and
			// modernc.org/sqlite users expect.
			want = string(JournalMemory)
		}
		if err := check("journal_mode", want); err != nil {
			return err
		}
	}
	for _, st := range settings {
		if st.readBack == "" {
			continue
		}
		if err := check(st.pragma, st.readBack); err != nil {
			return err
		}
	}
	if limit {
		if err := check("journal_size_limit", sizeLimit); err != nil {
			return err
		}
	}
	return nil
}

// synchronousLevel is what PRAGMA synchronous reads back for each setting.
var synchronousLevel = map[Synchronous]string{
	SynchronousOff:    "0",
	SynchronousNormal: "1",
	SynchronousFull:   "2",
	SynchronousExtra:  "3",
}

// settingError reports a setting that read back otherwise than set.
func (c *connector) settingError(pragma, got, want string) error {
	if pragma == "journal_mode" && strings.EqualFold(want, "wal") {
		return fmt.Errorf("%w: journal_mode of %s is %q after asking for WAL: the file system cannot give WAL the shared memory it needs "+
			"(a network or FUSE file system, or a VFS without shared memory such as unix-none); "+
			"choose a rollback journal with _journal_mode=DELETE, knowing that readers then wait for the writer",
			ErrWALUnavailable, c.name, got)
	}
	return fmt.Errorf("%w: PRAGMA %s on %s reads %q after setting %q", ErrSetting, pragma, c.name, got, want)
}

// fileState is the process-wide state of one database file, shared by every
// handle that opens it.
type fileState struct {
	key     string
	handles map[*connector]bool // guarded by files
	queue   writeQueue
	gate    readGate     // the read transactions of the process on the file
	ckpt    checkpointer // its checkpoints
	anchor  readAnchor   // the read transaction its readers share their locks with (anchor.go)
}

// lastHandle reports whether c is the only handle left on the file.
func (f *fileState) lastHandle(c *connector) bool {
	files.Lock()
	defer files.Unlock()
	return len(f.handles) == 1 && f.handles[c]
}

// files is the registry of open database files, by fileKey.
var files = struct {
	sync.Mutex
	m map[string]*fileState
}{m: make(map[string]*fileState)}

// acquireFile registers c as a handle on the file key, opening the
// cross-process lock file if c is the first handle to want it.
func acquireFile(key string, c *connector) (*fileState, error) {
	files.Lock()
	defer files.Unlock()
	f := files.m[key]
	if f == nil {
		f = &fileState{key: key, handles: make(map[*connector]bool)}
		f.ckpt.f = f
		f.queue.anchor = &f.anchor
		f.queue.file = c.name
		if filepath.IsAbs(key) {
			f.queue.key = key
			f.anchor.wal = key + "-wal"
		}
		files.m[key] = f
	}
	if c.procOn() && f.queue.proc == nil && filepath.IsAbs(key) {
		// The lock file is opened by the first write: a handle that
		// only reads, or fails to open, creates nothing.
		f.queue.proc = newProcLock(key, c.name, c.cfg.logger())
	}
	f.handles[c] = true
	f.queue.watch(c.cfg)
	if !c.memory && !c.readOnly && c.db == nil {
		f.ckpt.setOpener(c)
		if c.cfg.checkpointing() == CheckpointingBackground && c.cfg.journalMode() == JournalWAL {
			f.ckpt.start(c)
		}
	}
	return f, nil
}

// releaseFile unregisters c; the last handle takes the file's state with it.
func releaseFile(f *fileState, c *connector) {
	files.Lock()
	delete(f.handles, c)
	last := len(f.handles) == 0 && files.m[f.key] == f
	if last {
		delete(files.m, f.key)
		f.queue.stopWatching()
	} else {
		for h := range f.handles {
			if !h.memory && !h.readOnly && h.db == nil && !h.shut.Load() {
				f.ckpt.setOpener(h)
				break
			}
		}
	}
	files.Unlock()
	if last {
		// Outside files: a checkpoint under way looks at the handles.
		// And before the lock file closes: a checkpoint takes it.
		f.anchor.close(true)
		f.ckpt.shutdown()
		if f.queue.proc != nil {
			f.queue.proc.close()
		}
	}
}

// closeIdleReaders closes the idle readers of every handle on the file, and
// the read anchor's connection: a journal mode change out of WAL needs the
// other connections gone. Readers in use stay, and the change then waits
// for them (the busy timeout).
func (f *fileState) closeIdleReaders() {
	files.Lock()
	handles := make([]*connector, 0, len(f.handles))
	for c := range f.handles {
		handles = append(handles, c)
	}
	files.Unlock()
	for _, c := range handles {
		c.readers.closeIdle()
	}
	f.anchor.close(false)
}

// beforeWrite prepares the file for a write about to run under the writer
// queue.
func (c *connector) beforeWrite(info *stmtInfo) {
	if info.flags&flagJournalMode != 0 {
		c.file.closeIdleReaders()
	}
}

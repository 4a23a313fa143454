package sqlitesafe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sqlitesafe/sqlitesafe/internal/safefile"
)

// The checks made before a database file is opened: the failures that SQLite
// reports late, vaguely or not at all (a network file system, a directory
// the process cannot write, a read-only file, a -wal without its -shm) are
// reported at once, naming the file, the cause and what to do.

// fsType describes the file system of the directory dir that holds the
// database file db: its name, and whether it is a network or a FUSE file
// system. Tests replace it with one that answers for the files they name.
var fsType = func(db, dir string) (name string, network, fuse bool, err error) {
	return statFSType(dir)
}

// checkFile checks the database file at path (the resolved registry key)
// before the first connection opens it.
func (c *connector) checkFile(path string) error {
	if c.memory || !filepath.IsAbs(path) {
		return nil
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("sqlitesafe: open %s: the directory %s does not exist: %w; "+
			"create it first (SQLite creates the database file, not its directory)", c.name, dir, err)
	case err != nil:
		return fmt.Errorf("sqlitesafe: open %s: %w", c.name, err)
	case !st.IsDir():
		return fmt.Errorf("sqlitesafe: open %s: %s is not a directory", c.name, dir)
	}

	if !c.cfg.Immutable {
		if err := c.checkFS(path, dir); err != nil {
			return err
		}
	}

	fi, ferr := os.Stat(path)
	exists := ferr == nil
	if exists && fi.IsDir() {
		return fmt.Errorf("sqlitesafe: open %s: it is a directory, not a database file", c.name)
	}
	if c.readOnly {
		if exists && !c.cfg.Immutable && isWAL(path) && !fileExists(path+"-shm") && !writable(dir) {
			return fmt.Errorf("%w: open %s read-only: the database is in WAL mode, its -shm file does not exist "+
				"and the directory %s is not writable, so SQLite cannot create it; "+
				"open it once read-write, make the directory writable, or add immutable=1 if nothing writes the file",
				ErrReadOnly, c.name, dir)
		}
		return nil
	}
	if exists && !writable(path) {
		// SQLite would open it read-only without a word and fail on the
		// first write, or at setup. Serve reads, refuse writes at once.
		c.readOnly = true
		c.readOnlyWhy = fmt.Sprintf("the file is not writable by this process (%s, owner uid %d)", fi.Mode().Perm(), ownerUID(fi))
		return nil
	}
	if !writable(dir) {
		return fmt.Errorf("sqlitesafe: open %s: the directory %s is not writable by this process (uid %d): "+
			"SQLite must create the database's -wal and -shm files (or its -journal) there; "+
			"make the directory writable for the user the program runs as, or open the database read-only with mode=ro: %w",
			c.name, dir, os.Geteuid(), fs.ErrPermission)
	}
	if exists {
		c.explainSideFiles(path)
	}
	return nil
}

// checkFS refuses a database on a network or FUSE file system unless the DSN
// allows it.
func (c *connector) checkFS(path, dir string) error {
	name, network, fuse, err := fsType(path, dir)
	if err != nil || (!network && !fuse) {
		return nil
	}
	if c.cfg.AllowNetworkFS {
		c.cfg.logger().Warn("sqlitesafe: the database is on a network or FUSE file system, allowed by _network_fs=allow; "+
			"use it from one machine only", slog.String("file", c.name), slog.String("fs", name))
		return nil
	}
	what := "a network file system"
	why := "its locks are not reliable, and SQLite corrupts a database whose locks fail; WAL also needs shared memory that machines do not share"
	if !network {
		what = "a FUSE file system"
		why = "its locking and shared memory depend on the FUSE server, and most do not provide what SQLite needs"
	}
	return fmt.Errorf("%w: %s is on %s (%s): %s; "+
		"move the database to a local disk, or, if only this machine ever opens it, open it knowingly with _network_fs=allow",
		ErrNetworkFS, c.name, what, name, why)
}

// explainSideFiles explains, in a warning, a -wal without its -shm or a -shm
// without its -wal. Nothing is deleted or changed: SQLite knows what to do
// with both, and the explanation is for the operator.
func (c *connector) explainSideFiles(path string) {
	wal, shm := fileSize(path+"-wal"), fileSize(path+"-shm")
	log := c.cfg.logger()
	switch {
	case wal >= 0 && shm < 0:
		log.Warn("sqlitesafe: the database has a -wal file but no -shm file; SQLite rebuilds the -shm from the -wal as it opens, "+
			"and the transactions in the -wal are kept. This happens after a copy that left the -shm behind, or when the -shm "+
			"was deleted. Never delete a -wal file: it holds committed transactions.",
			slog.String("file", c.name), slog.Int64("wal_bytes", wal))
	case shm >= 0 && wal < 0:
		frames := shmFrames(path)
		if frames > 0 {
			log.Error("sqlitesafe: the database has a -shm file that records a WAL of committed transactions, "+
				"but the -wal file is gone: it was deleted, or not copied with the database. The transactions it held are not "+
				"in the database. If a copy of the -wal exists, stop every program using the database and put it back beside "+
				"the database before opening it again; otherwise restore from a backup if those transactions matter.",
				slog.String("file", c.name), slog.Int64("wal_frames_lost", int64(frames)))
			return
		}
		log.Info("sqlitesafe: the database has a -shm file but no -wal file: harmless (SQLite resets it)",
			slog.String("file", c.name))
	}
}

// explainOpen adds what to do to an error from opening the database.
func (c *connector) explainOpen(path string, err error) error {
	switch code := sqliteCode(err); {
	case code&0xff == codeCantOpen:
		return fmt.Errorf("%w (check that %s and its directory exist and that this process, uid %d, may read and write them)",
			err, c.name, os.Geteuid())
	case code&0xff == codeReadOnly:
		return fmt.Errorf("%w (the database, its -wal or its -shm file, or the directory, is not writable by this process, uid %d: "+
			"a -shm or -wal owned by another user, such as root after a cron job, is the usual cause; "+
			"make them owned by the user the program runs as)", err, os.Geteuid())
	case code == ioerrShmOpen || code == ioerrShmSize || code == ioerrShmMap:
		return fmt.Errorf("%w (SQLite cannot open or map %s-shm: check its owner and permissions and the free space, "+
			"and that the file system supports shared memory; or choose a rollback journal with _journal_mode=DELETE)", err, path)
	}
	return err
}

// SQLite result codes explainOpen looks at.
const (
	codeCantOpen = 14
	ioerrShmOpen = 4618
	ioerrShmSize = 4874
	ioerrShmMap  = 5386
)

// isWAL reports whether the header of the database key (a registry key,
// the resolved path) says WAL (file format versions 2 at offsets 18 and 19).
func isWAL(key string) bool {
	hdr, ok := readUnopened(key, key, 20)
	return ok && len(hdr) == 20 && hdr[18] == 2 && hdr[19] == 2
}

// shmFrames returns the number of valid WAL frames the index header of the
// -shm of the database key records (mxFrame), or 0.
func shmFrames(key string) uint32 {
	hdr, ok := readUnopened(key, key+"-shm", 48)
	// The wal-index header is in native byte order; isInit at 12 says it
	// is valid, mxFrame is at 16.
	if !ok || len(hdr) < 48 || hdr[12] == 0 {
		return 0
	}
	return binary.NativeEndian.Uint32(hdr[16:20])
}

// readUnopened returns the first n bytes of path, a file of the database
// key, if no handle of this process has the database open; ok is false
// otherwise. The checks read files SQLite locks (the database and its
// -shm): closing a descriptor of such a file would drop every POSIX lock
// the process holds on it. So nothing is read while a handle is registered
// (its open made the checks), the registry's lock keeps one from
// registering meanwhile, and safefile reads through a descriptor the
// process already has on the file (a connection of a closed handle still
// in use, or another driver's) instead of opening one.
func readUnopened(key, path string, n int) (b []byte, ok bool) {
	files.Lock()
	defer files.Unlock()
	if files.m[key] != nil {
		return nil, false
	}
	b, err := safefile.Prefix(path, n)
	return b, err == nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// fileSize returns the size of path, or -1 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

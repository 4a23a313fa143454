package sqlitesafe

import (
	"path/filepath"
	"sync"
)

// fakeFS is a file system a test pretends a database file is on.
type fakeFS struct {
	name          string
	network, fuse bool
}

// fakeFSes maps the resolved path of a database file (as checkFile sees it)
// to the file system SetFSType said it is on.
var fakeFSes sync.Map

func init() {
	statfs := fsType
	fsType = func(db, dir string) (string, bool, bool, error) {
		if v, ok := fakeFSes.Load(db); ok {
			f := v.(fakeFS)
			return f.name, f.network, f.fuse, nil
		}
		return statfs(db, dir)
	}
}

// SetFSType makes the driver see the database file at path as being on the
// file system described, as if statfs had said so, until the returned
// function restores the real one: a network file system cannot be mounted
// in a test. Only opens of that file see it, so tests that use it can run in
// parallel with every other test.
func SetFSType(path, name string, network, fuse bool) (restore func()) {
	key := resolve(path)
	fakeFSes.Store(key, fakeFS{name: name, network: network, fuse: fuse})
	return func() { fakeFSes.Delete(key) }
}

// resolve gives the path of a database file as the connector's registry
// key has it: absolute, with symbolic links resolved.
func resolve(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		return resolved
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

//go:build !unix

package sqlitesafe

// fileID reports nothing: the system's lock table is read on Linux only.
func fileID(path string) (dev, ino uint64, ok bool) { return 0, 0, false }

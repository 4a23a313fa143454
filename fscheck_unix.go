//go:build unix

package sqlitesafe

import (
	"io/fs"
	"syscall"
)

// writable reports whether this process may write path (access(2) with
// W_OK, which answers for the effective user and honours read-only mounts).
func writable(path string) bool {
	return syscall.Access(path, 2 /* W_OK */) == nil
}

// ownerUID returns the owner of a file, or -1.
func ownerUID(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

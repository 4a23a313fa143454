//go:build !unix

package sqlitesafe

import "io/fs"

// writable reports whether this process may write path; without access(2),
// it trusts SQLite to tell.
func writable(path string) bool { return true }

// ownerUID returns -1: no owner here.
func ownerUID(fi fs.FileInfo) int { return -1 }

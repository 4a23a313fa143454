//go:build !linux

package sqlitesched

import "modernc.org/libc"

// installWriteLock keeps nothing: the flock layout it relies on is Linux's.
func installWriteLock(*libc.TLS, uintptr) bool { return false }

// WriteLockKept reports false: write locks are not kept on this system.
func WriteLockKept() bool { return false }

// Keep does nothing on this system.
func Keep(*libc.TLS, bool) {}

// Release does nothing on this system.
func Release() {}

// KeptLocks returns zeros on this system.
func KeptLocks() (now int, released int64) { return 0, 0 }

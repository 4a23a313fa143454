package sqlitesched

import (
	_ "unsafe" // for go:linkname

	sqlite3 "modernc.org/sqlite/lib"
)

// pcache1 is the global state of SQLite's default page cache (pcache1_g in
// pcache1.c) in modernc.org/sqlite's transpiled SQLite.
//
//go:linkname pcache1 modernc.org/sqlite/lib._pcache1_g
var pcache1 sqlite3.TPCacheGlobal

// separateCaches gives each page cache created from now on a group of its
// own, which needs no mutex, as SQLite does in builds without
// SQLITE_ENABLE_MEMORY_MANAGEMENT. modernc.org/sqlite is built with it, so
// every page cache of the process is in one group behind one mutex, taken at
// every page fetched and released: under 8 goroutines reading beside one
// writing, it was half of the writer's waits for the processor. A page cache
// is used by its connection alone (under the connection's mutex), and a
// connection of shared-cache mode shares its pager, and so its cache, under
// the shared B-tree's mutex: no cache needs the group's mutex then. What
// SQLITE_ENABLE_MEMORY_MANAGEMENT adds is lost for these caches:
// sqlite3_release_memory and the soft heap limit do not shrink them (each
// stays within its connection's cache_size). SQLite must be initialized
// (pcache1Init sets the mode), and it applies to the caches created after.
func separateCaches() {
	pcache1.FseparateCache = 1
}

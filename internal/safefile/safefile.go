// Package safefile reads the first bytes of a file without closing a
// descriptor of a file the process has open.
//
// Closing any descriptor of a file releases every POSIX lock the process
// holds on it (fcntl(2)), however the descriptor was opened: an os.Open and
// Close of a database beside SQLite's own connections drops their locks, and
// with them the protection of their transactions (SQLite's "How To Corrupt
// An SQLite Database File", section 2.2). SQLite's own VFS defers such closes
// while the process holds locks on the file; code reading the file itself
// must take the same care. Prefix does: where the process already has the
// file open, it reads through that descriptor and opens nothing.
package safefile

import "errors"

// ErrOpenUnreadable is returned when the process has the file open only
// through descriptors it cannot read from: opening another one to read
// would drop the process's locks on the file when it is closed.
var ErrOpenUnreadable = errors.New("safefile: the file is open in this process only for writing")

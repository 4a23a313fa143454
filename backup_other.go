//go:build !linux

package sqlitesafe

import (
	"os"
	"path/filepath"
)

// createPartial creates the temporary file of a backup to dst. Without
// Linux's open file description locks it is not marked as in use (an flock
// would conflict with SQLite's own locks on it on the BSDs), and a backup
// killed before it ends leaves it behind.
func createPartial(dst string) (name string, done func(), err error) {
	f, err := os.CreateTemp(filepath.Dir(dst), partialPrefix(dst)+"*")
	if err != nil {
		return "", nil, err
	}
	f.Close()
	return f.Name(), func() {}, nil
}

// removeStalePartials does nothing here: it cannot tell a dead backup's
// temporary file from a running one's.
func removeStalePartials(dst string) {}

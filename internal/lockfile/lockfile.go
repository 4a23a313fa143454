// Package lockfile says what mode the driver's lock file beside a database
// (FILE-writer.lock) should have. The driver creates it so; the doctor
// reports one that is more open.
package lockfile

import "io/fs"

// Suffix names the lock file: the database's name and Suffix.
const Suffix = "-writer.lock"

// Mode returns the permissions of the lock file of a database whose
// permissions are db: read and write for each class of users (owner, group,
// others) that may write the database, nothing for the others. Whoever may
// open the lock file can hold the lock and stop the writers (an flock needs
// only a descriptor), so only those who may write the database anyway may
// open it.
func Mode(db fs.FileMode) fs.FileMode {
	var m fs.FileMode
	for _, shift := range []uint{6, 3, 0} {
		if db>>shift&0o2 != 0 {
			m |= 0o6 << shift
		}
	}
	return m
}

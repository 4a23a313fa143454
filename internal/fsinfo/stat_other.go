//go:build !linux

package fsinfo

// Stat describes the file system holding path. On this system it is not
// implemented: it returns the type "unknown" and no error, so callers treat
// the file system as local and of unknown size.
func Stat(path string) (Info, error) {
	return Info{Type: "unknown"}, nil
}

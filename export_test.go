package sqlitesafe

// SetFSType makes the driver see every file system as the one described, as
// if statfs had said so, until the returned function restores the real one:
// a network file system cannot be mounted in a test.
func SetFSType(name string, network, fuse bool) (restore func()) {
	old := fsType
	fsType = func(string) (string, bool, bool, error) { return name, network, fuse, nil }
	return func() { fsType = old }
}

package sqlitesafe

import "github.com/sqlitesafe/sqlitesafe/internal/fsinfo"

// statFSType asks the system what file system holds path.
func statFSType(path string) (name string, network, fuse bool, err error) {
	info, err := fsinfo.Stat(path)
	if err != nil {
		return "", false, false, err
	}
	return info.Type, info.Network, info.FUSE, nil
}

//go:build unix && !linux

package sqlitesafe

import "os"

// Without open file description locks there is no waiting flag: the
// cross-process lock is then only as fair as flock(2).

func setWaiting(f *os.File, on bool) {}

func othersWaiting(f *os.File) bool { return false }

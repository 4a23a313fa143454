package compat_test

import (
	"time"

	_ "github.com/sqlitesafe/sqlitesafe"
)

// Workload sizes: 16 goroutines, few enough iterations to stay fast under
// the race detector on two cores.
const (
	ormGoroutines = 16
	ormIterations = 12
)

// ormPause widens the window between the read and the write of a
// read-modify-write transaction, so that concurrent transactions overlap.
const ormPause = time.Millisecond

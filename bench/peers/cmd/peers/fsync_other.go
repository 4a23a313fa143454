//go:build !linux

package main

import "os"

// fdatasync flushes f; outside Linux, with fsync.
func fdatasync(f *os.File) error { return f.Sync() }

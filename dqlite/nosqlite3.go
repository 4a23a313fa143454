//go:build !nosqlite3

package dqlite

// go-dqlite's client package compiles github.com/mattn/go-sqlite3 (cgo, a C compiler) unless the
// build has the nosqlite3 tag. This name is undefined on purpose: build with -tags nosqlite3.
var _ = buildWithTagNosqlite3ToKeepCgoOut

// Package dqlite is the groundwork for running sqlite-safe on a dqlite cluster (issue 15).
//
// It holds, so far, the tests that characterise plain go-dqlite on a real three-node cluster of
// dqlite-demo nodes (the controls that sqlite-safe's dqlite engine will be compared with), the
// failover measurements, and an unexported prototype of resolving an interrupted COMMIT by a
// marker row. NOTES.md has the numbers and the proposal for the seam in the root driver.
//
// Build and test with -tags nosqlite3, so that go-dqlite's client package does not compile
// github.com/mattn/go-sqlite3 (cgo):
//
//	go test -tags nosqlite3 ./...
package dqlite

// Package bench holds the benchmark of sqlite-safe's dqlite:// against plain go-dqlite and
// go-dqlite behind a hand-written mutex, on a real three-node loopback cluster of dqlite-demo
// nodes that the benchmark starts (apt-get install -y go-dqlite) and stops:
//
//	cd dqlite && go test -tags nosqlite3 -run '^$' -bench . -benchtime 2s ./bench/
//
// It has no code outside its test file.
package bench

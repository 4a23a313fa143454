//go:build !linux

// Command demo is the demo on a dqlite cluster; it starts dqlite-demo nodes and runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "dqlite demo: runs on Linux only (it starts dqlite-demo nodes: apt-get install -y go-dqlite)")
	os.Exit(1)
}

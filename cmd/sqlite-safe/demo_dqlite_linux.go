package main

import "syscall"

// childSysProcAttr has the kernel send the dqlite demo SIGTERM if this process dies first, so
// that it stops its nodes.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

//go:build !linux

package main

import "syscall"

// childSysProcAttr is nil: only Linux has a parent-death signal.
func childSysProcAttr() *syscall.SysProcAttr { return nil }

package cluster

import "syscall"

// sysProcAttr puts a node in its own process group (so that a kill of the group reaches anything
// it forks and a signal to the test's group does not reach it) and has the kernel SIGKILL it when
// the thread that started it dies, so that a test binary that crashes or is killed leaves no node
// running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

package launch

import "syscall"

// sysProcAttr puts a node in its own process group (so that a kill of the group reaches anything
// it forks, and a Ctrl-C or a signal to the starting program's group does not reach it: the
// program stops its nodes itself) and has the kernel SIGKILL it when the thread that started it
// dies, so that a program or test binary that crashes or is killed leaves no node running. (The
// Go runtime ends a thread only when a goroutine locked to it with runtime.LockOSThread returns;
// nothing here locks one.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

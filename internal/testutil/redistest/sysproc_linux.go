package redistest

import "syscall"

// sysProcAttr makes the kernel kill the server when the test process dies,
// so that an aborted test run leaves no server behind. (The signal follows
// the OS thread that started the child; Go keeps that thread alive unless a
// goroutine locked to it exits, which tests do not do.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

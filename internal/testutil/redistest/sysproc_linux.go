package redistest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// sysProcAttr makes the kernel kill the server when the test process dies,
// so that an aborted test run leaves no server behind. (The signal follows
// the OS thread that started the child; Go keeps that thread alive unless a
// goroutine locked to it exits, which tests do not do.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// waitStopped waits until the kernel reports process pid stopped (state
// T in /proc/pid/stat), at most timeout: kill(2) queues SIGSTOP and
// returns, and a server running on another CPU meanwhile may still answer
// a command sent right after.
func waitStopped(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return err
		}
		// "pid (comm) state ...": comm may hold spaces and parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'T' {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d not stopped within %v", pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

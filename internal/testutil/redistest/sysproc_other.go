//go:build !linux

package redistest

import (
	"syscall"
	"time"
)

// sysProcAttr has nothing to add outside Linux, which alone offers a
// parent-death signal.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// waitStopped has no way to look outside Linux: Pause trusts the signal.
func waitStopped(int, time.Duration) error { return nil }

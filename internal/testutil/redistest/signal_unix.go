//go:build unix

package redistest

import "syscall"

// The signals of Pause and Resume.
var sigStop, sigCont = syscall.SIGSTOP, syscall.SIGCONT

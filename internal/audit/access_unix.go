//go:build unix

package audit

import "golang.org/x/sys/unix"

// writable tells whether the process may create files in directory dir.
func writable(dir string) error { return unix.Access(dir, unix.W_OK|unix.X_OK) }

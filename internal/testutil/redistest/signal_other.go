//go:build !unix

package redistest

import "os"

// No way to freeze a process here: Pause and Resume fail the test.
var sigStop, sigCont os.Signal

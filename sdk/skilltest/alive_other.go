//go:build !unix

package skilltest

// processAlive reports whether a process with pid exists; where that
// cannot be told cheaply, it says yes, so nothing is swept.
func processAlive(pid int) bool { return true }

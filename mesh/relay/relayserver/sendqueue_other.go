//go:build !linux

package relayserver

import "syscall"

// sendQueueEmpty reports false where the send queue cannot be inspected:
// every frame then goes through the writer goroutine.
func sendQueueEmpty(syscall.RawConn) bool { return false }

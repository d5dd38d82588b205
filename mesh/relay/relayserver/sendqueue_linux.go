package relayserver

import (
	"syscall"
	"unsafe"
)

// siocoutq is SIOCOUTQ (TIOCOUTQ): the bytes of a TCP socket's send queue
// not yet acknowledged by the peer.
const siocoutq = 0x5411

// sendQueueEmpty reports whether everything written to the socket rc has
// been acknowledged by the peer: a small write then fits the socket's send
// buffer and cannot block.
func sendQueueEmpty(rc syscall.RawConn) bool {
	var n int32
	var errno syscall.Errno
	err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, siocoutq, uintptr(unsafe.Pointer(&n)))
	})
	return err == nil && errno == 0 && n == 0
}

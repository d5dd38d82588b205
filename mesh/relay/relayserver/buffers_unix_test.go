//go:build unix

package relayserver

import (
	"net"
	"net/http"
	"syscall"

	"github.com/coder/websocket"
)

// smallBuffers makes a client whose socket receive buffer is small, so
// that the relay's writes to it block soon after the client stops reading.
func smallBuffers() *websocket.DialOptions {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}}
}

// smallSendBuffers makes the relay's socket send buffers small, so that
// its writes to a client that does not read block at once.
func smallSendBuffers(s *Server) {
	s.acceptHookForTest = func(c net.Conn) {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetWriteBuffer(4096)
		}
	}
}

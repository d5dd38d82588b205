//go:build !unix

package relayserver

import "github.com/coder/websocket"

// smallBuffers returns the default options where socket buffers cannot
// be set.
func smallBuffers() *websocket.DialOptions { return nil }

// smallSendBuffers leaves the relay's buffers as they are.
func smallSendBuffers(*Server) {}

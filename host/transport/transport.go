// Package transport carries the host's frames to and from peers: KNOCK,
// ACCEPT, REJECT and CLOSE in the clear, and encrypted session messages. The
// session layer sees one Transport whatever the path underneath: the relay
// today, a direct WebRTC data channel when one is up.
package transport

import (
	"context"
	"errors"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Inbound is one frame a peer sent.
type Inbound struct {
	// From is the sender, as the path authenticated it (the relay checks
	// the sender's CONNECT signature).
	From protocol.AMID
	// Type says how to read Payload.
	Type protocol.MessageType
	// Payload is the frame's payload exactly as sent: a handshake message
	// or an encrypted envelope.
	Payload string
}

// Transport sends frames to peers and receives theirs. Implementations are
// safe for concurrent use.
type Transport interface {
	// Send delivers payload to the peer to, as a frame of type typ.
	Send(ctx context.Context, to protocol.AMID, typ protocol.MessageType, payload string) error
	// Recv waits for the next frame from any peer. It returns ErrClosed
	// once the transport is closed.
	Recv(ctx context.Context) (Inbound, error)
}

// ErrClosed is returned by Recv and Send once a transport is closed.
var ErrClosed = errors.New("transport closed")

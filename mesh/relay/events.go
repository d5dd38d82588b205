package relay

import (
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Incoming is an event Receive returns: *Message, *ICEOffer, *ICEAnswer,
// *P2PEstablished or *ErrorEvent. Consume it with a type switch.
type Incoming interface {
	incoming()
}

var (
	_ Incoming = (*Message)(nil)
	_ Incoming = (*ICEOffer)(nil)
	_ Incoming = (*ICEAnswer)(nil)
	_ Incoming = (*P2PEstablished)(nil)
	_ Incoming = (*ErrorEvent)(nil)
)

// Message is a receive frame: a message another agent sent through the
// relay.
type Message struct {
	// From is the sender's AMID, as the relay authenticated it.
	From protocol.AMID
	// Payload is the sender's encrypted_payload, byte for byte.
	Payload string
	// Type says how to read Payload.
	Type protocol.MessageType
	// Timestamp is when the relay accepted the message.
	Timestamp time.Time
	// ICECandidates are the sender's candidates, nil when it sent none.
	ICECandidates []protocol.ICECandidate
	// MessageID names a message the relay stored while this agent was
	// offline; empty for a message delivered live. The Conn has
	// acknowledged it by the time Receive returns it.
	MessageID string
}

// ICEOffer is a peer's WebRTC offer forwarded by the relay.
type ICEOffer struct {
	// From is the peer that sent the offer.
	From protocol.AMID
	// SDP is the session description, as the peer sent it.
	SDP string
	// Candidates are the peer's ICE candidates.
	Candidates []protocol.ICECandidate
}

// ICEAnswer is a peer's WebRTC answer forwarded by the relay.
type ICEAnswer struct {
	// From is the peer that sent the answer.
	From protocol.AMID
	// SDP is the session description, as the peer sent it.
	SDP string
	// Candidates are the peer's ICE candidates.
	Candidates []protocol.ICECandidate
}

// P2PEstablished tells that a peer reached this agent directly.
type P2PEstablished struct {
	// Peer is the agent that sent the notice.
	Peer protocol.AMID
}

// ErrorEvent is an error frame the relay sent after authentication, about
// an earlier frame of this Conn: RATE_LIMITED, RECIPIENT_OFFLINE,
// MESSAGE_TOO_LARGE and the like. The relay does not say which frame it
// concerns.
type ErrorEvent struct {
	// Err is the relay's error.
	Err *Error
}

func (*Message) incoming()        {}
func (*ICEOffer) incoming()       {}
func (*ICEAnswer) incoming()      {}
func (*P2PEstablished) incoming() {}
func (*ErrorEvent) incoming()     {}

// State is where a Conn stands with the relay.
type State int

// States of a Conn, reported through WithStateFunc.
const (
	// StateConnected: authenticated; frames flow.
	StateConnected State = iota + 1
	// StateReconnecting: the socket dropped and the Conn is waiting before
	// its next attempt to dial again.
	StateReconnecting
	// StateFailed: the relay refused a reconnect with a permanent error;
	// the Conn has stopped.
	StateFailed
	// StateClosed: Close was called.
	StateClosed
)

// String names the state in lower case.
func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateFailed:
		return "failed"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// StateChange reports a step of a Conn's life to the function given with
// WithStateFunc.
type StateChange struct {
	// State is the new state.
	State State
	// Err is why the previous socket dropped or the previous attempt
	// failed (StateReconnecting), or the error that stopped the Conn
	// (StateFailed). Nil otherwise.
	Err error
	// Attempt counts the reconnect attempts, starting at 1, since the Conn
	// last stayed connected for the backoff maximum: a connection that
	// drops sooner does not reset the backoff (StateReconnecting).
	Attempt int
	// Delay is how long the Conn waits before that attempt
	// (StateReconnecting).
	Delay time.Duration
	// SessionID is the relay's id for the new connection (StateConnected).
	SessionID string
	// PendingMessages is how many stored messages the relay announced
	// for the new connection (StateConnected).
	PendingMessages int
}

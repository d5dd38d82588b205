package relay

import (
	"errors"
	"fmt"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrClosed is returned by every call on a Conn after Close.
	ErrClosed = errors.New("relay: connection closed")
	// ErrNotConnected is wrapped, together with the context's error, by
	// calls whose context ended while the Conn was reconnecting.
	ErrNotConnected = errors.New("relay: not connected")
	// ErrConnectionLost is wrapped by calls whose socket dropped before
	// they completed: a write that failed, or a Ping or QueryPresence whose
	// answer can no longer arrive. The frame may or may not have reached
	// the relay.
	ErrConnectionLost = errors.New("relay: connection lost")
	// ErrReplaced stops a Conn whose relay closed it with
	// CloseStatusReplaced: the same agent connected again elsewhere.
	// Reconnecting would only make the two connections replace each other
	// in turn.
	ErrReplaced = errors.New("relay: replaced by a newer connection of the same agent")
)

// CloseStatusReplaced is the WebSocket close status with which the relay
// closes a connection whose AMID connected again.
const CloseStatusReplaced = 4000

// Error is an error frame from the relay (PROTOCOL.md §5.4): the answer to
// a refused CONNECT, returned by Dial, or a report about an earlier frame,
// delivered by Receive inside an ErrorEvent.
type Error struct {
	// Code is the relay's machine-readable code. Codes this package does
	// not know are kept as received.
	Code protocol.RelayErrorCode
	// Message is the relay's explanation.
	Message string
	// RetryAfter is how long the relay asks the sender to wait, zero when
	// the frame names no delay.
	RetryAfter time.Duration
}

// Error returns "relay: CODE: message", with the retry delay when there is
// one.
func (e *Error) Error() string {
	s := fmt.Sprintf("relay: %s", e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &relay.Error{Code: protocol.RelayRateLimited}) matches
// any rate-limit error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Temporary reports whether the relay may accept the same CONNECT later:
// true for RATE_LIMITED and INTERNAL_ERROR. Every other error frame in
// answer to CONNECT (a bad signature, an expired timestamp, an AMID that
// does not match the key, an unsupported protocol, …) is permanent, and
// the Conn stops reconnecting when it gets one.
func (e *Error) Temporary() bool {
	return e.Code == protocol.RelayRateLimited || e.Code == protocol.RelayInternalError
}

func errorFromFrame(f protocol.ErrorFrame) *Error {
	e := &Error{Code: f.Code, Message: f.Message}
	if f.RetryAfterSeconds != nil {
		e.RetryAfter = time.Duration(*f.RetryAfterSeconds) * time.Second
	}
	return e
}

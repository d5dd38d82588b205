package protocol

import (
	"errors"
	"fmt"
)

// DecodeError reports input that does not decode into a protocol value. It
// names the message, the field (a dotted path such as "request.ttl", empty for
// the whole input) and what is wrong with it. It never quotes key material.
type DecodeError struct {
	// What is the kind of value being decoded, for example "KNOCK" or
	// "relay frame".
	What string
	// Field is the dotted path of the offending member; empty when the
	// problem is with the input as a whole.
	Field string
	// Problem says what is wrong, in lower case without a final period.
	Problem string
	// Err is the underlying error, if any.
	Err error
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("invalid %s: %s", e.What, e.Problem)
	}
	return fmt.Sprintf("invalid %s: %s: %s", e.What, e.Field, e.Problem)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// ErrBadSignature is returned by every Verify function when a signature is
// malformed or does not verify. It is deliberately the same error in both
// cases.
var ErrBadSignature = errors.New("signature verification failed")

// ErrStale is wrapped by freshness checks for timestamps outside the window of
// PROTOCOL.md §0.5 (5 minutes old, 1 minute ahead).
var ErrStale = errors.New("timestamp outside the accepted window")

func fieldErr(what, field, format string, args ...any) *DecodeError {
	return &DecodeError{What: what, Field: field, Problem: fmt.Sprintf(format, args...)}
}

package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
)

// Error is a failure a handler reports to the peer as an ERROR payload.
// Return one (or an error wrapping one) from a handler to choose the
// ERROR's code; any other error becomes internal_error with a generic
// message, so that internal details never reach the peer.
type Error struct {
	// Code is the protocol error code, for example
	// protocol.CodeInvalidParameter.
	Code protocol.ErrorCode
	// Message is sent to the peer; it must not hold secrets. Empty means
	// the code itself.
	Message string
	// Details, when not nil, is marshalled with encoding/json as the
	// ERROR's details; it must marshal to a JSON object.
	Details any
	// RetryAfter, when positive, tells the peer when a retry may succeed;
	// it is sent in whole seconds, rounded up.
	RetryAfter time.Duration

	err error // wrapped by Errorf's %w
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Unwrap returns the error wrapped with %w by Errorf, if any.
func (e *Error) Unwrap() error { return e.err }

// Errorf returns an *Error with code and a message formatted as by
// fmt.Errorf; a %w verb wraps its operand, which errors.Is and errors.As
// then see, but only the formatted message reaches the peer.
func Errorf(code protocol.ErrorCode, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	e := &Error{Code: code, Message: err.Error()}
	switch err.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		e.err = err // a %w verb: keep the chain for errors.Is and errors.As
	}
	return e
}

// ResultStatus is implemented by result types that choose the status of
// their RESPONSE, for example protocol.ResponsePartialSuccess when some
// sources failed. Other results are sent with protocol.ResponseSuccess.
type ResultStatus interface {
	ResultStatus() protocol.ResponseStatus
}

// genericInternal is the message of every internal_error the SDK makes
// from an error it cannot show the peer.
const genericInternal = "internal error"

// errShuttingDown is the cancellation cause of requests in flight when
// the skill stops.
var errShuttingDown = errors.New("skill is shutting down")

// errorEvent maps the error a request ended with to its ERROR. ctx is the
// request's context. It reports whether the error is one the skill author
// should see in the logs (an internal error).
func errorEvent(ctx context.Context, err error) (ev *skillpb.Error, internal bool) {
	var se *Error
	if errors.As(err, &se) {
		ev := &skillpb.Error{Code: string(se.Code), Message: se.Message}
		if ev.Code == "" {
			ev.Code = string(protocol.CodeInternalError)
		}
		if ev.Message == "" {
			ev.Message = ev.Code
		}
		if se.RetryAfter > 0 {
			secs := uint32(min(math.Ceil(se.RetryAfter.Seconds()), math.MaxUint32))
			ev.RetryAfterSeconds = &secs
		}
		if se.Details != nil {
			details, derr := json.Marshal(se.Details)
			if derr != nil || !isJSONObject(details) {
				// A details value the wire cannot carry is the skill's bug:
				// keep the ERROR, drop the details, and say so in the logs.
				return ev, true
			}
			ev.DetailsJson = details
		}
		return ev, false
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		msg := pe.Message
		if msg == "" {
			msg = string(pe.Code)
		}
		return &skillpb.Error{Code: string(pe.Code), Message: msg}, false
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return cancelEvent(ctx, err), false
	}
	return &skillpb.Error{Code: string(protocol.CodeInternalError), Message: genericInternal}, true
}

// cancelEvent is the ERROR of a request whose context ended.
func cancelEvent(ctx context.Context, err error) *skillpb.Error {
	cause := context.Cause(ctx)
	// The host's deadline travels with the request; when it has passed,
	// the host gave up because of it, whichever way the cancellation
	// reached the skill first.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) && !errors.Is(cause, errShuttingDown) {
		return &skillpb.Error{Code: string(protocol.CodeTimeout), Message: "request timed out"}
	}
	switch {
	case errors.Is(cause, errShuttingDown):
		return &skillpb.Error{Code: string(protocol.CodeCancelled), Message: errShuttingDown.Error()}
	case errors.Is(cause, context.DeadlineExceeded), cause == nil && errors.Is(err, context.DeadlineExceeded):
		return &skillpb.Error{Code: string(protocol.CodeTimeout), Message: "request timed out"}
	default:
		return &skillpb.Error{Code: string(protocol.CodeCancelled), Message: "request cancelled"}
	}
}

// paramsError maps a failure to decode REQUEST parameters into the
// handler's type to an invalid_parameter *Error naming the field.
func paramsError(err error) *Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := "parameters"
		if te.Field != "" {
			field += "." + te.Field
		}
		return &Error{
			Code:    protocol.CodeInvalidParameter,
			Message: fmt.Sprintf("%s: want %s, got %s", field, jsonKind(te.Type), te.Value),
			err:     err,
		}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &Error{Code: protocol.CodeInvalidRequest, Message: "parameters: not valid JSON", err: err}
	}
	return &Error{Code: protocol.CodeInvalidParameter, Message: "parameters: " + err.Error(), err: err}
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return t.String()
}

func isJSONObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

func TestErrorEvent(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	shutting, cancel3 := context.WithCancelCause(context.Background())
	cancel3(errShuttingDown)
	live := context.Background()
	retry := uint32(3)

	tests := []struct {
		name      string
		ctx       context.Context
		err       error
		wantCode  protocol.ErrorCode
		wantMsg   string
		wantRetry *uint32
		details   string
		wantLog   bool
	}{
		{name: "Errorf", ctx: live, err: Errorf(protocol.CodeInvalidParameter, "date %q is in the past", "2001-01-01"), wantCode: protocol.CodeInvalidParameter, wantMsg: `date "2001-01-01" is in the past`},
		{name: "wrapped Error", ctx: live, err: fmt.Errorf("search: %w", &Error{Code: protocol.CodeNotFound, Message: "no route"}), wantCode: protocol.CodeNotFound, wantMsg: "no route"},
		{name: "Error without message", ctx: live, err: &Error{Code: protocol.CodeUnavailable}, wantCode: protocol.CodeUnavailable, wantMsg: "unavailable"},
		{name: "Error without code", ctx: live, err: &Error{Message: "m"}, wantCode: protocol.CodeInternalError, wantMsg: "m"},
		{name: "retry after rounds up", ctx: live, err: &Error{Code: protocol.CodeRateLimited, Message: "m", RetryAfter: 2500 * time.Millisecond}, wantCode: protocol.CodeRateLimited, wantMsg: "m", wantRetry: &retry},
		{name: "details", ctx: live, err: &Error{Code: protocol.CodeInvalidParameter, Message: "m", Details: map[string]int{"max": 9}}, wantCode: protocol.CodeInvalidParameter, wantMsg: "m", details: `{"max":9}`},
		{name: "details not an object", ctx: live, err: &Error{Code: protocol.CodeInvalidParameter, Message: "m", Details: []int{1}}, wantCode: protocol.CodeInvalidParameter, wantMsg: "m", wantLog: true},
		{name: "protocol error", ctx: live, err: &protocol.Error{Code: protocol.CodeForbidden, Message: "no"}, wantCode: protocol.CodeForbidden, wantMsg: "no"},
		{name: "plain error", ctx: live, err: errors.New("db password wrong"), wantCode: protocol.CodeInternalError, wantMsg: "internal error", wantLog: true},
		{name: "cancelled context", ctx: cancelled, err: errors.New("stopped"), wantCode: protocol.CodeCancelled, wantMsg: "request cancelled"},
		{name: "context error", ctx: live, err: fmt.Errorf("fetch: %w", context.Canceled), wantCode: protocol.CodeCancelled, wantMsg: "request cancelled"},
		{name: "deadline", ctx: expired, err: context.DeadlineExceeded, wantCode: protocol.CodeTimeout, wantMsg: "request timed out"},
		{name: "deadline error alone", ctx: live, err: fmt.Errorf("fetch: %w", context.DeadlineExceeded), wantCode: protocol.CodeTimeout, wantMsg: "request timed out"},
		{name: "shutting down", ctx: shutting, err: context.Canceled, wantCode: protocol.CodeCancelled, wantMsg: "skill is shutting down"},
		{name: "Error wins over the context", ctx: cancelled, err: Errorf(protocol.CodeNotFound, "gone"), wantCode: protocol.CodeNotFound, wantMsg: "gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, logIt := errorEvent(tt.ctx, tt.err)
			if got := protocol.ErrorCode(ev.GetCode()); got != tt.wantCode {
				t.Errorf("got code %s, want %s", got, tt.wantCode)
			}
			if got := ev.GetMessage(); got != tt.wantMsg {
				t.Errorf("got message %q, want %q", got, tt.wantMsg)
			}
			if got := ev.RetryAfterSeconds; (got == nil) != (tt.wantRetry == nil) || got != nil && *got != *tt.wantRetry {
				t.Errorf("got retry %v, want %v", got, tt.wantRetry)
			}
			if got := string(ev.GetDetailsJson()); got != tt.details {
				t.Errorf("got details %q, want %q", got, tt.details)
			}
			if logIt != tt.wantLog {
				t.Errorf("got log %v, want %v", logIt, tt.wantLog)
			}
		})
	}
}

func TestErrorfWraps(t *testing.T) {
	err := Errorf(protocol.CodeExternalServiceError, "fare service: %w", io.ErrUnexpectedEOF)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("errors.Is does not see the wrapped error")
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != protocol.CodeExternalServiceError {
		t.Fatalf("got %v, want an *Error with external_service_error", err)
	}
	if got, want := err.Error(), "external_service_error: fare service: unexpected EOF"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if Errorf(protocol.CodeNotFound, "plain").(*Error).Unwrap() != nil {
		t.Error("an Errorf without %w unwraps to something")
	}
}

func TestParamsError(t *testing.T) {
	type passengers struct {
		Adults int `json:"adults"`
	}
	type params struct {
		From       string     `json:"from"`
		Passengers passengers `json:"passengers"`
		Legs       []struct {
			Date string `json:"date"`
		} `json:"legs"`
		Max float64 `json:"max"`
	}
	tests := []struct {
		name     string
		raw      string
		wantCode protocol.ErrorCode
		wantMsg  string
	}{
		{name: "string for integer", raw: `{"passengers":{"adults":"two"}}`, wantCode: protocol.CodeInvalidParameter, wantMsg: "parameters.passengers.adults: want integer, got string"},
		{name: "fraction for integer", raw: `{"passengers":{"adults":1.5}}`, wantCode: protocol.CodeInvalidParameter, wantMsg: "parameters.passengers.adults: want integer, got number 1.5"},
		{name: "number for string", raw: `{"from":7}`, wantCode: protocol.CodeInvalidParameter, wantMsg: "parameters.from: want string, got number"},
		{name: "object for array", raw: `{"legs":{}}`, wantCode: protocol.CodeInvalidParameter, wantMsg: "parameters.legs: want array, got object"},
		{name: "in an array", raw: `{"legs":[{"date":1}]}`, wantCode: protocol.CodeInvalidParameter, wantMsg: "date: want string, got number"},
		{name: "array for object", raw: `[]`, wantCode: protocol.CodeInvalidParameter, wantMsg: "parameters: want object, got array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p params
			err := json.Unmarshal([]byte(tt.raw), &p)
			if err == nil {
				t.Fatal("decoded without error")
			}
			e := paramsError(err)
			if e.Code != tt.wantCode {
				t.Errorf("got code %s, want %s", e.Code, tt.wantCode)
			}
			if !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("got message %q, want it to contain %q", e.Message, tt.wantMsg)
			}
		})
	}
}

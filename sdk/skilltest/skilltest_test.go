package skilltest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/agentmesh/agentmesh-go/sdk/skilltest"
	"github.com/agentmesh/agentmesh-go/sdk/skilltest/testdata/echo/echoskill"
)

func TestMain(m *testing.M) {
	if runAsFakeHost() {
		return
	}
	skilltest.Main(m)
}

const echoDir = "testdata/echo"

// harnesses returns the two ways of running the echo skill, so that every
// behaviour is checked in-process and through a real plugin process.
func harnesses(t *testing.T, opts skilltest.Options) map[string]*skilltest.Harness {
	return map[string]*skilltest.Harness{
		"in-process": skilltest.RunWithOptions(t, echoskill.New(), opts),
		"binary":     skilltest.StartWithOptions(t, skilltest.Build(t, echoDir), opts),
	}
}

func TestHandle(t *testing.T) {
	eta := func(v float64) *float64 { return &v }
	type want struct {
		statuses []protocol.Status
		status   protocol.ResponseStatus
		results  string // JSON; compared exactly
		schema   string
		code     protocol.ErrorCode
		message  string // substring of the ERROR message
		noLeak   string // must not appear in the ERROR message
		details  string
		retry    int
	}
	tests := []struct {
		name   string
		intent string
		params any
		want   want
	}{
		{
			name:   "status events then response",
			intent: "test/echo",
			params: map[string]any{"text": "hi", "steps": 2},
			want: want{
				statuses: []protocol.Status{
					{Progress: 0.5, Message: "step 1", Phase: "echo", EstimatedCompletionSeconds: eta(1)},
					{Progress: 1, Message: "step 2", Phase: "echo"},
				},
				status:  protocol.ResponseSuccess,
				results: `{"text":"hi","steps":2}`,
				schema:  "x-test/echo-result/v1",
			},
		},
		{
			name:   "results keep HTML characters",
			intent: "test/echo",
			params: map[string]any{"text": "<a&b>"},
			want:   want{status: protocol.ResponseSuccess, results: `{"text":"<a&b>","steps":0}`, schema: "x-test/echo-result/v1"},
		},
		{
			name:   "no parameters",
			intent: "test/echo",
			want:   want{status: protocol.ResponseSuccess, results: `{"text":"","steps":0}`, schema: "x-test/echo-result/v1"},
		},
		{
			name:   "parameter of the wrong type",
			intent: "test/echo",
			params: map[string]any{"text": "hi", "steps": "three"},
			want:   want{code: protocol.CodeInvalidParameter, message: "parameters.steps: want integer, got string"},
		},
		{
			name:   "error code passes through",
			intent: "test/fail",
			params: map[string]any{"code": "rate_limited", "message": "slow down", "details": map[string]string{"limit": "10/min"}, "retry_after_seconds": 30},
			want:   want{code: protocol.CodeRateLimited, message: "slow down", details: `{"limit":"10/min"}`, retry: 30},
		},
		{
			name:   "plain error becomes internal_error without its text",
			intent: "test/fail",
			params: map[string]any{},
			want:   want{code: protocol.CodeInternalError, message: "internal error", noLeak: "secret"},
		},
		{
			name:   "panic becomes internal_error",
			intent: "test/panic",
			want:   want{code: protocol.CodeInternalError, message: "internal error", noLeak: "handler bug"},
		},
		{
			name:   "declared intent without handler",
			intent: "test/unhandled",
			want:   want{code: protocol.CodeCapabilityNotSupported, message: "test/unhandled"},
		},
		{
			name:   "undeclared intent",
			intent: "test/nope",
			want:   want{code: protocol.CodeCapabilityNotSupported, message: "test/nope"},
		},
		{
			name:   "result chooses partial_success",
			intent: "test/partial",
			want:   want{status: protocol.ResponsePartialSuccess, results: `{"found":1}`},
		},
	}
	for hname, h := range harnesses(t, skilltest.Options{}) {
		for _, tt := range tests {
			t.Run(hname+"/"+tt.name, func(t *testing.T) {
				res, err := h.Handle(t.Context(), tt.intent, tt.params)
				if err != nil {
					t.Fatalf("Handle: %v", err)
				}
				if got, want := len(res.Statuses), len(tt.want.statuses); got != want {
					t.Fatalf("got %d STATUS events %+v, want %d", got, res.Statuses, want)
				}
				for i, got := range res.Statuses {
					if err := sameStatus(got, tt.want.statuses[i]); err != nil {
						t.Errorf("STATUS %d: %v", i, err)
					}
				}
				if tt.want.code != "" {
					if res.Error == nil {
						t.Fatalf("got RESPONSE %s, want ERROR %s", res.Response.Results, tt.want.code)
					}
					e := res.Error
					if e.Code != tt.want.code {
						t.Errorf("got code %s (%s), want %s", e.Code, e.Message, tt.want.code)
					}
					if !strings.Contains(e.Message, tt.want.message) {
						t.Errorf("got message %q, want it to contain %q", e.Message, tt.want.message)
					}
					if tt.want.noLeak != "" && strings.Contains(e.Message, tt.want.noLeak) {
						t.Errorf("message %q leaks %q", e.Message, tt.want.noLeak)
					}
					if got := string(e.Details); got != tt.want.details {
						t.Errorf("got details %q, want %q", got, tt.want.details)
					}
					if got := e.RetryAfterSeconds; (got == nil) != (tt.want.retry == 0) || got != nil && *got != tt.want.retry {
						t.Errorf("got retry_after_seconds %v, want %d", got, tt.want.retry)
					}
					return
				}
				if res.Error != nil {
					t.Fatalf("got ERROR %s: %s, want a RESPONSE", res.Error.Code, res.Error.Message)
				}
				r := res.Response
				if r.Status != tt.want.status {
					t.Errorf("got status %q, want %q", r.Status, tt.want.status)
				}
				if got := string(r.Results); got != tt.want.results {
					t.Errorf("got results %s, want %s", got, tt.want.results)
				}
				if r.Schema != tt.want.schema {
					t.Errorf("got schema %q, want %q", r.Schema, tt.want.schema)
				}
			})
		}
	}
}

func sameStatus(got, want protocol.Status) error {
	if got.Progress != want.Progress || got.Message != want.Message || got.Phase != want.Phase {
		return errorf("got %+v, want %+v", got, want)
	}
	g, w := got.EstimatedCompletionSeconds, want.EstimatedCompletionSeconds
	if (g == nil) != (w == nil) || g != nil && *g != *w {
		return errorf("got ETA %v, want %v", g, w)
	}
	return nil
}

func TestKeepsServingAfterPanic(t *testing.T) {
	for name, h := range harnesses(t, skilltest.Options{}) {
		t.Run(name, func(t *testing.T) {
			for i := range 3 {
				res, err := h.Handle(t.Context(), "test/panic", nil)
				if err != nil {
					t.Fatalf("panic request %d: %v", i, err)
				}
				if res.Error == nil || res.Error.Code != protocol.CodeInternalError {
					t.Fatalf("panic request %d: got %+v, want ERROR internal_error", i, res)
				}
				res, err = h.Handle(t.Context(), "test/echo", map[string]string{"text": "still here"})
				if err != nil {
					t.Fatalf("request after panic %d: %v", i, err)
				}
				if res.Response == nil || string(res.Response.Results) != `{"text":"still here","steps":0}` {
					t.Fatalf("request after panic %d: got %+v, want the echo", i, res)
				}
			}
		})
	}
}

func TestRequestMembers(t *testing.T) {
	// The REQUEST's members other than parameters must reach the handler;
	// the echo skill's config intent ignores them, so check through a
	// full REQUEST whose budget is invalid: the SDK must refuse it.
	for name, h := range harnesses(t, skilltest.Options{}) {
		t.Run(name, func(t *testing.T) {
			res, err := h.HandleRequest(t.Context(), &protocol.Request{
				Intent:     "test/echo",
				Parameters: json.RawMessage(`{"text":"x"}`),
				Budget:     &protocol.Budget{Amount: -1},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Error == nil || res.Error.Code != protocol.CodeInvalidRequest || !strings.Contains(res.Error.Message, "budget.amount") {
				t.Fatalf("got %+v, want ERROR invalid_request naming budget.amount", res.Error)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		config  any
		want    string
		wantErr string
	}{
		{name: "defaults", want: `{"greeting":"hello","max_steps":10,"ratio":0,"ratio_set":false,"verbose":false}`},
		{
			name:   "host values",
			config: map[string]any{"greeting": "hey", "max_steps": 3, "ratio": 0.5, "verbose": true},
			want:   `{"greeting":"hey","max_steps":3,"ratio":0.5,"ratio_set":true,"verbose":true}`,
		},
		{name: "null keeps the default", config: map[string]any{"greeting": nil}, want: `{"greeting":"hello","max_steps":10,"ratio":0,"ratio_set":false,"verbose":false}`},
		{name: "unknown option", config: map[string]any{"colour": "red"}, wantErr: "config.colour"},
		{name: "wrong type", config: map[string]any{"max_steps": "3"}, wantErr: "config.max_steps"},
		{name: "not an integer", config: map[string]any{"max_steps": 2.5}, wantErr: "config.max_steps"},
		{name: "above maximum", config: map[string]any{"max_steps": 101}, wantErr: "config.max_steps"},
		{name: "not in enum", config: map[string]any{"greeting": "yo"}, wantErr: "config.greeting"},
	}
	for hname, h := range harnesses(t, skilltest.Options{}) {
		for _, tt := range tests {
			t.Run(hname+"/"+tt.name, func(t *testing.T) {
				config := tt.config
				if config == nil {
					config = map[string]any{}
				}
				err := h.Configure(t.Context(), config)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("Configure: got error %v, want one naming %s", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("Configure: %v", err)
				}
				res, err := h.Handle(t.Context(), "test/config", nil)
				if err != nil {
					t.Fatal(err)
				}
				if res.Response == nil {
					t.Fatalf("got ERROR %+v", res.Error)
				}
				if got := string(res.Response.Results); got != tt.want {
					t.Errorf("got %s, want %s", got, tt.want)
				}
			})
		}
	}
}

func TestConfigFromOptions(t *testing.T) {
	for name, h := range harnesses(t, skilltest.Options{Config: map[string]any{"greeting": "hi"}}) {
		t.Run(name, func(t *testing.T) {
			res, err := h.Handle(t.Context(), "test/config", nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Response == nil || !strings.Contains(string(res.Response.Results), `"greeting":"hi"`) {
				t.Fatalf("got %+v, want greeting hi", res)
			}
		})
	}
}

type fakeHost struct {
	skillpb.UnimplementedHostServicesServer
}

func (fakeHost) Status(context.Context, *skillpb.HostStatusRequest) (*skillpb.HostStatusResponse, error) {
	return &skillpb.HostStatusResponse{
		HostVersion:   "9.9.9",
		UptimeSeconds: 61,
		Skills:        []*skillpb.SkillState{{Name: "echo", Version: "1.0.0", State: "running"}},
	}, nil
}

func TestHostServices(t *testing.T) {
	tests := []struct {
		name     string
		opts     skilltest.Options
		wantCode protocol.ErrorCode
		want     string
	}{
		{
			name: "granted",
			opts: skilltest.Options{HostServices: fakeHost{}, GrantHostAPI: []string{"status"}},
			want: `{"HostVersion":"9.9.9","AMID":"","Uptime":61000000000,"Skills":[{"Name":"echo","Version":"1.0.0","State":"running","QuarantineReason":""}]}`,
		},
		{name: "not granted", opts: skilltest.Options{HostServices: fakeHost{}}, wantCode: protocol.CodeForbidden},
		{name: "no host services", wantCode: protocol.CodeForbidden},
	}
	for _, tt := range tests {
		for hname, h := range harnesses(t, tt.opts) {
			t.Run(tt.name+"/"+hname, func(t *testing.T) {
				res, err := h.Handle(t.Context(), "test/host-status", nil)
				if err != nil {
					t.Fatal(err)
				}
				if tt.wantCode != "" {
					if res.Error == nil || res.Error.Code != tt.wantCode {
						t.Fatalf("got %+v, want ERROR %s", res, tt.wantCode)
					}
					return
				}
				if res.Error != nil {
					t.Fatalf("got ERROR %s: %s", res.Error.Code, res.Error.Message)
				}
				if got := string(res.Response.Results); got != tt.want {
					t.Errorf("got %s, want %s", got, tt.want)
				}
			})
		}
	}
}

func TestDescribe(t *testing.T) {
	for name, h := range harnesses(t, skilltest.Options{}) {
		t.Run(name, func(t *testing.T) {
			d, err := h.Describe(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(d.Manifest) || !strings.Contains(string(d.Manifest), `"name": "echo"`) {
				t.Errorf("got manifest %.60q, want the echo skill.json", d.Manifest)
			}
			if got, want := d.ManifestSHA256, sha256Hex(d.Manifest); got != want {
				t.Errorf("got digest %s, want %s", got, want)
			}
			if d.SDKVersion == "" {
				t.Error("empty SDK version")
			}
		})
	}
}

func TestReplayExamples(t *testing.T) {
	for name, h := range harnesses(t, skilltest.Options{}) {
		t.Run(name, func(t *testing.T) { skilltest.ReplayExamples(t, h) })
	}
}

// TestShutdownCancels checks that a request in flight when the host shuts
// the skill down ends with ERROR cancelled, sent by the skill itself, and
// that the skill then refuses new requests.
func TestShutdownCancels(t *testing.T) {
	for name, h := range harnesses(t, skilltest.Options{}) {
		t.Run(name, func(t *testing.T) {
			done := startBlocked(t, h)
			// The skill waits for the request until the deadline, then
			// cancels it. The deadline also ends the call on this side,
			// possibly before the skill's answer arrives.
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			if err := h.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Shutdown: %v", err)
			}
			o := waitOutcome(t, done)
			if o.err != nil {
				t.Fatalf("blocked request: %v", o.err)
			}
			if o.res.Error == nil || o.res.Error.Code != protocol.CodeCancelled {
				t.Fatalf("blocked request: got %+v, want ERROR cancelled", o.res)
			}
			res, err := h.Handle(t.Context(), "test/echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Error == nil || res.Error.Code != protocol.CodeUnavailable {
				t.Fatalf("request after shutdown: got %+v, want ERROR unavailable", res)
			}
		})
	}
}

type outcome struct {
	res *skilltest.Result
	err error
}

// waitOutcome waits for the outcome of a blocked request, failing the test
// after logtest.Patience.
func waitOutcome(t *testing.T, done <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-done:
		return o
	case <-time.After(logtest.Patience):
		t.Fatalf("the blocked request did not end within %v", logtest.Patience)
		return outcome{}
	}
}

// startBlocked sends a test/block request and returns once the skill's
// handler is running; the outcome arrives on the channel.
func startBlocked(t *testing.T, h *skilltest.Harness) <-chan outcome {
	t.Helper()
	started := make(chan struct{})
	done := make(chan outcome, 1)
	go func() {
		var once sync.Once
		res, err := h.HandleStream(context.Background(), &protocol.Request{Intent: "test/block"}, func(protocol.Status) {
			once.Do(func() { close(started) })
		})
		once.Do(func() { close(started) })
		done <- outcome{res, err}
	}()
	<-started
	return done
}

// TestContextEnds checks that when the host gives up on a request, the
// skill's handler sees it and the SDK reports it with the right code.
func TestContextEnds(t *testing.T) {
	tests := []struct {
		name      string
		deadline  bool // end the request with a deadline instead of cancelling it
		wantErr   error
		wantCodes []string
	}{
		{name: "cancelled", wantErr: context.Canceled, wantCodes: []string{"cancelled"}},
		// The skill's copy of the deadline is set when the request
		// arrives, a moment after the host's: the host's cancellation of
		// the expired call can reach the skill first. Which code the
		// skill's clock gives is checked in package sdk.
		{name: "deadline", deadline: true, wantErr: context.DeadlineExceeded, wantCodes: []string{"timeout", "cancelled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A deadline can pass before the request reaches the skill's
			// handler, which then never runs: try again with a longer one
			// until the handler was running when the deadline passed.
			timeout := 100 * time.Millisecond
			for attempt := 1; ; attempt++ {
				logs := new(logBuffer)
				h := skilltest.StartWithOptions(t, skilltest.Build(t, echoDir), skilltest.Options{Logger: logs.logger()})
				ctx, cancel := context.WithCancel(t.Context())
				if tt.deadline {
					ctx, cancel = context.WithTimeout(t.Context(), timeout)
				}
				running := false
				_, err := h.HandleStream(ctx, &protocol.Request{Intent: "test/block"}, func(protocol.Status) {
					running = true
					if !tt.deadline {
						cancel()
					}
				})
				cancel()
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want an error wrapping %v", err, tt.wantErr)
				}
				if !running {
					h.Close()
					if attempt == 8 {
						t.Fatalf("the handler never ran before the request ended, after %d attempts", attempt)
					}
					timeout *= 2
					continue
				}
				logtest.Eventually(t, fmt.Sprintf("the skill to log the request's end with code %q", tt.wantCodes), func() bool {
					return logs.find(func(e logEntry) bool {
						return e.Message == "request failed" && e.str("intent") == "test/block" && slices.Contains(tt.wantCodes, e.str("code"))
					})
				}, &logs.Buffer)
				return
			}
		})
	}
}

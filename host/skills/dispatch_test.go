package skills

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
)

func request(intent, params string) *protocol.Request {
	r := &protocol.Request{Intent: intent}
	if params != "" {
		r.Parameters = json.RawMessage(params)
	}
	return r
}

// statusLog collects the STATUS events of one dispatch.
type statusLog struct {
	mu   sync.Mutex
	list []protocol.Status
}

func (l *statusLog) add(st protocol.Status) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, st)
}

func (l *statusLog) get() []protocol.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list)
}

func dispatch(t testing.TB, h *testHost, req *protocol.Request, onStatus func(protocol.Status)) protocol.Payload {
	t.Helper()
	return dispatchCtx(t.Context(), t, h, req, onStatus)
}

func dispatchCtx(ctx context.Context, t testing.TB, h *testHost, req *protocol.Request, onStatus func(protocol.Status)) protocol.Payload {
	t.Helper()
	p, err := h.Dispatch(ctx, req, DispatchMeta{SessionID: "s1", Peer: "peer"}, onStatus)
	if err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	return p
}

func wantResponse(t testing.TB, p protocol.Payload) *protocol.Response {
	t.Helper()
	resp, ok := p.(*protocol.Response)
	if !ok {
		t.Fatalf("got %T %+v, want a RESPONSE", p, p)
	}
	return resp
}

func wantError(t testing.TB, p protocol.Payload, code protocol.ErrorCode) *protocol.ErrorPayload {
	t.Helper()
	e, ok := p.(*protocol.ErrorPayload)
	if !ok {
		t.Fatalf("got %T %+v, want an ERROR %s", p, p, code)
	}
	if e.Code != code {
		t.Fatalf("got ERROR %s (%s), want %s", e.Code, e.Message, code)
	}
	return e
}

func resultText(t testing.TB, resp *protocol.Response) string {
	t.Helper()
	var r struct{ Text string }
	if err := json.Unmarshal(resp.Results, &r); err != nil {
		t.Fatalf("results %s: %v", resp.Results, err)
	}
	return r.Text
}

// countFile configures testskill to count its test/echo calls in a file
// and returns a function that reads the count.
func countFile(t testing.TB, h *testHost) func() int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "calls")
	v, err := json.Marshal(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetConfig(t.Context(), "testskill", map[string]json.RawMessage{"count_file": v}); err != nil {
		t.Fatal(err)
	}
	return func() int {
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(data), "\n")
	}
}

func TestDispatchStatusThenResponse(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	h.install(t, "testskill")
	var statuses statusLog
	p := dispatch(t, h, request("test/echo", `{"text":"hi","progress":true}`), statuses.add)
	resp := wantResponse(t, p)
	got := statuses.get()
	if len(got) != 2 || got[0].Progress != 0.25 || got[0].Message != "echoing" || got[1].Progress != 0.75 {
		t.Errorf("statuses = %+v, want 0.25 echoing then 0.75 almost, all before the RESPONSE", got)
	}
	if resp.Status != protocol.ResponseSuccess || resultText(t, resp) != "hi" {
		t.Errorf("response = %+v %s", resp, resp.Results)
	}
	if resp.Schema != "x-test/echo-result/v1" {
		t.Errorf("schema = %q, want the capability's response schema", resp.Schema)
	}
	if resp.CompletedAt.IsZero() || resp.ProcessingTimeMS < 0 {
		t.Errorf("completed_at = %v, processing_time_ms = %d", resp.CompletedAt, resp.ProcessingTimeMS)
	}
	if err := resp.Validate(); err != nil {
		t.Errorf("response does not validate: %v", err)
	}
	info, err := h.Info("testskill")
	if err != nil {
		t.Fatal(err)
	}
	if info.State != StateRunning || info.PID == 0 {
		t.Errorf("after a request the skill is %s (pid %d), want running and warm", info.State, info.PID)
	}
	// The plugin stays warm: a second request reaches the same process.
	wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"again"}`), nil))
	if again, _ := h.Info("testskill"); again.PID != info.PID {
		t.Errorf("pid changed from %d to %d between requests", info.PID, again.PID)
	}
}

func TestDispatchStrictInvalidNeverReachesSkill(t *testing.T) {
	t.Parallel()
	h := newTestHost(t, withMode(schema.ModeStrict))
	h.install(t, "testskill")
	calls := countFile(t, h)
	wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"ok"}`), nil))
	if got := calls(); got != 1 {
		t.Fatalf("calls = %d after a valid request, want 1", got)
	}
	tests := []struct {
		name   string
		params string
		paths  []string
	}{
		{"every error", `{"text":"` + strings.Repeat("x", 17) + `","n":0}`, []string{"/text", "/n"}},
		{"missing member", `{"n":2}`, []string{"/text"}},
		{"wrong type", `{"text":7}`, []string{"/text"}},
		{"no parameters", ``, []string{"/text"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var statuses statusLog
			e := wantError(t, dispatch(t, h, request("test/echo", tt.params), statuses.add), protocol.CodeSchemaValidationFailed)
			var details schema.Details
			if err := json.Unmarshal(e.Details, &details); err != nil {
				t.Fatalf("details %s: %v", e.Details, err)
			}
			var paths []string
			for _, fe := range details.Errors {
				paths = append(paths, fe.Path)
			}
			for _, p := range tt.paths {
				if !slices.Contains(paths, p) {
					t.Errorf("error paths %v do not include %s", paths, p)
				}
			}
			if details.Schema != "x-test/echo/v1" {
				t.Errorf("details schema = %q", details.Schema)
			}
			if got := statuses.get(); len(got) != 0 {
				t.Errorf("statuses = %v for a rejected request", got)
			}
		})
	}
	if got := calls(); got != 1 {
		t.Errorf("calls = %d, want 1: a request rejected in strict mode reached the skill", got)
	}
}

func TestDispatchWarningModeProcessesAndLogs(t *testing.T) {
	t.Parallel()
	h := newTestHost(t) // warning is the default mode
	h.install(t, "testskill")
	calls := countFile(t, h)
	long := strings.Repeat("y", 17)
	resp := wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"`+long+`","n":0}`), nil))
	if got := resultText(t, resp); got != long {
		t.Errorf("text = %q, want %q", got, long)
	}
	if got := calls(); got != 1 {
		t.Errorf("calls = %d, want 1: warning mode must process the request", got)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "does not match its schema") || !strings.Contains(logs, "/text") || !strings.Contains(logs, "/n") {
		t.Errorf("logs do not report the schema errors:\n%s", logs)
	}
}

func TestDispatchSilentModeSkipsValidation(t *testing.T) {
	t.Parallel()
	h := newTestHost(t, withMode(schema.ModeSilent))
	h.install(t, "testskill")
	wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"`+strings.Repeat("z", 17)+`"}`), nil))
	wantResponse(t, dispatch(t, h, request("test/bad-response", ``), nil))
	if strings.Contains(h.logs.String(), "does not match its schema") {
		t.Error("silent mode logged a schema error")
	}
}

func TestDispatchResponseSchema(t *testing.T) {
	t.Parallel()
	t.Run("strict", func(t *testing.T) {
		t.Parallel()
		h := newTestHost(t, withMode(schema.ModeStrict))
		h.install(t, "testskill")
		e := wantError(t, dispatch(t, h, request("test/bad-response", ``), nil), protocol.CodeInternalError)
		if !strings.Contains(e.Message, "x-test/echo-result/v1") || !strings.Contains(string(e.Details), `"/text"`) {
			t.Errorf("error = %s %s, want it to name the response schema and the path", e.Message, e.Details)
		}
	})
	t.Run("warning", func(t *testing.T) {
		t.Parallel()
		h := newTestHost(t)
		h.install(t, "testskill")
		resp := wantResponse(t, dispatch(t, h, request("test/bad-response", ``), nil))
		if string(resp.Results) != `{"text":7}` {
			t.Errorf("results = %s", resp.Results)
		}
		if !strings.Contains(h.logs.String(), "x-test/echo-result/v1") {
			t.Error("the invalid response was not logged")
		}
	})
}

func TestDispatchUnroutableRequests(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	h.install(t, "testskill")
	e := wantError(t, dispatch(t, h, request("travel/flights/search", `{}`), nil), protocol.CodeCapabilityNotSupported)
	if !strings.Contains(e.Message, "travel/flights/search") {
		t.Errorf("message = %q, want it to name the intent", e.Message)
	}
	e = wantError(t, dispatch(t, h, request("test/echo", `["not", "an", "object"]`), nil), protocol.CodeInvalidRequest)
	if !strings.Contains(e.Message, "parameters") {
		t.Errorf("message = %q, want it to name the parameters", e.Message)
	}
}

func TestDispatchTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	h := newTestHost(t, withOptions(func(o *Options) { o.RequestTimeout = timeout }))
	h.install(t, "testskill")
	// A cold start counts against the request timeout: start first.
	if err := h.Start(t.Context(), "testskill"); err != nil {
		t.Fatal(err)
	}
	before, _ := h.Info("testskill")

	t.Run("request timeout", func(t *testing.T) {
		e := wantError(t, dispatch(t, h, request("test/sleep", ``), nil), protocol.CodeTimeout)
		if !strings.Contains(e.Message, timeout.String()) {
			t.Errorf("message = %q, want it to give the timeout", e.Message)
		}
	})
	t.Run("caller's deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		wantError(t, dispatchCtx(ctx, t, h, request("test/sleep", ``), nil), protocol.CodeTimeout)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// Cancel once the skill reports it is sleeping.
		wantError(t, dispatchCtx(ctx, t, h, request("test/sleep", ``), func(protocol.Status) { cancel() }), protocol.CodeCancelled)
	})

	// None counts as a crash: the same process answers.
	wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"still"}`), nil))
	if after, _ := h.Info("testskill"); after.PID != before.PID || after.State != StateRunning {
		t.Errorf("after timeouts and a cancel: %s pid %d, want running pid %d", after.State, after.PID, before.PID)
	}
}

func TestDispatchNilRequestAndClosed(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	if _, err := h.Dispatch(t.Context(), nil, DispatchMeta{}, nil); err == nil {
		t.Error("Dispatch(nil) succeeded")
	}
	h.Close()
	if _, err := h.Dispatch(t.Context(), request("test/echo", `{}`), DispatchMeta{}, nil); err != ErrClosed {
		t.Errorf("Dispatch after Close: %v, want ErrClosed", err)
	}
}

func statusAt(progress float64) *skillpb.Status { return &skillpb.Status{Progress: progress} }

func TestStatusPumpDropsOldestWhenBehind(t *testing.T) {
	release := make(chan struct{})
	var got statusLog
	sp := newStatusPump(func(st protocol.Status) {
		<-release
		got.add(st)
	})
	for i := range maxQueuedStatus + 10 {
		sp.push(statusAt(float64(i) / 100))
	}
	close(release)
	dropped := sp.finish()
	list := got.get()
	if dropped == 0 || dropped+len(list) != maxQueuedStatus+10 {
		t.Fatalf("delivered %d, dropped %d, want %d in all with some dropped", len(list), dropped, maxQueuedStatus+10)
	}
	if last := list[len(list)-1].Progress; last != float64(maxQueuedStatus+9)/100 {
		t.Errorf("last delivered progress = %v, want the newest", last)
	}
	for i := 1; i < len(list); i++ {
		if list[i].Progress <= list[i-1].Progress {
			t.Fatalf("statuses out of order: %v", list)
		}
	}
}

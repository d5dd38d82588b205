package sdk

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"google.golang.org/grpc"
)

const testManifest = `{
  "name": "unit",
  "version": "0.1.0",
  "description": "Unit tests.",
  "protocol": "agentmesh/0.2",
  "binary": "unit",
  "capabilities": [{"intent": "unit/wait", "response_schema": "x-unit/r/v1"}, {"intent": "unit/params"}],
  "permissions": {}
}`

// fakeStream is the server side of a Handle stream, recording what the
// skill sends.
type fakeStream struct {
	grpc.ServerStream
	ctx     context.Context
	mu      sync.Mutex
	events  []*skillpb.HandleEvent
	sent    chan struct{} // receives a value per event
	sendErr error
}

func newFakeStream(ctx context.Context) *fakeStream {
	return &fakeStream{ctx: ctx, sent: make(chan struct{}, 100)}
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) Send(ev *skillpb.HandleEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return f.sendErr
	}
	f.events = append(f.events, ev)
	f.sent <- struct{}{}
	return nil
}

func (f *fakeStream) final(t *testing.T) *skillpb.HandleEvent {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) == 0 {
		t.Fatal("no events sent")
	}
	last := f.events[len(f.events)-1]
	if last.GetStatus() != nil {
		t.Fatalf("last event is a STATUS: %v", last)
	}
	for _, ev := range f.events[:len(f.events)-1] {
		if ev.GetStatus() == nil {
			t.Fatalf("final event before the last one: %v", f.events)
		}
	}
	return last
}

func newWaitSkill(t *testing.T) *Skill {
	t.Helper()
	s := New([]byte(testManifest))
	s.logOut.set(testLog{t})
	Handle(s, "unit/wait", func(ctx context.Context, req *Request[struct{}]) (struct{}, error) {
		req.Progress(0, "waiting")
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	})
	type params struct {
		N int `json:"n"`
	}
	Handle(s, "unit/params", func(ctx context.Context, req *Request[params]) (params, error) {
		return req.Params, nil
	})
	return s
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func handleReq(intent, raw string) *skillpb.HandleRequest {
	return &skillpb.HandleRequest{RequestId: "r1", Intent: intent, RequestJson: []byte(raw)}
}

func TestHandleContextEnds(t *testing.T) {
	tests := []struct {
		name     string
		end      func(context.CancelCauseFunc)
		wantCode protocol.ErrorCode
	}{
		{name: "host cancels", end: func(c context.CancelCauseFunc) { c(context.Canceled) }, wantCode: protocol.CodeCancelled},
		{name: "deadline passes", end: func(c context.CancelCauseFunc) { c(context.DeadlineExceeded) }, wantCode: protocol.CodeTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newWaitSkill(t)
			ctx, cancel := context.WithCancelCause(context.Background())
			stream := newFakeStream(ctx)
			done := make(chan error, 1)
			go func() { done <- (&server{s: s}).Handle(handleReq("unit/wait", `{"intent":"unit/wait"}`), stream) }()
			<-stream.sent // the handler is running
			tt.end(cancel)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			ev := stream.final(t).GetError()
			if got := protocol.ErrorCode(ev.GetCode()); got != tt.wantCode {
				t.Errorf("got %s (%s), want %s", got, ev.GetMessage(), tt.wantCode)
			}
		})
	}
}

func TestHandleRequestErrors(t *testing.T) {
	tests := []struct {
		name     string
		req      *skillpb.HandleRequest
		wantCode protocol.ErrorCode
		wantMsg  string
	}{
		{name: "request not JSON", req: handleReq("unit/params", `{`), wantCode: protocol.CodeInvalidRequest, wantMsg: "payload"},
		{name: "request without intent", req: handleReq("", `{"parameters":{}}`), wantCode: protocol.CodeInvalidRequest, wantMsg: "intent"},
		{name: "intents disagree", req: handleReq("unit/wait", `{"intent":"unit/params"}`), wantCode: protocol.CodeInvalidRequest, wantMsg: "does not match"},
		{name: "parameters not an object", req: handleReq("unit/params", `{"intent":"unit/params","parameters":[1]}`), wantCode: protocol.CodeInvalidRequest, wantMsg: "parameters"},
		{name: "bad parameter", req: handleReq("unit/params", `{"intent":"unit/params","parameters":{"n":"x"}}`), wantCode: protocol.CodeInvalidParameter, wantMsg: "parameters.n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newWaitSkill(t)
			stream := newFakeStream(context.Background())
			if err := (&server{s: s}).Handle(tt.req, stream); err != nil {
				t.Fatal(err)
			}
			ev := stream.final(t).GetError()
			if got := protocol.ErrorCode(ev.GetCode()); got != tt.wantCode {
				t.Errorf("got %s (%s), want %s", got, ev.GetMessage(), tt.wantCode)
			}
			if !strings.Contains(ev.GetMessage(), tt.wantMsg) {
				t.Errorf("got message %q, want it to contain %q", ev.GetMessage(), tt.wantMsg)
			}
		})
	}
}

func TestHandleResponse(t *testing.T) {
	s := newWaitSkill(t)
	stream := newFakeStream(context.Background())
	req := handleReq("", `{"type":"request","intent":"unit/params","parameters":{"n":4,"extra":true}}`)
	if err := (&server{s: s}).Handle(req, stream); err != nil {
		t.Fatal(err)
	}
	r := stream.final(t).GetResponse()
	if r == nil {
		t.Fatalf("got %v, want a RESPONSE", stream.events)
	}
	if got, want := string(r.GetResultsJson()), `{"n":4}`; got != want {
		t.Errorf("got results %s, want %s", got, want)
	}
	if r.GetStatus() != string(protocol.ResponseSuccess) || r.GetSchema() != "" {
		t.Errorf("got status %q schema %q", r.GetStatus(), r.GetSchema())
	}
}

func TestProgressAfterReturnIgnored(t *testing.T) {
	s := New([]byte(testManifest))
	s.logOut.set(testLog{t})
	var kept *Request[struct{}]
	Handle(s, "unit/wait", func(ctx context.Context, req *Request[struct{}]) (struct{}, error) {
		kept = req
		req.Progress(1.5, "over") // clamped
		return struct{}{}, nil
	})
	stream := newFakeStream(context.Background())
	if err := (&server{s: s}).Handle(handleReq("unit/wait", `{"intent":"unit/wait"}`), stream); err != nil {
		t.Fatal(err)
	}
	kept.Progress(0.5, "late")
	if got := len(stream.events); got != 2 {
		t.Fatalf("got %d events, want STATUS and RESPONSE", got)
	}
	if got := stream.events[0].GetStatus().GetProgress(); got != 1 {
		t.Errorf("got progress %v, want it clamped to 1", got)
	}
	if stream.final(t).GetResponse() == nil {
		t.Error("the last event is not the RESPONSE")
	}
}

func TestProgressOnPlainRequest(t *testing.T) {
	// A Request built by a unit test has no stream: Progress must not
	// panic.
	req := &Request[int]{Params: 1}
	req.Progress(0.5, "fine")
	req.Report(Status{Progress: 2})
}

func TestSendFailureStopsEvents(t *testing.T) {
	s := New([]byte(testManifest))
	s.logOut.set(testLog{t})
	calls := 0
	Handle(s, "unit/wait", func(ctx context.Context, req *Request[struct{}]) (struct{}, error) {
		req.Progress(0.1, "a")
		req.Progress(0.2, "b")
		calls++
		return struct{}{}, nil
	})
	stream := newFakeStream(context.Background())
	stream.sendErr = errors.New("host gone")
	if err := (&server{s: s}).Handle(handleReq("unit/wait", `{"intent":"unit/wait"}`), stream); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || len(stream.events) != 0 {
		t.Errorf("got %d calls and %d events", calls, len(stream.events))
	}
}

func TestDrain(t *testing.T) {
	s := newWaitSkill(t)
	stream := newFakeStream(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&server{s: s}).Handle(handleReq("unit/wait", `{"intent":"unit/wait"}`), stream) }()
	<-stream.sent
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n := s.drain(ctx); n != 1 {
		t.Errorf("drain saw %d requests in flight, want 1", n)
	}
	<-done
	ev := stream.final(t).GetError()
	if ev.GetCode() != string(protocol.CodeCancelled) || ev.GetMessage() != "skill is shutting down" {
		t.Errorf("got %v, want cancelled: skill is shutting down", ev)
	}
	late := newFakeStream(context.Background())
	if err := (&server{s: s}).Handle(handleReq("unit/params", `{"intent":"unit/params"}`), late); err != nil {
		t.Fatal(err)
	}
	if got := late.final(t).GetError().GetCode(); got != string(protocol.CodeUnavailable) {
		t.Errorf("request while draining: got %s, want unavailable", got)
	}
}

func TestHandlePanics(t *testing.T) {
	noop := func(ctx context.Context, req *Request[struct{}]) (struct{}, error) { return struct{}{}, nil }
	tests := []struct {
		name string
		do   func(s *Skill)
		want string
	}{
		{name: "undeclared intent", do: func(s *Skill) { Handle(s, "unit/other", noop) }, want: "not declared"},
		{name: "registered twice", do: func(s *Skill) { Handle(s, "unit/wait", noop); Handle(s, "unit/wait", noop) }, want: "twice"},
		{name: "nil handler", do: func(s *Skill) { Handle[struct{}, struct{}](s, "unit/wait", nil) }, want: "nil handler"},
		{name: "after serving", do: func(s *Skill) { s.PluginForTest(nil); Handle(s, "unit/wait", noop) }, want: "after the skill started"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tt.want) {
					t.Errorf("got panic %q, want one containing %q", msg, tt.want)
				}
			}()
			tt.do(New([]byte(testManifest)))
		})
	}
}

package skills

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
)

// DispatchMeta says where a REQUEST comes from.
type DispatchMeta struct {
	// SessionID is the session the REQUEST arrived on; empty for local
	// calls.
	SessionID string
	// Peer is the AMID of the agent that sent it; empty for local calls.
	Peer string
	// Schema is the schema id its message declared; empty for none. The
	// parameters are validated against the capability's schema, not this
	// one (checking the message against its own schema is the session
	// layer's work); the skill is told this id when the capability names
	// no schema.
	Schema string
}

// errRequestTimeout is the cause of a Dispatch context that ran out of
// Options.RequestTimeout.
var errRequestTimeout = errors.New("request timeout")

// maxRouteAttempts bounds how often Dispatch looks an intent up again
// because its skill was replaced or removed meanwhile.
const maxRouteAttempts = 3

// Dispatch hands the REQUEST req to the enabled skill that declares its
// intent and returns the answer to send back: a *protocol.Response or a
// *protocol.ErrorPayload. onStatus, when not nil, receives the skill's
// STATUS events as they come, in order, all before Dispatch returns; it
// runs on another goroutine and should return promptly (when it falls
// behind, the oldest undelivered STATUS is dropped).
//
// Before the skill sees anything, the parameters are validated against the
// capability's schema in the catalogue's mode: in strict mode a failure is
// the ERROR schema_validation_failed listing every error's path, and the
// skill is not called. After it answers, RESPONSE results are validated
// against the capability's response_schema in the same way; a strict
// failure is the ERROR internal_error. A RESPONSE carries
// processing_time_ms (from the call of Dispatch), completed_at and schema.
//
// Failures become ERROR payloads too: a malformed req is invalid_request;
// an intent no enabled skill declares is capability_not_supported; a skill that does not answer within
// Options.RequestTimeout or a deadline of ctx is timeout; a cancelled ctx
// is cancelled; a plugin that crashes during the request is internal_error
// (and the plugin restarts); a quarantined skill is service_unavailable
// with the reason. The error is non-nil only when req is nil or the
// Manager is closed.
func (m *Manager) Dispatch(ctx context.Context, req *protocol.Request, meta DispatchMeta, onStatus func(protocol.Status)) (protocol.Payload, error) {
	if req == nil {
		return nil, errors.New("skills: Dispatch: nil request")
	}
	if m.isClosed() {
		return nil, ErrClosed
	}
	start := time.Now()
	if err := req.Validate(); err != nil {
		return errorPayload(protocol.CodeInvalidRequest, "%v", err), nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, m.opts.RequestTimeout, errRequestTimeout)
	defer cancel()
	m.maybeReload(ctx)
	for attempt := 1; ; attempt++ {
		r, ok := m.route(req.Intent)
		if !ok {
			return errorPayload(protocol.CodeCapabilityNotSupported, "no skill handles intent %q", truncate(req.Intent)), nil
		}
		p, err := m.dispatchTo(ctx, r, req, meta, onStatus, start)
		if errors.Is(err, errRetired) && attempt < maxRouteAttempts {
			continue
		}
		if errors.Is(err, ErrClosed) || (err != nil && m.isClosed()) {
			return nil, ErrClosed
		}
		if err != nil {
			return m.failure(ctx, r, err), nil
		}
		return p, nil
	}
}

func (m *Manager) route(intent string) (route, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.routes[intent]
	return r, ok
}

// dispatchTo runs req on the skill of r. An error is a failure before the
// skill answered, turned into an ERROR by failure.
func (m *Manager) dispatchTo(ctx context.Context, r route, req *protocol.Request, meta DispatchMeta, onStatus func(protocol.Status), start time.Time) (protocol.Payload, error) {
	params := req.Parameters
	if params == nil {
		params = json.RawMessage("{}")
	}
	if r.cap.Schema != "" {
		_, err := m.cat.ValidateJSON(ctx, r.cap.Schema, params)
		var verr *schema.ValidationError
		switch {
		case errors.As(err, &verr):
			return verr.Payload(), nil
		case err != nil && ctx.Err() == nil:
			return errorPayload(protocol.CodeInvalidRequest, "parameters are not valid JSON"), nil
		case err != nil:
			return nil, err
		}
	}
	reqJSON, err := req.MarshalJSON()
	if err != nil {
		return errorPayload(protocol.CodeInvalidRequest, "the request cannot be encoded"), nil
	}
	p, err := r.sk.sup.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer p.release()

	declared := meta.Schema
	if r.cap.Schema != "" {
		declared = r.cap.Schema
	}
	hreq := &skillpb.HandleRequest{
		RequestId:   rand.Text(),
		SessionId:   meta.SessionID,
		PeerAmid:    meta.Peer,
		Intent:      req.Intent,
		RequestJson: reqJSON,
		Schema:      declared,
	}
	pump := newStatusPump(onStatus)
	ev, err := p.conn.handle(ctx, hreq, pump.push)
	if dropped := pump.finish(); dropped > 0 {
		m.log.Debug("dropped STATUS events a slow consumer had not taken", "skill", r.sk.name, "dropped", dropped)
	}
	if err != nil {
		if ctx.Err() == nil && status.Code(err) == codes.DeadlineExceeded {
			// The deadline travels to the skill, whose copy can fire a
			// moment before ours: the request timed out. Only our own
			// deadline is ever sent, so ctx ends at once (or, for a skill
			// that claims a deadline it was not given, at the latest when
			// the request timeout passes).
			<-ctx.Done()
		}
		if ctx.Err() == nil && !m.isClosed() {
			crashed := r.sk.sup.failed(p, err, pingTimeout)
			m.log.Error("skill failed during a request", "skill", r.sk.name, "intent", req.Intent, "crashed", crashed, "error", err)
			return errorPayload(protocol.CodeInternalError, "skill %s failed while handling the request", r.sk.name), nil
		}
		return nil, err
	}
	switch e := ev.GetEvent().(type) {
	case *skillpb.HandleEvent_Response:
		return m.response(ctx, r, e.Response, meta, start), nil
	case *skillpb.HandleEvent_Error:
		return m.skillError(r, e.Error), nil
	}
	return errorPayload(protocol.CodeInternalError, "skill %s sent no answer", r.sk.name), nil
}

// failure turns an error that stopped a REQUEST before the skill answered
// into the ERROR for the peer.
func (m *Manager) failure(ctx context.Context, r route, err error) *protocol.ErrorPayload {
	switch {
	case errors.Is(context.Cause(ctx), errRequestTimeout):
		return errorPayload(protocol.CodeTimeout, "skill %s did not answer within %v", r.sk.name, m.opts.RequestTimeout)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return errorPayload(protocol.CodeTimeout, "skill %s did not answer before the deadline", r.sk.name)
	case errors.Is(ctx.Err(), context.Canceled):
		return errorPayload(protocol.CodeCancelled, "the request was cancelled")
	case errors.Is(err, ErrQuarantined):
		return errorPayload(protocol.CodeServiceUnavailable, "skill %s is quarantined: %s", r.sk.name, r.sk.sup.quarantinedFor())
	case errors.Is(err, ErrDisabled), errors.Is(err, errRetired):
		return errorPayload(protocol.CodeCapabilityNotSupported, "skill %s is not available", r.sk.name)
	}
	m.log.Error("skill unavailable", "skill", r.sk.name, "error", err)
	return errorPayload(protocol.CodeServiceUnavailable, "skill %s is unavailable", r.sk.name)
}

// response builds the RESPONSE from the skill's, after validating its
// results against the capability's response schema.
func (m *Manager) response(ctx context.Context, r route, resp *skillpb.Response, meta DispatchMeta, start time.Time) protocol.Payload {
	var results json.RawMessage
	if len(resp.GetResultsJson()) > 0 {
		results = json.RawMessage(resp.GetResultsJson())
	}
	if id := r.cap.ResponseSchema; id != "" && results != nil {
		// The answer is complete: validate it even if ctx ended meanwhile.
		_, err := m.cat.ValidateJSON(context.WithoutCancel(ctx), id, results)
		var verr *schema.ValidationError
		switch {
		case errors.As(err, &verr):
			e := verr.Payload()
			e.Code = protocol.CodeInternalError
			e.Message = fmt.Sprintf("the response of skill %s does not match schema %s: %d errors", r.sk.name, id, len(verr.Errors))
			return e
		case err != nil:
			m.log.Error("skill sent results that are not JSON", "skill", r.sk.name, "error", err)
			return errorPayload(protocol.CodeInternalError, "skill %s sent malformed results", r.sk.name)
		}
	}
	out := &protocol.Response{
		Status:           protocol.ResponseStatus(resp.GetStatus()),
		Results:          results,
		ProcessingTimeMS: time.Since(start).Milliseconds(),
		CompletedAt:      time.Now().UTC(),
		Schema:           firstNonEmpty(r.cap.ResponseSchema, resp.GetSchema(), r.cap.Schema, meta.Schema),
	}
	if err := out.Validate(); err != nil {
		m.log.Error("skill sent a malformed response", "skill", r.sk.name, "error", err)
		return errorPayload(protocol.CodeInternalError, "skill %s sent a malformed response", r.sk.name)
	}
	return out
}

// skillError builds the ERROR from the skill's.
func (m *Manager) skillError(r route, e *skillpb.Error) protocol.Payload {
	out := &protocol.ErrorPayload{
		Code:    protocol.NormalizeErrorCode(e.GetCode()),
		Message: e.GetMessage(),
	}
	if d := e.GetDetailsJson(); len(d) > 0 {
		out.Details = json.RawMessage(d)
	}
	if e.RetryAfterSeconds != nil {
		secs := int(min(e.GetRetryAfterSeconds(), math.MaxInt32))
		out.RetryAfterSeconds = &secs
	}
	if err := out.Validate(); err != nil {
		m.log.Error("skill sent a malformed error", "skill", r.sk.name, "error", err)
		return errorPayload(protocol.CodeInternalError, "skill %s sent a malformed error", r.sk.name)
	}
	return out
}

func errorPayload(code protocol.ErrorCode, format string, args ...any) *protocol.ErrorPayload {
	return &protocol.ErrorPayload{Code: code, Message: fmt.Sprintf(format, args...)}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// maxQueuedStatus bounds the STATUS events waiting for a slow consumer.
const maxQueuedStatus = 32

// statusPump hands STATUS events from the skill's stream to the
// consumer's callback without ever blocking the stream: events queue, and
// when maxQueuedStatus wait, the oldest is dropped (a newer STATUS
// supersedes it) and counted. The delivering goroutine starts with the
// first event.
type statusPump struct {
	deliver func(protocol.Status)

	mu      sync.Mutex
	queue   []protocol.Status
	dropped int
	closed  bool
	running bool
	wake    chan struct{}
	done    chan struct{}
}

func newStatusPump(deliver func(protocol.Status)) *statusPump {
	return &statusPump{deliver: deliver}
}

// push queues one STATUS from the skill. An event whose progress is not a
// number in [0, 1] is clamped; a negative ETA is dropped.
func (sp *statusPump) push(st *skillpb.Status) {
	if sp.deliver == nil || st == nil {
		return
	}
	out := protocol.Status{Progress: st.GetProgress(), Message: st.GetMessage(), Phase: st.GetPhase()}
	switch {
	case math.IsNaN(out.Progress) || out.Progress < 0:
		out.Progress = 0
	case out.Progress > 1:
		out.Progress = 1
	}
	if st.EtaSeconds != nil {
		if eta := st.GetEtaSeconds(); eta >= 0 && !math.IsInf(eta, 0) {
			out.EstimatedCompletionSeconds = &eta
		}
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return
	}
	if len(sp.queue) == maxQueuedStatus {
		sp.queue = sp.queue[1:]
		sp.dropped++
	}
	sp.queue = append(sp.queue, out)
	if !sp.running {
		sp.running = true
		sp.wake = make(chan struct{}, 1)
		sp.done = make(chan struct{})
		go sp.run()
	}
	select {
	case sp.wake <- struct{}{}:
	default:
	}
}

func (sp *statusPump) run() {
	defer close(sp.done)
	for range sp.wake {
		for {
			sp.mu.Lock()
			if len(sp.queue) == 0 {
				closed := sp.closed
				sp.mu.Unlock()
				if closed {
					return
				}
				break
			}
			st := sp.queue[0]
			sp.queue = sp.queue[1:]
			sp.mu.Unlock()
			sp.deliver(st)
		}
	}
}

// finish waits until every queued STATUS is delivered, stops the pump and
// returns how many were dropped.
func (sp *statusPump) finish() int {
	sp.mu.Lock()
	sp.closed = true
	running := sp.running
	if running {
		select {
		case sp.wake <- struct{}{}:
		default:
		}
	}
	dropped := sp.dropped
	sp.mu.Unlock()
	if running {
		<-sp.done
	}
	return dropped
}

package sdk

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// server serves the Skill service of package skillrpc for a Skill.
type server struct {
	skillpb.UnimplementedSkillServer
	s *Skill
}

func (srv *server) Describe(context.Context, *skillpb.DescribeRequest) (*skillpb.DescribeResponse, error) {
	s := srv.s
	return &skillpb.DescribeResponse{ManifestJson: s.raw, ManifestSha256: s.sum, SdkVersion: Version}, nil
}

func (srv *server) Configure(_ context.Context, req *skillpb.ConfigureRequest) (*skillpb.ConfigureResponse, error) {
	s := srv.s
	level := hclog.NoLevel
	if req.GetLogLevel() != "" {
		if level = hclog.LevelFromString(req.GetLogLevel()); level == hclog.NoLevel {
			return nil, status.Errorf(codes.InvalidArgument, "log_level: %q is not trace, debug, info, warn or error", req.GetLogLevel())
		}
	}
	if err := s.config.set(req.GetConfigJson()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if level != hclog.NoLevel {
		s.log.SetLevel(level)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hostCloser != nil {
		s.hostCloser.Close()
		s.host, s.hostCloser = nil, nil
	}
	s.hostID = req.GetHostServicesBrokerId()
	s.granted = slices.Clone(req.GetGrantedHostApi())
	return &skillpb.ConfigureResponse{}, nil
}

func (srv *server) Handle(hr *skillpb.HandleRequest, stream grpc.ServerStreamingServer[skillpb.HandleEvent]) error {
	s := srv.s
	c := &call{stream: stream, base: s.log, intent: hr.GetIntent(), requestID: hr.GetRequestId()}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	if !s.track(c, cancel) {
		c.send(errorEv(protocol.CodeUnavailable, errShuttingDown.Error()), true)
		return nil
	}
	defer s.untrack(c)
	c.send(s.serve(withCall(ctx, c), c, hr), true)
	return nil
}

func (srv *server) Shutdown(ctx context.Context, _ *skillpb.ShutdownRequest) (*skillpb.ShutdownResponse, error) {
	srv.s.drain(ctx)
	return &skillpb.ShutdownResponse{}, nil
}

// serve runs the handler of one REQUEST and returns the final event.
func (s *Skill) serve(ctx context.Context, c *call, hr *skillpb.HandleRequest) (final *skillpb.HandleEvent) {
	p, err := protocol.ParsePayload(protocol.PayloadRequest, hr.GetRequestJson())
	if err != nil {
		return errorEv(protocol.CodeInvalidRequest, err.Error())
	}
	pr := p.(*protocol.Request)
	if hr.GetIntent() != "" && hr.GetIntent() != pr.Intent {
		return errorEv(protocol.CodeInvalidRequest, fmt.Sprintf("intent %q does not match the REQUEST's intent %q", hr.GetIntent(), pr.Intent))
	}
	h, ok := s.handlers[pr.Intent]
	if !ok {
		return errorEv(protocol.CodeCapabilityNotSupported, fmt.Sprintf("skill %s does not handle intent %q", s.manifest.Name, pr.Intent))
	}
	defer func() {
		// A panicking handler fails its own request only: the skill goes
		// on serving the others.
		if v := recover(); v != nil {
			c.logger().Error("handler panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			final = errorEv(protocol.CodeInternalError, genericInternal)
		}
	}()
	results, st, err := h(ctx, c, hr, pr)
	if err != nil {
		ev, logIt := errorEvent(ctx, err)
		if logIt {
			c.logger().Error("request failed", "error", err)
		} else {
			c.logger().Debug("request failed", "code", ev.GetCode(), "error", err)
		}
		return &skillpb.HandleEvent{Event: &skillpb.HandleEvent_Error{Error: ev}}
	}
	capability, _ := s.manifest.Capability(pr.Intent)
	return &skillpb.HandleEvent{Event: &skillpb.HandleEvent_Response{Response: &skillpb.Response{
		Status:      string(st),
		ResultsJson: results,
		Schema:      capability.ResponseSchema,
	}}}
}

func errorEv(code protocol.ErrorCode, msg string) *skillpb.HandleEvent {
	return &skillpb.HandleEvent{Event: &skillpb.HandleEvent_Error{Error: &skillpb.Error{Code: string(code), Message: msg}}}
}

// track records a request in flight; it reports false when the skill is
// shutting down and takes no more requests.
func (s *Skill) track(c *call, cancel context.CancelCauseFunc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.inflight[c] = cancel
	s.wg.Add(1)
	return true
}

func (s *Skill) untrack(c *call) {
	s.mu.Lock()
	delete(s.inflight, c)
	s.mu.Unlock()
	s.wg.Done()
}

// drain stops taking requests, lets those in flight finish until ctx ends,
// then cancels the rest and waits for them. It returns how many requests
// were in flight when it began.
func (s *Skill) drain(ctx context.Context) int {
	s.mu.Lock()
	s.draining = true
	n := len(s.inflight)
	s.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		// No request is tracked after draining is set, so this Wait
		// cannot race with an Add.
		s.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return n
	case <-ctx.Done():
	}
	s.mu.Lock()
	for _, cancel := range s.inflight {
		cancel(errShuttingDown)
	}
	s.mu.Unlock()
	select {
	case <-idle:
	case <-stopTimeout():
		s.log.Warn("requests still running after being cancelled")
	}
	return n
}

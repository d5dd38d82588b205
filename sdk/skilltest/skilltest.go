// Package skilltest tests AgentMesh skills written with package sdk.
//
// [Run] serves a skill in-process over a real gRPC connection, which is
// quick and lets a test reach the skill's Go values. [Build] and [Start]
// build the skill's binary and run it the way a host does: a separate
// process, the go-plugin handshake, mutual TLS, the binary's SHA-256
// checked before it starts, and its logs read from its stderr. Both give
// a [Harness] that sends REQUESTs and collects the STATUS events and the
// RESPONSE or ERROR. [ReplayExamples] runs the examples of skill.json.
//
//	func TestSkill(t *testing.T) {
//		h := skilltest.Start(t, skilltest.Build(t, "."))
//		skilltest.ReplayExamples(t, h)
//	}
package skilltest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Options configures a Harness. The zero value is a harness that sends the
// skill no configuration values (it uses its defaults), grants no host
// service and logs to the test's log.
type Options struct {
	// Logger, for a skill started with Start, receives go-plugin's logs
	// and the skill's logs at their own level, as a host's logger does;
	// nil means the test's log.
	Logger hclog.Logger
	// Config is marshalled with encoding/json into the configuration
	// values sent to the skill at start; nil sends none.
	Config any
	// HostServices, when set, is served to the skill as the host services,
	// limited to the names in GrantHostAPI.
	HostServices skillpb.HostServicesServer
	// GrantHostAPI lists the host services granted to the skill.
	GrantHostAPI []string
}

// Harness drives one running skill. Its methods are safe for concurrent
// use. It is closed when the test ends.
type Harness struct {
	t      testing.TB
	client *skillrpc.Client
	pid    int
	exited func() bool
	close  func()
	once   sync.Once
	nextID atomic.Uint64
}

// Run serves s in-process and returns a harness connected to it over a
// real gRPC connection. The skill's logs go to the test's log.
func Run(t testing.TB, s *sdk.Skill) *Harness {
	t.Helper()
	return RunWithOptions(t, s, Options{})
}

// RunWithOptions is Run with options. opts.Logger is not used: in-process,
// the skill's logs go to the test's log.
func RunWithOptions(t testing.TB, s *sdk.Skill, opts Options) *Harness {
	t.Helper()
	out := &testWriter{t: t}
	p, ok := s.PluginForTest(out).(plugin.Plugin)
	if !ok {
		t.Fatal("skilltest: the sdk does not provide a go-plugin plugin")
	}
	gc, gs := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{skillrpc.PluginName: p})
	c, err := skillrpc.Dispense(gc)
	if err != nil {
		t.Fatalf("skilltest: %v", err)
	}
	h := &Harness{t: t, client: c, close: func() {
		// Closing the client stops the server through go-plugin's
		// controller; wait for it rather than stopping it twice.
		gc.Close()
		<-gs.DoneCh
		out.stop()
	}}
	t.Cleanup(h.Close)
	h.configure(opts)
	return h
}

// Start starts the skill binary the way a host does and returns a harness
// connected to it. The skill's logs go to the test's log.
func Start(t testing.TB, binary string) *Harness {
	t.Helper()
	return StartWithOptions(t, binary, Options{})
}

// StartWithOptions is Start with options.
func StartWithOptions(t testing.TB, binary string, opts Options) *Harness {
	t.Helper()
	out := &testWriter{t: t}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Debug, Output: out})
	}
	sum, err := fileSHA256(binary)
	if err != nil {
		t.Fatalf("skilltest: %v", err)
	}
	cfg := skillrpc.ClientConfig(exec.Command(binary), sum, logger)
	cfg.Managed = false
	pc := plugin.NewClient(cfg)
	h := &Harness{t: t, exited: pc.Exited, close: func() {
		pc.Kill()
		out.stop()
	}}
	t.Cleanup(h.Close)
	rpc, err := pc.Client()
	if err != nil {
		t.Fatalf("skilltest: start %s: %v", binary, err)
	}
	if h.client, err = skillrpc.Dispense(rpc); err != nil {
		t.Fatalf("skilltest: %v", err)
	}
	if rc := pc.ReattachConfig(); rc != nil {
		h.pid = rc.Pid
	}
	h.configure(opts)
	return h
}

func (h *Harness) configure(opts Options) {
	h.t.Helper()
	var id uint32
	if opts.HostServices != nil {
		id = skillrpc.ServeHostServices(h.client.Broker(), opts.HostServices, opts.GrantHostAPI)
	}
	req := &skillpb.ConfigureRequest{HostServicesBrokerId: id, GrantedHostApi: opts.GrantHostAPI, LogLevel: "debug"}
	if opts.Config != nil {
		b, err := json.Marshal(opts.Config)
		if err != nil {
			h.t.Fatalf("skilltest: marshal Options.Config: %v", err)
		}
		req.ConfigJson = b
	}
	if err := h.client.Configure(context.Background(), req); err != nil {
		h.t.Fatalf("skilltest: %v", err)
	}
}

// Close stops the skill. It is called when the test ends; calling it
// earlier is allowed.
func (h *Harness) Close() { h.once.Do(h.close) }

// Exited reports whether the process of a skill started with Start has
// exited; false for one served in-process.
func (h *Harness) Exited() bool { return h.exited != nil && h.exited() }

// PID returns the process id of a skill started with Start; 0 for one
// served in-process.
func (h *Harness) PID() int { return h.pid }

// Description is what a skill says about itself.
type Description struct {
	// Manifest is the skill.json the skill was built with.
	Manifest []byte
	// ManifestSHA256 is the hex SHA-256 of Manifest.
	ManifestSHA256 string
	// SDKVersion is the version of package sdk the skill was built with.
	SDKVersion string
}

// Describe asks the skill for its manifest.
func (h *Harness) Describe(ctx context.Context) (*Description, error) {
	d, err := h.client.Describe(ctx)
	if err != nil {
		return nil, err
	}
	return &Description{Manifest: d.GetManifestJson(), ManifestSHA256: d.GetManifestSha256(), SDKVersion: d.GetSdkVersion()}, nil
}

// Configure sends the skill new configuration values: values is
// marshalled with encoding/json into a JSON object of option values. The
// skill rejects an undeclared option or a value of the wrong type.
func (h *Harness) Configure(ctx context.Context, values any) error {
	b, err := json.Marshal(values)
	if err != nil {
		return fmt.Errorf("marshal configuration: %w", err)
	}
	return h.client.Configure(ctx, &skillpb.ConfigureRequest{ConfigJson: b, LogLevel: "debug"})
}

// ConfigureLogLevel asks the skill to log at level (trace, debug, info,
// warn or error) and above, as a host does to match its own logger. It
// also resets the configuration values to the defaults.
func (h *Harness) ConfigureLogLevel(ctx context.Context, level string) error {
	return h.client.Configure(ctx, &skillpb.ConfigureRequest{LogLevel: level})
}

// Shutdown asks the skill to stop as a host does before stopping it: the
// skill refuses new requests, lets those in flight finish until ctx ends
// and then cancels them.
func (h *Harness) Shutdown(ctx context.Context) error { return h.client.Shutdown(ctx) }

// Result is the outcome of one REQUEST: the STATUS events in order, then
// exactly one of Response and Error.
type Result struct {
	Statuses []protocol.Status
	Response *protocol.Response
	Error    *protocol.ErrorPayload
}

// Handle sends a REQUEST for intent with params, marshalled with
// encoding/json, as its parameters (nil for none). The error is non-nil
// only when neither a RESPONSE nor an ERROR arrived; when ctx ended first
// it wraps ctx.Err().
func (h *Harness) Handle(ctx context.Context, intent string, params any) (*Result, error) {
	req := &protocol.Request{Intent: intent}
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return nil, fmt.Errorf("marshal parameters: %w", err)
		}
		req.Parameters = b
	}
	return h.HandleRequest(ctx, req)
}

// HandleRequest sends req, which may set every member of a REQUEST.
func (h *Harness) HandleRequest(ctx context.Context, req *protocol.Request) (*Result, error) {
	return h.HandleStream(ctx, req, nil)
}

// HandleStream is HandleRequest that also calls onStatus, when not nil,
// with each STATUS event as it arrives, on the calling goroutine.
func (h *Harness) HandleStream(ctx context.Context, req *protocol.Request, onStatus func(protocol.Status)) (*Result, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("marshal request: %w", err)
	}
	res := new(Result)
	start := time.Now()
	ev, err := h.client.Handle(ctx, &skillpb.HandleRequest{
		RequestId:   "skilltest-" + strconv.FormatUint(h.nextID.Add(1), 10),
		Intent:      req.Intent,
		RequestJson: raw,
	}, func(st *skillpb.Status) {
		ps := protocol.Status{
			Progress:                   st.GetProgress(),
			Message:                    st.GetMessage(),
			Phase:                      st.GetPhase(),
			EstimatedCompletionSeconds: st.EtaSeconds,
		}
		res.Statuses = append(res.Statuses, ps)
		if onStatus != nil {
			onStatus(ps)
		}
	})
	if err != nil {
		return nil, err
	}
	if r := ev.GetResponse(); r != nil {
		res.Response = &protocol.Response{
			Status:           protocol.ResponseStatus(r.GetStatus()),
			Results:          r.GetResultsJson(),
			ProcessingTimeMS: time.Since(start).Milliseconds(),
			CompletedAt:      time.Now().UTC(),
			Schema:           r.GetSchema(),
		}
		return res, nil
	}
	e := ev.GetError()
	res.Error = &protocol.ErrorPayload{
		Code:    protocol.ErrorCode(e.GetCode()),
		Message: e.GetMessage(),
		Details: e.GetDetailsJson(),
	}
	if e.RetryAfterSeconds != nil {
		secs := int(e.GetRetryAfterSeconds())
		res.Error.RetryAfterSeconds = &secs
	}
	return res, nil
}

// testWriter writes to the test's log until stopped, after which it
// drops what it gets (a test's log must not be written after the test).
type testWriter struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(string(trimNewline(p)))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

func trimNewline(p []byte) []byte {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		return p[:n-1]
	}
	return p
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

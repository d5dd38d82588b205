package sdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Version is the version of the SDK, reported to the host by every skill
// built with it.
const Version = "0.2.0"

// Skill is a skill being assembled and then served: create it with New,
// register handlers with Handle, and run it with Main or Serve.
type Skill struct {
	manifest *Manifest
	raw      []byte // skill.json as embedded
	sum      string // hex SHA-256 of raw
	logOut   *swapWriter
	log      hclog.Logger
	config   *Config

	handlers map[string]handler // written before serving only

	mu         sync.Mutex
	serving    bool
	draining   bool
	inflight   map[*call]context.CancelCauseFunc
	wg         sync.WaitGroup // in-flight requests
	server     *grpc.Server   // set by go-plugin's Serve; nil in-process
	broker     *plugin.GRPCBroker
	hostID     uint32
	granted    []string
	host       skillpb.HostServicesClient
	hostCloser io.Closer
}

// handler serves one decoded REQUEST and returns the RESPONSE results and
// status, or the error to report.
type handler func(ctx context.Context, c *call, hr *skillpb.HandleRequest, pr *protocol.Request) ([]byte, protocol.ResponseStatus, error)

// New returns a skill described by manifest, the bytes of its skill.json
// (normally embedded with go:embed). It panics if the manifest is not
// valid, naming the bad field: a skill binary with a broken manifest must
// never serve.
func New(manifest []byte) *Skill {
	m, err := ParseManifest(manifest)
	if err != nil {
		panic("sdk: invalid " + err.Error())
	}
	sum := sha256.Sum256(manifest)
	// Keep the process's stderr now: go-plugin points os.Stderr elsewhere
	// once serving, and the host reads the skill's logs from this one.
	out := newSwapWriter(os.Stderr)
	log := newLogger(out)
	return &Skill{
		manifest: m,
		raw:      bytes.Clone(manifest),
		sum:      hex.EncodeToString(sum[:]),
		logOut:   out,
		log:      log,
		config:   newConfig(m.Config, log),
		handlers: make(map[string]handler),
		inflight: make(map[*call]context.CancelCauseFunc),
	}
}

// Manifest returns the skill's parsed manifest. The caller must not
// modify it.
func (s *Skill) Manifest() *Manifest { return s.manifest }

// Config returns the skill's configuration.
func (s *Skill) Config() *Config { return s.config }

// Logger returns the skill's logger. Inside a handler prefer Logger(ctx),
// which adds the request's intent and id.
func (s *Skill) Logger() hclog.Logger { return s.log }

// Handle registers h as the handler of intent, which skill.json must
// declare. The REQUEST parameters are decoded into P with encoding/json
// (members P does not have are ignored); if *P has a method
// Validate() error, it is called next, and its error becomes an ERROR
// invalid_parameter (or the code of an *Error it returns). The R that h
// returns is marshalled with encoding/json as the RESPONSE results.
//
// Handle panics if intent is not declared, is registered twice, if h is
// nil, or if the skill is already serving: these are mistakes in the
// skill's code, found the first time it runs.
func Handle[P, R any](s *Skill, intent string, h func(ctx context.Context, req *Request[P]) (R, error)) {
	if h == nil {
		panic(fmt.Sprintf("sdk: Handle(%q): nil handler", intent))
	}
	if _, ok := s.manifest.Capability(intent); !ok {
		panic(fmt.Sprintf("sdk: Handle(%q): intent not declared in skill.json capabilities", intent))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving {
		panic(fmt.Sprintf("sdk: Handle(%q): called after the skill started serving", intent))
	}
	if _, dup := s.handlers[intent]; dup {
		panic(fmt.Sprintf("sdk: Handle(%q): registered twice", intent))
	}
	s.handlers[intent] = func(ctx context.Context, c *call, hr *skillpb.HandleRequest, pr *protocol.Request) ([]byte, protocol.ResponseStatus, error) {
		req := &Request[P]{
			ID:             hr.GetRequestId(),
			Intent:         pr.Intent,
			Parameters:     pr.Parameters,
			Priority:       pr.Priority,
			Budget:         pr.Budget,
			ResponseFormat: pr.ResponseFormat,
			SessionID:      hr.GetSessionId(),
			Peer:           hr.GetPeerAmid(),
			Schema:         hr.GetSchema(),
			call:           c,
		}
		if len(pr.Parameters) > 0 {
			if err := json.Unmarshal(pr.Parameters, &req.Params); err != nil {
				return nil, "", paramsError(err)
			}
		}
		if v, ok := any(&req.Params).(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				if se := (*Error)(nil); errors.As(err, &se) {
					return nil, "", err
				}
				return nil, "", &Error{Code: protocol.CodeInvalidParameter, Message: err.Error(), err: err}
			}
		}
		r, err := h(ctx, req)
		if err != nil {
			return nil, "", err
		}
		results, err := marshalResults(r)
		if err != nil {
			return nil, "", fmt.Errorf("marshal results of %q: %w", intent, err)
		}
		status := protocol.ResponseSuccess
		if rs, ok := any(r).(ResultStatus); ok {
			status = rs.ResultStatus()
		}
		return results, status, nil
	}
}

// marshalResults marshals v without HTML escaping, as payloads are written
// everywhere else.
func marshalResults(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// PluginForTest returns the go-plugin plugin that serves s (a
// *skillrpc.SkillGRPCPlugin) after sending the skill's logs to logOutput.
// It exists for package skilltest, which serves a skill in-process; a
// skill itself never calls it.
func (s *Skill) PluginForTest(logOutput io.Writer) any {
	if logOutput != nil {
		s.logOut.set(logOutput)
	}
	s.mu.Lock()
	s.serving = true
	s.mu.Unlock()
	return s.plugin()
}

func (s *Skill) plugin() *skillrpc.SkillGRPCPlugin {
	return &skillrpc.SkillGRPCPlugin{
		Impl: &server{s: s},
		UseBroker: func(b *plugin.GRPCBroker) {
			s.mu.Lock()
			s.broker = b
			s.mu.Unlock()
		},
	}
}

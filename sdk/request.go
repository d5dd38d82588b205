package sdk

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc/skillpb"
	"github.com/hashicorp/go-hclog"
)

// Request is one REQUEST as a handler receives it, with its parameters
// decoded into P. New fields may be added; construct it with a composite
// literal naming its fields.
//
// A Request made outside the SDK (for example in a handler's unit test)
// works too: its Progress and Report do nothing.
type Request[P any] struct {
	// ID is the host's id for this request, for logs.
	ID string
	// Intent is the REQUEST's intent, one the skill declares.
	Intent string
	// Params holds the REQUEST parameters decoded with encoding/json; the
	// zero P when the REQUEST has none.
	Params P
	// Parameters is the raw parameters JSON object; nil when absent.
	Parameters json.RawMessage
	// Priority is protocol.PriorityNormal when the REQUEST gives none.
	Priority protocol.Priority
	// Budget bounds what the request may cost; nil when absent.
	Budget *protocol.Budget
	// ResponseFormat is the shape of RESPONSE asked for; nil when absent.
	ResponseFormat *protocol.ResponseFormat
	// SessionID is the session the REQUEST arrived on; empty for local
	// calls.
	SessionID string
	// Peer is the AMID of the agent that sent the REQUEST; empty for local
	// calls.
	Peer string
	// Schema is the schema id the REQUEST declared; empty when none.
	Schema string

	call *call
}

// Status is a STATUS event: progress on a request.
type Status struct {
	// Progress is the fraction done, between 0 and 1.
	Progress float64
	// Message says what the skill is doing, for people.
	Message string
	// Phase names the step, for programs; empty when not used.
	Phase string
	// ETA is the estimated time to completion; 0 when unknown.
	ETA time.Duration
}

// Progress reports progress as a STATUS event: fraction is the part done,
// between 0 and 1 (a value outside is clamped and logged), and message
// says what the skill is doing. It is safe for concurrent use; calls after
// the handler returned are ignored.
func (r *Request[P]) Progress(fraction float64, message string) {
	r.Report(Status{Progress: fraction, Message: message})
}

// Report sends st as a STATUS event. Like Progress, it clamps a fraction
// outside [0, 1] and ignores calls after the handler returned.
func (r *Request[P]) Report(st Status) {
	if r.call != nil {
		r.call.status(st)
	}
}

// call is the SDK's side of one Handle stream.
type call struct {
	stream interface {
		Send(*skillpb.HandleEvent) error
		Context() context.Context
	}
	base      hclog.Logger
	intent    string
	requestID string

	logOnce sync.Once
	log     hclog.Logger // base with the request's fields; made on first use

	mu   sync.Mutex
	done bool // a final event was sent, or the stream failed
}

// logger returns the skill's logger with the request's intent and id.
// Most requests log nothing, so it is made only when needed.
func (c *call) logger() hclog.Logger {
	c.logOnce.Do(func() {
		c.log = c.base.With("intent", c.intent, "request_id", c.requestID)
	})
	return c.log
}

func (c *call) status(st Status) {
	p := st.Progress
	if math.IsNaN(p) || p < 0 || p > 1 {
		c.logger().Warn("progress outside [0, 1]; clamped", "progress", p)
		switch {
		case math.IsNaN(p) || p < 0:
			p = 0
		default:
			p = 1
		}
	}
	ev := &skillpb.Status{Progress: p, Message: st.Message, Phase: st.Phase}
	if st.ETA > 0 {
		eta := st.ETA.Seconds()
		ev.EtaSeconds = &eta
	}
	c.send(&skillpb.HandleEvent{Event: &skillpb.HandleEvent_Status{Status: ev}}, false)
}

// send sends ev unless the stream is finished; final marks it finished.
func (c *call) send(ev *skillpb.HandleEvent, final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	if final {
		c.done = true
	}
	if err := c.stream.Send(ev); err != nil {
		// The host is gone or gave up on the request; nothing more can
		// reach it.
		c.done = true
		c.logger().Debug("cannot send event", "error", err)
	}
}

package session_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// countingEcho is echoHandler counting the REQUESTs it serves.
type countingEcho struct {
	echoHandler
	served *atomic.Int32
}

func (c countingEcho) HandleRequest(ctx context.Context, req *protocol.Request, meta session.RequestMeta, onStatus func(*protocol.Status)) protocol.Payload {
	c.served.Add(1)
	return c.echoHandler.HandleRequest(ctx, req, meta, onStatus)
}

func TestOptimisticRequestTravelsWithTheKnock(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	var served atomic.Int32
	b := m.newHost(t, hostOptions{handler: countingEcho{served: &served}})
	trusting := session.Permissive()
	trusting.Allowlist = []protocol.AMID{b.id.AMID()}
	pa := &tap{}
	a := m.newHost(t, hostOptions{tap: pa, policy: trusting})

	var statuses int
	s, answer, err := a.OpenWithRequest(ctx, b.id.AMID(), echoCaps, echoRequest("early"), "", func(*protocol.Status) { statuses++ })
	if err != nil {
		t.Fatal(err)
	}
	if got := echoed(t, answer); got != "early" {
		t.Fatalf("optimistic REQUEST answered %q", got)
	}
	if statuses != 1 {
		t.Fatalf("%d STATUS updates, want 1", statuses)
	}
	if n := len(pa.frames(true, protocol.MessageTypeOptimistic)); n != 1 {
		t.Fatalf("%d optimistic frames sent, want 1", n)
	}
	// The session goes on: the next REQUEST takes sequence 1 and after.
	if got := echoed(t, mustRequest(t, s, "later")); got != "later" {
		t.Fatalf("echo %q", got)
	}
	if served.Load() != 2 {
		t.Fatalf("receiver served %d REQUESTs, want 2", served.Load())
	}
	if b.logs.String() == "" || containsAny(b.logs.String(), "sequence gap", "duplicate", "does not decrypt") {
		t.Fatalf("receiver logs show a lost or repeated message:\n%s", b.logs.String())
	}
}

func TestOptimisticRequestIsDiscardedOnReject(t *testing.T) {
	m := newMesh(t)
	var served atomic.Int32
	blocking := session.Permissive()
	pa := &tap{}
	a := m.newHost(t, hostOptions{tap: pa})
	blocking.Blocklist = []protocol.AMID{a.id.AMID()}
	b := m.newHost(t, hostOptions{handler: countingEcho{served: &served}, policy: blocking})
	p := a.Policy()
	p.Allowlist = []protocol.AMID{b.id.AMID()}
	if err := a.SetPolicy(p); err != nil {
		t.Fatal(err)
	}
	_, _, err := a.OpenWithRequest(t.Context(), b.id.AMID(), echoCaps, echoRequest("unwanted"), "", nil)
	var re *session.RejectedError
	if !errors.As(err, &re) || re.Reason != string(protocol.RejectBlocked) {
		t.Fatalf("OpenWithRequest: %v, want REJECT blocked", err)
	}
	if n := len(pa.frames(true, protocol.MessageTypeOptimistic)); n != 1 {
		t.Fatalf("%d optimistic frames sent, want 1", n)
	}
	if served.Load() != 0 {
		t.Fatal("the receiver served the REQUEST of a KNOCK it rejected")
	}
}

func TestRequestWithoutAllowlistWaitsForAccept(t *testing.T) {
	m := newMesh(t)
	var served atomic.Int32
	b := m.newHost(t, hostOptions{handler: countingEcho{served: &served}})
	pa := &tap{}
	a := m.newHost(t, hostOptions{tap: pa})
	_, answer, err := a.OpenWithRequest(t.Context(), b.id.AMID(), echoCaps, echoRequest("patient"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := echoed(t, answer); got != "patient" {
		t.Fatalf("echo %q", got)
	}
	if n := len(pa.frames(true, protocol.MessageTypeOptimistic)); n != 0 {
		t.Fatalf("sent %d optimistic frames to a peer not on the allowlist", n)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

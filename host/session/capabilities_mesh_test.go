package session_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// wantMismatch checks that answer is ERROR capability_mismatch suggesting
// suggestion.
func wantMismatch(t testing.TB, answer protocol.Payload, suggestion string) {
	t.Helper()
	e, ok := answer.(*protocol.ErrorPayload)
	if !ok || e.Code != protocol.CodeCapabilityMismatch {
		t.Fatalf("answer %#v, want ERROR capability_mismatch", answer)
	}
	var d struct {
		Suggestions []string `json:"suggestions"`
	}
	if err := json.Unmarshal(e.Details, &d); err != nil || !slices.Contains(d.Suggestions, suggestion) {
		t.Fatalf("details %s, want suggestions with %q", e.Details, suggestion)
	}
}

func TestCapabilityNegotiationOverSessions(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	skills := newSkills(t, "flight-search")
	var seen sessionsOf
	b := m.newHost(t, hostOptions{handler: skillHandler(skills), onSession: seen.add})
	a := m.newHost(t, hostOptions{})

	// The highest version both support is chosen; what the receiver lacks
	// is rejected.
	offered := []string{flightV1, "agentmesh/travel/flight-search/v3", productV1}
	s, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{Intent: "travel/flights/search", Capabilities: offered})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Capabilities(); !slices.Equal(got, []string{flightV1}) {
		t.Fatalf("agreed %v, want [%s]", got, flightV1)
	}
	bs := seen.byID(s.ID())
	if got := bs.Capabilities(); !slices.Equal(got, []string{flightV1}) {
		t.Fatalf("receiver agreed %v", got)
	}

	// No skill serves products yet.
	answer, err := s.Request(ctx, productRequest(), productV1, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantMismatch(t, answer, "travel/flights/search")

	// A skill installed mid-session is offered to the peer, which accepts
	// it, and then serves.
	install(t, skills, "product-search")
	if err := b.AnnounceCapabilities(ctx); err != nil {
		t.Fatal(err)
	}
	logtest.Eventually(t, "both ends to agree on product search", func() bool {
		return slices.Contains(bs.Capabilities(), productV1) && slices.Contains(s.Capabilities(), productV1)
	})
	answer, err = s.Request(ctx, productRequest(), productV1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := answer.(*protocol.Response); !ok || r.Status != protocol.ResponseSuccess {
		t.Fatalf("product search after the update: %#v", answer)
	}

	// A peer that does not speak the new capability rejects the update;
	// REQUESTs needing it are refused.
	c := m.newHost(t, hostOptions{})
	sc, err := c.Open(ctx, b.id.AMID(), session.OpenOptions{Capabilities: []string{flightV1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Request(ctx, flightRequest(), flightV1, nil); err != nil {
		t.Fatal(err)
	}
	cs := seen.byID(sc.ID())
	if slices.Contains(cs.Capabilities(), productV1) {
		t.Fatalf("receiver agreed %v with a peer that never offered product search", cs.Capabilities())
	}
	answer, err = sc.Request(ctx, productRequest(), productV1, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantMismatch(t, answer, "commerce/products/search")
}

func TestNoCommonCapabilityThenRequested(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	b := m.newHost(t, hostOptions{handler: skillHandler(newSkills(t, "flight-search"))})
	a := m.newHost(t, hostOptions{})
	s, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{Capabilities: []string{"x-acme/weather/v1"}})
	if err != nil {
		t.Fatalf("a session without a common capability must still open: %v", err)
	}
	if len(s.Capabilities()) != 0 {
		t.Fatalf("agreed %v, want nothing", s.Capabilities())
	}
	if !strings.Contains(a.logs.String(), "no capability in common") || !strings.Contains(b.logs.String(), "no capability in common") {
		t.Fatal("no warning about the missing common capability")
	}
	answer, err := s.Request(ctx, flightRequest(), flightV1, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantMismatch(t, answer, "travel/flights/search")

	resp, err := s.RequestCapabilities(ctx, []string{flightV1, productV1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.AcceptedCapabilities, []string{flightV1}) || !slices.Equal(resp.RejectedCapabilities, []string{productV1}) {
		t.Fatalf("capability_response accepted %v rejected %v", resp.AcceptedCapabilities, resp.RejectedCapabilities)
	}
	if !slices.Contains(s.Capabilities(), flightV1) {
		t.Fatalf("agreed %v after the response", s.Capabilities())
	}
	answer, err = s.Request(ctx, flightRequest(), flightV1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := answer.(*protocol.Response); !ok {
		t.Fatalf("flight search after negotiation: %#v", answer)
	}
}

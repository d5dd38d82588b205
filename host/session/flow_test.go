package session_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

const (
	flightV1  = "agentmesh/travel/flight-search/v1"
	productV1 = "agentmesh/commerce/product-search/v1"
)

// sessionsOf collects the sessions a host opens, as OnSession reports them.
type sessionsOf struct {
	mu   sync.Mutex
	list []*session.Session
}

func (s *sessionsOf) add(x *session.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, x)
}

func (s *sessionsOf) byID(id string) *session.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.list {
		if x.ID() == id {
			return x
		}
	}
	return nil
}

func (s *sessionsOf) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.list)
}

func TestSessionRequestResponseClose(t *testing.T) {
	m := newMesh(t)
	var seen sessionsOf
	b := m.newHost(t, hostOptions{handler: skillHandler(newSkills(t, "flight-search")), onSession: seen.add})
	a := m.newHost(t, hostOptions{})
	ctx := t.Context()

	s, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{Intent: "travel/flights/search", Capabilities: []string{flightV1}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.ID(), "sess_") || len(s.ID()) != len("sess_")+32 {
		t.Fatalf("session id %q, want sess_ and 32 hex digits", s.ID())
	}
	if got := s.Capabilities(); len(got) != 1 || got[0] != flightV1 {
		t.Fatalf("agreed capabilities %v, want [%s]", got, flightV1)
	}
	bs := seen.byID(s.ID())
	if bs == nil || bs.Peer() != a.id.AMID() || bs.Initiator() || !s.Initiator() {
		t.Fatalf("receiver has no matching session for %s", s.ID())
	}

	var statuses []float64
	answer, err := s.Request(ctx, flightRequest(), flightV1, func(st *protocol.Status) { statuses = append(statuses, st.Progress) })
	if err != nil {
		t.Fatal(err)
	}
	resp, ok := answer.(*protocol.Response)
	if !ok {
		t.Fatalf("answer %#v, want a RESPONSE", answer)
	}
	var results struct {
		Results []struct {
			FlightNumber string `json:"flight_number"`
		} `json:"results"`
	}
	if err := json.Unmarshal(resp.Results, &results); err != nil || len(results.Results) == 0 || results.Results[0].FlightNumber == "" {
		t.Fatalf("results %s (%v), want flights", resp.Results, err)
	}
	if resp.Status != protocol.ResponseSuccess || resp.Schema != flightV1 {
		t.Fatalf("response status %q schema %q", resp.Status, resp.Schema)
	}
	for i := 1; i < len(statuses); i++ {
		if statuses[i] < statuses[i-1] {
			t.Fatalf("STATUS progress went backwards: %v", statuses)
		}
	}

	// A second request on the same session keeps working (the ratchet
	// turns in both directions).
	if answer, err := s.Request(ctx, flightRequest(), flightV1, nil); err != nil {
		t.Fatal(err)
	} else if _, ok := answer.(*protocol.Response); !ok {
		t.Fatalf("second answer %#v", answer)
	}

	if err := s.Close(ctx, protocol.CloseCompleted); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bs.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("receiver's session did not end on CLOSE")
	}
	var ce *session.ClosedError
	if !errors.As(bs.Err(), &ce) || ce.Reason != protocol.CloseCompleted || !ce.ByPeer {
		t.Fatalf("receiver's session ended with %v, want completed by the peer", bs.Err())
	}
	if len(b.Sessions()) != 0 || len(a.Sessions()) != 0 {
		t.Fatalf("sessions left open: %d and %d", len(a.Sessions()), len(b.Sessions()))
	}
	if _, err := s.Request(ctx, flightRequest(), flightV1, nil); !errors.As(err, &ce) {
		t.Fatalf("request on a closed session: %v, want a ClosedError", err)
	}
}

func TestRejectReasons(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	a := m.newHost(t, hostOptions{})
	other := m.newHost(t, hostOptions{})

	policy := func(f func(p *session.Policy)) *session.Policy {
		p := session.Permissive()
		f(p)
		return p
	}
	tests := []struct {
		name   string
		policy *session.Policy
		opts   session.OpenOptions
		setup  func(b *host)
		want   protocol.RejectReason
	}{
		{name: "blocked", policy: policy(func(p *session.Policy) { p.Blocklist = append(p.Blocklist, a.id.AMID()) }),
			want: protocol.RejectBlocked},
		{name: "not in allowlist", policy: policy(func(p *session.Policy) {
			p.StrictMode = true
			p.Allowlist = append(p.Allowlist, other.id.AMID())
		}), want: protocol.RejectNotInAllowlist},
		{name: "insufficient trust", policy: session.VerifiedOnly(), want: protocol.RejectInsufficientTrust},
		{name: "low reputation", policy: policy(func(p *session.Policy) { p.MinReputation = 0.9 }),
			want: protocol.RejectLowReputation},
		{name: "intent not accepted", policy: policy(func(p *session.Policy) { p.RejectedIntents = []string{"travel"} }),
			opts: session.OpenOptions{Intent: "travel/flights/search"}, want: protocol.RejectIntentNotAccepted},
		{name: "ttl exceeded", policy: policy(func(p *session.Policy) { p.MaxSessionTTL = 60 }),
			opts: session.OpenOptions{TTL: time.Hour}, want: protocol.RejectTTLExceeded},
		{name: "paused", setup: func(b *host) { b.Pause() }, want: protocol.RejectPaused},
		{name: "stopped", setup: func(b *host) { b.EmergencyStop(ctx) }, want: protocol.RejectPaused},
		{name: "at capacity", policy: policy(func(p *session.Policy) { p.MaxConcurrentSessions = 1 }),
			setup: func(b *host) {
				if _, err := other.Open(ctx, b.id.AMID(), session.OpenOptions{}); err != nil {
					t.Fatal(err)
				}
			}, want: protocol.RejectAtCapacity},
		{name: "rate limited", policy: policy(func(p *session.Policy) { p.KnocksPerMinute = 1 }),
			setup: func(b *host) {
				if _, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{}); err != nil {
					t.Fatal(err)
				}
			}, want: protocol.RejectRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := m.newHost(t, hostOptions{policy: tt.policy})
			if tt.setup != nil {
				tt.setup(b)
			}
			before := len(b.Sessions())
			_, err := a.Open(ctx, b.id.AMID(), tt.opts)
			var re *session.RejectedError
			if !errors.As(err, &re) {
				t.Fatalf("Open: %v, want a REJECT", err)
			}
			if re.Reason != string(tt.want) || re.Peer != b.id.AMID() {
				t.Fatalf("REJECT reason %q from %s, want %q", re.Reason, re.Peer.Short(), tt.want)
			}
			if got := len(b.Sessions()); got != before {
				t.Fatalf("receiver has %d sessions after the REJECT, had %d", got, before)
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	m := newMesh(t)
	b := m.newHost(t, hostOptions{})
	a := m.newHost(t, hostOptions{timeout: 300 * time.Millisecond})
	b.stop() // registered, with prekeys, but nobody answers
	_, err := a.Open(t.Context(), b.id.AMID(), session.OpenOptions{})
	if !errors.Is(err, session.ErrHandshakeTimeout) {
		t.Fatalf("Open: %v, want ErrHandshakeTimeout", err)
	}
}

func TestKillAndEmergencyStop(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	b := m.newHost(t, hostOptions{handler: echoHandler{}})
	a := m.newHost(t, hostOptions{})
	echo := session.OpenOptions{Capabilities: []string{"x-test/echo/v1"}}
	s1, err := a.Open(ctx, b.id.AMID(), echo)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := a.Open(ctx, b.id.AMID(), echo)
	if err != nil {
		t.Fatal(err)
	}
	// The receiver's ratchet can send once it has heard from the initiator.
	for _, s := range []*session.Session{s1, s2} {
		answer, err := s.Request(ctx, echoRequest("hello"), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := echoed(t, answer); got != "hello" {
			t.Fatalf("echo answered %q", got)
		}
	}
	if !b.Kill(ctx, s1.ID()) {
		t.Fatal("Kill found no session")
	}
	<-s1.Done()
	var ce *session.ClosedError
	if !errors.As(s1.Err(), &ce) || ce.Reason != protocol.CloseSessionKilled || !ce.ByPeer {
		t.Fatalf("killed session ended with %v", s1.Err())
	}
	if s2.Err() != nil {
		t.Fatalf("the other session ended too: %v", s2.Err())
	}
	b.EmergencyStop(ctx)
	select {
	case <-s2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("emergency stop left a session open")
	}
	if b.State() != session.Stopped || b.Resume() {
		t.Fatal("a stopped host resumed")
	}
	var re *session.RejectedError
	if _, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{}); !errors.As(err, &re) || re.Reason != string(protocol.RejectPaused) {
		t.Fatalf("Open after the emergency stop: %v", err)
	}
}

// echoRequest asks echoHandler to echo word.
func echoRequest(word string) *protocol.Request {
	b, _ := json.Marshal(map[string]string{"word": word})
	return &protocol.Request{Intent: "test/echo", Parameters: b}
}

// echoed returns the word an echo answer carries.
func echoed(t testing.TB, answer protocol.Payload) string {
	t.Helper()
	r, ok := answer.(*protocol.Response)
	if !ok {
		t.Fatalf("answer %#v, want a RESPONSE", answer)
	}
	var v struct {
		Word string `json:"word"`
	}
	if err := json.Unmarshal(r.Results, &v); err != nil {
		t.Fatal(err)
	}
	return v.Word
}

func TestPolicyChangesAndPause(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	b := m.newHost(t, hostOptions{})
	a := m.newHost(t, hostOptions{})
	if _, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{}); err != nil {
		t.Fatal(err)
	}

	// The owner edits the policy file and the host reloads it.
	path := filepath.Join(b.home, "policy.json")
	p := b.Policy()
	p.Blocklist = []protocol.AMID{a.id.AMID()}
	if err := session.SavePolicy(path, p); err != nil {
		t.Fatal(err)
	}
	loaded, err := session.LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetPolicy(loaded); err != nil {
		t.Fatal(err)
	}
	var re *session.RejectedError
	if _, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{}); !errors.As(err, &re) || re.Reason != string(protocol.RejectBlocked) {
		t.Fatalf("Open after blocking: %v", err)
	}
	if len(b.Sessions()) != 1 {
		t.Fatalf("a policy change ended open sessions: %d left", len(b.Sessions()))
	}
	bad := b.Policy()
	bad.AcceptTiers = nil
	if err := b.SetPolicy(bad); err == nil {
		t.Fatal("an invalid policy was taken")
	}
	if got := b.Policy().Blocklist; len(got) != 1 {
		t.Fatalf("a refused policy changed the one in force: blocklist %v", got)
	}

	if err := b.SetPolicy(session.Permissive()); err != nil {
		t.Fatal(err)
	}
	b.Pause()
	if _, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{}); !errors.As(err, &re) || re.Reason != string(protocol.RejectPaused) {
		t.Fatalf("Open while paused: %v", err)
	}
	if !b.Resume() {
		t.Fatal("Resume did not resume")
	}
	if _, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{}); err != nil {
		t.Fatalf("Open after Resume: %v", err)
	}
}

// recorder keeps what a Recorder is handed.
type recorder struct {
	mu   sync.Mutex
	list []session.Recorded
}

func (r *recorder) Record(m session.Recorded) {
	m.Envelope = append([]byte(nil), m.Envelope...)
	r.mu.Lock()
	r.list = append(r.list, m)
	r.mu.Unlock()
}

// kinds returns "sent:request", "received:status"… in order.
func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.list {
		dir := "received"
		if m.Sent {
			dir = "sent"
		}
		out = append(out, dir+":"+string(m.Type))
	}
	return out
}

func TestEveryMessageIsRecorded(t *testing.T) {
	m := newMesh(t)
	var ra, rb recorder
	b := m.newHost(t, hostOptions{handler: echoHandler{}, recorder: &rb})
	a := m.newHost(t, hostOptions{recorder: &ra})
	s, err := a.Open(t.Context(), b.id.AMID(), echoCaps)
	if err != nil {
		t.Fatal(err)
	}
	mustRequest(t, s, "for the record")
	want := []string{"sent:request", "received:status", "received:response"}
	if got := ra.kinds(); !slices.Equal(got, want) {
		t.Fatalf("initiator recorded %v, want %v", got, want)
	}
	logtest.Eventually(t, "the receiver's records", func() bool { return len(rb.kinds()) == 3 })
	if got, want := rb.kinds(), []string{"received:request", "sent:status", "sent:response"}; !slices.Equal(got, want) {
		t.Fatalf("receiver recorded %v, want %v", got, want)
	}
	rb.mu.Lock()
	first := rb.list[0]
	rb.mu.Unlock()
	if first.SessionID != s.ID() || first.Peer != a.id.AMID() || !strings.Contains(string(first.Envelope), "for the record") {
		t.Fatalf("record %+v does not hold the REQUEST", first)
	}
}

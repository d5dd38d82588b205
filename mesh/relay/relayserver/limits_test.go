package relayserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// TestSendRateLimit checks the message budget: the 101st send in a minute
// is refused with RATE_LIMITED and retry_after_seconds, the count survives
// a reconnect, and a new window allows sends again.
func TestSendRateLimit(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	ca, cb := r.connect(t, a), r.connect(t, b)

	for i := range DefaultSendsPerMinute {
		ca.sendTo(b, fmt.Sprint(i))
	}
	ca.sendTo(b, "one too many")
	e := ca.expectError(protocol.RelayRateLimited)
	if e.RetryAfterSeconds == nil || *e.RetryAfterSeconds != 60 {
		t.Errorf("retry_after_seconds = %v, want 60", e.RetryAfterSeconds)
	}
	for i := range DefaultSendsPerMinute {
		if got := cb.expectReceive(); got.EncryptedPayload != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q id=%q", i, got.EncryptedPayload, got.MessageID)
		}
	}

	// Reconnecting does not reset the count.
	ca.send(protocol.Disconnect{Reason: "reconnect"})
	ca.expectClosed()
	logtest.Eventually(t, "a to be unregistered", func() bool { return r.srv.lookup(a.amid) == nil })
	ca = r.connect(t, a)
	r.clock.Advance(30 * time.Second)
	ca.sendTo(b, "still limited")
	e = ca.expectError(protocol.RelayRateLimited)
	if e.RetryAfterSeconds == nil || *e.RetryAfterSeconds != 30 {
		t.Errorf("after 30 s: retry_after_seconds = %v, want 30", e.RetryAfterSeconds)
	}

	r.clock.Advance(30 * time.Second)
	ca.sendTo(b, "new window")
	if got := cb.expectReceive(); got.EncryptedPayload != "new window" {
		t.Errorf("after the window: got %q", got.EncryptedPayload)
	}
	if extra := ca.sync(); len(extra) != 0 {
		t.Errorf("sender got %#v", extra)
	}
}

// TestKnockRateLimit checks that knocks have their own budget of 30 a
// minute, separate from other sends.
func TestKnockRateLimit(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	ca, cb := r.connect(t, a), r.connect(t, b)
	knock := protocol.Send{To: b.amid, EncryptedPayload: "{}", MessageType: protocol.MessageTypeKnock}
	for range DefaultKnocksPerMinute {
		ca.send(knock)
	}
	ca.send(knock)
	ca.expectError(protocol.RelayRateLimited)
	for i := range DefaultKnocksPerMinute {
		if got := cb.expectReceive(); got.MessageType != protocol.MessageTypeKnock {
			t.Fatalf("knock %d: got %#v", i, got)
		}
	}
	ca.sendTo(b, "a message still passes")
	if got := cb.expectReceive(); got.EncryptedPayload != "a message still passes" {
		t.Errorf("got %q", got.EncryptedPayload)
	}
}

// TestOtherRateLimits checks that signalling, presence and control frames
// have budgets too.
func TestOtherRateLimits(t *testing.T) {
	r := startRelay(t, func(c *Config) {
		c.Limits = Limits{ICEPerMinute: 2, PresencePerMinute: 3, ControlPerMinute: 4}
	})
	a, b := newAgent(t), newAgent(t)
	ca, cb := r.connect(t, a), r.connect(t, b)

	for range 2 {
		ca.send(protocol.P2PEstablished{Peer: b.amid})
	}
	ca.send(protocol.ICEOffer{To: b.amid, SDP: "x", Candidates: []protocol.ICECandidate{}})
	ca.expectError(protocol.RelayRateLimited)
	for range 2 {
		if _, ok := cb.next().(protocol.P2PEstablished); !ok {
			t.Fatal("p2p_established not forwarded")
		}
	}

	ca.send(protocol.Presence{Status: protocol.PresenceAway})
	ca.send(protocol.PresenceQuery{AMID: a.amid})
	ca.send(protocol.PresenceQuery{AMID: a.amid})
	ca.send(protocol.PresenceQuery{AMID: a.amid})
	for range 2 {
		if _, ok := ca.next().(protocol.PresenceResponse); !ok {
			t.Fatal("presence_query not answered")
		}
	}
	ca.expectError(protocol.RelayRateLimited)

	// Control: three pings and a bad frame use the budget of four.
	ts := protocol.FormatSigningTimestamp(r.clock.Now())
	for range 3 {
		ca.send(protocol.Ping{Timestamp: ts})
	}
	ca.sendRaw([]byte(`{"type":"bogus"}`))
	ca.send(protocol.Ping{Timestamp: ts})
	for range 3 {
		if _, ok := ca.next().(protocol.Pong); !ok {
			t.Fatal("ping not answered")
		}
	}
	ca.expectError(protocol.RelayInvalidMessage)
	ca.expectError(protocol.RelayRateLimited)
}

// TestLimiterWindows checks the fixed-window arithmetic directly.
func TestLimiterWindows(t *testing.T) {
	l := newLimiter(Limits{SendsPerMinute: 2, KnocksPerMinute: -1})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	amid := protocol.AMID("a")
	for i, tc := range []struct {
		at    time.Duration
		ok    bool
		retry int
	}{
		{0, true, 0},
		{10 * time.Second, true, 0},
		{20 * time.Second, false, 40},
		{59*time.Second + 500*time.Millisecond, false, 1},
		{60 * time.Second, true, 0},
	} {
		ok, retry := l.allow(amid, kindSend, t0.Add(tc.at))
		if ok != tc.ok || retry != tc.retry {
			t.Errorf("step %d: allow = %v, %d; want %v, %d", i, ok, retry, tc.ok, tc.retry)
		}
	}
	for range 1000 {
		if ok, _ := l.allow(amid, kindKnock, t0); !ok {
			t.Fatal("a negative limit must not limit")
		}
	}
	l.sweep(t0.Add(2 * time.Minute))
	if n := len(l.windows); n != 0 {
		t.Errorf("%d windows left after sweep", n)
	}
}

package relayserver

import (
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// TestPresenceRule checks that presence_query shows an agent's status only
// to itself and to agents it exchanged a message with in the last 24 h.
func TestPresenceRule(t *testing.T) {
	r := startRelay(t, nil)
	a, b, stranger := newAgent(t), newAgent(t), newAgent(t)
	ca, cb, cs := r.connect(t, a), r.connect(t, b), r.connect(t, stranger)

	query := func(c *client, about *agent) protocol.PresenceResponse {
		t.Helper()
		c.send(protocol.PresenceQuery{AMID: about.amid})
		p, ok := c.next().(protocol.PresenceResponse)
		if !ok || p.AMID != about.amid {
			t.Fatalf("presence_response: %#v", p)
		}
		return p
	}
	hidden := func(p protocol.PresenceResponse, what string) {
		t.Helper()
		if p.Status != protocol.PresenceOffline || p.LastSeen != "" {
			t.Errorf("%s: got %s (last_seen %q), want offline without last_seen", what, p.Status, p.LastSeen)
		}
	}

	r.clock.Advance(time.Minute)
	ca.send(protocol.Presence{Status: protocol.PresenceAway})
	wantSeen := protocol.FormatServerTimestamp(r.clock.Now())
	if p := query(ca, a); p.Status != protocol.PresenceAway || p.LastSeen != wantSeen {
		t.Errorf("own presence: %#v, want away at %s", p, wantSeen)
	}
	hidden(query(cb, a), "before any message")

	cb.sendTo(a, "hello")
	ca.expectReceive()
	if p := query(cb, a); p.Status != protocol.PresenceAway || p.LastSeen != wantSeen {
		t.Errorf("sender asking the recipient: %#v", p)
	}
	if p := query(ca, b); p.Status != protocol.PresenceOnline {
		t.Errorf("recipient asking the sender: %#v", p)
	}
	hidden(query(cs, a), "a stranger")

	r.clock.Advance(24*time.Hour + time.Second)
	hidden(query(cb, a), "a day after the last message")

	// A stored message counts too; an offline agent is offline to all.
	ca.send(protocol.Disconnect{})
	ca.expectClosed()
	logtest.Eventually(t, "a to be unregistered", func() bool { return r.srv.lookup(a.amid) == nil })
	cb.sendTo(a, "stored")
	hidden(query(cb, a), "an agent that is not connected")
	r.connect(t, a)
	if p := query(cb, a); p.Status != protocol.PresenceOnline {
		t.Errorf("after a stored message and a reconnect: %#v", p)
	}
}

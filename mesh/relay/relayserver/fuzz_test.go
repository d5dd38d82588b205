package relayserver

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// fixedAgent returns the agent of a fixed key, so that fuzz seeds can name
// it.
func fixedAgent(b byte) *agent {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	return &agent{priv: priv, pub: pub, amid: protocol.DeriveAMID(pub)}
}

// fakeConn registers an authenticated connection without a socket: what
// the relay sends it stays in its queue for the test to read.
func fakeConn(s *Server, a *agent) *conn {
	c := newConn(s, nil, nil)
	c.amid, c.sessionID = a.amid, newUUID()
	c.status, c.lastActivity = protocol.PresenceOnline, s.now()
	c.log = c.log.With("amid", a.amid.Short())
	s.register(c)
	return c
}

// drain returns the frames queued for c.
func drain(c *conn) [][]byte {
	var out [][]byte
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, it := range c.q {
		out = append(out, it.data)
	}
	c.q = nil
	return out
}

// FuzzClientFrame feeds arbitrary text frames to the relay's frame handler
// for an authenticated connection (fixedAgent(1), talking to a connected
// fixedAgent(2)). The relay must never panic; a frame that does not decode
// must get exactly one INVALID_MESSAGE error carrying the decoder's
// message; and everything the relay sends anyone must be a valid server
// frame.
func FuzzClientFrame(f *testing.F) {
	r := startRelay(f, func(c *Config) {
		c.Logger = nil
		c.OutboundQueue = 1024
		c.Limits = Limits{SendsPerMinute: -1, KnocksPerMinute: -1, ICEPerMinute: -1, PresencePerMinute: -1, ControlPerMinute: -1}
	})
	self, peer := fakeConn(r.srv, fixedAgent(1)), fakeConn(r.srv, fixedAgent(2))

	f.Fuzz(func(t *testing.T, frame []byte) {
		_, perr := protocol.ParseClientFrame(frame)
		self.handleFrame(frame)
		mine, theirs := drain(self), drain(peer)
		for _, b := range append(append([][]byte{}, mine...), theirs...) {
			if _, err := protocol.ParseServerFrame(b); err != nil {
				t.Fatalf("relay sent an invalid frame %.200q: %v", b, err)
			}
		}
		if perr == nil {
			return
		}
		if len(mine) != 1 || len(theirs) != 0 {
			t.Fatalf("bad frame (%v): relay sent %d frames back and %d to the peer, want one error", perr, len(mine), len(theirs))
		}
		sf, _ := protocol.ParseServerFrame(mine[0])
		e, ok := sf.(protocol.ErrorFrame)
		// The frame carries the message as JSON text: valid UTF-8.
		want := strings.ToValidUTF8(perr.Error(), "\uFFFD")
		if !ok || e.Code != protocol.RelayInvalidMessage || e.Message != want {
			t.Fatalf("bad frame (%v): relay answered %#v", perr, sf)
		}
	})
}

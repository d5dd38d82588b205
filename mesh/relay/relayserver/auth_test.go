package relayserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// TestAuthFailures checks that every refused CONNECT gets its error frame
// before the socket closes with a policy-violation status.
func TestAuthFailures(t *testing.T) {
	r := startRelay(t, nil)
	now := r.clock.Now()
	a, other := newAgent(t), newAgent(t)

	signed := func(ts string) protocol.Connect {
		return protocol.Connect{
			Protocol:  protocol.ProtocolVersion,
			AMID:      a.amid,
			PublicKey: protocol.EncodeSigningPublicKey(a.pub),
			Signature: protocol.SignTimestamp(a.priv, ts),
			Timestamp: ts,
		}
	}
	frame := func(f protocol.Connect) []byte {
		b, err := protocol.MarshalFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fresh := func() protocol.Connect { return a.connectFrame(now) }

	tests := map[string]struct {
		send    []byte
		binary  bool
		code    protocol.RelayErrorCode
		message string
	}{
		"not a connect frame": {
			send: []byte(`{"type":"ping","timestamp":"2026-03-01T12:00:00Z"}`),
			code: protocol.RelayInvalidMessage, message: "Expected Connect message",
		},
		"malformed JSON": {
			send: []byte(`{"type":"connect",`),
			code: protocol.RelayInvalidMessage, message: "Expected Connect message",
		},
		"binary frame": {
			send: frame(fresh()), binary: true,
			code: protocol.RelayInvalidMessage, message: "binary",
		},
		"connect missing its signature": {
			send: []byte(`{"type":"connect","protocol":"agentmesh/0.2","amid":"` + string(a.amid) +
				`","public_key":"x","timestamp":"` + protocol.FormatSigningTimestamp(now) + `"}`),
			code: protocol.RelayInvalidMessage, message: "signature: missing",
		},
		"legacy protocol": {
			send: frame(func() protocol.Connect { f := fresh(); f.Protocol = protocol.LegacyProtocolVersion; return f }()),
			code: protocol.RelayProtocolUpgradeRequired, message: "agentmesh/0.2",
		},
		"legacy protocol checked before a bad timestamp": {
			send: []byte(`{"type":"connect","protocol":"agentmesh/0.1","amid":"` + string(a.amid) +
				`","public_key":"x","signature":"y","timestamp":"yesterday"}`),
			code: protocol.RelayProtocolUpgradeRequired, message: "agentmesh/0.2",
		},
		"unknown protocol": {
			send: frame(func() protocol.Connect { f := fresh(); f.Protocol = "agentmesh/9.9"; return f }()),
			code: protocol.RelayProtocolMismatch, message: `got "agentmesh/9.9"`,
		},
		"stale timestamp": {
			send: frame(signed(protocol.FormatSigningTimestamp(now.Add(-protocol.MaxTimestampAge - time.Second)))),
			code: protocol.RelayTimestampExpired, message: "old",
		},
		"future timestamp": {
			send: frame(signed(protocol.FormatSigningTimestamp(now.Add(protocol.MaxTimestampSkew + time.Second)))),
			code: protocol.RelayTimestampExpired, message: "future",
		},
		"unparsable timestamp": {
			send: []byte(`{"type":"connect","protocol":"agentmesh/0.2","amid":"` + string(a.amid) +
				`","public_key":"x","signature":"y","timestamp":"yesterday"}`),
			code: protocol.RelayTimestampExpired, message: "timestamp",
		},
		"AMID of another key": {
			send: frame(func() protocol.Connect { f := fresh(); f.AMID = other.amid; return f }()),
			code: protocol.RelayAMIDMismatch, message: string(other.amid),
		},
		"malformed AMID": {
			send: []byte(`{"type":"connect","protocol":"agentmesh/0.2","amid":"0OIl","public_key":"x","signature":"y","timestamp":"` +
				protocol.FormatSigningTimestamp(now) + `"}`),
			code: protocol.RelayAMIDMismatch, message: "AMID",
		},
		"signature by another key": {
			send: frame(func() protocol.Connect {
				f := fresh()
				f.Signature = protocol.SignTimestamp(other.priv, f.Timestamp)
				return f
			}()),
			code: protocol.RelayInvalidSignature, message: "Signature verification failed: ",
		},
		"signature over another timestamp": {
			send: frame(func() protocol.Connect {
				f := fresh()
				f.Signature = protocol.SignTimestamp(a.priv, protocol.FormatSigningTimestamp(now.Add(-time.Hour)))
				return f
			}()),
			code: protocol.RelayInvalidSignature, message: "Signature verification failed: ",
		},
		"undecodable public key": {
			send: frame(func() protocol.Connect { f := fresh(); f.PublicKey = "ed25519:AAAA"; return f }()),
			code: protocol.RelayInvalidSignature, message: "Signature verification failed: ",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := &client{t: t, ws: dial(t, r.url), a: a}
			typ := websocket.MessageText
			if tc.binary {
				typ = websocket.MessageBinary
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.ws.Write(ctx, typ, tc.send); err != nil {
				t.Fatal(err)
			}
			e := c.expectError(tc.code)
			if !strings.Contains(e.Message, tc.message) {
				t.Errorf("error message %q does not contain %q", e.Message, tc.message)
			}
			if st := c.expectClosed(); st != websocket.StatusPolicyViolation {
				t.Errorf("close status %v, want %v", st, websocket.StatusPolicyViolation)
			}
		})
	}
	// Every refused connection ends (its handler returns after the close).
	logtest.Eventually(t, "refused connections to end", func() bool { return r.srv.connCount() == 0 })
}

// TestAuthTimeout checks that a client that sends nothing gets an error
// frame and a closed socket after AuthTimeout.
func TestAuthTimeout(t *testing.T) {
	r := startRelay(t, func(c *Config) { c.AuthTimeout = 50 * time.Millisecond })
	c := &client{t: t, ws: dial(t, r.url), a: newAgent(t)}
	e := c.expectError(protocol.RelayInvalidMessage)
	if !strings.Contains(e.Message, "Expected Connect message within") {
		t.Errorf("error message %q", e.Message)
	}
	if st := c.expectClosed(); st != websocket.StatusPolicyViolation {
		t.Errorf("close status %v, want %v", st, websocket.StatusPolicyViolation)
	}
}

// TestAuthReplay checks that a CONNECT signature opens one connection
// only, even after that connection has ended.
func TestAuthReplay(t *testing.T) {
	r := startRelay(t, nil)
	a := newAgent(t)
	f := a.connectFrame(r.clock.Now())

	first := &client{t: t, ws: dial(t, r.url), a: a}
	first.send(f)
	if got, ok := first.next().(protocol.Connected); !ok {
		t.Fatalf("first connect: got %#v", got)
	}
	first.send(protocol.Disconnect{Reason: "bye"})
	first.expectClosed()
	logtest.Eventually(t, "the first connection to end", func() bool { return r.srv.connCount() == 0 })

	// The same frame again, and also with the timestamp in another
	// rendering of the same instant (which VerifyTimestamp would accept).
	again := f
	for i, frame := range []protocol.Connect{f, again} {
		if i == 1 {
			ts, _ := protocol.ParseTimestamp(f.Timestamp)
			frame.Timestamp = protocol.FormatServerTimestamp(ts)
		}
		c := &client{t: t, ws: dial(t, r.url), a: a}
		c.send(frame)
		e := c.expectError(protocol.RelayInvalidSignature)
		if !strings.Contains(e.Message, "already used") {
			t.Errorf("replay %d: error message %q", i, e.Message)
		}
		if st := c.expectClosed(); st != websocket.StatusPolicyViolation {
			t.Errorf("replay %d: close status %v", i, st)
		}
	}
	// A fresh signature still works.
	r.connect(t, a)
}

// TestAuthAcceptsTimestampForms checks that a CONNECT signed over a
// JavaScript-style timestamp (which the Rust relay refused) is accepted:
// the signature is checked over the string as sent.
func TestAuthAcceptsTimestampForms(t *testing.T) {
	r := startRelay(t, nil)
	a := newAgent(t)
	for _, ts := range []string{
		protocol.FormatJSTimestamp(r.clock.Now().Add(-1234 * time.Millisecond)),
		protocol.FormatPYTimestamp(r.clock.Now().Add(-5678 * time.Microsecond)),
	} {
		c := &client{t: t, ws: dial(t, r.url), a: a}
		c.send(protocol.Connect{
			Protocol:  protocol.ProtocolVersion,
			AMID:      a.amid,
			PublicKey: protocol.B64.EncodeToString(a.pub), // unprefixed, as TS sends it
			Signature: protocol.SignTimestamp(a.priv, ts),
			Timestamp: ts,
		})
		got := c.next()
		conn, ok := got.(protocol.Connected)
		if !ok {
			t.Fatalf("timestamp %s: got %#v, want connected", ts, got)
		}
		if len(conn.SessionID) != 36 || conn.SessionID[14] != '4' {
			t.Errorf("session_id %q is not a version 4 UUID", conn.SessionID)
		}
	}
}

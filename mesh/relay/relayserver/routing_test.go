package relayserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// TestRoutingManyClients has 20 agents each send a distinct payload to
// every other one, concurrently, and checks that every payload arrives
// once, byte for byte, with the right sender.
func TestRoutingManyClients(t *testing.T) {
	const n = 20
	r := startRelay(t, nil)
	agents := make([]*agent, n)
	clients := make([]*client, n)
	for i := range agents {
		agents[i] = newAgent(t)
		clients[i] = r.connect(t, agents[i])
	}
	// Payloads are opaque to the relay: include characters JSON must
	// escape and characters it must not.
	payloads := make([][]string, n)
	for from := range payloads {
		payloads[from] = make([]string, n)
		for to := range payloads[from] {
			raw := make([]byte, 1+(from*n+to)%97*7)
			rand.Read(raw)
			payloads[from][to] = fmt.Sprintf("%d→%d \"\\\u2028\u2029\x00😀 %s", from, to, base64.StdEncoding.EncodeToString(raw))
		}
	}
	payload := func(from, to int) string { return payloads[from][to] }
	want := make([]map[protocol.AMID]string, n)
	for to := range want {
		want[to] = make(map[protocol.AMID]string)
		for from := range n {
			if from != to {
				want[to][agents[from].amid] = payload(from, to)
			}
		}
	}

	got := make([]map[protocol.AMID]string, n)
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for i := range clients {
		got[i] = make(map[protocol.AMID]string)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for to := range n {
				if to == i {
					continue
				}
				b, _ := protocol.MarshalFrame(protocol.Send{To: agents[to].amid, EncryptedPayload: payload(i, to), MessageType: protocol.MessageTypeMessage})
				if err := clients[i].ws.Write(context.Background(), websocket.MessageText, b); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range n - 1 {
				f, err := clients[i].read()
				if err != nil {
					errs <- err
					return
				}
				rcv, ok := f.(protocol.Receive)
				if !ok {
					errs <- fmt.Errorf("client %d: got %#v", i, f)
					return
				}
				if _, dup := got[i][rcv.From]; dup {
					errs <- fmt.Errorf("client %d: second message from %s", i, rcv.From)
				}
				got[i][rcv.From] = rcv.EncryptedPayload
				if rcv.MessageID != "" || rcv.MessageType != protocol.MessageTypeMessage {
					errs <- fmt.Errorf("client %d: live receive %#v", i, rcv)
				}
				if ts, err := protocol.ParseTimestamp(rcv.Timestamp); err != nil || !ts.Equal(r.clock.Now()) {
					errs <- fmt.Errorf("client %d: timestamp %q", i, rcv.Timestamp)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range got {
		for from, w := range want[i] {
			if got[i][from] != w {
				t.Errorf("client %d from %s: got %d bytes %.30q, want %d bytes %.30q", i, from.Short(), len(got[i][from]), got[i][from], len(w), w)
			}
		}
	}
}

// TestICECandidatesPassThrough checks that ice_candidates of a send reach
// the recipient unchanged, live and stored.
func TestICECandidatesPassThrough(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	ca := r.connect(t, a)
	mid, idx := "0", 1
	cands := []protocol.ICECandidate{{Candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ host", SDPMid: &mid, SDPMLineIndex: &idx}, {Candidate: "c2"}}
	ca.send(protocol.Send{To: b.amid, EncryptedPayload: "stored", MessageType: protocol.MessageTypeMessage, ICECandidates: cands})
	ca.sync()
	cb := r.connect(t, b)
	stored := cb.expectReceive()
	ca.send(protocol.Send{To: b.amid, EncryptedPayload: "live", MessageType: protocol.MessageTypeMessage, ICECandidates: cands})
	ca.send(protocol.Send{To: b.amid, EncryptedPayload: "none", MessageType: protocol.MessageTypeMessage})
	live, none := cb.expectReceive(), cb.expectReceive()
	for _, rcv := range []protocol.Receive{stored, live} {
		if len(rcv.ICECandidates) != 2 || rcv.ICECandidates[0].Candidate != cands[0].Candidate ||
			*rcv.ICECandidates[0].SDPMid != "0" || *rcv.ICECandidates[0].SDPMLineIndex != 1 ||
			rcv.ICECandidates[1].SDPMid != nil || rcv.ICECandidates[1].SDPMLineIndex != nil {
			t.Errorf("%s: ice_candidates %#v", rcv.EncryptedPayload, rcv.ICECandidates)
		}
	}
	if none.ICECandidates != nil {
		t.Errorf("ice_candidates %#v for a send without them", none.ICECandidates)
	}
}

// TestDuplicateConnectionReplaces checks that a second connection for an
// AMID closes the first, and that the first's teardown leaves the second
// registered.
func TestDuplicateConnectionReplaces(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	cb := r.connect(t, b)
	old := r.connect(t, a)
	cur := r.connect(t, a)
	if st := old.expectClosed(); st != StatusReplaced {
		t.Errorf("old connection closed with %v, want %v", st, websocket.StatusCode(StatusReplaced))
	}
	logtest.Eventually(t, "the old connection's teardown", func() bool { return r.srv.connCount() == 2 })

	cb.sendTo(a, "after the replacement")
	rcv := cur.expectReceive()
	if rcv.EncryptedPayload != "after the replacement" || rcv.MessageID != "" {
		t.Errorf("got %#v, want a live delivery to the new connection", rcv)
	}
	// The new connection also answers presence as online to b, which has
	// now sent a message to a.
	cb.send(protocol.PresenceQuery{AMID: a.amid})
	if p, ok := cb.next().(protocol.PresenceResponse); !ok || p.Status != protocol.PresenceOnline {
		t.Errorf("presence of the replaced agent: %#v", p)
	}
}

// TestBadFramesAfterAuth checks that frames the relay cannot use get an
// INVALID_MESSAGE error naming the problem, and the connection stays
// usable.
func TestBadFramesAfterAuth(t *testing.T) {
	r := startRelay(t, nil)
	a := newAgent(t)
	c := r.connect(t, a)
	tests := []struct {
		frame string
		want  string
	}{
		{`{"type":"send",`, "malformed JSON"},
		{`[1,2,3]`, "invalid relay frame"},
		{`{"type":"bogus"}`, `"bogus" is not a client frame type`},
		{`{"type":"receive","from":"` + string(a.amid) + `","encrypted_payload":"x","message_type":"message","timestamp":"2026-03-01T12:00:00Z"}`, `"receive" is not a client frame type`},
		{`{"type":"send","to":"` + string(a.amid) + `","message_type":"message"}`, "encrypted_payload: missing"},
		{`{"type":"send","to":"nope","encrypted_payload":"x","message_type":"message"}`, "to: "},
		{`{"type":"send","to":"` + string(a.amid) + `","encrypted_payload":"x","message_type":"telegram"}`, "message_type"},
		{`{"type":"presence","status":"asleep"}`, "status"},
		{`{"type":"ice_offer","to":"` + string(a.amid) + `","sdp":"x"}`, "candidates: missing"},
		{`{"type":"ping","timestamp":"noon"}`, "timestamp"},
		{`{"type":"send","to":"` + string(a.amid) + `","encrypted_payload":7,"message_type":"message"}`, "encrypted_payload: must be a string"},
		{string(mustFrame(t, a.connectFrame(r.clock.Now()))), "Already authenticated"},
	}
	for _, tc := range tests {
		c.sendRaw([]byte(tc.frame))
		e := c.expectError(protocol.RelayInvalidMessage)
		if !strings.Contains(e.Message, tc.want) {
			t.Errorf("frame %.60s: error %q does not contain %q", tc.frame, e.Message, tc.want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if e := c.expectError(protocol.RelayInvalidMessage); !strings.Contains(e.Message, "Binary frames") {
		t.Errorf("binary frame: error %q", e.Message)
	}
	if extra := c.sync(); len(extra) != 0 {
		t.Errorf("unexpected frames before pong: %#v", extra)
	}
}

func mustFrame(t testing.TB, f protocol.Frame) []byte {
	t.Helper()
	b, err := protocol.MarshalFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMessageSizeLimit checks the 64 KiB payload limit: 65 536 bytes are
// delivered, 65 537 get MESSAGE_TOO_LARGE on a connection that stays
// usable, and a frame beyond the read limit closes the socket with 1009.
func TestMessageSizeLimit(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	ca, cb := r.connect(t, a), r.connect(t, b)

	exact := strings.Repeat("x", protocol.MaxMessageSize)
	ca.sendTo(b, exact)
	if got := cb.expectReceive(); got.EncryptedPayload != exact {
		t.Errorf("65536-byte payload arrived as %d bytes", len(got.EncryptedPayload))
	}

	ca.sendTo(b, exact+"y")
	e := ca.expectError(protocol.RelayMessageTooLarge)
	if !strings.Contains(e.Message, "65537") || !strings.Contains(e.Message, "65536") {
		t.Errorf("error message %q", e.Message)
	}
	// Multi-byte characters count in bytes.
	ca.sendTo(b, strings.Repeat("é", protocol.MaxMessageSize/2)+"x")
	ca.expectError(protocol.RelayMessageTooLarge)

	ca.sendTo(b, "still usable")
	if got := cb.expectReceive(); got.EncryptedPayload != "still usable" {
		t.Errorf("after the refusal got %q", got.EncryptedPayload)
	}

	ca.sendTo(b, strings.Repeat("z", int(readLimit(protocol.MaxMessageSize))))
	if st := ca.expectClosed(); st != websocket.StatusMessageTooBig {
		t.Errorf("oversized frame: close status %v, want %v", st, websocket.StatusMessageTooBig)
	}
}

// TestICEForwarding checks that signalling frames reach the named peer
// with to (or peer) rewritten to the sender.
func TestICEForwarding(t *testing.T) {
	r := startRelay(t, nil)
	a, b, offline := newAgent(t), newAgent(t), newAgent(t)
	ca, cb := r.connect(t, a), r.connect(t, b)
	mid := "data"
	cands := []protocol.ICECandidate{{Candidate: "candidate:0 1 UDP 2122 192.0.2.1 5000 typ host", SDPMid: &mid}}

	ca.send(protocol.ICEOffer{To: b.amid, SDP: `{"sdp":"v=0…","type":"offer"}`, Candidates: cands})
	offer, ok := cb.next().(protocol.ICEOffer)
	if !ok || offer.To != a.amid || offer.SDP != `{"sdp":"v=0…","type":"offer"}` ||
		len(offer.Candidates) != 1 || offer.Candidates[0].Candidate != cands[0].Candidate || *offer.Candidates[0].SDPMid != "data" {
		t.Errorf("forwarded offer: %#v", offer)
	}
	cb.send(protocol.ICEAnswer{To: a.amid, SDP: "answer", Candidates: nil})
	answer, ok := ca.next().(protocol.ICEAnswer)
	if !ok || answer.To != b.amid || answer.SDP != "answer" || len(answer.Candidates) != 0 {
		t.Errorf("forwarded answer: %#v", answer)
	}
	ca.send(protocol.P2PEstablished{Peer: b.amid})
	if est, ok := cb.next().(protocol.P2PEstablished); !ok || est.Peer != a.amid {
		t.Errorf("forwarded p2p_established: %#v", est)
	}

	ca.send(protocol.ICEOffer{To: offline.amid, SDP: "x", Candidates: []protocol.ICECandidate{}})
	e := ca.expectError(protocol.RelayRecipientOffline)
	if want := "Cannot establish P2P: agent " + string(offline.amid) + " is offline"; e.Message != want {
		t.Errorf("offline offer: %q, want %q", e.Message, want)
	}
	// Answers and p2p_established to an offline peer are dropped silently.
	ca.send(protocol.ICEAnswer{To: offline.amid, SDP: "x", Candidates: []protocol.ICECandidate{}})
	ca.send(protocol.P2PEstablished{Peer: offline.amid})
	if extra := ca.sync(); len(extra) != 0 {
		t.Errorf("frames for signalling to an offline peer: %#v", extra)
	}
}

// TestPingPong checks that a JSON ping is answered with the same instant.
func TestPingPong(t *testing.T) {
	r := startRelay(t, nil)
	c := r.connect(t, newAgent(t))
	c.send(protocol.Ping{Timestamp: "2026-02-01T16:25:10.555123+00:00"})
	p, ok := c.next().(protocol.Pong)
	if !ok || p.Timestamp != "2026-02-01T16:25:10.555123Z" {
		t.Errorf("pong: %#v", p)
	}
}

// TestDisconnectFrame checks that disconnect unregisters the agent and
// closes the socket normally.
func TestDisconnectFrame(t *testing.T) {
	r := startRelay(t, nil)
	a := newAgent(t)
	c := r.connect(t, a)
	c.send(protocol.Disconnect{Reason: "done"})
	if st := c.expectClosed(); st != websocket.StatusNormalClosure {
		t.Errorf("close status %v", st)
	}
	logtest.Eventually(t, "the agent to be unregistered", func() bool { return r.srv.lookup(a.amid) == nil })
}

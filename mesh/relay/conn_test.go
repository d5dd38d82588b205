package relay_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
	"github.com/agentmesh/agentmesh-go/mesh/relay/relayserver"
)

func TestDialAuthenticates(t *testing.T) {
	r := startRelay(t, nil)
	key := newKey(t)
	st := newStates()
	c := dial(t, r.url(), key, st.option())
	sc := st.next(t)
	if sc.State != relay.StateConnected || sc.SessionID == "" || sc.SessionID != c.SessionID() || sc.PendingMessages != 0 {
		t.Errorf("first state change %+v, want connected with session %q and no pending messages", sc, c.SessionID())
	}
	if want := protocol.DeriveAMID(key.Public().(ed25519.PublicKey)); c.AMID() != want {
		t.Errorf("AMID() = %s, want %s", c.AMID(), want)
	}
	if c.State() != relay.StateConnected {
		t.Errorf("State() = %v, want connected", c.State())
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	rtt, err := c.Ping(ctx)
	if err != nil || rtt <= 0 {
		t.Errorf("Ping = %v, %v; want a positive round trip", rtt, err)
	}
}

func TestSendReceiveIsByteExact(t *testing.T) {
	r := startRelay(t, nil)
	a := dial(t, r.url(), newKey(t))
	b := dial(t, r.url(), newKey(t))
	mid, idx := "0", 0
	cands := []protocol.ICECandidate{{Candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", SDPMid: &mid, SDPMLineIndex: &idx}, {Candidate: "c2"}}
	cases := []struct {
		payload string
		mt      protocol.MessageType
		cands   []protocol.ICECandidate
	}{
		{"hello", protocol.MessageTypeMessage, nil},
		{"", protocol.MessageTypeKnock, nil},
		{"héllo 🌍 \u2028\u2029 <>&'", protocol.MessageTypeAccept, nil},
		{"{\"quoted\":\"\\\"\",\"nl\":\"\n\"}\x00\x01\x1f\x7f", protocol.MessageTypeClose, cands},
		{strings.Repeat("0123456789abcdef", 64), protocol.MessageTypeOptimistic, nil},
		{strings.Repeat("x", protocol.MaxMessageSize), protocol.MessageTypeMessage, nil},
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	for _, tc := range cases {
		if err := a.Send(ctx, b.AMID(), tc.payload, tc.mt, tc.cands); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for i, tc := range cases {
		m := receiveMessage(t, b)
		if m.Payload != tc.payload {
			t.Errorf("message %d: payload differs (%d bytes, want %d)", i, len(m.Payload), len(tc.payload))
		}
		if m.From != a.AMID() || m.Type != tc.mt || m.MessageID != "" || m.Timestamp.IsZero() {
			t.Errorf("message %d: from %s type %s id %q time %v; want from %s, type %s, delivered live", i, m.From, m.Type, m.MessageID, m.Timestamp, a.AMID(), tc.mt)
		}
		if !reflect.DeepEqual(m.ICECandidates, tc.cands) {
			t.Errorf("message %d: candidates %+v, want %+v", i, m.ICECandidates, tc.cands)
		}
	}
}

func TestDialRefusedByRelayIsTyped(t *testing.T) {
	r := startRelay(t, nil)
	for _, skew := range []time.Duration{10 * time.Minute, -10 * time.Minute} {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		c, err := relay.Dial(ctx, r.url(), newKey(t), relay.WithClock(func() time.Time { return time.Now().Add(skew) }))
		cancel()
		if err == nil {
			c.Close()
			t.Fatalf("clock off by %s: Dial succeeded", skew)
		}
		if re := asError(t, err); re.Code != protocol.RelayTimestampExpired || re.Message == "" {
			t.Errorf("clock off by %s: got %+v, want code %s with a message", skew, re, protocol.RelayTimestampExpired)
		}
	}
}

func TestAsynchronousErrorsAreEvents(t *testing.T) {
	r := startRelay(t, func(cfg *relayserver.Config) { cfg.Limits.SendsPerMinute = 2 })
	a := dial(t, r.url(), newKey(t))
	b := dial(t, r.url(), newKey(t))

	send(t, a, b.AMID(), strings.Repeat("y", protocol.MaxMessageSize+1))
	ev := receive(t, a)
	ee, ok := ev.(*relay.ErrorEvent)
	if !ok || ee.Err.Code != protocol.RelayMessageTooLarge {
		t.Fatalf("after an oversized send: got %T %+v, want an ErrorEvent %s", ev, ev, protocol.RelayMessageTooLarge)
	}

	send(t, a, b.AMID(), "one")
	send(t, a, b.AMID(), "two")
	send(t, a, b.AMID(), "three")
	ev = receive(t, a)
	ee, ok = ev.(*relay.ErrorEvent)
	if !ok || ee.Err.Code != protocol.RelayRateLimited || ee.Err.RetryAfter <= 0 {
		t.Fatalf("after three sends with a budget of two: got %T %+v, want an ErrorEvent %s with a retry delay", ev, ev, protocol.RelayRateLimited)
	}
	if !errors.Is(ee.Err, &relay.Error{Code: protocol.RelayRateLimited}) {
		t.Error("errors.Is does not match the event's code")
	}
	for _, want := range []string{"one", "two"} {
		if m := receiveMessage(t, b); m.Payload != want {
			t.Errorf("got %q, want %q (the oversized message must not arrive)", m.Payload, want)
		}
	}
}

func TestPresence(t *testing.T) {
	r := startRelay(t, noLimits)
	a := dial(t, r.url(), newKey(t))
	b := dial(t, r.url(), newKey(t))
	send(t, a, b.AMID(), "hi") // the relay shows presence only between agents that talk
	receiveMessage(t, b)

	got := waitPresence(t, a, b.AMID(), protocol.PresenceOnline)
	if got.AMID != b.AMID() || got.LastSeen == "" {
		t.Errorf("presence of b: %+v, want b online with a last-seen time", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := b.SetPresence(ctx, protocol.PresenceAway); err != nil {
		t.Fatal(err)
	}
	ping(t, b) // the relay handles b's frames in order
	if got, err := a.QueryPresence(ctx, b.AMID()); err != nil || got.Status != protocol.PresenceAway {
		t.Errorf("presence of b after SetPresence(away): %+v, %v", got, err)
	}

	// Answers are matched to questions by AMID.
	var wg sync.WaitGroup
	for i := range 20 {
		target := a.AMID()
		want := protocol.PresenceOnline
		if i%2 == 1 {
			target, want = b.AMID(), protocol.PresenceAway
		}
		wg.Go(func() {
			got, err := a.QueryPresence(ctx, target)
			if err != nil || got.AMID != target || got.Status != want {
				t.Errorf("QueryPresence(%s) = %+v, %v; want %s", target, got, err, want)
			}
		})
	}
	wg.Wait()

	if err := b.SetPresence(ctx, "busy"); err == nil {
		t.Error("SetPresence accepted an unknown status")
	}
	b.Close()
	waitPresence(t, a, b.AMID(), protocol.PresenceOffline)
}

func TestICEForwarding(t *testing.T) {
	r := startRelay(t, nil)
	a := dial(t, r.url(), newKey(t))
	b := dial(t, r.url(), newKey(t))
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	mid, idx := "data", 0
	cands := []protocol.ICECandidate{{Candidate: "candidate:1 1 udp 1 192.0.2.7 4000 typ host", SDPMid: &mid, SDPMLineIndex: &idx}}

	if err := a.SendICEOffer(ctx, b.AMID(), `{"sdp":"v=0 offer","type":"offer"}`, cands); err != nil {
		t.Fatal(err)
	}
	offer, ok := receive(t, b).(*relay.ICEOffer)
	if !ok || offer.From != a.AMID() || offer.SDP != `{"sdp":"v=0 offer","type":"offer"}` || !reflect.DeepEqual(offer.Candidates, cands) {
		t.Fatalf("b got %+v, want a's offer", offer)
	}
	if err := b.SendICEAnswer(ctx, a.AMID(), "v=0 answer", nil); err != nil {
		t.Fatal(err)
	}
	answer, ok := receive(t, a).(*relay.ICEAnswer)
	if !ok || answer.From != b.AMID() || answer.SDP != "v=0 answer" || len(answer.Candidates) != 0 {
		t.Fatalf("a got %+v, want b's answer", answer)
	}
	if err := a.SendP2PEstablished(ctx, b.AMID()); err != nil {
		t.Fatal(err)
	}
	if ev, ok := receive(t, b).(*relay.P2PEstablished); !ok || ev.Peer != a.AMID() {
		t.Fatalf("b got %+v, want P2PEstablished from a", ev)
	}

	offline := protocol.DeriveAMID(newKey(t).Public().(ed25519.PublicKey))
	if err := a.SendICEOffer(ctx, offline, "v=0", cands); err != nil {
		t.Fatal(err)
	}
	if ev, ok := receive(t, a).(*relay.ErrorEvent); !ok || ev.Err.Code != protocol.RelayRecipientOffline {
		t.Fatalf("offer to an offline agent: got %+v, want RECIPIENT_OFFLINE", ev)
	}
}

// TestStoredMessagesAfterReconnect takes b offline, sends to it, and checks
// that b's Conn reconnects and gets each stored message once, acknowledges
// them, and that acknowledged messages are not delivered again.
func TestStoredMessagesAfterReconnect(t *testing.T) {
	p, a, b, stB := proxiedPair(t)
	send(t, a, b.AMID(), "live")
	if m := receiveMessage(t, b); m.Payload != "live" || m.MessageID != "" {
		t.Fatalf("got %+v, want the live message without id", m)
	}

	bringBack := takeOffline(t, p, stB, a, b.AMID())
	want := []string{"stored-1", "stored-2", "stored-3"}
	for _, s := range want {
		send(t, a, b.AMID(), s)
	}
	ping(t, a) // the relay has handled (stored) a's sends
	bringBack()
	sc, skipped := stB.waitFor(t, relay.StateConnected)
	if sc.PendingMessages != len(want) {
		t.Errorf("connected after the outage with %d pending, want %d", sc.PendingMessages, len(want))
	}
	for i, s := range skipped {
		// takeOffline consumed the first attempt's state change.
		if s.State != relay.StateReconnecting || s.Attempt != i+2 {
			t.Errorf("state change %d during the outage: %+v, want reconnect attempt %d", i, s, i+2)
		}
	}
	ids := map[string]bool{}
	for _, s := range want {
		m := receiveMessage(t, b)
		if m.Payload != s || m.From != a.AMID() || m.MessageID == "" || ids[m.MessageID] {
			t.Fatalf("got %+v, want %q from a with a new message id", m, s)
		}
		ids[m.MessageID] = true
	}
	send(t, a, b.AMID(), "marker")
	if m := receiveMessage(t, b); m.Payload != "marker" {
		t.Fatalf("got %q after the stored messages, want the marker (a stored message came twice)", m.Payload)
	}

	ping(t, b) // the acknowledgements were handled before the pong
	if n := reconnectPending(t, p, stB); n != 0 {
		t.Errorf("after acknowledging everything, the relay still holds %d messages", n)
	}
}

// TestRedeliveredStoredMessageIsDropped makes the relay push a stored
// message twice, once while the first copy is still queued and once after
// the application took it but the acknowledgement was lost.
func TestRedeliveredStoredMessageIsDropped(t *testing.T) {
	p, a, b, stB := proxiedPair(t)
	send(t, a, b.AMID(), "hello")
	receiveMessage(t, b)

	bringBack := takeOffline(t, p, stB, a, b.AMID())
	send(t, a, b.AMID(), "once")
	ping(t, a)
	bringBack()
	stB.waitFor(t, relay.StateConnected)
	ping(t, b) // the pushed message is in b's queue now

	// 1: the first copy is still queued when the relay pushes it again.
	if n := reconnectPending(t, p, stB); n != 1 {
		t.Fatalf("reconnected with %d pending, want the unacknowledged message", n)
	}
	ping(t, b)

	// 2: the application takes it, and the acknowledgement is lost.
	p.swallow.Store(true)
	m := receiveMessage(t, b)
	if m.Payload != "once" || m.MessageID == "" {
		t.Fatalf("got %+v, want the stored message", m)
	}
	p.cut()
	p.swallow.Store(false)
	if sc, _ := stB.waitFor(t, relay.StateConnected); sc.PendingMessages != 1 {
		t.Fatalf("reconnected with %d pending, want the message whose acknowledgement was lost", sc.PendingMessages)
	}
	ping(t, b)
	ping(t, b) // the second acknowledgement was handled before this pong

	send(t, a, b.AMID(), "marker")
	if m := receiveMessage(t, b); m.Payload != "marker" {
		t.Fatalf("got %q, want the marker: a redelivered message reached the application", m.Payload)
	}
	if n := reconnectPending(t, p, stB); n != 0 {
		t.Errorf("relay still holds %d messages: the repeat was not acknowledged", n)
	}
}

func TestSendWhileReconnecting(t *testing.T) {
	r := startRelay(t, nil)
	p := startProxy(t, r.addr)
	stA := newStates()
	a := dial(t, p.url(), newKey(t), stA.option())
	b := dial(t, r.url(), newKey(t))
	p.refuse.Store(true)
	p.cut()
	stA.waitFor(t, relay.StateReconnecting)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	err := a.Send(ctx, b.AMID(), "too late", protocol.MessageTypeMessage, nil)
	cancel()
	if !isNotConnected(err) {
		t.Fatalf("Send with a short deadline while reconnecting: %v, want ErrNotConnected and DeadlineExceeded", err)
	}

	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		errc <- a.Send(ctx, b.AMID(), "waited", protocol.MessageTypeMessage, nil)
	}()
	p.refuse.Store(false)
	if err := <-errc; err != nil {
		t.Fatalf("Send waiting for the reconnect: %v", err)
	}
	if m := receiveMessage(t, b); m.Payload != "waited" {
		t.Errorf("got %q, want the message sent while reconnecting", m.Payload)
	}
}

// TestRelayRestart restarts the relay (a new Server over the reopened store
// file, on the same address) while the Conns keep running: messages stored
// before the restart, and sent while it was down, all arrive once.
func TestRelayRestart(t *testing.T) {
	r := startRelay(t, nil)
	p := startProxy(t, r.addr)
	stA, stB := newStates(), newStates()
	a := dial(t, r.url(), newKey(t), stA.option())
	b := dial(t, p.url(), newKey(t), stB.option())
	send(t, a, b.AMID(), "before")
	receiveMessage(t, b)

	bringBack := takeOffline(t, p, stB, a, b.AMID())
	send(t, a, b.AMID(), "stored-1")
	send(t, a, b.AMID(), "stored-2")
	// The relay confirms no send: a frame still in flight when it shuts
	// down may be lost. A ping round trip shows both were handled.
	ping(t, a)

	r.stop()
	stA.waitFor(t, relay.StateReconnecting)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		errc <- a.Send(ctx, b.AMID(), "sent-while-down", protocol.MessageTypeMessage, nil)
	}()
	r.start()
	stA.waitFor(t, relay.StateConnected)
	if err := <-errc; err != nil {
		t.Fatalf("Send across the restart: %v", err)
	}
	ping(t, a) // the relay has stored the message

	bringBack()
	if sc, _ := stB.waitFor(t, relay.StateConnected); sc.PendingMessages != 3 {
		t.Errorf("b reconnected with %d pending, want 3", sc.PendingMessages)
	}
	for _, want := range []string{"stored-1", "stored-2", "sent-while-down"} {
		if m := receiveMessage(t, b); m.Payload != want || m.MessageID == "" {
			t.Fatalf("got %+v, want stored %q", m, want)
		}
	}
	send(t, a, b.AMID(), "after")
	if m := receiveMessage(t, b); m.Payload != "after" || m.MessageID != "" {
		t.Fatalf("got %+v, want the live message sent after the restart", m)
	}
}

func TestPermanentRefusalOnReconnectStops(t *testing.T) {
	r := startRelay(t, nil)
	p := startProxy(t, r.addr)
	var skew atomic.Int64
	st := newStates()
	c := dial(t, p.url(), newKey(t), st.option(), relay.WithClock(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }))
	st.waitFor(t, relay.StateConnected)
	skew.Store(int64(10 * time.Minute)) // the relay will refuse the timestamp
	p.cut()
	failed, skipped := st.waitFor(t, relay.StateFailed)
	if re := asError(t, failed.Err); re.Code != protocol.RelayTimestampExpired {
		t.Errorf("failed with %v, want %s", failed.Err, protocol.RelayTimestampExpired)
	}
	if len(skipped) != 1 {
		t.Errorf("state changes before failing: %+v, want one reconnect attempt", skipped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if _, err := c.Ping(ctx); !errors.Is(err, &relay.Error{Code: protocol.RelayTimestampExpired}) {
		t.Errorf("Ping after failure: %v, want the refusal", err)
	}
	c.Close()
	if n := p.accepts.Load(); n != 2 {
		t.Errorf("the Conn connected %d times, want 2", n)
	}
}

func TestReconnectWithStoppedClock(t *testing.T) {
	// The relay refuses a CONNECT signature it has seen: every reconnect
	// must sign a new timestamp even when the clock does not move.
	r := startRelay(t, nil)
	p := startProxy(t, r.addr)
	fixed := time.Now()
	st := newStates()
	c := dial(t, p.url(), newKey(t), st.option(), relay.WithClock(func() time.Time { return fixed }))
	st.waitFor(t, relay.StateConnected)
	for range 3 {
		p.cut()
		if sc, skipped := st.waitFor(t, relay.StateConnected); len(skipped) != 1 {
			t.Fatalf("reconnect took %+v before %+v, want one attempt", skipped, sc)
		}
	}
	ping(t, c)
}

func TestReplacedConnectionStops(t *testing.T) {
	r := startRelay(t, nil)
	key := newKey(t)
	st1 := newStates()
	first := dial(t, r.url(), key, st1.option())
	st1.waitFor(t, relay.StateConnected)
	second := dial(t, r.url(), key)
	failed, skipped := st1.waitFor(t, relay.StateFailed)
	if !errors.Is(failed.Err, relay.ErrReplaced) || len(skipped) != 0 {
		t.Fatalf("first Conn: %+v after %+v, want ErrReplaced without reconnecting", failed, skipped)
	}
	if _, err := first.Receive(context.Background()); !errors.Is(err, relay.ErrReplaced) {
		t.Errorf("Receive on the replaced Conn: %v", err)
	}
	ping(t, second)
}

func TestKeepalivePingsAnsweredWhileIdle(t *testing.T) {
	r := startRelay(t, func(cfg *relayserver.Config) {
		cfg.PingInterval = 5 * time.Millisecond
		cfg.PingTimeout = 500 * time.Millisecond
	})
	p := startProxy(t, r.addr)
	st := newStates()
	dial(t, p.url(), newKey(t), st.option())
	st.waitFor(t, relay.StateConnected)
	// An idle connection carries nothing but the relay's pings (at least
	// 2 bytes each) and the client's masked pongs (at least 6 bytes): wait
	// for bytes enough for many of each. A client that did not answer
	// would be dropped after the ping timeout, and send nothing.
	up0, down0 := p.up.Load(), p.down.Load()
	deadline := time.Now().Add(waitTime)
	for p.up.Load()-up0 < 20*6 || p.down.Load()-down0 < 20*2 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d bytes of pings, %d bytes of pongs: pings not answered", p.down.Load()-down0, p.up.Load()-up0)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case sc := <-st.ch:
		t.Errorf("state changed while idle: %+v", sc)
	default:
	}
}

func TestClose(t *testing.T) {
	r := startRelay(t, noLimits)
	a := dial(t, r.url(), newKey(t))
	st := newStates()
	b := dial(t, r.url(), newKey(t), st.option())
	st.waitFor(t, relay.StateConnected)
	send(t, a, b.AMID(), "hi")
	receiveMessage(t, b)

	b.Close()
	b.Close()
	if sc := st.next(t); sc.State != relay.StateClosed {
		t.Errorf("state change %+v, want closed", sc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := b.Send(ctx, a.AMID(), "x", protocol.MessageTypeMessage, nil); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if _, err := b.Receive(ctx); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Receive after Close: %v", err)
	}
	if _, err := b.Ping(ctx); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}
	if b.State() != relay.StateClosed {
		t.Errorf("State() = %v", b.State())
	}
	waitPresence(t, a, b.AMID(), protocol.PresenceOffline)
}

func TestConcurrentSenders(t *testing.T) {
	// The relay's queue for b holds every message, so that none goes
	// through the store: the relay keeps order only on its live path.
	r := startRelay(t, func(cfg *relayserver.Config) {
		noLimits(cfg)
		cfg.OutboundQueue = 1024
	})
	a := dial(t, r.url(), newKey(t))
	b := dial(t, r.url(), newKey(t))
	const senders, each = 4, 50
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			for j := range each {
				send(t, a, b.AMID(), fmt.Sprintf("%d/%d", i, j))
			}
		})
	}
	seen := map[string]bool{}
	next := make([]int, senders)
	for range senders * each {
		m := receiveMessage(t, b)
		var i, j int
		if _, err := fmt.Sscanf(m.Payload, "%d/%d", &i, &j); err != nil || seen[m.Payload] || next[i] != j {
			t.Fatalf("got %q (id %q) out of order or twice", m.Payload, m.MessageID)
		}
		seen[m.Payload] = true
		next[i]++
	}
	wg.Wait()
}

package relay_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
)

// Handshake cases the real relay does not produce on demand, against the
// stub relay of stub_test.go.

func TestDialRefusedReturnsTypedError(t *testing.T) {
	retry := 7
	stub := startStub(t, func(int, protocol.Connect) *protocol.ErrorFrame {
		return &protocol.ErrorFrame{Code: protocol.RelayProtocolUpgradeRequired, Message: "use agentmesh/0.3", RetryAfterSeconds: &retry}
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	c, err := relay.Dial(ctx, stub.url(), newKey(t))
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded against a relay that refuses")
	}
	re := asError(t, err)
	if re.Code != protocol.RelayProtocolUpgradeRequired || re.Message != "use agentmesh/0.3" || re.RetryAfter != 7*time.Second {
		t.Errorf("got %+v, want code %s, message %q, retry after 7s", re, protocol.RelayProtocolUpgradeRequired, "use agentmesh/0.3")
	}
	if !errors.Is(err, &relay.Error{Code: protocol.RelayProtocolUpgradeRequired}) {
		t.Errorf("errors.Is does not match the code: %v", err)
	}
	if re.Temporary() {
		t.Error("protocol_upgrade_required reported as temporary")
	}
}

func TestDialHandshakeTimeout(t *testing.T) {
	stub := startStub(t, func(int, protocol.Connect) *protocol.ErrorFrame { return errSilent })
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	_, err := relay.Dial(ctx, stub.url(), newKey(t), relay.WithHandshakeTimeout(50*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial against a silent relay: got %v, want a handshake timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the caller's context ran out: the handshake timeout was not applied")
	}
}

func TestDialSendsWellFormedConnect(t *testing.T) {
	key := newKey(t)
	got := make(chan protocol.Connect, 1)
	stub := startStub(t, func(_ int, f protocol.Connect) *protocol.ErrorFrame {
		got <- f
		return nil
	})
	dial(t, stub.url(), key, relay.WithP2PCapable(true))
	f := <-got
	pub := key.Public().(ed25519.PublicKey)
	if f.Protocol != protocol.ProtocolVersion {
		t.Errorf("protocol %q, want %q", f.Protocol, protocol.ProtocolVersion)
	}
	if f.PublicKey != protocol.B64.EncodeToString(pub) {
		t.Errorf("public_key %q is not the raw unprefixed base64 key", f.PublicKey)
	}
	if !f.P2PCapable {
		t.Error("p2p_capable false, want true")
	}
	ts, err := protocol.ParseTimestamp(f.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	if f.Timestamp != protocol.FormatSigningTimestamp(ts) {
		t.Errorf("timestamp %q is not in the signing format", f.Timestamp)
	}
}

func TestReconnectTimestampsStrictlyIncrease(t *testing.T) {
	stub := startStub(t, nil)
	fixed := time.Now()
	st := newStates()
	dial(t, stub.url(), newKey(t), relay.WithClock(func() time.Time { return fixed }), st.option())
	st.waitFor(t, relay.StateConnected)
	for range 3 {
		stub.dropAll()
		st.waitFor(t, relay.StateConnected)
	}
	var prev time.Time
	for i := range 4 {
		s := <-stub.stamps
		ts, err := protocol.ParseTimestamp(s)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !ts.After(prev) {
			t.Errorf("CONNECT %d timestamp %s is not after the previous %s", i+1, ts, prev)
		}
		prev = ts
	}
}

func TestReconnectStopsOnPermanentRefusal(t *testing.T) {
	for _, code := range []protocol.RelayErrorCode{protocol.RelayAMIDMismatch, protocol.RelayProtocolUpgradeRequired} {
		t.Run(string(code), func(t *testing.T) {
			stub := startStub(t, func(n int, _ protocol.Connect) *protocol.ErrorFrame {
				if n == 1 {
					return nil
				}
				return &protocol.ErrorFrame{Code: code, Message: "refused"}
			})
			st := newStates()
			c := dial(t, stub.url(), newKey(t), st.option())
			st.waitFor(t, relay.StateConnected)
			stub.dropAll()
			failed, skipped := st.waitFor(t, relay.StateFailed)
			if re := asError(t, failed.Err); re.Code != code {
				t.Errorf("failed with %v, want code %s", failed.Err, code)
			}
			if len(skipped) != 1 || skipped[0].State != relay.StateReconnecting || skipped[0].Attempt != 1 {
				t.Errorf("state changes before failing: %+v, want one reconnect attempt", skipped)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTime)
			defer cancel()
			if err := c.Send(ctx, c.AMID(), "x", protocol.MessageTypeMessage, nil); !errors.Is(err, &relay.Error{Code: code}) {
				t.Errorf("Send after failure: %v, want the refusal", err)
			}
			if _, err := c.Receive(ctx); !errors.Is(err, &relay.Error{Code: code}) {
				t.Errorf("Receive after failure: %v, want the refusal", err)
			}
			if c.State() != relay.StateFailed {
				t.Errorf("State() = %v, want failed", c.State())
			}
			c.Close() // waits for the Conn's goroutine
			if n := stub.connects.Load(); n != 2 {
				t.Errorf("relay saw %d CONNECTs, want 2 (no retry after a permanent refusal)", n)
			}
			select {
			case sc := <-st.ch:
				t.Errorf("state change after failing: %+v", sc)
			default:
			}
		})
	}
}

func TestReconnectRetriesTemporaryRefusal(t *testing.T) {
	stub := startStub(t, func(n int, _ protocol.Connect) *protocol.ErrorFrame {
		switch n {
		case 2:
			return &protocol.ErrorFrame{Code: protocol.RelayInternalError, Message: "database unavailable"}
		case 3:
			return &protocol.ErrorFrame{Code: protocol.RelayRateLimited, Message: "slow down"}
		}
		return nil
	})
	st := newStates()
	dial(t, stub.url(), newKey(t), st.option())
	st.waitFor(t, relay.StateConnected)
	stub.dropAll()
	_, skipped := st.waitFor(t, relay.StateConnected)
	var codes []protocol.RelayErrorCode
	for i, sc := range skipped {
		if sc.State != relay.StateReconnecting || sc.Attempt != i+1 {
			t.Errorf("state change %d: %+v, want reconnect attempt %d", i, sc, i+1)
		}
		if re := (*relay.Error)(nil); errors.As(sc.Err, &re) {
			codes = append(codes, re.Code)
		}
	}
	if len(skipped) != 3 || len(codes) != 2 || codes[0] != protocol.RelayInternalError || codes[1] != protocol.RelayRateLimited {
		t.Errorf("reconnect attempts %+v, want 3 with the two refusals as causes", skipped)
	}
}

func TestReconnectBackoffIsBoundedAndGrows(t *testing.T) {
	const base, maxDelay = 2 * time.Millisecond, 16 * time.Millisecond
	stub := startStub(t, func(n int, _ protocol.Connect) *protocol.ErrorFrame {
		if n == 1 || n >= 8 {
			return nil
		}
		// A refusal the Conn retries, as if the relay were overloaded.
		return &protocol.ErrorFrame{Code: protocol.RelayInternalError, Message: "overloaded"}
	})
	st := newStates()
	dial(t, stub.url(), newKey(t), st.option(), relay.WithBackoff(base, maxDelay))
	st.waitFor(t, relay.StateConnected)
	stub.dropAll()
	_, skipped := st.waitFor(t, relay.StateConnected)
	if len(skipped) != 7 {
		t.Fatalf("got %d reconnect attempts, want 7", len(skipped))
	}
	for i, sc := range skipped {
		ceiling := min(maxDelay, base<<i)
		if sc.Attempt != i+1 || sc.Delay < 0 || sc.Delay >= ceiling {
			t.Errorf("attempt %d: %+v, want attempt %d with a delay in [0, %s)", i+1, sc, i+1, ceiling)
		}
	}
}

func TestPingAndForwardThroughStub(t *testing.T) {
	stub := startStub(t, nil)
	a := dial(t, stub.url(), newKey(t))
	b := dial(t, stub.url(), newKey(t))
	ping(t, a)
	ping(t, b)
	send(t, a, b.AMID(), "hello")
	m := receiveMessage(t, b)
	if m.From != a.AMID() || m.Payload != "hello" {
		t.Errorf("got %+v, want hello from %s", m, a.AMID())
	}
}

func TestWithoutReconnectFailsOnDrop(t *testing.T) {
	stub := startStub(t, nil)
	st := newStates()
	c := dial(t, stub.url(), newKey(t), st.option(), relay.WithReconnect(false))
	st.waitFor(t, relay.StateConnected)
	stub.dropAll()
	failed, skipped := st.waitFor(t, relay.StateFailed)
	if !errors.Is(failed.Err, relay.ErrConnectionLost) || len(skipped) != 0 {
		t.Fatalf("got %+v after %+v, want a failure wrapping ErrConnectionLost and no reconnect", failed, skipped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if _, err := c.QueryPresence(ctx, c.AMID()); !errors.Is(err, relay.ErrConnectionLost) {
		t.Errorf("QueryPresence after the drop: %v, want ErrConnectionLost", err)
	}
	if err := c.Send(ctx, c.AMID(), "x", protocol.MessageTypeMessage, nil); !errors.Is(err, relay.ErrConnectionLost) {
		t.Errorf("Send after the drop: %v, want ErrConnectionLost", err)
	}
	if n := stub.connects.Load(); n != 1 {
		t.Errorf("relay saw %d CONNECTs, want 1", n)
	}
}

func TestReceiveDrainsQueueAfterFailure(t *testing.T) {
	stub := startStub(t, func(n int, _ protocol.Connect) *protocol.ErrorFrame {
		if n <= 2 {
			return nil
		}
		return &protocol.ErrorFrame{Code: protocol.RelayUnauthorized, Message: "banned"}
	})
	a := dial(t, stub.url(), newKey(t))
	st := newStates()
	b := dial(t, stub.url(), newKey(t), st.option())
	send(t, a, b.AMID(), "queued")
	ping(t, a) // the stub wrote the message to b
	ping(t, b) // b's reader queued it
	stub.dropAll()
	st.waitFor(t, relay.StateFailed)
	if m := receiveMessage(t, b); m.Payload != "queued" {
		t.Errorf("got %q, want the message queued before the failure", m.Payload)
	}
	if _, err := b.Receive(context.Background()); !errors.Is(err, &relay.Error{Code: protocol.RelayUnauthorized}) {
		t.Errorf("Receive after draining: %v, want the refusal", err)
	}
}

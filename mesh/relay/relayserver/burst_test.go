package relayserver

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
)

// TestBurstToReadingRecipient checks what one sender's burst of sends does
// to a connected recipient that reads as fast as it can and acknowledges
// the stored messages it gets: every message is either delivered once, in
// the order it was sent, or refused with an error frame the sender
// receives. The recipient's outbound queue overflows on the way, so
// messages go through the store as well as live, and the store refuses
// what is over the sender's share. The recipient is the relay client
// (which drops repeated stored messages) or a plain WebSocket client
// (which does not, as other clients need not).
func TestBurstToReadingRecipient(t *testing.T) {
	const burst = 2000
	configs := []struct {
		name string
		mod  func(*Config)
	}{
		{"default limits", nil},
		{"no send rate limit", func(c *Config) { c.Limits.SendsPerMinute = -1 }},
		{"small queue and store", func(c *Config) {
			c.Limits.SendsPerMinute = -1
			c.OutboundQueue = 2
			c.MaxQueuedPerRecipient = 8
			c.MaxQueuedPerSenderPerRecipient = 4
		}},
	}
	recipients := []struct {
		name    string
		connect func(*testing.T, *testRelay, *agent) *received
	}{
		{"relay client", receiveWithClient},
		{"websocket", receiveRaw},
	}
	for _, cfg := range configs {
		for _, rcpt := range recipients {
			t.Run(cfg.name+"/"+rcpt.name, func(t *testing.T) {
				r := startRelay(t, cfg.mod)
				a, b := newAgent(t), newAgent(t)
				ca := r.connect(t, a)
				got := rcpt.connect(t, r, b)

				// The sender reads its frames while it sends, as a client
				// must: the relay answers refused sends on the same socket.
				refused := make(chan map[protocol.RelayErrorCode]int, 1)
				go func() {
					codes := make(map[protocol.RelayErrorCode]int)
					defer func() { refused <- codes }()
					for {
						f, err := ca.read()
						if err != nil {
							codes["read failed: "+protocol.RelayErrorCode(err.Error())]++
							return
						}
						switch f := f.(type) {
						case protocol.Pong:
							return
						case protocol.ErrorFrame:
							codes[f.Code]++
						default:
							codes[protocol.RelayErrorCode(fmt.Sprintf("unexpected %T", f))]++
						}
					}
				}()
				pad := strings.Repeat("p", 1000)
				for i := range burst {
					ca.sendTo(b, fmt.Sprintf("%05d%s", i, pad))
				}
				// Frames are handled in order: once the pong arrives, every
				// send has been delivered, queued, stored or refused.
				ca.send(protocol.Ping{Timestamp: protocol.FormatSigningTimestamp(time.Unix(1_700_000_000, 0))})
				codes := <-refused
				nRefused := 0
				for code, n := range codes {
					switch code {
					case protocol.RelayRateLimited, protocol.RelayRecipientOffline:
						nRefused += n
					default:
						t.Errorf("sender got %d × %q", n, code)
					}
				}
				accepted := burst - nRefused
				t.Logf("%d sends: %d accepted, refused %v", burst, accepted, codes)

				// Every accepted message arrives, once and in order.
				prev := -1
				for k := range accepted {
					m := got.next(t, fmt.Sprintf("message %d of %d accepted", k+1, accepted))
					n, err := strconv.Atoi(m.payload[:min(5, len(m.payload))])
					if err != nil || m.from != a.amid {
						t.Fatalf("recipient got %.5q from %s", m.payload, m.from.Short())
					}
					if n <= prev {
						t.Fatalf("recipient got message %d (message id %q) after %d, as its %d. of %d accepted", n, m.id, prev, k+1, accepted)
					}
					prev = n
				}
				logtest.Eventually(t, "the stored messages to be acknowledged", func() bool {
					return r.store.count(t, b.amid) == 0
				})

				// Nothing else follows: after the burst, and a new rate
				// window, the next message is the next one the recipient
				// gets, live.
				r.clock.Advance(time.Minute)
				ca.sendTo(b, "after the burst")
				if extra := ca.sync(); len(extra) != 0 {
					t.Fatalf("sender got %#v", extra)
				}
				if m := got.next(t, "the message after the burst"); m.payload != "after the burst" || m.id != "" {
					t.Fatalf("after the burst: got %.16q (message id %q), want a live delivery of the next message", m.payload, m.id)
				}
			})
		}
	}
}

// delivery is a message as a recipient got it.
type delivery struct {
	from    protocol.AMID
	payload string
	id      string // the message id of a stored message
}

// received is what a recipient's receive loop passes on.
type received struct {
	msgs chan delivery
	errs chan error
}

func newReceived() *received {
	return &received{msgs: make(chan delivery, 1<<16), errs: make(chan error, 1)}
}

// receiveWithClient connects a through the relay client and takes its
// events as fast as they come until the test ends.
func receiveWithClient(t *testing.T, r *testRelay, a *agent) *received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, r.url, a.priv, relay.WithClock(r.clock.Now),
		relay.WithReconnect(false), relay.WithLogger(logtest.Logger(t, "client", hclog.Info)))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	got := newReceived()
	loop := make(chan struct{})
	go func() {
		defer close(loop)
		for {
			ev, err := c.Receive(context.Background())
			if err != nil {
				got.errs <- err
				return
			}
			m, ok := ev.(*relay.Message)
			if !ok {
				got.errs <- fmt.Errorf("recipient got %#v", ev)
				return
			}
			got.msgs <- delivery{from: m.From, payload: m.Payload, id: m.MessageID}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-loop
	})
	return got
}

// receiveRaw connects a over a plain WebSocket and reads its frames as
// fast as they come until the test ends, acknowledging each stored message
// as it arrives.
func receiveRaw(t *testing.T, r *testRelay, a *agent) *received {
	t.Helper()
	c := r.connect(t, a)
	got := newReceived()
	loop := make(chan struct{})
	go func() {
		defer close(loop)
		for {
			f, err := c.read()
			if err != nil {
				got.errs <- err
				return
			}
			m, ok := f.(protocol.Receive)
			if !ok {
				got.errs <- fmt.Errorf("recipient got %#v", f)
				return
			}
			if m.MessageID != "" {
				b, err := protocol.MarshalFrame(protocol.Ack{MessageID: m.MessageID})
				if err == nil {
					err = c.ws.Write(context.Background(), websocket.MessageText, b)
				}
				if err != nil {
					got.errs <- fmt.Errorf("acknowledging: %w", err)
					return
				}
			}
			got.msgs <- delivery{from: m.From, payload: m.EncryptedPayload, id: m.MessageID}
		}
	}()
	t.Cleanup(func() {
		c.ws.CloseNow()
		<-loop
	})
	return got
}

// next returns the next message, failing if the receive loop failed or
// nothing comes within logtest.Patience.
func (g *received) next(t *testing.T, what string) delivery {
	t.Helper()
	select {
	case m := <-g.msgs:
		return m
	case err := <-g.errs:
		t.Fatalf("waiting for %s: %v", what, err)
	case <-time.After(logtest.Patience):
		t.Fatalf("no %s within %v", what, logtest.Patience)
	}
	return delivery{}
}

// TestOrderStoredAsOffline checks a sender's order when one of its
// messages went to the store because its recipient was not connected yet,
// and the store write ends after the recipient connected and its writer
// read the store: the sender's next message, which finds the recipient
// connected, must not overtake the stored one.
func TestOrderStoredAsOffline(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	ca, cb := r.connect(t, a), r.connect(t, b)
	rb := r.srv.lookup(b.amid)
	logtest.Eventually(t, "b's first flush to end", func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return !rb.writing && !rb.spilling
	})
	// Hold b's writer as it is between its read of the store and its
	// writes: no other writer may start meanwhile.
	rb.mu.Lock()
	rb.writing = true
	rb.mu.Unlock()

	// a's first message, stored as for an offline recipient, and the
	// notification handleSend gives the recipient it then finds connected.
	now := r.clock.Now()
	first := &storedMessage{ID: newUUID(), From: a.amid, To: b.amid, Payload: "first", MessageType: protocol.MessageTypeMessage,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := r.store.put(context.Background(), first, now, DefaultMaxQueuedPerRecipient, DefaultMaxQueuedPerSenderPerRecipient); err != nil {
		t.Fatal(err)
	}
	rb.notifyStored()
	ca.sendTo(b, "second")
	if extra := ca.sync(); len(extra) != 0 {
		t.Fatalf("sender got %#v", extra)
	}

	rb.mu.Lock()
	rb.writing = false
	rb.kickLocked()
	rb.mu.Unlock()
	for _, want := range []string{"first", "second"} {
		m := cb.expectReceive()
		if m.EncryptedPayload != want {
			t.Fatalf("got %q, want %q", m.EncryptedPayload, want)
		}
		if m.MessageID != "" {
			cb.send(protocol.Ack{MessageID: m.MessageID})
		}
	}
	// Once the stored messages are pushed, delivery is live again.
	logtest.Eventually(t, "the backlog to be pushed", func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return !rb.spilling
	})
	ca.sendTo(b, "third")
	if m := cb.expectReceive(); m.EncryptedPayload != "third" || m.MessageID != "" {
		t.Fatalf("got %#v, want a live delivery of the third message", m)
	}
}

// TestAckDuringPush checks that a stored message the recipient
// acknowledges while the relay pushes stored messages from a read of the
// store made before the acknowledgement is not pushed to it again.
func TestAckDuringPush(t *testing.T) {
	var armed atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	r := startRelayHooked(t, "sqlite://"+filepath.Join(t.TempDir(), "relay.db"), newClock(), nil, func(s *Server) {
		s.storeReadHookForTest = func(*conn) {
			if armed.CompareAndSwap(true, false) {
				close(reached)
				<-release
			}
		}
	})
	a, b := newAgent(t), newAgent(t)
	cb := r.connect(t, b)
	rb := r.srv.lookup(b.amid)
	now := r.clock.Now()
	m := &storedMessage{ID: newUUID(), From: a.amid, To: b.amid, Payload: "once", MessageType: protocol.MessageTypeMessage,
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := r.store.put(context.Background(), m, now, 0, 0); err != nil {
		t.Fatal(err)
	}
	rb.notifyStored()
	if got := cb.expectReceive(); got.MessageID != m.ID {
		t.Fatalf("got %#v, want the stored message", got)
	}

	// The writer reads the store again, which still lists the message,
	// and is held there while the recipient acknowledges it.
	logtest.Eventually(t, "the first push to end", func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return !rb.writing
	})
	armed.Store(true)
	rb.notifyStored()
	<-reached
	cb.send(protocol.Ack{MessageID: m.ID})
	logtest.Eventually(t, "the acknowledgement to delete the message", func() bool {
		return r.store.count(t, b.amid) == 0
	})
	close(release)
	if extra := cb.sync(); len(extra) != 0 {
		t.Errorf("after acknowledging, the recipient got %#v", extra)
	}
}

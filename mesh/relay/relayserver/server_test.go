package relayserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// TestPingTimeout checks that a client that stops reading, and so stops
// answering WebSocket pings, is unregistered and its socket closed, while
// a client that reads stays.
func TestPingTimeout(t *testing.T) {
	r := startRelay(t, func(c *Config) {
		// Pings are frequent, but the timeout leaves clients that read
		// only now and then (the sender below) time to answer even on a
		// loaded machine.
		c.PingInterval = 20 * time.Millisecond
		c.PingTimeout = 500 * time.Millisecond
	})
	paused, healthy, sender := newAgent(t), newAgent(t), newAgent(t)
	cp := r.connect(t, paused) // never read again: pings go unanswered
	ch := r.connect(t, healthy)
	reading := make(chan error, 1)
	go func() {
		for {
			if _, err := ch.read(); err != nil {
				reading <- err
				return
			}
		}
	}()

	logtest.Eventually(t, "the paused client to be unregistered", func() bool { return r.srv.lookup(paused.amid) == nil })
	logtest.Eventually(t, "the paused client's connection to end", func() bool { return r.srv.connCount() == 1 })
	if r.srv.lookup(healthy.amid) == nil {
		t.Error("the client answering pings was unregistered too")
	}
	// Its messages are stored now, not queued for a dead socket.
	cs := r.connect(t, sender)
	storeFor(t, cs, paused, "while gone")
	if n := r.store.count(t, paused.amid); n != 1 {
		t.Errorf("%d messages stored for the timed-out agent, want 1", n)
	}
	// The socket is closed: reading drains what was buffered, then fails.
	for {
		if _, err := cp.read(); err != nil {
			break
		}
	}
	select {
	case err := <-reading:
		t.Errorf("the healthy client's connection ended: %v", err)
	default:
	}
}

// TestStalledReader checks that a recipient that stops reading slows
// nobody else, and that no message for it is lost: what does not fit its
// queue goes to the store and is pushed once it reads again.
func TestStalledReader(t *testing.T) {
	r := startStallRelay(t, 1000)
	a, stalled, b := newAgent(t), newAgent(t), newAgent(t)
	ca, cs, cb := r.connect(t, a), r.connectWith(t, stalled, smallBuffers()), r.connect(t, b)

	// 64 KiB payloads until the socket buffers and the queue are full and
	// messages start going to the store, then a few more.
	payload := func(i int) string {
		return fmt.Sprintf("%04d", i) + strings.Repeat("p", protocol.MaxMessageSize-4)
	}
	n, extra := 0, -1
	for extra != 0 {
		ca.sendTo(stalled, payload(n))
		n++
		switch {
		case extra > 0:
			extra--
		case n%4 == 0:
			ca.sync()
			if r.store.count(t, stalled.amid) > 0 {
				extra = 5
			}
		}
		if n == 1000 {
			t.Fatal("1000 messages and the recipient never stalled")
		}
	}
	ca.sendTo(b, "not held up")
	if got := cb.expectReceive(); got.EncryptedPayload != "not held up" {
		t.Fatalf("b got %q", got.EncryptedPayload)
	}
	if extra := ca.sync(); len(extra) != 0 {
		t.Fatalf("sender got %#v", extra)
	}
	t.Logf("%d of %d messages went to the store", r.store.count(t, stalled.amid), n)

	seen := make(map[string]int)
	for range n {
		m := cs.expectReceive()
		seen[m.EncryptedPayload[:4]]++
		if m.MessageID != "" {
			cs.send(protocol.Ack{MessageID: m.MessageID})
		}
	}
	for i := range n {
		if c := seen[fmt.Sprintf("%04d", i)]; c != 1 {
			t.Errorf("message %d delivered %d times", i, c)
		}
	}
	cs.sync()
	if left := r.store.count(t, stalled.amid); left != 0 {
		t.Errorf("%d messages left in the store after acknowledging", left)
	}
}

// TestTeardownStoresQueuedMessages checks that messages still queued for
// a connection when it ends are stored, not lost.
func TestTeardownStoresQueuedMessages(t *testing.T) {
	const queue = stallQueue
	r := startStallRelay(t, 1000)
	a, b := newAgent(t), newAgent(t)
	ca, cb := r.connect(t, a), r.connectWith(t, b, smallBuffers())
	// b does not read: its writer blocks, its queue fills, and the rest
	// is stored.
	big := strings.Repeat("q", protocol.MaxMessageSize)
	for r.store.count(t, b.amid) == 0 {
		ca.sendTo(b, big)
		ca.sync()
	}
	before := r.store.count(t, b.amid)
	cb.ws.CloseNow()
	logtest.Eventually(t, "b's teardown", func() bool { return r.srv.connCount() == 1 })
	after := r.store.count(t, b.amid)
	if after-before < queue {
		t.Errorf("teardown stored %d messages, want at least the %d queued", after-before, queue)
	}
	cb = r.connect(t, b)
	if cb.connected.PendingMessages != after {
		t.Errorf("pending_messages = %d, want %d", cb.connected.PendingMessages, after)
	}
	for _, m := range receiveStored(t, cb, after) {
		if m.EncryptedPayload != big || m.From != a.amid {
			t.Errorf("stored message from %s of %d bytes", m.From, len(m.EncryptedPayload))
		}
	}
}

// TestServerClose checks that Close closes every connection with 1001,
// refuses new ones and reports not ready.
func TestServerClose(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	ca, cb := r.connect(t, a), r.connect(t, b)
	pending := &client{t: t, ws: dial(t, r.url), a: newAgent(t)} // not authenticated yet
	// The clients read, and so answer the close handshake.
	statuses := make(chan websocket.StatusCode, 3)
	for _, c := range []*client{ca, cb, pending} {
		go func() {
			for {
				if _, err := c.read(); err != nil {
					statuses <- websocket.CloseStatus(err)
					return
				}
			}
		}()
	}
	r.srv.Close()
	for range 3 {
		if st := <-statuses; st != websocket.StatusGoingAway {
			t.Errorf("close status %v, want %v", st, websocket.StatusGoingAway)
		}
	}
	if n := r.srv.connCount(); n != 0 {
		t.Errorf("%d connections left after Close", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, resp, err := websocket.Dial(ctx, r.url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Close: %v (response %v)", err, resp)
	}
	if code, _ := get(t, r.http.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after Close: %d", code)
	}
	r.srv.Close() // idempotent
}

func get(t *testing.T, url string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestHealth checks /healthz and /readyz.
func TestHealth(t *testing.T) {
	r := startRelay(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body := get(t, r.http.URL+path)
		if code != http.StatusOK || body["status"] != "ok" {
			t.Errorf("%s: %d %v", path, code, body)
		}
	}
	resp, err := http.Post(r.http.URL+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d", resp.StatusCode)
	}
	// A plain GET elsewhere is not a WebSocket upgrade.
	resp, err = http.Get(r.http.URL + "/v1/connect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("GET /v1/connect: %d", resp.StatusCode)
	}
	// The WebSocket is served on any path.
	c := &client{t: t, ws: dial(t, strings.TrimSuffix(r.url, "/v1/connect")+"/"), a: newAgent(t)}
	c.send(c.a.connectFrame(r.clock.Now()))
	if _, ok := c.next().(protocol.Connected); !ok {
		t.Error("no connected on /")
	}

	r.store.Close()
	if code, body := get(t, r.http.URL+"/readyz"); code != http.StatusServiceUnavailable || body["status"] != "unavailable" {
		t.Errorf("/readyz with the store closed: %d %v", code, body)
	}
	if code, _ := get(t, r.http.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with the store closed: %d", code)
	}
}

// TestNewRequiresStore checks Config validation.
func TestNewRequiresStore(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without a store succeeded")
	}
}

package relayserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// fakeClock is the relay's Config.Now in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testRelay is a relay server on a loopback listener.
type testRelay struct {
	srv   *Server
	store *Store
	clock *fakeClock
	url   string
	http  *httptest.Server
	once  sync.Once
}

// startRelay starts a relay with a fresh store; mod adjusts its Config.
func startRelay(t testing.TB, mod func(*Config)) *testRelay {
	t.Helper()
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "relay.db")
	return startRelayOn(t, dsn, newClock(), mod)
}

func startRelayOn(t testing.TB, dsn string, clock *fakeClock, mod func(*Config)) *testRelay {
	t.Helper()
	return startRelayHooked(t, dsn, clock, mod, nil)
}

// stallQueue is the outbound queue, in frames, of startStallRelay.
const stallQueue = 4

// startStallRelay starts a relay for the stalled-reader tests: a fresh
// store, an outbound queue of stallQueue frames, room for maxQueued stored
// messages per recipient and per sender and recipient, no send rate limit
// and small socket send buffers.
func startStallRelay(t testing.TB, maxQueued int) *testRelay {
	t.Helper()
	return startRelayHooked(t, "sqlite://"+filepath.Join(t.TempDir(), "relay.db"), newClock(), func(c *Config) {
		c.OutboundQueue = stallQueue
		c.MaxQueuedPerRecipient = maxQueued
		c.MaxQueuedPerSenderPerRecipient = maxQueued
		c.Limits.SendsPerMinute = -1
	}, smallSendBuffers)
}

// startRelayHooked also lets hook adjust the Server before it serves.
func startRelayHooked(t testing.TB, dsn string, clock *fakeClock, mod func(*Config), hook func(*Server)) *testRelay {
	t.Helper()
	store, err := OpenStore(context.Background(), dsn)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	cfg := Config{Store: store, Logger: logtest.Logger(t, "relay", hclog.Info), Now: clock.Now}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		store.Close()
		t.Fatalf("New: %v", err)
	}
	if hook != nil {
		hook(srv)
	}
	hs := httptest.NewServer(srv)
	r := &testRelay{srv: srv, store: store, clock: clock, http: hs,
		url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/connect"}
	t.Cleanup(r.stop)
	return r
}

// stop closes the relay and its store; it may be called more than once.
func (r *testRelay) stop() {
	r.once.Do(func() {
		r.srv.Close()
		r.http.Close()
		r.store.Close()
	})
}

// agent is an identity that connects to the relay.
type agent struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	amid protocol.AMID
	n    int // CONNECTs signed so far
}

func newAgent(t testing.TB) *agent {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &agent{priv: priv, pub: pub, amid: protocol.DeriveAMID(pub)}
}

// connectFrame returns a valid CONNECT for now. Each call signs a
// different timestamp (a millisecond earlier than the last), as the relay
// refuses a signature it has seen.
func (a *agent) connectFrame(now time.Time) protocol.Connect {
	a.n++
	ts := protocol.FormatSigningTimestamp(now.Add(-time.Duration(a.n) * time.Millisecond))
	return protocol.Connect{
		Protocol:  protocol.ProtocolVersion,
		AMID:      a.amid,
		PublicKey: protocol.EncodeSigningPublicKey(a.pub),
		Signature: protocol.SignTimestamp(a.priv, ts),
		Timestamp: ts,
	}
}

// client is a raw WebSocket connection speaking the relay protocol.
type client struct {
	t         testing.TB
	ws        *websocket.Conn
	a         *agent
	connected protocol.Connected
}

func dial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	return dialWith(t, url, nil)
}

// dialWith dials with opts (nil for the defaults).
func dialWith(t testing.TB, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(4 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// connect dials the relay and authenticates as a.
func (r *testRelay) connect(t testing.TB, a *agent) *client {
	t.Helper()
	return r.connectWith(t, a, nil)
}

func (r *testRelay) connectWith(t testing.TB, a *agent, opts *websocket.DialOptions) *client {
	t.Helper()
	c := &client{t: t, ws: dialWith(t, r.url, opts), a: a}
	c.send(a.connectFrame(r.clock.Now()))
	f := c.next()
	conn, ok := f.(protocol.Connected)
	if !ok {
		t.Fatalf("%s: after connect got %#v, want connected", a.amid.Short(), f)
	}
	c.connected = conn
	return c
}

func (c *client) send(f protocol.Frame) {
	c.t.Helper()
	b, err := protocol.MarshalFrame(f)
	if err != nil {
		c.t.Fatalf("MarshalFrame(%T): %v", f, err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame, or the error that ended the connection.
func (c *client) read() (protocol.ServerFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, errors.New("binary frame from the relay")
	}
	return protocol.ParseServerFrame(data)
}

func (c *client) next() protocol.ServerFrame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.a.amid.Short(), err)
	}
	return f
}

func (c *client) expectError(code protocol.RelayErrorCode) protocol.ErrorFrame {
	c.t.Helper()
	f := c.next()
	e, ok := f.(protocol.ErrorFrame)
	if !ok || e.Code != code {
		c.t.Fatalf("%s: got %#v, want error %s", c.a.amid.Short(), f, code)
	}
	return e
}

func (c *client) expectReceive() protocol.Receive {
	c.t.Helper()
	f := c.next()
	r, ok := f.(protocol.Receive)
	if !ok {
		c.t.Fatalf("%s: got %#v, want receive", c.a.amid.Short(), f)
	}
	return r
}

// expectClosed reads until the connection ends and returns its close
// status; it fails on any frame.
func (c *client) expectClosed() websocket.StatusCode {
	c.t.Helper()
	f, err := c.read()
	if err == nil {
		c.t.Fatalf("%s: got %#v, want the connection closed", c.a.amid.Short(), f)
	}
	return websocket.CloseStatus(err)
}

// sync sends a ping and returns the frames that arrive before its pong:
// the relay handles a connection's frames in order, so everything sent
// before has been handled.
func (c *client) sync() []protocol.ServerFrame {
	c.t.Helper()
	ts := protocol.FormatSigningTimestamp(time.Unix(1_700_000_000, 0))
	c.send(protocol.Ping{Timestamp: ts})
	var before []protocol.ServerFrame
	for {
		f := c.next()
		if _, ok := f.(protocol.Pong); ok {
			return before
		}
		before = append(before, f)
	}
}

// sendTo sends a message of type message to another agent.
func (c *client) sendTo(to *agent, payload string) {
	c.t.Helper()
	c.send(protocol.Send{To: to.amid, EncryptedPayload: payload, MessageType: protocol.MessageTypeMessage})
}

// connCount returns the number of open connections, authenticated or not.
func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// count returns the number of stored rows for recipient, expired or not.
func (s *Store) count(t testing.TB, recipient protocol.AMID) int {
	t.Helper()
	var n int
	err := s.db.QueryRow(`SELECT COUNT(*) FROM messages WHERE recipient = ?`, string(recipient)).Scan(&n)
	if err != nil {
		t.Fatalf("count stored messages: %v", err)
	}
	return n
}

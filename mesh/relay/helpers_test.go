package relay_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
)

// waitTime bounds every wait for an event in these tests. Nothing here
// should take more than a fraction of it; it only keeps a broken build from
// hanging.
const waitTime = 10 * time.Second

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// testLogger sends logs to t.Log until the test ends.
func testLogger(t testing.TB, name string) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: w, Level: hclog.Debug})
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

// states records the state changes of a Conn.
type states struct {
	ch chan relay.StateChange
}

func newStates() *states { return &states{ch: make(chan relay.StateChange, 1000)} }

func (s *states) option() relay.Option {
	return relay.WithStateFunc(func(sc relay.StateChange) { s.ch <- sc })
}

// next returns the next state change.
func (s *states) next(t testing.TB) relay.StateChange {
	t.Helper()
	select {
	case sc := <-s.ch:
		return sc
	case <-time.After(waitTime):
		t.Fatal("no state change")
		return relay.StateChange{}
	}
}

// waitFor returns the next state change to st, skipping others, and the
// ones skipped.
func (s *states) waitFor(t testing.TB, st relay.State) (relay.StateChange, []relay.StateChange) {
	t.Helper()
	var skipped []relay.StateChange
	for {
		sc := s.next(t)
		if sc.State == st {
			return sc, skipped
		}
		skipped = append(skipped, sc)
	}
}

// dial connects key to url, closing the Conn when the test ends.
func dial(t testing.TB, url string, key ed25519.PrivateKey, opts ...relay.Option) *relay.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	opts = append([]relay.Option{relay.WithLogger(testLogger(t, "client")), relay.WithBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)
	c, err := relay.Dial(ctx, url, key, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive returns c's next event.
func receive(t testing.TB, c *relay.Conn) relay.Incoming {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	ev, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return ev
}

// receiveMessage returns c's next event, which must be a *relay.Message.
func receiveMessage(t testing.TB, c *relay.Conn) *relay.Message {
	t.Helper()
	ev := receive(t, c)
	m, ok := ev.(*relay.Message)
	if !ok {
		t.Fatalf("Receive: got %T %+v, want *relay.Message", ev, ev)
	}
	return m
}

func send(t testing.TB, c *relay.Conn, to protocol.AMID, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := c.Send(ctx, to, payload, protocol.MessageTypeMessage, nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func ping(t testing.TB, c *relay.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// asError returns err as a *relay.Error, failing the test if it is not one.
func asError(t testing.TB, err error) *relay.Error {
	t.Helper()
	var re *relay.Error
	if !errors.As(err, &re) {
		t.Fatalf("got error %v (%T), want a *relay.Error", err, err)
	}
	return re
}

// proxy is a TCP proxy in front of a server that a test can cut, hold down
// and make swallow what clients send, to take one Conn offline while others
// stay connected.
type proxy struct {
	ln     net.Listener
	target string

	refuse  atomic.Bool // close new connections at once
	swallow atomic.Bool // discard what clients send
	accepts atomic.Int32
	// up and down count the bytes passed from clients to the server and
	// back.
	up, down atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]bool)}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// url is the WebSocket URL of the relay through the proxy.
// proxiedPair starts a relay and a proxy in front of it, and dials a
// sender a straight to the relay and a recipient b through the proxy,
// connected, whose state changes stB records.
func proxiedPair(t testing.TB) (p *proxy, a, b *relay.Conn, stB *states) {
	t.Helper()
	r := startRelay(t, nil)
	p = startProxy(t, r.addr)
	a = dial(t, r.url(), newKey(t))
	stB = newStates()
	b = dial(t, p.url(), newKey(t), stB.option())
	stB.waitFor(t, relay.StateConnected)
	return p, a, b, stB
}

// reconnectPending cuts the connections through p and returns how many
// messages the relay holds for the client whose states st records, once
// it has connected again.
func reconnectPending(t testing.TB, p *proxy, st *states) int {
	t.Helper()
	p.cut()
	sc, _ := st.waitFor(t, relay.StateConnected)
	return sc.PendingMessages
}

func (p *proxy) url() string { return "ws://" + p.ln.Addr().String() + "/v1/connect" }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepts.Add(1)
		if p.refuse.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.pipe(up, c, &p.swallow, &p.up)
		}()
		go func() {
			defer p.wg.Done()
			p.pipe(c, up, nil, &p.down)
		}()
	}
}

// pipe copies from src to dst, discarding while *drop is set, and counts
// the bytes passed in *n.
func (p *proxy) pipe(dst, src net.Conn, drop *atomic.Bool, n *atomic.Int64) {
	defer func() {
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 && (drop == nil || !drop.Load()) {
			if _, err := dst.Write(buf[:k]); err != nil {
				return
			}
			n.Add(int64(k))
		}
		if err != nil {
			return
		}
	}
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

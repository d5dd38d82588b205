package relay_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
	"github.com/agentmesh/agentmesh-go/mesh/relay/relayserver"
)

// testRelay is the real relay server on a loopback listener, with its
// SQLite store in the test's temporary directory. It can be stopped and
// started again on the same address and store file.
type testRelay struct {
	t    testing.TB
	dsn  string
	addr string
	cfg  relayserver.Config

	store *relayserver.Store
	srv   *relayserver.Server
	hs    *http.Server
	done  chan struct{}
}

// startRelay starts the relay; configure may adjust its Config (Store and
// Logger are set by startRelay).
func startRelay(t testing.TB, configure func(*relayserver.Config)) *testRelay {
	t.Helper()
	r := &testRelay{t: t, dsn: "sqlite://" + filepath.Join(t.TempDir(), "relay.db"), addr: "127.0.0.1:0"}
	r.cfg.Logger = testLogger(t, "relay")
	if configure != nil {
		configure(&r.cfg)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

// url is the relay's WebSocket URL.
func (r *testRelay) url() string { return "ws://" + r.addr + "/v1/connect" }

// start opens the store and serves a new Server on the relay's address.
func (r *testRelay) start() {
	r.t.Helper()
	store, err := relayserver.OpenStore(context.Background(), r.dsn)
	if err != nil {
		r.t.Fatalf("OpenStore: %v", err)
	}
	cfg := r.cfg
	cfg.Store = store
	srv, err := relayserver.New(cfg)
	if err != nil {
		store.Close()
		r.t.Fatalf("relayserver.New: %v", err)
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		srv.Close()
		store.Close()
		r.t.Fatalf("listen on %s: %v", r.addr, err)
	}
	r.addr = ln.Addr().String()
	r.store, r.srv = store, srv
	r.hs = &http.Server{Handler: srv}
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.hs.Serve(ln)
	}()
}

// stop closes the listener, the server (and so every connection) and the
// store. It may be called more than once.
func (r *testRelay) stop() {
	if r.srv == nil {
		return
	}
	r.hs.Close()
	<-r.done
	r.srv.Close()
	r.store.Close()
	r.srv = nil
}

// restart stops the relay and starts a new Server over the same store file
// on the same address.
func (r *testRelay) restart() {
	r.t.Helper()
	r.stop()
	r.start()
}

// noLimits lifts the relay's rate limits.
func noLimits(cfg *relayserver.Config) {
	cfg.Limits = relayserver.Limits{SendsPerMinute: -1, KnocksPerMinute: -1, ICEPerMinute: -1, PresencePerMinute: -1, ControlPerMinute: -1}
}

// waitPresence polls c's view of amid until it has status st.
func waitPresence(t testing.TB, c *relay.Conn, amid protocol.AMID, st protocol.PresenceStatus) protocol.PresenceResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	for {
		r, err := c.QueryPresence(ctx, amid)
		if err != nil {
			t.Fatalf("QueryPresence(%s): %v (waiting for %s)", amid, err, st)
		}
		if r.Status == st {
			return r
		}
		select {
		case <-ctx.Done():
			t.Fatalf("presence of %s stayed %s, want %s", amid, r.Status, st)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// takeOffline cuts the proxied Conn b and refuses its reconnects until the
// returned function is called; it returns once the relay, as a seen by a,
// has noticed b is gone. a and b must have exchanged a message.
func takeOffline(t testing.TB, p *proxy, st *states, a *relay.Conn, b protocol.AMID) (bringBack func()) {
	t.Helper()
	p.refuse.Store(true)
	p.cut()
	st.waitFor(t, relay.StateReconnecting)
	waitPresence(t, a, b, protocol.PresenceOffline)
	return func() { p.refuse.Store(false) }
}

// isNotConnected reports a Send that gave up while reconnecting.
func isNotConnected(err error) bool {
	return errors.Is(err, relay.ErrNotConnected) && errors.Is(err, context.DeadlineExceeded)
}

package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/agentmesh/agentmesh-go/internal/meshtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
	"github.com/agentmesh/agentmesh-go/mesh/relay/relayserver"
)

// host is one side of a test: an agent's relay connection and Hybrid.
type host struct {
	amid protocol.AMID
	h    *Hybrid
}

// loopbackConfig is a direct-path config that never leaves the machine.
func loopbackConfig() Config {
	return Config{P2P: true, NoSTUN: true, TURN: []TURNServer{}, IncludeLoopback: true,
		DirectTimeout: 5 * time.Second, TURNTimeout: 5 * time.Second, PingInterval: 50 * time.Millisecond}
}

// newPair starts a relay and two hosts on it.
func newPair(t testing.TB, ca, cb Config) (a, b *host) {
	t.Helper()
	// A deep outbound queue keeps bursts live: beyond its store share the
	// relay refuses a burst's frames (RECIPIENT_OFFLINE), and the Hybrid
	// does not send refused frames again.
	r := meshtest.StartRelay(t, meshtest.RelayOptions{Configure: func(c *relayserver.Config) { c.OutboundQueue = 1 << 14 }})
	return newHost(t, r, ca), newHost(t, r, cb)
}

func newHost(t testing.TB, r *meshtest.Relay, cfg Config) *host {
	t.Helper()
	ag := meshtest.NewAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := relay.Dial(ctx, r.URL, ag.SigningKey, relay.WithP2PCapable(cfg.P2P))
	if err != nil {
		t.Fatalf("dial relay: %v", err)
	}
	h, err := NewHybrid(conn, cfg, nil)
	if err != nil {
		t.Fatalf("NewHybrid: %v", err)
	}
	t.Cleanup(func() {
		h.Close()
		conn.Close()
	})
	return &host{amid: ag.AMID, h: h}
}

// startTURN runs a TURN server on 127.0.0.1 (UDP) and returns its URL.
func startTURN(t testing.TB, auth turn.AuthHandler) string {
	t.Helper()
	url, _ := startTURNServer(t, auth)
	return url
}

// startTURNServer runs a TURN server on 127.0.0.1 (UDP) and returns its
// URL and the server, closed at the end of the test.
func startTURNServer(t testing.TB, auth turn.AuthHandler) (string, *turn.Server) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("turn listener: %v", err)
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:       "agentmesh.test",
		AuthHandler: auth,
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"},
		}},
	})
	if err != nil {
		t.Fatalf("turn server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return "turn:" + pc.LocalAddr().String() + "?transport=udp", srv
}

// staticAuth accepts one user and records every user name presented.
type userLog struct {
	mu    sync.Mutex
	names map[string]bool
}

func (u *userLog) add(name string) {
	u.mu.Lock()
	if u.names == nil {
		u.names = map[string]bool{}
	}
	u.names[name] = true
	u.mu.Unlock()
}

func (u *userLog) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.names)
}

func staticAuth(user, pass string, seen *userLog) turn.AuthHandler {
	return func(username, realm string, _ net.Addr) ([]byte, bool) {
		seen.add(username)
		if username != user {
			return nil, false
		}
		return turn.GenerateAuthKey(user, realm, pass), true
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func upgrade(t testing.TB, a, b *host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.h.Upgrade(ctx, b.amid); err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	waitFor(t, "both sides direct", func() bool {
		return a.h.Stats(b.amid).Path == PathDirect && b.h.Stats(a.amid).Path == PathDirect
	})
}

// sendN sends frames "0".."n-1" from a to b; pause runs before frame i.
func sendN(t testing.TB, a, b *host, n int, pause func(i int)) <-chan error {
	errc := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := range n {
			if pause != nil {
				pause(i)
			}
			if err := a.h.Send(ctx, b.amid, protocol.MessageTypeMessage, strconv.Itoa(i)); err != nil {
				errc <- fmt.Errorf("send %d: %w", i, err)
				return
			}
		}
		errc <- nil
	}()
	return errc
}

// recvN receives n frames at b and checks they are "0".."n-1" from a, in
// order, each once.
func recvN(t testing.TB, b, a *host, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range n {
		in, err := b.h.Recv(ctx)
		if err != nil {
			t.Fatalf("recv frame %d: %v", i, err)
		}
		if in.From != a.amid || in.Type != protocol.MessageTypeMessage || in.Payload != strconv.Itoa(i) {
			t.Fatalf("frame %d: got %s %s %q, want %s message %q", i, in.From.Short(), in.Type, in.Payload, a.amid.Short(), strconv.Itoa(i))
		}
	}
	// Nothing more: no frame was delivered twice.
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if in, err := b.h.Recv(short); err == nil {
		t.Fatalf("extra frame after %d: %q", n, in.Payload)
	}
}

func TestDirectChannelCarriesFrames(t *testing.T) {
	a, b := newPair(t, loopbackConfig(), loopbackConfig())
	upgrade(t, a, b)
	st := a.h.Stats(b.amid)
	if st.LocalCandidate != "host" || st.RemoteCandidate != "host" {
		t.Fatalf("selected pair %s/%s, want host/host", st.LocalCandidate, st.RemoteCandidate)
	}
	if st.Gathered["host"] == 0 || st.Gathered["relay"] != 0 {
		t.Fatalf("gathered %v, want host candidates only", st.Gathered)
	}
	beforeA, beforeB := a.h.Stats(b.amid), b.h.Stats(a.amid)
	errc := sendN(t, a, b, 50, nil)
	recvN(t, b, a, 50)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	errc = sendN(t, b, a, 50, nil)
	recvN(t, a, b, 50)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	afterA, afterB := a.h.Stats(b.amid), b.h.Stats(a.amid)
	if afterA.SentDirect-beforeA.SentDirect != 50 || afterA.SentRelay != beforeA.SentRelay {
		t.Fatalf("a sent %d direct and %d relay, want 50 and 0", afterA.SentDirect-beforeA.SentDirect, afterA.SentRelay-beforeA.SentRelay)
	}
	if afterB.SentDirect-beforeB.SentDirect != 50 || afterB.SentRelay != beforeB.SentRelay {
		t.Fatalf("b sent %d direct and %d relay, want 50 and 0", afterB.SentDirect-beforeB.SentDirect, afterB.SentRelay-beforeB.SentRelay)
	}
	waitFor(t, "a pong", func() bool { return a.h.Stats(b.amid).PongsReceived > 0 })
	if st := a.h.Stats(b.amid); st.RTT <= 0 || st.PingsSent == 0 {
		t.Fatalf("stats after pings: %+v", st)
	}
}

func TestRelayOnlyPolicyUsesTURN(t *testing.T) {
	var seen userLog
	url := startTURN(t, staticAuth("alice", "s3cret", &seen))
	ca := loopbackConfig()
	ca.RelayOnly = true
	ca.TURN = []TURNServer{{URL: url, Username: "alice", Credential: "s3cret"}}
	a, b := newPair(t, ca, loopbackConfig())
	upgrade(t, a, b)
	st := a.h.Stats(b.amid)
	if st.LocalCandidate != "relay" {
		t.Fatalf("selected local candidate %q, want relay", st.LocalCandidate)
	}
	if st.Gathered["relay"] == 0 || st.Gathered["host"] != 0 {
		t.Fatalf("gathered %v, want relay candidates only", st.Gathered)
	}
	if seen.count() == 0 {
		t.Fatal("the TURN server saw no user")
	}
	errc := sendN(t, a, b, 100, nil)
	recvN(t, b, a, 100)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := a.h.Stats(b.amid).SentDirect; got != 100 {
		t.Fatalf("sent %d frames direct, want 100", got)
	}
}

func TestTURNGatheredWithDirectPolicy(t *testing.T) {
	var seen userLog
	url := startTURN(t, staticAuth("alice", "s3cret", &seen))
	ca := loopbackConfig()
	ca.TURN = []TURNServer{{URL: url, Username: "alice", Credential: "s3cret"}}
	a, b := newPair(t, ca, loopbackConfig())
	upgrade(t, a, b)
	st := a.h.Stats(b.amid)
	if st.Gathered["relay"] == 0 || st.Gathered["host"] == 0 {
		t.Fatalf("gathered %v, want host and relay candidates", st.Gathered)
	}
	if st.LocalCandidate != "host" {
		t.Fatalf("selected local candidate %q, want host (preferred over relay)", st.LocalCandidate)
	}
}

func TestBurstAcrossSwitchArrivesOnceInOrder(t *testing.T) {
	a, b := newPair(t, loopbackConfig(), loopbackConfig())
	const n = 2000
	up := make(chan error, 1)
	errc := sendN(t, a, b, n, func(i int) {
		if i == 200 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				up <- a.h.Upgrade(ctx, b.amid)
			}()
		}
		if i >= 200 && i%50 == 0 {
			time.Sleep(5 * time.Millisecond) // spread the burst over the upgrade
		}
	})
	recvN(t, b, a, n)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := <-up; err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	st := a.h.Stats(b.amid)
	if st.SentRelay == 0 || st.SentDirect == 0 {
		t.Fatalf("sent %d relay and %d direct: the burst did not cross the switch", st.SentRelay, st.SentDirect)
	}
}

func TestChannelClosedFallsBackWithoutLoss(t *testing.T) {
	a, b := newPair(t, loopbackConfig(), loopbackConfig())
	upgrade(t, a, b)
	const n = 3000
	errc := sendN(t, a, b, n, func(i int) {
		if i == 1000 {
			// The receiver closes its end mid-stream: frames in flight
			// are lost on the channel and must come again by relay.
			b.h.peer(a.amid).attMu.Lock()
			att := b.h.peer(a.amid).att
			b.h.peer(a.amid).attMu.Unlock()
			att.mu.Lock()
			ch := att.ch
			att.mu.Unlock()
			_ = ch.dc.Close()
		}
	})
	recvN(t, b, a, n)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := a.h.Stats(b.amid)
	if st.Path != PathRelay || st.Fallbacks != 1 {
		t.Fatalf("after close: path %s, %d fallbacks; want relay, 1", st.Path, st.Fallbacks)
	}
	if st.SentDirect == 0 || st.SentRelay == 0 {
		t.Fatalf("sent %d direct and %d relay; want both", st.SentDirect, st.SentRelay)
	}
	t.Logf("frames resent on the relay: %d", st.Resent)
	// The other direction falls back too and still works.
	waitFor(t, "b back on the relay", func() bool { return b.h.Stats(a.amid).Path == PathRelay })
	errc = sendN(t, b, a, 20, nil)
	recvN(t, a, b, 20)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestUpgradeFailsAndStaysOnRelay(t *testing.T) {
	ca := loopbackConfig()
	ca.DirectTimeout = 500 * time.Millisecond
	cb := loopbackConfig()
	cb.P2P = false // the peer never answers offers
	a, b := newPair(t, ca, cb)
	err := a.h.Upgrade(context.Background(), b.amid)
	if err == nil {
		t.Fatal("Upgrade to a peer that does not answer succeeded")
	}
	if st := a.h.Stats(b.amid); st.Path != PathRelay {
		t.Fatalf("path %s after a failed upgrade, want relay", st.Path)
	}
	errc := sendN(t, a, b, 20, nil)
	recvN(t, b, a, 20)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestUpgradeTriesTURNAfterDirect(t *testing.T) {
	// The peer gathers nothing but relay candidates of its own and the
	// direct attempt is cut short, so the TURN attempt must carry it.
	var seen userLog
	url := startTURN(t, staticAuth("bob", "pw", &seen))
	ca := loopbackConfig()
	ca.DirectTimeout = time.Nanosecond // too short for any direct attempt
	ca.TURN = []TURNServer{{URL: "turn:127.0.0.1:1?transport=udp", Username: "x", Credential: "y"}, {URL: url, Username: "bob", Credential: "pw"}}
	ca.TURNTimeout = 4 * time.Second
	a, b := newPair(t, ca, loopbackConfig())
	upgrade(t, a, b)
	if st := a.h.Stats(b.amid); st.LocalCandidate != "relay" {
		t.Fatalf("selected local candidate %q, want relay (second TURN server)", st.LocalCandidate)
	}
}

// restTURNConfig starts a TURN server with time-limited (REST) credentials,
// recording the user names it sees in seen, and returns a relay-only
// config for name whose credentials last 4 s and are renewed 2 s early.
func restTURNConfig(t *testing.T, seen *userLog, name string) Config {
	t.Helper()
	const secret = "rest-secret"
	rest := turn.LongTermTURNRESTAuthHandler(secret, nil)
	url := startTURN(t, func(username, realm string, src net.Addr) ([]byte, bool) {
		seen.add(username)
		return rest(username, realm, src)
	})
	c := loopbackConfig()
	c.RelayOnly = true
	c.TURN = []TURNServer{{URL: url, Secret: secret, Name: name, TTL: 4 * time.Second}}
	c.RefreshBefore = 2 * time.Second
	return c
}

func TestTURNCredentialsRefreshedWithoutLoss(t *testing.T) {
	var seen userLog
	ca := restTURNConfig(t, &seen, "alice")
	a, b := newPair(t, ca, loopbackConfig())
	upgrade(t, a, b)
	const n = 600
	errc := sendN(t, a, b, n, func(int) { time.Sleep(7 * time.Millisecond) })
	recvN(t, b, a, n)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an ICE restart", func() bool { return a.h.Stats(b.amid).ICERestarts > 0 })
	st := a.h.Stats(b.amid)
	if st.Path != PathDirect || st.Fallbacks != 0 {
		t.Fatalf("after refresh: path %s, %d fallbacks; want direct, 0", st.Path, st.Fallbacks)
	}
	if seen.count() < 2 {
		t.Fatalf("the TURN server saw %d user names, want fresh credentials after the first", seen.count())
	}
	if st.SentRelay != 0 {
		t.Fatalf("%d frames went through the relay", st.SentRelay)
	}
}

func TestConfig(t *testing.T) {
	c, err := Config{TURN: []TURNServer{}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.STUN) != 2 || c.STUN[0] != DefaultSTUN[0] || c.STUN[1] != DefaultSTUN[1] {
		t.Fatalf("default STUN %v", c.STUN)
	}
	c, _ = Config{STUN: []string{"stun:127.0.0.1:3478"}, TURN: []TURNServer{}}.withDefaults()
	if len(c.STUN) != 1 || c.STUN[0] != "stun:127.0.0.1:3478" {
		t.Fatalf("configured STUN %v, want it alone", c.STUN)
	}
	c, _ = Config{NoSTUN: true, TURN: []TURNServer{}}.withDefaults()
	if servers, _ := c.iceServers(nil); len(servers) != 0 {
		t.Fatalf("NoSTUN gave servers %v", servers)
	}
	env := map[string]string{EnvTURNURL: "turn:turn.example:3478", EnvTURNUsername: "u", EnvTURNCredential: "p"}
	got := TURNFromEnv(func(k string) string { return env[k] })
	if len(got) != 1 || got[0] != (TURNServer{URL: "turn:turn.example:3478", Username: "u", Credential: "p"}) {
		t.Fatalf("TURNFromEnv = %+v", got)
	}
	if TURNFromEnv(func(string) string { return "" }) != nil {
		t.Fatal("TURNFromEnv without a URL returned a server")
	}
	for _, bad := range []Config{
		{STUN: []string{"http://x"}},
		{TURN: []TURNServer{{URL: "stun:x"}}},
		{TURN: []TURNServer{{URL: "turn:x"}}},
		{RelayOnly: true, TURN: []TURNServer{}},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
	// REST credentials are what a REST-secret TURN server accepts.
	user, cred := RESTCredentials("k", "alice", time.Now().Add(time.Hour))
	key, ok := turn.LongTermTURNRESTAuthHandler("k", nil)(user, "r", nil)
	if !ok || string(key) != string(turn.GenerateAuthKey(user, "r", cred)) {
		t.Fatal("REST credentials rejected by the TURN server's handler")
	}
	user, _ = RESTCredentials("k", "alice", time.Now().Add(-time.Minute))
	if _, ok := turn.LongTermTURNRESTAuthHandler("k", nil)(user, "r", nil); ok {
		t.Fatal("expired REST credentials accepted")
	}
}

func TestWireControlAndDataFormats(t *testing.T) {
	k, seq, ok := parseControl(protocol.MessageTypeStatus, controlPayload(controlResume, 42))
	if !ok || k != controlResume || seq != 42 {
		t.Fatalf("control round trip: %v %d %v", k, seq, ok)
	}
	if k, _, ok := parseControl(protocol.MessageTypeStatus, controlPayload(controlRestart, 0)); !ok || k != controlRestart {
		t.Fatalf("restart marker read as %q, %v", k, ok)
	}
	for _, p := range []string{"amtp/1 jump 1", "amtp/1 switch x", `{"type":"status"}`} {
		if _, _, ok := parseControl(protocol.MessageTypeStatus, p); ok {
			t.Errorf("%q read as control", p)
		}
	}
	if _, _, ok := parseControl(protocol.MessageTypeMessage, controlPayload(controlSwitch, 1)); ok {
		t.Error("control read from a message frame")
	}
	kind, n, typ, payload, err := decodeDC(encodeData(7, protocol.MessageTypeKnock, `{"x":1}`))
	if err != nil || kind != dcData || n != 7 || typ != protocol.MessageTypeKnock || payload != `{"x":1}` {
		t.Fatalf("data round trip: %c %d %s %q %v", kind, n, typ, payload, err)
	}
	for _, b := range [][]byte{nil, {'D', 0, 0, 0, 0, 0, 0, 0, 1, 9, 'x'}, {'Z', 0, 0, 0, 0, 0, 0, 0, 1}} {
		if _, _, _, _, err := decodeDC(b); !errors.Is(err, errBadDCMessage) {
			t.Errorf("decodeDC(%v) = %v", b, err)
		}
	}
}

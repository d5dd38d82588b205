package session_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/host/skills"
	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// The benchmarks below run two Managers in one process, joined by an
// in-memory transport and an in-memory directory, so that they measure the
// session layer's own work (signatures, X3DH, ratchets, envelopes, the
// nonce store) and not the network, the relay or the registry.

// benchFlightSchema is the schema id of the flight-search capability.
const benchFlightSchema = "agentmesh/travel/flight-search/v1"

// memTransport is one end of an in-memory transport: what one end sends,
// the other receives, in order, with the sender's AMID as From.
type memTransport struct {
	self protocol.AMID
	peer *memTransport
	in   chan transport.Inbound
	done chan struct{}
	once sync.Once
}

var _ transport.Transport = (*memTransport)(nil)

// memTransportPair returns the two connected ends for a and b.
func memTransportPair(a, b protocol.AMID) (*memTransport, *memTransport) {
	ta := &memTransport{self: a, in: make(chan transport.Inbound, 1024), done: make(chan struct{})}
	tb := &memTransport{self: b, in: make(chan transport.Inbound, 1024), done: make(chan struct{})}
	ta.peer, tb.peer = tb, ta
	return ta, tb
}

func (t *memTransport) Send(ctx context.Context, to protocol.AMID, typ protocol.MessageType, payload string) error {
	if to != t.peer.self {
		return fmt.Errorf("memTransport: no route from %s to %s", t.self.Short(), to.Short())
	}
	select {
	case <-t.done:
		return transport.ErrClosed
	default:
	}
	select {
	case t.peer.in <- transport.Inbound{From: t.self, Type: typ, Payload: payload}:
		return nil
	case <-t.done:
		return transport.ErrClosed
	case <-t.peer.done:
		return transport.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *memTransport) Recv(ctx context.Context) (transport.Inbound, error) {
	select {
	case in := <-t.in:
		return in, nil
	case <-t.done:
		return transport.Inbound{}, transport.ErrClosed
	case <-ctx.Done():
		return transport.Inbound{}, ctx.Err()
	}
}

// Close makes both Send and Recv fail with transport.ErrClosed.
func (t *memTransport) Close() { t.once.Do(func() { close(t.done) }) }

// memPrekeys is a receiver's prekeys, held in memory: the public halves
// for the directory to hand out, one one-time prekey per bundle, and the
// private halves for answering KNOCKs. It implements session.PrekeyStore.
type memPrekeys struct {
	signed  *ratchet.SignedPrekey
	bundle  registry.PrekeyBundle // without one-time prekey
	public  []registry.OneTimePrekey
	next    atomic.Int64 // index of the next one-time prekey to hand out
	mu      sync.Mutex
	oneTime map[uint32]*ratchet.OneTimePrekey
}

var _ session.PrekeyStore = (*memPrekeys)(nil)

// newMemPrekeys makes a signed prekey and n one-time prekeys for id.
func newMemPrekeys(tb testing.TB, id *identity.Identity, n int) *memPrekeys {
	tb.Helper()
	spk, err := ratchet.GenerateSignedPrekey(rand.Reader, 1, id.Signer())
	if err != nil {
		tb.Fatal(err)
	}
	otks, err := ratchet.GenerateOneTimePrekeys(rand.Reader, 1, n)
	if err != nil {
		tb.Fatal(err)
	}
	ik, err := ratchet.PublicKeyFromECDH(id.ExchangePublicKey())
	if err != nil {
		tb.Fatal(err)
	}
	p := &memPrekeys{
		signed: spk,
		bundle: registry.PrekeyBundle{
			IdentityKey:           ik.String(),
			SignedPrekey:          spk.PublicKey().String(),
			SignedPrekeySignature: protocol.B64.EncodeToString(spk.Signature()),
			SignedPrekeyID:        int32(spk.ID),
		},
		public:  make([]registry.OneTimePrekey, n),
		oneTime: make(map[uint32]*ratchet.OneTimePrekey, n),
	}
	for i, k := range otks {
		p.public[i] = registry.OneTimePrekey{ID: int32(k.ID), Key: k.PublicKey().String()}
		p.oneTime[k.ID] = k
	}
	return p
}

// fetch returns a new bundle carrying the next unused one-time prekey, as
// the registry does, or none once all were handed out.
func (p *memPrekeys) fetch() *registry.PrekeyBundle {
	b := p.bundle
	if i := p.next.Add(1) - 1; i < int64(len(p.public)) {
		otk := p.public[i]
		b.OneTimePrekey = &otk
		b.OneTimePrekeys = []registry.OneTimePrekey{otk}
	}
	return &b
}

func (p *memPrekeys) SignedPrekey(id uint32) (*ratchet.PrivateKey, bool) {
	if id != p.signed.ID {
		return nil, false
	}
	return p.signed.PrivateKey(), true
}

func (p *memPrekeys) OneTimePrekey(id uint32) (*ratchet.PrivateKey, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.oneTime[id]
	if !ok {
		return nil, false
	}
	return k.PrivateKey(), true
}

func (p *memPrekeys) Consume(id uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.oneTime[id]; !ok {
		return fmt.Errorf("one-time prekey %d: %w", id, ratchet.ErrUnknownPrekey)
	}
	delete(p.oneTime, id)
	return nil
}

// memDirectory is the registry as two benchmark hosts see it: each one's
// lookup, built from its identity, and the prekey bundles of those that
// take KNOCKs. It implements session.Directory.
type memDirectory struct {
	agents  map[protocol.AMID]registry.AgentLookup
	prekeys map[protocol.AMID]*memPrekeys
}

var _ session.Directory = (*memDirectory)(nil)

func newMemDirectory() *memDirectory {
	return &memDirectory{agents: map[protocol.AMID]registry.AgentLookup{}, prekeys: map[protocol.AMID]*memPrekeys{}}
}

// add lists id as an anonymous agent, with its prekeys when p is not nil.
// It must not be called once the directory is in use.
func (d *memDirectory) add(id *identity.Identity, p *memPrekeys) {
	d.agents[id.AMID()] = registry.AgentLookup{
		AMID:              string(id.AMID()),
		Tier:              registry.TierAnonymous,
		SigningPublicKey:  protocol.EncodeSigningPublicKey(id.SigningPublicKey()),
		ExchangePublicKey: protocol.EncodeExchangePublicKey(id.ExchangePublicKey()),
		Status:            "online",
		ReputationScore:   0.5,
		ReputationStatus:  "established",
	}
	if p != nil {
		d.prekeys[id.AMID()] = p
	}
}

func (d *memDirectory) Lookup(_ context.Context, amid string) (*registry.AgentLookup, error) {
	l, ok := d.agents[protocol.AMID(amid)]
	if !ok {
		return nil, fmt.Errorf("memDirectory: no agent %s", amid)
	}
	return &l, nil
}

func (d *memDirectory) FetchPrekeyBundle(_ context.Context, amid string) (*registry.PrekeyBundle, error) {
	p, ok := d.prekeys[protocol.AMID(amid)]
	if !ok {
		return nil, fmt.Errorf("memDirectory: no prekeys for %s", amid)
	}
	return p.fetch(), nil
}

// benchPair is an initiator and a receiver joined in memory.
type benchPair struct {
	a, b    *session.Manager
	bAMID   protocol.AMID
	prekeys *memPrekeys
	stop    func()
}

// benchPairOptions shape a benchPair.
type benchPairOptions struct {
	// handler serves the receiver's REQUESTs.
	handler session.Handler
	// oneTime is how many one-time prekeys the receiver holds.
	oneTime int
	// nonceDir holds the receiver's nonce store; empty means tb.TempDir().
	nonceDir string
}

// newBenchPair starts two Managers over an in-memory transport and
// directory. The receiver's policy is permissive, with the highest KNOCK
// rate and a capacity no benchmark reaches. stop shuts both down; it is
// also called when tb ends.
func newBenchPair(tb testing.TB, o benchPairOptions) *benchPair {
	tb.Helper()
	idA, err := identity.Generate(rand.Reader, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	idB, err := identity.Generate(rand.Reader, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	pkB := newMemPrekeys(tb, idB, o.oneTime)
	dir := newMemDirectory()
	dir.add(idA, nil)
	dir.add(idB, pkB)
	ta, tbT := memTransportPair(idA.AMID(), idB.AMID())

	nonceDir := o.nonceDir
	if nonceDir == "" {
		nonceDir = tb.TempDir()
	}
	noncesA, err := session.OpenNonceStore(filepath.Join(tb.TempDir(), "nonces"), 0)
	if err != nil {
		tb.Fatal(err)
	}
	noncesB, err := session.OpenNonceStore(filepath.Join(nonceDir, "nonces"), 0)
	if err != nil {
		tb.Fatal(err)
	}
	policy := session.Permissive()
	policy.KnocksPerMinute = session.MaxKnocksPerMinute
	policy.MaxConcurrentSessions = 1 << 30

	// The initiator has no prekeys of its own: it only opens sessions.
	a, err := session.New(session.Config{
		Identity: idA, Directory: dir, Transport: ta, Prekeys: newMemPrekeys(tb, idA, 0), Nonces: noncesA,
	})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := session.New(session.Config{
		Identity: idB, Directory: dir, Transport: tbT, Prekeys: pkB, Nonces: noncesB,
		Policy: policy, Handler: o.handler,
	})
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, m := range []*session.Manager{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(context.Background()); err != nil {
				tb.Errorf("Run: %v", err)
			}
		}()
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// Closing the transports first makes every CLOSE the Managers
			// send on their way out fail at once instead of waiting for a
			// peer that no longer reads.
			ta.Close()
			tbT.Close()
			a.Close()
			b.Close()
			wg.Wait()
			noncesA.Close()
			noncesB.Close()
		})
	}
	tb.Cleanup(stop)
	return &benchPair{a: a, b: b, bAMID: idB.AMID(), prekeys: pkB, stop: stop}
}

// tmpfsDir returns a new directory on a RAM-backed file system, where
// fsync costs next to nothing, removed when tb ends; "" when the machine
// has none.
func tmpfsDir(tb testing.TB) string {
	tb.Helper()
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		return ""
	}
	dir, err := os.MkdirTemp("/dev/shm", "session-bench-")
	if err != nil {
		return ""
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// handshakeOptions are the OpenOptions of the handshake benchmarks: a
// capability the receiver's echoHandler offers, so that negotiation has
// something to agree on.
var handshakeOptions = session.OpenOptions{Intent: "test/echo", Capabilities: []string{"x-test/echo/v1"}}

// BenchmarkHandshake measures complete handshakes: Open on the initiator
// (lookup, bundle verification, X3DH, signed KNOCK) through the receiver's
// checks (signatures, nonce store, policy), its X3DH and signed ACCEPT, to
// both ratchets started. Each handshake consumes a one-time prekey, so X3DH
// takes four DH values, as with a registry that has prekeys to hand out.
// Sessions stay open (the receiver's capacity is out of reach), so that no
// CLOSE traffic mixes in.
//
// "sequential" opens one session after another; "parallel" runs many Opens
// at once (8 per GOMAXPROCS), as when many peers KNOCK together. The nonce
// store is on the temporary directory's file system ("disk") and, where
// the machine has one, on tmpfs ("tmpfs"): the difference is the cost of
// syncing each KNOCK's nonce to disk.
func BenchmarkHandshake(b *testing.B) {
	type store struct {
		name string
		dir  func(testing.TB) string // a new directory for one run
	}
	stores := []store{{"disk", func(tb testing.TB) string { return tb.TempDir() }}}
	if root := tmpfsDir(b); root != "" {
		stores = append(stores, store{"tmpfs", func(tb testing.TB) string {
			d, err := os.MkdirTemp(root, "nonces-")
			if err != nil {
				tb.Fatal(err)
			}
			return d
		}})
	}
	for _, st := range stores {
		b.Run("sequential/nonces="+st.name, func(b *testing.B) {
			p := newBenchPair(b, benchPairOptions{handler: echoHandler{}, oneTime: b.N, nonceDir: st.dir(b)})
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.a.Open(ctx, p.bAMID, handshakeOptions); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
			checkHandshakes(b, p, b.N)
		})
		b.Run("parallel/nonces="+st.name, func(b *testing.B) {
			p := newBenchPair(b, benchPairOptions{handler: echoHandler{}, oneTime: b.N, nonceDir: st.dir(b)})
			ctx := context.Background()
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.a.Open(ctx, p.bAMID, handshakeOptions); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
			checkHandshakes(b, p, b.N)
		})
	}
}

// checkHandshakes fails the benchmark unless n sessions are open on both
// sides and every handshake used a one-time prekey.
func checkHandshakes(b *testing.B, p *benchPair, n int) {
	b.Helper()
	if got := len(p.a.Sessions()); got != n {
		b.Fatalf("initiator has %d sessions, want %d", got, n)
	}
	// The receiver registers its session before it sends the ACCEPT, so
	// it has them all by now.
	if got := len(p.b.Sessions()); got != n {
		b.Fatalf("receiver has %d sessions, want %d", got, n)
	}
	p.prekeys.mu.Lock()
	left := len(p.prekeys.oneTime)
	p.prekeys.mu.Unlock()
	if left != 0 {
		b.Fatalf("%d one-time prekeys left unconsumed after %d handshakes", left, n)
	}
}

// BenchmarkRequestPath measures one REQUEST → RESPONSE after another on
// one open session, through the real flight-search plugin ("session"),
// against the floor of the same REQUEST dispatched to the same skill
// without the session layer ("direct"), and through the session layer
// alone with an in-process handler ("echo"). The flight search sends three
// STATUS updates before its RESPONSE, each an encrypted message of its
// own; echo sends one.
func BenchmarkRequestPath(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		sk := newSkills(b, "flight-search")
		ctx := context.Background()
		meta := skills.DispatchMeta{Schema: benchFlightSchema}
		statuses := 0
		onStatus := func(protocol.Status) { statuses++ }
		dispatch := func() {
			answer, err := sk.Dispatch(ctx, flightRequest(), meta, onStatus)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := answer.(*protocol.Response); !ok {
				b.Fatalf("answer %#v, want a RESPONSE", answer)
			}
		}
		dispatch() // start the plugin
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			dispatch()
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		if statuses == 0 {
			b.Fatal("the skill sent no STATUS")
		}
	})
	b.Run("session", func(b *testing.B) {
		handler := skillHandler(newSkills(b, "flight-search"))
		benchRequests(b, handler, session.OpenOptions{Intent: "travel/flights/search", Capabilities: []string{benchFlightSchema}},
			flightRequest, benchFlightSchema)
	})
	b.Run("echo", func(b *testing.B) {
		echo := func() *protocol.Request {
			return &protocol.Request{Intent: "test/echo", Parameters: flightRequest().Parameters}
		}
		benchRequests(b, echoHandler{}, handshakeOptions, echo, "x-test/echo/v1")
	})
}

// benchRequests opens one session to a receiver served by handler and
// sends b.N REQUESTs made by req, one after another.
func benchRequests(b *testing.B, handler session.Handler, opts session.OpenOptions, req func() *protocol.Request, schema string) {
	p := newBenchPair(b, benchPairOptions{handler: handler, oneTime: 1})
	ctx := context.Background()
	s, err := p.a.Open(ctx, p.bAMID, opts)
	if err != nil {
		b.Fatal(err)
	}
	statuses := 0
	onStatus := func(*protocol.Status) { statuses++ }
	request := func() {
		answer, err := s.Request(ctx, req(), schema, onStatus)
		if err != nil {
			b.Fatal(err)
		}
		if r, ok := answer.(*protocol.Response); !ok || r.Status != protocol.ResponseSuccess {
			b.Fatalf("answer %#v, want a successful RESPONSE", answer)
		}
	}
	request() // start the plugin; the responder's ratchet can send from now on
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		request()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
	if statuses == 0 {
		b.Fatal("no STATUS reached the requester")
	}
	if err := s.Close(ctx, protocol.CloseCompleted); err != nil && !errors.Is(err, transport.ErrClosed) {
		b.Fatal(err)
	}
}

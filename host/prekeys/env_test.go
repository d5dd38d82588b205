package prekeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/internal/meshtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
	"github.com/agentmesh/agentmesh-go/mesh/registry/registryserver"
)

// startRegistry runs a real registry server on loopback over a SQLite store
// in a temporary directory and returns a client for it. The registry takes
// a requester's address from X-Forwarded-For, so that a test can fetch
// bundles as many requesters (see requester) past the per-requester limit
// on one-time prekeys.
func startRegistry(t *testing.T) *registry.Client {
	t.Helper()
	return meshtest.StartRegistry(t, meshtest.RegistryOptions{
		Configure: func(c *registryserver.Config) { c.TrustForwardedFor = true },
	}).Client
}

// requesters numbers the requesters of the package's tests.
var requesters atomic.Uint32

// requester returns a client of c's registry whose requests come from a
// requester no other client of the test binary uses.
func requester(t *testing.T, c *registry.Client) *registry.Client {
	t.Helper()
	i := requesters.Add(1)
	ip := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
	r, err := registry.NewClient(c.BaseURL(), registry.WithHTTPClient(&http.Client{Transport: forwardedFor(ip)}))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// forwardedFor sends requests as a proxy would for the client at its
// address.
type forwardedFor string

func (ip forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", string(ip))
	return http.DefaultTransport.RoundTrip(r)
}

// drainTo fetches a's bundle as initiators do until the registry holds
// want one-time prekeys, each requester taking as many as the registry's
// per-requester limit allows. It returns the one-time prekey ids handed
// out, in order.
func drainTo(t *testing.T, c *registry.Client, a *agent, want int) []uint32 {
	t.Helper()
	have := registryCount(t, c, a)
	var ids []uint32
	for have > want {
		r := requester(t, c)
		for range min(registryserver.PrekeyFetchBurst, have-want) {
			b, err := r.FetchPrekeyBundle(context.Background(), a.amid())
			if err != nil {
				t.Fatal(err)
			}
			otpk := b.OneTime()
			if otpk == nil {
				t.Fatal("a new requester got a bundle without a one-time prekey")
			}
			ids = append(ids, uint32(otpk.ID))
			have--
		}
	}
	if got := registryCount(t, c, a); got != want {
		t.Fatalf("after draining the registry holds %d one-time prekeys, want %d", got, want)
	}
	return ids
}

// agent is a registered agent: its identity and a registry signer that
// signs through it.
type agent struct {
	id     *identity.Identity
	signer *registry.Signer
}

func (a *agent) amid() string { return string(a.id.AMID()) }

// newAgent generates an identity and registers it with the registry.
func newAgent(t *testing.T, c *registry.Client) *agent {
	t.Helper()
	id, err := identity.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{id: id, signer: registry.NewSignerFunc(id.SigningPublicKey(), id.Sign)}
	_, err = c.Register(context.Background(), a.signer, registry.RegisterRequest{
		ExchangePublicKey: protocol.EncodeExchangePublicKey(id.ExchangePublicKey()),
	})
	if err != nil {
		t.Fatalf("registering %s: %v", a.amid(), err)
	}
	return a
}

// openStore opens a store for a in a fresh directory.
func openStore(t *testing.T, a *agent, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "prekeys", "prekeys.json"), a.id, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reopen loads the store's file again, as after a restart.
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	again, err := Open(s.Path(), s.id, s.opts)
	if err != nil {
		t.Fatalf("reopening %s: %v", s.Path(), err)
	}
	return again
}

// fetchBundle fetches to's bundle from the registry as an initiator does,
// checking its signature against the signing key the registry lists.
func fetchBundle(t *testing.T, c *registry.Client, to *agent) *ratchet.Bundle {
	t.Helper()
	ctx := context.Background()
	rb, err := c.FetchPrekeyBundle(ctx, to.amid())
	if err != nil {
		t.Fatalf("fetching the bundle of %s: %v", to.amid(), err)
	}
	eb := ratchet.EncodedBundle{
		IdentityKey:           rb.IdentityKey,
		SignedPrekey:          rb.SignedPrekey,
		SignedPrekeySignature: rb.SignedPrekeySignature,
		SignedPrekeyID:        uint32(rb.SignedPrekeyID),
	}
	if otpk := rb.OneTime(); otpk != nil {
		eb.OneTimePrekey = &ratchet.EncodedPrekey{ID: uint32(otpk.ID), Key: otpk.Key}
	}
	b, err := eb.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if err := ratchet.VerifyBundle(b, signingKey(t, c, to)); err != nil {
		t.Fatalf("bundle of %s: %v", to.amid(), err)
	}
	return b
}

func signingKey(t *testing.T, c *registry.Client, a *agent) []byte {
	t.Helper()
	l, err := c.Lookup(context.Background(), a.amid())
	if err != nil {
		t.Fatal(err)
	}
	k, err := protocol.ParseSigningPublicKey(l.SigningPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// initiate runs the initiator's X3DH against bundle and returns SK and the
// message as the responder receives it (through its JSON form).
func initiate(t *testing.T, c *registry.Client, from, to *agent, bundle *ratchet.Bundle) (*ratchet.SharedSecret, *ratchet.InitiatorMessage) {
	t.Helper()
	ik, err := ratchet.PrivateKeyFromECDH(from.id.ExchangeKey())
	if err != nil {
		t.Fatal(err)
	}
	sk, msg, err := ratchet.InitiateX3DH(rand.Reader, ik, bundle, signingKey(t, c, to))
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var got ratchet.InitiatorMessage
	if err := json.Unmarshal(wire, &got); err != nil {
		t.Fatal(err)
	}
	return sk, &got
}

// respond answers msg from `from` as the agent `to` does, with s as its
// prekey source and from's exchange key as the registry lists it.
func respond(t *testing.T, c *registry.Client, from, to *agent, s ratchet.PrekeySource, msg *ratchet.InitiatorMessage) (*ratchet.Response, error) {
	t.Helper()
	l, err := c.Lookup(context.Background(), from.amid())
	if err != nil {
		t.Fatal(err)
	}
	ek, err := protocol.ParseExchangePublicKey(l.ExchangePublicKey)
	if err != nil {
		t.Fatal(err)
	}
	initiator, err := ratchet.PublicKeyFromECDH(ek)
	if err != nil {
		t.Fatal(err)
	}
	ik, err := ratchet.PrivateKeyFromECDH(to.id.ExchangeKey())
	if err != nil {
		t.Fatal(err)
	}
	return ratchet.RespondX3DH(ik, initiator, msg, s)
}

// agree runs a whole X3DH from `from` to `to` over the registry and checks
// that both sides derive the same secret. It returns the message.
func agree(t *testing.T, c *registry.Client, from, to *agent, s *Store) *ratchet.InitiatorMessage {
	t.Helper()
	sk, msg := initiate(t, c, from, to, fetchBundle(t, c, to))
	resp, err := respond(t, c, from, to, s, msg)
	if err != nil {
		t.Fatalf("responding to an X3DH message naming signed prekey %d: %v", msg.SignedPrekeyID, err)
	}
	if !resp.SharedSecret.Equal(sk) {
		t.Fatal("initiator and store-backed responder derived different secrets")
	}
	return msg
}

// registryCount is how many one-time prekeys of a the registry holds.
func registryCount(t *testing.T, c *registry.Client, a *agent) int {
	t.Helper()
	n, err := c.PrekeyCount(context.Background(), a.signer)
	if err != nil {
		t.Fatal(err)
	}
	return n.OneTimePrekeysRemaining
}

// newClock returns a settable clock at a fixed start.
func newClock() *meshtest.Clock {
	return meshtest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// detReader is a deterministic byte stream for reproducible keys: SHA-256
// of a counter.
type detReader struct {
	n   uint64
	buf []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	for i := range p {
		if len(r.buf) == 0 {
			var ctr [8]byte
			binary.BigEndian.PutUint64(ctr[:], r.n)
			r.n++
			sum := sha256.Sum256(ctr[:])
			r.buf = sum[:]
		}
		p[i] = r.buf[0]
		r.buf = r.buf[1:]
	}
	return len(p), nil
}

// goldenIdentity is the identity of the golden files in testdata: signing
// seed 00..1f, exchange key 20..3f.
func goldenIdentity(t testing.TB) *identity.Identity {
	t.Helper()
	seq := func(start byte) []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = start + byte(i)
		}
		return b
	}
	id, err := identity.FromKeys(seq(0x00), seq(0x20), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// wantUnknownPrekey checks that err is ratchet.ErrUnknownPrekey.
func wantUnknownPrekey(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, ratchet.ErrUnknownPrekey) {
		t.Fatalf("%s: err = %v, want ratchet.ErrUnknownPrekey", what, err)
	}
}

// timer stands in for time.After in Run (Options.After): it hands each wait
// Run starts to the test, which lets it elapse when it chooses. Run starts
// a wait only once a round is over, so receiving one is also the sign that
// the round before it is done.
type timer struct {
	t     *testing.T
	waits chan wait
}

// wait is one wait Run started: how long it asked for, and the channel it
// waits on.
type wait struct {
	d    time.Duration
	fire chan time.Time
}

func newTimer(t *testing.T) *timer {
	return &timer{t: t, waits: make(chan wait, 64)}
}

// After is the Options.After of a store under test.
func (tm *timer) After(d time.Duration) <-chan time.Time {
	w := wait{d: d, fire: make(chan time.Time, 1)}
	tm.waits <- w
	return w.fire
}

// next returns the next wait Run starts. The deadline only keeps a broken
// Run from hanging the test; nothing is timed.
func (tm *timer) next() wait {
	tm.t.Helper()
	select {
	case w := <-tm.waits:
		return w
	case <-time.After(time.Minute):
		tm.t.Fatal("Run started no wait")
		return wait{}
	}
}

// elapse ends the wait.
func (w wait) elapse() { w.fire <- time.Time{} }

// run starts s.Run in the background and stops it when the test ends; the
// returned function stops it earlier and returns what Run returned.
func run(t *testing.T, s *Store, c *registry.Client, signer *registry.Signer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c, signer) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			cancel()
			err, stopped = <-done, true
		}
		return err
	}
	t.Cleanup(func() {
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return stop
}

// readFile returns the content of the file at path.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

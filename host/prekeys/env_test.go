package prekeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/internal/meshtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// startRegistry runs a real registry server on loopback over a SQLite store
// in a temporary directory and returns a client for it.
func startRegistry(t *testing.T) *registry.Client {
	t.Helper()
	return meshtest.StartRegistry(t, meshtest.RegistryOptions{}).Client
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

// goldenIdentity is the identity of testdata/prekeys-v1.json: signing seed
// 00..1f, exchange key 20..3f.
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

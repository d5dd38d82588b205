package registryserver

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// newExchangeKey returns a fresh X25519 public key.
func newExchangeKey(t testing.TB) *ecdh.PublicKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

// exchangeKeyUpdate builds an exchange key update of a to key (sent
// exactly as given), both signatures by a, at a server time one
// millisecond later than any earlier request's.
func (e *testEnv) exchangeKeyUpdate(a *testAgent, key string) registry.ExchangeKeyUpdate {
	e.clock.Advance(time.Millisecond)
	req := registry.ExchangeKeyUpdate{AMID: a.AMID, ExchangePublicKey: key, Signed: e.sign(a)}
	req.KeySignature = signKeyUpdate(a.Signing, a.AMID, key, req.Timestamp)
	return req
}

// signKeyUpdate is priv's key_signature over an update of amid to key at
// timestamp.
func signKeyUpdate(priv ed25519.PrivateKey, amid, key, timestamp string) string {
	return protocol.B64.EncodeToString(ed25519.Sign(priv, registry.ExchangeKeySigningBytes(amid, key, timestamp)))
}

// registeredExchangeKey is the exchange key a lookup of a shows.
func (e *testEnv) registeredExchangeKey(a *testAgent) string {
	e.t.Helper()
	got, err := e.client.Lookup(context.Background(), a.AMID)
	if err != nil {
		e.t.Fatal(err)
	}
	return got.ExchangePublicKey
}

func TestExchangeKeySigningBytes(t *testing.T) {
	got := registry.ExchangeKeySigningBytes("amid1", "x25519:key=", "2026-02-01T16:25:10.555+00:00")
	want := "agentmesh/exchange-key\namid1\nx25519:key=\n2026-02-01T16:25:10.555+00:00"
	if string(got) != want {
		t.Fatalf("ExchangeKeySigningBytes = %q, want %q", got, want)
	}
}

func TestExchangeKeyRotation(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		a := newTestAgent(t)
		if _, err := e.client.Register(ctx, a.Signer, registry.RegisterRequest{ExchangePublicKey: a.ExchangePublic()}); err != nil {
			t.Fatal(err)
		}
		e.upload(a, prekeyUpload(t, a, 1, idRange(1, 20)...))
		if got := e.registeredExchangeKey(a); got != a.ExchangePublic() {
			t.Fatalf("registered exchange key %s, want %s", got, a.ExchangePublic())
		}

		next := newExchangeKey(t)
		resp, err := e.client.UpdateExchangeKey(ctx, a.Signer, next)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Success || len(resp.Notifications) != 0 {
			t.Fatalf("update response %+v, want success without notifications (20 prekeys left)", resp)
		}
		wantKey := protocol.EncodeExchangePublicKey(next)
		if got := e.registeredExchangeKey(a); got != wantKey {
			t.Fatalf("lookup after rotation: exchange key %s, want %s", got, wantKey)
		}
		raw, err := e.client.DID(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		doc := coreDecode[coreDIDDoc](t, raw)
		if len(doc.VerificationMethod) != 2 || doc.VerificationMethod[1].ID != doc.KeyAgreement[0] {
			t.Fatalf("DID document after rotation: %s", raw)
		}
		if got := decodeMultibaseKey(t, doc.VerificationMethod[1].PublicKeyMultibase, multicodecX25519Pub); !bytes.Equal(got, next.Bytes()) {
			t.Fatalf("DID key agreement key after rotation %x, want %x", got, next.Bytes())
		}
		if got := decodeMultibaseKey(t, doc.VerificationMethod[0].PublicKeyMultibase, multicodecEd25519Pub); !bytes.Equal(got, a.Signing.Public().(ed25519.PublicKey)) {
			t.Fatalf("DID signing key changed on rotation: %x", got)
		}
		bundle, err := e.client.FetchPrekeyBundle(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if want := protocol.B64.EncodeToString(next.Bytes()); bundle.IdentityKey != want {
			t.Fatalf("bundle identity_key after rotation %s, want %s", bundle.IdentityKey, want)
		}

		// The same key again is accepted and changes nothing, not even the
		// time of the last update.
		before, err := st.Agent(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
		if _, err := e.client.UpdateExchangeKey(ctx, a.Signer, next); err != nil {
			t.Fatalf("same key again: %v", err)
		}
		after, err := st.Agent(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if after.ExchangePublicKey != wantKey || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Fatalf("after the same key again: key %s updated %v, want %s updated %v",
				after.ExchangePublicKey, after.UpdatedAt, wantKey, before.UpdatedAt)
		}

		// A key sent without its prefix is signed as sent and stored in
		// the prefixed form. (The server's clock is past the client's
		// timestamps, so the two signers never sign the same one.)
		third := newExchangeKey(t)
		bare := protocol.B64.EncodeToString(third.Bytes())
		if status, body := e.corePost("/v1/registry/exchange-key", e.exchangeKeyUpdate(a, bare)); status != http.StatusOK {
			t.Fatalf("unprefixed key: %d %s", status, body)
		}
		if got, want := e.registeredExchangeKey(a), protocol.EncodeExchangePublicKey(third); got != want {
			t.Fatalf("after unprefixed key: %s, want %s", got, want)
		}

		// The client refuses what it cannot send.
		if _, err := e.client.UpdateExchangeKey(ctx, nil, next); err == nil {
			t.Error("UpdateExchangeKey without a signer succeeded")
		}
		if _, err := e.client.UpdateExchangeKey(ctx, a.Signer, nil); err == nil {
			t.Error("UpdateExchangeKey without a key succeeded")
		}
		p256, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.UpdateExchangeKey(ctx, a.Signer, p256.PublicKey()); err == nil {
			t.Error("UpdateExchangeKey with a P-256 key succeeded")
		}
		if got, want := e.registeredExchangeKey(a), protocol.EncodeExchangePublicKey(third); got != want {
			t.Fatalf("refused client calls changed the key to %s", got)
		}
	})
}

func TestExchangeKeyRefusals(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		a := e.addAgent(registry.TierAnonymous)
		stranger := newTestAgent(t)
		const path = "/v1/registry/exchange-key"
		evil := protocol.EncodeExchangePublicKey(newExchangeKey(t))

		// A request already served is refused when replayed.
		first := e.exchangeKeyUpdate(a, protocol.EncodeExchangePublicKey(newExchangeKey(t)))
		if status, body := e.corePost(path, first); status != http.StatusOK {
			t.Fatalf("first use: %d %s", status, body)
		}
		registered := first.ExchangePublicKey
		if got := e.registeredExchangeKey(a); got != registered {
			t.Fatalf("after first use: %s, want %s", got, registered)
		}

		type call struct {
			name   string
			body   any
			status int
			code   string
			text   string
		}
		swapped := e.exchangeKeyUpdate(a, protocol.EncodeExchangePublicKey(newExchangeKey(t)))
		swapped.ExchangePublicKey = evil
		bySomeoneElse := e.exchangeKeyUpdate(a, evil)
		bySomeoneElse.KeySignature = signKeyUpdate(stranger.Signing, a.AMID, evil, bySomeoneElse.Timestamp)
		otherTimestamp := e.exchangeKeyUpdate(a, evil)
		otherTimestamp.KeySignature = signKeyUpdate(a.Signing, a.AMID, evil, first.Timestamp)
		otherAMID := e.exchangeKeyUpdate(a, evil)
		otherAMID.KeySignature = signKeyUpdate(a.Signing, stranger.AMID, evil, otherAMID.Timestamp)
		// Signed over the prefixed form, sent without the prefix: the
		// signature covers the string exactly as sent.
		bareEvil := strings.TrimPrefix(evil, protocol.ExchangeKeyPrefix)
		otherForm := e.exchangeKeyUpdate(a, bareEvil)
		otherForm.KeySignature = signKeyUpdate(a.Signing, a.AMID, evil, otherForm.Timestamp)
		garbled := e.exchangeKeyUpdate(a, evil)
		garbled.KeySignature = "not base64!"
		noKeySignature := e.exchangeKeyUpdate(a, evil)
		noKeySignature.KeySignature = ""
		forgedS2 := e.exchangeKeyUpdate(a, evil)
		forgedS2.Signed = e.sign(stranger)
		forgedS2.KeySignature = signKeyUpdate(a.Signing, a.AMID, evil, forgedS2.Timestamp)
		badAMID := e.exchangeKeyUpdate(a, evil)
		badAMID.AMID = "nope0"
		staleAt := protocol.FormatSigningTimestamp(e.clock.Now().Add(-protocol.MaxTimestampAge - time.Second))
		stale := registry.ExchangeKeyUpdate{AMID: a.AMID, ExchangePublicKey: evil,
			Signed:       registry.Signed{Timestamp: staleAt, Signature: protocol.SignTimestamp(a.Signing, staleAt)},
			KeySignature: signKeyUpdate(a.Signing, a.AMID, evil, staleAt)}

		for _, c := range []call{
			{"replayed", first, 401, "invalid_signature", "replay"},
			{"key swapped under a valid S2", swapped, 401, "invalid_key_signature", "key_signature"},
			{"key signature by another key", bySomeoneElse, 401, "invalid_key_signature", "key_signature"},
			{"key signature over another timestamp", otherTimestamp, 401, "invalid_key_signature", "key_signature"},
			{"key signature over another amid", otherAMID, 401, "invalid_key_signature", "key_signature"},
			{"key signature over another form of the key", otherForm, 401, "invalid_key_signature", "key_signature"},
			{"key signature not base64", garbled, 401, "invalid_key_signature", "key_signature"},
			{"no key signature", noKeySignature, 400, "missing_key_signature", "key_signature"},
			{"timestamp signature by another key", forgedS2, 401, "invalid_signature", "Signature verification failed"},
			{"stale", stale, 401, "invalid_signature", "old"},
			{"bad amid", badAMID, 400, "invalid_amid", "amid"},
			{"unknown agent", e.exchangeKeyUpdate(stranger, evil), 404, "agent_not_found", "Agent not found"},
			{"no key", e.exchangeKeyUpdate(a, ""), 400, "invalid_exchange_public_key", "exchange_public_key"},
			{"key not base64", e.exchangeKeyUpdate(a, "x25519:???"), 400, "invalid_exchange_public_key", "exchange_public_key"},
			{"key of 31 bytes", e.exchangeKeyUpdate(a, protocol.B64.EncodeToString(make([]byte, 31))), 400, "invalid_exchange_public_key", "exchange_public_key"},
			{"key of 33 bytes", e.exchangeKeyUpdate(a, protocol.B64.EncodeToString(make([]byte, 33))), 400, "invalid_exchange_public_key", "exchange_public_key"},
		} {
			status, body := e.corePost(path, c.body)
			er := coreDecode[registry.ErrorResponse](t, body)
			if status != c.status || er.Code != c.code || !strings.Contains(er.Error, c.text) {
				t.Errorf("%s: %d %s, want %d %s %q", c.name, status, body, c.status, c.code, c.text)
			}
		}
		if got := e.registeredExchangeKey(a); got != registered {
			t.Fatalf("refused updates changed the exchange key to %s", got)
		}

		// A refused key signature does not use up the timestamp
		// signature: the agent's own request with it still goes through.
		own := swapped
		own.ExchangePublicKey = bareEvil
		own.KeySignature = signKeyUpdate(a.Signing, a.AMID, bareEvil, own.Timestamp)
		if status, body := e.corePost(path, own); status != http.StatusOK {
			t.Fatalf("own request with the timestamp signature of a refused one: %d %s", status, body)
		}
		if got := e.registeredExchangeKey(a); got != evil {
			t.Fatalf("after own request: %s, want %s", got, evil)
		}

		// A revoked agent cannot change its key.
		e.revoke(a.AMID)
		status, body := e.corePost(path, e.exchangeKeyUpdate(a, protocol.EncodeExchangePublicKey(newExchangeKey(t))))
		if er := coreDecode[registry.ErrorResponse](t, body); status != http.StatusForbidden || er.Code != "agent_revoked" {
			t.Fatalf("revoked agent: %d %s", status, body)
		}
		if got := e.registeredExchangeKey(a); got != evil {
			t.Fatalf("a revoked agent changed its key to %s", got)
		}
	})
}

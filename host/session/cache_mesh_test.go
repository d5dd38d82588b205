package session_test

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

func TestConnectReusesCachedSessions(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	b := m.newHost(t, hostOptions{handler: echoHandler{}, persist: true})
	pa := &tap{}
	a := m.newHost(t, hostOptions{persist: true, tap: pa})
	knocks := func() int { return len(pa.frames(true, protocol.MessageTypeKnock)) }
	travel := session.OpenOptions{Intent: "travel/flights/search", Capabilities: echoCaps.Capabilities}

	s1, err := a.Connect(ctx, b.id.AMID(), travel)
	if err != nil {
		t.Fatal(err)
	}
	mustRequest(t, s1, "one")
	again := travel
	again.Intent = "travel/hotels/search" // same category
	if s, err := a.Connect(ctx, b.id.AMID(), again); err != nil || s != s1 {
		t.Fatalf("Connect for the same category: %v, %v; want the cached session", s, err)
	}
	if knocks() != 1 {
		t.Fatalf("%d KNOCKs, want 1: the cache was not used", knocks())
	}
	other := travel
	other.Intent = "commerce/products/search"
	if s, err := a.Connect(ctx, b.id.AMID(), other); err != nil || s == s1 {
		t.Fatalf("Connect for another category: %v, %v; want a new session", s, err)
	}
	if knocks() != 2 {
		t.Fatalf("%d KNOCKs, want 2", knocks())
	}

	// The cache survives a restart.
	pa2 := &tap{}
	a2 := m.restart(t, a, hostOptions{tap: pa2})
	s, err := a2.Connect(ctx, b.id.AMID(), travel)
	if err != nil || s.ID() != s1.ID() {
		t.Fatalf("Connect after a restart: %v, %v; want session %s", s, err, s1.ID())
	}
	mustRequest(t, s, "two")
	if n := len(pa2.frames(true, protocol.MessageTypeKnock)); n != 0 {
		t.Fatalf("%d KNOCKs after the restart, want none", n)
	}

	// A policy change clears it.
	if err := a2.SetPolicy(a2.Policy()); err != nil {
		t.Fatal(err)
	}
	if s, err := a2.Connect(ctx, b.id.AMID(), travel); err != nil || s.ID() == s1.ID() {
		t.Fatalf("Connect after a policy change: %v, %v; want a new session", s, err)
	}
	// So does a key rotation.
	rotated, err := a2.id.RotateExchangeKey(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.UpdateExchangeKey(ctx, a2.signer, rotated.ExchangePublicKey()); err != nil {
		t.Fatal(err)
	}
	before := len(pa2.frames(true, protocol.MessageTypeKnock))
	cached, err := a2.Connect(ctx, b.id.AMID(), travel)
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.SetIdentity(rotated); err != nil {
		t.Fatal(err)
	}
	if s, err := a2.Connect(ctx, b.id.AMID(), travel); err != nil || s == cached {
		t.Fatalf("Connect after a key rotation: %v, %v; want a new session", s, err)
	}
	if n := len(pa2.frames(true, protocol.MessageTypeKnock)); n != before+1 {
		t.Fatalf("%d KNOCKs after the rotation, want %d", n, before+1)
	}

	// A day later the entry has expired.
	m.offset.Store(int64(25 * time.Hour))
	if _, err := a2.Connect(ctx, b.id.AMID(), travel); err != nil {
		t.Fatal(err)
	}
	if n := len(pa2.frames(true, protocol.MessageTypeKnock)); n != before+2 {
		t.Fatalf("%d KNOCKs after the entry expired, want %d", n, before+2)
	}
}

func TestConnectNoticesRevocation(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	b := m.newHost(t, hostOptions{handler: echoHandler{}})
	a := m.newHost(t, hostOptions{})
	travel := session.OpenOptions{Intent: "travel/flights/search", Capabilities: echoCaps.Capabilities}
	s, err := a.Connect(ctx, b.id.AMID(), travel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.Revoke(ctx, b.signer, string(b.id.AMID()), registry.ReasonKeyCompromise, ""); err != nil {
		t.Fatal(err)
	}
	// Within the hour the cached session is used as it is.
	if got, err := a.Connect(ctx, b.id.AMID(), travel); err != nil || got != s {
		t.Fatalf("Connect within the hour: %v, %v", got, err)
	}
	// An hour on, a hit asks the registry: the revoked peer's sessions
	// close and no new one opens.
	m.offset.Store(int64(time.Hour + time.Minute))
	if _, err := a.Connect(ctx, b.id.AMID(), travel); err == nil {
		t.Fatal("Connect to a revoked peer succeeded")
	}
	<-s.Done()
	var ce *session.ClosedError
	if !errors.As(s.Err(), &ce) || ce.Reason != protocol.ClosePolicyViolation {
		t.Fatalf("the revoked peer's session ended with %v", s.Err())
	}
}

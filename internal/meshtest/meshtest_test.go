package meshtest_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/meshtest"
	"github.com/agentmesh/agentmesh-go/mesh/certs"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
	"github.com/agentmesh/agentmesh-go/mesh/registry/registryserver"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
	"github.com/agentmesh/agentmesh-go/mesh/relay/relayserver"
)

func TestRegistryRegistersAndCertifies(t *testing.T) {
	ctx := context.Background()
	clock := meshtest.NewClock(time.Now().UTC().Truncate(time.Second))
	r := meshtest.StartRegistry(t, meshtest.RegistryOptions{Now: clock.Now})

	a := meshtest.NewAgent(t)
	if resp := r.Register(t, a.Signer, a.ExchangeKey.PublicKey()); resp.Tier != registry.TierAnonymous {
		t.Fatalf("registered with tier %s, want anonymous", resp.Tier)
	}
	look, err := r.Client.Lookup(ctx, string(a.Signer.AMID))
	if err != nil {
		t.Fatal(err)
	}
	if look.ExchangePublicKey != protocol.EncodeExchangePublicKey(a.ExchangeKey.PublicKey()) {
		t.Fatalf("registry lists exchange key %s, want the registered one", look.ExchangePublicKey)
	}

	// The organization's domain is proved through the kit's DNS server.
	admin := meshtest.NewAgent(t)
	r.Register(t, admin.Signer, admin.ExchangeKey.PublicKey())
	orgID := r.VerifiedOrganization(t, admin.Signer, "acme.example")
	org, err := r.Client.OrgLookup(ctx, "acme.example")
	if err != nil {
		t.Fatal(err)
	}
	if org.ID != orgID || !org.Verified {
		t.Fatalf("organization lookup %+v, want %s verified", org, orgID)
	}

	member := meshtest.NewAgent(t)
	chain := r.Enroll(t, admin.Signer, orgID, member.Signer, member.ExchangeKey.PublicKey())
	ders, err := certs.DecodeChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	if len(ders) != 3 || string(ders[2]) != string(r.Authority.Root().Raw) {
		t.Fatalf("enrolment chain of %d certificates, want 3 ending in Registry.Authority's root", len(ders))
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	// The registry issues on the clock it was given.
	if want := clock.Now().Add(-registryserver.CertBackdate); !leaf.NotBefore.Equal(want) {
		t.Fatalf("leaf valid from %v, want %v (the test clock less the backdating)", leaf.NotBefore, want)
	}
	look, err = r.Client.Lookup(ctx, string(member.Signer.AMID))
	if err != nil {
		t.Fatal(err)
	}
	if look.Tier != registry.TierOrganization {
		t.Fatalf("enrolled agent has tier %s, want organization", look.Tier)
	}
}

func TestRegistryOptions(t *testing.T) {
	ctx := context.Background()
	t.Run("clock", func(t *testing.T) {
		// A registry an hour ahead finds every signature of the real clock
		// too old.
		clock := meshtest.NewClock(time.Now().Add(time.Hour))
		r := meshtest.StartRegistry(t, meshtest.RegistryOptions{Now: clock.Now})
		a := meshtest.NewAgent(t)
		_, err := r.Client.Register(ctx, a.Signer, registry.RegisterRequest{
			ExchangePublicKey: protocol.EncodeExchangePublicKey(a.ExchangeKey.PublicKey()),
		})
		if err == nil {
			t.Fatal("a registry an hour ahead took a signature of now")
		}
		clock.Set(time.Now())
		r.Register(t, a.Signer, a.ExchangeKey.PublicKey())
	})
	t.Run("authority", func(t *testing.T) {
		ca, err := registryserver.NewAuthority(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		r := meshtest.StartRegistry(t, meshtest.RegistryOptions{Authority: ca})
		roots, err := r.Client.CACertificates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Authority != ca || len(roots) != 1 || !roots[0].Equal(ca.Root()) {
			t.Fatalf("registry serves %d roots, want the given authority's", len(roots))
		}
	})
	t.Run("configure", func(t *testing.T) {
		r := meshtest.StartRegistry(t, meshtest.RegistryOptions{Configure: func(c *registryserver.Config) {
			c.RequestsPerMinute, c.RequestBurst = 1, 1
		}})
		a := meshtest.NewAgent(t)
		r.Register(t, a.Signer, a.ExchangeKey.PublicKey())
		_, err := r.Client.Lookup(ctx, string(a.Signer.AMID))
		if !registry.IsStatus(err, http.StatusTooManyRequests) {
			t.Fatalf("second request with a burst of one: %v, want 429", err)
		}
	})
}

func TestRegistryGenerousLimits(t *testing.T) {
	ctx := context.Background()
	r := meshtest.StartRegistry(t, meshtest.RegistryOptions{})
	a := meshtest.NewAgent(t)
	r.Register(t, a.Signer, a.ExchangeKey.PublicKey())
	// More than the default burst of 100 requests, all from one address.
	for i := range 150 {
		if _, err := r.Client.Lookup(ctx, string(a.Signer.AMID)); err != nil {
			t.Fatalf("lookup %d: %v", i, err)
		}
	}
}

func TestServersStopWithTheTest(t *testing.T) {
	var reg *meshtest.Registry
	var rel *meshtest.Relay
	t.Run("inner", func(t *testing.T) {
		reg = meshtest.StartRegistry(t, meshtest.RegistryOptions{})
		rel = meshtest.StartRelay(t, meshtest.RelayOptions{})
		if _, err := reg.Client.CACertificates(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := reg.Client.CACertificates(ctx)
	var apiErr *registry.APIError
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("registry after its test ended: %v, want no answer", err)
	}
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := relay.Dial(ctx, rel.URL, sk); err == nil {
		c.Close()
		t.Fatal("relay took a connection after its test ended")
	}
}

// dial connects a fresh agent to the relay.
func dial(t *testing.T, url string) *relay.Conn {
	t.Helper()
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, url, sk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive returns the next message c gets, failing on anything else.
func receive(t *testing.T, c *relay.Conn) *relay.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := c.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := ev.(*relay.Message)
	if !ok {
		t.Fatalf("received %T %+v, want a message", ev, ev)
	}
	return m
}

func TestRelayWithoutLimits(t *testing.T) {
	clock := meshtest.NewClock(time.Now().UTC().Truncate(time.Second))
	r := meshtest.StartRelay(t, meshtest.RelayOptions{Now: clock.Now})
	a, b := dial(t, r.URL), dial(t, r.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The relay's default budget is 30 KNOCKs a minute.
	const n = 40
	for i := range n {
		if err := a.Send(ctx, b.AMID(), "knock", protocol.MessageTypeKnock, nil); err != nil {
			t.Fatalf("knock %d: %v", i, err)
		}
	}
	for i := range n {
		m := receive(t, b)
		if m.From != a.AMID() || m.Type != protocol.MessageTypeKnock {
			t.Fatalf("message %d from %s of type %s, want a KNOCK from %s", i, m.From, m.Type, a.AMID())
		}
		// The relay stamps messages with the clock it was given.
		if !m.Timestamp.Equal(clock.Now()) {
			t.Fatalf("message %d stamped %v, want the test clock's %v", i, m.Timestamp, clock.Now())
		}
	}
}

func TestRelayConfigure(t *testing.T) {
	r := meshtest.StartRelay(t, meshtest.RelayOptions{Configure: func(c *relayserver.Config) {
		c.Limits.KnocksPerMinute = 1
	}})
	a, b := dial(t, r.URL), dial(t, r.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		if err := a.Send(ctx, b.AMID(), "knock", protocol.MessageTypeKnock, nil); err != nil {
			t.Fatalf("knock %d: %v", i, err)
		}
	}
	ev, err := a.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ee, ok := ev.(*relay.ErrorEvent); !ok || ee.Err.Code != protocol.RelayRateLimited {
		t.Fatalf("second KNOCK with a budget of one: got %T %+v, want RATE_LIMITED", ev, ev)
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := meshtest.NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("new clock reads %v, want %v", c.Now(), start)
	}
	c.Advance(90 * time.Second)
	if want := start.Add(90 * time.Second); !c.Now().Equal(want) {
		t.Fatalf("after Advance the clock reads %v, want %v", c.Now(), want)
	}
	c.Set(start.Add(-time.Hour))
	if want := start.Add(-time.Hour); !c.Now().Equal(want) {
		t.Fatalf("after Set the clock reads %v, want %v", c.Now(), want)
	}
}

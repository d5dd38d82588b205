// Package meshtest starts the mesh's own servers, a registry and a relay, on
// loopback for tests of the packages that talk to them: each over a SQLite
// store in the test's temporary directory, with rate limits out of the way
// (every request of a test comes from one address), and stopped when the
// test ends. The registry verifies organization domains against a DNS server
// of the test (internal/dnstest), so organizations can be set up entirely
// within a test.
//
// The kit knows the mesh only: agents enter it as registry signers and
// exchange keys, whatever holds those keys on the caller's side.
package meshtest

import (
	"context"
	"crypto/ecdh"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/dnstest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
	"github.com/agentmesh/agentmesh-go/mesh/registry/registryserver"
)

// Registry is a real registry server on loopback over a SQLite store.
type Registry struct {
	// URL is the server's base URL, without /v1.
	URL string
	// Client is a client of URL+"/v1".
	Client *registry.Client
	// Store is the server's store, closed when the test ends.
	Store *registryserver.Store
	// Authority is the server's root CA.
	Authority *registryserver.Authority
	// DNS answers the server's TXT lookups.
	DNS *dnstest.Server
	// Server is the registry's handler.
	Server *registryserver.Server
	// HTTP serves Server; closing it early takes the registry off line.
	HTTP *httptest.Server
}

// RegistryOptions shape a test registry. The zero value is a registry on
// the real clock that logs its warnings to the test log.
type RegistryOptions struct {
	// Now is the registry's clock; nil means time.Now.
	Now func() time.Time
	// Authority is the registry's root CA; nil makes a new one, valid from
	// Now.
	Authority *registryserver.Authority
	// Logger receives the registry's logs; nil means Logger(t, "registry").
	Logger hclog.Logger
	// Configure, when set, sees the Config last, before the server is made.
	Configure func(*registryserver.Config)
}

// StartRegistry starts a registry server on loopback for the test. Its store
// is a SQLite database in t.TempDir(), its rate limits are generous enough
// for any test, and its resolver asks a DNS server of the test (Registry.DNS).
// Server and store are closed when the test ends.
func StartRegistry(t testing.TB, o RegistryOptions) *Registry {
	t.Helper()
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = Logger(t, "registry")
	}
	r := &Registry{DNS: dnstest.New(t), Authority: o.Authority}
	if r.Authority == nil {
		ca, err := registryserver.NewAuthority(o.Now())
		if err != nil {
			t.Fatalf("meshtest: registry root CA: %v", err)
		}
		r.Authority = ca
	}
	st, err := registryserver.OpenStore(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "registry.db"))
	if err != nil {
		t.Fatalf("meshtest: registry store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	r.Store = st
	cfg := registryserver.Config{
		Store:             st,
		Logger:            o.Logger,
		Now:               o.Now,
		Authority:         r.Authority,
		Resolver:          r.DNS.Resolver(),
		RequestsPerMinute: 1 << 20,
		RequestBurst:      1 << 20,
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	r.Server, err = registryserver.New(cfg)
	if err != nil {
		t.Fatalf("meshtest: registry server: %v", err)
	}
	r.HTTP = httptest.NewServer(r.Server)
	t.Cleanup(r.HTTP.Close)
	r.URL = r.HTTP.URL
	r.Client, err = registry.NewClient(r.URL + "/v1")
	if err != nil {
		t.Fatalf("meshtest: registry client: %v", err)
	}
	return r
}

// Register registers the agent signer signs for, with the exchange key
// exchange, as an anonymous agent, and returns the registry's answer.
func (r *Registry) Register(t testing.TB, signer *registry.Signer, exchange *ecdh.PublicKey) *registry.RegisterResponse {
	t.Helper()
	resp, err := r.Client.Register(context.Background(), signer, registry.RegisterRequest{
		ExchangePublicKey: protocol.EncodeExchangePublicKey(exchange),
	})
	if err != nil {
		t.Fatalf("meshtest: registering %s: %v", signer.AMID, err)
	}
	return resp
}

// VerifiedOrganization registers the organization "Org <domain>" for domain
// with admin as its admin, publishes its DNS challenge and has the registry
// verify it. It returns the organization's ID.
func (r *Registry) VerifiedOrganization(t testing.TB, admin *registry.Signer, domain string) string {
	t.Helper()
	ctx := context.Background()
	reg, err := r.Client.RegisterOrganization(ctx, admin, "Org "+domain, domain)
	if err != nil {
		t.Fatalf("meshtest: registering organization %s: %v", domain, err)
	}
	r.DNS.SetTXT(reg.DNSChallenge.RecordName, []string{reg.DNSChallenge.RecordValue})
	v, err := r.Client.VerifyOrganization(ctx, admin, reg.OrganizationID)
	if err != nil {
		t.Fatalf("meshtest: verifying organization %s: %v", domain, err)
	}
	if !v.Verified {
		t.Fatalf("meshtest: organization %s not verified: %+v", domain, v)
	}
	return reg.OrganizationID
}

// Enroll enrols the agent that agent signs for, with the exchange key
// exchange, in the organization orgID that admin runs, and returns the
// agent's certificate chain, leaf first. The agent must not be registered
// yet: enrolment registers it.
func (r *Registry) Enroll(t testing.TB, admin *registry.Signer, orgID string, agent *registry.Signer, exchange *ecdh.PublicKey) []string {
	t.Helper()
	resp, err := r.Client.EnrollOrgAgent(context.Background(), admin, registry.OrgEnrollment{
		OrganizationID:         orgID,
		AgentAMID:              string(agent.AMID),
		AgentSigningPublicKey:  agent.PublicKey(),
		AgentExchangePublicKey: protocol.EncodeExchangePublicKey(exchange),
	})
	if err != nil {
		t.Fatalf("meshtest: enrolling %s in %s: %v", agent.AMID, orgID, err)
	}
	return resp.CertificateChain
}

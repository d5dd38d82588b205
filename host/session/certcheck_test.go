package session

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/meshtest"
	"github.com/agentmesh/agentmesh-go/mesh/certs"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
	"github.com/agentmesh/agentmesh-go/mesh/registry/registryserver"
)

// githubToken is the only access token the fake GitHub accepts.
const githubToken = "gho-certcheck-test-token"

// testRegistry is a real registry server on loopback over SQLite, whose
// root CA, clock, DNS and GitHub account endpoint the test controls.
type testRegistry struct {
	*meshtest.Registry
	t     *testing.T
	clock *meshtest.Clock
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	clk := meshtest.NewClock(time.Now().UTC().Truncate(time.Millisecond))
	github := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+githubToken {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": 583231, "login": "octocat", "name": "The Octocat"})
	}))
	t.Cleanup(github.Close)
	gh := registryserver.GitHubProvider("client-id", "client-secret")
	gh.UserInfoURL = github.URL + "/user"
	reg := meshtest.StartRegistry(t, meshtest.RegistryOptions{
		Now: clk.Now,
		Configure: func(c *registryserver.Config) {
			c.OAuth = registryserver.OAuthConfig{Providers: []registryserver.OAuthProvider{gh}}
		},
	})
	return &testRegistry{Registry: reg, t: t, clock: clk}
}

// testOrg is a verified organization of a test registry.
type testOrg struct {
	id     string
	domain string
	admin  *meshtest.Agent
}

// verifiedOrg registers an organization for domain, publishes its DNS
// challenge and has the registry verify it.
func (r *testRegistry) verifiedOrg(domain string) *testOrg {
	r.t.Helper()
	admin := meshtest.NewAgent(r.t)
	// The admin registers as an agent so that it may revoke the
	// organization's agents.
	r.Register(r.t, admin.Signer, admin.ExchangeKey.PublicKey())
	return &testOrg{id: r.VerifiedOrganization(r.t, admin.Signer, domain), domain: domain, admin: admin}
}

// enroll enrols a new agent in org and returns it with its chain.
func (r *testRegistry) enroll(org *testOrg) (*meshtest.Agent, []string) {
	r.t.Helper()
	a := meshtest.NewAgent(r.t)
	chain := r.Enroll(r.t, org.admin.Signer, org.id, a.Signer, a.ExchangeKey.PublicKey())
	if len(chain) != 3 {
		r.t.Fatalf("enrolment chain has %d certificates, want 3", len(chain))
	}
	return a, chain
}

// verifiedAgent registers a new agent with a GitHub access token, which
// makes it verified, and returns it with its chain.
func (r *testRegistry) verifiedAgent() (*meshtest.Agent, []string) {
	r.t.Helper()
	a := meshtest.NewAgent(r.t)
	resp, err := r.Client.Register(context.Background(), a.Signer, registry.RegisterRequest{
		ExchangePublicKey: protocol.EncodeExchangePublicKey(a.ExchangeKey.PublicKey()),
		VerificationToken: githubToken,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if resp.Tier != registry.TierVerified || len(resp.CertificateChain) != 2 {
		r.t.Fatalf("registration: tier %s with %d certificates, want verified with 2", resp.Tier, len(resp.CertificateChain))
	}
	return a, resp.CertificateChain
}

// knock builds a KNOCK from from to to carrying chain, with an X3DH member
// whose ephemeral key is fresh and signed by from, and signs it.
func knock(t *testing.T, from *meshtest.Agent, to protocol.AMID, chain []string, now time.Time) *protocol.Knock {
	t.Helper()
	k, err := protocol.NewKnock(from.AMID, to, protocol.KnockRequest{
		Type:   protocol.SessionOneShot,
		TTL:    300,
		Intent: protocol.Intent{Capability: "travel/flights/search", Action: "message"},
	}, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k.X3DH = &protocol.X3DHInit{
		IdentityKey:    [32]byte(from.ExchangeKey.PublicKey().Bytes()),
		EphemeralKey:   [32]byte(eph.PublicKey().Bytes()),
		SignedPrekeyID: 1,
	}
	k.CertificateChain = chain
	if err := k.SignEphemeral(from.SigningKey); err != nil {
		t.Fatal(err)
	}
	if err := k.Sign(from.SigningKey); err != nil {
		t.Fatal(err)
	}
	return k
}

// check has c check, with ctx, a KNOCK from `from` to `to` carrying chain,
// made and checked at the registry's time.
func (r *testRegistry) check(ctx context.Context, t *testing.T, c *CertChecker, from *meshtest.Agent, to protocol.AMID, chain []string) error {
	t.Helper()
	now := r.clock.Now()
	_, err := c.Check(ctx, knock(t, from, to, chain, now), now)
	return err
}

// countingDirectory passes requests to a registry client and counts them.
// It can fail the CRL and organization requests, and hold CRL requests
// until released.
type countingDirectory struct {
	dir CertDirectory

	mu       sync.Mutex
	roots    int
	crls     map[string]int // by issuer argument
	lookups  int
	failCRLs bool
	started  chan struct{} // closed when a held CRL request arrives
	release  chan struct{} // CRL requests wait for it, when not nil
}

func newCountingDirectory(dir CertDirectory) *countingDirectory {
	return &countingDirectory{dir: dir, crls: map[string]int{}}
}

func (d *countingDirectory) CACertificates(ctx context.Context) ([]*x509.Certificate, error) {
	d.mu.Lock()
	d.roots++
	d.mu.Unlock()
	return d.dir.CACertificates(ctx)
}

func (d *countingDirectory) CRL(ctx context.Context, issuer string) ([]byte, error) {
	d.mu.Lock()
	d.crls[issuer]++
	fail, release := d.failCRLs, d.release
	if release != nil && d.started != nil {
		close(d.started)
		d.started = nil
	}
	d.mu.Unlock()
	if fail {
		return nil, errors.New("registry offline")
	}
	if release != nil {
		<-release
	}
	return d.dir.CRL(ctx, issuer)
}

func (d *countingDirectory) OrgLookup(ctx context.Context, domain string) (*registry.OrgLookup, error) {
	d.mu.Lock()
	d.lookups++
	fail := d.failCRLs
	d.mu.Unlock()
	if fail {
		return nil, errors.New("registry offline")
	}
	return d.dir.OrgLookup(ctx, domain)
}

// counts returns the number of root requests, of CRL requests in all and
// of organization lookups.
func (d *countingDirectory) counts() (roots, crls, lookups int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.crls {
		crls += n
	}
	return d.roots, crls, d.lookups
}

// crlCounts returns the CRL requests by issuer argument.
func (d *countingDirectory) crlCounts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int, len(d.crls))
	for k, v := range d.crls {
		out[k] = v
	}
	return out
}

// wantReason checks that err maps to the REJECT reason want.
func wantReason(t *testing.T, err error, want protocol.RejectReason) {
	t.Helper()
	if err == nil {
		t.Fatalf("check passed, want %s", want)
	}
	if got := certs.RejectReason(err); got != want {
		t.Fatalf("reason %s for %v, want %s", got, err, want)
	}
}

// wantUnavailable checks that err refuses a KNOCK as carrying an invalid
// certificate because the registry could not be asked.
func wantUnavailable(t *testing.T, err error) {
	t.Helper()
	wantReason(t, err, protocol.RejectInvalidCertificate)
	if !errors.Is(err, ErrCertCheckUnavailable) {
		t.Fatalf("error %v does not say the registry was unavailable", err)
	}
}

// spoiled is a KNOCK the checker must refuse: make turns a good KNOCK into
// it.
type spoiled struct {
	name string
	make func(t *testing.T, good *protocol.Knock) *protocol.Knock
}

// wantRefused checks, each in a subtest, what every case makes of a fresh
// good KNOCK, and wants it refused as an invalid certificate without the
// registry being blamed; then it checks that the same checker still accepts
// a good KNOCK.
func wantRefused(t *testing.T, c *CertChecker, now time.Time, good func(t *testing.T) *protocol.Knock, cases []spoiled) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Check(context.Background(), tc.make(t, good(t)), now)
			wantReason(t, err, protocol.RejectInvalidCertificate)
			if errors.Is(err, ErrCertCheckUnavailable) {
				t.Fatalf("a refused KNOCK reported as the registry being unavailable: %v", err)
			}
		})
	}
	if _, err := c.Check(context.Background(), good(t), now); err != nil {
		t.Fatalf("a good KNOCK after the refused ones: %v", err)
	}
}

func TestCertCheckAcceptsOrganizationAgent(t *testing.T) {
	reg := newTestRegistry(t)
	org := reg.verifiedOrg("acme.example")
	agent, chain := reg.enroll(org)
	receiver := meshtest.NewAgent(t)
	c := NewCertChecker(reg.Client)

	now := reg.clock.Now()
	v, err := c.Check(context.Background(), knock(t, agent, receiver.AMID, chain, now), now)
	if err != nil {
		t.Fatal(err)
	}
	if v.AMID != agent.AMID || v.Tier != certs.TierOrganization || v.Organization != "acme.example" {
		t.Fatalf("verified %s tier %s organization %q, want %s organization acme.example", v.AMID, v.Tier, v.Organization, agent.AMID)
	}
	ders, err := certs.DecodeChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Leaf.Raw) != string(ders[0]) {
		t.Fatal("Verified.Leaf is not the chain's first certificate")
	}
	// The PY format, one PEM text for the whole chain, is accepted too.
	pemChain := []string{string(certs.EncodePEM(ders))}
	if _, err := c.Check(context.Background(), knock(t, agent, receiver.AMID, pemChain, now), now); err != nil {
		t.Fatalf("PEM chain: %v", err)
	}
}

func TestCertCheckAcceptsVerifiedAgent(t *testing.T) {
	reg := newTestRegistry(t)
	agent, chain := reg.verifiedAgent()
	dir := newCountingDirectory(reg.Client)
	c := NewCertChecker(dir)

	now := reg.clock.Now()
	v, err := c.Check(context.Background(), knock(t, agent, meshtest.NewAgent(t).AMID, chain, now), now)
	if err != nil {
		t.Fatal(err)
	}
	if v.AMID != agent.AMID || v.Tier != certs.TierVerified || v.Organization != "" {
		t.Fatalf("verified %s tier %s organization %q, want %s verified without organization", v.AMID, v.Tier, v.Organization, agent.AMID)
	}
	// The root's CRL is asked for by the root's serial; no organization
	// is looked up.
	root := reg.Authority.Root()
	if got := dir.crlCounts(); len(got) != 1 || got[root.SerialNumber.Text(16)] != 1 {
		t.Fatalf("CRL requests %v, want one for the root %x", got, root.SerialNumber)
	}
	if _, _, lookups := dir.counts(); lookups != 0 {
		t.Fatalf("%d organization lookups for a verified agent", lookups)
	}
}

func TestCertCheckRefusesAnotherAgentsChain(t *testing.T) {
	reg := newTestRegistry(t)
	org := reg.verifiedOrg("acme.example")
	alice, _ := reg.enroll(org)
	_, bobChain := reg.enroll(org)
	dir := newCountingDirectory(reg.Client)
	c := NewCertChecker(dir)

	// Alice sends Bob's valid chain and links the session with her own key.
	err := reg.check(context.Background(), t, c, alice, meshtest.NewAgent(t).AMID, bobChain)
	wantReason(t, err, protocol.RejectInvalidCertificate)
	if errors.Is(err, ErrCertCheckUnavailable) {
		t.Fatalf("a chain of another agent reported as the registry being unavailable: %v", err)
	}
	if roots, crls, lookups := dir.counts(); roots+crls+lookups != 0 {
		t.Fatalf("the registry was asked (%d, %d, %d) about a chain that is not the sender's", roots, crls, lookups)
	}
}

func TestCertCheckRefusesBrokenChains(t *testing.T) {
	reg := newTestRegistry(t)
	acme := reg.verifiedOrg("acme.example")
	other := reg.verifiedOrg("other.example")
	agent, chain := reg.enroll(acme)
	_, otherChain := reg.enroll(other)
	receiver := meshtest.NewAgent(t).AMID
	c := NewCertChecker(reg.Client)
	now := reg.clock.Now()

	ders, err := certs.DecodeChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	// A chain of the sender's key from a root the registry never had.
	foreign, err := certs.NewRootCA(rand.Reader, now.Add(-time.Hour), 24*time.Hour, pkix.Name{CommonName: "AgentMesh Registry Root CA"})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := certs.IssueAgent(foreign, agent.SigningKey.Public().(ed25519.PublicKey), agent.AMID, certs.TierVerified, now.Add(-time.Hour), 24*time.Hour, big.NewInt(7))
	if err != nil {
		t.Fatal(err)
	}
	truncated := append([]byte(nil), ders[0][:len(ders[0])-10]...)

	good := func(t *testing.T) *protocol.Knock { return knock(t, agent, receiver, chain, now) }
	withChain := func(chain []string) func(*testing.T, *protocol.Knock) *protocol.Knock {
		return func(t *testing.T, _ *protocol.Knock) *protocol.Knock { return knock(t, agent, receiver, chain, now) }
	}
	wantRefused(t, c, now, good, []spoiled{
		{"not base64", withChain([]string{"not base64 at all!"})},
		{"garbage DER", withChain(certs.EncodeChain([][]byte{[]byte("garbage that is no certificate")}))},
		{"truncated leaf", withChain(certs.EncodeChain([][]byte{truncated, ders[1], ders[2]}))},
		{"leaf alone", withChain(certs.EncodeChain(ders[:1]))},
		{"another organization's certificate", withChain([]string{chain[0], otherChain[1], chain[2]})},
		{"foreign root", withChain(certs.EncodeChain([][]byte{forged.Raw, foreign.Cert.Raw}))},
		{"too long", withChain([]string{chain[0], chain[1], chain[2], chain[2]})},
		{"no chain", withChain(nil)},
		{"no x3dh", func(_ *testing.T, k *protocol.Knock) *protocol.Knock {
			k.X3DH = nil
			return k
		}},
		{"no knock", func(*testing.T, *protocol.Knock) *protocol.Knock { return nil }},
	})
}

func TestCertCheckRefusesWrongEphemeralSignature(t *testing.T) {
	reg := newTestRegistry(t)
	org := reg.verifiedOrg("acme.example")
	agent, chain := reg.enroll(org)
	receiver := meshtest.NewAgent(t).AMID
	c := NewCertChecker(reg.Client)
	now := reg.clock.Now()

	wantRefused(t, c, now, func(t *testing.T) *protocol.Knock { return knock(t, agent, receiver, chain, now) }, []spoiled{
		{"signed by another key", func(t *testing.T, k *protocol.Knock) *protocol.Knock {
			if err := k.SignEphemeral(meshtest.NewAgent(t).SigningKey); err != nil {
				t.Fatal(err)
			}
			return k
		}},
		{"ephemeral key swapped", func(_ *testing.T, k *protocol.Knock) *protocol.Knock {
			k.X3DH.EphemeralKey[0] ^= 1
			return k
		}},
		{"for another receiver", func(t *testing.T, k *protocol.Knock) *protocol.Knock {
			k.To = meshtest.NewAgent(t).AMID
			return k
		}},
		{"missing", func(_ *testing.T, k *protocol.Knock) *protocol.Knock {
			k.X3DH.EphemeralSignature = nil
			return k
		}},
	})
}

func TestCertCheckExpired(t *testing.T) {
	reg := newTestRegistry(t)
	org := reg.verifiedOrg("acme.example")
	agent, chain := reg.enroll(org)
	c := NewCertChecker(reg.Client)
	ders, err := certs.DecodeChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	receiver := meshtest.NewAgent(t).AMID

	// The registry's clock moves along, so that it serves fresh CRLs.
	at := leaf.NotAfter
	reg.clock.Advance(at.Sub(reg.clock.Now()))
	if _, err := c.Check(context.Background(), knock(t, agent, receiver, chain, at), at); err != nil {
		t.Fatalf("at NotAfter: %v", err)
	}
	after := leaf.NotAfter.Add(time.Second)
	_, err = c.Check(context.Background(), knock(t, agent, receiver, chain, after), after)
	wantReason(t, err, protocol.RejectCertificateExpired)
}

func TestCertCheckRevocationCachedForAnHour(t *testing.T) {
	reg := newTestRegistry(t)
	org := reg.verifiedOrg("acme.example")
	agent, chain := reg.enroll(org)
	other, otherChain := reg.enroll(org)
	receiver := meshtest.NewAgent(t).AMID
	dir := newCountingDirectory(reg.Client)
	c := NewCertChecker(dir)
	ctx := context.Background()
	rootCRL := reg.Authority.Root().SerialNumber.Text(16)

	check := func() error { return reg.check(ctx, t, c, agent, receiver, chain) }
	if err := check(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Client.Revoke(ctx, org.admin.Signer, string(agent.AMID), registry.ReasonKeyCompromise, ""); err != nil {
		t.Fatal(err)
	}
	// Within the hour the CRLs fetched for the first check still serve.
	reg.clock.Advance(30 * time.Minute)
	if err := check(); err != nil {
		t.Fatalf("within the hour of the cached CRLs: %v", err)
	}
	if got := dir.crlCounts(); len(got) != 2 || got[org.id] != 1 || got[rootCRL] != 1 {
		t.Fatalf("CRL requests for two checks %v, want one of the organization and one of the root", got)
	}
	if roots, _, lookups := dir.counts(); roots != 1 || lookups != 1 {
		t.Fatalf("%d root requests and %d organization lookups for two checks, want 1 and 1", roots, lookups)
	}
	// Past the hour the organization's list is fetched again and the
	// revocation shows.
	reg.clock.Advance(31 * time.Minute)
	err := check()
	wantReason(t, err, protocol.RejectCertificateRevoked)
	if got := dir.crlCounts(); got[org.id] != 2 {
		t.Fatalf("CRL requests after the hour %v, want the organization's twice", got)
	}
	// Another agent of the organization is not affected; checking it
	// refreshes the root's list too.
	if err := reg.check(ctx, t, c, other, receiver, otherChain); err != nil {
		t.Fatalf("an unrevoked agent of the same organization: %v", err)
	}
	if got := dir.crlCounts(); got[org.id] != 2 || got[rootCRL] != 2 {
		t.Fatalf("CRL requests %v, want two of each", got)
	}
}

func TestCertCheckRevokedVerifiedAgent(t *testing.T) {
	reg := newTestRegistry(t)
	agent, chain := reg.verifiedAgent()
	receiver := meshtest.NewAgent(t).AMID
	c := NewCertChecker(reg.Client)
	ctx := context.Background()
	if _, err := reg.Client.Revoke(ctx, agent.Signer, string(agent.AMID), registry.ReasonCessationOfOperation, ""); err != nil {
		t.Fatal(err)
	}
	wantReason(t, reg.check(ctx, t, c, agent, receiver, chain), protocol.RejectCertificateRevoked)
}

func TestCertCheckFailsClosedWithoutRegistry(t *testing.T) {
	ctx := context.Background()

	t.Run("unreachable from the start", func(t *testing.T) {
		reg := newTestRegistry(t)
		agent, chain := reg.enroll(reg.verifiedOrg("acme.example"))
		c := NewCertChecker(reg.Client)
		reg.HTTP.Close()
		wantUnavailable(t, reg.check(ctx, t, c, agent, meshtest.NewAgent(t).AMID, chain))
	})

	t.Run("no CRL held", func(t *testing.T) {
		reg := newTestRegistry(t)
		agent, chain := reg.enroll(reg.verifiedOrg("acme.example"))
		dir := newCountingDirectory(reg.Client)
		dir.failCRLs = true
		c := NewCertChecker(dir)
		wantUnavailable(t, reg.check(ctx, t, c, agent, meshtest.NewAgent(t).AMID, chain))
	})

	t.Run("CRL held grows stale", func(t *testing.T) {
		reg := newTestRegistry(t)
		agent, chain := reg.enroll(reg.verifiedOrg("acme.example"))
		receiver := meshtest.NewAgent(t).AMID
		c := NewCertChecker(reg.Client)
		check := func() error { return reg.check(ctx, t, c, agent, receiver, chain) }
		if err := check(); err != nil {
			t.Fatal(err)
		}
		reg.HTTP.Close()
		reg.clock.Advance(59 * time.Minute)
		if err := check(); err != nil {
			t.Fatalf("registry down, CRLs still fresh: %v", err)
		}
		reg.clock.Advance(2 * time.Minute)
		wantUnavailable(t, check())
	})

	t.Run("context ends", func(t *testing.T) {
		reg := newTestRegistry(t)
		agent, chain := reg.enroll(reg.verifiedOrg("acme.example"))
		c := NewCertChecker(reg.Client)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := reg.check(cctx, t, c, agent, meshtest.NewAgent(t).AMID, chain)
		if !errors.Is(err, ErrCertCheckUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("check with an ended context: %v", err)
		}
	})
}

func TestCertCheckConcurrentChecksShareFetches(t *testing.T) {
	reg := newTestRegistry(t)
	org := reg.verifiedOrg("acme.example")
	const n = 8
	agents := make([]*meshtest.Agent, n)
	chains := make([][]string, n)
	for i := range agents {
		agents[i], chains[i] = reg.enroll(org)
	}
	receiver := meshtest.NewAgent(t).AMID
	dir := newCountingDirectory(reg.Client)
	dir.started, dir.release = make(chan struct{}), make(chan struct{})
	started := dir.started
	c := NewCertChecker(dir)
	now := reg.clock.Now()

	errs := make(chan error, n)
	for i := range agents {
		k := knock(t, agents[i], receiver, chains[i], now)
		go func() {
			_, err := c.Check(context.Background(), k, now)
			errs <- err
		}()
	}
	// Hold the first CRL request while the other checks catch up with it.
	<-started
	time.Sleep(20 * time.Millisecond)
	close(dir.release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	roots, _, lookups := dir.counts()
	if got := dir.crlCounts(); roots != 1 || lookups != 1 || len(got) != 2 || got[org.id] != 1 || got[reg.Authority.Root().SerialNumber.Text(16)] != 1 {
		t.Fatalf("%d checks made %d root requests, %d organization lookups and CRL requests %v; want one of each", n, roots, lookups, got)
	}
}

func TestCertCheckFollowsRootRotation(t *testing.T) {
	reg := newTestRegistry(t)
	before, beforeChain := reg.verifiedAgent()
	receiver := meshtest.NewAgent(t).AMID
	dir := newCountingDirectory(reg.Client)
	c := NewCertChecker(dir)
	ctx := context.Background()
	check := func(a *meshtest.Agent, chain []string) error { return reg.check(ctx, t, c, a, receiver, chain) }
	rootRequests := func() int {
		roots, _, _ := dir.counts()
		return roots
	}

	if err := check(before, beforeChain); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Authority.Rotate(reg.clock.Now()); err != nil {
		t.Fatal(err)
	}
	after, afterChain := reg.verifiedAgent()

	// Right after the roots were fetched, an unknown root is refused
	// without asking again.
	wantReason(t, check(after, afterChain), protocol.RejectInvalidCertificate)
	if n := rootRequests(); n != 1 {
		t.Fatalf("%d root requests within the minute, want 1", n)
	}
	// A minute later the unknown root makes the checker fetch the roots
	// again, and the new root is trusted.
	reg.clock.Advance(RootsRetryInterval)
	if err := check(after, afterChain); err != nil {
		t.Fatalf("chain of the new root: %v", err)
	}
	if n := rootRequests(); n != 2 {
		t.Fatalf("%d root requests, want 2", n)
	}
	// Certificates of the earlier root stay valid.
	if err := check(before, beforeChain); err != nil {
		t.Fatalf("chain of the earlier root: %v", err)
	}
	// A chain from a root the registry never had does not make the
	// checker ask more than once a minute.
	foreign, err := certs.NewRootCA(rand.Reader, reg.clock.Now().Add(-time.Hour), 24*time.Hour, pkix.Name{CommonName: "Elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := certs.IssueAgent(foreign, before.SigningKey.Public().(ed25519.PublicKey), before.AMID, certs.TierVerified, reg.clock.Now().Add(-time.Hour), 24*time.Hour, big.NewInt(9))
	if err != nil {
		t.Fatal(err)
	}
	forgedChain := certs.EncodeChain([][]byte{forged.Raw, foreign.Cert.Raw})
	for range 3 {
		wantReason(t, check(before, forgedChain), protocol.RejectInvalidCertificate)
	}
	if n := rootRequests(); n != 2 {
		t.Fatalf("%d root requests after forged chains within the minute, want 2", n)
	}
	// Roots are fetched again once they are an hour old.
	reg.clock.Advance(RootsMaxAge)
	if err := check(after, afterChain); err != nil {
		t.Fatal(err)
	}
	if n := rootRequests(); n != 3 {
		t.Fatalf("%d root requests after an hour, want 3", n)
	}
}

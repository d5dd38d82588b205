package registryserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/dnstest"
	"github.com/agentmesh/agentmesh-go/mesh/certs"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// certEnv is a registry over one store whose DNS lookups go to a local
// test DNS server.
type certEnv struct {
	*testEnv
	dns *dnstest.Server
}

func newCertEnv(t *testing.T, st *Store, opts ...func(*Config)) *certEnv {
	t.Helper()
	d := dnstest.New(t)
	opts = append([]func(*Config){func(c *Config) { c.Resolver = d.Resolver() }}, opts...)
	return &certEnv{testEnv: newEnv(t, st, opts...), dns: d}
}

// call sends a request (body: nil, raw []byte, or a value sent as JSON)
// and returns the status, headers and body of the response.
func (e *certEnv) call(method, path string, body any) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

// wantFailure checks a response's status, error code and, unless empty,
// error text.
func wantFailure(t *testing.T, status int, body []byte, wantStatus int, wantCode, wantMsg string) {
	t.Helper()
	var er registry.ErrorResponse
	if err := json.Unmarshal(body, &er); err != nil {
		t.Fatalf("status %d body %q: not JSON: %v", status, body, err)
	}
	if status != wantStatus || er.Code != wantCode || (wantMsg != "" && er.Error != wantMsg) {
		t.Fatalf("got %d %s %q, want %d %s %q", status, er.Code, er.Error, wantStatus, wantCode, wantMsg)
	}
}

// registerOrg registers an organization through the client and publishes
// nothing yet.
func (e *certEnv) registerOrg(admin *testAgent, domain string) *registry.OrgRegisterResponse {
	e.t.Helper()
	reg, err := e.client.RegisterOrganization(context.Background(), admin.Signer, "Org "+domain, domain)
	if err != nil {
		e.t.Fatal(err)
	}
	return reg
}

// verifiedOrg registers an organization, publishes its challenge and
// verifies it; it returns the organization's ID and certificate.
func (e *certEnv) verifiedOrg(admin *testAgent, domain string) (string, *x509.Certificate) {
	e.t.Helper()
	reg := e.registerOrg(admin, domain)
	e.dns.SetTXT(reg.DNSChallenge.RecordName, []string{reg.DNSChallenge.RecordValue})
	v, err := e.client.VerifyOrganization(context.Background(), admin.Signer, reg.OrganizationID)
	if err != nil {
		e.t.Fatal(err)
	}
	if !v.Verified || len(v.CertificateChain) != 2 {
		e.t.Fatalf("verify = %+v, want verified with a chain of 2", v)
	}
	return reg.OrganizationID, parseCert(e.t, decodeChain(e.t, v.CertificateChain)[0])
}

// enrollment describes agent a for enrolment in org.
func enrollment(org string, a *testAgent) registry.OrgEnrollment {
	return registry.OrgEnrollment{
		OrganizationID: org, AgentAMID: a.AMID, AgentSigningPublicKey: a.SigningPublic(),
		AgentExchangePublicKey: a.ExchangePublic(), Capabilities: []string{"translate", "summarize"},
	}
}

func (e *certEnv) roots() []*x509.Certificate {
	e.t.Helper()
	roots, err := e.client.CACertificates(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return roots
}

// crl fetches and checks the CRL of the root (issuer nil) or of the
// organization orgID.
func (e *certEnv) crl(orgID string, issuer *x509.Certificate) *certs.CRL {
	e.t.Helper()
	der, err := e.client.CRL(context.Background(), orgID)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := certs.ParseCRL(der, issuer, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func decodeChain(t testing.TB, chain []string) [][]byte {
	t.Helper()
	ders, err := certs.DecodeChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	return ders
}

func parseCert(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parsePEMCert(t testing.TB, s string) *x509.Certificate {
	t.Helper()
	blk, rest := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("not one PEM certificate: %q", s)
	}
	return parseCert(t, blk.Bytes)
}

// x509Verify checks a chain with crypto/x509 alone. Below an organization
// (a CA with a DNS name constraint) it checks a copy of the leaf without
// its URI SAN: crypto/x509 refuses any host-less URI such as
// did:agentmesh:… below a name-constrained CA, even one without URI
// constraints. The signature covers the raw bytes, which the copy keeps.
func x509Verify(leaf *x509.Certificate, roots []*x509.Certificate, inter *x509.Certificate, at time.Time) ([][]*x509.Certificate, error) {
	rp, ip := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rp.AddCert(r)
	}
	c := leaf
	if inter != nil {
		ip.AddCert(inter)
		bare := *leaf
		bare.URIs = nil
		c = &bare
	}
	return c.Verify(x509.VerifyOptions{Roots: rp, Intermediates: ip, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

func TestOrgRegisterAndVerify(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		admin := newTestAgent(t) // an organization admin need not be a registered agent

		reg := e.registerOrg(admin, "acme.example")
		ch := reg.DNSChallenge
		if !reg.Success || reg.OrganizationID == "" || reg.Error != nil || ch == nil {
			t.Fatalf("register = %+v", reg)
		}
		if ch.RecordType != "TXT" || ch.RecordName != "_agentmesh.acme.example" ||
			ch.ExpiresAt != protocol.FormatServerTimestamp(e.clock.Now().Add(24*time.Hour)) {
			t.Fatalf("challenge = %+v", ch)
		}
		secret, ok := strings.CutPrefix(ch.RecordValue, "agentmesh-verify=")
		if b, err := protocol.DecodeB64(secret, 32); !ok || err != nil || bytes.Equal(b, make([]byte, 32)) {
			t.Fatalf("challenge value %q is not agentmesh-verify=<b64 of 32 random bytes>", ch.RecordValue)
		}

		// No record yet, then a wrong one: not verified.
		for _, records := range [][][]string{nil, {{"agentmesh-verify=wrong"}}, {{ch.RecordValue + "x"}}} {
			e.dns.SetTXT(ch.RecordName, records...)
			v, err := e.client.VerifyOrganization(ctx, admin.Signer, reg.OrganizationID)
			if err != nil {
				t.Fatal(err)
			}
			if v.Success || v.Verified || v.Error == nil || *v.Error != "DNS TXT record not found or doesn't match" || v.RootCertificate != nil {
				t.Fatalf("verify with TXT %q = %+v", records, v)
			}
		}
		if got, err := e.client.OrgLookup(ctx, "acme.example"); err != nil || got.Verified {
			t.Fatalf("lookup before verification = %+v, %v", got, err)
		}

		// The right value among other records, quoted and split into two
		// strings, verifies.
		half := len(ch.RecordValue) / 2
		e.dns.SetTXT(ch.RecordName, []string{"v=spf1 -all"}, []string{`"` + ch.RecordValue[:half], ch.RecordValue[half:] + `"`})
		v, err := e.client.VerifyOrganization(ctx, admin.Signer, reg.OrganizationID)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Success || !v.Verified || v.Error != nil || v.RootCertificate == nil || len(v.CertificateChain) != 2 {
			t.Fatalf("verify = %+v", v)
		}
		orgCert := parsePEMCert(t, *v.RootCertificate)
		chain := decodeChain(t, v.CertificateChain)
		root := e.server.ca.Root()
		if !bytes.Equal(chain[0], orgCert.Raw) || !bytes.Equal(chain[1], root.Raw) {
			t.Fatal("certificate_chain is not [organization, root]")
		}
		if !orgCert.IsCA || orgCert.MaxPathLen != 0 || !orgCert.MaxPathLenZero ||
			!slices.Equal(orgCert.PermittedDNSDomains, []string{"acme.example"}) || !orgCert.PermittedDNSDomainsCritical ||
			orgCert.CheckSignatureFrom(root) != nil {
			t.Fatalf("organization certificate has the wrong shape or signer: %+v", orgCert.Subject)
		}
		if want := e.clock.Now().Add(OrgCertificateValidity); !orgCert.NotAfter.Equal(want.Truncate(time.Second)) ||
			!orgCert.NotBefore.Equal(e.clock.Now().Add(-CertBackdate).Truncate(time.Second)) {
			t.Fatalf("valid %v..%v, want from %v before now until %v", orgCert.NotBefore, orgCert.NotAfter, CertBackdate, want)
		}

		// Verifying again returns the stored certificate, even once the
		// record is gone.
		e.dns.SetTXT(ch.RecordName)
		again, err := e.client.VerifyOrganization(ctx, admin.Signer, reg.OrganizationID)
		if err != nil || !again.Verified || *again.RootCertificate != *v.RootCertificate {
			t.Fatalf("second verify = %+v, %v", again, err)
		}

		got, err := e.client.OrgLookup(ctx, "acme.example")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != reg.OrganizationID || got.Name != "Org acme.example" || got.Domain != "acme.example" ||
			!got.Verified || got.AgentCount != 0 || got.CreatedAt != protocol.FormatServerTimestamp(e.clock.Now()) {
			t.Fatalf("lookup = %+v", got)
		}
		_, err = e.client.OrgLookup(ctx, "other.example")
		wantAPIError(t, err, http.StatusNotFound, "organization_not_found")

		// The store keeps the certificate, the root and the sealed key,
		// which opens to the certificate's key with this organization's ID
		// only.
		org, err := st.OrganizationByID(ctx, reg.OrganizationID)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := st.CertificateBySerial(ctx, serialHex(orgCert))
		if err != nil || rec.Kind != CertKindOrganization || rec.OrganizationID != org.ID || rec.IssuerSerial != serialHex(root) {
			t.Fatalf("certificate row = %+v, %v", rec, err)
		}
		if rec, err := st.CertificateBySerial(ctx, serialHex(root)); err != nil || rec.Kind != CertKindRoot {
			t.Fatalf("root row = %+v, %v", rec, err)
		}
		sealed, _ := protocol.DecodeB64(org.SealedKey, 0)
		if len(sealed) == 0 || sealed[0] != 1 {
			t.Fatalf("sealed key does not start with version 1")
		}
		key, err := openOrgKey(e.server.ca.signer(), org.ID, org.SealedKey)
		if err != nil || !key.Public().(ed25519.PublicKey).Equal(orgCert.PublicKey) {
			t.Fatalf("sealed key does not open to the certificate's key: %v", err)
		}
		if _, err := openOrgKey(e.server.ca.signer(), "another-org", org.SealedKey); err == nil {
			t.Fatal("sealed key opened under another organization's ID")
		}
	})
}

func TestOrgRegisterRefusals(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		admin := newTestAgent(t)

		for _, d := range []string{"", "Acme.example", "localhost", "a..example", "-a.example", "a-.example", "a.example.",
			"exa mple.example", "1.2.3.4", "a_b.example", strings.Repeat("a", 64) + ".example",
			strings.Repeat("abc.", 63) + "example"} {
			_, err := e.client.RegisterOrganization(ctx, admin.Signer, "Acme", d)
			wantAPIError(t, err, http.StatusBadRequest, "invalid_domain")
		}
		for _, n := range []string{"", "   ", strings.Repeat("x", 129), "a\x00b", "tab\there"} {
			_, err := e.client.RegisterOrganization(ctx, admin.Signer, n, "acme.example")
			wantAPIError(t, err, http.StatusBadRequest, "invalid_name")
		}
		if _, err := e.client.RegisterOrganization(ctx, admin.Signer, strings.Repeat("é", 128), "acme.example"); err != nil {
			t.Fatalf("128-character name refused: %v", err)
		}
		_, err := e.client.RegisterOrganization(ctx, newTestAgent(t).Signer, "Acme again", "acme.example")
		wantAPIError(t, err, http.StatusConflict, "domain_registered")

		body := func(signer *testAgent, amid, key, domain string) registry.OrgRegisterRequest {
			return registry.OrgRegisterRequest{Name: "N", Domain: domain, AdminAMID: amid, AdminSigningPublicKey: key, Signed: e.sign(signer)}
		}
		other := newTestAgent(t)
		cases := []struct {
			name string
			req  registry.OrgRegisterRequest
			msg  string
		}{
			{"forged signature", body(other, admin.AMID, admin.SigningPublic(), "b.example"), "Signature verification failed: Signature verification failed"},
			{"key of another AMID", body(admin, other.AMID, admin.SigningPublic(), "b.example"), "Signature verification failed: AMID mismatch"},
			{"bad key", body(admin, admin.AMID, "ed25519:AAAA", "b.example"), "Signature verification failed: Invalid public key format"},
		}
		stale := body(admin, admin.AMID, admin.SigningPublic(), "b.example")
		stale.Timestamp = protocol.FormatSigningTimestamp(e.clock.Now().Add(-10 * time.Minute))
		stale.Signature = protocol.SignTimestamp(admin.Signing, stale.Timestamp)
		cases = append(cases, struct {
			name string
			req  registry.OrgRegisterRequest
			msg  string
		}{"stale timestamp", stale, "Signature verification failed: Timestamp too old (replay protection)"})
		for _, c := range cases {
			status, _, b := e.call(http.MethodPost, "/v1/org/register", c.req)
			wantFailure(t, status, b, http.StatusUnauthorized, "invalid_signature", c.msg)
		}

		// A replayed request is refused, even for another domain.
		req := body(admin, admin.AMID, admin.SigningPublic(), "c.example")
		if status, _, b := e.call(http.MethodPost, "/v1/org/register", req); status != http.StatusCreated {
			t.Fatalf("first use: %d %s", status, b)
		}
		req.Domain = "d.example"
		status, _, b := e.call(http.MethodPost, "/v1/org/register", req)
		wantFailure(t, status, b, http.StatusUnauthorized, "invalid_signature", "")

		// A registration that was never verified is replaced once its
		// challenge has expired; a verified one never is.
		e.dns.SetTXT("_agentmesh.acme.example") // not published
		e.clock.Advance(25 * time.Hour)
		status, _, b = e.call(http.MethodPost, "/v1/org/register", body(other, other.AMID, other.SigningPublic(), "acme.example"))
		if status != http.StatusCreated {
			t.Fatalf("re-registering an expired, unverified domain: %d %s", status, b)
		}
		var reg registry.OrgRegisterResponse
		json.Unmarshal(b, &reg)
		e.dns.SetTXT(reg.DNSChallenge.RecordName, []string{reg.DNSChallenge.RecordValue})
		e.clock.Advance(time.Millisecond) // a fresh signature, not the one just used
		verify := registry.OrgVerifyRequest{OrganizationID: reg.OrganizationID, AdminAMID: other.AMID, Signed: e.sign(other)}
		if status, _, b := e.call(http.MethodPost, "/v1/org/verify", verify); status != http.StatusOK || !bytes.Contains(b, []byte(`"verified":true`)) {
			t.Fatalf("verify: %d %s", status, b)
		}
		e.clock.Advance(25 * time.Hour)
		status, _, b = e.call(http.MethodPost, "/v1/org/register", body(admin, admin.AMID, admin.SigningPublic(), "acme.example"))
		wantFailure(t, status, b, http.StatusConflict, "domain_registered", "Domain already registered")
	})
}

// failingResolver fails every lookup.
type failingResolver struct{ err error }

func (f failingResolver) LookupTXT(context.Context, string) ([]string, error) { return nil, f.err }

func TestOrgVerifyRefusals(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		admin, other := newTestAgent(t), newTestAgent(t)
		reg := e.registerOrg(admin, "acme.example")
		e.dns.SetTXT(reg.DNSChallenge.RecordName, []string{reg.DNSChallenge.RecordValue})

		_, err := e.client.VerifyOrganization(ctx, admin.Signer, "no-such-org")
		wantAPIError(t, err, http.StatusNotFound, "organization_not_found")
		_, err = e.client.VerifyOrganization(ctx, other.Signer, reg.OrganizationID)
		ae := wantAPIError(t, err, http.StatusUnauthorized, "not_admin")
		if ae.Message != "Not the organization admin" {
			t.Fatalf("message %q", ae.Message)
		}
		// The admin's AMID with someone else's signature.
		forged := registry.OrgVerifyRequest{OrganizationID: reg.OrganizationID, AdminAMID: admin.AMID, Signed: e.sign(other)}
		status, _, b := e.call(http.MethodPost, "/v1/org/verify", forged)
		wantFailure(t, status, b, http.StatusUnauthorized, "invalid_signature", "Signature verification failed: Signature verification failed")

		// A valid request works once; its replay is refused.
		good := registry.OrgVerifyRequest{OrganizationID: reg.OrganizationID, AdminAMID: admin.AMID, Signed: e.sign(admin)}
		if status, _, b := e.call(http.MethodPost, "/v1/org/verify", good); status != http.StatusOK || !bytes.Contains(b, []byte(`"verified":true`)) {
			t.Fatalf("verify: %d %s", status, b)
		}
		status, _, b = e.call(http.MethodPost, "/v1/org/verify", good)
		wantFailure(t, status, b, http.StatusUnauthorized, "invalid_signature", "")

		// An expired challenge is refused even with the record in place.
		late := e.registerOrg(admin, "late.example")
		e.dns.SetTXT(late.DNSChallenge.RecordName, []string{late.DNSChallenge.RecordValue})
		e.clock.Advance(25 * time.Hour)
		status, _, b = e.call(http.MethodPost, "/v1/org/verify",
			registry.OrgVerifyRequest{OrganizationID: late.OrganizationID, AdminAMID: admin.AMID, Signed: e.sign(admin)})
		wantFailure(t, status, b, http.StatusBadRequest, "challenge_expired", "")
		if got, err := st.OrganizationByID(ctx, late.OrganizationID); err != nil || got.Verified {
			t.Fatalf("expired organization = %+v, %v", got, err)
		}
	})
}

func TestOrgVerifyResolverFailure(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		admin := newTestAgent(t)
		reg := e.registerOrg(admin, "acme.example")
		// The DNS server answers SERVFAIL: verification fails, the request
		// does not.
		e.dns.Fail(reg.DNSChallenge.RecordName)
		v, err := e.client.VerifyOrganization(ctx, admin.Signer, reg.OrganizationID)
		if err != nil {
			t.Fatal(err)
		}
		if v.Verified || v.Error == nil || !strings.HasPrefix(*v.Error, "DNS verification failed: ") {
			t.Fatalf("verify with SERVFAIL = %+v", v)
		}

		// A resolver error that is not a DNS error.
		e2 := newCertEnv(t, st, func(c *Config) { c.Resolver = failingResolver{errors.New("resolver offline")} })
		reg2 := e2.registerOrg(admin, "b.example")
		v, err = e2.client.VerifyOrganization(ctx, admin.Signer, reg2.OrganizationID)
		if err != nil {
			t.Fatal(err)
		}
		if v.Verified || v.Error == nil || *v.Error != "DNS verification failed: resolver offline" {
			t.Fatalf("verify with a failing resolver = %+v", v)
		}
	})
}

func TestOrgEnrollAgent(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		admin := newTestAgent(t)
		orgID, orgCert := e.verifiedOrg(admin, "acme.example")
		roots := e.roots()

		// A new agent.
		agent := newTestAgent(t)
		name := "Acme translator"
		enr := enrollment(orgID, agent)
		enr.DisplayName = &name
		resp, err := e.client.EnrollOrgAgent(ctx, admin.Signer, enr)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Success || resp.Error != nil || len(resp.CertificateChain) != 3 {
			t.Fatalf("enroll = %+v", resp)
		}
		chain := decodeChain(t, resp.CertificateChain)
		leaf := parsePEMCert(t, resp.AgentCertificate)
		if !bytes.Equal(leaf.Raw, chain[0]) || !bytes.Equal(chain[1], orgCert.Raw) || !bytes.Equal(chain[2], roots[0].Raw) {
			t.Fatal("certificate_chain is not [agent, organization, root]")
		}
		now := e.clock.Now()
		paths, err := x509Verify(leaf, roots, orgCert, now)
		if err != nil || len(paths[0]) != 3 {
			t.Fatalf("crypto/x509: %v", err)
		}
		v, err := certs.VerifyChain(chain, roots, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(v.AMID) != agent.AMID || v.Tier != certs.TierOrganization || v.Organization != "acme.example" {
			t.Fatalf("VerifyChain = %+v", v)
		}
		if leaf.CheckSignatureFrom(orgCert) != nil || !leaf.NotAfter.Equal(now.Add(AgentCertificateValidity).Truncate(time.Second)) {
			t.Fatalf("leaf not signed by the organization or wrong validity: %v", leaf.NotAfter)
		}

		a, err := st.Agent(ctx, agent.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if a.Tier != TierOrganization || a.OrganizationID == nil || *a.OrganizationID != orgID || a.Status != "offline" ||
			a.ReputationScore != 0.5 || a.DisplayName == nil || *a.DisplayName != name || a.SigningPublicKey != agent.SigningPublic() {
			t.Fatalf("stored agent = %+v", a)
		}
		var n int
		st.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM agent_capabilities WHERE amid = $1 AND capability IN ('translate', 'summarize')`, agent.AMID).Scan(&n)
		if n != 2 {
			t.Fatalf("%d capabilities indexed, want 2", n)
		}
		pemCert, lookupChain, err := e.server.certificateOf(ctx, agent.AMID)
		if err != nil || pemCert != resp.AgentCertificate || !slices.Equal(lookupChain, resp.CertificateChain) {
			t.Fatalf("certificateOf = %q %v %v", pemCert, lookupChain, err)
		}
		look, err := e.client.Lookup(ctx, agent.AMID)
		if err != nil || look.Certificate != resp.AgentCertificate || !slices.Equal(look.CertificateChain, resp.CertificateChain) ||
			look.Tier != TierOrganization || look.Organization == nil || *look.Organization != "Org acme.example" {
			t.Fatalf("lookup = %+v, %v", look, err)
		}
		if got, err := e.client.OrgLookup(ctx, "acme.example"); err != nil || got.AgentCount != 1 {
			t.Fatalf("lookup = %+v, %v", got, err)
		}

		// An agent already registered must consent.
		existing := e.addAgent(TierAnonymous)
		_, err = e.client.EnrollOrgAgent(ctx, admin.Signer, enrollment(orgID, existing))
		wantAPIError(t, err, http.StatusForbidden, "agent_consent_required")
		// Consent signed by someone else is no consent.
		bad := enrollment(orgID, existing)
		bad.Agent = newTestAgent(t).Signer
		_, err = e.client.EnrollOrgAgent(ctx, admin.Signer, bad)
		wantAPIError(t, err, http.StatusForbidden, "agent_consent_required")
		if a, _ := st.Agent(ctx, existing.AMID); a.Tier != TierAnonymous || a.OrganizationID != nil {
			t.Fatalf("agent changed without consent: %+v", a)
		}
		// With consent but other keys than it registered.
		mismatch := enrollment(orgID, existing)
		mismatch.AgentExchangePublicKey = newTestAgent(t).ExchangePublic()
		mismatch.Agent = existing.Signer
		_, err = e.client.EnrollOrgAgent(ctx, admin.Signer, mismatch)
		wantAPIError(t, err, http.StatusConflict, "key_mismatch")
		ok := enrollment(orgID, existing)
		ok.Agent = existing.Signer
		resp2, err := e.client.EnrollOrgAgent(ctx, admin.Signer, ok)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := certs.VerifyChain(decodeChain(t, resp2.CertificateChain), roots, now, nil); err != nil || string(v.AMID) != existing.AMID {
			t.Fatalf("consented agent's chain: %+v, %v", v, err)
		}
		if a, _ := st.Agent(ctx, existing.AMID); a.Tier != TierOrganization || a.OrganizationID == nil || *a.OrganizationID != orgID {
			t.Fatalf("consented agent = %+v", a)
		}

		// Refusals.
		stranger := newTestAgent(t)
		_, err = e.client.EnrollOrgAgent(ctx, stranger.Signer, enrollment(orgID, newTestAgent(t)))
		wantAPIError(t, err, http.StatusUnauthorized, "not_admin")
		wrongKey := enrollment(orgID, newTestAgent(t))
		wrongKey.AgentSigningPublicKey = newTestAgent(t).SigningPublic()
		_, err = e.client.EnrollOrgAgent(ctx, admin.Signer, wrongKey)
		wantAPIError(t, err, http.StatusBadRequest, "amid_mismatch")
		badExch := enrollment(orgID, newTestAgent(t))
		badExch.AgentExchangePublicKey = "x25519:AAAA"
		_, err = e.client.EnrollOrgAgent(ctx, admin.Signer, badExch)
		wantAPIError(t, err, http.StatusBadRequest, "invalid_exchange_public_key")
		unverified := e.registerOrg(admin, "unverified.example")
		_, err = e.client.EnrollOrgAgent(ctx, admin.Signer, enrollment(unverified.OrganizationID, newTestAgent(t)))
		wantAPIError(t, err, http.StatusBadRequest, "organization_not_verified")
		_, err = e.client.EnrollOrgAgent(ctx, admin.Signer, enrollment("no-such-org", newTestAgent(t)))
		wantAPIError(t, err, http.StatusNotFound, "organization_not_found")

		// The admin's AMID with another key's signature, and a replay.
		req := registry.OrgAgentRequest{
			OrganizationID: orgID, AgentAMID: stranger.AMID, AgentSigningPublicKey: stranger.SigningPublic(),
			AgentExchangePublicKey: stranger.ExchangePublic(), Capabilities: []string{}, AdminAMID: admin.AMID,
		}
		forged := e.sign(stranger)
		req.Timestamp, req.AdminSignature = forged.Timestamp, forged.Signature
		status, _, b := e.call(http.MethodPost, "/v1/org/agents", req)
		wantFailure(t, status, b, http.StatusUnauthorized, "invalid_signature", "")
		good := e.sign(admin)
		req.Timestamp, req.AdminSignature = good.Timestamp, good.Signature
		if status, _, b := e.call(http.MethodPost, "/v1/org/agents", req); status != http.StatusCreated {
			t.Fatalf("enroll: %d %s", status, b)
		}
		status, _, b = e.call(http.MethodPost, "/v1/org/agents", req)
		wantFailure(t, status, b, http.StatusUnauthorized, "invalid_signature", "")

		// An admin enrolling its own registered agent consents by signing.
		selfAdmin := e.addAgent(TierAnonymous)
		selfOrg, _ := e.verifiedOrg(selfAdmin, "self.example")
		for _, withConsent := range []bool{false, true} {
			enr := enrollment(selfOrg, selfAdmin)
			if withConsent {
				enr.Agent = selfAdmin.Signer
			}
			if _, err := e.client.EnrollOrgAgent(ctx, selfAdmin.Signer, enr); err != nil {
				t.Fatalf("admin enrolling itself (consent %v): %v", withConsent, err)
			}
		}

		// A revoked agent cannot be enrolled, even with its consent.
		if _, err := e.client.Revoke(ctx, existing.Signer, existing.AMID, registry.ReasonKeyCompromise, ""); err != nil {
			t.Fatal(err)
		}
		_, err = e.client.EnrollOrgAgent(ctx, admin.Signer, ok)
		wantAPIError(t, err, http.StatusForbidden, "agent_revoked")
	})
}

func TestVerifiedAgentCertificate(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		a := e.addAgent(TierVerified)
		pub := a.Signing.Public().(ed25519.PublicKey)
		pemCert, chain, err := e.server.issueAgentCertificate(ctx, a.AMID, pub, TierVerified)
		if err != nil {
			t.Fatal(err)
		}
		roots := e.roots()
		leaf := parsePEMCert(t, pemCert)
		ders := decodeChain(t, chain)
		if len(ders) != 2 || !bytes.Equal(ders[0], leaf.Raw) || !bytes.Equal(ders[1], roots[0].Raw) {
			t.Fatal("chain is not [agent, root]")
		}
		now := e.clock.Now()
		if _, err := x509Verify(leaf, roots, nil, now); err != nil {
			t.Fatalf("crypto/x509: %v", err)
		}
		v, err := certs.VerifyChain(ders, roots, now, nil)
		if err != nil || v.Tier != certs.TierVerified || string(v.AMID) != a.AMID {
			t.Fatalf("VerifyChain = %+v, %v", v, err)
		}
		// Lookups show it.
		if p, c, err := e.server.certificateOf(ctx, a.AMID); err != nil || p != pemCert || !slices.Equal(c, chain) {
			t.Fatalf("certificateOf = %v, %v", c, err)
		}

		// Past NotAfter the chain fails, as expired.
		after := leaf.NotAfter.Add(time.Second)
		if _, err := x509Verify(leaf, roots, nil, after); err == nil {
			t.Fatal("crypto/x509 accepted an expired certificate")
		}
		if _, err := certs.VerifyChain(ders, roots, after, nil); !errors.Is(err, certs.ErrCertificateExpired) {
			t.Fatalf("VerifyChain after expiry: %v", err)
		}
		e.clock.Advance(AgentCertificateValidity + time.Hour)
		if p, c, err := e.server.certificateOf(ctx, a.AMID); err != nil || p != "" || c != nil {
			t.Fatalf("certificateOf an expired certificate = %q, %v", p, err)
		}

		// A revoked agent is certified no more.
		b := e.addAgent(TierVerified)
		revoke := registry.RevokeRequest{AMID: b.AMID, Reason: registry.ReasonOther, RevokerAMID: b.AMID, Signed: e.sign(b)}
		if status, _, body := e.call(http.MethodPost, "/v1/registry/revoke", revoke); status != http.StatusOK {
			t.Fatalf("revoke: %d %s", status, body)
		}
		if _, _, err := e.server.issueAgentCertificate(ctx, b.AMID, b.Signing.Public().(ed25519.PublicKey), TierVerified); err == nil {
			t.Fatal("certified a revoked agent")
		}
	})
}

func TestRevocationFailsChains(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		admin := e.addAgent(TierAnonymous) // revokers must be registered agents
		orgID, orgCert := e.verifiedOrg(admin, "acme.example")
		member, verified, bystander := newTestAgent(t), e.addAgent(TierVerified), newTestAgent(t)
		resp, err := e.client.EnrollOrgAgent(ctx, admin.Signer, enrollment(orgID, member))
		if err != nil {
			t.Fatal(err)
		}
		memberChain := decodeChain(t, resp.CertificateChain)
		resp2, err := e.client.EnrollOrgAgent(ctx, admin.Signer, enrollment(orgID, bystander))
		if err != nil {
			t.Fatal(err)
		}
		bystanderChain := decodeChain(t, resp2.CertificateChain)
		_, vchain, err := e.server.issueAgentCertificate(ctx, verified.AMID, verified.Signing.Public().(ed25519.PublicKey), TierVerified)
		if err != nil {
			t.Fatal(err)
		}
		verifiedChain := decodeChain(t, vchain)
		roots := e.roots()
		root := roots[0]

		cache := func() *certs.RevocationCache {
			var rc certs.RevocationCache
			for _, c := range []*certs.CRL{e.crl("", root), e.crl(orgID, orgCert)} {
				if err := rc.Add(c); err != nil {
					t.Fatal(err)
				}
			}
			return &rc
		}
		now := e.clock.Now()
		before := cache()
		for _, ch := range [][][]byte{memberChain, bystanderChain, verifiedChain} {
			if _, err := certs.VerifyChain(ch, roots, now, before); err != nil {
				t.Fatalf("before revocation: %v", err)
			}
		}
		oldNumber := e.crl("", root).Number

		if _, err := e.client.Revoke(ctx, admin.Signer, member.AMID, registry.ReasonKeyCompromise, "laptop stolen"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Revoke(ctx, verified.Signer, verified.AMID, registry.ReasonCessationOfOperation, ""); err != nil {
			t.Fatal(err)
		}
		after := cache()
		for _, ch := range [][][]byte{memberChain, verifiedChain} {
			if _, err := certs.VerifyChain(ch, roots, now, after); !errors.Is(err, certs.ErrCertificateRevoked) {
				t.Fatalf("after revocation: %v, want ErrCertificateRevoked", err)
			}
		}
		if _, err := certs.VerifyChain(bystanderChain, roots, now, after); err != nil {
			t.Fatalf("an unrevoked agent of the organization: %v", err)
		}

		orgCRL, rootCRL := e.crl(orgID, orgCert), e.crl("", root)
		if r, ok := orgCRL.Lookup(parseCert(t, memberChain[0]).SerialNumber); !ok || r.Reason != 1 {
			t.Fatalf("organization CRL entry = %+v, %v; want key compromise (1)", r, ok)
		}
		if r, ok := rootCRL.Lookup(parseCert(t, verifiedChain[0]).SerialNumber); !ok || r.Reason != 5 {
			t.Fatalf("root CRL entry = %+v, %v; want cessation of operation (5)", r, ok)
		}
		if _, ok := rootCRL.Lookup(parseCert(t, memberChain[0]).SerialNumber); ok {
			t.Fatal("root CRL lists a certificate the organization issued")
		}
		if rootCRL.Number.Cmp(oldNumber) <= 0 {
			t.Fatalf("CRL number %v did not grow past %v", rootCRL.Number, oldNumber)
		}
		if !rootCRL.NextUpdate.Equal(rootCRL.ThisUpdate.Add(CRLValidity)) {
			t.Fatalf("CRL valid %v..%v, want one hour", rootCRL.ThisUpdate, rootCRL.NextUpdate)
		}
		// Revoked agents have no certificate in lookups.
		for _, a := range []string{member.AMID, verified.AMID} {
			if p, _, err := e.server.certificateOf(ctx, a); err != nil || p != "" {
				t.Fatalf("certificateOf a revoked agent = %q, %v", p, err)
			}
		}

		// The raw endpoint: DER, its media type, the same list while
		// nothing changes; unknown and unverified issuers are 404.
		unverified := e.registerOrg(admin, "unverified.example")
		status, _, b := e.call(http.MethodGet, "/v1/registry/crl?issuer=no-such-org", nil)
		wantFailure(t, status, b, http.StatusNotFound, "organization_not_found", "")
		status, _, b = e.call(http.MethodGet, "/v1/registry/crl?issuer="+unverified.OrganizationID, nil)
		wantFailure(t, status, b, http.StatusNotFound, "organization_not_verified", "")
		status, hdr, der1 := e.call(http.MethodGet, "/v1/registry/crl", nil)
		if status != http.StatusOK || hdr.Get("Content-Type") != "application/pkix-crl" {
			t.Fatalf("GET crl: %d %s", status, hdr.Get("Content-Type"))
		}
		if _, _, der2 := e.call(http.MethodGet, "/v1/registry/crl", nil); !bytes.Equal(der1, der2) {
			t.Fatal("an unchanged CRL was signed again")
		}
		e.clock.Advance(10 * time.Minute)
		if _, _, der3 := e.call(http.MethodGet, "/v1/registry/crl", nil); bytes.Equal(der1, der3) {
			t.Fatal("a CRL was served past its reuse period")
		}
	})
}

func TestRevokeAuthorization(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		admin := e.addAgent(TierAnonymous)
		orgID, _ := e.verifiedOrg(admin, "acme.example")
		m1, m2, m3 := newTestAgent(t), newTestAgent(t), newTestAgent(t)
		for _, m := range []*testAgent{m1, m2, m3} {
			if _, err := e.client.EnrollOrgAgent(ctx, admin.Signer, enrollment(orgID, m)); err != nil {
				t.Fatal(err)
			}
		}
		stranger := e.addAgent(TierAnonymous)

		_, err := e.client.Revoke(ctx, stranger.Signer, m1.AMID, registry.ReasonOther, "")
		if ae := wantAPIError(t, err, http.StatusForbidden, "not_authorized"); ae.Message != "Not authorized to revoke this agent" {
			t.Fatalf("message %q", ae.Message)
		}
		// One member may not revoke another.
		_, err = e.client.Revoke(ctx, m2.Signer, m1.AMID, registry.ReasonOther, "")
		wantAPIError(t, err, http.StatusForbidden, "not_authorized")
		_, err = e.client.Revoke(ctx, newTestAgent(t).Signer, m1.AMID, registry.ReasonOther, "")
		if ae := wantAPIError(t, err, http.StatusUnauthorized, "revoker_not_found"); ae.Message != "Revoker not found" {
			t.Fatalf("message %q", ae.Message)
		}
		_, err = e.client.Revoke(ctx, admin.Signer, newTestAgent(t).AMID, registry.ReasonOther, "")
		wantAPIError(t, err, http.StatusNotFound, "agent_not_found")
		_, err = e.client.Revoke(ctx, admin.Signer, m1.AMID, "because", "")
		wantAPIError(t, err, http.StatusBadRequest, "invalid_reason")

		// The admin's AMID with a stranger's signature; the error body has
		// the shape of PROTOCOL.md §8.9.
		forged := registry.RevokeRequest{AMID: m1.AMID, Reason: registry.ReasonOther, RevokerAMID: admin.AMID, Signed: e.sign(stranger)}
		status, _, b := e.call(http.MethodPost, "/v1/registry/revoke", forged)
		wantFailure(t, status, b, http.StatusUnauthorized, "invalid_signature", "Signature verification failed: Signature verification failed")
		var shape map[string]any
		json.Unmarshal(b, &shape)
		if shape["success"] != false || shape["revocation_id"] != nil || !strings.Contains(string(b), `"revocation_id":null`) {
			t.Fatalf("error body %s", b)
		}

		// The organization's admin may revoke a member, once.
		id, err := e.client.Revoke(ctx, admin.Signer, m1.AMID, registry.ReasonPolicyViolation, "")
		if err != nil || len(id) != 36 {
			t.Fatalf("revoke = %q, %v", id, err)
		}
		_, err = e.client.Revoke(ctx, admin.Signer, m1.AMID, registry.ReasonPolicyViolation, "")
		if ae := wantAPIError(t, err, http.StatusConflict, "already_revoked"); ae.Message != "Agent already revoked" {
			t.Fatalf("message %q", ae.Message)
		}

		// Self-revocation; a replay of it is refused before anything else.
		self := registry.RevokeRequest{AMID: m2.AMID, Reason: registry.ReasonSuperseded, RevokerAMID: m2.AMID, Signed: e.sign(m2)}
		status, _, b = e.call(http.MethodPost, "/v1/registry/revoke", self)
		var ok registry.RevokeResponse
		if json.Unmarshal(b, &ok); status != http.StatusOK || !ok.Success || ok.RevocationID == nil || ok.Error != nil {
			t.Fatalf("self-revocation: %d %s", status, b)
		}
		status, _, b = e.call(http.MethodPost, "/v1/registry/revoke", self)
		wantFailure(t, status, b, http.StatusUnauthorized, "invalid_signature", "")
		if _, err := e.client.Revoke(ctx, stranger.Signer, stranger.AMID, registry.ReasonOther, ""); err != nil {
			t.Fatalf("self-revocation of an agent without organization: %v", err)
		}

		// A revoked admin can neither revoke nor act for its organization.
		if _, err := e.client.Revoke(ctx, admin.Signer, admin.AMID, registry.ReasonKeyCompromise, ""); err != nil {
			t.Fatal(err)
		}
		_, err = e.client.Revoke(ctx, admin.Signer, m3.AMID, registry.ReasonOther, "")
		wantAPIError(t, err, http.StatusForbidden, "revoker_revoked")
		_, err = e.client.EnrollOrgAgent(ctx, admin.Signer, enrollment(orgID, newTestAgent(t)))
		wantAPIError(t, err, http.StatusForbidden, "admin_revoked")
		_, err = e.client.VerifyOrganization(ctx, admin.Signer, orgID)
		wantAPIError(t, err, http.StatusForbidden, "admin_revoked")
		_, err = e.client.RegisterOrganization(ctx, admin.Signer, "Another", "another.example")
		wantAPIError(t, err, http.StatusForbidden, "admin_revoked")
	})
}

func TestRevocationQueries(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		r1, r2, r3, u := e.addAgent(TierAnonymous), e.addAgent(TierAnonymous), e.addAgent(TierAnonymous), e.addAgent(TierAnonymous)
		var ids []string
		var times []time.Time
		for i, a := range []*testAgent{r1, r2, r3} {
			times = append(times, e.clock.Now())
			revoke := registry.RevokeRequest{AMID: a.AMID, Reason: registry.RevocationReasons[i], RevokerAMID: a.AMID, Signed: e.sign(a)}
			if i == 0 {
				notes := "rotated away"
				revoke.Notes = &notes
			}
			status, _, b := e.call(http.MethodPost, "/v1/registry/revoke", revoke)
			var resp registry.RevokeResponse
			if json.Unmarshal(b, &resp); status != http.StatusOK || resp.RevocationID == nil {
				t.Fatalf("revoke: %d %s", status, b)
			}
			ids = append(ids, *resp.RevocationID)
			e.clock.Advance(time.Minute)
		}

		st1, err := e.client.RevocationStatus(ctx, r1.AMID)
		if err != nil {
			t.Fatal(err)
		}
		want := registry.Revocation{ID: ids[0], AMID: r1.AMID, Reason: registry.ReasonKeyCompromise, RevokedBy: r1.AMID,
			RevokedAt: protocol.FormatServerTimestamp(times[0])}
		if !st1.Revoked || st1.AMID != r1.AMID || st1.Revocation == nil || st1.Revocation.Notes == nil || *st1.Revocation.Notes != "rotated away" {
			t.Fatalf("status = %+v", st1)
		}
		got := *st1.Revocation
		got.Notes = nil
		if got != want {
			t.Fatalf("revocation = %+v, want %+v", got, want)
		}
		status, _, b := e.call(http.MethodGet, "/v1/registry/revocation?amid="+u.AMID, nil)
		if status != http.StatusOK || !bytes.Contains(b, []byte(`"revoked":false,"revocation":null`)) {
			t.Fatalf("unrevoked status: %d %s", status, b)
		}
		status, _, b = e.call(http.MethodGet, "/v1/registry/revocation", nil)
		wantFailure(t, status, b, http.StatusBadRequest, "invalid_amid", "")

		bulk, err := e.client.RevocationsBulk(ctx, []string{r2.AMID, u.AMID, r1.AMID, "unknown"})
		if err != nil {
			t.Fatal(err)
		}
		if bulk.TotalChecked != 4 || bulk.TotalRevoked != 2 || len(bulk.Revocations) != 4 {
			t.Fatalf("bulk = %+v", bulk)
		}
		for i, w := range []struct {
			amid    string
			revoked bool
		}{{r2.AMID, true}, {u.AMID, false}, {r1.AMID, true}, {"unknown", false}} {
			g := bulk.Revocations[i]
			if g.AMID != w.amid || g.Revoked != w.revoked || (g.Revocation != nil) != w.revoked {
				t.Fatalf("bulk[%d] = %+v, want %s revoked=%v", i, g, w.amid, w.revoked)
			}
		}
		hundred := make([]string, 100)
		for i := range hundred {
			hundred[i] = fmt.Sprintf("a%d", i)
		}
		if _, err := e.client.RevocationsBulk(ctx, hundred); err != nil {
			t.Fatalf("100 AMIDs: %v", err)
		}
		_, err = e.client.RevocationsBulk(ctx, append(hundred, "one more"))
		if ae := wantAPIError(t, err, http.StatusBadRequest, "too_many_amids"); ae.Message != "Maximum 100 AMIDs per request" {
			t.Fatalf("message %q", ae.Message)
		}

		list, err := e.client.Revocations(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		now := e.clock.Now()
		if list.Total != 3 || len(list.Revocations) != 3 || list.LastUpdated != protocol.FormatServerTimestamp(now) ||
			list.NextUpdate != protocol.FormatServerTimestamp(now.Add(time.Hour)) {
			t.Fatalf("list = %+v", list)
		}
		for i, r := range list.Revocations {
			if r.ID != ids[i] {
				t.Fatalf("list[%d] = %s, want %s (oldest first)", i, r.ID, ids[i])
			}
		}
		page, err := e.client.Revocations(ctx, 2, 1)
		if err != nil || page.Total != 3 || len(page.Revocations) != 2 || page.Revocations[0].ID != ids[1] || page.Revocations[1].ID != ids[2] {
			t.Fatalf("page = %+v, %v", page, err)
		}
		if big, err := e.client.Revocations(ctx, 50000, 0); err != nil || len(big.Revocations) != 3 {
			t.Fatalf("limit over the maximum: %+v, %v", big, err)
		}
		for _, q := range []string{"limit=0", "limit=-1", "limit=x", "offset=-1", "offset=1e3"} {
			status, _, b := e.call(http.MethodGet, "/v1/registry/revocations?"+q, nil)
			if status != http.StatusBadRequest {
				t.Fatalf("%s: %d %s", q, status, b)
			}
		}
	})
}

func TestRootRotation(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		ctx := context.Background()
		oldRoot := e.server.ca.Root()
		admin := e.addAgent(TierAnonymous)
		orgID, oldOrg := e.verifiedOrg(admin, "old.example")
		before := e.addAgent(TierVerified)
		_, beforeChain, err := e.server.issueAgentCertificate(ctx, before.AMID, before.Signing.Public().(ed25519.PublicKey), TierVerified)
		if err != nil {
			t.Fatal(err)
		}

		newRoot, err := e.server.ca.Rotate(e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		roots := e.roots()
		if len(roots) != 2 || !roots[0].Equal(newRoot) || !roots[1].Equal(oldRoot) {
			t.Fatalf("published roots after rotation: %d, want [new, old]", len(roots))
		}
		now := e.clock.Now()
		if _, err := certs.VerifyChain(decodeChain(t, beforeChain), roots, now, nil); err != nil {
			t.Fatalf("a certificate issued before the rotation: %v", err)
		}
		after := e.addAgent(TierVerified)
		_, afterChain, err := e.server.issueAgentCertificate(ctx, after.AMID, after.Signing.Public().(ed25519.PublicKey), TierVerified)
		if err != nil {
			t.Fatal(err)
		}
		ders := decodeChain(t, afterChain)
		if !bytes.Equal(ders[1], newRoot.Raw) || parseCert(t, ders[0]).CheckSignatureFrom(newRoot) != nil {
			t.Fatal("a certificate issued after the rotation is not signed by the new root")
		}
		if _, err := certs.VerifyChain(ders, roots, now, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := certs.VerifyChain(ders, []*x509.Certificate{oldRoot}, now, nil); err == nil {
			t.Fatal("the old root alone accepted a certificate of the new one")
		}
		// The organization certified by the old root still enrols agents,
		// and a new organization is certified by the new root.
		m := newTestAgent(t)
		resp, err := e.client.EnrollOrgAgent(ctx, admin.Signer, enrollment(orgID, m))
		if err != nil {
			t.Fatal(err)
		}
		mders := decodeChain(t, resp.CertificateChain)
		if !bytes.Equal(mders[1], oldOrg.Raw) || !bytes.Equal(mders[2], oldRoot.Raw) {
			t.Fatal("chain of an agent of the old organization")
		}
		if _, err := certs.VerifyChain(mders, roots, now, nil); err != nil {
			t.Fatal(err)
		}
		_, newOrg := e.verifiedOrg(admin, "new.example")
		if newOrg.CheckSignatureFrom(newRoot) != nil {
			t.Fatal("a new organization is not certified by the new root")
		}
		// CRLs: the current root's by default, an earlier root's on request.
		if _, err := certs.ParseCRL(mustCRL(t, e, ""), newRoot, now); err != nil {
			t.Fatalf("default CRL: %v", err)
		}
		if _, err := certs.ParseCRL(mustCRL(t, e, serialHex(oldRoot)), oldRoot, now); err != nil {
			t.Fatalf("CRL of the old root: %v", err)
		}
		for _, r := range []*x509.Certificate{oldRoot, newRoot} {
			if rec, err := st.CertificateBySerial(ctx, serialHex(r)); err != nil || rec.Kind != CertKindRoot {
				t.Fatalf("root %s not recorded: %+v, %v", serialHex(r), rec, err)
			}
		}
		// An expired root is no longer published.
		e.clock.Advance(RootValidity)
		if roots := e.roots(); len(roots) != 1 || !roots[0].Equal(newRoot) {
			t.Fatalf("published %d roots once the old one expired, want the current one", len(roots))
		}
	})
}

func mustCRL(t *testing.T, e *certEnv, issuer string) []byte {
	t.Helper()
	der, err := e.client.CRL(context.Background(), issuer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestCAEndpoint(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newCertEnv(t, st)
		status, hdr, b := e.call(http.MethodGet, "/v1/registry/ca", nil)
		if status != http.StatusOK || hdr.Get("Content-Type") != "application/x-pem-file" {
			t.Fatalf("GET ca: %d %s", status, hdr.Get("Content-Type"))
		}
		root := parsePEMCert(t, string(b))
		if !root.Equal(e.server.ca.Root()) || root.Subject.CommonName != "AgentMesh Registry Root CA" ||
			!slices.Equal(root.Subject.Organization, []string{"AgentMesh"}) || root.PublicKeyAlgorithm != x509.Ed25519 ||
			root.CheckSignatureFrom(root) != nil {
			t.Fatalf("root = %v", root.Subject)
		}
		if d := root.NotAfter.Sub(root.NotBefore); d != RootValidity {
			t.Fatalf("root valid for %v, want %v", d, RootValidity)
		}
	})
}

func TestLoadAuthority(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, err := LoadAuthority(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	mode := func(p string) fs.FileMode {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	serial := serialHex(a.Root())
	keyFile := filepath.Join(dir, "root-"+serial+".key")
	if m := mode(dir); m != 0o700 {
		t.Fatalf("directory mode %o, want 700", m)
	}
	for _, f := range []string{keyFile, filepath.Join(dir, "root-"+serial+".pem"), filepath.Join(dir, "current")} {
		if m := mode(f); m != 0o600 {
			t.Fatalf("%s mode %o, want 600", f, m)
		}
	}
	if !a.Root().NotBefore.Equal(t0.Add(-CertBackdate)) {
		t.Fatalf("root valid from %v, want %v before %v", a.Root().NotBefore, CertBackdate, t0)
	}

	// A second start loads the same root and key.
	b, err := LoadAuthority(dir, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Root().Equal(a.Root()) || !b.signer().Signer.Public().(ed25519.PublicKey).Equal(a.Root().PublicKey) {
		t.Fatal("reloaded a different root")
	}

	// A rotation is kept: the new root signs after a restart, the old one
	// stays published.
	newRoot, err := b.Rotate(t0.Add(2 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadAuthority(dir, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	roots := c.Roots(t0.Add(3 * time.Hour))
	if len(roots) != 2 || !roots[0].Equal(newRoot) || !roots[1].Equal(a.Root()) || !c.Root().Equal(newRoot) {
		t.Fatal("after a rotation and restart: want the new root current and both published")
	}
	if m := mode(filepath.Join(dir, "root-"+serialHex(newRoot)+".key")); m != 0o600 {
		t.Fatalf("new key mode %o", m)
	}

	// Wider permissions are refused.
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuthority(dir, t0); err == nil || !strings.Contains(err.Error(), "key file") || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("key file 0644: %v", err)
	}
	os.Chmod(keyFile, 0o600)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuthority(dir, t0); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("directory 0755: %v", err)
	}
	os.Chmod(dir, 0o700)

	// A pointer to a root that is not there is refused.
	if err := os.WriteFile(filepath.Join(dir, "current"), []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuthority(dir, t0); err == nil {
		t.Fatal("loaded with a pointer to a missing root")
	}
}

func TestServerWithLoadedAuthority(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		ca, err := LoadAuthority(filepath.Join(t.TempDir(), "ca"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		e := newCertEnv(t, st, func(c *Config) { c.Authority = ca })
		if roots := e.roots(); len(roots) != 1 || !roots[0].Equal(ca.Root()) {
			t.Fatal("the server does not publish the configured root")
		}
		rec, err := st.CertificateBySerial(context.Background(), serialHex(ca.Root()))
		if err != nil || rec.Kind != CertKindRoot || rec.Certificate != protocol.B64.EncodeToString(ca.Root().Raw) {
			t.Fatalf("root not recorded at start: %+v, %v", rec, err)
		}
	})
}

func TestOrgKeySealing(t *testing.T) {
	a, err := NewAuthority(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewAuthority(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	sealed, err := sealOrgKey(a.signer(), "org-1", key)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, protocol.B64.EncodeToString(key.Seed())) {
		t.Fatal("sealed form holds the seed in clear")
	}
	got, err := openOrgKey(a.signer(), "org-1", sealed)
	if err != nil || !got.Equal(key) {
		t.Fatalf("open = %v", err)
	}
	if _, err := openOrgKey(b.signer(), "org-1", sealed); err == nil {
		t.Fatal("opened under another root")
	}
	raw, _ := protocol.DecodeB64(sealed, 0)
	raw[0] = 2
	if _, err := openOrgKey(a.signer(), "org-1", protocol.B64.EncodeToString(raw)); err == nil {
		t.Fatal("opened an unknown version")
	}
	raw[0] = 1
	raw[len(raw)-1] ^= 1
	if _, err := openOrgKey(a.signer(), "org-1", protocol.B64.EncodeToString(raw)); err == nil {
		t.Fatal("opened a tampered key")
	}
}

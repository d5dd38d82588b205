package certs

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// detRand is a deterministic byte stream for reproducible keys and serials.
type detRand struct {
	seed [32]byte
	n    uint64
	buf  []byte
}

func newDetRand(label string) *detRand { return &detRand{seed: sha256.Sum256([]byte(label))} }

func (r *detRand) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var ctr [8]byte
		binary.BigEndian.PutUint64(ctr[:], r.n)
		r.n++
		h := sha256.Sum256(append(r.seed[:], ctr[:]...))
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func key(label string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("key " + label))
	return ed25519.NewKeyFromSeed(s[:])
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// testPKI is a root, an organization and one agent certified both ways.
type testPKI struct {
	root, org    *Issuer
	agent        ed25519.PrivateKey
	amid         protocol.AMID
	verifiedLeaf *x509.Certificate // root → agent
	orgLeaf      *x509.Certificate // root → org → agent
}

type pkiTimes struct {
	root, org, leaf time.Duration
}

func newPKI(t testing.TB, label string, v pkiTimes) *testPKI {
	t.Helper()
	root, err := NewRootCA(newDetRand(label), t0, v.root, pkix.Name{CommonName: "AgentMesh Root CA " + label, Organization: []string{"AgentMesh"}})
	if err != nil {
		t.Fatal(err)
	}
	orgKey := key(label + " org")
	orgCert, err := IssueOrganization(root, pubOf(orgKey), "example.com", t0, v.org, big.NewInt(10))
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{root: root, org: &Issuer{Cert: orgCert, Signer: orgKey}, agent: key(label + " agent")}
	p.amid = protocol.DeriveAMID(pubOf(p.agent))
	if p.verifiedLeaf, err = IssueAgent(root, pubOf(p.agent), p.amid, TierVerified, t0, v.leaf, big.NewInt(20)); err != nil {
		t.Fatal(err)
	}
	if p.orgLeaf, err = IssueAgent(p.org, pubOf(p.agent), p.amid, TierOrganization, t0, v.leaf, big.NewInt(30)); err != nil {
		t.Fatal(err)
	}
	return p
}

var defaultTimes = pkiTimes{root: 3650 * day, org: 365 * day, leaf: 90 * day}

func ders(cs ...*x509.Certificate) [][]byte {
	out := make([][]byte, len(cs))
	for i, c := range cs {
		out[i] = c.Raw
	}
	return out
}

// craft signs tmpl with parent's signer without the checks of the Issue
// functions, to build certificates a correct registry would never issue.
func craft(t testing.TB, tmpl, parent *x509.Certificate, pub ed25519.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(nil, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func leafTemplate(amid protocol.AMID, tier Tier, serial int64) *x509.Certificate {
	did, _ := url.Parse(amid.DID())
	return &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: string(amid), OrganizationalUnit: []string{string(tier)}},
		NotBefore:             t0,
		NotAfter:              t0.Add(90 * day),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{did},
	}
}

// crlCache returns a cache holding a CRL of each issuer, issued at at,
// revoking the given serials of each.
func crlCache(t testing.TB, at time.Time, lists map[*Issuer][]int64) *RevocationCache {
	t.Helper()
	rc := &RevocationCache{}
	for is, serials := range lists {
		var entries []Revoked
		for _, s := range serials {
			entries = append(entries, Revoked{Serial: big.NewInt(s), RevokedAt: at, Reason: 1})
		}
		der, err := IssueCRL(is, entries, big.NewInt(1), at, at.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		crl, err := ParseCRL(der, is.Cert, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.Add(crl); err != nil {
			t.Fatal(err)
		}
	}
	return rc
}

func TestVerifyChain(t *testing.T) {
	p := newPKI(t, "main", defaultTimes)
	roots := []*x509.Certificate{p.root.Cert}
	now := t0.Add(10 * day)

	shortOrg := newPKI(t, "short org", pkiTimes{root: 3650 * day, org: 10 * day, leaf: 90 * day})
	shortRoot := newPKI(t, "short root", pkiTimes{root: 5 * day, org: 365 * day, leaf: 90 * day})
	stranger := newPKI(t, "stranger", defaultTimes)

	// A leaf whose SAN names another agent.
	other := protocol.DeriveAMID(pubOf(key("other")))
	wrongSAN := craft(t, leafTemplate(other, TierVerified, 40), p.root.Cert, pubOf(p.agent), p.root.Signer)
	// A forged signature: the leaf's last signature byte flipped.
	forged := append([]byte(nil), p.verifiedLeaf.Raw...)
	forged[len(forged)-1] ^= 1
	// The organization certifies a CA, which certifies an agent.
	subKey := key("sub CA")
	subCA := craft(t, &x509.Certificate{
		SerialNumber: big.NewInt(50), Subject: pkix.Name{Organization: []string{"example.com"}},
		NotBefore: t0, NotAfter: t0.Add(100 * day),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}, p.org.Cert, pubOf(subKey), p.org.Signer)
	underSub := craft(t, leafTemplate(p.amid, TierOrganization, 51), subCA, pubOf(p.agent), subKey)
	// An agent certificate used as an issuer.
	victim := key("victim")
	victimAMID := protocol.DeriveAMID(pubOf(victim))
	byLeaf := craft(t, leafTemplate(victimAMID, TierOrganization, 60), p.verifiedLeaf, pubOf(victim), p.agent)
	// A leaf that claims to be a CA.
	caTmpl := leafTemplate(p.amid, TierVerified, 70)
	caTmpl.IsCA = true
	caTmpl.KeyUsage |= x509.KeyUsageCertSign
	caLeaf := craft(t, caTmpl, p.root.Cert, pubOf(p.agent), p.root.Signer)
	// A root-issued leaf claiming the organization tier.
	wrongTier := craft(t, leafTemplate(p.amid, TierOrganization, 80), p.root.Cert, pubOf(p.agent), p.root.Signer)
	// An organization leaf with a DNS name outside the organization's domain.
	dnsTmpl := leafTemplate(p.amid, TierOrganization, 90)
	dnsTmpl.DNSNames = []string{"agent.example.org"}
	outsideDomain := craft(t, dnsTmpl, p.org.Cert, pubOf(p.agent), p.org.Signer)
	dnsTmpl = leafTemplate(p.amid, TierOrganization, 91)
	dnsTmpl.DNSNames = []string{"agent.example.com"}
	insideDomain := craft(t, dnsTmpl, p.org.Cert, pubOf(p.agent), p.org.Signer)

	// An organization certificate with a URI name constraint.
	uriOrgKey := key("uri org")
	uriOrg := craft(t, &x509.Certificate{
		SerialNumber: big.NewInt(95), Subject: pkix.Name{Organization: []string{"example.com"}},
		NotBefore: t0, NotAfter: t0.Add(100 * day),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		PermittedDNSDomains: []string{"example.com"}, PermittedURIDomains: []string{"example.com"},
	}, p.root.Cert, pubOf(uriOrgKey), p.root.Signer)
	underURIOrg := craft(t, leafTemplate(p.amid, TierOrganization, 96), uriOrg, pubOf(p.agent), uriOrgKey)

	fresh := crlCache(t, now, map[*Issuer][]int64{p.root: nil, p.org: nil})

	tests := []struct {
		name     string
		chain    [][]byte
		roots    []*x509.Certificate
		now      time.Time
		checker  RevocationChecker
		wantErr  error
		wantTier Tier
		wantOrg  string
	}{
		{name: "verified agent", chain: ders(p.verifiedLeaf), checker: fresh, wantTier: TierVerified},
		{name: "verified agent with root", chain: ders(p.verifiedLeaf, p.root.Cert), checker: fresh, wantTier: TierVerified},
		{name: "organization agent", chain: ders(p.orgLeaf, p.org.Cert), checker: fresh, wantTier: TierOrganization, wantOrg: "example.com"},
		{name: "organization agent with root", chain: ders(p.orgLeaf, p.org.Cert, p.root.Cert), checker: fresh, wantTier: TierOrganization, wantOrg: "example.com"},
		{name: "organization agent with DNS name in domain", chain: ders(insideDomain, p.org.Cert), wantTier: TierOrganization, wantOrg: "example.com"},
		{name: "no revocation checker", chain: ders(p.orgLeaf, p.org.Cert), wantTier: TierOrganization, wantOrg: "example.com"},

		{name: "leaf expired", chain: ders(p.verifiedLeaf), now: t0.Add(91 * day), wantErr: ErrCertificateExpired},
		{name: "organization expired", chain: ders(shortOrg.orgLeaf, shortOrg.org.Cert), roots: []*x509.Certificate{shortOrg.root.Cert}, now: t0.Add(11 * day), wantErr: ErrCertificateExpired},
		{name: "root expired", chain: ders(shortRoot.orgLeaf, shortRoot.org.Cert), roots: []*x509.Certificate{shortRoot.root.Cert}, now: t0.Add(6 * day), wantErr: ErrCertificateExpired},
		{name: "root expired verified agent", chain: ders(shortRoot.verifiedLeaf), roots: []*x509.Certificate{shortRoot.root.Cert}, now: t0.Add(6 * day), wantErr: ErrCertificateExpired},
		{name: "not yet valid", chain: ders(p.verifiedLeaf), now: t0.Add(-time.Hour), wantErr: ErrInvalidCertificate},

		{name: "leaf revoked", chain: ders(p.orgLeaf, p.org.Cert), checker: crlCache(t, now, map[*Issuer][]int64{p.root: nil, p.org: {30}}), wantErr: ErrCertificateRevoked},
		{name: "organization revoked", chain: ders(p.orgLeaf, p.org.Cert), checker: crlCache(t, now, map[*Issuer][]int64{p.root: {10}, p.org: nil}), wantErr: ErrCertificateRevoked},
		{name: "verified agent revoked", chain: ders(p.verifiedLeaf), checker: crlCache(t, now, map[*Issuer][]int64{p.root: {20}}), wantErr: ErrCertificateRevoked},
		{name: "other serial revoked", chain: ders(p.orgLeaf, p.org.Cert), checker: crlCache(t, now, map[*Issuer][]int64{p.root: {11}, p.org: {31}}), wantTier: TierOrganization, wantOrg: "example.com"},
		{name: "stale CRL", chain: ders(p.verifiedLeaf), now: now.Add(61 * time.Minute), checker: fresh, wantErr: ErrStaleCRL},
		{name: "no CRL for the organization", chain: ders(p.orgLeaf, p.org.Cert), checker: crlCache(t, now, map[*Issuer][]int64{p.root: nil}), wantErr: ErrStaleCRL},

		{name: "wrong AMID in SAN", chain: ders(wrongSAN), wantErr: ErrInvalidCertificate},
		{name: "forged signature", chain: [][]byte{forged}, wantErr: ErrInvalidCertificate},
		{name: "untrusted root", chain: ders(stranger.orgLeaf, stranger.org.Cert, stranger.root.Cert), wantErr: ErrInvalidCertificate},
		{name: "organization issues a CA", chain: ders(underSub, subCA, p.org.Cert), wantErr: ErrInvalidCertificate},
		{name: "leaf used as issuer", chain: ders(byLeaf, p.verifiedLeaf), wantErr: ErrInvalidCertificate},
		{name: "leaf is a CA", chain: ders(caLeaf), wantErr: ErrInvalidCertificate},
		{name: "tier does not match issuer", chain: ders(wrongTier), wantErr: ErrInvalidCertificate},
		{name: "DNS name outside organization domain", chain: ders(outsideDomain, p.org.Cert), wantErr: ErrInvalidCertificate},
		{name: "URI name constraint", chain: ders(underURIOrg, uriOrg), wantErr: ErrInvalidCertificate},
		{name: "organization missing", chain: ders(p.orgLeaf), wantErr: ErrInvalidCertificate},
		{name: "root as leaf", chain: ders(p.root.Cert), wantErr: ErrInvalidCertificate},
		{name: "empty chain", chain: nil, wantErr: ErrInvalidCertificate},
		{name: "too long", chain: ders(p.orgLeaf, p.org.Cert, p.root.Cert, p.root.Cert), wantErr: ErrInvalidCertificate},
		{name: "garbage", chain: [][]byte{[]byte("not a certificate")}, wantErr: ErrInvalidCertificate},
		{name: "no roots", chain: ders(p.verifiedLeaf), roots: []*x509.Certificate{}, wantErr: ErrInvalidCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := roots
			if tt.roots != nil {
				r = tt.roots
			}
			at := now
			if !tt.now.IsZero() {
				at = tt.now
			}
			got, err := VerifyChain(tt.chain, r, at, tt.checker)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("VerifyChain error = %v, want %v", err, tt.wantErr)
				}
				if n := countKinds(err); n != 1 {
					t.Errorf("VerifyChain error %v matches %d of the three kinds, want 1", err, n)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyChain: %v", err)
			}
			if got.AMID != p.amid || got.Tier != tt.wantTier || got.Organization != tt.wantOrg {
				t.Errorf("VerifyChain = {%s %q %q}, want {%s %q %q}", got.AMID, got.Tier, got.Organization, p.amid, tt.wantTier, tt.wantOrg)
			}
			if got.Leaf == nil || string(got.Leaf.Raw) != string(tt.chain[0]) {
				t.Errorf("VerifyChain Leaf is not the first certificate of the chain")
			}
		})
	}
}

func countKinds(err error) int {
	n := 0
	for _, k := range []error{ErrInvalidCertificate, ErrCertificateExpired, ErrCertificateRevoked} {
		if errors.Is(err, k) {
			n++
		}
	}
	return n
}

func TestRootRotation(t *testing.T) {
	old := newPKI(t, "old root", defaultTimes)
	next := newPKI(t, "new root", defaultTimes)
	both := []*x509.Certificate{next.root.Cert, old.root.Cert}
	now := t0.Add(30 * day)

	tests := []struct {
		name    string
		chain   [][]byte
		roots   []*x509.Certificate
		now     time.Time
		wantErr error
	}{
		{name: "old chain with both roots", chain: ders(old.orgLeaf, old.org.Cert), roots: both, now: now},
		{name: "new chain with both roots", chain: ders(next.orgLeaf, next.org.Cert), roots: both, now: now},
		{name: "old verified agent with both roots", chain: ders(old.verifiedLeaf), roots: both, now: now},
		{name: "old chain after old root retired", chain: ders(old.orgLeaf, old.org.Cert), roots: []*x509.Certificate{next.root.Cert}, now: now, wantErr: ErrInvalidCertificate},
		{name: "old chain after its leaf expired", chain: ders(old.orgLeaf, old.org.Cert), roots: both, now: t0.Add(91 * day), wantErr: ErrCertificateExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyChain(tt.chain, tt.roots, tt.now, nil)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("VerifyChain error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestRejectReason(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want protocol.RejectReason
	}{
		{name: "nil", err: nil, want: ""},
		{name: "invalid", err: invalid("x"), want: protocol.RejectInvalidCertificate},
		{name: "expired", err: ErrCertificateExpired, want: protocol.RejectCertificateExpired},
		{name: "revoked wrapped", err: errors.Join(errors.New("leaf"), ErrCertificateRevoked), want: protocol.RejectCertificateRevoked},
		{name: "stale CRL", err: ErrStaleCRL, want: protocol.RejectInvalidCertificate},
		{name: "foreign", err: errors.New("other"), want: protocol.RejectInvalidCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RejectReason(tt.err); got != tt.want {
				t.Errorf("RejectReason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	p := newPKI(t, "issue", defaultTimes)
	agentPub := pubOf(p.agent)
	leafIssuer := &Issuer{Cert: p.verifiedLeaf, Signer: p.agent}
	mismatched := &Issuer{Cert: p.root.Cert, Signer: key("not the root")}
	tests := []struct {
		name  string
		issue func() error
	}{
		{name: "AMID of another key", issue: func() error {
			_, err := IssueAgent(p.root, agentPub, protocol.DeriveAMID(pubOf(key("x"))), TierVerified, t0, day, big.NewInt(1))
			return err
		}},
		{name: "organization tier from root", issue: func() error {
			_, err := IssueAgent(p.root, agentPub, p.amid, TierOrganization, t0, day, big.NewInt(1))
			return err
		}},
		{name: "verified tier from organization", issue: func() error {
			_, err := IssueAgent(p.org, agentPub, p.amid, TierVerified, t0, day, big.NewInt(1))
			return err
		}},
		{name: "leaf as issuer", issue: func() error {
			_, err := IssueAgent(leafIssuer, agentPub, p.amid, TierOrganization, t0, day, big.NewInt(1))
			return err
		}},
		{name: "signer does not match", issue: func() error {
			_, err := IssueAgent(mismatched, agentPub, p.amid, TierVerified, t0, day, big.NewInt(1))
			return err
		}},
		{name: "zero serial", issue: func() error {
			_, err := IssueAgent(p.root, agentPub, p.amid, TierVerified, t0, day, big.NewInt(0))
			return err
		}},
		{name: "nil serial", issue: func() error {
			_, err := IssueOrganization(p.root, agentPub, "example.com", t0, day, nil)
			return err
		}},
		{name: "organization from organization", issue: func() error {
			_, err := IssueOrganization(p.org, agentPub, "example.com", t0, day, big.NewInt(1))
			return err
		}},
		{name: "serial over 20 octets", issue: func() error {
			_, err := IssueAgent(p.root, agentPub, p.amid, TierVerified, t0, day, new(big.Int).Lsh(big.NewInt(1), 160))
			return err
		}},
		{name: "bad domain", issue: func() error {
			_, err := IssueOrganization(p.root, agentPub, "Example..com", t0, day, big.NewInt(1))
			return err
		}},
		{name: "short key", issue: func() error {
			_, err := IssueOrganization(p.root, agentPub[:10], "example.com", t0, day, big.NewInt(1))
			return err
		}},
		{name: "zero validity", issue: func() error {
			_, err := NewRootCA(newDetRand("x"), t0, 0, pkix.Name{})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.issue(); err == nil {
				t.Errorf("issuing succeeded, want an error")
			}
		})
	}
}

func TestIssuedCertificates(t *testing.T) {
	p := newPKI(t, "shape", defaultTimes)
	root, org, leaf := p.root.Cert, p.org.Cert, p.orgLeaf
	if !root.IsCA || root.MaxPathLen != 1 || root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("root: IsCA %v MaxPathLen %d KeyUsage %v, want CA, 1, CertSign|CRLSign", root.IsCA, root.MaxPathLen, root.KeyUsage)
	}
	if !org.IsCA || org.MaxPathLen != 0 || !org.MaxPathLenZero || !org.PermittedDNSDomainsCritical ||
		len(org.PermittedDNSDomains) != 1 || org.PermittedDNSDomains[0] != "example.com" ||
		len(org.Subject.Organization) != 1 || org.Subject.Organization[0] != "example.com" {
		t.Errorf("organization certificate has the wrong constraints: %+v", org)
	}
	if leaf.IsCA || len(leaf.URIs) != 1 || leaf.URIs[0].String() != p.amid.DID() || !pubOf(p.agent).Equal(leaf.PublicKey) ||
		len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("agent certificate has the wrong shape: URIs %v", leaf.URIs)
	}
	if err := leaf.CheckSignatureFrom(org); err != nil {
		t.Errorf("agent certificate not signed by the organization: %v", err)
	}
}

func TestVerifySessionLink(t *testing.T) {
	p := newPKI(t, "session", defaultTimes)
	peer := protocol.DeriveAMID(pubOf(key("peer")))
	var eph [32]byte
	copy(eph[:], "ephemeral key bytes for the test")
	good := ed25519.Sign(p.agent, protocol.EphemeralSigningBytes(p.amid, peer, eph))
	otherEph := eph
	otherEph[0] ^= 1
	byOther := ed25519.Sign(key("other"), protocol.EphemeralSigningBytes(p.amid, peer, eph))
	otherLeaf := newPKI(t, "session other", defaultTimes).verifiedLeaf

	tests := []struct {
		name     string
		leaf     *x509.Certificate
		from, to protocol.AMID
		eph      [32]byte
		sig      []byte
		wantErr  bool
	}{
		{name: "good", leaf: p.verifiedLeaf, from: p.amid, to: peer, eph: eph, sig: good},
		{name: "other recipient", leaf: p.verifiedLeaf, from: p.amid, to: p.amid, eph: eph, sig: good, wantErr: true},
		{name: "other ephemeral", leaf: p.verifiedLeaf, from: p.amid, to: peer, eph: otherEph, sig: good, wantErr: true},
		{name: "signed by another key", leaf: p.verifiedLeaf, from: p.amid, to: peer, eph: eph, sig: byOther, wantErr: true},
		{name: "leaf of another agent", leaf: otherLeaf, from: p.amid, to: peer, eph: eph, sig: good, wantErr: true},
		{name: "short signature", leaf: p.verifiedLeaf, from: p.amid, to: peer, eph: eph, sig: good[:10], wantErr: true},
		{name: "no leaf", leaf: nil, from: p.amid, to: peer, eph: eph, sig: good, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySessionLink(tt.leaf, tt.from, tt.to, tt.eph, tt.sig)
			if (err != nil) != tt.wantErr {
				t.Fatalf("VerifySessionLink error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidCertificate) {
				t.Errorf("VerifySessionLink error %v is not ErrInvalidCertificate", err)
			}
		})
	}
}

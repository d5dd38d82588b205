package certs

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Errors of chain verification. Every error VerifyChain returns matches
// exactly one of them with errors.Is; [RejectReason] maps them to the REJECT
// reasons of PROTOCOL.md §6.4.
var (
	ErrInvalidCertificate = errors.New("invalid certificate")
	ErrCertificateExpired = errors.New("certificate expired")
	ErrCertificateRevoked = errors.New("certificate revoked")
)

// RejectReason returns the REJECT reason for an error of this package, and
// RejectInvalidCertificate for any other non-nil error. It returns "" for nil.
func RejectReason(err error) protocol.RejectReason {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrCertificateRevoked):
		return protocol.RejectCertificateRevoked
	case errors.Is(err, ErrCertificateExpired):
		return protocol.RejectCertificateExpired
	default:
		return protocol.RejectInvalidCertificate
	}
}

// RevocationChecker reports whether cert, signed by issuer, is revoked at
// now. It returns nil for a certificate known not to be revoked, an error
// matching ErrCertificateRevoked for a revoked one, and any other error when
// it cannot tell; VerifyChain then fails closed.
type RevocationChecker interface {
	CheckRevocation(cert, issuer *x509.Certificate, now time.Time) error
}

// Verified is what a valid chain proves about its leaf.
type Verified struct {
	// AMID is the agent's address, from the leaf's URI SAN, which derives
	// from the leaf's public key.
	AMID protocol.AMID
	// Tier is the leaf's tier, consistent with who issued it.
	Tier Tier
	// Organization is the verified domain of the issuing organization, or
	// "" for an agent the root certified directly.
	Organization string
	// Leaf is the agent certificate.
	Leaf *x509.Certificate
}

// Limits on chains VerifyChain reads.
const (
	// MaxChainLength is root, organization and agent.
	MaxChainLength = 3
	// MaxCertificateSize bounds one DER certificate.
	MaxCertificateSize = 16 << 10
)

// invalid wraps a problem as ErrInvalidCertificate.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidCertificate, fmt.Sprintf(format, args...))
}

// VerifyChain verifies an agent certificate chain, leaf first, as carried in
// a KNOCK: the leaf and any organization certificate, optionally followed by
// the root. It checks, with crypto/x509 semantics, the signatures up to one of
// roots (several roots are accepted, so a rotated-out root keeps its
// certificates valid until they expire), validity at now, path lengths and
// name constraints. It then checks that the leaf is an Ed25519 agent
// certificate whose did:agentmesh URI SAN names the AMID of its own key, that
// its tier matches its issuer, and, unless revoked is nil, that no
// certificate below the root is revoked.
func VerifyChain(chain [][]byte, roots []*x509.Certificate, now time.Time, revoked RevocationChecker) (*Verified, error) {
	if len(chain) == 0 {
		return nil, invalid("empty chain")
	}
	if len(chain) > MaxChainLength {
		return nil, invalid("chain has %d certificates, at most %d allowed", len(chain), MaxChainLength)
	}
	if len(roots) == 0 {
		return nil, invalid("no trusted roots")
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		if len(der) > MaxCertificateSize {
			return nil, invalid("certificate %d is %d bytes, at most %d allowed", i, len(der), MaxCertificateSize)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrInvalidCertificate, i, err)
		}
		if err := checkEd25519(c); err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrInvalidCertificate, i, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	if leaf.IsCA {
		return nil, invalid("leaf is a CA certificate")
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, invalid("leaf may not sign")
	}
	amid, err := leafAMID(leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: leaf: %w", ErrInvalidCertificate, err)
	}

	rootPool := x509.NewCertPool()
	for _, r := range roots {
		if r != nil {
			rootPool.AddCert(r)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	// crypto/x509 refuses any URI without a host below a name-constrained
	// CA, even when the constraints are DNS-only, as organization
	// certificates are. RFC 5280 applies a constraint only to names of its
	// own type, so the path is built for a copy of the leaf without its URI
	// SAN (the signature covers the raw bytes, which stay), and URI
	// constraints, which could apply to the DID, are refused below.
	bare := *leaf
	bare.URIs = nil
	paths, err := bare.Verify(x509.VerifyOptions{
		Roots:         rootPool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, classify(err, certs, roots, now)
	}
	path := paths[0]
	path[0] = leaf
	for _, c := range path {
		if err := checkEd25519(c); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
		}
		if len(c.PermittedURIDomains) != 0 || len(c.ExcludedURIDomains) != 0 {
			return nil, invalid("URI name constraints are not supported")
		}
	}
	v := &Verified{AMID: amid, Leaf: leaf}
	switch len(path) {
	case 2:
		v.Tier = TierVerified
	case 3:
		v.Tier = TierOrganization
		org := path[1]
		if len(org.Subject.Organization) != 1 || len(org.PermittedDNSDomains) != 1 || org.Subject.Organization[0] != org.PermittedDNSDomains[0] {
			return nil, invalid("organization certificate does not name exactly its permitted domain")
		}
		v.Organization = org.Subject.Organization[0]
	default:
		return nil, invalid("chain to the root has %d certificates, want 2 or 3", len(path))
	}
	if len(leaf.Subject.OrganizationalUnit) != 1 || Tier(leaf.Subject.OrganizationalUnit[0]) != v.Tier {
		return nil, invalid("leaf tier does not match its issuer, want %q", v.Tier)
	}
	if revoked != nil {
		for i := 0; i+1 < len(path); i++ {
			if err := revoked.CheckRevocation(path[i], path[i+1], now); err != nil {
				if errors.Is(err, ErrCertificateRevoked) {
					return nil, fmt.Errorf("certificate %d: %w", i, err)
				}
				return nil, fmt.Errorf("%w: certificate %d: revocation status: %w", ErrInvalidCertificate, i, err)
			}
		}
	}
	return v, nil
}

func checkEd25519(c *x509.Certificate) error {
	if c.PublicKeyAlgorithm != x509.Ed25519 {
		return errors.New("public key is not Ed25519")
	}
	if c.SignatureAlgorithm != x509.PureEd25519 {
		return errors.New("signature is not Ed25519")
	}
	return nil
}

// leafAMID returns the AMID of the leaf's single did:agentmesh URI SAN,
// checking it derives from the leaf's public key.
func leafAMID(leaf *x509.Certificate) (protocol.AMID, error) {
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", errors.New("public key is not Ed25519")
	}
	if len(leaf.URIs) != 1 {
		return "", fmt.Errorf("has %d URI SANs, want 1", len(leaf.URIs))
	}
	u := leaf.URIs[0]
	const prefix = "agentmesh:"
	if u.Scheme != "did" || len(u.Opaque) <= len(prefix) || u.Opaque[:len(prefix)] != prefix {
		return "", errors.New("URI SAN is not a did:agentmesh DID")
	}
	amid, err := protocol.ParseAMID(u.Opaque[len(prefix):])
	if err != nil {
		return "", fmt.Errorf("URI SAN: %w", err)
	}
	if u.String() != amid.DID() {
		return "", errors.New("URI SAN is not in canonical form")
	}
	if !amid.Matches(pub) {
		return "", errors.New("URI SAN AMID does not derive from the public key")
	}
	return amid, nil
}

// classify turns a crypto/x509 verification error into an error of this
// package. x509 reports "expired or not yet valid" alike; only a certificate
// past its NotAfter counts as expired.
func classify(err error, chain, roots []*x509.Certificate, now time.Time) error {
	var ie x509.CertificateInvalidError
	if errors.As(err, &ie) && ie.Reason == x509.Expired {
		top := chain[len(chain)-1]
		for _, c := range chain {
			if now.After(c.NotAfter) {
				return fmt.Errorf("%w: %w", ErrCertificateExpired, err)
			}
		}
		for _, r := range roots {
			if r != nil && string(r.RawSubject) == string(top.RawIssuer) && now.After(r.NotAfter) {
				return fmt.Errorf("%w: %w", ErrCertificateExpired, err)
			}
		}
	}
	return fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
}

// VerifySessionLink checks the last link of the chain: sig, the KNOCK's
// ephemeral signature (protocol.EphemeralSigningBytes), was made by the
// leaf's key, and the leaf belongs to from.
func VerifySessionLink(leaf *x509.Certificate, from, to protocol.AMID, ephemeral [32]byte, sig []byte) error {
	if leaf == nil {
		return invalid("session link: no leaf certificate")
	}
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return invalid("session link: leaf key is not Ed25519")
	}
	if !from.Matches(pub) {
		return invalid("session link: leaf does not belong to the sender")
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, protocol.EphemeralSigningBytes(from, to, ephemeral), sig) {
		return fmt.Errorf("%w: session link: %w", ErrInvalidCertificate, protocol.ErrBadSignature)
	}
	return nil
}

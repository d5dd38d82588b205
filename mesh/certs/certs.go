// Package certs holds the X.509 trust chain of AgentMesh (DESIGN.md §4.5):
// a registry Root CA, Organization CAs constrained to their verified domain,
// and Agent certificates whose subject key is the agent's Ed25519 signing key
// and whose URI SAN is did:agentmesh:<AMID>. The last link, from an agent to
// a session, is the KNOCK's ephemeral signature (see [VerifySessionLink]).
//
// Every certificate and CRL is Ed25519. All functions are pure: they read no
// clock and do no I/O; the current time and the randomness source are
// parameters.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Tier is the trust tier an agent certificate asserts. It is carried as the
// subject's organizational unit.
type Tier string

// Tiers that certificates carry. Anonymous agents hold no certificate.
const (
	// TierVerified agents hold a certificate issued directly by the root.
	TierVerified Tier = "verified"
	// TierOrganization agents hold a certificate issued by an organization.
	TierOrganization Tier = "organization"
)

// Issuer is a CA certificate together with the private key that signs with
// it.
type Issuer struct {
	Cert   *x509.Certificate
	Signer crypto.Signer
}

// check reports whether is can issue certificates at all.
func (is *Issuer) check() error {
	if is == nil || is.Cert == nil || is.Signer == nil {
		return errors.New("issuer: missing certificate or signer")
	}
	if !is.Cert.IsCA || is.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("issuer: certificate is not a CA")
	}
	pub, ok := is.Signer.Public().(ed25519.PublicKey)
	if !ok {
		return errors.New("issuer: signer is not Ed25519")
	}
	if !pub.Equal(is.Cert.PublicKey) {
		return errors.New("issuer: signer does not match the certificate key")
	}
	return nil
}

// isRoot reports whether c is self-issued.
func isRoot(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject)
}

// maxSerialBits bounds serial numbers: RFC 5280 allows 20 octets, and the
// encoding of a positive integer needs a clear top bit.
const maxSerialBits = 20*8 - 1

// NewRootCA creates a self-signed Ed25519 root certificate valid from now for
// validity, with a fresh key read from rand. The root may sign organization
// certificates (path length 1) and CRLs.
func NewRootCA(rand io.Reader, now time.Time, validity time.Duration, subject pkix.Name) (*Issuer, error) {
	if validity <= 0 {
		return nil, errors.New("root CA: validity must be positive")
	}
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("root CA: generating key: %w", err)
	}
	serial, err := randomSerial(rand)
	if err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now,
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	return &Issuer{Cert: cert, Signer: priv}, nil
}

// randomSerial draws a positive 127-bit serial number.
func randomSerial(rand io.Reader) (*big.Int, error) {
	var b [16]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("generating serial: %w", err)
	}
	b[0] &= 0x7f
	n := new(big.Int).SetBytes(b[:])
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, nil
}

func checkSerial(serial *big.Int) error {
	if serial == nil || serial.Sign() <= 0 || serial.BitLen() > maxSerialBits {
		return errors.New("serial: must be a positive integer of at most 20 octets")
	}
	return nil
}

// IssueOrganization signs a CA certificate for an organization whose domain
// the registry has verified. The certificate may issue only leaf
// certificates (path length 0), carries a critical DNS name constraint
// permitting domain, and names the domain as its subject organization.
func IssueOrganization(root *Issuer, orgPub ed25519.PublicKey, domain string, now time.Time, validity time.Duration, serial *big.Int) (*x509.Certificate, error) {
	if err := root.check(); err != nil {
		return nil, fmt.Errorf("organization certificate: %w", err)
	}
	if !isRoot(root.Cert) {
		return nil, errors.New("organization certificate: issuer is not a root")
	}
	if len(orgPub) != ed25519.PublicKeySize {
		return nil, errors.New("organization certificate: public key: wrong length")
	}
	if err := checkDomain(domain); err != nil {
		return nil, fmt.Errorf("organization certificate: domain: %w", err)
	}
	if validity <= 0 {
		return nil, errors.New("organization certificate: validity must be positive")
	}
	if err := checkSerial(serial); err != nil {
		return nil, fmt.Errorf("organization certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{Organization: []string{domain}, CommonName: domain},
		NotBefore:                   now,
		NotAfter:                    now.Add(validity),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{domain},
	}
	return sign(root, tmpl, orgPub)
}

// checkDomain accepts a lower-case DNS name of letters, digits, hyphens and
// dots, without leading, trailing or doubled dots.
func checkDomain(d string) error {
	if d == "" || len(d) > 253 {
		return errors.New("must be 1 to 253 characters")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty or over-long label")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return errors.New("only lower-case letters, digits, hyphens and dots are allowed")
			}
		}
	}
	return nil
}

// IssueAgent signs a leaf certificate for an agent. Its subject key is the
// agent's signing key, its subject common name and URI SAN carry the AMID
// (the SAN as did:agentmesh:<AMID>), and its organizational unit the tier.
// The issuer is the root for verified agents (tier must be TierVerified) or
// an organization certificate for organization agents (TierOrganization).
func IssueAgent(issuer *Issuer, agentPub ed25519.PublicKey, amid protocol.AMID, tier Tier, now time.Time, validity time.Duration, serial *big.Int) (*x509.Certificate, error) {
	if err := issuer.check(); err != nil {
		return nil, fmt.Errorf("agent certificate: %w", err)
	}
	if len(agentPub) != ed25519.PublicKeySize {
		return nil, errors.New("agent certificate: public key: wrong length")
	}
	if !amid.Matches(agentPub) {
		return nil, errors.New("agent certificate: AMID does not derive from the public key")
	}
	if want := tierFor(isRoot(issuer.Cert)); tier != want {
		return nil, fmt.Errorf("agent certificate: tier %q cannot be issued by this issuer, want %q", tier, want)
	}
	if validity <= 0 {
		return nil, errors.New("agent certificate: validity must be positive")
	}
	if err := checkSerial(serial); err != nil {
		return nil, fmt.Errorf("agent certificate: %w", err)
	}
	did, err := url.Parse(amid.DID())
	if err != nil {
		return nil, fmt.Errorf("agent certificate: DID: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         string(amid),
			OrganizationalUnit: []string{string(tier)},
		},
		NotBefore:             now,
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{did},
	}
	return sign(issuer, tmpl, agentPub)
}

// tierFor is the only tier an agent certificate may carry, given whether the
// root issued it directly.
func tierFor(byRoot bool) Tier {
	if byRoot {
		return TierVerified
	}
	return TierOrganization
}

func sign(issuer *Issuer, tmpl *x509.Certificate, pub ed25519.PublicKey) (*x509.Certificate, error) {
	// Ed25519 signatures draw no randomness; CreateCertificate reads none
	// because every template has a serial number.
	der, err := x509.CreateCertificate(nil, tmpl, issuer.Cert, pub, issuer.Signer)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	return cert, nil
}

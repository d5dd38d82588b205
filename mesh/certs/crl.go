package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// MaxRevocationAge is how long a CRL may serve after its ThisUpdate: hosts
// cache revocations for at most one hour (DESIGN.md §4.5).
const MaxRevocationAge = time.Hour

// crlClockSkew is how far in the future a CRL's ThisUpdate may lie.
const crlClockSkew = 5 * time.Minute

// ErrStaleCRL is returned when no CRL fresh enough is at hand.
var ErrStaleCRL = errors.New("no fresh revocation list")

// Revoked is one entry of a CRL.
type Revoked struct {
	Serial    *big.Int
	RevokedAt time.Time
	// Reason is the RFC 5280 CRLReason code (0 unspecified, 1 key
	// compromise, 4 superseded, 5 cessation of operation, 9 privilege
	// withdrawn).
	Reason int
}

// IssueCRL signs a revocation list for the certificates issuer has issued.
// number must increase with each list the issuer publishes.
func IssueCRL(issuer *Issuer, entries []Revoked, number *big.Int, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	if err := issuer.check(); err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	if issuer.Cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, errors.New("CRL: issuer may not sign CRLs")
	}
	if number == nil || number.Sign() < 0 {
		return nil, errors.New("CRL: number must be a non-negative integer")
	}
	if !nextUpdate.After(thisUpdate) {
		return nil, errors.New("CRL: nextUpdate must follow thisUpdate")
	}
	tmpl := &x509.RevocationList{
		Number:     number,
		ThisUpdate: thisUpdate,
		NextUpdate: nextUpdate,
	}
	for i, e := range entries {
		if err := checkSerial(e.Serial); err != nil {
			return nil, fmt.Errorf("CRL: entry %d: %w", i, err)
		}
		if e.Reason < 0 || e.Reason > 10 || e.Reason == 7 {
			return nil, fmt.Errorf("CRL: entry %d: reason %d is not an RFC 5280 code", i, e.Reason)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber:   e.Serial,
			RevocationTime: e.RevokedAt,
			ReasonCode:     e.Reason,
		})
	}
	der, err := x509.CreateRevocationList(nil, tmpl, issuer.Cert, issuer.Signer)
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	return der, nil
}

// CRL is a revocation list whose signature and freshness have been checked.
type CRL struct {
	Issuer     *x509.Certificate
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time
	revoked    map[string]Revoked // by serial in decimal
}

// Lookup returns the entry of serial, if the list revokes it.
func (c *CRL) Lookup(serial *big.Int) (Revoked, bool) {
	if serial == nil {
		return Revoked{}, false
	}
	r, ok := c.revoked[serial.String()]
	return r, ok
}

// fresh reports whether c may be relied on at now.
func (c *CRL) fresh(now time.Time) error {
	switch {
	case c.ThisUpdate.After(now.Add(crlClockSkew)):
		return fmt.Errorf("%w: CRL thisUpdate is in the future", ErrStaleCRL)
	case now.After(c.NextUpdate):
		return fmt.Errorf("%w: CRL nextUpdate has passed", ErrStaleCRL)
	case now.Sub(c.ThisUpdate) > MaxRevocationAge:
		return fmt.Errorf("%w: CRL is older than %v", ErrStaleCRL, MaxRevocationAge)
	}
	return nil
}

// ParseCRL parses a DER revocation list, checks it is signed by issuer, and
// that it is fresh at now: issued no later than shortly after now, not past
// its NextUpdate, and at most MaxRevocationAge old.
func ParseCRL(der []byte, issuer *x509.Certificate, now time.Time) (*CRL, error) {
	if issuer == nil {
		return nil, errors.New("CRL: no issuer certificate")
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	if rl.NextUpdate.IsZero() {
		return nil, errors.New("CRL: no nextUpdate")
	}
	c := &CRL{
		Issuer:     issuer,
		Number:     rl.Number,
		ThisUpdate: rl.ThisUpdate,
		NextUpdate: rl.NextUpdate,
		revoked:    make(map[string]Revoked, len(rl.RevokedCertificateEntries)),
	}
	if c.Number == nil {
		return nil, errors.New("CRL: no CRL number")
	}
	if err := c.fresh(now); err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber == nil {
			continue
		}
		c.revoked[e.SerialNumber.String()] = Revoked{Serial: e.SerialNumber, RevokedAt: e.RevocationTime, Reason: e.ReasonCode}
	}
	return c, nil
}

// RevocationCache holds the latest CRL of each issuer and implements
// RevocationChecker. It fails closed: a certificate whose issuer has no CRL,
// or only one older than MaxRevocationAge, is refused with ErrStaleCRL. It
// is safe for concurrent use; the zero value is empty and ready.
type RevocationCache struct {
	mu   sync.RWMutex
	crls map[string]*CRL // by the issuer's SubjectPublicKeyInfo
}

// Add stores c as its issuer's CRL unless a list with a higher number is
// already held.
func (rc *RevocationCache) Add(c *CRL) error {
	if c == nil || c.Issuer == nil || c.Number == nil {
		return errors.New("revocation cache: incomplete CRL")
	}
	key := string(c.Issuer.RawSubjectPublicKeyInfo)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.crls == nil {
		rc.crls = make(map[string]*CRL)
	}
	if old, ok := rc.crls[key]; ok && old.Number.Cmp(c.Number) > 0 {
		return nil
	}
	rc.crls[key] = c
	return nil
}

// CheckRevocation implements RevocationChecker.
func (rc *RevocationCache) CheckRevocation(cert, issuer *x509.Certificate, now time.Time) error {
	if cert == nil || issuer == nil {
		return errors.New("revocation cache: missing certificate")
	}
	rc.mu.RLock()
	c := rc.crls[string(issuer.RawSubjectPublicKeyInfo)]
	rc.mu.RUnlock()
	if c == nil {
		return fmt.Errorf("%w: none held for the issuer", ErrStaleCRL)
	}
	if err := c.fresh(now); err != nil {
		return err
	}
	if _, ok := c.Lookup(cert.SerialNumber); ok {
		return fmt.Errorf("%w: serial %s", ErrCertificateRevoked, cert.SerialNumber)
	}
	return nil
}

var _ RevocationChecker = (*RevocationCache)(nil)

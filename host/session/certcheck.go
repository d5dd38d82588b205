package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/agentmesh/agentmesh-go/mesh/certs"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// CertDirectory is the part of the registry client a CertChecker uses: the
// trusted roots, the CRLs and the organizations behind organization
// certificates. *registry.Client satisfies it.
type CertDirectory interface {
	// CACertificates returns the registry's unexpired root certificates.
	CACertificates(ctx context.Context) ([]*x509.Certificate, error)
	// CRL returns the DER revocation list of an issuer: an organization
	// named by its ID, or a root named by its serial number in lowercase
	// hex.
	CRL(ctx context.Context, issuerOrgID string) ([]byte, error)
	// OrgLookup returns the organization registered for a domain.
	OrgLookup(ctx context.Context, domain string) (*registry.OrgLookup, error)
}

var _ CertDirectory = (*registry.Client)(nil)

// ErrCertCheckUnavailable marks a certificate check that could not be
// completed because the registry could not be asked (unreachable, or
// answering with something unusable) and nothing fresh enough was held: no
// roots, or no CRL younger than certs.MaxRevocationAge. The check still
// fails closed: such errors also match certs.ErrInvalidCertificate, so
// certs.RejectReason maps them to protocol.RejectInvalidCertificate. Test
// for this error to tell a registry outage from a bad chain.
var ErrCertCheckUnavailable = errors.New("certificate check unavailable")

// Refresh intervals of the roots a CertChecker trusts.
const (
	// RootsMaxAge is how long fetched roots are used before they are
	// fetched again. If that fetch fails, the roots held are kept (CRLs
	// still have to be fresh) and the fetch is retried after
	// RootsRetryInterval.
	RootsMaxAge = time.Hour
	// RootsRetryInterval is the least time between two fetches of the
	// roots, other than the first. A chain from an unknown authority
	// makes the roots be fetched again early (the registry may have
	// rotated its root), but at most this often.
	RootsRetryInterval = time.Minute
)

// directoryTimeout bounds one request to the registry. A fetch is shared by
// every check waiting for it, so it is not cut short when the check that
// started it gives up.
const directoryTimeout = 30 * time.Second

// CertChecker verifies the certificate chains KNOCKs carry (DESIGN.md §4
// item 5, PROTOCOL.md §9) against the registry's roots and revocation
// lists. It caches the roots and each issuer's CRL; concurrent checks that
// need the same fetch share it. Its methods are safe for concurrent use.
type CertChecker struct {
	dir    CertDirectory
	flight singleflight.Group

	// revoked holds the latest CRL of each issuer; it refuses a list older
	// than certs.MaxRevocationAge, which makes the list be fetched again.
	revoked certs.RevocationCache

	mu           sync.Mutex
	roots        []*x509.Certificate
	rootsGen     uint64    // counts the fetches that changed the roots
	rootsFetched time.Time // when roots were fetched
	rootsTried   time.Time // when the roots were last asked for, with any outcome
}

// NewCertChecker returns a checker that takes its roots and CRLs from dir.
func NewCertChecker(dir CertDirectory) *CertChecker {
	return &CertChecker{dir: dir}
}

// Check verifies the certificate chain of the KNOCK k for its sender, at
// now: the chain (leaf first) leads to one of the registry's roots, every
// certificate is valid at now, the leaf is the agent certificate of k.From,
// no certificate below the root is revoked according to the issuer's CRL,
// and k.X3DH.EphemeralSignature, the session link, was made over the
// ephemeral key by the leaf's key. It does not verify k's own signature.
//
// A KNOCK without a chain or without its x3dh member fails. Every error
// maps, through certs.RejectReason, to protocol.RejectInvalidCertificate,
// RejectCertificateExpired or RejectCertificateRevoked; an error that
// matches ErrCertCheckUnavailable means the registry could not be asked.
func (c *CertChecker) Check(ctx context.Context, k *protocol.Knock, now time.Time) (*certs.Verified, error) {
	if k == nil {
		return nil, invalidCert("no KNOCK")
	}
	if len(k.CertificateChain) == 0 {
		return nil, invalidCert("the KNOCK carries no certificate chain")
	}
	if k.X3DH == nil {
		return nil, invalidCert("the KNOCK has no x3dh member: the session link cannot be checked")
	}
	ders, err := certs.DecodeChain(k.CertificateChain)
	if err != nil {
		return nil, fmt.Errorf("session: %w: %w", certs.ErrInvalidCertificate, err)
	}
	// The session link needs only the leaf: checking it first refuses a
	// chain that is not the sender's before the registry is asked.
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return nil, fmt.Errorf("session: %w: leaf certificate: %w", certs.ErrInvalidCertificate, err)
	}
	if err := certs.VerifySessionLink(leaf, k.From, k.To, k.X3DH.EphemeralKey, k.X3DH.EphemeralSignature); err != nil {
		return nil, fmt.Errorf("session: certificate chain: %w", err)
	}

	roots, gen, err := c.currentRoots(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("session: %w: %w", certs.ErrInvalidCertificate, err)
	}
	rc := &revocationFetcher{c: c, ctx: ctx}
	v, err := certs.VerifyChain(ders, roots, now, rc)
	if err != nil && errors.As(err, new(x509.UnknownAuthorityError)) {
		// The registry may have rotated its root since the roots were
		// fetched.
		fresh, changed, rerr := c.refetchRoots(ctx, now, gen)
		switch {
		case rerr != nil:
			return nil, fmt.Errorf("session: certificate chain: %w; fetching the roots again: %w", err, rerr)
		case changed:
			v, err = certs.VerifyChain(ders, fresh, now, rc)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("session: certificate chain: %w", err)
	}
	if v.AMID != k.From {
		return nil, invalidCert(fmt.Sprintf("the chain certifies %s, not the sender %q", v.AMID, k.From))
	}
	return v, nil
}

// invalidCert is an error of Check for a chain that is wrong in itself.
func invalidCert(why string) error {
	return fmt.Errorf("session: %w: %s", certs.ErrInvalidCertificate, why)
}

// unavailable is the error of a failure to ask the registry.
func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrCertCheckUnavailable, fmt.Errorf(format, args...))
}

// currentRoots returns the roots to verify with and their generation,
// fetching them first if none are held or those held are older than
// RootsMaxAge.
func (c *CertChecker) currentRoots(ctx context.Context, now time.Time) ([]*x509.Certificate, uint64, error) {
	c.mu.Lock()
	roots, gen := c.roots, c.rootsGen
	stale := now.Sub(c.rootsFetched) >= RootsMaxAge && now.Sub(c.rootsTried) >= RootsRetryInterval
	c.mu.Unlock()
	if roots != nil && !stale {
		return roots, gen, nil
	}
	fresh, fgen, err := c.fetchRoots(ctx, now, gen)
	if err != nil {
		if roots != nil {
			// The roots change rarely and never lose a root before it
			// expires; revocation still needs fresh CRLs.
			return roots, gen, nil
		}
		return nil, 0, err
	}
	return fresh, fgen, nil
}

// refetchRoots fetches the roots again after a chain from an unknown
// authority, unless they were asked for less than RootsRetryInterval ago.
// It reports whether the roots differ from generation gen.
func (c *CertChecker) refetchRoots(ctx context.Context, now time.Time, gen uint64) ([]*x509.Certificate, bool, error) {
	c.mu.Lock()
	roots, cur := c.roots, c.rootsGen
	recent := !c.rootsTried.IsZero() && now.Sub(c.rootsTried) < RootsRetryInterval
	c.mu.Unlock()
	if cur != gen {
		// Another check fetched them meanwhile.
		return roots, true, nil
	}
	if recent {
		return roots, false, nil
	}
	fresh, fgen, err := c.fetchRoots(ctx, now, gen)
	if err != nil {
		return nil, false, err
	}
	return fresh, fgen != gen, nil
}

// fetchRoots asks the registry for its roots, unless a fetch that
// completed after generation gen was seen already did, and returns them
// with their generation. Concurrent calls share one request.
func (c *CertChecker) fetchRoots(ctx context.Context, now time.Time, gen uint64) ([]*x509.Certificate, uint64, error) {
	type result struct {
		roots []*x509.Certificate
		gen   uint64
	}
	v, err := c.shared(ctx, "roots", func(fctx context.Context) (any, error) {
		c.mu.Lock()
		if c.rootsGen != gen && c.roots != nil {
			r := result{c.roots, c.rootsGen}
			c.mu.Unlock()
			return r, nil
		}
		c.rootsTried = now
		c.mu.Unlock()
		roots, err := c.dir.CACertificates(fctx)
		if err != nil {
			return nil, unavailable("fetching the registry's roots: %w", err)
		}
		roots = slices.DeleteFunc(slices.Clone(roots), func(r *x509.Certificate) bool { return r == nil })
		if len(roots) == 0 {
			return nil, unavailable("the registry named no root")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !sameCerts(roots, c.roots) {
			c.rootsGen++
		}
		c.roots, c.rootsFetched = roots, now
		return result{c.roots, c.rootsGen}, nil
	})
	if err != nil {
		return nil, 0, err
	}
	r := v.(result)
	return r.roots, r.gen, nil
}

// sameCerts reports whether a and b hold the same certificates in the same
// order.
func sameCerts(a, b []*x509.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return x.Equal(y) })
}

// shared runs fetch once for all concurrent callers with the same key.
// fetch gets a context that keeps ctx's values but not its cancellation,
// bounded by directoryTimeout; each caller stops waiting when its own ctx
// ends.
func (c *CertChecker) shared(ctx context.Context, key string, fetch func(context.Context) (any, error)) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable("waiting for the registry: %w", err)
	}
	ch := c.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), directoryTimeout)
		defer cancel()
		return fetch(fctx)
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, unavailable("waiting for the registry: %w", ctx.Err())
	}
}

// revocationFetcher is the certs.RevocationChecker of one Check: it answers
// from the checker's CRLs and fetches an issuer's list when none fresh is
// held.
type revocationFetcher struct {
	c   *CertChecker
	ctx context.Context
}

// CheckRevocation implements certs.RevocationChecker.
func (rf *revocationFetcher) CheckRevocation(cert, issuer *x509.Certificate, now time.Time) error {
	c := rf.c
	err := c.revoked.CheckRevocation(cert, issuer, now)
	if !errors.Is(err, certs.ErrStaleCRL) {
		return err
	}
	sum := sha256.Sum256(issuer.Raw)
	if _, err := c.shared(rf.ctx, "crl:"+hex.EncodeToString(sum[:]), func(fctx context.Context) (any, error) {
		// A fetch that ended just before this one began may have brought
		// the list.
		if err := c.revoked.CheckRevocation(cert, issuer, now); !errors.Is(err, certs.ErrStaleCRL) {
			return nil, nil
		}
		return nil, c.fetchCRL(fctx, issuer, now)
	}); err != nil {
		return err
	}
	err = c.revoked.CheckRevocation(cert, issuer, now)
	if errors.Is(err, certs.ErrStaleCRL) {
		return fmt.Errorf("%w: %w", ErrCertCheckUnavailable, err)
	}
	return err
}

// fetchCRL fetches, checks and stores the CRL of issuer: a root's, named by
// its serial number, or an organization's, named by the ID the registry
// gives the domain the organization certificate is constrained to.
func (c *CertChecker) fetchCRL(ctx context.Context, issuer *x509.Certificate, now time.Time) error {
	var name, what string
	if bytes.Equal(issuer.RawIssuer, issuer.RawSubject) {
		name = issuer.SerialNumber.Text(16)
		what = "root " + name
	} else {
		// VerifyChain checked that an organization certificate names
		// exactly its permitted domain.
		if len(issuer.Subject.Organization) != 1 {
			return fmt.Errorf("%w: organization certificate names no single domain", certs.ErrInvalidCertificate)
		}
		domain := issuer.Subject.Organization[0]
		what = "organization " + domain
		org, err := c.dir.OrgLookup(ctx, domain)
		if err != nil {
			return unavailable("looking up %s: %w", what, err)
		}
		if org == nil || org.ID == "" || org.Domain != domain || !org.Verified {
			return unavailable("the registry has no verified organization for the domain %s", domain)
		}
		name = org.ID
	}
	der, err := c.dir.CRL(ctx, name)
	if err != nil {
		return unavailable("fetching the CRL of %s: %w", what, err)
	}
	crl, err := certs.ParseCRL(der, issuer, now)
	if err != nil {
		return unavailable("the CRL of %s: %w", what, err)
	}
	if err := c.revoked.Add(crl); err != nil {
		return unavailable("the CRL of %s: %w", what, err)
	}
	return nil
}

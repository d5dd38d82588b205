package registryserver

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentmesh/agentmesh-go/mesh/certs"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Certificates, organizations and revocation (PROTOCOL.md §8.9, §8.10, §9,
// DESIGN.md §4.5). The registry's root CA signs organization CAs (after a
// DNS proof of their domain) and verified agents; organization CAs sign
// their agents. Unlike the original registry, every signed request is
// checked here (W-2) and refused when replayed (W-1), and an agent already
// registered is enrolled in an organization only with its consent.

// Validity periods of the certificates the registry issues. No certificate
// outlives its issuer.
const (
	OrgCertificateValidity   = 365 * 24 * time.Hour
	AgentCertificateValidity = 365 * 24 * time.Hour
)

// Organization registration limits and the DNS challenge.
const (
	// OrgChallengeValidity is how long a DNS challenge is accepted.
	OrgChallengeValidity = 24 * time.Hour
	// MaxOrgNameLength bounds an organization's name, in characters.
	MaxOrgNameLength = 128
	// MaxDomainLength bounds a domain name.
	MaxDomainLength = 253
	// OrgChallengePrefix starts every challenge value.
	OrgChallengePrefix = "agentmesh-verify="
	// OrgChallengeLabel is prepended to the domain to name the TXT record.
	OrgChallengeLabel = "_agentmesh."
	// MaxRevocationNotesLength bounds the notes of a revocation, in
	// characters.
	MaxRevocationNotesLength = 1000
)

// CRL timing: a CRL is valid for CRLValidity after it is signed, and the
// same list is served again for up to crlReuse as long as no certificate of
// its issuer is revoked in between.
const (
	CRLValidity = time.Hour
	crlReuse    = 5 * time.Minute
)

// initAuthority sets the server's root CA: the configured one or, without
// one, a root generated in memory. Every root is recorded in the
// certificates table.
func (s *Server) initAuthority() error {
	s.ca = s.cfg.Authority
	if s.ca == nil {
		a, err := NewAuthority(s.now())
		if err != nil {
			return err
		}
		s.log.Warn("no root CA configured: generated one in memory; certificates it issues cannot be verified once the registry restarts")
		s.ca = a
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, root := range s.ca.allRoots() {
		if err := s.store.RecordRoot(ctx, rootRecord(root.Cert, s.now())); err != nil {
			return err
		}
	}
	return nil
}

// rootRecord describes a root certificate for the certificates table.
func rootRecord(c *x509.Certificate, now time.Time) *CertRecord {
	return &CertRecord{
		Serial: serialHex(c), Kind: CertKindRoot, Certificate: protocol.B64.EncodeToString(c.Raw),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, CreatedAt: now,
	}
}

// certRecord describes a certificate the registry just issued.
func certRecord(c *x509.Certificate, kind, amid, orgID string, issuer *x509.Certificate, now time.Time) *CertRecord {
	return &CertRecord{
		Serial: serialHex(c), Kind: kind, AMID: amid, OrganizationID: orgID, IssuerSerial: serialHex(issuer),
		Certificate: protocol.B64.EncodeToString(c.Raw), NotBefore: c.NotBefore, NotAfter: c.NotAfter, CreatedAt: now,
	}
}

// validityUnder returns the start and length of the validity of a
// certificate that issuer issues at now: from CertBackdate before now
// until want after now, shortened so that it expires no later than the
// issuer.
func validityUnder(issuer *x509.Certificate, now time.Time, want time.Duration) (time.Time, time.Duration, error) {
	if !now.Before(issuer.NotAfter) {
		return time.Time{}, 0, errorf(http.StatusConflict, "issuer_expired", "The issuing certificate has expired")
	}
	start := now.Add(-CertBackdate)
	return start, min(want+CertBackdate, issuer.NotAfter.Sub(start)), nil
}

// newRecordUUID returns a random (version 4) UUID for a new row.
func newRecordUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// signatureFailure names why a timestamp signature failed, in the words of
// PROTOCOL.md §8.12.
func signatureFailure(timestamp, signature string, now time.Time) string {
	t, err := protocol.ParseTimestamp(timestamp)
	switch {
	case err != nil:
		return "Invalid timestamp format"
	case now.Sub(t) > protocol.MaxTimestampAge:
		return "Timestamp too old (replay protection)"
	case t.Sub(now) > protocol.MaxTimestampSkew:
		return "Timestamp in future"
	}
	if _, err := protocol.DecodeB64(signature, ed25519.SignatureSize); err != nil {
		return "Invalid signature format"
	}
	return "Signature verification failed"
}

// errSignatureFailed is the 401 for a timestamp signature that did not
// verify.
func errSignatureFailed(sig registry.Signed, now time.Time) *apiError {
	return errorf(http.StatusUnauthorized, "invalid_signature", "Signature verification failed: %s",
		signatureFailure(sig.Timestamp, sig.Signature, now))
}

// checkSignature verifies a timestamp signature by pub, fresh and over the
// timestamp as sent, and refuses it if the registry has seen it before
// (401 either way). amid is who signed, for the replay record.
func (s *Server) checkSignature(ctx context.Context, amid string, pub ed25519.PublicKey, sig registry.Signed) error {
	now := s.now()
	if err := protocol.VerifyTimestamp(pub, sig.Timestamp, sig.Signature, now); err != nil {
		return errSignatureFailed(sig, now)
	}
	return s.refuseReplay(ctx, amid, sig.Signature)
}

// handleCACertificates serves GET /v1/registry/ca: every unexpired root
// certificate as PEM, the root that signs now first.
func (s *Server) handleCACertificates(w http.ResponseWriter, r *http.Request) {
	roots := s.ca.Roots(s.now())
	ders := make([][]byte, len(roots))
	for i, c := range roots {
		ders[i] = c.Raw
	}
	w.Header().Set("Content-Type", registry.PEMMediaType)
	w.Header().Set("Cache-Control", "max-age=300")
	w.WriteHeader(http.StatusOK)
	w.Write(certs.EncodePEM(ders))
}

// validOrgDomain checks a domain an organization registers: a lower-case
// host name of at least two labels, each 1..63 letters, digits and inner
// hyphens, at most MaxDomainLength characters, whose last label is not
// numeric (no IP addresses).
func validOrgDomain(d string) error {
	bad := func(why string) error {
		return errorf(http.StatusBadRequest, "invalid_domain", "invalid domain: %s", why)
	}
	if d == "" {
		return bad("empty")
	}
	if len(d) > MaxDomainLength {
		return bad(fmt.Sprintf("longer than %d characters", MaxDomainLength))
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return bad("must contain a dot")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return bad("empty or over-long label")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("a label starts or ends with a hyphen")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return bad("only lower-case letters, digits, hyphens and dots are allowed")
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return bad("the top-level label is numeric")
	}
	return nil
}

// validOrgName checks an organization's name: 1..MaxOrgNameLength
// characters of printable text, not only spaces.
func validOrgName(name string) error {
	bad := func(why string) error {
		return errorf(http.StatusBadRequest, "invalid_name", "invalid name: %s", why)
	}
	switch {
	case strings.TrimSpace(name) == "":
		return bad("empty")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case strings.ContainsFunc(name, unicode.IsControl):
		return bad("contains control characters")
	case utf8.RuneCountInString(name) > MaxOrgNameLength:
		return bad(fmt.Sprintf("longer than %d characters", MaxOrgNameLength))
	}
	return nil
}

// handleOrgRegister serves POST /v1/org/register: the admin's S5 signature
// (its AMID must derive from the key it sends), then the name and domain,
// then a new unverified organization with a DNS challenge. A domain is
// taken once registered, unless that registration was never verified and
// its challenge has expired.
func (s *Server) handleOrgRegister(w http.ResponseWriter, r *http.Request) {
	var req registry.OrgRegisterRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	ctx := r.Context()
	now := s.now()
	pub, err := protocol.ParseSigningPublicKey(req.AdminSigningPublicKey)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "Signature verification failed: Invalid public key format", "invalid_signature")
		return
	}
	if !protocol.AMID(req.AdminAMID).Matches(pub) {
		writeError(w, http.StatusUnauthorized, "Signature verification failed: AMID mismatch", "invalid_signature")
		return
	}
	if err := protocol.VerifyOrgRegistration(protocol.AMID(req.AdminAMID), req.AdminSigningPublicKey, req.Timestamp, req.Signature, now); err != nil {
		writeAPIError(w, errSignatureFailed(req.Signed, now))
		return
	}
	if err := s.refuseReplay(ctx, req.AdminAMID, req.Signature); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.refuseRevokedAdmin(ctx, req.AdminAMID); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := validOrgName(req.Name); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := validOrgDomain(req.Domain); err != nil {
		s.fail(w, r, err)
		return
	}
	var secret [32]byte
	rand.Read(secret[:])
	org := &Organization{
		ID: newRecordUUID(), Name: req.Name, Domain: req.Domain,
		AdminAMID: req.AdminAMID, AdminSigningPublicKey: protocol.EncodeSigningPublicKey(pub),
		DNSChallenge:       OrgChallengePrefix + protocol.B64.EncodeToString(secret[:]),
		ChallengeExpiresAt: now.Add(OrgChallengeValidity),
		CreatedAt:          now, UpdatedAt: now,
	}
	switch err := s.store.CreateOrganization(ctx, org, now); {
	case errors.Is(err, ErrExists):
		writeError(w, http.StatusConflict, "Domain already registered", "domain_registered")
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	s.log.Info("organization registered", "organization_id", org.ID, "domain", org.Domain)
	writeJSON(w, http.StatusCreated, registry.OrgRegisterResponse{
		Success:        true,
		OrganizationID: org.ID,
		DNSChallenge: &registry.DNSChallenge{
			RecordType:  "TXT",
			RecordName:  OrgChallengeLabel + org.Domain,
			RecordValue: org.DNSChallenge,
			ExpiresAt:   protocol.FormatServerTimestamp(org.ChallengeExpiresAt),
		},
	})
}

// errOrgNotFound is the 404 for an unknown organization.
var errOrgNotFound = errorf(http.StatusNotFound, "organization_not_found", "Organization not found")

// orgAdmin loads the organization id and checks that amid is its admin
// and not revoked: 404, 401 and 403 otherwise. It returns the admin's key.
func (s *Server) orgAdmin(ctx context.Context, id, amid string) (*Organization, ed25519.PublicKey, error) {
	org, err := s.store.OrganizationByID(ctx, id)
	if err != nil {
		return nil, nil, orNotFound(err, errOrgNotFound)
	}
	if subtle.ConstantTimeCompare([]byte(amid), []byte(org.AdminAMID)) != 1 {
		return nil, nil, errorf(http.StatusUnauthorized, "not_admin", "Not the organization admin")
	}
	pub, err := storedSigningKey("organization "+org.ID, org.AdminSigningPublicKey)
	if err != nil {
		return nil, nil, err
	}
	return org, pub, nil
}

// refuseRevokedAdmin answers 403 when an organization's admin is a revoked
// agent: a revoked key must not act for an organization.
func (s *Server) refuseRevokedAdmin(ctx context.Context, admin string) error {
	return s.refuseIfRevoked(ctx, admin, errAdminRevoked)
}

// errAdminRevoked is the 403 for an organization admin that is revoked.
var errAdminRevoked = errorf(http.StatusForbidden, "admin_revoked", "The organization admin has been revoked")

// handleOrgVerify serves POST /v1/org/verify: the admin's signature is
// checked with the key it registered with, then the DNS TXT record
// _agentmesh.<domain> must hold the challenge. On success the organization
// receives its CA certificate, signed by the current root; its CA key is
// generated here and kept sealed. A verified organization gets its stored
// certificate again.
func (s *Server) handleOrgVerify(w http.ResponseWriter, r *http.Request) {
	var req registry.OrgVerifyRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	ctx := r.Context()
	org, pub, err := s.orgAdmin(ctx, req.OrganizationID, req.AdminAMID)
	if err == nil {
		err = s.checkSignature(ctx, org.AdminAMID, pub, req.Signed)
	}
	if err == nil {
		err = s.refuseRevokedAdmin(ctx, org.AdminAMID)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !org.Verified {
		if s.now().After(org.ChallengeExpiresAt) {
			writeError(w, http.StatusBadRequest,
				"DNS challenge expired; register the organization again for a new challenge", "challenge_expired")
			return
		}
		if ok, why := s.checkDomainTXT(ctx, org.Domain, org.DNSChallenge); !ok {
			writeJSON(w, http.StatusOK, registry.OrgVerifyResponse{Error: &why})
			return
		}
		if org, err = s.certifyOrganization(ctx, org); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	chain, err := s.orgChain(org)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pem := string(certs.EncodePEM(chain[:1]))
	writeJSON(w, http.StatusOK, registry.OrgVerifyResponse{
		Success: true, Verified: true, RootCertificate: &pem, CertificateChain: certs.EncodeChain(chain),
	})
}

// certifyOrganization issues the CA certificate of an organization that
// just proved its domain, and returns the organization as stored.
func (s *Server) certifyOrganization(ctx context.Context, org *Organization) (*Organization, error) {
	root := s.ca.signer()
	now := s.now()
	start, validity, err := validityUnder(root.Cert, now, OrgCertificateValidity)
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	cert, err := certs.IssueOrganization(root, pub, org.Domain, start, validity, serial)
	if err != nil {
		return nil, err
	}
	sealed, err := sealOrgKey(root, org.ID, priv)
	if err != nil {
		return nil, err
	}
	rec := certRecord(cert, CertKindOrganization, "", org.ID, root.Cert, now)
	done, err := s.store.MarkOrganizationVerified(ctx, org.ID, rec, rootRecord(root.Cert, now), sealed, now)
	if err != nil {
		return nil, err
	}
	if done {
		s.log.Info("organization verified", "organization_id", org.ID, "domain", org.Domain, "serial", rec.Serial)
	}
	// Either this request or a concurrent one certified it: read back what
	// is stored.
	return s.store.OrganizationByID(ctx, org.ID)
}

// orgCertificate parses a verified organization's stored certificate.
func orgCertificate(org *Organization) (*x509.Certificate, error) {
	if !org.Verified || org.Certificate == "" {
		return nil, errorf(http.StatusBadRequest, "organization_not_verified", "Organization not verified")
	}
	der, err := protocol.DecodeB64(org.Certificate, 0)
	if err != nil {
		return nil, fmt.Errorf("stored certificate of organization %s: %w", org.ID, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("stored certificate of organization %s: %w", org.ID, err)
	}
	return c, nil
}

// orgChain returns a verified organization's certificate and the root
// that signed it, as DER.
func (s *Server) orgChain(org *Organization) ([][]byte, error) {
	c, err := orgCertificate(org)
	if err != nil {
		return nil, err
	}
	root := s.ca.issuerOf(c)
	if root == nil {
		return nil, fmt.Errorf("organization %s: the root that signed its certificate is not held", org.ID)
	}
	return [][]byte{c.Raw, root.Cert.Raw}, nil
}

// orgIssuer returns a verified organization's CA, its key unsealed, and
// the root above it.
func (s *Server) orgIssuer(org *Organization) (*certs.Issuer, *certs.Issuer, error) {
	c, err := orgCertificate(org)
	if err != nil {
		return nil, nil, err
	}
	root := s.ca.issuerOf(c)
	if root == nil {
		return nil, nil, fmt.Errorf("organization %s: the root that signed its certificate is not held", org.ID)
	}
	key, err := openOrgKey(root, org.ID, org.SealedKey)
	if err != nil {
		return nil, nil, fmt.Errorf("organization %s: %w", org.ID, err)
	}
	return &certs.Issuer{Cert: c, Signer: key}, root, nil
}

// handleOrgAgents serves POST /v1/org/agents: the admin's signature over
// the timestamp (checked with the organization's admin key), a verified
// organization, agent keys that match the AMID and, for an agent already
// registered, its consent (its own signature over the same timestamp) and
// the keys it registered. The agent joins the organization with tier
// organization and receives a certificate signed by the organization's CA.
func (s *Server) handleOrgAgents(w http.ResponseWriter, r *http.Request) {
	var req registry.OrgAgentRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	ctx := r.Context()
	pemCert, chain, err := s.enrollOrgAgent(ctx, &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, registry.OrgAgentResponse{
		Success: true, AgentCertificate: pemCert, CertificateChain: chain,
	})
}

func (s *Server) enrollOrgAgent(ctx context.Context, req *registry.OrgAgentRequest) (string, []string, error) {
	org, adminPub, err := s.orgAdmin(ctx, req.OrganizationID, req.AdminAMID)
	if err != nil {
		return "", nil, err
	}
	signed := registry.Signed{Timestamp: req.Timestamp, Signature: req.AdminSignature}
	if err := s.checkSignature(ctx, org.AdminAMID, adminPub, signed); err != nil {
		return "", nil, err
	}
	if err := s.refuseRevokedAdmin(ctx, org.AdminAMID); err != nil {
		return "", nil, err
	}
	if !org.Verified {
		return "", nil, errorf(http.StatusBadRequest, "organization_not_verified", "Organization not verified")
	}
	if _, err := protocol.ParseAMID(req.AgentAMID); err != nil {
		return "", nil, errorf(http.StatusBadRequest, "invalid_amid", "invalid agent_amid: %v", err)
	}
	agentPub, err := protocol.ParseSigningPublicKey(req.AgentSigningPublicKey)
	if err != nil {
		return "", nil, errorf(http.StatusBadRequest, "invalid_signing_public_key", "invalid agent_signing_public_key: %v", err)
	}
	if !protocol.AMID(req.AgentAMID).Matches(agentPub) {
		return "", nil, errorf(http.StatusBadRequest, "amid_mismatch", "agent_amid does not derive from agent_signing_public_key")
	}
	exch, err := protocol.ParseExchangePublicKey(req.AgentExchangePublicKey)
	if err != nil {
		return "", nil, errorf(http.StatusBadRequest, "invalid_exchange_public_key", "invalid agent_exchange_public_key: %v", err)
	}
	if req.DisplayName != nil {
		if err := validateDisplayName(*req.DisplayName); err != nil {
			return "", nil, err
		}
	}
	caps := req.Capabilities
	if caps == nil {
		caps = []string{}
	}
	if err := validateAgentCapabilities(caps); err != nil {
		return "", nil, err
	}
	if err := s.refuseRevoked(ctx, req.AgentAMID); err != nil {
		return "", nil, err
	}

	existing, err := s.store.Agent(ctx, req.AgentAMID)
	switch {
	case errors.Is(err, ErrNotFound):
		err = s.insertOrgAgent(ctx, req, org, adminPub, agentPub, exch, caps)
	case err == nil:
		err = s.moveOrgAgent(ctx, req, org, existing, adminPub, agentPub, exch, caps)
	}
	if err != nil {
		return "", nil, err
	}
	pemCert, chain, err := s.issueOrgAgentCertificate(ctx, org, req.AgentAMID, agentPub)
	if err != nil {
		return "", nil, err
	}
	s.log.Info("agent enrolled in organization", "amid", req.AgentAMID, "organization_id", org.ID)
	return pemCert, chain, nil
}

// insertOrgAgent registers a new agent as a member of org. A consent
// signature is not needed, but one that is sent must verify.
func (s *Server) insertOrgAgent(ctx context.Context, req *registry.OrgAgentRequest, org *Organization, adminPub, agentPub ed25519.PublicKey, exch *ecdh.PublicKey, caps []string) error {
	if req.AgentSignature != "" && !agentPub.Equal(adminPub) {
		consent := registry.Signed{Timestamp: req.Timestamp, Signature: req.AgentSignature}
		if err := s.checkConsent(ctx, req.AgentAMID, agentPub, consent); err != nil {
			return err
		}
	}
	now := s.now()
	orgID := org.ID
	err := s.store.InsertAgent(ctx, &Agent{
		AMID: req.AgentAMID, SigningPublicKey: protocol.EncodeSigningPublicKey(agentPub),
		ExchangePublicKey: protocol.EncodeExchangePublicKey(exch), Tier: TierOrganization,
		DisplayName: req.DisplayName, OrganizationID: &orgID, Capabilities: caps,
		RelayEndpoint: registry.DefaultRelayEndpoint, Status: "offline", ReputationScore: 0.5,
		LastSeen: now, CreatedAt: now, UpdatedAt: now,
	})
	if errors.Is(err, ErrExists) {
		return errorf(http.StatusConflict, "agent_registered_concurrently",
			"The agent registered while it was being enrolled; enrol it again with its consent")
	}
	return err
}

// moveOrgAgent moves the registered agent a into org. The agent
// must consent, and the keys sent must be the ones it registered.
func (s *Server) moveOrgAgent(ctx context.Context, req *registry.OrgAgentRequest, org *Organization, a *Agent, adminPub, agentPub ed25519.PublicKey, exch *ecdh.PublicKey, caps []string) error {
	regPub, err := storedSigningKey(a.AMID, a.SigningPublicKey)
	if err != nil {
		return err
	}
	// An admin enrolling its own agent consents by signing: the consent
	// signature would be the very same bytes.
	if !regPub.Equal(adminPub) {
		if req.AgentSignature == "" {
			return errorf(http.StatusForbidden, "agent_consent_required",
				"Agent already registered: its consent (agent_signature over the timestamp) is required")
		}
		consent := registry.Signed{Timestamp: req.Timestamp, Signature: req.AgentSignature}
		if err := s.checkConsent(ctx, a.AMID, regPub, consent); err != nil {
			return err
		}
	}
	regExch, err := protocol.ParseExchangePublicKey(a.ExchangePublicKey)
	if err != nil || !regPub.Equal(agentPub) || !regExch.Equal(exch) {
		return errorf(http.StatusConflict, "key_mismatch", "Agent keys do not match its registration")
	}
	return s.store.UpdateOrganizationAgent(ctx, a.AMID, org.ID, req.DisplayName, caps, s.now())
}

// checkConsent verifies an agent's consent signature: 403 if it fails or
// was used before.
func (s *Server) checkConsent(ctx context.Context, amid string, pub ed25519.PublicKey, sig registry.Signed) error {
	now := s.now()
	if err := protocol.VerifyTimestamp(pub, sig.Timestamp, sig.Signature, now); err != nil {
		return errorf(http.StatusForbidden, "agent_consent_required", "Agent consent verification failed: %s",
			signatureFailure(sig.Timestamp, sig.Signature, now))
	}
	fresh, err := s.store.RememberSignature(ctx, amid, sig.Signature, now.Add(ReplayWindow), now)
	if err != nil {
		return err
	}
	if !fresh {
		return errorf(http.StatusForbidden, "agent_consent_required", "Agent consent verification failed: signature already used (replay)")
	}
	return nil
}

// issueOrgAgentCertificate certifies an organization's agent with the
// organization's CA. It returns the certificate as PEM and the chain
// (leaf, organization, root) as padded base64 DER.
func (s *Server) issueOrgAgentCertificate(ctx context.Context, org *Organization, amid string, pub ed25519.PublicKey) (string, []string, error) {
	issuer, root, err := s.orgIssuer(org)
	if err != nil {
		return "", nil, err
	}
	defer clear(issuer.Signer.(ed25519.PrivateKey))
	leaf, err := s.issueLeaf(ctx, issuer, root, amid, pub, certs.TierOrganization, org.ID)
	if err != nil {
		return "", nil, err
	}
	chain := [][]byte{leaf.Raw, issuer.Cert.Raw, root.Cert.Raw}
	return string(certs.EncodePEM(chain[:1])), certs.EncodeChain(chain), nil
}

// issueLeaf signs and records an agent certificate; the agent's earlier
// certificates are marked superseded.
func (s *Server) issueLeaf(ctx context.Context, issuer, root *certs.Issuer, amid string, pub ed25519.PublicKey, tier certs.Tier, orgID string) (*x509.Certificate, error) {
	now := s.now()
	start, validity, err := validityUnder(issuer.Cert, now, AgentCertificateValidity)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	leaf, err := certs.IssueAgent(issuer, pub, protocol.AMID(amid), tier, start, validity, serial)
	if err != nil {
		return nil, err
	}
	rec := certRecord(leaf, CertKindAgent, amid, orgID, issuer.Cert, now)
	if err := s.store.RecordAgentCertificate(ctx, rec, rootRecord(root.Cert, now)); err != nil {
		return nil, err
	}
	return leaf, nil
}

// issueAgentCertificate certifies the agent amid, whose signing key is pub,
// as a verified agent signed by the root CA. It returns the certificate as
// PEM and the chain, leaf first, as padded base64 DER. For tier
// organization it certifies the agent with its organization's CA instead.
func (s *Server) issueAgentCertificate(ctx context.Context, amid string, pub ed25519.PublicKey, tier registry.Tier) (pem string, chain []string, err error) {
	if err := s.refuseRevoked(ctx, amid); err != nil {
		return "", nil, err
	}
	switch tier {
	case TierVerified:
		root := s.ca.signer()
		leaf, err := s.issueLeaf(ctx, root, root, amid, pub, certs.TierVerified, "")
		if err != nil {
			return "", nil, err
		}
		ders := [][]byte{leaf.Raw, root.Cert.Raw}
		return string(certs.EncodePEM(ders[:1])), certs.EncodeChain(ders), nil
	case TierOrganization:
		a, err := s.store.Agent(ctx, amid)
		if err != nil {
			return "", nil, err
		}
		if a.OrganizationID == nil {
			return "", nil, fmt.Errorf("agent %s belongs to no organization", amid)
		}
		org, err := s.store.OrganizationByID(ctx, *a.OrganizationID)
		if err != nil {
			return "", nil, err
		}
		return s.issueOrgAgentCertificate(ctx, org, amid, pub)
	}
	return "", nil, fmt.Errorf("no certificate for tier %q", tier)
}

// certificateOf returns the agent's current, unrevoked certificate (PEM) and
// its chain, leaf first, as padded base64 DER; empty if it has none.
func (s *Server) certificateOf(ctx context.Context, amid string) (pem string, chain []string, err error) {
	rec, err := s.store.CurrentAgentCertificate(ctx, amid, s.now())
	if errors.Is(err, ErrNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	ders, err := s.chainOf(ctx, rec)
	if err != nil {
		return "", nil, err
	}
	return string(certs.EncodePEM(ders[:1])), certs.EncodeChain(ders), nil
}

// chainOf returns the DER of a stored certificate and its issuers, up to
// and including its root.
func (s *Server) chainOf(ctx context.Context, rec *CertRecord) ([][]byte, error) {
	var chain [][]byte
	for cur := rec; ; {
		der, err := protocol.DecodeB64(cur.Certificate, 0)
		if err != nil {
			return nil, fmt.Errorf("stored certificate %s: %w", cur.Serial, err)
		}
		chain = append(chain, der)
		if cur.IssuerSerial == "" || cur.IssuerSerial == cur.Serial {
			return chain, nil
		}
		if len(chain) >= certs.MaxChainLength {
			return nil, fmt.Errorf("stored certificate %s: chain longer than %d", rec.Serial, certs.MaxChainLength)
		}
		if root := s.ca.rootBySerial(cur.IssuerSerial); root != nil {
			return append(chain, root.Cert.Raw), nil
		}
		next, err := s.store.CertificateBySerial(ctx, cur.IssuerSerial)
		if err != nil {
			return nil, fmt.Errorf("issuer %s of certificate %s: %w", cur.IssuerSerial, cur.Serial, err)
		}
		cur = next
	}
}

// handleOrgLookup serves GET /v1/org/lookup?domain=.
func (s *Server) handleOrgLookup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	domain := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(r.URL.Query().Get("domain"))), ".")
	if domain == "" {
		writeError(w, http.StatusBadRequest, "domain is required", "invalid_request")
		return
	}
	org, err := s.store.OrganizationByDomain(ctx, domain)
	if err != nil {
		s.fail(w, r, orNotFound(err, errOrgNotFound))
		return
	}
	n, err := s.store.CountOrganizationAgents(ctx, org.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registry.OrgLookup{
		ID: org.ID, Name: org.Name, Domain: org.Domain, Verified: org.Verified, AgentCount: n,
		CreatedAt: protocol.FormatServerTimestamp(org.CreatedAt),
	})
}

// x509ReasonCode maps a revocation reason to its RFC 5280 CRLReason code.
func x509ReasonCode(reason string) int {
	switch reason {
	case registry.ReasonKeyCompromise:
		return 1 // keyCompromise
	case registry.ReasonSuperseded:
		return 4 // superseded
	case registry.ReasonCessationOfOperation:
		return 5 // cessationOfOperation
	case registry.ReasonPolicyViolation, registry.ReasonPrivilegeWithdrawn:
		return 9 // privilegeWithdrawn
	}
	return 0 // unspecified: admin_request, other
}

// revokeFailure writes a failed revocation in the shape of PROTOCOL.md
// §8.9, with the error code added.
func (s *Server) revokeFailure(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, ae.status, struct {
		Success      bool    `json:"success"`
		RevocationID *string `json:"revocation_id"`
		Error        string  `json:"error"`
		Code         string  `json:"code,omitempty"`
	}{Error: ae.msg, Code: ae.code})
}

// handleRevoke serves POST /v1/registry/revoke, with the checks in the
// order of PROTOCOL.md §8.9: the revoker exists, it signed (S3, not
// replayed), the target is not revoked yet, the target exists, and the
// revoker is the target itself or its organization's admin. A revoked
// agent may not revoke others. Every certificate of the target is marked
// revoked, so the CRLs list it from then on.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req registry.RevokeRequest
	if e := decodeBody(w, r, &req); e != nil {
		s.revokeFailure(w, r, e)
		return
	}
	id, err := s.revoke(r.Context(), &req)
	if err != nil {
		s.revokeFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registry.RevokeResponse{Success: true, RevocationID: &id})
}

// errAlreadyRevoked is the 409 for revoking an agent twice.
var errAlreadyRevoked = errorf(http.StatusConflict, "already_revoked", "Agent already revoked")

func (s *Server) revoke(ctx context.Context, req *registry.RevokeRequest) (string, error) {
	if !slices.Contains(registry.RevocationReasons, req.Reason) {
		return "", errorf(http.StatusBadRequest, "invalid_reason", "Invalid reason: %q. Valid reasons: %s",
			req.Reason, strings.Join(registry.RevocationReasons, ", "))
	}
	if _, err := protocol.ParseAMID(req.AMID); err != nil {
		return "", errorf(http.StatusBadRequest, "invalid_amid", "invalid amid: %v", err)
	}
	if _, err := protocol.ParseAMID(req.RevokerAMID); err != nil {
		return "", errorf(http.StatusBadRequest, "invalid_amid", "invalid revoker_amid: %v", err)
	}
	if req.Notes != nil {
		n := *req.Notes
		if !utf8.ValidString(n) || utf8.RuneCountInString(n) > MaxRevocationNotesLength {
			return "", errorf(http.StatusBadRequest, "invalid_notes", "notes must be valid UTF-8 of at most %d characters", MaxRevocationNotesLength)
		}
	}
	revoker, pub, err := s.agentWithKey(ctx, req.RevokerAMID,
		errorf(http.StatusUnauthorized, "revoker_not_found", "Revoker not found"))
	if err != nil {
		return "", err
	}
	if err := s.checkSignature(ctx, revoker.AMID, pub, req.Signed); err != nil {
		return "", err
	}
	if err := s.refuseIfRevoked(ctx, req.AMID, errAlreadyRevoked); err != nil {
		return "", err
	}
	target, err := s.agent(ctx, req.AMID, errorf(http.StatusNotFound, "agent_not_found", "Target agent not found"))
	if err != nil {
		return "", err
	}
	if err := s.refuseIfRevoked(ctx, revoker.AMID,
		errorf(http.StatusForbidden, "revoker_revoked", "Revoker has been revoked")); err != nil {
		return "", err
	}
	allowed := revoker.AMID == target.AMID
	if !allowed && target.OrganizationID != nil {
		org, err := s.store.OrganizationByID(ctx, *target.OrganizationID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", err
		}
		allowed = err == nil && org.AdminAMID == revoker.AMID
	}
	if !allowed {
		return "", errorf(http.StatusForbidden, "not_authorized", "Not authorized to revoke this agent")
	}
	rec := &RevocationRecord{
		ID: newRecordUUID(), AMID: target.AMID, Reason: req.Reason, RevokedBy: revoker.AMID,
		RevokedAt: s.now(), Notes: req.Notes,
	}
	if err := s.store.RevokeAgent(ctx, rec); errors.Is(err, ErrExists) {
		return "", errAlreadyRevoked
	} else if err != nil {
		return "", err
	}
	s.log.Info("agent revoked", "amid", rec.AMID, "revoked_by", rec.RevokedBy, "reason", rec.Reason)
	return rec.ID, nil
}

// revocationJSON is the wire form of a stored revocation.
func revocationJSON(r *RevocationRecord) registry.Revocation {
	return registry.Revocation{
		ID: r.ID, AMID: r.AMID, Reason: r.Reason, RevokedBy: r.RevokedBy,
		RevokedAt: protocol.FormatServerTimestamp(r.RevokedAt), Notes: r.Notes,
	}
}

// revocationStatus is the status object of one AMID.
func revocationStatus(amid string, r *RevocationRecord) registry.RevocationStatus {
	st := registry.RevocationStatus{AMID: amid}
	if r != nil {
		rj := revocationJSON(r)
		st.Revoked, st.Revocation = true, &rj
	}
	return st
}

// maxQueriedAMIDLength bounds an AMID a revocation query names; longer
// strings cannot be AMIDs.
const maxQueriedAMIDLength = 64

// handleRevocation serves GET /v1/registry/revocation?amid=.
func (s *Server) handleRevocation(w http.ResponseWriter, r *http.Request) {
	amid := r.URL.Query().Get("amid")
	if amid == "" || len(amid) > maxQueriedAMIDLength {
		writeError(w, http.StatusBadRequest, "amid is required (at most 64 characters)", "invalid_amid")
		return
	}
	rev, err := s.store.Revocation(r.Context(), amid)
	if errors.Is(err, ErrNotFound) {
		rev, err = nil, nil
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, revocationStatus(amid, rev))
}

// handleRevocationsBulk serves POST /v1/registry/revocations/bulk: the
// status of up to registry.MaxBulkRevocations AMIDs, in the order given.
func (s *Server) handleRevocationsBulk(w http.ResponseWriter, r *http.Request) {
	var req registry.BulkRevocationRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	if len(req.AMIDs) > registry.MaxBulkRevocations {
		writeError(w, http.StatusBadRequest, "Maximum 100 AMIDs per request", "too_many_amids")
		return
	}
	for _, a := range req.AMIDs {
		if len(a) > maxQueriedAMIDLength {
			writeError(w, http.StatusBadRequest, "an AMID is longer than 64 characters", "invalid_amid")
			return
		}
	}
	revs, err := s.store.RevocationsOf(r.Context(), req.AMIDs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := registry.BulkRevocationResponse{Revocations: make([]registry.RevocationStatus, 0, len(req.AMIDs)), TotalChecked: len(req.AMIDs)}
	for _, a := range req.AMIDs {
		st := revocationStatus(a, revs[a])
		if st.Revoked {
			resp.TotalRevoked++
		}
		resp.Revocations = append(resp.Revocations, st)
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleRevocations serves GET /v1/registry/revocations?limit=&offset=:
// one page of all revocations, oldest first (limit default 1000, at most
// 10000).
func (s *Server) handleRevocations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := queryLimit(q, registry.DefaultRevocationsLimit, registry.MaxRevocationsLimit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	offset, ok := intParam(q, "offset", 0, 0, 1<<31-1)
	if !ok {
		writeError(w, http.StatusBadRequest, "offset must be a non-negative integer", "invalid_offset")
		return
	}
	revs, total, err := s.store.ListRevocations(r.Context(), limit, offset)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	list := registry.RevocationList{
		Revocations: make([]registry.Revocation, len(revs)), Total: total,
		LastUpdated: protocol.FormatServerTimestamp(now), NextUpdate: protocol.FormatServerTimestamp(now.Add(CRLValidity)),
	}
	for i := range revs {
		list.Revocations[i] = revocationJSON(&revs[i])
	}
	writeJSON(w, http.StatusOK, list)
}

// handleCRL serves GET /v1/registry/crl: the X.509 CRL (DER) of the
// current root, which lists the revoked certificates the root issued. With
// ?issuer=<organization id> it is that organization's CRL, signed by its
// CA; ?issuer=<root serial in hex> names an earlier root. A CRL is valid
// for CRLValidity. Its number comes from the store's counter
// "crl:<issuer serial>" and grows with every distinct list signed: the
// same list is served again, unchanged, for up to five minutes while no
// certificate of the issuer is revoked.
func (s *Server) handleCRL(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	issuer := s.ca.signer()
	if id := r.URL.Query().Get("issuer"); id != "" {
		if root := s.ca.rootBySerial(strings.ToLower(id)); root != nil {
			issuer = root
		} else {
			org, err := s.store.OrganizationByID(ctx, id)
			if err != nil {
				s.fail(w, r, orNotFound(err, errOrgNotFound))
				return
			}
			if !org.Verified {
				writeError(w, http.StatusNotFound, "Organization not verified: it has no CA", "organization_not_verified")
				return
			}
			if issuer, _, err = s.orgIssuer(org); err != nil {
				s.fail(w, r, err)
				return
			}
			defer clear(issuer.Signer.(ed25519.PrivateKey))
		}
	}
	der, err := s.signedCRL(ctx, issuer)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", registry.CRLMediaType)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(der)
}

// signedCRL returns a CRL of issuer listing the revoked certificates it
// issued, reusing the last one while it is recent and still complete.
func (s *Server) signedCRL(ctx context.Context, issuer *certs.Issuer) ([]byte, error) {
	serial := serialHex(issuer.Cert)
	recs, err := s.store.RevokedCertificates(ctx, serial)
	if err != nil {
		return nil, err
	}
	now := s.now()
	a := s.ca
	a.crlMu.Lock()
	defer a.crlMu.Unlock()
	key := crlKey{store: s.store, serial: serial}
	if c := a.crls[key]; c != nil && c.fingerprint == crlFingerprint(recs) && !now.Before(c.thisUpdate) && now.Sub(c.thisUpdate) < crlReuse {
		return c.der, nil
	}
	number, recs, err := s.store.NextCRL(ctx, "crl:"+serial, serial)
	if err != nil {
		return nil, err
	}
	entries := make([]certs.Revoked, 0, len(recs))
	for _, rc := range recs {
		n, ok := new(big.Int).SetString(rc.Serial, 16)
		if !ok || rc.RevokedAt == nil {
			return nil, fmt.Errorf("stored certificate %q: bad serial or revocation", rc.Serial)
		}
		entries = append(entries, certs.Revoked{Serial: n, RevokedAt: *rc.RevokedAt, Reason: x509ReasonCode(rc.RevocationReason)})
	}
	der, err := certs.IssueCRL(issuer, entries, big.NewInt(number), now, now.Add(CRLValidity))
	if err != nil {
		return nil, err
	}
	if a.crls == nil {
		a.crls = make(map[crlKey]*cachedCRL)
	}
	a.crls[key] = &cachedCRL{der: der, thisUpdate: now, fingerprint: crlFingerprint(recs)}
	return der, nil
}

// crlFingerprint identifies the content of a CRL's entries.
func crlFingerprint(recs []CertRecord) [32]byte {
	h := sha256.New()
	for _, rc := range recs {
		var at int64
		if rc.RevokedAt != nil {
			at = rc.RevokedAt.UnixMilli()
		}
		fmt.Fprintf(h, "%s %d %s\n", rc.Serial, at, rc.RevocationReason)
	}
	var fp [32]byte
	h.Sum(fp[:0])
	return fp
}

package registry

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Certificates, organizations and revocation (PROTOCOL.md §8.9, §8.10, §9;
// DESIGN.md §4.5).

// Revocation reasons an agent may be revoked for (POST
// /v1/registry/revoke).
const (
	ReasonKeyCompromise        = "key_compromise"
	ReasonPolicyViolation      = "policy_violation"
	ReasonSuperseded           = "superseded"
	ReasonCessationOfOperation = "cessation_of_operation"
	ReasonPrivilegeWithdrawn   = "privilege_withdrawn"
	ReasonAdminRequest         = "admin_request"
	ReasonOther                = "other"
)

// RevocationReasons lists every reason the registry accepts, in the order
// the protocol lists them.
var RevocationReasons = []string{
	ReasonKeyCompromise, ReasonPolicyViolation, ReasonSuperseded, ReasonCessationOfOperation,
	ReasonPrivilegeWithdrawn, ReasonAdminRequest, ReasonOther,
}

// Limits of the revocation queries.
const (
	// MaxBulkRevocations is the most AMIDs one bulk status query may name.
	MaxBulkRevocations = 100
	// DefaultRevocationsLimit and MaxRevocationsLimit bound one page of
	// the revocation list.
	DefaultRevocationsLimit = 1000
	MaxRevocationsLimit     = 10000
)

// Media types of the certificate endpoints.
const (
	// PEMMediaType is the type of GET /v1/registry/ca: CERTIFICATE PEM
	// blocks.
	PEMMediaType = "application/x-pem-file"
	// CRLMediaType is the type of GET /v1/registry/crl: a DER X.509 CRL.
	CRLMediaType = "application/pkix-crl"
)

// OrgRegisterRequest is the body of POST /v1/org/register. The admin signs
// the timestamp (S5); AdminAMID must derive from AdminSigningPublicKey.
// The admin need not be a registered agent.
type OrgRegisterRequest struct {
	Name                  string `json:"name"`
	Domain                string `json:"domain"`
	AdminAMID             string `json:"admin_amid"`
	AdminSigningPublicKey string `json:"admin_signing_public_key"`
	Signed
}

// DNSChallenge is the TXT record an organization publishes to prove it
// holds its domain.
type DNSChallenge struct {
	RecordType  string `json:"record_type"`
	RecordName  string `json:"record_name"`
	RecordValue string `json:"record_value"`
	// ExpiresAt is when the challenge stops being accepted (server
	// timestamp).
	ExpiresAt string `json:"expires_at"`
}

// OrgRegisterResponse is the answer to a successful organization
// registration.
type OrgRegisterResponse struct {
	Success        bool          `json:"success"`
	OrganizationID string        `json:"organization_id"`
	DNSChallenge   *DNSChallenge `json:"dns_challenge"`
	Error          *string       `json:"error"`
}

// OrgVerifyRequest is the body of POST /v1/org/verify, signed by the
// organization's admin.
type OrgVerifyRequest struct {
	OrganizationID string `json:"organization_id"`
	AdminAMID      string `json:"admin_amid"`
	Signed
}

// OrgVerifyResponse is the answer to a domain verification. When the TXT
// record is missing or wrong, Verified is false and Error says why.
type OrgVerifyResponse struct {
	Success  bool `json:"success"`
	Verified bool `json:"verified"`
	// RootCertificate is the organization's CA certificate (PEM), signed
	// by the registry's root.
	RootCertificate *string `json:"root_certificate"`
	// CertificateChain is the organization's certificate and the root,
	// each padded base64 of DER.
	CertificateChain []string `json:"certificate_chain,omitempty"`
	Error            *string  `json:"error"`
}

// OrgAgentRequest is the body of POST /v1/org/agents. The admin signs the
// timestamp (AdminSignature). An agent that is already registered must
// consent: AgentSignature is its signature over the same timestamp string.
type OrgAgentRequest struct {
	OrganizationID         string   `json:"organization_id"`
	AgentAMID              string   `json:"agent_amid"`
	AgentSigningPublicKey  string   `json:"agent_signing_public_key"`
	AgentExchangePublicKey string   `json:"agent_exchange_public_key"`
	DisplayName            *string  `json:"display_name,omitempty"`
	Capabilities           []string `json:"capabilities"`
	AdminAMID              string   `json:"admin_amid"`
	AdminSignature         string   `json:"admin_signature"`
	Timestamp              string   `json:"timestamp"`
	AgentSignature         string   `json:"agent_signature,omitempty"`
}

// OrgAgentResponse is the answer to an enrolment: the agent's certificate,
// signed by the organization.
type OrgAgentResponse struct {
	Success bool `json:"success"`
	// AgentCertificate is the agent's certificate (PEM).
	AgentCertificate string `json:"agent_certificate"`
	// CertificateChain is the agent's certificate, the organization's and
	// the root, each padded base64 of DER.
	CertificateChain []string `json:"certificate_chain"`
	Error            *string  `json:"error"`
}

// OrgLookup is an organization as GET /v1/org/lookup describes it.
type OrgLookup struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Domain     string `json:"domain"`
	Verified   bool   `json:"verified"`
	AgentCount int    `json:"agent_count"`
	CreatedAt  string `json:"created_at"`
}

// RevokeRequest is the body of POST /v1/registry/revoke, signed by the
// revoker: the agent itself or its organization's admin.
type RevokeRequest struct {
	AMID        string  `json:"amid"`
	Reason      string  `json:"reason"`
	Notes       *string `json:"notes,omitempty"`
	RevokerAMID string  `json:"revoker_amid"`
	Signed
}

// RevokeResponse is the answer to a revocation.
type RevokeResponse struct {
	Success      bool    `json:"success"`
	RevocationID *string `json:"revocation_id"`
	Error        *string `json:"error"`
}

// Revocation is the record of a revoked agent.
type Revocation struct {
	ID        string `json:"id"`
	AMID      string `json:"amid"`
	Reason    string `json:"reason"`
	RevokedBy string `json:"revoked_by"`
	// RevokedAt is a server timestamp.
	RevokedAt string  `json:"revoked_at"`
	Notes     *string `json:"notes"`
}

// RevocationStatus says whether one agent is revoked.
type RevocationStatus struct {
	AMID       string      `json:"amid"`
	Revoked    bool        `json:"revoked"`
	Revocation *Revocation `json:"revocation"`
}

// BulkRevocationRequest is the body of POST /v1/registry/revocations/bulk.
type BulkRevocationRequest struct {
	AMIDs []string `json:"amids"`
}

// BulkRevocationResponse is the status of each AMID asked about, in the
// order asked.
type BulkRevocationResponse struct {
	Revocations  []RevocationStatus `json:"revocations"`
	TotalChecked int                `json:"total_checked"`
	TotalRevoked int                `json:"total_revoked"`
}

// RevocationList is one page of every revocation, oldest first (GET
// /v1/registry/revocations).
type RevocationList struct {
	Revocations []Revocation `json:"revocations"`
	// Total counts the revocations of all pages.
	Total int `json:"total"`
	// LastUpdated and NextUpdate are server timestamps: now, and when the
	// list should be fetched again.
	LastUpdated string `json:"last_updated"`
	NextUpdate  string `json:"next_update"`
}

// CACertificates returns the registry's root certificates that have not
// expired, the one that signs now first. Trust them all: certificates
// issued under an earlier root stay valid until they expire.
func (c *Client) CACertificates(ctx context.Context) ([]*x509.Certificate, error) {
	data, err := c.getRaw(ctx, "/registry/ca", nil, PEMMediaType)
	if err != nil {
		return nil, err
	}
	var roots []*x509.Certificate
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("registry: root certificate: %w", err)
		}
		roots = append(roots, cert)
	}
	if len(roots) == 0 {
		return nil, errors.New("registry: no root certificate in the response")
	}
	return roots, nil
}

// CRL returns the DER revocation list of the registry's current root or,
// when issuerOrgID is not empty, of that organization's CA. Check it with
// mesh/certs.ParseCRL against the issuer's certificate.
func (c *Client) CRL(ctx context.Context, issuerOrgID string) ([]byte, error) {
	var q url.Values
	if issuerOrgID != "" {
		q = url.Values{"issuer": {issuerOrgID}}
	}
	return c.getRaw(ctx, "/registry/crl", q, CRLMediaType)
}

// getRaw fetches a non-JSON resource, answered with 200.
func (c *Client) getRaw(ctx context.Context, path string, query url.Values, accept string) ([]byte, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("registry: GET %s: %w", path, err)
	}
	req.Header.Set("Accept", accept)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("registry: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return nil, fmt.Errorf("registry: GET %s: read response: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &APIError{StatusCode: resp.StatusCode}
		var er ErrorResponse
		if json.Unmarshal(data, &er) == nil && er.Error != "" {
			ae.Message, ae.Code = er.Error, er.Code
		} else {
			ae.Message = strings.TrimSpace(string(data))
		}
		return nil, ae
	}
	return data, nil
}

// RegisterOrganization registers the organization name for domain, with
// the signer as its admin. Publish the returned challenge as a DNS TXT
// record, then call VerifyOrganization.
func (c *Client) RegisterOrganization(ctx context.Context, admin *Signer, name, domain string) (*OrgRegisterResponse, error) {
	req := OrgRegisterRequest{
		Name: name, Domain: domain, AdminAMID: string(admin.AMID), AdminSigningPublicKey: admin.PublicKey(),
		Signed: admin.Sign(),
	}
	var resp OrgRegisterResponse
	if err := c.do(ctx, http.MethodPost, "/org/register", nil, req, &resp, http.StatusCreated); err != nil {
		return nil, err
	}
	return &resp, nil
}

// VerifyOrganization asks the registry to check the organization's DNS TXT
// record. The registry answers 200 either way: when the record is missing
// or wrong the response has Verified false and an Error, and the returned
// error is nil.
func (c *Client) VerifyOrganization(ctx context.Context, admin *Signer, orgID string) (*OrgVerifyResponse, error) {
	req := OrgVerifyRequest{OrganizationID: orgID, AdminAMID: string(admin.AMID), Signed: admin.Sign()}
	var resp OrgVerifyResponse
	if err := c.do(ctx, http.MethodPost, "/org/verify", nil, req, &resp, http.StatusOK); err != nil {
		return nil, err
	}
	return &resp, nil
}

// OrgEnrollment names an agent to enrol in an organization.
type OrgEnrollment struct {
	OrganizationID         string
	AgentAMID              string
	AgentSigningPublicKey  string
	AgentExchangePublicKey string
	DisplayName            *string
	Capabilities           []string
	// Agent, when set, signs the agent's consent. It is required when the
	// agent is already registered; AgentAMID and AgentSigningPublicKey
	// default to its own.
	Agent *Signer
}

// EnrollOrgAgent enrols an agent in the organization the admin signer
// runs, and returns its certificate signed by the organization.
func (c *Client) EnrollOrgAgent(ctx context.Context, admin *Signer, e OrgEnrollment) (*OrgAgentResponse, error) {
	signed := admin.Sign()
	req := OrgAgentRequest{
		OrganizationID: e.OrganizationID, AgentAMID: e.AgentAMID,
		AgentSigningPublicKey: e.AgentSigningPublicKey, AgentExchangePublicKey: e.AgentExchangePublicKey,
		DisplayName: e.DisplayName, Capabilities: e.Capabilities,
		AdminAMID: string(admin.AMID), AdminSignature: signed.Signature, Timestamp: signed.Timestamp,
	}
	if req.Capabilities == nil {
		req.Capabilities = []string{}
	}
	if e.Agent != nil {
		if req.AgentAMID == "" {
			req.AgentAMID = string(e.Agent.AMID)
		}
		if req.AgentSigningPublicKey == "" {
			req.AgentSigningPublicKey = e.Agent.PublicKey()
		}
		req.AgentSignature = e.Agent.SignBytes([]byte(signed.Timestamp))
	}
	var resp OrgAgentResponse
	if err := c.do(ctx, http.MethodPost, "/org/agents", nil, req, &resp, http.StatusCreated); err != nil {
		return nil, err
	}
	return &resp, nil
}

// OrgLookup returns the organization registered for domain.
func (c *Client) OrgLookup(ctx context.Context, domain string) (*OrgLookup, error) {
	var resp OrgLookup
	if err := c.do(ctx, http.MethodGet, "/org/lookup", url.Values{"domain": {domain}}, nil, &resp, http.StatusOK); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Revoke revokes the agent amid for reason, one of RevocationReasons. The
// revoker is the agent itself or the admin of its organization. It returns
// the revocation's ID.
func (c *Client) Revoke(ctx context.Context, revoker *Signer, amid, reason, notes string) (string, error) {
	req := RevokeRequest{AMID: amid, Reason: reason, RevokerAMID: string(revoker.AMID), Signed: revoker.Sign()}
	if notes != "" {
		req.Notes = &notes
	}
	var resp RevokeResponse
	if err := c.do(ctx, http.MethodPost, "/registry/revoke", nil, req, &resp, http.StatusOK); err != nil {
		return "", err
	}
	if resp.RevocationID == nil {
		return "", errors.New("registry: revoke: no revocation_id in the response")
	}
	return *resp.RevocationID, nil
}

// RevocationStatus reports whether the agent amid is revoked.
func (c *Client) RevocationStatus(ctx context.Context, amid string) (*RevocationStatus, error) {
	var resp RevocationStatus
	if err := c.do(ctx, http.MethodGet, "/registry/revocation", url.Values{"amid": {amid}}, nil, &resp, http.StatusOK); err != nil {
		return nil, err
	}
	return &resp, nil
}

// RevocationsBulk reports the revocation status of up to
// MaxBulkRevocations agents at once.
func (c *Client) RevocationsBulk(ctx context.Context, amids []string) (*BulkRevocationResponse, error) {
	if amids == nil {
		amids = []string{}
	}
	var resp BulkRevocationResponse
	if err := c.do(ctx, http.MethodPost, "/registry/revocations/bulk", nil, BulkRevocationRequest{AMIDs: amids}, &resp, http.StatusOK); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Revocations returns one page of the revocation list. A limit of 0 asks
// for DefaultRevocationsLimit; the registry caps it at
// MaxRevocationsLimit.
func (c *Client) Revocations(ctx context.Context, limit, offset int) (*RevocationList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	var resp RevocationList
	if err := c.do(ctx, http.MethodGet, "/registry/revocations", q, nil, &resp, http.StatusOK); err != nil {
		return nil, err
	}
	return &resp, nil
}

package registryserver

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Registration and discovery (PROTOCOL.md §8.2–§8.5, §1.6): health, stats,
// register, lookup, search, status, capability and exchange key updates,
// DID documents.

// Limits on what an agent declares about itself.
const (
	// MaxDisplayNameLength is the longest display name, in characters.
	MaxDisplayNameLength = 128
	// MaxCapabilities is the most capabilities an agent may declare.
	MaxCapabilities = 64
	// MaxCapabilityLength is the longest capability, in characters.
	MaxCapabilityLength = 128
	// MaxEndpointLength is the longest relay or direct endpoint URL, in
	// bytes.
	MaxEndpointLength = 2048
	// maxVerificationTokenLength bounds an OAuth access token; real ones
	// are a few hundred bytes.
	maxVerificationTokenLength = 8192
)

// presenceValues are the statuses an agent may set (PROTOCOL.md §8.5).
var presenceValues = []string{"online", "away", "offline", "dnd"}

func notImplemented(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not implemented", "not_implemented")
}

// healthBody is the body of the liveness, readiness and starting answers.
type healthBody struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// handleLiveness answers GET /health and /healthz without touching the
// store: the process is up.
func (s *Server) handleLiveness(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthBody{Status: "ok"})
}

// handleReadiness answers GET /readyz: ready when the store answers.
func (s *Server) handleReadiness(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readiness: store unreachable", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, healthBody{Status: "unavailable", Error: "database unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, healthBody{Status: "ready"})
}

// handleHealth answers GET /v1/health with the agent counts, or 503 while
// the store does not answer.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	c, err := s.store.CountAgents(r.Context())
	if err != nil {
		if r.Context().Err() == nil {
			s.log.Warn("health: store unavailable", "error", err)
		}
		writeJSON(w, http.StatusServiceUnavailable, healthBody{Status: "starting", Message: "Database unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, registry.Health{
		Status: "healthy", Version: protocol.ProtocolVersion,
		AgentsRegistered: c.Total, AgentsOnline: c.Online,
	})
}

// handleStats answers GET /v1/registry/stats.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	c, err := s.store.CountAgents(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registry.Stats{
		TotalAgents: c.Total, OnlineAgents: c.Online,
		ByTier: c.ByTier, ByStatus: c.ByStatus, AverageReputation: c.AverageScore,
	})
}

// registerFailure is a refused registration: the RegisterResponse shape
// of PROTOCOL.md §8.3 with a machine-readable code.
type registerFailure struct {
	registry.RegisterResponse
	Code string `json:"code,omitempty"`
}

// handleRegister answers POST /v1/registry/register.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req registry.RegisterRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.registerFailed(w, r, "", err)
		return
	}
	resp, err := s.register(r.Context(), &req)
	if err != nil {
		amid := ""
		if _, perr := protocol.ParseAMID(req.AMID); perr == nil {
			amid = req.AMID
		}
		s.registerFailed(w, r, amid, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

// registerFailed answers a failed registration in the RegisterResponse
// shape: an *apiError as it says, anything else as a logged 500.
func (s *Server) registerFailed(w http.ResponseWriter, r *http.Request, amid string, err error) {
	body := registerFailure{RegisterResponse: registry.RegisterResponse{AMID: amid, Tier: registry.TierAnonymous}}
	status := http.StatusInternalServerError
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		status, body.Error, body.Code = ae.status, ae.msg, ae.code
	case errors.Is(err, context.Canceled):
		return
	default:
		s.log.Error("registration failed", "amid", amid, "error", err)
		body.Error, body.Code = "Registration failed", "internal_error"
	}
	writeJSON(w, status, body)
}

// register checks and stores a registration: fields, then that the key
// derives the AMID, the signature (S2, fresh and unused), revocation and
// whether the AMID is taken; a verification token that an OAuth provider
// accepts makes the agent verified and certified.
func (s *Server) register(ctx context.Context, req *registry.RegisterRequest) (*registry.RegisterResponse, error) {
	pub, err := validateRegistration(req)
	if err != nil {
		return nil, err
	}
	if !protocol.AMID(req.AMID).Matches(pub) {
		return nil, errorf(http.StatusUnauthorized, "amid_mismatch", "Signature verification failed: AMID mismatch")
	}
	if err := s.verifySigned(ctx, req.AMID, pub, req.Signed); err != nil {
		return nil, err
	}
	if err := s.refuseRevoked(ctx, req.AMID); err != nil {
		return nil, err
	}
	tier := registry.TierAnonymous
	var ident *VerifiedIdentity
	if req.VerificationToken != "" {
		// Ask the OAuth provider only for an AMID that is free.
		exists, err := s.store.AgentExists(ctx, req.AMID)
		if err != nil {
			return nil, err
		}
		if exists {
			return nil, errAlreadyRegistered
		}
		ident, err = s.verifyAccessToken(ctx, req.VerificationToken)
		if err != nil {
			s.log.Info("verification token refused; registering as anonymous", "amid", req.AMID,
				"error", redactToken(err, req.VerificationToken))
		} else {
			tier = registry.TierVerified
		}
	}
	now := s.now()
	a := &Agent{
		AMID:              req.AMID,
		SigningPublicKey:  protocol.EncodeSigningPublicKey(pub),
		ExchangePublicKey: req.ExchangePublicKey,
		Tier:              tier,
		DisplayName:       req.DisplayName,
		Capabilities:      req.Capabilities,
		RelayEndpoint:     req.RelayEndpoint,
		DirectEndpoint:    req.DirectEndpoint,
		Status:            "offline",
		ReputationScore:   UnratedScore,
		LastSeen:          now,
		CreatedAt:         now,
		UpdatedAt:         now,
	}
	if err := s.store.InsertAgent(ctx, a); err != nil {
		if errors.Is(err, ErrExists) {
			return nil, errAlreadyRegistered
		}
		return nil, err
	}
	resp := &registry.RegisterResponse{Success: true, AMID: req.AMID, Tier: tier}
	if tier == registry.TierVerified {
		resp.Certificate, resp.CertificateChain, err = s.certifyRegistration(ctx, a, ident, pub)
		if err != nil {
			// Undo, so that the agent can register again.
			if derr := s.store.DeleteUnusedAgent(context.WithoutCancel(ctx), req.AMID); derr != nil {
				s.log.Error("registration: remove unverified agent", "amid", req.AMID, "error", derr)
			}
			return nil, fmt.Errorf("verify %s: %w", req.AMID, err)
		}
	}
	s.log.Debug("agent registered", "amid", req.AMID, "tier", tier)
	return resp, nil
}

// certifyRegistration completes a verified registration: it records the
// OAuth identity that vouched for the agent, as the OAuth callback does,
// and issues the agent's certificate.
func (s *Server) certifyRegistration(ctx context.Context, a *Agent, ident *VerifiedIdentity, pub ed25519.PublicKey) (pem string, chain []string, err error) {
	if _, err := s.store.RecordOAuthVerification(ctx, &AgentVerification{
		AMID: a.AMID, Provider: ident.Provider, ProviderID: ident.ProviderID, Email: ident.Email,
		Username: ident.Username, DisplayName: ident.DisplayName, VerifiedAt: a.CreatedAt,
	}); err != nil {
		return "", nil, err
	}
	return s.issueAgentCertificate(ctx, a.AMID, pub, registry.TierVerified)
}

var errAlreadyRegistered = errorf(http.StatusConflict, "already_registered", "AMID already registered")

// redactToken renders err with any copy of the secret token hidden.
func redactToken(err error, token string) string {
	return strings.ReplaceAll(err.Error(), token, "[redacted]")
}

// validateRegistration checks the fields of a registration and normalises
// the optional ones (defaults, empty strings as absent). It returns the
// signing key.
func validateRegistration(req *registry.RegisterRequest) (ed25519.PublicKey, error) {
	if err := checkAMID(req.AMID); err != nil {
		return nil, err
	}
	if req.SigningPublicKey == "" {
		return nil, errorf(http.StatusBadRequest, "invalid_signing_public_key", "signing_public_key is required")
	}
	pub, err := protocol.ParseSigningPublicKey(req.SigningPublicKey)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_signing_public_key", "invalid signing_public_key: %v", err)
	}
	xpub, err := parseExchangeKey(req.ExchangePublicKey)
	if err != nil {
		return nil, err
	}
	req.ExchangePublicKey = protocol.EncodeExchangePublicKey(xpub)
	if req.DisplayName != nil {
		if *req.DisplayName == "" {
			req.DisplayName = nil
		} else if err := validateDisplayName(*req.DisplayName); err != nil {
			return nil, err
		}
	}
	if req.Capabilities == nil {
		req.Capabilities = []string{}
	}
	if err := validateAgentCapabilities(req.Capabilities); err != nil {
		return nil, err
	}
	if req.RelayEndpoint == "" {
		req.RelayEndpoint = registry.DefaultRelayEndpoint
	} else if err := validateEndpoint("relay_endpoint", req.RelayEndpoint, true); err != nil {
		return nil, err
	}
	if req.DirectEndpoint != nil {
		if *req.DirectEndpoint == "" {
			req.DirectEndpoint = nil
		} else if err := validateEndpoint("direct_endpoint", *req.DirectEndpoint, false); err != nil {
			return nil, err
		}
	}
	if len(req.VerificationToken) > maxVerificationTokenLength {
		return nil, errorf(http.StatusBadRequest, "invalid_verification_token",
			"invalid verification_token: longer than %d bytes", maxVerificationTokenLength)
	}
	return pub, nil
}

// parseExchangeKey reads an exchange_public_key field: 400
// invalid_exchange_public_key unless it is an X25519 public key in base64,
// with or without its prefix.
func parseExchangeKey(s string) (*ecdh.PublicKey, error) {
	if s == "" {
		return nil, errorf(http.StatusBadRequest, "invalid_exchange_public_key", "exchange_public_key is required")
	}
	k, err := protocol.ParseExchangePublicKey(s)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_exchange_public_key", "invalid exchange_public_key: %v", err)
	}
	return k, nil
}

// checkText reports what is wrong with a display name or capability: not
// UTF-8, control characters, or more than max characters.
func checkText(s string, max int) string {
	switch {
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "contains control characters"
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("longer than %d characters", max)
	}
	return ""
}

func validateDisplayName(name string) error {
	if why := checkText(name, MaxDisplayNameLength); why != "" {
		return errorf(http.StatusBadRequest, "invalid_display_name", "invalid display_name: %s", why)
	}
	return nil
}

// validateAgentCapabilities checks a capability list: at most
// MaxCapabilities entries, each 1..MaxCapabilityLength characters of
// printable text, none twice.
func validateAgentCapabilities(caps []string) error {
	if len(caps) > MaxCapabilities {
		return errorf(http.StatusBadRequest, "invalid_capabilities", "invalid capabilities: %d entries, at most %d allowed",
			len(caps), MaxCapabilities)
	}
	seen := make(map[string]struct{}, len(caps))
	for i, c := range caps {
		if err := validateCapability(fmt.Sprintf("capabilities[%d]", i), c); err != nil {
			return err
		}
		if _, dup := seen[c]; dup {
			return errorf(http.StatusBadRequest, "invalid_capabilities", "invalid capabilities: %q is listed twice", c)
		}
		seen[c] = struct{}{}
	}
	return nil
}

func validateCapability(field, c string) error {
	if c == "" {
		return errorf(http.StatusBadRequest, "invalid_capabilities", "invalid %s: empty", field)
	}
	if why := checkText(c, MaxCapabilityLength); why != "" {
		return errorf(http.StatusBadRequest, "invalid_capabilities", "invalid %s: %s", field, why)
	}
	return nil
}

// validateEndpoint checks an absolute URL with a host; a relay endpoint
// must be ws:// or wss://.
func validateEndpoint(field, raw string, websocket bool) error {
	bad := func(why string) error {
		return errorf(http.StatusBadRequest, "invalid_"+field, "invalid %s: %s", field, why)
	}
	if len(raw) > MaxEndpointLength {
		return bad(fmt.Sprintf("longer than %d bytes", MaxEndpointLength))
	}
	if !utf8.ValidString(raw) {
		return bad("not valid UTF-8")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	if websocket && u.Scheme != "ws" && u.Scheme != "wss" {
		return bad("must be a ws:// or wss:// URL")
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return bad("must be an absolute URL with a host")
	}
	return nil
}

// lookupOf renders a stored agent as lookups show it: the stored score
// once rated, UnratedScore before.
func lookupOf(l *AgentListing) registry.AgentLookup {
	out := registry.AgentLookup{
		AMID:              l.AMID,
		Tier:              l.Tier,
		DisplayName:       l.DisplayName,
		Organization:      l.Organization,
		SigningPublicKey:  l.SigningPublicKey,
		ExchangePublicKey: l.ExchangePublicKey,
		Capabilities:      l.Capabilities,
		RelayEndpoint:     l.RelayEndpoint,
		DirectEndpoint:    l.DirectEndpoint,
		Status:            l.Status,
		ReputationScore:   UnratedScore,
		LastSeen:          protocol.FormatServerTimestamp(l.LastSeen),
		RatingsCount:      l.RatingsCount,
		ReputationStatus:  registry.ReputationUnrated,
	}
	if l.RatingsCount >= MinRatings {
		out.ReputationScore, out.ReputationStatus = l.ReputationScore, registry.ReputationRated
	}
	return out
}

// handleLookup answers GET /v1/registry/lookup?amid=.
func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	amid, err := queryAMID(r, "invalid_amid")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.lookup(r.Context(), amid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) lookup(ctx context.Context, amid string) (*registry.AgentLookup, error) {
	l, err := s.store.LookupAgent(ctx, amid)
	if err != nil {
		return nil, orNotFound(err, errAgentNotFound)
	}
	out := lookupOf(l)
	if out.Certificate, out.CertificateChain, err = s.certificateOf(ctx, amid); err != nil {
		return nil, err
	}
	if out.Flags, err = s.flagsOf(ctx, amid); err != nil {
		return nil, err
	}
	if out.Revoked, err = s.isRevoked(ctx, amid); err != nil {
		return nil, err
	}
	if out.Revoked {
		at := s.now()
		if l.RevokedAt != nil {
			at = *l.RevokedAt
		}
		out.Flags = append(out.Flags, registry.AgentFlag{Reason: registry.FlagRevoked, FlaggedAt: protocol.FormatServerTimestamp(at)})
	}
	return &out, nil
}

// handleSearch answers GET /v1/registry/search. Revoked agents are left
// out. Results carry no certificate or flags: look an agent up for those.
func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	f, err := parseSearch(r.URL.RawQuery)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, total, err := s.store.SearchAgents(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := registry.SearchResponse{Results: make([]registry.AgentLookup, len(list)), Total: total, Limit: f.Limit, Offset: f.Offset}
	for i, l := range list {
		resp.Results[i] = lookupOf(l)
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseSearch reads a search's query string (PROTOCOL.md §8.4, with
// the limit capped at registry.MaxSearchLimit).
func parseSearch(raw string) (AgentFilter, error) {
	f := AgentFilter{Limit: registry.DefaultSearchLimit}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return f, errorf(http.StatusBadRequest, "invalid_query", "invalid query string")
	}
	bad := func(param, format string, args ...any) error {
		return errorf(http.StatusBadRequest, "invalid_"+param, "invalid %s: "+format, append([]any{param}, args...)...)
	}
	f.Capability = q.Get("capability")
	if f.Capability == "" {
		return f, errorf(http.StatusBadRequest, "invalid_capability", "capability is required")
	}
	if err := validateCapability("capability", f.Capability); err != nil {
		return f, errorf(http.StatusBadRequest, "invalid_capability", "%s", err.(*apiError).msg)
	}
	var ok bool
	if f.MaxTierLevel, ok = intParam(q, "tier_min", f.MaxTierLevel, 0, 2); !ok {
		return f, bad("tier_min", "must be 1 or 2")
	}
	if v := q.Get("reputation_min"); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || !(x >= 0 && x <= 1) {
			return f, bad("reputation_min", "must be a number from 0 to 1")
		}
		f.MinScore = x
	}
	if v, ok := q["status"]; ok {
		if !slices.Contains(presenceValues, v[0]) {
			return f, bad("status", "must be one of %s", strings.Join(presenceValues, ", "))
		}
		f.Status = v[0]
	}
	if f.Limit, ok = intParam(q, "limit", f.Limit, 1, math.MaxInt); !ok {
		return f, bad("limit", "must be a whole number from 1 to %d", registry.MaxSearchLimit)
	}
	f.Limit = min(f.Limit, registry.MaxSearchLimit)
	if f.Offset, ok = intParam(q, "offset", f.Offset, 0, math.MaxInt); !ok {
		return f, bad("offset", "must be a whole number, 0 or more")
	}
	return f, nil
}

// handleStatus answers POST /v1/registry/status.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	var req registry.StatusRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if !slices.Contains(presenceValues, req.Status) {
		s.fail(w, r, errorf(http.StatusBadRequest, "invalid_status", "invalid status: must be one of %s",
			strings.Join(presenceValues, ", ")))
		return
	}
	s.signedUpdate(w, r, req.AMID, req.Signed, func(ctx context.Context) error {
		return s.store.UpdateAgentStatus(ctx, req.AMID, req.Status, s.now())
	})
}

// handleCapabilities answers POST /v1/registry/capabilities.
func (s *Server) handleCapabilities(w http.ResponseWriter, r *http.Request) {
	var req registry.CapabilitiesRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Capabilities == nil {
		s.fail(w, r, errorf(http.StatusBadRequest, "invalid_capabilities", "capabilities is required (send [] to declare none)"))
		return
	}
	if err := validateAgentCapabilities(req.Capabilities); err != nil {
		s.fail(w, r, err)
		return
	}
	s.signedUpdate(w, r, req.AMID, req.Signed, func(ctx context.Context) error {
		return s.store.UpdateAgentCapabilities(ctx, req.AMID, req.Capabilities, s.now())
	})
}

// handleExchangeKey answers POST /v1/registry/exchange-key: the agent
// replaces its X25519 exchange key. The timestamp signature (S2) makes the
// request fresh and unrepeatable; the key signature binds the new key to
// it, since S2 covers only the timestamp.
func (s *Server) handleExchangeKey(w http.ResponseWriter, r *http.Request) {
	var req registry.ExchangeKeyUpdate
	if err := decodeBody(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	key, err := validateExchangeKeyUpdate(&req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	a, pub, err := s.agentWithKey(ctx, req.AMID, errAgentNotFound)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The key signature is checked before the timestamp signature is
	// remembered, so that a request whose key was swapped is refused
	// without using up the agent's signature.
	if err := verifyKeySignature(pub, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.verifySigned(ctx, req.AMID, pub, req.Signed); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.refuseRevoked(ctx, req.AMID); err != nil {
		s.fail(w, r, err)
		return
	}
	stored := protocol.EncodeExchangePublicKey(key)
	if a.ExchangePublicKey == stored {
		s.log.Debug("exchange key unchanged", "amid", req.AMID)
	} else {
		if err := s.store.UpdateAgentExchangeKey(ctx, req.AMID, stored, s.now()); err != nil {
			s.fail(w, r, orNotFound(err, errAgentNotFound))
			return
		}
		s.log.Debug("exchange key updated", "amid", req.AMID, "exchange_public_key", stored)
	}
	writeJSON(w, http.StatusOK, registry.SuccessResponse{Success: true, Notifications: s.notificationsFor(ctx, req.AMID)})
}

// validateExchangeKeyUpdate checks the fields of an exchange key update
// and returns the new key.
func validateExchangeKeyUpdate(req *registry.ExchangeKeyUpdate) (*ecdh.PublicKey, error) {
	if err := checkAMID(req.AMID); err != nil {
		return nil, err
	}
	key, err := parseExchangeKey(req.ExchangePublicKey)
	if err != nil {
		return nil, err
	}
	if req.KeySignature == "" {
		return nil, errorf(http.StatusBadRequest, "missing_key_signature",
			"key_signature is required: sign the exchange key update with the agent's signing key")
	}
	return key, nil
}

// verifyKeySignature answers 401 invalid_key_signature unless the update's
// key signature is pub's over registry.ExchangeKeySigningBytes of the
// AMID, the key and the timestamp as sent.
func verifyKeySignature(pub ed25519.PublicKey, req *registry.ExchangeKeyUpdate) error {
	sig, err := protocol.DecodeB64(req.KeySignature, ed25519.SignatureSize)
	if err != nil {
		return errorf(http.StatusUnauthorized, "invalid_key_signature",
			"Key signature verification failed: key_signature is not a padded base64 Ed25519 signature")
	}
	if !ed25519.Verify(pub, registry.ExchangeKeySigningBytes(req.AMID, req.ExchangePublicKey, req.Timestamp), sig) {
		return errorf(http.StatusUnauthorized, "invalid_key_signature",
			"Key signature verification failed: key_signature is not the agent's signature over this amid, exchange_public_key and timestamp")
	}
	return nil
}

// signedUpdate authenticates the agent amid (S3), refuses a revoked one,
// applies update and answers with success and the agent's notifications.
func (s *Server) signedUpdate(w http.ResponseWriter, r *http.Request, amid string, sig registry.Signed, update func(context.Context) error) {
	ctx := r.Context()
	if _, err := s.authenticate(ctx, amid, sig); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.refuseRevoked(ctx, amid); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := update(ctx); err != nil {
		s.fail(w, r, orNotFound(err, errAgentNotFound))
		return
	}
	writeJSON(w, http.StatusOK, registry.SuccessResponse{Success: true, Notifications: s.notificationsFor(ctx, amid)})
}

// Multicodec headers of the public keys in a DID document's
// publicKeyMultibase (the multicodec table's ed25519-pub and x25519-pub,
// as unsigned varints).
var (
	multicodecEd25519Pub = []byte{0xed, 0x01}
	multicodecX25519Pub  = []byte{0xec, 0x01}
)

// multibaseKey renders a public key as multibase base58btc ("z") of the
// multicodec header followed by the raw key.
func multibaseKey(header, key []byte) string {
	return "z" + protocol.EncodeBase58(append(slices.Clip(header), key...))
}

type didVerificationMethod struct {
	ID                 string `json:"id"`
	Type               string `json:"type"`
	Controller         string `json:"controller"`
	PublicKeyMultibase string `json:"publicKeyMultibase"`
}

type didService struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	ServiceEndpoint string `json:"serviceEndpoint"`
}

type didDocument struct {
	Context            []string                `json:"@context"`
	ID                 string                  `json:"id"`
	Controller         string                  `json:"controller"`
	VerificationMethod []didVerificationMethod `json:"verificationMethod"`
	Authentication     []string                `json:"authentication"`
	AssertionMethod    []string                `json:"assertionMethod"`
	KeyAgreement       []string                `json:"keyAgreement"`
	Service            []didService            `json:"service"`
}

// didDocumentOf builds the W3C DID document of a registered agent. Unlike
// the original registry's (PROTOCOL.md §1.6, §13 W-25), its keys are real
// multibase: base58btc of the multicodec-prefixed raw key.
func didDocumentOf(a *Agent) (*didDocument, error) {
	sig, err := protocol.ParseSigningPublicKey(a.SigningPublicKey)
	if err != nil {
		return nil, fmt.Errorf("stored signing key of %s: %w", a.AMID, err)
	}
	x, err := protocol.ParseExchangePublicKey(a.ExchangePublicKey)
	if err != nil {
		return nil, fmt.Errorf("stored exchange key of %s: %w", a.AMID, err)
	}
	did := protocol.AMID(a.AMID).DID()
	signingID, agreementID := did+"#signing-key", did+"#key-agreement-key"
	doc := &didDocument{
		Context: []string{
			"https://www.w3.org/ns/did/v1",
			"https://w3id.org/security/suites/ed25519-2020/v1",
			"https://w3id.org/security/suites/x25519-2020/v1",
		},
		ID:         did,
		Controller: did,
		VerificationMethod: []didVerificationMethod{
			{ID: signingID, Type: "Ed25519VerificationKey2020", Controller: did,
				PublicKeyMultibase: multibaseKey(multicodecEd25519Pub, sig)},
			{ID: agreementID, Type: "X25519KeyAgreementKey2020", Controller: did,
				PublicKeyMultibase: multibaseKey(multicodecX25519Pub, x.Bytes())},
		},
		Authentication:  []string{signingID},
		AssertionMethod: []string{signingID},
		KeyAgreement:    []string{agreementID},
		Service:         []didService{{ID: did + "#relay", Type: "AgentMeshRelay", ServiceEndpoint: a.RelayEndpoint}},
	}
	if a.DirectEndpoint != nil {
		doc.Service = append(doc.Service, didService{ID: did + "#direct", Type: "AgentMeshDirect", ServiceEndpoint: *a.DirectEndpoint})
	}
	return doc, nil
}

// handleDID answers GET /v1/registry/did/{amid} with the agent's DID
// document as application/did+json.
func (s *Server) handleDID(w http.ResponseWriter, r *http.Request) {
	amid := r.PathValue("amid")
	if err := checkAMID(amid); err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.agent(r.Context(), amid, errorf(http.StatusNotFound, "agent_not_found", "DID not found"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	doc, err := didDocumentOf(a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/did+json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(doc)
}

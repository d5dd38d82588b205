package registryserver

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// MaxBodySize bounds a request body. The largest legitimate body, a prekey
// upload of a few hundred one-time prekeys, is far below it.
const MaxBodySize = 64 << 10

// TXTResolver looks up DNS TXT records; *net.Resolver is one.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Config configures a Server. Store is required; everything else has a
// default.
type Config struct {
	Store  *Store
	Logger hclog.Logger
	// Now reads the clock; tests move it. Default time.Now.
	Now func() time.Time

	// Authority holds the root CA that certifies agents and organizations.
	// Without one the server generates a root CA in memory at start.
	Authority *Authority

	// Resolver answers the DNS TXT lookups that verify an organization's
	// domain. Default: the system resolver.
	Resolver TXTResolver

	// OAuth configures tier-1 verification; providers without a client ID
	// are disabled.
	OAuth OAuthConfig

	// TrustForwardedFor makes the server take a client's address from the
	// last X-Forwarded-For entry, for a registry behind a reverse proxy.
	// Leave it off otherwise: clients can write that header.
	TrustForwardedFor bool

	// RequestsPerMinute and RequestBurst bound the requests one client
	// address may make. Defaults: 600 per minute, bursts of 100.
	RequestsPerMinute int
	RequestBurst      int
}

// Server is the registry's HTTP API. Create it with New; it is an
// http.Handler.
type Server struct {
	cfg     Config
	store   *Store
	log     hclog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	perIP   *limiterSet
	ca      *Authority
	prekeys *limiterSet
}

// New returns a registry server over cfg.Store.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("registry: Config.Store is required")
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Logger, now: cfg.Now, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.Resolver == nil {
		s.cfg.Resolver = net.DefaultResolver
	}
	perMinute, burst := cfg.RequestsPerMinute, cfg.RequestBurst
	if perMinute <= 0 {
		perMinute = 600
	}
	if burst <= 0 {
		burst = 100
	}
	s.perIP = newLimiterSet(perMinute, time.Minute, burst)
	if err := s.initAuthority(); err != nil {
		return nil, err
	}
	s.initPrekeyLimits()
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := s.mux
	// Health.
	m.HandleFunc("GET /health", s.handleLiveness)
	m.HandleFunc("GET /healthz", s.handleLiveness)
	m.HandleFunc("GET /readyz", s.handleReadiness)
	m.HandleFunc("GET /v1/health", s.handleHealth)
	m.HandleFunc("GET /v1/registry/stats", s.handleStats)

	// Registration and discovery.
	m.HandleFunc("POST /v1/registry/register", s.handleRegister)
	m.HandleFunc("GET /v1/registry/lookup", s.handleLookup)
	m.HandleFunc("GET /v1/registry/search", s.handleSearch)
	m.HandleFunc("POST /v1/registry/status", s.handleStatus)
	m.HandleFunc("POST /v1/registry/capabilities", s.handleCapabilities)
	m.HandleFunc("POST /v1/registry/exchange-key", s.handleExchangeKey)
	m.HandleFunc("GET /v1/registry/did/{amid}", s.handleDID)

	// Prekeys.
	m.HandleFunc("POST /v1/registry/prekeys", s.handlePrekeyUpload)
	m.HandleFunc("GET /v1/registry/prekeys/{amid}", s.handlePrekeyFetch)
	m.HandleFunc("GET /v1/registry/prekeys/{amid}/count", s.handlePrekeyCount)

	// Certificates, organizations and revocation.
	m.HandleFunc("GET /v1/registry/ca", s.handleCACertificates)
	m.HandleFunc("GET /v1/registry/crl", s.handleCRL)
	m.HandleFunc("POST /v1/org/register", s.handleOrgRegister)
	m.HandleFunc("POST /v1/org/verify", s.handleOrgVerify)
	m.HandleFunc("POST /v1/org/agents", s.handleOrgAgents)
	m.HandleFunc("GET /v1/org/lookup", s.handleOrgLookup)
	m.HandleFunc("POST /v1/registry/revoke", s.handleRevoke)
	m.HandleFunc("GET /v1/registry/revocation", s.handleRevocation)
	m.HandleFunc("POST /v1/registry/revocations/bulk", s.handleRevocationsBulk)
	m.HandleFunc("GET /v1/registry/revocations", s.handleRevocations)

	// OAuth.
	m.HandleFunc("GET /v1/auth/oauth/providers", s.handleOAuthProviders)
	m.HandleFunc("POST /v1/auth/oauth/authorize", s.handleOAuthAuthorize)
	m.HandleFunc("GET /v1/auth/oauth/callback", s.handleOAuthCallback)

	// Reputation.
	m.HandleFunc("POST /v1/registry/reputation", s.handleReputation)
	m.HandleFunc("GET /v1/registry/reputation/score", s.handleReputationScore)
	m.HandleFunc("POST /v1/registry/reputation/feedback", s.handleReputationFeedback)
	m.HandleFunc("POST /v1/registry/reputation/session", s.handleReputationSession)
	m.HandleFunc("GET /v1/registry/reputation/leaderboard", s.handleLeaderboard)
}

// ServeHTTP serves the API: it applies the per-address rate limit, recovers
// from a panic in a handler (answering 500 and logging it), and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			writeError(w, http.StatusInternalServerError, "internal error", "")
		}
	}()
	if !s.perIP.allow(s.clientIP(r), s.now()) {
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, "too many requests", "rate_limited")
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// clientIP is the address a request came from: the peer's IP, or with
// TrustForwardedFor the last X-Forwarded-For entry (the one the proxy
// added).
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustForwardedFor {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// apiError is a failure a handler answers with: a status, the "error" text
// and, optionally, a machine-readable code.
type apiError struct {
	status int
	msg    string
	code   string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...), code: code}
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// writeError answers with {"error": msg, "code": code}.
func writeError(w http.ResponseWriter, status int, msg, code string) {
	writeJSON(w, status, registry.ErrorResponse{Error: msg, Code: code})
}

// writeAPIError answers with e.
func writeAPIError(w http.ResponseWriter, e *apiError) { writeError(w, e.status, e.msg, e.code) }

// fail answers with err: an *apiError as it says, anything else as a 500
// that is logged but not shown to the client.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeAPIError(w, ae)
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, "internal error", "internal_error")
}

// decodeBody reads a JSON request body into v: the body must be declared
// application/json, be at most MaxBodySize and hold one JSON value of the
// expected shape.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(http.StatusBadRequest, "invalid_request", "Content-Type must be application/json, got %q", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than %d bytes", MaxBodySize)
		}
		return errorf(http.StatusBadRequest, "invalid_request", "invalid JSON body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid_request", "invalid JSON body: more than one JSON value")
	}
	return nil
}

// ReplayWindow is how long a request signature is remembered and refused:
// longer than the freshness window of a signed timestamp (5 minutes old, 1
// minute ahead), so no fresh signature is ever accepted twice.
const ReplayWindow = protocol.MaxTimestampAge + protocol.MaxTimestampSkew + time.Minute

// errSignatureReused is the answer to a signature the registry has seen.
var errSignatureReused = errors.New("signature already used (replay)")

// signatureError is the 401 for a signature that failed: the text of
// PROTOCOL.md §8.12 with the cause.
func signatureError(err error) *apiError {
	return errorf(http.StatusUnauthorized, "invalid_signature", "Signature verification failed: %v", err)
}

// verifySigned checks a timestamp signature by pub (over the timestamp as
// sent, fresh) and that it has not been used before, then remembers it.
func (s *Server) verifySigned(ctx context.Context, amid string, pub ed25519.PublicKey, sig registry.Signed) error {
	now := s.now()
	if err := protocol.VerifyTimestamp(pub, sig.Timestamp, sig.Signature, now); err != nil {
		return signatureError(err)
	}
	return s.refuseReplay(ctx, amid, sig.Signature)
}

// refuseReplay remembers a signature that verified and answers 401 if it
// was used before.
func (s *Server) refuseReplay(ctx context.Context, amid, signature string) error {
	now := s.now()
	fresh, err := s.store.RememberSignature(ctx, amid, signature, now.Add(ReplayWindow), now)
	if err != nil {
		return err
	}
	if !fresh {
		return signatureError(errSignatureReused)
	}
	return nil
}

// authenticate loads the agent amid and checks that it signed sig (S3):
// 404 if the agent is unknown, 401 if the signature fails or was used
// before.
func (s *Server) authenticate(ctx context.Context, amid string, sig registry.Signed) (*Agent, error) {
	if err := checkAMID(amid); err != nil {
		return nil, err
	}
	a, pub, err := s.agentWithKey(ctx, amid, errAgentNotFound)
	if err != nil {
		return nil, err
	}
	if err := s.verifySigned(ctx, amid, pub, sig); err != nil {
		return nil, err
	}
	return a, nil
}

// errAgentNotFound is the 404 for an agent the registry does not know.
var errAgentNotFound = errorf(http.StatusNotFound, "agent_not_found", "Agent not found")

// errAgentRevoked is the 403 for a revoked agent (PROTOCOL.md §13 W-7).
var errAgentRevoked = errorf(http.StatusForbidden, "agent_revoked", "Agent has been revoked")

// orNotFound returns notFound in place of ErrNotFound and err otherwise.
func orNotFound(err error, notFound *apiError) error {
	if errors.Is(err, ErrNotFound) {
		return notFound
	}
	return err
}

// checkAMID answers 400 invalid_amid unless amid is a well-formed AMID.
func checkAMID(amid string) error {
	if _, err := protocol.ParseAMID(amid); err != nil {
		return errorf(http.StatusBadRequest, "invalid_amid", "invalid amid: %v", err)
	}
	return nil
}

// queryAMID reads and checks the amid query parameter; a missing one is a
// 400 with code missingCode.
func queryAMID(r *http.Request, missingCode string) (string, error) {
	amid := r.URL.Query().Get("amid")
	if amid == "" {
		return "", errorf(http.StatusBadRequest, missingCode, "amid is required")
	}
	return amid, checkAMID(amid)
}

// intParam reads the optional integer query parameter name: def when it is
// absent, and ok false when it is not a whole number from lo to hi.
func intParam(q url.Values, name string, def, lo, hi int) (n int, ok bool) {
	v := q.Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// queryLimit reads the optional limit query parameter: def when absent,
// capped at most, and a 400 invalid_limit unless it is a positive integer.
func queryLimit(q url.Values, def, most int) (int, error) {
	n, ok := intParam(q, "limit", def, 1, math.MaxInt)
	if !ok {
		return 0, errorf(http.StatusBadRequest, "invalid_limit", "limit must be a positive integer")
	}
	return min(n, most), nil
}

// agent loads the agent amid, answering notFound if it is unknown.
func (s *Server) agent(ctx context.Context, amid string, notFound *apiError) (*Agent, error) {
	a, err := s.store.Agent(ctx, amid)
	if err != nil {
		return nil, orNotFound(err, notFound)
	}
	return a, nil
}

// agentWithKey loads the agent amid and its signing key, answering
// notFound if it is unknown.
func (s *Server) agentWithKey(ctx context.Context, amid string, notFound *apiError) (*Agent, ed25519.PublicKey, error) {
	a, err := s.agent(ctx, amid, notFound)
	if err != nil {
		return nil, nil, err
	}
	pub, err := storedSigningKey(a.AMID, a.SigningPublicKey)
	if err != nil {
		return nil, nil, err
	}
	return a, pub, nil
}

// storedSigningKey parses a signing key the registry stored.
func storedSigningKey(owner, key string) (ed25519.PublicKey, error) {
	pub, err := protocol.ParseSigningPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("stored signing key of %s: %w", owner, err)
	}
	return pub, nil
}

// isRevoked reports whether the agent amid has been revoked.
func (s *Server) isRevoked(ctx context.Context, amid string) (bool, error) {
	_, err := s.store.Revocation(ctx, amid)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// refuseRevoked answers 403 agent_revoked if amid is a revoked agent.
func (s *Server) refuseRevoked(ctx context.Context, amid string) error {
	return s.refuseIfRevoked(ctx, amid, errAgentRevoked)
}

// refuseIfRevoked answers refusal if amid is a revoked agent.
func (s *Server) refuseIfRevoked(ctx context.Context, amid string, refusal *apiError) error {
	revoked, err := s.isRevoked(ctx, amid)
	if err != nil {
		return err
	}
	if revoked {
		return refusal
	}
	return nil
}

package registryserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Tier-1 verification (PROTOCOL.md §8.11): an agent asks to be verified
// with a signed authorize request (W-2: the signature is checked); its
// owner signs in with GitHub or Google in a browser; the provider sends the
// browser back to the callback with a one-time state and an authorization
// code; the registry exchanges the code (with PKCE), reads the account and
// upgrades the agent from anonymous to verified.

// DefaultOAuthCallbackBaseURL is the public origin providers send browsers
// back to when OAuthConfig names none.
const DefaultOAuthCallbackBaseURL = "https://agentmesh.online"

// OAuthCallbackPath is the path of the callback under CallbackBaseURL; it
// is the redirect URI to register with each provider.
const OAuthCallbackPath = "/v1/auth/oauth/callback"

const (
	// oauthStateTTL is how long an authorization state stays usable.
	oauthStateTTL = registry.OAuthStateTTL * time.Second
	// oauthStateLen is the length of a state: padded base64 of 32 bytes.
	oauthStateLen = 44
	// oauthTimeout bounds one conversation with a provider: the code
	// exchange and the user-info read together.
	oauthTimeout = 15 * time.Second
	// maxUserInfoSize bounds a provider's user-info response.
	maxUserInfoSize = 1 << 20
	// maxAuthCodeLen and maxAccessTokenLen bound what the registry passes
	// on to a provider.
	maxAuthCodeLen    = 2048
	maxAccessTokenLen = 4096
	// maxClaimLen bounds each account detail the registry stores.
	maxClaimLen = 256
)

// defaultOAuthHTTPClient talks to the providers when OAuthConfig gives no
// client.
var defaultOAuthHTTPClient = &http.Client{Timeout: 10 * time.Second}

// OAuthConfig configures the OAuth providers of tier-1 verification.
type OAuthConfig struct {
	// CallbackBaseURL is the registry's public origin, such as
	// "https://agentmesh.online": providers send the browser back to
	// CallbackBaseURL + OAuthCallbackPath. Default
	// DefaultOAuthCallbackBaseURL.
	CallbackBaseURL string

	// Providers are the providers agents may verify with. A provider
	// without a client ID and secret is listed but disabled. GitHub and
	// Google are always listed, disabled unless configured here.
	Providers []OAuthProvider

	// HTTPClient makes the requests to the providers. Default: a client
	// with a 10-second timeout.
	HTTPClient *http.Client
}

// OAuthProvider is one OAuth 2.0 provider. Its Name decides how the
// registry reads the account: "github" reads GitHub's user object
// ({"id","login","name","email"}); any other name reads OpenID Connect
// user info ({"sub","email","email_verified","name"}), and "google" also
// requires a verified email address.
type OAuthProvider struct {
	// Name identifies the provider in requests, such as "github"; it is
	// compared in lower case.
	Name string
	// DisplayName is shown to users. Default "GitHub", "Google" or Name.
	DisplayName  string
	ClientID     string
	ClientSecret string
	// AuthURL is the provider's authorization endpoint, TokenURL its token
	// endpoint and UserInfoURL the endpoint that describes the account an
	// access token belongs to.
	AuthURL     string
	TokenURL    string
	UserInfoURL string
	Scopes      []string
}

// Enabled reports whether the provider has a client ID and a secret.
func (p OAuthProvider) Enabled() bool { return p.ClientID != "" && p.ClientSecret != "" }

// GitHubProvider returns GitHub's endpoints and scopes with the given OAuth
// app credentials.
func GitHubProvider(clientID, clientSecret string) OAuthProvider {
	return OAuthProvider{
		Name:         registry.OAuthProviderGitHub,
		DisplayName:  "GitHub",
		ClientID:     clientID,
		ClientSecret: clientSecret,
		AuthURL:      "https://github.com/login/oauth/authorize",
		TokenURL:     "https://github.com/login/oauth/access_token",
		UserInfoURL:  "https://api.github.com/user",
		Scopes:       []string{"read:user", "user:email"},
	}
}

// GoogleProvider returns Google's endpoints and scopes with the given OAuth
// client credentials.
func GoogleProvider(clientID, clientSecret string) OAuthProvider {
	return OAuthProvider{
		Name:         registry.OAuthProviderGoogle,
		DisplayName:  "Google",
		ClientID:     clientID,
		ClientSecret: clientSecret,
		AuthURL:      "https://accounts.google.com/o/oauth2/v2/auth",
		TokenURL:     "https://oauth2.googleapis.com/token",
		UserInfoURL:  "https://openidconnect.googleapis.com/v1/userinfo",
		Scopes:       []string{"openid", "email", "profile"},
	}
}

// OAuthConfigFromEnv reads the OAuth configuration from the environment
// through getenv (such as os.Getenv): GITHUB_CLIENT_ID and
// GITHUB_CLIENT_SECRET, GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET, and
// OAUTH_CALLBACK_BASE_URL.
func OAuthConfigFromEnv(getenv func(string) string) OAuthConfig {
	cfg := OAuthConfig{CallbackBaseURL: strings.TrimSpace(getenv("OAUTH_CALLBACK_BASE_URL"))}
	if id, secret := getenv("GITHUB_CLIENT_ID"), getenv("GITHUB_CLIENT_SECRET"); id != "" || secret != "" {
		cfg.Providers = append(cfg.Providers, GitHubProvider(id, secret))
	}
	if id, secret := getenv("GOOGLE_CLIENT_ID"), getenv("GOOGLE_CLIENT_SECRET"); id != "" || secret != "" {
		cfg.Providers = append(cfg.Providers, GoogleProvider(id, secret))
	}
	return cfg
}

// VerifiedIdentity is who an OAuth provider says an agent's owner is.
// Email, Username and DisplayName are empty when the provider did not say.
type VerifiedIdentity struct {
	Provider    string
	ProviderID  string
	Email       string
	Username    string
	DisplayName string
}

// oauthProviders returns the configured providers with lower-case names,
// the first of each name only, GitHub first, then Google, then the others
// in configuration order: the order access tokens are tried in.
func (s *Server) oauthProviders() []OAuthProvider {
	var known [2]*OAuthProvider
	var others []OAuthProvider
	seen := make(map[string]bool)
	for _, p := range s.cfg.OAuth.Providers {
		p.Name = strings.ToLower(strings.TrimSpace(p.Name))
		if p.Name == "" || seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		switch p.Name {
		case registry.OAuthProviderGitHub:
			known[0] = &p
		case registry.OAuthProviderGoogle:
			known[1] = &p
		default:
			others = append(others, p)
		}
	}
	var out []OAuthProvider
	for _, p := range known {
		if p != nil {
			out = append(out, *p)
		}
	}
	return append(out, others...)
}

// providerDisplayName is what users are shown for the provider name.
func providerDisplayName(name, configured string) string {
	switch {
	case configured != "":
		return configured
	case name == registry.OAuthProviderGitHub:
		return "GitHub"
	case name == registry.OAuthProviderGoogle:
		return "Google"
	}
	return name
}

// oauthProvider finds the enabled provider name (any case): 400 if it is
// unknown or not configured.
func (s *Server) oauthProvider(name string) (OAuthProvider, *apiError) {
	name = strings.ToLower(name)
	for _, p := range s.oauthProviders() {
		if p.Name == name {
			if p.Enabled() {
				return p, nil
			}
			return OAuthProvider{}, errorf(http.StatusBadRequest, "provider_not_configured",
				"%s OAuth not configured", providerDisplayName(p.Name, p.DisplayName))
		}
	}
	if name == registry.OAuthProviderGitHub || name == registry.OAuthProviderGoogle {
		return OAuthProvider{}, errorf(http.StatusBadRequest, "provider_not_configured",
			"%s OAuth not configured", providerDisplayName(name, ""))
	}
	return OAuthProvider{}, errorf(http.StatusBadRequest, "unknown_provider", "Unknown provider: %s", name)
}

// oauthRedirectURL is the callback URL the providers send browsers to.
func (s *Server) oauthRedirectURL() string {
	base := s.cfg.OAuth.CallbackBaseURL
	if base == "" {
		base = DefaultOAuthCallbackBaseURL
	}
	return strings.TrimRight(base, "/") + OAuthCallbackPath
}

// oauth2Config is the x/oauth2 view of provider p.
func (s *Server) oauth2Config(p OAuthProvider) *oauth2.Config {
	style := oauth2.AuthStyleAutoDetect
	if p.Name == registry.OAuthProviderGitHub || p.Name == registry.OAuthProviderGoogle {
		// Both take the client credentials in the form.
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: p.AuthURL, TokenURL: p.TokenURL, AuthStyle: style},
		RedirectURL:  s.oauthRedirectURL(),
		Scopes:       p.Scopes,
	}
}

func (s *Server) oauthHTTPClient() *http.Client {
	if s.cfg.OAuth.HTTPClient != nil {
		return s.cfg.OAuth.HTTPClient
	}
	return defaultOAuthHTTPClient
}

// handleOAuthProviders lists GitHub, Google and any other configured
// provider, each with whether it is enabled.
func (s *Server) handleOAuthProviders(w http.ResponseWriter, r *http.Request) {
	configured := s.oauthProviders()
	out := registry.OAuthProvidersResponse{Providers: []registry.OAuthProviderInfo{}}
	for _, name := range []string{registry.OAuthProviderGitHub, registry.OAuthProviderGoogle} {
		info := registry.OAuthProviderInfo{Name: name, DisplayName: providerDisplayName(name, "")}
		for _, p := range configured {
			if p.Name == name {
				info.Enabled, info.DisplayName = p.Enabled(), providerDisplayName(name, p.DisplayName)
			}
		}
		out.Providers = append(out.Providers, info)
	}
	for _, p := range configured {
		if p.Name != registry.OAuthProviderGitHub && p.Name != registry.OAuthProviderGoogle {
			out.Providers = append(out.Providers, registry.OAuthProviderInfo{
				Name: p.Name, Enabled: p.Enabled(), DisplayName: providerDisplayName(p.Name, p.DisplayName)})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleOAuthAuthorize starts a verification: the agent signs the request,
// and gets the provider's authorization URL with a fresh state bound to it
// and to a PKCE verifier.
func (s *Server) handleOAuthAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req registry.OAuthAuthorizeRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	p, e := s.oauthProvider(req.Provider)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if _, err := s.authenticate(ctx, req.AMID, req.Signed); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.refuseRevoked(ctx, req.AMID); err != nil {
		s.fail(w, r, err)
		return
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		s.fail(w, r, fmt.Errorf("oauth state: %w", err))
		return
	}
	now := s.now()
	st := &OAuthState{
		State:     base64.URLEncoding.EncodeToString(b[:]),
		AMID:      req.AMID,
		Provider:  p.Name,
		Verifier:  oauth2.GenerateVerifier(),
		CreatedAt: now,
		ExpiresAt: now.Add(oauthStateTTL),
	}
	if err := s.store.InsertOAuthState(ctx, st, now); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registry.OAuthAuthorizeResponse{
		AuthorizationURL: s.oauth2Config(p).AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier)),
		State:            st.State,
		ExpiresIn:        registry.OAuthStateTTL,
	})
}

// handleOAuthCallback completes a verification: it consumes the state,
// exchanges the code with the provider, reads the account, records it and
// upgrades and certifies the agent. It answers JSON, browsers included.
func (s *Server) handleOAuthCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	code, state := q.Get("code"), q.Get("state")
	if code == "" || state == "" {
		if perr := q.Get("error"); perr != "" && isOAuthErrorCode(perr) {
			writeError(w, http.StatusBadRequest, "OAuth authorization failed: "+perr, "oauth_denied")
			return
		}
		writeError(w, http.StatusBadRequest, "Missing code or state parameter", "invalid_request")
		return
	}
	if len(code) > maxAuthCodeLen {
		writeError(w, http.StatusBadRequest, "Invalid authorization code", "invalid_request")
		return
	}
	if len(state) != oauthStateLen {
		writeError(w, http.StatusBadRequest, "Invalid OAuth state", "invalid_state")
		return
	}
	st, err := s.store.ConsumeOAuthState(ctx, state)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusBadRequest, "Invalid OAuth state", "invalid_state")
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	if _, err := s.store.DeleteExpiredOAuthStates(ctx, now); err != nil {
		s.log.Warn("expire oauth states", "error", err)
	}
	if now.After(st.ExpiresAt) {
		writeError(w, http.StatusBadRequest, "OAuth state expired", "state_expired")
		return
	}
	p, e := s.oauthProvider(st.Provider)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	agent, pub, err := s.agentWithKey(ctx, st.AMID, errAgentNotFound)
	if err == nil {
		err = s.refuseRevoked(ctx, agent.AMID)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}

	ident, err := s.exchangeCode(ctx, p, code, st.Verifier)
	if err != nil {
		s.log.Info("oauth verification failed", "amid", agent.AMID, "provider", p.Name, "error", err)
		writeError(w, http.StatusUnauthorized, "OAuth verification failed: "+oauthFailureReason(err), "oauth_verification_failed")
		return
	}

	v := &AgentVerification{
		AMID: agent.AMID, Provider: p.Name, ProviderID: ident.ProviderID,
		Email: ident.Email, Username: ident.Username, DisplayName: ident.DisplayName, VerifiedAt: now,
	}
	tier, err := s.store.RecordOAuthVerification(ctx, v)
	if err != nil {
		s.fail(w, r, orNotFound(err, errAgentNotFound))
		return
	}
	var pem string
	var chain []string
	if tier == TierOrganization {
		// The organization's certificate stays the agent's certificate.
		pem, chain, err = s.certificateOf(ctx, agent.AMID)
	} else {
		pem, chain, err = s.issueAgentCertificate(ctx, agent.AMID, pub, TierVerified)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if chain == nil {
		chain = []string{}
	}
	s.log.Info("agent verified", "amid", agent.AMID, "provider", p.Name, "tier", string(tier))
	writeJSON(w, http.StatusOK, registry.OAuthCallbackResponse{
		Success:  true,
		AMID:     agent.AMID,
		Provider: p.Name,
		VerifiedIdentity: &registry.VerifiedIdentityInfo{
			Provider:    p.Name,
			ProviderID:  ident.ProviderID,
			Email:       claimPtr(ident.Email),
			Username:    claimPtr(ident.Username),
			DisplayName: claimPtr(ident.DisplayName),
			VerifiedAt:  protocol.FormatServerTimestamp(now),
		},
		Certificate:      pem,
		CertificateChain: chain,
	})
}

// isOAuthErrorCode reports whether s looks like an OAuth error code (RFC
// 6749 §4.1.2.1), safe to repeat back.
func isOAuthErrorCode(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// claimPtr is s, or nil if it is empty.
func claimPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Causes of a failed verification, shown to the client.
var (
	errCodeExchange     = errors.New("code exchange failed")
	errNoValidToken     = errors.New("the provider issued no valid access token")
	errAccountNotRead   = errors.New("the provider did not confirm the account")
	errEmailNotVerified = errors.New("email address not verified")
)

// oauthFailureReason is what the client is told about a failed verification.
func oauthFailureReason(err error) string {
	for _, e := range []error{errEmailNotVerified, errCodeExchange, errNoValidToken, errAccountNotRead} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return errAccountNotRead.Error()
}

// exchangeCode trades an authorization code and its PKCE verifier for an
// access token at provider p, and reads the account it belongs to.
func (s *Server) exchangeCode(ctx context.Context, p OAuthProvider, code, verifier string) (*VerifiedIdentity, error) {
	ctx, cancel := context.WithTimeout(ctx, oauthTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.oauthHTTPClient())
	tok, err := s.oauth2Config(p).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", errCodeExchange, describeTokenError(err))
	}
	if !tok.Valid() || !validAccessToken(tok.AccessToken) {
		return nil, errNoValidToken
	}
	return s.fetchIdentity(ctx, p, tok.AccessToken)
}

// describeTokenError summarises a failed token request without the
// response body, which could carry a token.
func describeTokenError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Sprintf("token endpoint answered %d %q", status, re.ErrorCode)
	}
	return err.Error()
}

// validAccessToken reports whether token can be sent as a bearer token: 1
// to maxAccessTokenLen visible ASCII characters.
func validAccessToken(token string) bool {
	if token == "" || len(token) > maxAccessTokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		if token[i] < 0x21 || token[i] > 0x7e {
			return false
		}
	}
	return true
}

// fetchIdentity reads the account token belongs to from p's user endpoint.
func (s *Server) fetchIdentity(ctx context.Context, p OAuthProvider, token string) (*VerifiedIdentity, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.UserInfoURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: user endpoint: %v", errAccountNotRead, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "agentmesh-registry")
	resp, err := s.oauthHTTPClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errAccountNotRead, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: user endpoint answered %d", errAccountNotRead, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserInfoSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errAccountNotRead, err)
	}
	if len(body) > maxUserInfoSize {
		return nil, fmt.Errorf("%w: user info larger than %d bytes", errAccountNotRead, maxUserInfoSize)
	}
	return parseIdentity(p.Name, body)
}

// parseIdentity reads a user-info response of provider: GitHub's user
// object, or OpenID Connect user info for every other provider.
func parseIdentity(provider string, body []byte) (*VerifiedIdentity, error) {
	if provider == registry.OAuthProviderGitHub {
		var u struct {
			ID    json.Number `json:"id"`
			Login string      `json:"login"`
			Name  string      `json:"name"`
			Email string      `json:"email"`
		}
		if err := json.Unmarshal(body, &u); err != nil {
			return nil, fmt.Errorf("%w: GitHub user: %v", errAccountNotRead, err)
		}
		id, err := strconv.ParseUint(u.ID.String(), 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("%w: GitHub user has no numeric id", errAccountNotRead)
		}
		login := cleanClaim(u.Login)
		if login == "" {
			return nil, fmt.Errorf("%w: GitHub user has no login", errAccountNotRead)
		}
		return &VerifiedIdentity{
			Provider: provider, ProviderID: strconv.FormatUint(id, 10), Username: login,
			Email: cleanClaim(u.Email), DisplayName: cleanClaim(u.Name),
		}, nil
	}
	var u struct {
		Sub               string `json:"sub"`
		Email             string `json:"email"`
		EmailVerified     *bool  `json:"email_verified"`
		Name              string `json:"name"`
		PreferredUsername string `json:"preferred_username"`
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return nil, fmt.Errorf("%w: user info: %v", errAccountNotRead, err)
	}
	sub := cleanClaim(u.Sub)
	if sub == "" {
		return nil, fmt.Errorf("%w: user info has no subject", errAccountNotRead)
	}
	email := cleanClaim(u.Email)
	verified := u.EmailVerified != nil && *u.EmailVerified && email != ""
	if provider == registry.OAuthProviderGoogle && !verified {
		return nil, errEmailNotVerified
	}
	if !verified {
		email = ""
	}
	return &VerifiedIdentity{
		Provider: provider, ProviderID: sub, Email: email,
		Username: cleanClaim(u.PreferredUsername), DisplayName: cleanClaim(u.Name),
	}, nil
}

// cleanClaim makes an account detail fit to store: no NUL bytes, no
// surrounding space, at most maxClaimLen bytes of valid UTF-8.
func cleanClaim(s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\x00", ""))
	if len(s) > maxClaimLen {
		s = strings.ToValidUTF8(s[:maxClaimLen], "")
	}
	return strings.ToValidUTF8(s, "")
}

// verifyAccessToken checks an OAuth access token against the configured
// providers' user endpoints, as register's verification_token: GitHub
// first, then Google, then the others; the first provider that recognises
// the token names the identity. The token itself is never logged.
func (s *Server) verifyAccessToken(ctx context.Context, token string) (*VerifiedIdentity, error) {
	if !validAccessToken(token) {
		return nil, errors.New("oauth: malformed access token")
	}
	var errs []error
	for _, p := range s.oauthProviders() {
		if !p.Enabled() || p.UserInfoURL == "" {
			continue
		}
		ident, err := s.fetchIdentityWithin(ctx, p, token)
		if err == nil {
			return ident, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
	}
	if len(errs) == 0 {
		return nil, errors.New("oauth: no provider configured")
	}
	return nil, fmt.Errorf("oauth: access token not accepted: %w", errors.Join(errs...))
}

// fetchIdentityWithin is fetchIdentity bounded by oauthTimeout.
func (s *Server) fetchIdentityWithin(ctx context.Context, p OAuthProvider, token string) (*VerifiedIdentity, error) {
	ctx, cancel := context.WithTimeout(ctx, oauthTimeout)
	defer cancel()
	return s.fetchIdentity(ctx, p, token)
}

package registryserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/certs"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// fakeProvider is an OAuth 2.0 provider for tests. Its /authorize endpoint
// issues a one-time code bound to the client, the redirect URI and the PKCE
// challenge (S256); /token checks the client credentials, the code, the
// redirect URI and the code verifier and issues an access token;
// /github/user and /google/userinfo describe the account in GitHub's and
// Google's shapes to a bearer of a live token.
type fakeProvider struct {
	srv          *httptest.Server
	clientID     string
	clientSecret string

	mu            sync.Mutex
	grants        map[string]fakeGrant // by code
	tokens        map[string]time.Time // access token → expiry
	githubUser    map[string]any
	googleUser    map[string]any
	failToken     bool          // the token endpoint answers 500
	tokenTTL      time.Duration // lifetime of the tokens it issues
	tokenRequests int
	userRequests  int
}

type fakeGrant struct {
	clientID, redirectURI, challenge string
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newFakeProvider(t *testing.T) *fakeProvider {
	t.Helper()
	fp := &fakeProvider{
		clientID:     "client-" + randomHex(8),
		clientSecret: "secret-" + randomHex(16),
		grants:       make(map[string]fakeGrant),
		tokens:       make(map[string]time.Time),
		tokenTTL:     time.Hour,
		githubUser: map[string]any{
			"id": 583231, "login": "octocat", "name": "The Octocat", "email": "octocat@example.com",
		},
		googleUser: map[string]any{
			"sub": "110169484474386276334", "email": "owner@example.com", "email_verified": true, "name": "Agent Owner",
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", fp.handleAuthorize)
	mux.HandleFunc("POST /token", fp.handleToken)
	mux.HandleFunc("GET /github/user", func(w http.ResponseWriter, r *http.Request) { fp.handleUser(w, r, true) })
	mux.HandleFunc("GET /google/userinfo", func(w http.ResponseWriter, r *http.Request) { fp.handleUser(w, r, false) })
	fp.srv = httptest.NewServer(mux)
	t.Cleanup(fp.srv.Close)
	return fp
}

func (fp *fakeProvider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("client_id") != fp.clientID ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("state") == "" || q.Get("redirect_uri") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	loc, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	code := randomHex(16)
	fp.mu.Lock()
	fp.grants[code] = fakeGrant{clientID: fp.clientID, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
	fp.mu.Unlock()
	lq := loc.Query()
	lq.Set("code", code)
	lq.Set("state", q.Get("state"))
	loc.RawQuery = lq.Encode()
	http.Redirect(w, r, loc.String(), http.StatusFound)
}

func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (fp *fakeProvider) handleToken(w http.ResponseWriter, r *http.Request) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.tokenRequests++
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(fp.clientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(fp.clientSecret)) != 1 {
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if fp.failToken {
		tokenError(w, http.StatusInternalServerError, "server_error")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	code := r.PostForm.Get("code")
	g, ok := fp.grants[code]
	delete(fp.grants, code) // a code is good for one try
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || g.clientID != id || g.redirectURI != r.PostForm.Get("redirect_uri") ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	tok := "tok-" + randomHex(16)
	fp.tokens[tok] = time.Now().Add(fp.tokenTTL)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok, "token_type": "bearer", "expires_in": int(fp.tokenTTL / time.Second),
	})
}

func (fp *fakeProvider) handleUser(w http.ResponseWriter, r *http.Request, github bool) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	user := fp.googleUser
	if github {
		user = fp.githubUser
	}
	fp.userRequests++
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	exp, known := fp.tokens[tok]
	if !ok || !known || time.Now().After(exp) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		tokenError(w, http.StatusUnauthorized, "invalid_token")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(user)
}

// issueToken makes an access token that expires after ttl (before now if
// ttl is negative).
func (fp *fakeProvider) issueToken(ttl time.Duration) string {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	tok := "tok-" + randomHex(16)
	fp.tokens[tok] = time.Now().Add(ttl)
	return tok
}

func (fp *fakeProvider) set(f func(fp *fakeProvider)) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	f(fp)
}

func (fp *fakeProvider) counts() (tokenRequests, userRequests int) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.tokenRequests, fp.userRequests
}

func (fp *fakeProvider) issuedTokens() []string {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	var out []string
	for tok := range fp.tokens {
		out = append(out, tok)
	}
	return out
}

// github and google are the real providers pointed at the fake one.
func (fp *fakeProvider) github() OAuthProvider {
	p := GitHubProvider(fp.clientID, fp.clientSecret)
	p.AuthURL, p.TokenURL, p.UserInfoURL = fp.srv.URL+"/authorize", fp.srv.URL+"/token", fp.srv.URL+"/github/user"
	return p
}

func (fp *fakeProvider) google() OAuthProvider {
	p := GoogleProvider(fp.clientID, fp.clientSecret)
	p.AuthURL, p.TokenURL, p.UserInfoURL = fp.srv.URL+"/authorize", fp.srv.URL+"/token", fp.srv.URL+"/google/userinfo"
	return p
}

// follow opens an authorization URL as the owner's browser would, after
// tamper (if any) edits its query, and returns the code and state the
// provider redirects to the callback with, and the redirect.
func (fp *fakeProvider) follow(t *testing.T, authURL string, tamper func(url.Values)) (code, state string, loc *url.URL) {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		q := u.Query()
		tamper(q)
		u.RawQuery = q.Encode()
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize at the provider: status %d, want 302", resp.StatusCode)
	}
	loc, err = resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return loc.Query().Get("code"), loc.Query().Get("state"), loc
}

// oauthCallbackBase is where the test registry says it lives.
const oauthCallbackBase = "https://registry.test"

// newGitHubEnv starts a registry on st whose only OAuth provider is a fake
// GitHub.
func newGitHubEnv(t *testing.T, st *Store) (*fakeProvider, *testEnv) {
	t.Helper()
	fp := newFakeProvider(t)
	return fp, newOAuthEnv(t, st, fp.github())
}

func newOAuthEnv(t *testing.T, st *Store, providers ...OAuthProvider) *testEnv {
	t.Helper()
	return newEnv(t, st, func(c *Config) {
		c.OAuth = OAuthConfig{CallbackBaseURL: oauthCallbackBase, Providers: providers}
	})
}

// oauthFlow runs authorize and the owner's visit to the provider for agent
// a, and returns the callback's answer.
func oauthFlow(t *testing.T, e *testEnv, fp *fakeProvider, a *testAgent, provider string) (*registry.OAuthCallbackResponse, error) {
	t.Helper()
	ctx := context.Background()
	auth, err := e.client.OAuthAuthorize(ctx, a.Signer, provider)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	code, state, _ := fp.follow(t, auth.AuthorizationURL, nil)
	return e.client.OAuthCallback(ctx, code, state)
}

// wantTier checks the agent's tier and its verifications in the store.
func wantTier(t *testing.T, st *Store, amid string, tier registry.Tier, verifications int) []AgentVerification {
	t.Helper()
	ctx := context.Background()
	a, err := st.Agent(ctx, amid)
	if err != nil {
		t.Fatal(err)
	}
	if a.Tier != tier {
		t.Errorf("tier = %s, want %s", a.Tier, tier)
	}
	vs, err := st.AgentVerifications(ctx, amid)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != verifications {
		t.Fatalf("verifications = %+v, want %d", vs, verifications)
	}
	return vs
}

func countOAuthStates(t *testing.T, st *Store) int {
	t.Helper()
	var n int
	if err := st.db.QueryRow(`SELECT COUNT(*) FROM oauth_states`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOAuthGitHubFlowVerifiesAgent(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		fp := newFakeProvider(t)
		e := newOAuthEnv(t, st, fp.github(), fp.google())
		a := e.addAgent(TierAnonymous)
		ctx := context.Background()

		auth, err := e.client.OAuthAuthorize(ctx, a.Signer, "GitHub")
		if err != nil {
			t.Fatal(err)
		}
		if raw, err := base64.URLEncoding.DecodeString(auth.State); err != nil || len(raw) != 32 {
			t.Errorf("state %q: want padded URL-safe base64 of 32 bytes (%v)", auth.State, err)
		}
		if auth.ExpiresIn != 600 {
			t.Errorf("expires_in = %d, want 600", auth.ExpiresIn)
		}
		u, err := url.Parse(auth.AuthorizationURL)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Scheme + "://" + u.Host + u.Path; got != fp.srv.URL+"/authorize" {
			t.Errorf("authorization endpoint = %s", got)
		}
		redirect := oauthCallbackBase + "/v1/auth/oauth/callback"
		q := u.Query()
		for k, want := range map[string]string{
			"client_id": fp.clientID, "redirect_uri": redirect, "state": auth.State,
			"scope": "read:user user:email", "response_type": "code", "code_challenge_method": "S256",
		} {
			if q.Get(k) != want {
				t.Errorf("authorization URL %s = %q, want %q", k, q.Get(k), want)
			}
		}
		if len(q.Get("code_challenge")) != 43 {
			t.Errorf("code_challenge = %q, want S256 of the verifier", q.Get("code_challenge"))
		}
		if q.Has("client_secret") || strings.Contains(auth.AuthorizationURL, fp.clientSecret) {
			t.Error("the authorization URL carries the client secret")
		}

		code, state, loc := fp.follow(t, auth.AuthorizationURL, nil)
		if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect || state != auth.State {
			t.Fatalf("provider redirected to %s", loc)
		}
		cb, err := e.client.OAuthCallback(ctx, code, state)
		if err != nil {
			t.Fatal(err)
		}
		at := e.clock.Now()
		want := registry.OAuthCallbackResponse{
			Success: true, AMID: a.AMID, Provider: "github",
			VerifiedIdentity: &registry.VerifiedIdentityInfo{
				Provider: "github", ProviderID: "583231",
				Email: new("octocat@example.com"), Username: new("octocat"), DisplayName: new("The Octocat"),
				VerifiedAt: at.UTC().Format("2006-01-02T15:04:05.000Z"),
			},
		}
		if at.Nanosecond() == 0 {
			want.VerifiedIdentity.VerifiedAt = at.UTC().Format("2006-01-02T15:04:05Z")
		}
		gotID, wantID := *cb.VerifiedIdentity, *want.VerifiedIdentity
		if cb.Success != want.Success || cb.AMID != want.AMID || cb.Provider != want.Provider || cb.Error != nil ||
			gotID.Provider != wantID.Provider || gotID.ProviderID != wantID.ProviderID || *gotID.Email != *wantID.Email ||
			*gotID.Username != *wantID.Username || *gotID.DisplayName != *wantID.DisplayName || gotID.VerifiedAt != wantID.VerifiedAt {
			t.Errorf("callback = %+v identity %+v, want %+v identity %+v", cb, gotID, want, wantID)
		}
		// The answer carries the agent's new certificate: a verified-tier
		// certificate of its key from the registry's root, now current.
		ders, err := certs.DecodeChain(cb.CertificateChain)
		if err != nil {
			t.Fatal(err)
		}
		ver, err := certs.VerifyChain(ders, e.server.ca.Roots(at), at, nil)
		if err != nil || string(ver.AMID) != a.AMID || ver.Tier != certs.TierVerified {
			t.Fatalf("certificate chain: %+v, %v", ver, err)
		}
		if want := string(certs.EncodePEM(ders[:1])); cb.Certificate != want {
			t.Errorf("certificate = %q, want the chain's leaf %q", cb.Certificate, want)
		}
		pem, chain, err := e.server.certificateOf(ctx, a.AMID)
		if err != nil || pem != cb.Certificate || !slices.Equal(chain, cb.CertificateChain) {
			t.Errorf("certificate in the answer differs from the agent's current one (%v)", err)
		}

		vs := wantTier(t, st, a.AMID, TierVerified, 1)
		wantV := AgentVerification{AMID: a.AMID, Provider: "github", ProviderID: "583231",
			Email: "octocat@example.com", Username: "octocat", DisplayName: "The Octocat", VerifiedAt: at}
		if !vs[0].VerifiedAt.Equal(wantV.VerifiedAt) {
			t.Errorf("verified_at = %v, want %v", vs[0].VerifiedAt, at)
		}
		vs[0].VerifiedAt = at
		if vs[0] != wantV {
			t.Errorf("stored verification = %+v, want %+v", vs[0], wantV)
		}

		// The state is good for one callback only, and the second never
		// reaches the provider.
		_, err = e.client.OAuthCallback(ctx, code, state)
		wantAPIError(t, err, http.StatusBadRequest, "invalid_state")
		if tokens, _ := fp.counts(); tokens != 1 {
			t.Errorf("token requests = %d, want 1", tokens)
		}
		if n := countOAuthStates(t, st); n != 0 {
			t.Errorf("%d states left, want 0", n)
		}
	})
}

func TestOAuthGoogleFlowFromBrowser(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		fp := newFakeProvider(t)
		e := newOAuthEnv(t, st, fp.google())
		a := e.addAgent(TierAnonymous)
		auth, err := e.client.OAuthAuthorize(context.Background(), a.Signer, "google")
		if err != nil {
			t.Fatal(err)
		}
		if got := mustQuery(t, auth.AuthorizationURL).Get("scope"); got != "openid email profile" {
			t.Errorf("scope = %q", got)
		}
		_, _, loc := fp.follow(t, auth.AuthorizationURL, nil)

		// The browser lands on the callback: it gets JSON too.
		base, _ := url.Parse(e.http.URL)
		loc.Scheme, loc.Host = base.Scheme, base.Host
		req, _ := http.NewRequest(http.MethodGet, loc.String(), nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var cb registry.OAuthCallbackResponse
		if err := json.NewDecoder(resp.Body).Decode(&cb); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("callback: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		id := cb.VerifiedIdentity
		if !cb.Success || cb.Provider != "google" || id == nil || id.ProviderID != "110169484474386276334" ||
			id.Email == nil || *id.Email != "owner@example.com" || id.Username != nil ||
			id.DisplayName == nil || *id.DisplayName != "Agent Owner" || cb.CertificateChain == nil {
			t.Errorf("callback = %+v, identity %+v", cb, id)
		}
		vs := wantTier(t, st, a.AMID, TierVerified, 1)
		if vs[0].Provider != "google" || vs[0].Email != "owner@example.com" || vs[0].Username != "" {
			t.Errorf("stored verification = %+v", vs[0])
		}
	})
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestOAuthOtherProviderAndOrganizationAgent(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		fp := newFakeProvider(t)
		fp.set(func(fp *fakeProvider) {
			fp.googleUser["email_verified"] = false
			fp.googleUser["preferred_username"] = "owner"
		})
		other := fp.google()
		other.Name, other.DisplayName, other.Scopes = "Example", "Example ID", []string{"openid"}
		e := newOAuthEnv(t, st, fp.github(), other)

		// A provider other than Google accepts an unverified email but
		// does not keep it.
		a := e.addAgent(TierAnonymous)
		cb, err := oauthFlow(t, e, fp, a, "example")
		if err != nil {
			t.Fatal(err)
		}
		if cb.Provider != "example" || cb.VerifiedIdentity.Email != nil || *cb.VerifiedIdentity.Username != "owner" {
			t.Errorf("callback = %+v identity %+v", cb, cb.VerifiedIdentity)
		}
		wantTier(t, st, a.AMID, TierVerified, 1)

		// An organization agent keeps its tier, and its verification is
		// recorded.
		org := e.addAgent(TierOrganization)
		if _, err := oauthFlow(t, e, fp, org, "github"); err != nil {
			t.Fatal(err)
		}
		vs := wantTier(t, st, org.AMID, TierOrganization, 1)
		if vs[0].Provider != "github" || vs[0].ProviderID != "583231" {
			t.Errorf("stored verification = %+v", vs[0])
		}
		// Verifying with a second provider adds a record; with the first
		// again replaces it.
		fp.set(func(fp *fakeProvider) { fp.githubUser["login"] = "octocat2" })
		if _, err := oauthFlow(t, e, fp, org, "example"); err != nil {
			t.Fatal(err)
		}
		if _, err := oauthFlow(t, e, fp, org, "github"); err != nil {
			t.Fatal(err)
		}
		vs = wantTier(t, st, org.AMID, TierOrganization, 2)
		if vs[0].Provider != "example" || vs[1].Provider != "github" || vs[1].Username != "octocat2" {
			t.Errorf("stored verifications = %+v", vs)
		}
	})
}

func TestOAuthVerificationFailuresLeaveAgentAnonymous(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		var logs logtest.Buffer
		var secrets []string
		ctx := context.Background()
		otherVerifier := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
		otherSum := sha256.Sum256([]byte(otherVerifier))

		for _, tc := range []struct {
			name     string
			provider string
			setup    func(fp *fakeProvider)
			tamper   func(url.Values)
			code     string // sent instead of the provider's
			reason   string
		}{
			{name: "wrong code", provider: "github", code: "not-the-code", reason: "code exchange failed"},
			{name: "wrong PKCE verifier", provider: "github", reason: "code exchange failed",
				tamper: func(q url.Values) { q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(otherSum[:])) }},
			{name: "token endpoint error", provider: "github", reason: "code exchange failed",
				setup: func(fp *fakeProvider) { fp.failToken = true }},
			{name: "wrong client secret", provider: "google", reason: "code exchange failed",
				setup: func(fp *fakeProvider) { fp.clientSecret = "rotated" }},
			{name: "expired access token", provider: "github", reason: "no valid access token",
				setup: func(fp *fakeProvider) { fp.tokenTTL = -time.Hour }},
			{name: "account without id", provider: "github", reason: "did not confirm the account",
				setup: func(fp *fakeProvider) { fp.githubUser = map[string]any{"login": "no-id"} }},
			{name: "google email not verified", provider: "google", reason: "email address not verified",
				setup: func(fp *fakeProvider) { fp.googleUser["email_verified"] = false }},
			{name: "google email_verified missing", provider: "google", reason: "email address not verified",
				setup: func(fp *fakeProvider) { delete(fp.googleUser, "email_verified") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				fp := newFakeProvider(t)
				e := newEnv(t, st, func(c *Config) {
					c.OAuth = OAuthConfig{CallbackBaseURL: oauthCallbackBase, Providers: []OAuthProvider{fp.github(), fp.google()}}
					c.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &logs})
				})
				secrets = append(secrets, fp.clientSecret)
				if tc.setup != nil {
					fp.set(tc.setup)
				}
				a := e.addAgent(TierAnonymous)
				auth, err := e.client.OAuthAuthorize(ctx, a.Signer, tc.provider)
				if err != nil {
					t.Fatal(err)
				}
				code, state, _ := fp.follow(t, auth.AuthorizationURL, tc.tamper)
				if tc.code != "" {
					code = tc.code
				}
				_, err = e.client.OAuthCallback(ctx, code, state)
				ae := wantAPIError(t, err, http.StatusUnauthorized, "oauth_verification_failed")
				if !strings.Contains(ae.Message, tc.reason) {
					t.Errorf("message %q, want it to say %q", ae.Message, tc.reason)
				}
				wantTier(t, st, a.AMID, TierAnonymous, 0)
				secrets = append(secrets, fp.issuedTokens()...)
				// The state is spent even though verification failed.
				_, err = e.client.OAuthCallback(ctx, code, state)
				wantAPIError(t, err, http.StatusBadRequest, "invalid_state")
			})
		}
		// Neither access tokens nor client secrets reach the logs.
		out := logs.String()
		if strings.Count(out, "oauth verification failed") != 8 {
			t.Fatalf("failures were not all logged: %s", out)
		}
		for _, secret := range secrets {
			if strings.Contains(out, secret) {
				t.Errorf("logs contain a secret: %s", out)
			}
		}
	})
}

func TestOAuthStateExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		fp, e := newGitHubEnv(t, st)
		ctx := context.Background()

		// Ten minutes after authorize the state still works.
		a := e.addAgent(TierAnonymous)
		auth, err := e.client.OAuthAuthorize(ctx, a.Signer, "github")
		if err != nil {
			t.Fatal(err)
		}
		code, state, _ := fp.follow(t, auth.AuthorizationURL, nil)
		e.clock.Advance(10 * time.Minute)
		if _, err := e.client.OAuthCallback(ctx, code, state); err != nil {
			t.Fatalf("callback at 10 minutes: %v", err)
		}

		// Eleven minutes after, it has expired.
		b := e.addAgent(TierAnonymous)
		status, er := e.postRaw("/v1/auth/oauth/authorize",
			registry.OAuthAuthorizeRequest{AMID: b.AMID, Provider: "github", Signed: e.sign(b)})
		if status != http.StatusOK {
			t.Fatalf("authorize: %d %+v", status, er)
		}
		stateB := countOAuthStates(t, st)
		if stateB != 1 {
			t.Fatalf("%d states stored, want 1", stateB)
		}
		var pending string
		st.db.QueryRow(`SELECT state FROM oauth_states`).Scan(&pending)
		tokensBefore, _ := fp.counts()
		e.clock.Advance(11 * time.Minute)
		_, err = e.client.OAuthCallback(ctx, "any-code", pending)
		ae := wantAPIError(t, err, http.StatusBadRequest, "state_expired")
		if ae.Message != "OAuth state expired" {
			t.Errorf("message = %q", ae.Message)
		}
		if tokens, _ := fp.counts(); tokens != tokensBefore {
			t.Error("an expired state reached the provider")
		}
		_, err = e.client.OAuthCallback(ctx, "any-code", pending)
		wantAPIError(t, err, http.StatusBadRequest, "invalid_state")
		wantTier(t, st, b.AMID, TierAnonymous, 0)

		// Expired states are deleted when a new authorization starts.
		c := e.addAgent(TierAnonymous)
		for range 2 {
			if status, er := e.postRaw("/v1/auth/oauth/authorize",
				registry.OAuthAuthorizeRequest{AMID: c.AMID, Provider: "github", Signed: e.sign(c)}); status != http.StatusOK {
				t.Fatalf("authorize: %d %+v", status, er)
			}
			e.clock.Advance(time.Millisecond)
		}
		e.clock.Advance(11 * time.Minute)
		if status, er := e.postRaw("/v1/auth/oauth/authorize",
			registry.OAuthAuthorizeRequest{AMID: c.AMID, Provider: "github", Signed: e.sign(c)}); status != http.StatusOK {
			t.Fatalf("authorize: %d %+v", status, er)
		}
		if n := countOAuthStates(t, st); n != 1 {
			t.Errorf("%d states stored, want 1: the expired ones are deleted", n)
		}
	})
}

func TestOAuthAuthorizeRefusals(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		fp := newFakeProvider(t)
		disabled := fp.github()
		disabled.Name, disabled.DisplayName, disabled.ClientSecret = "acme", "Acme", ""
		e := newOAuthEnv(t, st, fp.github(), disabled)
		a := e.addAgent(TierAnonymous)
		const path = "/v1/auth/oauth/authorize"
		req := func(provider string) registry.OAuthAuthorizeRequest {
			return registry.OAuthAuthorizeRequest{AMID: a.AMID, Provider: provider, Signed: e.sign(a)}
		}

		for _, tc := range []struct {
			provider, code, msg string
		}{
			{"myspace", "unknown_provider", "Unknown provider: myspace"},
			{"", "unknown_provider", "Unknown provider: "},
			{"Google", "provider_not_configured", "Google OAuth not configured"},
			{"acme", "provider_not_configured", "Acme OAuth not configured"},
		} {
			status, er := e.postRaw(path, req(tc.provider))
			if status != http.StatusBadRequest || er.Code != tc.code || er.Error != tc.msg {
				t.Errorf("provider %q: %d %+v, want 400 %s %q", tc.provider, status, er, tc.code, tc.msg)
			}
		}

		// A signature by another key.
		forger := newTestAgent(t)
		forged := req("github")
		forged.Signed = e.sign(forger)
		if status, er := e.postRaw(path, forged); status != http.StatusUnauthorized || er.Code != "invalid_signature" {
			t.Errorf("forged signature: %d %+v", status, er)
		}
		// A stale signature.
		stale := req("github")
		e.clock.Advance(10 * time.Minute)
		if status, er := e.postRaw(path, stale); status != http.StatusUnauthorized {
			t.Errorf("stale signature: %d %+v", status, er)
		}
		// A replayed one.
		good := req("github")
		if status, er := e.postRaw(path, good); status != http.StatusOK {
			t.Fatalf("authorize: %d %+v", status, er)
		}
		if status, er := e.postRaw(path, good); status != http.StatusUnauthorized || er.Code != "invalid_signature" {
			t.Errorf("replayed signature: %d %+v", status, er)
		}
		// Someone else's AMID with a valid signature of their own.
		stranger := newTestAgent(t)
		if status, er := e.postRaw(path, registry.OAuthAuthorizeRequest{
			AMID: stranger.AMID, Provider: "github", Signed: e.sign(stranger)}); status != http.StatusNotFound || er.Code != "agent_not_found" {
			t.Errorf("unknown agent: %d %+v", status, er)
		}
		if status, er := e.postRaw(path, registry.OAuthAuthorizeRequest{
			AMID: "not an amid", Provider: "github", Signed: e.sign(a)}); status != http.StatusBadRequest {
			t.Errorf("bad amid: %d %+v", status, er)
		}
		for _, body := range [][]byte{[]byte(`{`), []byte(`[]`), []byte(`{"amid":1}`), []byte(`{} {}`)} {
			if status, er := e.postRaw(path, body); status != http.StatusBadRequest || er.Code != "invalid_request" {
				t.Errorf("body %s: %d %+v", body, status, er)
			}
		}
		resp, err := http.Post(e.http.URL+path, "text/plain", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("text/plain body: %d", resp.StatusCode)
		}
		// Only the one good request left a state.
		if n := countOAuthStates(t, st); n != 1 {
			t.Errorf("%d states stored, want 1", n)
		}
	})
}

func TestOAuthCallbackRefusals(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		fp, e := newGitHubEnv(t, st)
		unknownState := base64.URLEncoding.EncodeToString(make([]byte, 32))
		for _, tc := range []struct {
			query, code string
		}{
			{"", "invalid_request"},
			{"?code=abc", "invalid_request"},
			{"?state=" + url.QueryEscape(unknownState), "invalid_request"},
			{"?error=access_denied&state=" + url.QueryEscape(unknownState), "oauth_denied"},
			{"?error=%3Cscript%3E", "invalid_request"},
			{"?code=abc&state=" + url.QueryEscape(unknownState), "invalid_state"},
			{"?code=abc&state=short", "invalid_state"},
			{"?code=" + strings.Repeat("c", 3000) + "&state=" + url.QueryEscape(unknownState), "invalid_request"},
			{"?code=abc&state=%zz", "invalid_request"},
		} {
			status, er := e.getStatus("/v1/auth/oauth/callback" + tc.query)
			if status != http.StatusBadRequest || er.Code != tc.code {
				t.Errorf("callback%s: %d %+v, want 400 %s", tc.query, status, er, tc.code)
			}
		}
		if tokens, users := fp.counts(); tokens+users != 0 {
			t.Errorf("a refused callback reached the provider")
		}
		// POST is not the callback.
		if status, _ := e.postRaw("/v1/auth/oauth/callback", map[string]string{}); status != http.StatusMethodNotAllowed {
			t.Errorf("POST callback: %d", status)
		}
	})
}

func TestOAuthRevokedAgentIsNotVerified(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		fp, e := newGitHubEnv(t, st)
		ctx := context.Background()
		revoke := func(amid string) {
			t.Helper()
			if _, err := st.db.ExecContext(ctx, `INSERT INTO revocations (id, amid, reason, revoked_by, revoked_at)
				VALUES ($1, $2, $3, $4, $5)`, "rev-"+amid, amid, "key_compromise", amid, millis(e.clock.Now())); err != nil {
				t.Fatal(err)
			}
		}

		// A revoked agent cannot start a verification…
		a := e.addAgent(TierAnonymous)
		revoke(a.AMID)
		_, err := e.client.OAuthAuthorize(ctx, a.Signer, "github")
		wantAPIError(t, err, http.StatusForbidden, "agent_revoked")

		// …nor finish one it started before it was revoked.
		b := e.addAgent(TierAnonymous)
		auth, err := e.client.OAuthAuthorize(ctx, b.Signer, "github")
		if err != nil {
			t.Fatal(err)
		}
		code, state, _ := fp.follow(t, auth.AuthorizationURL, nil)
		revoke(b.AMID)
		_, err = e.client.OAuthCallback(ctx, code, state)
		wantAPIError(t, err, http.StatusForbidden, "agent_revoked")
		wantTier(t, st, a.AMID, TierAnonymous, 0)
		wantTier(t, st, b.AMID, TierAnonymous, 0)
		if tokens, _ := fp.counts(); tokens != 0 {
			t.Errorf("a revoked agent's code reached the provider")
		}
	})
}

func TestOAuthStateConsumedOnceUnderRace(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		fp, e := newGitHubEnv(t, st)
		a := e.addAgent(TierAnonymous)
		auth, err := e.client.OAuthAuthorize(context.Background(), a.Signer, "github")
		if err != nil {
			t.Fatal(err)
		}
		code, state, _ := fp.follow(t, auth.AuthorizationURL, nil)
		const n = 8
		errs := make(chan error, n)
		var start sync.WaitGroup
		start.Add(1)
		for range n {
			go func() {
				start.Wait()
				_, err := e.client.OAuthCallback(context.Background(), code, state)
				errs <- err
			}()
		}
		start.Done()
		ok := 0
		for range n {
			err := <-errs
			if err == nil {
				ok++
			} else if !registry.IsStatus(err, http.StatusBadRequest) {
				t.Errorf("callback: %v", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d callbacks succeeded, want exactly 1", ok)
		}
		if tokens, _ := fp.counts(); tokens != 1 {
			t.Errorf("token requests = %d, want 1", tokens)
		}
		wantTier(t, st, a.AMID, TierVerified, 1)
	})
}

func TestOAuthProvidersList(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		ctx := context.Background()
		e := newEnv(t, st)
		got, err := e.client.OAuthProviders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []registry.OAuthProviderInfo{
			{Name: "github", Enabled: false, DisplayName: "GitHub"},
			{Name: "google", Enabled: false, DisplayName: "Google"},
		}
		if !slices.Equal(got.Providers, want) {
			t.Errorf("unconfigured: %+v, want %+v", got.Providers, want)
		}

		e = newEnv(t, st, func(c *Config) {
			c.OAuth.Providers = []OAuthProvider{
				{Name: "GitLab", DisplayName: "GitLab", ClientID: "id", ClientSecret: "secret"},
				GoogleProvider("id", ""),
				GitHubProvider("id", "secret"),
				{Name: "gitlab", DisplayName: "Shadowed", ClientID: "id"},
				{Name: "forgejo", ClientID: "id"},
			}
		})
		got, err = e.client.OAuthProviders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want = []registry.OAuthProviderInfo{
			{Name: "github", Enabled: true, DisplayName: "GitHub"},
			{Name: "google", Enabled: false, DisplayName: "Google"},
			{Name: "gitlab", Enabled: true, DisplayName: "GitLab"},
			{Name: "forgejo", Enabled: false, DisplayName: "forgejo"},
		}
		if !slices.Equal(got.Providers, want) {
			t.Errorf("configured: %+v, want %+v", got.Providers, want)
		}
	})
}

func TestOAuthAuthorizeRealEndpoints(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st, func(c *Config) {
			c.OAuth = OAuthConfigFromEnv(func(k string) string {
				return map[string]string{
					"GITHUB_CLIENT_ID": "gh-id", "GITHUB_CLIENT_SECRET": "gh-secret",
					"GOOGLE_CLIENT_ID": "g-id", "GOOGLE_CLIENT_SECRET": "g-secret",
				}[k]
			})
		})
		a := e.addAgent(TierAnonymous)
		for provider, want := range map[string]string{
			"github": "https://github.com/login/oauth/authorize",
			"google": "https://accounts.google.com/o/oauth2/v2/auth",
		} {
			auth, err := e.client.OAuthAuthorize(context.Background(), a.Signer, provider)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(auth.AuthorizationURL)
			q := u.Query()
			if got := u.Scheme + "://" + u.Host + u.Path; got != want ||
				q.Get("redirect_uri") != "https://agentmesh.online/v1/auth/oauth/callback" || q.Get("state") != auth.State {
				t.Errorf("%s: authorization URL %s", provider, auth.AuthorizationURL)
			}
		}
	})
}

func TestOAuthConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"GITHUB_CLIENT_ID": "gh-id", "GITHUB_CLIENT_SECRET": "gh-secret",
		"OAUTH_CALLBACK_BASE_URL": "https://registry.example.org",
	}
	cfg := OAuthConfigFromEnv(func(k string) string { return env[k] })
	if cfg.CallbackBaseURL != "https://registry.example.org" || len(cfg.Providers) != 1 {
		t.Fatalf("config = %+v", cfg)
	}
	gh := cfg.Providers[0]
	if gh.Name != "github" || gh.ClientID != "gh-id" || gh.ClientSecret != "gh-secret" || !gh.Enabled() ||
		gh.TokenURL != "https://github.com/login/oauth/access_token" || gh.UserInfoURL != "https://api.github.com/user" ||
		!slices.Equal(gh.Scopes, []string{"read:user", "user:email"}) {
		t.Errorf("github = %+v", gh)
	}
	env = map[string]string{"GOOGLE_CLIENT_ID": "g-id"}
	cfg = OAuthConfigFromEnv(func(k string) string { return env[k] })
	if cfg.CallbackBaseURL != "" || len(cfg.Providers) != 1 || cfg.Providers[0].Enabled() {
		t.Fatalf("config = %+v", cfg)
	}
	g := cfg.Providers[0]
	if g.Name != "google" || g.TokenURL != "https://oauth2.googleapis.com/token" ||
		g.UserInfoURL != "https://openidconnect.googleapis.com/v1/userinfo" ||
		!slices.Equal(g.Scopes, []string{"openid", "email", "profile"}) {
		t.Errorf("google = %+v", g)
	}
	if cfg := OAuthConfigFromEnv(func(string) string { return "" }); len(cfg.Providers) != 0 {
		t.Errorf("empty environment: %+v", cfg)
	}
}

func TestVerifyAccessToken(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		ctx := context.Background()
		fp := newFakeProvider(t)
		// GitHub is tried first whatever the configuration order.
		e := newOAuthEnv(t, st, fp.google(), fp.github())
		tok := fp.issueToken(time.Hour)
		id, err := e.server.verifyAccessToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		want := VerifiedIdentity{Provider: "github", ProviderID: "583231", Email: "octocat@example.com",
			Username: "octocat", DisplayName: "The Octocat"}
		if *id != want {
			t.Errorf("identity = %+v, want %+v", id, want)
		}

		expired := fp.issueToken(-time.Hour)
		for _, bad := range []string{expired, "tok-unknown"} {
			if id, err := e.server.verifyAccessToken(ctx, bad); err == nil {
				t.Errorf("token %q accepted as %+v", bad, id)
			} else if strings.Contains(err.Error(), bad) {
				t.Errorf("the error shows the token: %v", err)
			}
		}
		_, before := fp.counts()
		for _, bad := range []string{"", "two words", "new\nline", strings.Repeat("t", maxAccessTokenLen+1)} {
			if _, err := e.server.verifyAccessToken(ctx, bad); err == nil {
				t.Errorf("malformed token %q accepted", bad)
			}
		}
		if _, after := fp.counts(); after != before {
			t.Error("a malformed token was sent to a provider")
		}

		// With Google alone, Google names the identity, and only with a
		// verified email.
		e = newOAuthEnv(t, st, fp.google())
		id, err = e.server.verifyAccessToken(ctx, tok)
		if err != nil || id.Provider != "google" || id.ProviderID != "110169484474386276334" || id.Email != "owner@example.com" {
			t.Errorf("google identity = %+v, %v", id, err)
		}
		fp.set(func(fp *fakeProvider) { fp.googleUser["email_verified"] = false })
		if id, err := e.server.verifyAccessToken(ctx, tok); err == nil {
			t.Errorf("unverified Google email accepted as %+v", id)
		}

		// Without providers nothing is accepted.
		e = newEnv(t, st)
		if _, err := e.server.verifyAccessToken(ctx, tok); err == nil {
			t.Error("token accepted without providers")
		}
	})
}

func TestParseIdentity(t *testing.T) {
	for _, tc := range []struct {
		provider, body string
		want           *VerifiedIdentity
	}{
		{"github", `{"id":1,"login":"a","name":null,"email":null}`, &VerifiedIdentity{Provider: "github", ProviderID: "1", Username: "a"}},
		{"github", `{"id":"42","login":" b "}`, &VerifiedIdentity{Provider: "github", ProviderID: "42", Username: "b"}},
		{"github", `{"id":0,"login":"a"}`, nil},
		{"github", `{"id":-1,"login":"a"}`, nil},
		{"github", `{"id":1.5,"login":"a"}`, nil},
		{"github", `{"id":1,"login":""}`, nil},
		{"github", `{"id":1,"login":"a\u0000"}`, &VerifiedIdentity{Provider: "github", ProviderID: "1", Username: "a"}},
		{"github", `[]`, nil},
		{"google", `{"sub":"s","email":"e@x","email_verified":true}`, &VerifiedIdentity{Provider: "google", ProviderID: "s", Email: "e@x"}},
		{"google", `{"sub":"s","email":"e@x","email_verified":"true"}`, nil},
		{"google", `{"sub":"s","email_verified":true}`, nil},
		{"google", `{"email":"e@x","email_verified":true}`, nil},
		{"other", `{"sub":"s","email":"e@x"}`, &VerifiedIdentity{Provider: "other", ProviderID: "s"}},
	} {
		got, err := parseIdentity(tc.provider, []byte(tc.body))
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s %s: accepted as %+v", tc.provider, tc.body, got)
			}
			continue
		}
		if err != nil || *got != *tc.want {
			t.Errorf("%s %s: %+v, %v, want %+v", tc.provider, tc.body, got, err, tc.want)
		}
	}
	long := strings.Repeat("é", maxClaimLen)
	if got := cleanClaim(long); len(got) > maxClaimLen || !strings.HasPrefix(long, got) || got == "" {
		t.Errorf("cleanClaim cut %d bytes to %d", len(long), len(got))
	}
}

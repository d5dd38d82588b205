package registryserver

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// oauthFuzzNow is the fixed clock of the fuzzed server, so that committed
// seeds carry signatures it finds fresh.
var oauthFuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// oauthFuzzKey is the signing key of the one agent the fuzzed server knows.
var oauthFuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// oauthFuzzState is a pending authorization state of that agent.
var oauthFuzzState = base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))

// newOAuthFuzzServer returns a server over a SQLite store with GitHub
// configured at an address that refuses connections, Google not
// configured, one agent and one pending state.
func newOAuthFuzzServer(f *testing.F) *Server {
	f.Helper()
	st := newSQLiteStore(f)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	gh := GitHubProvider("fuzz-id", "fuzz-secret")
	gh.AuthURL, gh.TokenURL, gh.UserInfoURL = deadURL+"/authorize", deadURL+"/token", deadURL+"/user"
	srv, err := New(Config{
		Store:             st,
		Now:               func() time.Time { return oauthFuzzNow },
		Logger:            hclog.NewNullLogger(),
		OAuth:             OAuthConfig{Providers: []OAuthProvider{gh, GoogleProvider("", "")}},
		RequestsPerMinute: 1 << 30,
		RequestBurst:      1 << 30,
	})
	if err != nil {
		f.Fatal(err)
	}
	pub := oauthFuzzKey.Public().(ed25519.PublicKey)
	amid := string(protocol.DeriveAMID(pub))
	xk, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if err := st.InsertAgent(ctx, &Agent{
		AMID: amid, SigningPublicKey: protocol.EncodeSigningPublicKey(pub),
		ExchangePublicKey: protocol.EncodeExchangePublicKey(xk.PublicKey()), Tier: TierAnonymous,
		RelayEndpoint: registry.DefaultRelayEndpoint, Status: "offline", ReputationScore: 0.5,
		LastSeen: oauthFuzzNow, CreatedAt: oauthFuzzNow, UpdatedAt: oauthFuzzNow,
	}); err != nil {
		f.Fatal(err)
	}
	if err := st.InsertOAuthState(ctx, &OAuthState{
		State: oauthFuzzState, AMID: amid, Provider: "github", Verifier: strings.Repeat("v", 43),
		CreatedAt: oauthFuzzNow, ExpiresAt: oauthFuzzNow.Add(oauthStateTTL),
	}, oauthFuzzNow); err != nil {
		f.Fatal(err)
	}
	return srv
}

// oauthFuzzAuthorizeBody is a correctly signed authorize request of the
// fuzzed server's agent.
func oauthFuzzAuthorizeBody(provider string) []byte {
	ts := protocol.FormatSigningTimestamp(oauthFuzzNow)
	b, _ := json.Marshal(registry.OAuthAuthorizeRequest{
		AMID:     string(protocol.DeriveAMID(oauthFuzzKey.Public().(ed25519.PublicKey))),
		Provider: provider,
		Signed:   registry.Signed{Timestamp: ts, Signature: protocol.SignTimestamp(oauthFuzzKey, ts)},
	})
	return b
}

// checkOAuthAnswer fails on a 5xx and on an answer that is not the JSON
// the endpoint documents.
func checkOAuthAnswer(t *testing.T, rec *httptest.ResponseRecorder, ok any) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), ok); err != nil {
			t.Fatalf("200 with %s: %v", rec.Body, err)
		}
		return
	}
	var er registry.ErrorResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || er.Error == "" || er.Code == "" {
		t.Fatalf("status %d with %s, want an error with a code (%v)", rec.Code, rec.Body, err)
	}
}

func FuzzOAuthAuthorizeBody(f *testing.F) {
	srv := newOAuthFuzzServer(f)
	f.Add(oauthFuzzAuthorizeBody("GitHub"))
	f.Add(oauthFuzzAuthorizeBody("google"))
	f.Add([]byte(`{"amid":"","provider":"github","timestamp":"","signature":""}`))
	f.Add([]byte(`{"provider":"myspace"}`))
	f.Add([]byte(`[{"amid":null}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/auth/oauth/authorize", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var out registry.OAuthAuthorizeResponse
		checkOAuthAnswer(t, rec, &out)
		if rec.Code == http.StatusOK && (len(out.State) != oauthStateLen || out.ExpiresIn != registry.OAuthStateTTL ||
			!strings.Contains(out.AuthorizationURL, "code_challenge_method=S256")) {
			t.Fatalf("authorize answered %+v", out)
		}
	})
}

func FuzzOAuthCallbackQuery(f *testing.F) {
	srv := newOAuthFuzzServer(f)
	f.Add("code=abc&state=" + oauthFuzzState)
	f.Add("error=access_denied&state=x")
	f.Add("code=&state=")
	f.Add("code=1&state=%zz")
	f.Add("code=a;state=b")
	f.Add("code=a&code=b&state=" + strings.Repeat("A", oauthStateLen))
	f.Fuzz(func(t *testing.T, raw string) {
		req := httptest.NewRequest(http.MethodGet, "/v1/auth/oauth/callback", nil)
		req.URL.RawQuery = raw
		req.Header.Set("Accept", "text/html")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var out registry.OAuthCallbackResponse
		checkOAuthAnswer(t, rec, &out)
		if rec.Code == http.StatusOK {
			t.Fatalf("callback succeeded without a provider: %s", rec.Body)
		}
	})
}

package registryserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// coreRaw sends a request straight to the server and returns the status,
// headers and body.
func (e *testEnv) coreRaw(method, path, contentType string, body []byte) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// corePost posts v as JSON.
func (e *testEnv) corePost(path string, v any) (int, []byte) {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	status, _, body := e.coreRaw(http.MethodPost, path, "application/json", b)
	return status, body
}

// coreGet sends a GET and returns the status and body.
func (e *testEnv) coreGet(path string) (int, []byte) {
	e.t.Helper()
	status, _, body := e.coreRaw(http.MethodGet, path, "", nil)
	return status, body
}

// coreExec runs a test-only statement on the store.
func (e *testEnv) coreExec(query string, args ...any) {
	e.t.Helper()
	if _, err := e.store.db.ExecContext(context.Background(), query, args...); err != nil {
		e.t.Fatal(err)
	}
}

// setStoredRating makes an agent's stored reputation what a test needs.
func (e *testEnv) setStoredRating(a *testAgent, count int, score float64) {
	e.t.Helper()
	e.coreExec(`UPDATE agents SET ratings_count = $1, reputation_score = $2 WHERE amid = $3`, count, score, a.AMID)
}

// coreRegisterRequest is a valid registration of a, signed at the server's
// time.
func (e *testEnv) coreRegisterRequest(a *testAgent) registry.RegisterRequest {
	return registry.RegisterRequest{
		AMID: a.AMID, SigningPublicKey: a.SigningPublic(), ExchangePublicKey: a.ExchangePublic(),
		Signed: e.sign(a),
	}
}

func coreDecode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// registerFailureBody is what a refused registration answers.
type registerFailureBody struct {
	Success bool   `json:"success"`
	AMID    string `json:"amid"`
	Tier    string `json:"tier"`
	Error   string `json:"error"`
	Code    string `json:"code"`
}

// wantRegisterFailure checks a refused registration's status and shape.
func wantRegisterFailure(t *testing.T, status int, body []byte, wantStatus int, wantCode, wantAMID string) registerFailureBody {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %s", status, wantStatus, body)
	}
	f := coreDecode[registerFailureBody](t, body)
	if f.Success || f.Tier != "anonymous" || f.Code != wantCode || f.AMID != wantAMID || f.Error == "" {
		t.Fatalf("body %s, want success false, tier anonymous, code %q, amid %q and an error", body, wantCode, wantAMID)
	}
	return f
}

func TestRegisterAndLookup(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		a := newTestAgent(t)
		name, direct := "Weather bot ☀", "https://bot.example:8443/agent"
		resp, err := e.client.Register(ctx, a.Signer, registry.RegisterRequest{
			ExchangePublicKey: a.ExchangePublic(), DisplayName: &name,
			Capabilities: []string{"weather/forecast", "chat"}, DirectEndpoint: &direct,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Success || resp.AMID != a.AMID || resp.Tier != registry.TierAnonymous || resp.Certificate != "" || resp.Error != "" {
			t.Fatalf("register = %+v", resp)
		}
		got, err := e.client.Lookup(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		want := registry.AgentLookup{
			AMID: a.AMID, Tier: registry.TierAnonymous, DisplayName: &name,
			SigningPublicKey: a.SigningPublic(), ExchangePublicKey: a.ExchangePublic(),
			Capabilities: []string{"weather/forecast", "chat"}, RelayEndpoint: registry.DefaultRelayEndpoint,
			DirectEndpoint: &direct, Status: "offline", ReputationScore: 0.5,
			LastSeen:     protocol.FormatServerTimestamp(e.clock.Now()),
			RatingsCount: 0, ReputationStatus: "unrated",
		}
		if gj, wj := coreJSON(t, got), coreJSON(t, want); gj != wj {
			t.Fatalf("lookup\n got %s\nwant %s", gj, wj)
		}
		// organization is null, not left out.
		_, body := e.coreGet("/v1/registry/lookup?amid=" + a.AMID)
		if !bytes.Contains(body, []byte(`"organization":null`)) {
			t.Fatalf("lookup body has no null organization: %s", body)
		}

		// A second registration of the same AMID is a conflict.
		_, err = e.client.Register(ctx, a.Signer, registry.RegisterRequest{ExchangePublicKey: a.ExchangePublic()})
		if !registry.IsStatus(err, http.StatusConflict) {
			t.Fatalf("second register: %v, want 409", err)
		}
		status, body := e.corePost("/v1/registry/register", e.coreRegisterRequest(a))
		f := wantRegisterFailure(t, status, body, http.StatusConflict, "already_registered", a.AMID)
		if f.Error != "AMID already registered" {
			t.Fatalf("409 error %q", f.Error)
		}
	})
}

func coreJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRegisterDefaultsAndKeyForms(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		// Keys without their prefix are accepted and stored prefixed;
		// empty optional strings count as absent.
		a := newTestAgent(t)
		req := e.coreRegisterRequest(a)
		req.SigningPublicKey = strings.TrimPrefix(req.SigningPublicKey, protocol.SigningKeyPrefix)
		req.ExchangePublicKey = strings.TrimPrefix(req.ExchangePublicKey, protocol.ExchangeKeyPrefix)
		empty := ""
		req.DisplayName, req.DirectEndpoint = &empty, &empty
		req.RelayEndpoint = "ws://127.0.0.1:9000/v1/connect"
		if status, body := e.corePost("/v1/registry/register", req); status != http.StatusCreated {
			t.Fatalf("register: %d %s", status, body)
		}
		got, err := e.client.Lookup(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SigningPublicKey != a.SigningPublic() || got.ExchangePublicKey != a.ExchangePublic() ||
			got.DisplayName != nil || got.DirectEndpoint != nil || got.RelayEndpoint != "ws://127.0.0.1:9000/v1/connect" ||
			got.Capabilities == nil || len(got.Capabilities) != 0 {
			t.Fatalf("lookup = %+v", got)
		}
		// The longest display name and capability, counted in characters.
		b := newTestAgent(t)
		req = e.coreRegisterRequest(b)
		long := strings.Repeat("é", MaxDisplayNameLength)
		req.DisplayName = &long
		req.Capabilities = []string{strings.Repeat("ü", MaxCapabilityLength)}
		for i := 1; i < MaxCapabilities; i++ {
			req.Capabilities = append(req.Capabilities, fmt.Sprintf("cap-%d", i))
		}
		if status, body := e.corePost("/v1/registry/register", req); status != http.StatusCreated {
			t.Fatalf("register at the limits: %d %s", status, body)
		}
	})
}

func TestRegisterValidation(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		str := func(s string) *string { return &s }
		tooManyCaps := make([]string, MaxCapabilities+1)
		for i := range tooManyCaps {
			tooManyCaps[i] = fmt.Sprint("c", i)
		}
		cases := []struct {
			name, code, field string
			keepAMID          bool
			mutate            func(*registry.RegisterRequest)
		}{
			{"missing amid", "invalid_amid", "amid", false, func(r *registry.RegisterRequest) { r.AMID = "" }},
			{"amid not base58", "invalid_amid", "amid", false, func(r *registry.RegisterRequest) { r.AMID = "0OIl" }},
			{"amid too short", "invalid_amid", "amid", false, func(r *registry.RegisterRequest) { r.AMID = "abc" }},
			{"missing signing key", "invalid_signing_public_key", "signing_public_key", true, func(r *registry.RegisterRequest) { r.SigningPublicKey = "" }},
			{"short signing key", "invalid_signing_public_key", "signing_public_key", true, func(r *registry.RegisterRequest) {
				r.SigningPublicKey = "ed25519:" + protocol.B64.EncodeToString(make([]byte, 31))
			}},
			{"signing key not base64", "invalid_signing_public_key", "signing_public_key", true, func(r *registry.RegisterRequest) { r.SigningPublicKey = "ed25519:***" }},
			{"missing exchange key", "invalid_exchange_public_key", "exchange_public_key", true, func(r *registry.RegisterRequest) { r.ExchangePublicKey = "" }},
			{"short exchange key", "invalid_exchange_public_key", "exchange_public_key", true, func(r *registry.RegisterRequest) {
				r.ExchangePublicKey = "x25519:" + protocol.B64.EncodeToString(make([]byte, 31))
			}},
			{"unpadded exchange key", "invalid_exchange_public_key", "exchange_public_key", true, func(r *registry.RegisterRequest) {
				r.ExchangePublicKey = strings.TrimRight(r.ExchangePublicKey, "=")
			}},
			{"display name too long", "invalid_display_name", "display_name", true, func(r *registry.RegisterRequest) {
				r.DisplayName = str(strings.Repeat("x", MaxDisplayNameLength+1))
			}},
			{"display name with NUL", "invalid_display_name", "display_name", true, func(r *registry.RegisterRequest) { r.DisplayName = str("a\x00b") }},
			{"too many capabilities", "invalid_capabilities", "capabilities", true, func(r *registry.RegisterRequest) { r.Capabilities = tooManyCaps }},
			{"empty capability", "invalid_capabilities", "capabilities[1]", true, func(r *registry.RegisterRequest) { r.Capabilities = []string{"a", ""} }},
			{"long capability", "invalid_capabilities", "capabilities[0]", true, func(r *registry.RegisterRequest) {
				r.Capabilities = []string{strings.Repeat("c", MaxCapabilityLength+1)}
			}},
			{"control character in capability", "invalid_capabilities", "capabilities[0]", true, func(r *registry.RegisterRequest) { r.Capabilities = []string{"a\nb"} }},
			{"duplicate capability", "invalid_capabilities", "capabilities", true, func(r *registry.RegisterRequest) { r.Capabilities = []string{"chat", "x", "chat"} }},
			{"relay endpoint https", "invalid_relay_endpoint", "relay_endpoint", true, func(r *registry.RegisterRequest) { r.RelayEndpoint = "https://relay.example/v1/connect" }},
			{"relay endpoint without host", "invalid_relay_endpoint", "relay_endpoint", true, func(r *registry.RegisterRequest) { r.RelayEndpoint = "wss:///v1/connect" }},
			{"relay endpoint not a URL", "invalid_relay_endpoint", "relay_endpoint", true, func(r *registry.RegisterRequest) { r.RelayEndpoint = "ws://[::1" }},
			{"direct endpoint relative", "invalid_direct_endpoint", "direct_endpoint", true, func(r *registry.RegisterRequest) { r.DirectEndpoint = str("agent/inbox") }},
			{"direct endpoint too long", "invalid_direct_endpoint", "direct_endpoint", true, func(r *registry.RegisterRequest) {
				r.DirectEndpoint = str("https://h.example/" + strings.Repeat("p", MaxEndpointLength))
			}},
			{"verification token too long", "invalid_verification_token", "verification_token", true, func(r *registry.RegisterRequest) {
				r.VerificationToken = strings.Repeat("t", maxVerificationTokenLength+1)
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a := newTestAgent(t)
				req := e.coreRegisterRequest(a)
				tc.mutate(&req)
				status, body := e.corePost("/v1/registry/register", req)
				wantAMID := ""
				if tc.keepAMID {
					wantAMID = a.AMID
				}
				f := wantRegisterFailure(t, status, body, http.StatusBadRequest, tc.code, wantAMID)
				if !strings.Contains(f.Error, tc.field) {
					t.Errorf("error %q does not name %s", f.Error, tc.field)
				}
				if _, err := e.client.Lookup(context.Background(), a.AMID); !registry.IsStatus(err, http.StatusNotFound) {
					t.Errorf("refused agent is registered: %v", err)
				}
				// The signature was not spent on a refused request.
				if status, body := e.corePost("/v1/registry/register", e.coreRegisterRequest(a)); status != http.StatusCreated {
					t.Errorf("valid registration after a refused one: %d %s", status, body)
				}
			})
		}
	})
}

func TestRegisterSignatureFailures(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		post := func(req registry.RegisterRequest) (int, []byte) {
			t.Helper()
			return e.corePost("/v1/registry/register", req)
		}
		notRegistered := func(a *testAgent) {
			t.Helper()
			if _, err := e.client.Lookup(context.Background(), a.AMID); !registry.IsStatus(err, http.StatusNotFound) {
				t.Fatalf("agent registered after a refused request: %v", err)
			}
		}

		t.Run("forged", func(t *testing.T) {
			a, mallory := newTestAgent(t), newTestAgent(t)
			req := e.coreRegisterRequest(a)
			req.Signed = e.sign(mallory)
			req.VerificationToken = "gho_secret-access-token"
			status, body := post(req)
			f := wantRegisterFailure(t, status, body, http.StatusUnauthorized, "invalid_signature", a.AMID)
			if !strings.HasPrefix(f.Error, "Signature verification failed: ") {
				t.Fatalf("error %q", f.Error)
			}
			if bytes.Contains(body, []byte("secret-access-token")) {
				t.Fatalf("response shows the token: %s", body)
			}
			notRegistered(a)
		})
		t.Run("amid mismatch", func(t *testing.T) {
			a, b := newTestAgent(t), newTestAgent(t)
			req := e.coreRegisterRequest(a)
			req.AMID = b.AMID
			status, body := post(req)
			f := wantRegisterFailure(t, status, body, http.StatusUnauthorized, "amid_mismatch", b.AMID)
			if f.Error != "Signature verification failed: AMID mismatch" {
				t.Fatalf("error %q", f.Error)
			}
			notRegistered(a)
			notRegistered(b)
		})
		t.Run("stale", func(t *testing.T) {
			a := newTestAgent(t)
			req := e.coreRegisterRequest(a)
			e.clock.Advance(6 * time.Minute)
			status, body := post(req)
			f := wantRegisterFailure(t, status, body, http.StatusUnauthorized, "invalid_signature", a.AMID)
			if !strings.Contains(f.Error, "old") {
				t.Fatalf("error %q does not say the timestamp is old", f.Error)
			}
			notRegistered(a)
		})
		t.Run("future", func(t *testing.T) {
			a := newTestAgent(t)
			ts := protocol.FormatSigningTimestamp(e.clock.Now().Add(2 * time.Minute))
			req := e.coreRegisterRequest(a)
			req.Signed = registry.Signed{Timestamp: ts, Signature: protocol.SignTimestamp(a.Signing, ts)}
			status, body := post(req)
			wantRegisterFailure(t, status, body, http.StatusUnauthorized, "invalid_signature", a.AMID)
			notRegistered(a)
		})
		t.Run("missing signature", func(t *testing.T) {
			a := newTestAgent(t)
			req := e.coreRegisterRequest(a)
			req.Signature = ""
			status, body := post(req)
			wantRegisterFailure(t, status, body, http.StatusUnauthorized, "invalid_signature", a.AMID)
		})
		t.Run("replayed", func(t *testing.T) {
			a := newTestAgent(t)
			req := e.coreRegisterRequest(a)
			if status, body := post(req); status != http.StatusCreated {
				t.Fatalf("first: %d %s", status, body)
			}
			// The same body again is a replay, refused before the
			// duplicate AMID is noticed.
			status, body := post(req)
			f := wantRegisterFailure(t, status, body, http.StatusUnauthorized, "invalid_signature", a.AMID)
			if !strings.Contains(f.Error, "replay") {
				t.Fatalf("error %q does not mention replay", f.Error)
			}
			// And the register signature cannot be reused elsewhere.
			status, body = e.corePost("/v1/registry/status", registry.StatusRequest{AMID: a.AMID, Status: "online", Signed: req.Signed})
			if status != http.StatusUnauthorized || !bytes.Contains(body, []byte("replay")) {
				t.Fatalf("register signature reused on /status: %d %s", status, body)
			}
		})
	})
}

func TestRegisterRefusedTokenIsAnonymous(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		var logs logtest.Buffer
		e := newEnv(t, st, func(c *Config) {
			c.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &logs})
		})
		const token = "gho_0123456789abcdefSECRET"
		a := newTestAgent(t)
		resp, err := e.client.Register(context.Background(), a.Signer, registry.RegisterRequest{
			ExchangePublicKey: a.ExchangePublic(), VerificationToken: token,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Success || resp.Tier != registry.TierAnonymous || resp.Certificate != "" {
			t.Fatalf("register with a refused token = %+v", resp)
		}
		out := logs.String()
		if !strings.Contains(out, "verification token refused") || !strings.Contains(out, a.AMID) {
			t.Fatalf("refusal not logged: %s", out)
		}
		if strings.Contains(out, token) {
			t.Fatalf("token logged: %s", out)
		}
	})
}

func TestRegisterVerified(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		fp, e := newGitHubEnv(t, st)
		ctx := context.Background()
		a := newTestAgent(t)
		resp, err := e.client.Register(ctx, a.Signer, registry.RegisterRequest{
			ExchangePublicKey: a.ExchangePublic(), VerificationToken: fp.issueToken(time.Hour),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Success || resp.Tier != registry.TierVerified || len(resp.CertificateChain) != 2 ||
			!strings.HasPrefix(resp.Certificate, "-----BEGIN CERTIFICATE-----") {
			t.Fatalf("verified registration = %+v", resp)
		}
		got, err := e.client.Lookup(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Tier != registry.TierVerified || got.Certificate != resp.Certificate || !slices.Equal(got.CertificateChain, resp.CertificateChain) {
			t.Fatalf("lookup of a verified agent: tier %s, certificate %q, chain %d", got.Tier, got.Certificate, len(got.CertificateChain))
		}
		vs, err := st.AgentVerifications(ctx, a.AMID)
		if err != nil || len(vs) != 1 || vs[0].Provider != "github" || vs[0].Username != "octocat" {
			t.Fatalf("verifications %+v, %v", vs, err)
		}

		// A token the provider refuses registers the agent as anonymous,
		// without a certificate.
		b := newTestAgent(t)
		resp, err = e.client.Register(ctx, b.Signer, registry.RegisterRequest{
			ExchangePublicKey: b.ExchangePublic(), VerificationToken: fp.issueToken(-time.Hour),
		})
		if err != nil || resp.Tier != registry.TierAnonymous || resp.Certificate != "" {
			t.Fatalf("registration with an expired token: %+v, %v", resp, err)
		}
		if got, err := e.client.Lookup(ctx, b.AMID); err != nil || got.Certificate != "" || got.Tier != registry.TierAnonymous {
			t.Fatalf("lookup after an expired token: %+v, %v", got, err)
		}

		// A taken AMID is refused before the provider is asked.
		_, before := fp.counts()
		_, err = e.client.Register(ctx, a.Signer, registry.RegisterRequest{
			ExchangePublicKey: a.ExchangePublic(), VerificationToken: fp.issueToken(time.Hour),
		})
		if _, after := fp.counts(); !registry.IsStatus(err, http.StatusConflict) || after != before {
			t.Fatalf("second verified registration: %v, provider asked %d times", err, after-before)
		}
	})
}

func TestRevokedAgents(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		a := e.addAgent(registry.TierAnonymous, "chat")
		e.addAgent(registry.TierAnonymous, "chat")
		revokedAt := e.clock.Now().Add(-time.Hour)
		e.coreExec(`INSERT INTO revocations (id, amid, reason, revoked_by, revoked_at) VALUES ($1, $2, $3, $4, $5)`,
			"rev-1", a.AMID, "key_compromise", a.AMID, revokedAt.UnixMilli())

		res, err := e.client.Search(ctx, registry.SearchQuery{Capability: "chat"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != 1 || len(res.Results) != 1 || res.Results[0].AMID == a.AMID {
			t.Fatalf("search shows the revoked agent: %+v", res)
		}
		got, err := e.client.Lookup(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		want := []registry.AgentFlag{{Reason: registry.FlagRevoked, FlaggedAt: protocol.FormatServerTimestamp(revokedAt)}}
		if !got.Revoked || coreJSON(t, got.Flags) != coreJSON(t, want) {
			t.Fatalf("lookup of a revoked agent: revoked %v, flags %+v", got.Revoked, got.Flags)
		}
		// A revoked agent can neither change its entry nor register.
		status, body := e.corePost("/v1/registry/status", registry.StatusRequest{AMID: a.AMID, Status: "online", Signed: e.sign(a)})
		if status != http.StatusForbidden || coreDecode[registry.ErrorResponse](t, body).Code != "agent_revoked" {
			t.Fatalf("status of a revoked agent: %d %s", status, body)
		}
		b := newTestAgent(t)
		e.coreExec(`INSERT INTO revocations (id, amid, reason, revoked_by, revoked_at) VALUES ($1, $2, $3, $4, $5)`,
			"rev-2", b.AMID, "other", b.AMID, revokedAt.UnixMilli())
		status, body = e.corePost("/v1/registry/register", e.coreRegisterRequest(b))
		f := wantRegisterFailure(t, status, body, http.StatusForbidden, "agent_revoked", b.AMID)
		if f.Error != "Agent has been revoked" {
			t.Fatalf("error %q", f.Error)
		}
	})
}

func TestLookup(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		for _, tc := range []struct{ query, code string }{
			{"", "invalid_amid"},
			{"?amid=", "invalid_amid"},
			{"?amid=0OIl", "invalid_amid"},
			{"?amid=" + strings.Repeat("z", 41), "invalid_amid"},
		} {
			status, body := e.coreGet("/v1/registry/lookup" + tc.query)
			if status != http.StatusBadRequest || coreDecode[registry.ErrorResponse](t, body).Code != tc.code {
				t.Errorf("lookup%s: %d %s", tc.query, status, body)
			}
		}
		status, body := e.coreGet("/v1/registry/lookup?amid=" + newTestAgent(t).AMID)
		if status != http.StatusNotFound || coreDecode[registry.ErrorResponse](t, body).Error != "Agent not found" {
			t.Fatalf("unknown agent: %d %s", status, body)
		}

		// The organization's name, and the score shown only once rated.
		a := e.addAgent(registry.TierOrganization, "chat")
		now := e.clock.Now().UnixMilli()
		e.coreExec(`INSERT INTO organizations (id, name, domain, admin_amid, admin_signing_public_key, dns_challenge,
			challenge_expires_at, verified, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)`,
			"org-1", "Example Corp", "example.com", a.AMID, a.SigningPublic(), "challenge", now, now)
		e.coreExec(`UPDATE agents SET organization_id = $1 WHERE amid = $2`, "org-1", a.AMID)
		e.setStoredRating(a, MinRatings-1, 0.93)
		got, err := e.client.Lookup(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Organization == nil || *got.Organization != "Example Corp" || got.Tier != registry.TierOrganization {
			t.Fatalf("organization %v, tier %s", got.Organization, got.Tier)
		}
		if got.ReputationScore != UnratedScore || got.ReputationStatus != "unrated" || got.RatingsCount != MinRatings-1 {
			t.Fatalf("unrated agent shows score %v, status %s, count %d", got.ReputationScore, got.ReputationStatus, got.RatingsCount)
		}
		if got.Revoked || len(got.Flags) != 0 {
			t.Fatalf("unrevoked agent: revoked %v, flags %+v", got.Revoked, got.Flags)
		}
		e.setStoredRating(a, MinRatings, 0.93)
		got, err = e.client.Lookup(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ReputationScore != 0.93 || got.ReputationStatus != "rated" || got.RatingsCount != MinRatings {
			t.Fatalf("rated agent shows score %v, status %s, count %d", got.ReputationScore, got.ReputationStatus, got.RatingsCount)
		}
	})
}

func TestSearch(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		base := e.clock.Now()
		seen := func(a *testAgent, ago time.Duration) {
			e.coreExec(`UPDATE agents SET last_seen = $1 WHERE amid = $2`, base.Add(-ago).UnixMilli(), a.AMID)
		}
		high := e.addAgent(registry.TierVerified, "translate", "chat")
		e.setStoredRating(high, 7, 0.9)
		mid := e.addAgent(registry.TierAnonymous, "translate")
		e.setStoredRating(mid, 5, 0.6)
		low := e.addAgent(registry.TierOrganization, "translate")
		e.setStoredRating(low, 12, 0.3)
		// Unrated agents show 0.5 whatever the formula says, so this one's
		// 0.95 neither ranks it first nor passes reputation_min.
		unratedOld := e.addAgent(registry.TierAnonymous, "translate")
		e.setStoredRating(unratedOld, 4, 0.95)
		seen(unratedOld, time.Hour)
		unratedNew := e.addAgent(registry.TierAnonymous, "translate")
		seen(unratedNew, time.Minute)
		// Same score and last seen: ordered by AMID.
		tieA, tieB := e.addAgent(registry.TierAnonymous, "translate"), e.addAgent(registry.TierAnonymous, "translate")
		seen(tieA, 2*time.Hour)
		seen(tieB, 2*time.Hour)
		if tieB.AMID < tieA.AMID {
			tieA, tieB = tieB, tieA
		}
		e.addAgent(registry.TierVerified, "chat")
		e.coreExec(`UPDATE agents SET status = 'online' WHERE amid = $1 OR amid = $2`, mid.AMID, unratedNew.AMID)

		amids := func(r *registry.SearchResponse) []string {
			var out []string
			for _, x := range r.Results {
				out = append(out, x.AMID)
			}
			return out
		}
		ids := func(as ...*testAgent) []string {
			var out []string
			for _, a := range as {
				out = append(out, a.AMID)
			}
			return out
		}
		cases := []struct {
			name      string
			q         registry.SearchQuery
			want      []string
			wantTotal int
		}{
			{"all, ranked", registry.SearchQuery{Capability: "translate"},
				ids(high, mid, low, unratedNew, unratedOld, tieA, tieB), 7},
			{"verified and organization only", registry.SearchQuery{Capability: "translate", TierMin: 1}, ids(high, low), 2},
			{"tier_min 2 keeps all", registry.SearchQuery{Capability: "translate", TierMin: 2},
				ids(high, mid, low, unratedNew, unratedOld, tieA, tieB), 7},
			{"shown score at least 0.55", registry.SearchQuery{Capability: "translate", ReputationMin: 0.55}, ids(high, mid), 2},
			{"shown score at least 0.5", registry.SearchQuery{Capability: "translate", ReputationMin: 0.5},
				ids(high, mid, unratedNew, unratedOld, tieA, tieB), 6},
			{"online", registry.SearchQuery{Capability: "translate", Status: "online"}, ids(mid, unratedNew), 2},
			{"page", registry.SearchQuery{Capability: "translate", Limit: 2, Offset: 2}, ids(low, unratedNew), 7},
			{"past the end", registry.SearchQuery{Capability: "translate", Limit: 2, Offset: 50}, nil, 7},
			{"capability matches exactly", registry.SearchQuery{Capability: "transl"}, nil, 0},
		}
		for _, tc := range cases {
			res, err := e.client.Search(ctx, tc.q)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !slices.Equal(amids(res), tc.want) || res.Total != tc.wantTotal {
				t.Errorf("%s: got %v total %d, want %v total %d", tc.name, amids(res), res.Total, tc.want, tc.wantTotal)
			}
			if res.Results == nil {
				t.Errorf("%s: results is null", tc.name)
			}
		}
		res, err := e.client.Search(ctx, registry.SearchQuery{Capability: "translate"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Limit != registry.DefaultSearchLimit || res.Offset != 0 {
			t.Fatalf("default page: limit %d offset %d", res.Limit, res.Offset)
		}
		first := res.Results[0]
		if first.ReputationScore != 0.9 || first.ReputationStatus != "rated" || first.RatingsCount != 7 || first.Tier != registry.TierVerified {
			t.Fatalf("first result %+v", first)
		}
		if r := res.Results[4]; r.AMID != unratedOld.AMID || r.ReputationScore != UnratedScore || r.ReputationStatus != "unrated" {
			t.Fatalf("unrated result %+v", r)
		}
	})
}

func TestSearchLimits(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		for range registry.MaxSearchLimit + 1 {
			e.addAgent(registry.TierAnonymous, "bulk")
		}
		res, err := e.client.Search(ctx, registry.SearchQuery{Capability: "bulk", Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if res.Limit != registry.MaxSearchLimit || len(res.Results) != registry.MaxSearchLimit || res.Total != registry.MaxSearchLimit+1 {
			t.Fatalf("limit 500: limit %d, %d results, total %d", res.Limit, len(res.Results), res.Total)
		}
		res, err = e.client.Search(ctx, registry.SearchQuery{Capability: "bulk", Limit: 500, Offset: registry.MaxSearchLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Results) != 1 || res.Total != registry.MaxSearchLimit+1 || res.Offset != registry.MaxSearchLimit {
			t.Fatalf("last page: %d results, total %d, offset %d", len(res.Results), res.Total, res.Offset)
		}
		res, err = e.client.Search(ctx, registry.SearchQuery{Capability: "bulk", Limit: 1, Offset: math.MaxInt64})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Results) != 0 || res.Total != registry.MaxSearchLimit+1 {
			t.Fatalf("offset MaxInt64: %d results, total %d", len(res.Results), res.Total)
		}
		res, err = e.client.Search(ctx, registry.SearchQuery{Capability: "bulk"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Results) != registry.DefaultSearchLimit {
			t.Fatalf("default limit gave %d results", len(res.Results))
		}

		for _, tc := range []struct{ query, code string }{
			{"", "invalid_capability"},
			{"capability=", "invalid_capability"},
			{"capability=a%00b", "invalid_capability"},
			{"capability=%ff%fe", "invalid_capability"},
			{"capability=" + strings.Repeat("c", MaxCapabilityLength+1), "invalid_capability"},
			{"capability=bulk&tier_min=3", "invalid_tier_min"},
			{"capability=bulk&tier_min=-1", "invalid_tier_min"},
			{"capability=bulk&tier_min=one", "invalid_tier_min"},
			{"capability=bulk&reputation_min=1.5", "invalid_reputation_min"},
			{"capability=bulk&reputation_min=-0.1", "invalid_reputation_min"},
			{"capability=bulk&reputation_min=NaN", "invalid_reputation_min"},
			{"capability=bulk&reputation_min=high", "invalid_reputation_min"},
			{"capability=bulk&status=busy", "invalid_status"},
			{"capability=bulk&status=", "invalid_status"},
			{"capability=bulk&limit=0", "invalid_limit"},
			{"capability=bulk&limit=-5", "invalid_limit"},
			{"capability=bulk&limit=ten", "invalid_limit"},
			{"capability=bulk&limit=99999999999999999999", "invalid_limit"},
			{"capability=bulk&offset=-1", "invalid_offset"},
			{"capability=bulk&offset=1.5", "invalid_offset"},
			{"capability=bulk&%zz", "invalid_query"},
		} {
			status, body := e.coreGet("/v1/registry/search?" + tc.query)
			if status != http.StatusBadRequest || coreDecode[registry.ErrorResponse](t, body).Code != tc.code {
				t.Errorf("search?%s: %d %s, want 400 %s", tc.query, status, body, tc.code)
			}
		}
		// The client reports them as API errors.
		if _, err := e.client.Search(ctx, registry.SearchQuery{Capability: "bulk", Limit: -1}); !registry.IsStatus(err, http.StatusBadRequest) {
			t.Fatalf("client search with limit -1: %v", err)
		}
	})
}

func TestStatusAndCapabilities(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		a := newTestAgent(t)
		if _, err := e.client.Register(ctx, a.Signer, registry.RegisterRequest{
			ExchangePublicKey: a.ExchangePublic(), Capabilities: []string{"old"},
		}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Minute)
		resp, err := e.client.UpdateStatus(ctx, a.Signer, "away")
		if err != nil {
			t.Fatal(err)
		}
		// The agent has no one-time prekeys, so it is told to upload some.
		if !resp.Success || len(resp.Notifications) != 1 || resp.Notifications[0].Type != registry.NotificationLowPrekeys {
			t.Fatalf("status response %+v", resp)
		}
		got, err := e.client.Lookup(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "away" || got.LastSeen != protocol.FormatServerTimestamp(e.clock.Now()) {
			t.Fatalf("after status: status %s, last seen %s, want away at %s", got.Status, got.LastSeen, protocol.FormatServerTimestamp(e.clock.Now()))
		}

		resp, err = e.client.UpdateCapabilities(ctx, a.Signer, []string{"new", "chat"})
		if err != nil || !resp.Success {
			t.Fatalf("capabilities: %+v, %v", resp, err)
		}
		got, err = e.client.Lookup(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Capabilities, []string{"new", "chat"}) {
			t.Fatalf("capabilities after update: %v", got.Capabilities)
		}
		for capability, want := range map[string]int{"old": 0, "new": 1, "chat": 1} {
			res, err := e.client.Search(ctx, registry.SearchQuery{Capability: capability})
			if err != nil || res.Total != want {
				t.Fatalf("search %s after update: %+v, %v; want %d", capability, res, err, want)
			}
		}
		if _, err := e.client.UpdateCapabilities(ctx, a.Signer, nil); err != nil {
			t.Fatal(err)
		}
		if got, err = e.client.Lookup(ctx, a.AMID); err != nil || len(got.Capabilities) != 0 || got.Capabilities == nil {
			t.Fatalf("cleared capabilities: %+v, %v", got, err)
		}

		// Failures.
		stranger := newTestAgent(t)
		type call struct {
			name, path string
			body       any
			status     int
			code, text string
		}
		replay := registry.StatusRequest{AMID: a.AMID, Status: "online", Signed: e.sign(a)}
		if status, body := e.corePost("/v1/registry/status", replay); status != http.StatusOK {
			t.Fatalf("first use of a signature: %d %s", status, body)
		}
		for _, c := range []call{
			{"bad status", "/v1/registry/status", registry.StatusRequest{AMID: a.AMID, Status: "busy", Signed: e.sign(a)}, 400, "invalid_status", ""},
			{"no status", "/v1/registry/status", registry.StatusRequest{AMID: a.AMID, Signed: e.sign(a)}, 400, "invalid_status", ""},
			{"bad amid", "/v1/registry/status", registry.StatusRequest{AMID: "nope0", Status: "online", Signed: e.sign(a)}, 400, "invalid_amid", ""},
			{"unknown agent", "/v1/registry/status", registry.StatusRequest{AMID: stranger.AMID, Status: "online", Signed: e.sign(stranger)}, 404, "agent_not_found", "Agent not found"},
			{"forged", "/v1/registry/status", registry.StatusRequest{AMID: a.AMID, Status: "online", Signed: e.sign(stranger)}, 401, "invalid_signature", "Signature verification failed"},
			{"replayed", "/v1/registry/status", replay, 401, "invalid_signature", "replay"},
			{"caps missing", "/v1/registry/capabilities", map[string]any{"amid": a.AMID, "timestamp": "x", "signature": "y"}, 400, "invalid_capabilities", "required"},
			{"caps duplicate", "/v1/registry/capabilities", registry.CapabilitiesRequest{AMID: a.AMID, Capabilities: []string{"x", "x"}, Signed: e.sign(a)}, 400, "invalid_capabilities", "twice"},
			{"caps too long", "/v1/registry/capabilities", registry.CapabilitiesRequest{AMID: a.AMID, Capabilities: []string{strings.Repeat("c", 129)}, Signed: e.sign(a)}, 400, "invalid_capabilities", "capabilities[0]"},
			{"caps unknown agent", "/v1/registry/capabilities", registry.CapabilitiesRequest{AMID: stranger.AMID, Capabilities: []string{}, Signed: e.sign(stranger)}, 404, "agent_not_found", ""},
			{"caps forged", "/v1/registry/capabilities", registry.CapabilitiesRequest{AMID: a.AMID, Capabilities: []string{"evil"}, Signed: e.sign(stranger)}, 401, "invalid_signature", ""},
			{"caps replayed", "/v1/registry/capabilities", registry.CapabilitiesRequest{AMID: a.AMID, Capabilities: []string{"evil"}, Signed: replay.Signed}, 401, "invalid_signature", "replay"},
		} {
			status, body := e.corePost(c.path, c.body)
			er := coreDecode[registry.ErrorResponse](t, body)
			if status != c.status || er.Code != c.code || !strings.Contains(er.Error, c.text) {
				t.Errorf("%s: %d %s, want %d %s %q", c.name, status, body, c.status, c.code, c.text)
			}
		}
		// A signature older than five minutes is refused.
		e.clock.Advance(-time.Minute)
		stale := e.sign(a)
		e.clock.Advance(6*time.Minute + time.Millisecond)
		status, body := e.corePost("/v1/registry/status", registry.StatusRequest{AMID: a.AMID, Status: "dnd", Signed: stale})
		if er := coreDecode[registry.ErrorResponse](t, body); status != http.StatusUnauthorized || !strings.Contains(er.Error, "old") {
			t.Errorf("stale signature: %d %s", status, body)
		}
		got, err = e.client.Lookup(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "online" || len(got.Capabilities) != 0 {
			t.Fatalf("refused updates changed the agent: %+v", got)
		}
	})
}

// coreDIDDoc is the part of a DID document the tests read.
type coreDIDDoc struct {
	Context            []string `json:"@context"`
	ID                 string   `json:"id"`
	Controller         string   `json:"controller"`
	VerificationMethod []struct {
		ID, Type, Controller, PublicKeyMultibase string
	} `json:"verificationMethod"`
	Authentication  []string `json:"authentication"`
	AssertionMethod []string `json:"assertionMethod"`
	KeyAgreement    []string `json:"keyAgreement"`
	Service         []struct {
		ID, Type, ServiceEndpoint string
	} `json:"service"`
}

// decodeMultibaseKey reverses publicKeyMultibase: "z", base58btc, a
// two-byte multicodec header, then the key.
func decodeMultibaseKey(t *testing.T, s string, header []byte) []byte {
	t.Helper()
	rest, ok := strings.CutPrefix(s, "z")
	if !ok {
		t.Fatalf("multibase %q is not base58btc", s)
	}
	b, err := protocol.DecodeBase58(rest)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 34 || !bytes.Equal(b[:2], header) {
		t.Fatalf("multibase %q decodes to %x, want header %x and 32 bytes", s, b, header)
	}
	return b[2:]
}

func TestDID(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		a := newTestAgent(t)
		direct := "https://agent.example/inbox"
		if _, err := e.client.Register(ctx, a.Signer, registry.RegisterRequest{
			ExchangePublicKey: a.ExchangePublic(), RelayEndpoint: "wss://relay.example/v1/connect", DirectEndpoint: &direct,
		}); err != nil {
			t.Fatal(err)
		}
		raw, err := e.client.DID(ctx, a.AMID)
		if err != nil {
			t.Fatal(err)
		}
		doc := coreDecode[coreDIDDoc](t, raw)
		did := "did:agentmesh:" + a.AMID
		if doc.ID != did || doc.Controller != did || len(doc.Context) == 0 || doc.Context[0] != "https://www.w3.org/ns/did/v1" {
			t.Fatalf("document head: %s", raw)
		}
		if len(doc.VerificationMethod) != 2 {
			t.Fatalf("verification methods: %s", raw)
		}
		sig, agree := doc.VerificationMethod[0], doc.VerificationMethod[1]
		if sig.ID != did+"#signing-key" || sig.Type != "Ed25519VerificationKey2020" || sig.Controller != did ||
			agree.ID != did+"#key-agreement-key" || agree.Type != "X25519KeyAgreementKey2020" || agree.Controller != did {
			t.Fatalf("verification methods: %s", raw)
		}
		if got := decodeMultibaseKey(t, sig.PublicKeyMultibase, []byte{0xed, 0x01}); !bytes.Equal(got, a.Signing.Public().(ed25519.PublicKey)) {
			t.Fatalf("signing key round trip: %x", got)
		}
		if got := decodeMultibaseKey(t, agree.PublicKeyMultibase, []byte{0xec, 0x01}); !bytes.Equal(got, a.Exchange.PublicKey().Bytes()) {
			t.Fatalf("exchange key round trip: %x", got)
		}
		if !slices.Equal(doc.Authentication, []string{sig.ID}) || !slices.Equal(doc.AssertionMethod, []string{sig.ID}) ||
			!slices.Equal(doc.KeyAgreement, []string{agree.ID}) {
			t.Fatalf("relationships: %s", raw)
		}
		if len(doc.Service) != 2 || doc.Service[0].ID != did+"#relay" || doc.Service[0].ServiceEndpoint != "wss://relay.example/v1/connect" ||
			doc.Service[1].ID != did+"#direct" || doc.Service[1].ServiceEndpoint != direct {
			t.Fatalf("services: %s", raw)
		}

		status, hdr, _ := e.coreRaw(http.MethodGet, "/v1/registry/did/"+a.AMID, "", nil)
		if status != http.StatusOK || hdr.Get("Content-Type") != "application/did+json" {
			t.Fatalf("DID: %d %s", status, hdr.Get("Content-Type"))
		}
		status, body := e.coreGet("/v1/registry/did/" + newTestAgent(t).AMID)
		if status != http.StatusNotFound || coreDecode[registry.ErrorResponse](t, body).Error != "DID not found" {
			t.Fatalf("unknown DID: %d %s", status, body)
		}
		status, body = e.coreGet("/v1/registry/did/not-an-amid")
		if status != http.StatusBadRequest || coreDecode[registry.ErrorResponse](t, body).Code != "invalid_amid" {
			t.Fatalf("bad DID: %d %s", status, body)
		}
		if _, err := e.client.DID(ctx, newTestAgent(t).AMID); !registry.IsStatus(err, http.StatusNotFound) {
			t.Fatalf("client DID of an unknown agent: %v", err)
		}
	})
}

func TestDIDMultibaseVector(t *testing.T) {
	// A published did:key document (ACA-Py's DID tests) lists each key
	// both as raw base58 and inside its multibase key id.
	for _, tc := range []struct {
		header         []byte
		raw, multibase string
	}{
		{multicodecEd25519Pub, "8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K", "z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th"},
		{multicodecX25519Pub, "79CXkde3j8TNuMXxPdV7nLUrT2g7JAEjH5TreyVY7GEZ", "z6LShpNhGwSupbB7zjuivH156vhLJBDDzmQtA4BY9S94pe1K"},
	} {
		key, err := protocol.DecodeBase58(tc.raw)
		if err != nil || len(key) != 32 {
			t.Fatalf("decode %s: %x, %v", tc.raw, key, err)
		}
		if got := multibaseKey(tc.header, key); got != tc.multibase {
			t.Errorf("multibase of %s = %s, want %s", tc.raw, got, tc.multibase)
		}
	}
}

func TestHealthAndStats(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		ctx := context.Background()
		for _, path := range []string{"/health", "/healthz"} {
			if status, body := e.coreGet(path); status != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
				t.Fatalf("%s: %d %s", path, status, body)
			}
		}
		if status, body := e.coreGet("/readyz"); status != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ready"}` {
			t.Fatalf("readyz: %d %s", status, body)
		}
		h, err := e.client.Health(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if *h != (registry.Health{Status: "healthy", Version: protocol.ProtocolVersion}) {
			t.Fatalf("empty health %+v", h)
		}
		s, err := e.client.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.TotalAgents != 0 || s.AverageReputation != 0 || s.ByTier["anonymous"] != 0 || len(s.ByTier) != 3 || len(s.ByStatus) != 4 {
			t.Fatalf("empty stats %+v", s)
		}

		e.addAgent(registry.TierAnonymous)
		on := e.addAgent(registry.TierAnonymous)
		rated := e.addAgent(registry.TierVerified)
		dnd := e.addAgent(registry.TierOrganization)
		e.coreExec(`UPDATE agents SET status = 'online' WHERE amid = $1`, on.AMID)
		e.coreExec(`UPDATE agents SET status = 'dnd' WHERE amid = $1`, dnd.AMID)
		e.setStoredRating(rated, 6, 0.9)
		e.setStoredRating(dnd, 3, 0.1) // unrated: counts as 0.5

		h, err = e.client.Health(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != "healthy" || h.Version != "agentmesh/0.2" || h.AgentsRegistered != 4 || h.AgentsOnline != 1 {
			t.Fatalf("health %+v", h)
		}
		s, err = e.client.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantTier := map[string]int{"anonymous": 2, "verified": 1, "organization": 1}
		wantStatus := map[string]int{"online": 1, "away": 0, "offline": 2, "dnd": 1}
		if s.TotalAgents != 4 || s.OnlineAgents != 1 || coreJSON(t, s.ByTier) != coreJSON(t, wantTier) ||
			coreJSON(t, s.ByStatus) != coreJSON(t, wantStatus) || math.Abs(s.AverageReputation-0.6) > 1e-9 {
			t.Fatalf("stats %+v", s)
		}

		// With the store gone, readiness and health say so; liveness
		// does not care.
		st.Close()
		status, body := e.coreGet("/readyz")
		if status != http.StatusServiceUnavailable || coreDecode[healthBody](t, body).Status != "unavailable" {
			t.Fatalf("readyz without a store: %d %s", status, body)
		}
		status, body = e.coreGet("/v1/health")
		if hb := coreDecode[healthBody](t, body); status != http.StatusServiceUnavailable || hb.Status != "starting" || hb.Message == "" {
			t.Fatalf("health without a store: %d %s", status, body)
		}
		if status, _ := e.coreGet("/health"); status != http.StatusOK {
			t.Fatalf("liveness without a store: %d", status)
		}
	})
}

func TestMalformedRequests(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		big := append([]byte(`{"amid":"`), bytes.Repeat([]byte("a"), MaxBodySize)...)
		big = append(big, `"}`...)
		for _, path := range []string{"/v1/registry/register", "/v1/registry/status", "/v1/registry/capabilities", "/v1/registry/exchange-key"} {
			for _, tc := range []struct {
				name, contentType string
				body              []byte
				status            int
			}{
				{"malformed JSON", "application/json", []byte(`{"amid":`), 400},
				{"not an object", "application/json", []byte(`[1,2]`), 400},
				{"wrong types", "application/json", []byte(`{"amid":5,"capabilities":"x"}`), 400},
				{"two values", "application/json", []byte(`{} {}`), 400},
				{"empty body", "application/json", nil, 400},
				{"wrong content type", "text/plain", []byte(`{}`), 400},
				{"no content type", "", []byte(`{}`), 400},
				{"oversized", "application/json", big, 413},
				{"empty object", "application/json", []byte(`{}`), 400},
			} {
				status, _, body := e.coreRaw(http.MethodPost, path, tc.contentType, tc.body)
				var er registry.ErrorResponse
				if status != tc.status || json.Unmarshal(body, &er) != nil || er.Error == "" {
					t.Errorf("%s %s: %d %s, want %d with an error", path, tc.name, status, body, tc.status)
				}
			}
		}
	})
}

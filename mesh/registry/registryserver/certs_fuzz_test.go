package registryserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// certFuzzTime is the fixed clock of the fuzzed server, so that seeds
// signed at that time (the committed ones included) stay valid.
var certFuzzTime = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// certFuzzKey is a fixed key, for seeds that verify.
func certFuzzKey(n byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0], seed[1] = n, 0xce
	return ed25519.NewKeyFromSeed(seed)
}

// certFuzzServer is a registry over a SQLite store opened once for the
// whole fuzzing run, with the agents of certFuzzKey(1..3) registered.
func certFuzzServer(f *testing.F) *Server {
	f.Helper()
	st := newSQLiteStore(f)
	srv, err := New(Config{
		Store: st, Now: func() time.Time { return certFuzzTime },
		Resolver:          failingResolver{errors.New("no DNS while fuzzing")},
		RequestsPerMinute: 1 << 30, RequestBurst: 1 << 30,
	})
	if err != nil {
		f.Fatal(err)
	}
	for n := byte(1); n <= 3; n++ {
		k := certFuzzKey(n)
		pub := k.Public().(ed25519.PublicKey)
		err := st.InsertAgent(context.Background(), &Agent{
			AMID: string(protocol.DeriveAMID(pub)), SigningPublicKey: protocol.EncodeSigningPublicKey(pub),
			ExchangePublicKey: "x25519:" + protocol.B64.EncodeToString(make([]byte, 32)), Tier: TierAnonymous,
			RelayEndpoint: registry.DefaultRelayEndpoint, Status: "offline", ReputationScore: 0.5,
			LastSeen: certFuzzTime, CreatedAt: certFuzzTime, UpdatedAt: certFuzzTime,
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	return srv
}

// certFuzzPost posts body to the handler and fails on a server error or a
// success that is not JSON.
func certFuzzPost(t *testing.T, srv *Server, path string, body []byte) (int, []byte) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body.Bytes())
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("POST %s %q: %d with a body that is not JSON: %q", path, body, rec.Code, rec.Body.Bytes())
	}
	return rec.Code, rec.Body.Bytes()
}

// certFuzzSigned returns a timestamp signature of key n at the fixed time.
func certFuzzSigned(n byte) registry.Signed {
	ts := protocol.FormatSigningTimestamp(certFuzzTime)
	return registry.Signed{Timestamp: ts, Signature: protocol.SignTimestamp(certFuzzKey(n), ts)}
}

func certFuzzAMID(n byte) string {
	return string(protocol.DeriveAMID(certFuzzKey(n).Public().(ed25519.PublicKey)))
}

// FuzzOrgRegisterBody posts arbitrary bodies to POST /v1/org/register:
// never a 5xx nor a panic.
func FuzzOrgRegisterBody(f *testing.F) {
	srv := certFuzzServer(f)
	pub := certFuzzKey(1).Public().(ed25519.PublicKey)
	valid, _ := json.Marshal(registry.OrgRegisterRequest{
		Name: "Acme", Domain: "acme.example", AdminAMID: certFuzzAMID(1),
		AdminSigningPublicKey: protocol.EncodeSigningPublicKey(pub), Signed: certFuzzSigned(1),
	})
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"name":"x","domain":"a.b","admin_amid":"1","admin_signing_public_key":"ed25519:","signature":"","timestamp":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		code, out := certFuzzPost(t, srv, "/v1/org/register", body)
		var resp registry.OrgRegisterResponse
		if code == http.StatusCreated && (json.Unmarshal(out, &resp) != nil || !resp.Success || resp.DNSChallenge == nil) {
			t.Fatalf("201 without a challenge: %s", out)
		}
	})
}

// FuzzRevokeBody posts arbitrary bodies to POST /v1/registry/revoke:
// never a 5xx nor a panic.
func FuzzRevokeBody(f *testing.F) {
	srv := certFuzzServer(f)
	notes := "seed"
	for _, req := range []registry.RevokeRequest{
		{AMID: certFuzzAMID(1), Reason: registry.ReasonKeyCompromise, RevokerAMID: certFuzzAMID(1), Signed: certFuzzSigned(1)},
		{AMID: certFuzzAMID(2), Reason: registry.ReasonOther, Notes: &notes, RevokerAMID: certFuzzAMID(3), Signed: certFuzzSigned(3)},
	} {
		b, _ := json.Marshal(req)
		f.Add(b)
	}
	f.Add([]byte(`{"amid":"","reason":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		code, out := certFuzzPost(t, srv, "/v1/registry/revoke", body)
		var resp registry.RevokeResponse
		if code == http.StatusOK && (json.Unmarshal(out, &resp) != nil || !resp.Success || resp.RevocationID == nil) {
			t.Fatalf("200 without a revocation: %s", out)
		}
	})
}

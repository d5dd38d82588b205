package registryserver

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// repFuzzKeys are the signing keys of the agents the reputation fuzz target
// registers, fixed so that seeds can name them:
// 2Q9boakiaLpPhsLcmHRQxRpCDK7P (anonymous), 31RMVX9T565m2c8SVwuLSnMxKmxL
// (verified) and 37wA6gdc1jZ7LqFZdUaSLYuaoca (organization).
func repFuzzKeys() []ed25519.PrivateKey {
	var keys []ed25519.PrivateKey
	for i := range 3 {
		seed := make([]byte, ed25519.SeedSize)
		copy(seed, "reputation fuzz agent")
		seed[ed25519.SeedSize-1] = byte(i)
		keys = append(keys, ed25519.NewKeyFromSeed(seed))
	}
	return keys
}

// repFuzzPaths are the endpoints the fuzz target posts to.
var repFuzzPaths = []string{
	"/v1/registry/reputation",
	"/v1/registry/reputation/feedback",
	"/v1/registry/reputation/session",
}

// FuzzReputationBody posts arbitrary bodies to the reputation endpoints of a
// real server over one SQLite store: no input may crash the server or make
// it answer 5xx. With sign set, a body that is a JSON object naming a known
// agent as from_amid or reporter_amid gets a fresh signature by that agent,
// so that the checks behind signature verification are reached too.
func FuzzReputationBody(f *testing.F) {
	ctx := context.Background()
	st := newSQLiteStore(f)
	clk := newClock()
	srv, err := New(Config{Store: st, Now: clk.Now, TrustForwardedFor: true,
		RequestsPerMinute: 1 << 30, RequestBurst: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	keys := repFuzzKeys()
	byAMID := map[string]ed25519.PrivateKey{}
	tiers := []registry.Tier{registry.TierAnonymous, registry.TierVerified, registry.TierOrganization}
	for i, k := range keys {
		pub := k.Public().(ed25519.PublicKey)
		amid := string(protocol.DeriveAMID(pub))
		xk, err := ecdh.X25519().NewPrivateKey(k.Seed())
		if err != nil {
			f.Fatal(err)
		}
		byAMID[amid] = k
		now := clk.Now().Add(-time.Duration(i) * 5 * 24 * time.Hour)
		if err := st.InsertAgent(ctx, &Agent{
			AMID: amid, SigningPublicKey: protocol.EncodeSigningPublicKey(pub), ExchangePublicKey: protocol.EncodeExchangePublicKey(xk.PublicKey()),
			Tier: tiers[i], RelayEndpoint: registry.DefaultRelayEndpoint, Status: "offline",
			ReputationScore: 0.5, LastSeen: now, CreatedAt: now, UpdatedAt: now,
		}); err != nil {
			f.Fatal(err)
		}
	}
	// The seeds (testdata/fuzz/FuzzReputationBody) rate within this
	// session and report others.
	a0 := string(protocol.DeriveAMID(keys[0].Public().(ed25519.PublicKey)))
	a1 := string(protocol.DeriveAMID(keys[1].Public().(ed25519.PublicKey)))
	if _, err := st.RecordSessionReport(ctx, SessionReportInput{SessionID: "fuzz-s1", InitiatorAMID: a0, ReceiverAMID: a1,
		Intent: "chat", StartedAt: clk.Now(), ReporterAMID: a0, Outcome: registry.OutcomeSuccess}, clk.Now()); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, which uint8, body []byte, sign bool) {
		clk.Advance(time.Millisecond)
		if sign {
			body = repFuzzSign(body, byAMID, clk.Now())
		}
		req := httptest.NewRequest(http.MethodPost, repFuzzPaths[int(which)%len(repFuzzPaths)], bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "198.51.100."+string(rune('1'+which%8)))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s answered %d to %q: %s", req.URL.Path, rec.Code, body, rec.Body.Bytes())
		}
		if rec.Code != http.StatusOK {
			var er registry.ErrorResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || er.Error == "" || er.Code == "" {
				t.Fatalf("%d without an error body: %s", rec.Code, rec.Body.Bytes())
			}
		}
	})
}

// repFuzzSign gives body, if it is a JSON object whose from_amid or
// reporter_amid names one of keys, a fresh timestamp signature by that key.
func repFuzzSign(body []byte, keys map[string]ed25519.PrivateKey, now time.Time) []byte {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&m) != nil || m == nil {
		return body
	}
	for _, field := range []string{"from_amid", "reporter_amid"} {
		amid, _ := m[field].(string)
		if k, ok := keys[amid]; ok {
			ts := protocol.FormatSigningTimestamp(now)
			m["timestamp"], m["signature"] = ts, protocol.SignTimestamp(k, ts)
			out, err := json.Marshal(m)
			if err != nil {
				return body
			}
			return out
		}
	}
	return body
}

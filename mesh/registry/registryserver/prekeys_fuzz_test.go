package registryserver

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Fuzz bodies may hold these placeholders; the harness replaces them with a
// fresh timestamp and the fuzz agent's signature over it, so that mutated
// bodies get past authentication and reach validation and storage.
var (
	fuzzTimestamp = []byte("@TS@")
	fuzzSignature = []byte("@SIG@")
)

// fuzzKeys are the fixed keys of the agent the seed corpus names: signing
// key, exchange key and a signed prekey, derived from constant strings.
func fuzzKeys() (ed25519.PrivateKey, *ecdh.PrivateKey, *ecdh.PrivateKey) {
	seed := sha256.Sum256([]byte("agentmesh registryserver FuzzPrekeyUploadBody signing"))
	x := sha256.Sum256([]byte("agentmesh registryserver FuzzPrekeyUploadBody exchange"))
	p := sha256.Sum256([]byte("agentmesh registryserver FuzzPrekeyUploadBody prekey"))
	xk, err := ecdh.X25519().NewPrivateKey(x[:])
	if err != nil {
		panic(err)
	}
	pk, err := ecdh.X25519().NewPrivateKey(p[:])
	if err != nil {
		panic(err)
	}
	return ed25519.NewKeyFromSeed(seed[:]), xk, pk
}

func FuzzPrekeyUploadBody(f *testing.F) {
	signing, exchange, prekey := fuzzKeys()
	pub := signing.Public().(ed25519.PublicKey)
	amid := string(protocol.DeriveAMID(pub))

	st := newSQLiteStore(f)
	// The fuzz store need not survive a crash: one connection without
	// fsync makes each input cheap. Inputs run one at a time, and the
	// handler never needs a second connection while it holds one.
	st.db.SetMaxOpenConns(1)
	if _, err := st.db.Exec(`PRAGMA synchronous = OFF`); err != nil {
		f.Fatal(err)
	}
	clk := newClock()
	srv, err := New(Config{
		Store: st, Now: clk.Now, Logger: hclog.NewNullLogger(),
		RequestsPerMinute: 1 << 30, RequestBurst: 1 << 30,
	})
	if err != nil {
		f.Fatal(err)
	}
	now := clk.Now()
	if err := st.InsertAgent(context.Background(), &Agent{
		AMID: amid, SigningPublicKey: protocol.EncodeSigningPublicKey(pub),
		ExchangePublicKey: protocol.EncodeExchangePublicKey(exchange.PublicKey()),
		Tier:              registry.TierAnonymous, RelayEndpoint: registry.DefaultRelayEndpoint,
		Status: "offline", ReputationScore: 0.5, LastSeen: now, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		f.Fatal(err)
	}

	spk := prekey.PublicKey().Bytes()
	valid, err := json.Marshal(map[string]any{
		"amid": amid, "signed_prekey": protocol.B64.EncodeToString(spk),
		"signed_prekey_signature": protocol.SignPrekey(signing, spk), "signed_prekey_id": 1,
		"one_time_prekeys": []map[string]any{{"id": 1, "key": protocol.B64.EncodeToString(spk)}},
		"timestamp":        string(fuzzTimestamp), "signature": string(fuzzSignature),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)

	f.Fuzz(func(t *testing.T, body []byte) {
		clk.Advance(time.Second) // a fresh timestamp, hence a fresh signature
		ts := protocol.FormatSigningTimestamp(clk.Now())
		body = bytes.ReplaceAll(body, fuzzTimestamp, []byte(ts))
		body = bytes.ReplaceAll(body, fuzzSignature, []byte(protocol.SignTimestamp(signing, ts)))

		r := httptest.NewRequest(http.MethodPost, "/v1/registry/prekeys", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body)
		}
		if w.Code == http.StatusOK {
			var resp registry.PrekeyUploadResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || !resp.Success {
				t.Fatalf("200 with body %s (%v)", w.Body, err)
			}
			return
		}
		var er registry.ErrorResponse
		if err := json.Unmarshal(w.Body.Bytes(), &er); err != nil || er.Error == "" || er.Code == "" {
			t.Fatalf("status %d with body %s (%v)", w.Code, w.Body, err)
		}
		if er.Code == "too_many_prekeys" {
			// Make room again, so that later inputs reach storage.
			if _, err := st.db.Exec(`DELETE FROM one_time_prekeys WHERE amid = $1`, amid); err != nil {
				t.Fatal(err)
			}
		}
	})
}

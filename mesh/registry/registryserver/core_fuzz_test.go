package registryserver

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// The fuzz targets send arbitrary input to the real handlers over a SQLite
// store and fail on any 5xx answer, a panic, or an answer that is not JSON.
//
// Bodies may hold placeholders that the harness fills in before sending,
// so that mutated requests still get past the signature and reach the
// store: @AMID, @SPK and @XPK (a fresh agent's AMID and keys, or the
// registered agent's for the signed updates), @TS and @SIG (a fresh
// timestamp and its signature).

// coreFuzzEnv is a server over a SQLite store whose clock moves 1 ms per
// request, so that every signature the harness makes is new.
type coreFuzzEnv struct {
	srv   *Server
	store *Store
	ms    atomic.Int64
	seq   atomic.Uint64
}

func newCoreFuzzEnv(f testing.TB) *coreFuzzEnv {
	f.Helper()
	fe := &coreFuzzEnv{store: newSQLiteStore(f)}
	fe.ms.Store(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).UnixMilli())
	srv, err := New(Config{
		Store: fe.store, Now: func() time.Time { return time.UnixMilli(fe.ms.Load()).UTC() },
		Logger:            hclog.NewNullLogger(),
		RequestsPerMinute: 1 << 30, RequestBurst: 1 << 30,
	})
	if err != nil {
		f.Fatal(err)
	}
	fe.srv = srv
	return fe
}

// tick moves the clock on and returns a fresh signed timestamp by key.
func (fe *coreFuzzEnv) tick(key ed25519.PrivateKey) (ts, sig string) {
	now := time.UnixMilli(fe.ms.Add(1)).UTC()
	ts = protocol.FormatSigningTimestamp(now)
	return ts, protocol.SignTimestamp(key, ts)
}

// coreFuzzKeys derives an agent's keys from n, cheaply and reproducibly.
func coreFuzzKeys(n uint64) (ed25519.PrivateKey, *ecdh.PrivateKey) {
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], n)
	s := sha256.Sum256(append([]byte("fuzz-signing"), seed[:]...))
	x := sha256.Sum256(append([]byte("fuzz-exchange"), seed[:]...))
	xk, err := ecdh.X25519().NewPrivateKey(x[:])
	if err != nil {
		panic(err)
	}
	return ed25519.NewKeyFromSeed(s[:]), xk
}

// fillCorePlaceholders replaces the placeholders of body.
func fillCorePlaceholders(body []byte, sk ed25519.PrivateKey, xk *ecdh.PublicKey, ts, sig string) []byte {
	pub := sk.Public().(ed25519.PublicKey)
	r := [][2]string{
		{"@AMID", string(protocol.DeriveAMID(pub))},
		{"@SPK", protocol.EncodeSigningPublicKey(pub)},
		{"@XPK", protocol.EncodeExchangePublicKey(xk)},
		{"@TS", ts},
		{"@SIG", sig},
	}
	for _, kv := range r {
		body = bytes.ReplaceAll(body, []byte(kv[0]), []byte(kv[1]))
	}
	return body
}

// checkCoreFuzzAnswer fails on a 5xx answer or one that is not a JSON object.
func checkCoreFuzzAnswer(t *testing.T, rec *httptest.ResponseRecorder, in []byte) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d for %q: %s", rec.Code, in, rec.Body)
	}
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("status %d, body not JSON for %q: %q", rec.Code, in, rec.Body)
	}
	if rec.Code >= 400 {
		if msg, _ := v["error"].(string); msg == "" {
			t.Fatalf("status %d without an error for %q: %s", rec.Code, in, rec.Body)
		}
	}
}

// TestFuzzPlaceholders checks that the harness's placeholders make a
// request that succeeds, so that mutations of it reach the store.
func TestFuzzPlaceholders(t *testing.T) {
	fe := newCoreFuzzEnv(t)
	body := []byte(`{"amid":"@AMID","signing_public_key":"@SPK","exchange_public_key":"@XPK","capabilities":["chat"],"timestamp":"@TS","signature":"@SIG"}`)
	sk, xk := coreFuzzKeys(fe.seq.Add(1))
	ts, sig := fe.tick(sk)
	if rec := serveCore(fe.srv, http.MethodPost, "/v1/registry/register", fillCorePlaceholders(body, sk, xk.PublicKey(), ts, sig)); rec.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	ts, sig = fe.tick(sk)
	status := fillCorePlaceholders([]byte(`{"amid":"@AMID","status":"online","timestamp":"@TS","signature":"@SIG"}`), sk, xk.PublicKey(), ts, sig)
	if rec := serveCore(fe.srv, http.MethodPost, "/v1/registry/status", status); rec.Code != http.StatusOK {
		t.Fatalf("status: %d %s", rec.Code, rec.Body)
	}
}

func FuzzRegisterBody(f *testing.F) {
	fe := newCoreFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		sk, xk := coreFuzzKeys(fe.seq.Add(1))
		ts, sig := fe.tick(sk)
		in := fillCorePlaceholders(body, sk, xk.PublicKey(), ts, sig)
		rec := serveCore(fe.srv, http.MethodPost, "/v1/registry/register", in)
		checkCoreFuzzAnswer(t, rec, in)
		if rec.Code == http.StatusCreated {
			var resp registry.RegisterResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || !resp.Success || !resp.Tier.Valid() {
				t.Fatalf("201 with %s", rec.Body)
			}
			// A registered agent can be looked up and described.
			for _, target := range []string{"/v1/registry/lookup?amid=" + resp.AMID, "/v1/registry/did/" + resp.AMID} {
				if rec := serveCore(fe.srv, http.MethodGet, target, nil); rec.Code != http.StatusOK {
					t.Fatalf("%s after registering %q: %d %s", target, in, rec.Code, rec.Body)
				}
			}
		}
	})
}

func FuzzSearchQuery(f *testing.F) {
	fe := newCoreFuzzEnv(f)
	ctx := context.Background()
	now := time.UnixMilli(fe.ms.Load()).UTC()
	for i := range 30 {
		sk, xk := coreFuzzKeys(uint64(1_000_000 + i))
		pub := sk.Public().(ed25519.PublicKey)
		caps := []string{"chat"}
		if i%2 == 0 {
			caps = append(caps, "translate")
		}
		if i%3 == 0 {
			caps = append(caps, "ü/ñ")
		}
		tier := []registry.Tier{registry.TierAnonymous, registry.TierVerified, registry.TierOrganization}[i%3]
		err := fe.store.InsertAgent(ctx, &Agent{
			AMID: string(protocol.DeriveAMID(pub)), SigningPublicKey: protocol.EncodeSigningPublicKey(pub),
			ExchangePublicKey: protocol.EncodeExchangePublicKey(xk.PublicKey()), Tier: tier, Capabilities: caps,
			RelayEndpoint: registry.DefaultRelayEndpoint, Status: presenceValues[i%4],
			ReputationScore: float64(i) / 30, RatingsCount: i % 8,
			LastSeen: now.Add(-time.Duration(i%5) * time.Minute), CreatedAt: now, UpdatedAt: now,
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest(http.MethodGet, "/v1/registry/search", nil)
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		fe.srv.ServeHTTP(rec, req)
		checkCoreFuzzAnswer(t, rec, []byte(query))
		if rec.Code != http.StatusOK {
			return
		}
		var resp registry.SearchResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Limit < 1 || resp.Limit > registry.MaxSearchLimit || len(resp.Results) > resp.Limit ||
			resp.Offset < 0 || resp.Total < len(resp.Results) || resp.Results == nil {
			t.Fatalf("search %q: limit %d offset %d total %d with %d results", query, resp.Limit, resp.Offset, resp.Total, len(resp.Results))
		}
		for i := 1; i < len(resp.Results); i++ {
			a, b := resp.Results[i-1], resp.Results[i]
			if a.ReputationStatus == "unrated" && b.ReputationStatus == "rated" ||
				a.ReputationStatus == b.ReputationStatus && a.ReputationScore < b.ReputationScore {
				t.Fatalf("search %q: %s (%s %v) ranked before %s (%s %v)", query,
					a.AMID, a.ReputationStatus, a.ReputationScore, b.AMID, b.ReputationStatus, b.ReputationScore)
			}
		}
	})
}

func FuzzStatusBody(f *testing.F) {
	fe := newCoreFuzzEnv(f)
	sk, xk := coreFuzzKeys(0)
	pub := sk.Public().(ed25519.PublicKey)
	now := time.UnixMilli(fe.ms.Load()).UTC()
	if err := fe.store.InsertAgent(context.Background(), &Agent{
		AMID: string(protocol.DeriveAMID(pub)), SigningPublicKey: protocol.EncodeSigningPublicKey(pub),
		ExchangePublicKey: protocol.EncodeExchangePublicKey(xk.PublicKey()), Tier: registry.TierAnonymous,
		Capabilities: []string{}, RelayEndpoint: registry.DefaultRelayEndpoint, Status: "offline",
		ReputationScore: 0.5, LastSeen: now, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, capabilities bool) {
		ts, sig := fe.tick(sk)
		in := fillCorePlaceholders(body, sk, xk.PublicKey(), ts, sig)
		path := "/v1/registry/status"
		if capabilities {
			path = "/v1/registry/capabilities"
		}
		checkCoreFuzzAnswer(t, serveCore(fe.srv, http.MethodPost, path, in), in)
	})
}

package registryserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// coreBenchStores runs fn as sub-benchmarks "sqlite" and "postgres", each on a
// store opened once for all of that sub-benchmark's runs.
func coreBenchStores(b *testing.B, fn func(b *testing.B, st *Store)) {
	for _, open := range []struct {
		name string
		open func(testing.TB) *Store
	}{{"sqlite", newSQLiteStore}, {"postgres", newPostgresStore}} {
		b.Run(open.name, func(b *testing.B) { fn(b, open.open(b)) })
	}
}

// newCoreBenchServer is a registry over st whose clock stands still at the
// returned time, with no rate limit and no logging.
func newCoreBenchServer(b *testing.B, st *Store) (*Server, time.Time) {
	b.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	srv, err := New(Config{
		Store: st, Now: func() time.Time { return now }, Logger: hclog.NewNullLogger(),
		RequestsPerMinute: 1 << 30, RequestBurst: 1 << 30,
	})
	if err != nil {
		b.Fatal(err)
	}
	return srv, now
}

// serveCore runs one request through the server's handler.
func serveCore(srv *Server, method, target string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}

// BenchmarkRegister measures POST /v1/registry/register through the
// server's handler: decoding, key and field checks, the signature (Ed25519
// verification and the replay record) and the insert. Every request is a
// distinct agent, so every signature is new.
func BenchmarkRegister(b *testing.B) {
	coreBenchStores(b, func(b *testing.B, st *Store) {
		srv, now := newCoreBenchServer(b, st)
		ts := protocol.FormatSigningTimestamp(now)
		caps := []string{"chat", "translate", "weather/forecast"}
		bodies := make([][]byte, b.N)
		for i := range bodies {
			a := newTestAgent(b)
			body, err := json.Marshal(registry.RegisterRequest{
				AMID: a.AMID, SigningPublicKey: a.SigningPublic(), ExchangePublicKey: a.ExchangePublic(),
				Capabilities: caps,
				Signed:       registry.Signed{Timestamp: ts, Signature: protocol.SignTimestamp(a.Signing, ts)},
			})
			if err != nil {
				b.Fatal(err)
			}
			bodies[i] = body
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if rec := serveCore(srv, http.MethodPost, "/v1/registry/register", bodies[i]); rec.Code != http.StatusCreated {
				b.Fatalf("register: %d %s", rec.Code, rec.Body)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
}

// benchLookupAgents is how many agents BenchmarkLookup spreads its lookups
// over.
const benchLookupAgents = 500

// BenchmarkLookup measures GET /v1/registry/lookup through the server's
// handler over a store of benchLookupAgents agents.
func BenchmarkLookup(b *testing.B) {
	coreBenchStores(b, func(b *testing.B, st *Store) {
		srv, now := newCoreBenchServer(b, st)
		ctx := context.Background()
		targets := make([]string, benchLookupAgents)
		for i := range targets {
			a := newTestAgent(b)
			if err := st.InsertAgent(ctx, &Agent{
				AMID: a.AMID, SigningPublicKey: a.SigningPublic(), ExchangePublicKey: a.ExchangePublic(),
				Tier: registry.TierAnonymous, Capabilities: []string{"chat", "translate"},
				RelayEndpoint: registry.DefaultRelayEndpoint, Status: "online", ReputationScore: 0.5,
				LastSeen: now, CreatedAt: now, UpdatedAt: now,
			}); err != nil {
				b.Fatal(err)
			}
			targets[i] = "/v1/registry/lookup?amid=" + a.AMID
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if rec := serveCore(srv, http.MethodGet, targets[i%len(targets)], nil); rec.Code != http.StatusOK {
				b.Fatalf("lookup: %d %s", rec.Code, rec.Body)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
}

// BenchmarkRememberSignature measures the replay record every signed
// request writes: as the store does it ("expire+insert": delete expired
// records, then insert), the delete alone when nothing has expired, and the
// insert alone. The clock moves 1 ms per call
// and records live 1 s, so once warm each call finds about one expired
// record, as a registry under steady load does.
func BenchmarkRememberSignature(b *testing.B) {
	coreBenchStores(b, func(b *testing.B, st *Store) {
		ctx := context.Background()
		clock := time.Now()
		seq := 0
		next := func() (string, time.Time) {
			seq++
			clock = clock.Add(time.Millisecond)
			return "sig-" + strconv.Itoa(seq), clock
		}
		b.Run("expire+insert", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				sig, now := next()
				if fresh, err := st.RememberSignature(ctx, "amid", sig, now.Add(time.Second), now); err != nil || !fresh {
					b.Fatal(fresh, err)
				}
			}
		})
		b.Run("expire-nothing", func(b *testing.B) {
			// The DELETE alone when no record has expired.
			b.ReportAllocs()
			for range b.N {
				if _, err := st.db.ExecContext(ctx, `DELETE FROM seen_signatures WHERE expires_at < $1`, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("insert", func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				sig, now := next()
				if _, err := st.db.ExecContext(ctx, `INSERT INTO seen_signatures (signature, amid, expires_at) VALUES ($1, $2, $3)
					ON CONFLICT (signature) DO NOTHING`, sig, "amid", millis(now.Add(time.Second))); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

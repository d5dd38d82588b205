package registryserver

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// postgresURL is the PostgreSQL server the tests use; each test gets a
// schema of its own there.
func postgresURL() string {
	if u := os.Getenv("AGENTMESH_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// forEachStore runs fn as a subtest on a fresh SQLite store in a temp dir
// and on a fresh PostgreSQL schema. PostgreSQL must be reachable: its
// subtest fails, never skips, when it is not.
func forEachStore(t *testing.T, fn func(t *testing.T, st *Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, newSQLiteStore(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, newPostgresStore(t)) })
}

func newSQLiteStore(t testing.TB) *Store {
	t.Helper()
	st, err := OpenStore(context.Background(), "sqlite://"+t.TempDir()+"/registry.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newPostgresStore(t testing.TB) *Store {
	t.Helper()
	ctx := context.Background()
	admin, err := sql.Open("pgx", postgresURL())
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		t.Fatalf("PostgreSQL at %s is required by the registry tests (set AGENTMESH_TEST_POSTGRES to use another): %v", postgresURL(), err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "regtest_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		admin.Close()
	})
	st, err := OpenStore(ctx, postgresURL()+"&search_path="+schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// clock is a settable clock for servers under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testEnv is a registry server on loopback over one store, with a client.
type testEnv struct {
	t      testing.TB
	store  *Store
	server *Server
	http   *httptest.Server
	client *registry.Client
	clock  *clock
}

// newEnv starts a server over st; opts may adjust the config first.
func newEnv(t testing.TB, st *Store, opts ...func(*Config)) *testEnv {
	t.Helper()
	clk := newClock()
	cfg := Config{
		Store:  st,
		Now:    clk.Now,
		Logger: logtest.Logger(t, "registry", hclog.Warn),
		// Tests send many requests from one address.
		RequestsPerMinute: 1 << 20,
		RequestBurst:      1 << 20,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	c, err := registry.NewClient(hs.URL + "/v1")
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, store: st, server: srv, http: hs, client: c, clock: clk}
}

// testAgent is an agent's keys for tests.
type testAgent struct {
	AMID     string
	Signing  ed25519.PrivateKey
	Exchange *ecdh.PrivateKey
	Signer   *registry.Signer
}

func newTestAgent(t testing.TB) *testAgent {
	t.Helper()
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := registry.NewSigner(sk)
	return &testAgent{AMID: string(signer.AMID), Signing: sk, Exchange: xk, Signer: signer}
}

func (a *testAgent) SigningPublic() string {
	return protocol.EncodeSigningPublicKey(a.Signing.Public().(ed25519.PublicKey))
}

func (a *testAgent) ExchangePublic() string {
	return protocol.EncodeExchangePublicKey(a.Exchange.PublicKey())
}

// sign signs a request at the server's current time, with the timestamp
// written as JavaScript clients write it ("2006-01-02T15:04:05.000Z").
// An agent's registry.Signer signs at the real time in the Go form
// ("2006-01-02T15:04:05.123+00:00"), so when a test signs for one agent
// both ways within one millisecond the two signatures still differ and
// the registry never refuses the second request as a replay of the first.
// Calling sign twice at the same server time gives the same signature.
func (e *testEnv) sign(a *testAgent) registry.Signed {
	ts := protocol.FormatJSTimestamp(e.clock.Now())
	return registry.Signed{Timestamp: ts, Signature: protocol.SignTimestamp(a.Signing, ts)}
}

// addAgent stores a new agent directly, bypassing the HTTP API, created
// at the server's current time with the given tier.
func (e *testEnv) addAgent(tier registry.Tier, caps ...string) *testAgent {
	e.t.Helper()
	a := newTestAgent(e.t)
	now := e.clock.Now()
	err := e.store.InsertAgent(context.Background(), &Agent{
		AMID: a.AMID, SigningPublicKey: a.SigningPublic(), ExchangePublicKey: a.ExchangePublic(),
		Tier: tier, Capabilities: caps, RelayEndpoint: registry.DefaultRelayEndpoint,
		Status: "offline", ReputationScore: 0.5, LastSeen: now, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func TestStoreOpensAndReplaysSignatures(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		ctx := context.Background()
		now := time.Now()
		fresh, err := st.RememberSignature(ctx, "a", "sig", now.Add(time.Minute), now)
		if err != nil || !fresh {
			t.Fatalf("first use: fresh=%v err=%v", fresh, err)
		}
		fresh, err = st.RememberSignature(ctx, "a", "sig", now.Add(time.Minute), now)
		if err != nil || fresh {
			t.Fatalf("second use: fresh=%v err=%v, want refused", fresh, err)
		}
		// Once expired, the record is gone.
		fresh, err = st.RememberSignature(ctx, "a", "sig", now.Add(3*time.Minute), now.Add(2*time.Minute))
		if err != nil || !fresh {
			t.Fatalf("after expiry: fresh=%v err=%v", fresh, err)
		}
	})
}

func TestServerAnswersOverHTTP(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newEnv(t, st)
		a := e.addAgent(registry.TierAnonymous)
		got, err := st.Agent(context.Background(), a.AMID)
		if err != nil || got.SigningPublicKey != a.SigningPublic() {
			t.Fatalf("Agent = %+v, %v", got, err)
		}
		if _, err := st.Agent(context.Background(), "nope"); err != ErrNotFound {
			t.Fatalf("unknown agent: %v, want ErrNotFound", err)
		}
	})
}

// wantAPIError checks that err is an *registry.APIError with status and code.
func wantAPIError(t *testing.T, err error, status int, code string) *registry.APIError {
	t.Helper()
	var ae *registry.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want API error %d %s", err, status, code)
	}
	if ae.StatusCode != status || ae.Code != code {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
	return ae
}

// postRaw posts body (marshalled unless it is []byte) to path.
func (e *testEnv) postRaw(path string, body any) (int, registry.ErrorResponse) {
	e.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	resp, err := e.http.Client().Post(e.http.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var er registry.ErrorResponse
	json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er
}

// getStatus sends a GET and returns the status and decoded error.
func (e *testEnv) getStatus(pathAndQuery string) (int, registry.ErrorResponse) {
	e.t.Helper()
	resp, err := http.Get(e.http.URL + pathAndQuery)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var er registry.ErrorResponse
	json.Unmarshal(data, &er)
	return resp.StatusCode, er
}

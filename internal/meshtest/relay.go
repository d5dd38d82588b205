package meshtest

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/relay/relayserver"
)

// Relay is a real relay server on loopback over a SQLite store.
type Relay struct {
	// URL is the WebSocket URL agents dial: ws://…/v1/connect.
	URL string
	// Server is the relay's handler.
	Server *relayserver.Server
	// Store keeps the relay's messages for offline agents.
	Store *relayserver.Store
	// HTTP serves Server.
	HTTP *httptest.Server
}

// RelayOptions shape a test relay. The zero value is a relay on the real
// clock, without rate limits, that discards its logs.
type RelayOptions struct {
	// Now is the relay's clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the relay's logs; nil discards them.
	Logger hclog.Logger
	// Configure, when set, sees the Config last, before the server is
	// made; it may set rate limits again, for one.
	Configure func(*relayserver.Config)
}

// NoLimits are relay rate limits that limit nothing.
var NoLimits = relayserver.Limits{
	SendsPerMinute:    -1,
	KnocksPerMinute:   -1,
	ICEPerMinute:      -1,
	PresencePerMinute: -1,
	ControlPerMinute:  -1,
}

// StartRelay starts a relay server on loopback for the test. Its store is a
// SQLite database in t.TempDir() and its rate limits are off (NoLimits).
// Server and store are closed when the test ends.
func StartRelay(t testing.TB, o RelayOptions) *Relay {
	t.Helper()
	st, err := relayserver.OpenStore(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "relay.db"))
	if err != nil {
		t.Fatalf("meshtest: relay store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := relayserver.Config{Store: st, Logger: o.Logger, Now: o.Now, Limits: NoLimits}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	srv, err := relayserver.New(cfg)
	if err != nil {
		t.Fatalf("meshtest: relay server: %v", err)
	}
	hs := httptest.NewServer(srv)
	// Cleanups run last first: the listener, then the server, then the
	// store registered above.
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &Relay{
		URL:    "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/connect",
		Server: srv,
		Store:  st,
		HTTP:   hs,
	}
}

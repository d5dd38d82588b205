// Command agentmesh-registry runs the AgentMesh registry: the HTTP service
// where agents register, find each other, fetch prekey bundles, get
// certified and earn reputation.
//
// With no flags it listens on 127.0.0.1:8080 and keeps its data in an
// embedded SQLite database and its root CA key under
// $AGENTMESH_HOME/registry (default ~/.agentmesh/registry).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/servercmd"
	"github.com/agentmesh/agentmesh-go/mesh/registry/registryserver"
)

const usage = `Usage: agentmesh-registry [flags]

Run the AgentMesh registry (protocol agentmesh/0.2).

Examples:
  # Embedded SQLite under ~/.agentmesh/registry, loopback only
  agentmesh-registry

  # Shared PostgreSQL, behind a TLS-terminating proxy
  agentmesh-registry --listen 0.0.0.0:8080 --trust-forwarded-for \
      --database postgres://registry@db:5432/registry

  # Serve TLS directly
  agentmesh-registry --listen :8443 --tls-cert cert.pem --tls-key key.pem

  # Sign with a new root CA from now on (earlier roots stay published)
  agentmesh-registry --rotate-root-ca

Flags:
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr))
}

type options struct {
	listen, database, rootCA string
	tlsCert, tlsKey          string
	dnsServer                string
	trustForwardedFor        bool
	logLevel                 string
	logJSON                  bool
	requestsPerMinute        int
	rotateRootCA             bool
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	home, dataErr := servercmd.Home(getenv)
	dataDir := filepath.Join(home, "registry")
	var o options
	fs := flag.NewFlagSet("agentmesh-registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
		fmt.Fprint(stderr, `
Environment:
  AGENTMESH_HOME          state directory (default ~/.agentmesh)
  DATABASE_URL            database, when --database is not given
  GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET
                          OAuth apps for verified agents (providers without both stay disabled)
  OAUTH_CALLBACK_BASE_URL public base URL of this registry for OAuth callbacks
`)
	}
	defaultDB := "sqlite://" + filepath.Join(dataDir, "registry.db")
	if u := getenv("DATABASE_URL"); u != "" {
		defaultDB = u
	}
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.database, "database", defaultDB, "database: sqlite:///path/to/file.db or postgres://user@host:port/db")
	fs.StringVar(&o.rootCA, "root-ca", filepath.Join(dataDir, "ca"), "directory of the root CA key and certificates (created on first start)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.StringVar(&o.dnsServer, "dns-server", "", "DNS server (host:port) for organization domain checks (default: the system resolver)")
	fs.BoolVar(&o.trustForwardedFor, "trust-forwarded-for", false, "take client addresses from X-Forwarded-For (only behind a proxy that sets it)")
	fs.BoolVar(&o.rotateRootCA, "rotate-root-ca", false, "start signing with a new root CA; certificates of earlier roots stay valid until they expire")
	fs.IntVar(&o.requestsPerMinute, "rate-limit", 600, "requests per minute allowed from one client address")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log in JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return servercmd.ExitOK
		}
		return servercmd.ExitUsage
	}
	if !servercmd.CheckArgs(stderr, "agentmesh-registry", fs, o.tlsCert, o.tlsKey) {
		return servercmd.ExitUsage
	}
	level, ok := servercmd.ParseLevel(stderr, "agentmesh-registry", o.logLevel)
	if !ok {
		return servercmd.ExitUsage
	}
	if dataErr != nil && (!servercmd.FlagSet(fs, "database") || !servercmd.FlagSet(fs, "root-ca")) {
		fmt.Fprintf(stderr, "Error: %v\nHint: set AGENTMESH_HOME, or pass --database and --root-ca\n", dataErr)
		return servercmd.ExitError
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "registry", Level: level, JSONFormat: o.logJSON, Output: stderr})
	if err := serve(ctx, o, getenv, log); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return servercmd.ExitError
	}
	return servercmd.ExitOK
}

func serve(ctx context.Context, o options, getenv func(string) string, log hclog.Logger) error {
	if err := servercmd.PrepareSQLite(o.database); err != nil {
		return err
	}
	store, err := registryserver.OpenStore(ctx, o.database)
	if err != nil {
		return err
	}
	defer store.Close()

	ca, err := registryserver.LoadAuthority(o.rootCA, time.Now())
	if err != nil {
		return fmt.Errorf("root CA: %w", err)
	}
	if o.rotateRootCA {
		root, err := ca.Rotate(time.Now())
		if err != nil {
			return fmt.Errorf("rotate root CA: %w", err)
		}
		log.Info("root CA rotated", "serial", root.SerialNumber.Text(16), "not_after", root.NotAfter)
	}

	cfg := registryserver.Config{
		Store:             store,
		Logger:            log,
		Authority:         ca,
		OAuth:             registryserver.OAuthConfigFromEnv(getenv),
		TrustForwardedFor: o.trustForwardedFor,
		RequestsPerMinute: o.requestsPerMinute,
	}
	if o.dnsServer != "" {
		if _, _, err := net.SplitHostPort(o.dnsServer); err != nil {
			return fmt.Errorf("--dns-server %q: want host:port: %w", o.dnsServer, err)
		}
		server := o.dnsServer
		cfg.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	srv, err := registryserver.New(cfg)
	if err != nil {
		return err
	}
	log.Info("registry store open", "database", string(store.Dialect()))
	return servercmd.Serve(ctx, servercmd.Server{
		Name: "registry", Listen: o.listen, TLSCert: o.tlsCert, TLSKey: o.tlsKey,
		Scheme: "http", Path: "/v1", Handler: srv, Logger: log,
		HTTP: func(hs *http.Server) {
			hs.ReadTimeout = 30 * time.Second
			hs.WriteTimeout = 30 * time.Second
		},
	})
}

// Command agentmesh-relay runs the AgentMesh relay: the WebSocket service
// that routes end-to-end encrypted messages between agents and keeps them
// for agents that are offline.
//
// With no flags it listens on 127.0.0.1:8765 and keeps queued messages in
// an embedded SQLite database, $AGENTMESH_HOME/relay/relay.db (default
// ~/.agentmesh/relay/relay.db).
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
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/servercmd"
	"github.com/agentmesh/agentmesh-go/mesh/relay/relayserver"
)

const usage = `Usage: agentmesh-relay [flags]

Run the AgentMesh relay (protocol agentmesh/0.2). Agents connect with a
WebSocket to ws://<listen>/v1/connect (wss:// with --tls-cert).

Examples:
  # Queue in SQLite under ~/.agentmesh/relay, loopback only
  agentmesh-relay

  # Public relay behind a TLS-terminating proxy
  agentmesh-relay --listen 0.0.0.0:8765 --store sqlite:///var/lib/agentmesh/relay.db

  # Serve TLS directly, with JSON logs
  agentmesh-relay --listen :443 --tls-cert cert.pem --tls-key key.pem --log-json

Flags:
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr))
}

type options struct {
	listen, store   string
	tlsCert, tlsKey string
	logLevel        string
	logJSON         bool
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	home, homeErr := servercmd.Home(getenv)
	var o options
	fs := flag.NewFlagSet("agentmesh-relay", flag.ContinueOnError)
	// Parse errors are reported below, in the Error/Hint form.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	printUsage := func() {
		fmt.Fprint(stderr, usage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fmt.Fprint(stderr, `
Environment:
  AGENTMESH_HOME   state directory (default ~/.agentmesh)

Endpoints:
  /v1/connect      the relay WebSocket (any other path works too)
  /healthz         liveness: {"status":"ok"}
  /readyz          readiness: the store answers
`)
	}
	defaultStore := "sqlite://" + filepath.Join(home, "relay", "relay.db")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8765", "address to listen on (host:port)")
	fs.StringVar(&o.store, "store", defaultStore, "message store: sqlite:///path/to/relay.db")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve wss://")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log in JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage()
			return servercmd.ExitOK
		}
		fmt.Fprintf(stderr, "Error: %v\nHint: agentmesh-relay --help\n", err)
		return servercmd.ExitUsage
	}
	if !servercmd.CheckArgs(stderr, "agentmesh-relay", fs, o.tlsCert, o.tlsKey) {
		return servercmd.ExitUsage
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		fmt.Fprintf(stderr, "Error: --listen %q: want host:port\nHint: agentmesh-relay --listen 127.0.0.1:8765\n", o.listen)
		return servercmd.ExitUsage
	}
	if !strings.HasPrefix(o.store, "sqlite://") {
		fmt.Fprintf(stderr, "Error: --store %q: want sqlite:///path/to/relay.db\nHint: agentmesh-relay --store sqlite://%s\n",
			o.store, filepath.Join(os.TempDir(), "relay.db"))
		return servercmd.ExitUsage
	}
	level, ok := servercmd.ParseLevel(stderr, "agentmesh-relay", o.logLevel)
	if !ok {
		return servercmd.ExitUsage
	}
	if homeErr != nil && !servercmd.FlagSet(fs, "store") {
		fmt.Fprintf(stderr, "Error: %v\nHint: set AGENTMESH_HOME, or pass --store sqlite:///path/to/relay.db\n", homeErr)
		return servercmd.ExitError
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "relay", Level: level, JSONFormat: o.logJSON, Output: stderr})
	if err := serve(ctx, o, log); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		var hint string
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			hint = "agentmesh-relay --listen 127.0.0.1:0"
		case errors.Is(err, os.ErrPermission):
			hint = "agentmesh-relay --store sqlite://" + filepath.Join(os.TempDir(), "relay.db")
		}
		if hint != "" {
			fmt.Fprintf(stderr, "Hint: %s\n", hint)
		}
		return servercmd.ExitError
	}
	return servercmd.ExitOK
}

func serve(ctx context.Context, o options, log hclog.Logger) error {
	if err := servercmd.PrepareSQLite(o.store); err != nil {
		return err
	}
	store, err := relayserver.OpenStore(ctx, o.store)
	if err != nil {
		return err
	}
	defer store.Close()

	srv, err := relayserver.New(relayserver.Config{Store: store, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	return servercmd.Serve(ctx, servercmd.Server{
		Name: "relay", Listen: o.listen, TLSCert: o.tlsCert, TLSKey: o.tlsKey,
		Scheme: "ws", Path: "/v1/connect", Handler: srv, Logger: log,
		// No read or write timeout: relay connections live for hours and
		// are kept alive by pings. Shutdown waits only for plain HTTP
		// requests; the WebSocket connections are the relay's to close.
		HTTP: func(hs *http.Server) { hs.MaxHeaderBytes = 16 << 10 },
		Stop: func() { srv.Close() },
	})
}

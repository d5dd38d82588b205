// Package servercmd holds what the server commands (agentmesh-registry and
// agentmesh-relay) share: where state lives by default, preparing a SQLite
// file's directory, and serving HTTP with optional TLS until a signal says
// stop.
package servercmd

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

// Exit codes of the server commands.
const (
	ExitOK    = 0 // served and stopped cleanly, or printed help
	ExitError = 1 // failed while starting or serving
	ExitUsage = 2 // wrong flags or arguments
)

// Home is the AgentMesh state directory: $AGENTMESH_HOME, or ~/.agentmesh,
// made absolute.
func Home(getenv func(string) string) (string, error) {
	home := getenv("AGENTMESH_HOME")
	if home == "" {
		user, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find the home directory: %w", err)
		}
		home = filepath.Join(user, ".agentmesh")
	}
	return filepath.Abs(home)
}

// FlagSet reports whether the flag name was given on the command line.
func FlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// PrepareSQLite creates the directory of a "sqlite:///path" database,
// private (0700), when it does not exist; an existing directory is the
// operator's to arrange. Other URLs are left alone.
func PrepareSQLite(dsn string) error {
	path, ok := strings.CutPrefix(dsn, "sqlite://")
	if !ok {
		return nil
	}
	if strings.HasPrefix(path, "/./") {
		path = path[1:]
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := safefile.MkdirAll(dir); err != nil {
		return fmt.Errorf("database directory: %w", err)
	}
	return nil
}

// Server describes what Serve runs.
type Server struct {
	// Name is what the "<name> listening" log line calls the server.
	Name    string
	Listen  string // host:port
	TLSCert string // PEM files; both or neither
	TLSKey  string
	// Scheme and Path make the URL logged once listening, such as "ws"
	// (becoming "wss" with TLS) and "/v1/connect".
	Scheme, Path string
	Handler      http.Handler
	Logger       hclog.Logger
	// HTTP adjusts the http.Server before it starts (timeouts, limits).
	HTTP func(*http.Server)
	// Stop, if set, runs once the listener is closed and plain requests
	// have finished, to close what http.Server does not track (hijacked
	// connections such as WebSockets).
	Stop func()
}

// Serve listens on s.Listen and serves until ctx ends or SIGINT/SIGTERM
// arrives, then shuts down gracefully (at most 10 s). The TLS key pair is
// loaded before anything listens. Once listening it logs "<name>
// listening" with addr=<host:port>.
func Serve(ctx context.Context, s Server) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	hs := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          s.Logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	scheme := s.Scheme
	if s.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme += "s"
	}
	if s.HTTP != nil {
		s.HTTP(hs)
	}
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return err
	}
	s.Logger.Info(s.Name+" listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String()+s.Path)

	errc := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutdownErr := hs.Shutdown(shutdownCtx)
	if s.Stop != nil {
		s.Stop()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return shutdownErr
}

// CheckArgs reports on w, as "Error: …" and "Hint: …" lines naming the
// command cmd, the mistakes both server commands look for after parsing
// fs: a positional argument, and one of --tls-cert and --tls-key without
// the other. It reports whether there was none.
func CheckArgs(w io.Writer, cmd string, fs *flag.FlagSet, tlsCert, tlsKey string) bool {
	if fs.NArg() > 0 {
		fmt.Fprintf(w, "Error: unexpected argument %q\nHint: %s --help\n", fs.Arg(0), cmd)
		return false
	}
	if (tlsCert == "") != (tlsKey == "") {
		fmt.Fprintf(w, "Error: --tls-cert and --tls-key go together\nHint: %s --tls-cert cert.pem --tls-key key.pem\n", cmd)
		return false
	}
	return true
}

// ParseLevel turns the --log-level value into an hclog level, or reports
// an unknown one on w in the Error/Hint form naming the command cmd and
// returns false.
func ParseLevel(w io.Writer, cmd, logLevel string) (hclog.Level, bool) {
	level := hclog.LevelFromString(logLevel)
	if level == hclog.NoLevel {
		fmt.Fprintf(w, "Error: unknown log level %q\nHint: %s --log-level info\n", logLevel, cmd)
		return level, false
	}
	return level, true
}

package main

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// buildBinary compiles the command once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "agentmesh-registry")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

var listenRE = regexp.MustCompile(`registry listening: addr=(\S+)`)

// start runs the registry and returns its API root once it listens.
func start(t *testing.T, bin, home string, args ...string) (base string, cmd *exec.Cmd, done <-chan error) {
	t.Helper()
	cmd = exec.Command(bin, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "AGENTMESH_HOME="+home, "DATABASE_URL=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log(sc.Text())
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	d := make(chan error, 1)
	go func() { d <- cmd.Wait() }()
	select {
	case a := <-addr:
		return "http://" + a + "/v1", cmd, d
	case err := <-d:
		t.Fatalf("registry exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("registry did not start listening")
	}
	return "", nil, nil
}

func stop(t *testing.T, cmd *exec.Cmd, done <-chan error) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("registry exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("registry did not stop on SIGTERM")
	}
}

func TestRegistryBinaryServesAndKeepsState(t *testing.T) {
	bin := buildBinary(t)
	home := filepath.Join(t.TempDir(), "home")
	ctx := context.Background()

	base, cmd, done := start(t, bin, home)
	c, err := registry.NewClient(base)
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "healthy" || h.Version != protocol.ProtocolVersion {
		t.Fatalf("health = %+v, %v", h, err)
	}
	_, sk, _ := ed25519.GenerateKey(rand.Reader)
	xk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	signer := registry.NewSigner(sk)
	if _, err := c.Register(ctx, signer, registry.RegisterRequest{
		ExchangePublicKey: protocol.EncodeExchangePublicKey(xk.PublicKey()),
		Capabilities:      []string{"travel/flights"},
	}); err != nil {
		t.Fatalf("register: %v", err)
	}
	stop(t, cmd, done)

	// State is private on disk.
	for path, want := range map[string]os.FileMode{
		filepath.Join(home, "registry"):       0o700,
		filepath.Join(home, "registry", "ca"): 0o700,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	keys, _ := filepath.Glob(filepath.Join(home, "registry", "ca", "*.key"))
	if len(keys) == 0 {
		t.Fatal("no root CA key written")
	}
	for _, k := range keys {
		fi, _ := os.Stat(k)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", k, fi.Mode().Perm())
		}
	}

	// A restart serves the same agents and the same root CA.
	base, cmd, done = start(t, bin, home)
	c, _ = registry.NewClient(base)
	got, err := c.Lookup(ctx, string(signer.AMID))
	if err != nil || got.AMID != string(signer.AMID) || len(got.Capabilities) != 1 {
		t.Fatalf("lookup after restart = %+v, %v", got, err)
	}
	roots, err := c.CACertificates(ctx)
	if err != nil || len(roots) != 1 {
		t.Fatalf("roots after restart = %d, %v; want the one root", len(roots), err)
	}
	first := roots[0]
	stop(t, cmd, done)

	// Rotation publishes a new root first and keeps the old one.
	base, cmd, done = start(t, bin, home, "--rotate-root-ca")
	defer stop(t, cmd, done)
	c, _ = registry.NewClient(base)
	roots, err = c.CACertificates(ctx)
	if err != nil || len(roots) != 2 {
		t.Fatalf("roots after rotation = %d, %v; want 2", len(roots), err)
	}
	if roots[0].Equal(first) || !roots[1].Equal(first) {
		t.Fatalf("after rotation the new root must come first and the old one stay published")
	}
}

func TestRegistryBinaryFlags(t *testing.T) {
	home := t.TempDir()
	getenv := func(k string) string {
		if k == "AGENTMESH_HOME" {
			return home
		}
		return ""
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, exitOK, "Examples:"},
		{[]string{"--no-such-flag"}, exitUsage, "flag provided but not defined"},
		{[]string{"extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"--tls-cert", "c.pem"}, exitUsage, "--tls-cert and --tls-key go together"},
		{[]string{"--log-level", "loud"}, exitUsage, `unknown log level "loud"`},
		{[]string{"--database", "mysql://x"}, exitError, "unsupported database"},
	} {
		var out strings.Builder
		code := run(context.Background(), tc.args, getenv, &out)
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("run %v = %d, output %q; want %d containing %q", tc.args, code, out.String(), tc.code, tc.want)
		}
	}
}

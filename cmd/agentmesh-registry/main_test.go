package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/internal/servercmd"
	"github.com/agentmesh/agentmesh-go/internal/servercmd/servercmdtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// start runs the registry with its state under home and returns its API
// root once it listens.
func start(t *testing.T, bin, home string, args ...string) (base string, p *servercmdtest.Process) {
	t.Helper()
	p = servercmdtest.Start(t, bin, []string{"AGENTMESH_HOME=" + home, "DATABASE_URL="}, args...)
	return "http://" + p.Addr + "/v1", p
}

func TestRegistryBinaryServesAndKeepsState(t *testing.T) {
	bin := servercmdtest.BuildBinary(t, ".")
	home := filepath.Join(t.TempDir(), "home")
	ctx := context.Background()

	base, p := start(t, bin, home)
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
	p.Stop(t)

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
	base, p = start(t, bin, home)
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
	p.Stop(t)

	// Rotation publishes a new root first and keeps the old one.
	base, p = start(t, bin, home, "--rotate-root-ca")
	defer p.Stop(t)
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
		{[]string{"--help"}, servercmd.ExitOK, "Examples:"},
		{[]string{"--no-such-flag"}, servercmd.ExitUsage, "flag provided but not defined"},
		{[]string{"extra"}, servercmd.ExitUsage, `unexpected argument "extra"`},
		{[]string{"--tls-cert", "c.pem"}, servercmd.ExitUsage, "--tls-cert and --tls-key go together"},
		{[]string{"--log-level", "loud"}, servercmd.ExitUsage, `unknown log level "loud"`},
		{[]string{"--database", "mysql://x"}, servercmd.ExitError, "unsupported database"},
	} {
		var out strings.Builder
		code := run(context.Background(), tc.args, getenv, &out)
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("run %v = %d, output %q; want %d containing %q", tc.args, code, out.String(), tc.code, tc.want)
		}
	}
}

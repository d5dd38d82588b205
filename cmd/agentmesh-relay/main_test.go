package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/internal/servercmd"
	"github.com/agentmesh/agentmesh-go/internal/servercmd/servercmdtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// agentConn is an authenticated WebSocket connection to the relay.
type agentConn struct {
	t         *testing.T
	ws        *websocket.Conn
	connected protocol.Connected
}

type agent struct {
	priv ed25519.PrivateKey
	amid protocol.AMID
	n    int
}

func newAgent(t *testing.T) *agent {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &agent{priv: priv, amid: protocol.DeriveAMID(priv.Public().(ed25519.PublicKey))}
}

func connect(t *testing.T, url string, a *agent, opts *websocket.DialOptions) *agentConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	c := &agentConn{t: t, ws: ws}
	a.n++
	ts := protocol.FormatSigningTimestamp(time.Now().Add(-time.Duration(a.n) * time.Millisecond))
	c.send(protocol.Connect{
		Protocol:  protocol.ProtocolVersion,
		AMID:      a.amid,
		PublicKey: protocol.EncodeSigningPublicKey(a.priv.Public().(ed25519.PublicKey)),
		Signature: protocol.SignTimestamp(a.priv, ts),
		Timestamp: ts,
	})
	f, ok := c.next().(protocol.Connected)
	if !ok {
		t.Fatalf("connect: got %#v", f)
	}
	c.connected = f
	return c
}

func (c *agentConn) send(f protocol.Frame) {
	c.t.Helper()
	b, err := protocol.MarshalFrame(f)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *agentConn) next() protocol.ServerFrame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	f, err := protocol.ParseServerFrame(data)
	if err != nil {
		c.t.Fatalf("parse %q: %v", data, err)
	}
	return f
}

// sync waits until the relay has handled every frame sent before, and
// fails on any other frame.
func (c *agentConn) sync() {
	c.t.Helper()
	c.send(protocol.Ping{Timestamp: protocol.FormatSigningTimestamp(time.Now())})
	if f, ok := c.next().(protocol.Pong); !ok {
		c.t.Fatalf("got %#v, want pong", f)
	}
}

// TestRestartDeliversOnce queues messages for an offline agent, restarts
// the relay process (SIGTERM, then a new process on the same store) and
// checks that each message is delivered once.
func TestRestartDeliversOnce(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	store := "sqlite://" + filepath.Join(t.TempDir(), "queue", "relay.db")
	env := []string{"AGENTMESH_HOME=" + home}
	bin := servercmdtest.BuildBinary(t, ".")
	p := servercmdtest.Start(t, bin, env, "--store", store)
	sender, recipient := newAgent(t), newAgent(t)
	cs := connect(t, "ws://"+p.Addr+"/v1/connect", sender, nil)
	want := []string{"first", "second", "third"}
	for _, m := range want {
		cs.send(protocol.Send{To: recipient.amid, EncryptedPayload: m, MessageType: protocol.MessageTypeMessage})
	}
	cs.sync()
	cs.ws.Close(websocket.StatusNormalClosure, "")
	p.Stop(t)

	dir := filepath.Dir(strings.TrimPrefix(store, "sqlite://"))
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory: %v, mode %v", err, fi.Mode().Perm())
	}
	if fi, err := os.Stat(filepath.Join(dir, "relay.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store file: %v, mode %v", err, fi.Mode().Perm())
	}

	p = servercmdtest.Start(t, bin, env, "--store", store)
	url := "ws://" + p.Addr + "/v1/connect"
	cr := connect(t, url, recipient, nil)
	if cr.connected.PendingMessages != len(want) {
		t.Errorf("pending_messages = %d, want %d", cr.connected.PendingMessages, len(want))
	}
	for _, w := range want {
		m, ok := cr.next().(protocol.Receive)
		if !ok || m.EncryptedPayload != w || m.From != sender.amid || m.MessageID == "" {
			t.Fatalf("got %#v, want %q", m, w)
		}
		cr.send(protocol.Ack{MessageID: m.MessageID})
	}
	cr.sync()
	cr.ws.Close(websocket.StatusNormalClosure, "")
	p.Stop(t)

	p = servercmdtest.Start(t, bin, env, "--store", store)
	cr = connect(t, "ws://"+p.Addr+"/v1/connect", recipient, nil)
	if cr.connected.PendingMessages != 0 {
		t.Errorf("pending_messages after acknowledging = %d", cr.connected.PendingMessages)
	}
	cr.sync()
	cr.ws.Close(websocket.StatusNormalClosure, "")
	p.Stop(t)
}

// TestDefaultStoreAndHealth checks the default store under AGENTMESH_HOME,
// created private, and the health endpoints.
func TestDefaultStoreAndHealth(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	p := servercmdtest.Start(t, servercmdtest.BuildBinary(t, "."), []string{"AGENTMESH_HOME=" + home})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + p.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || body["status"] != "ok" {
			t.Errorf("%s: %d %v", path, resp.StatusCode, body)
		}
	}
	p.Stop(t)
	for path, want := range map[string]os.FileMode{
		filepath.Join(home, "relay"):             0o700,
		filepath.Join(home, "relay", "relay.db"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}

// TestTLS checks that --tls-cert and --tls-key serve wss://.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	p := servercmdtest.Start(t, servercmdtest.BuildBinary(t, "."), []string{"AGENTMESH_HOME=" + filepath.Join(dir, "home")}, "--tls-cert", certFile, "--tls-key", keyFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := connect(t, "wss://"+p.Addr+"/v1/connect", newAgent(t), &websocket.DialOptions{HTTPClient: client})
	c.sync()
	c.ws.Close(websocket.StatusNormalClosure, "")
	p.Stop(t)
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// TestUsage checks help, usage errors (exit 2) and other errors (exit 1),
// each as "Error: …" followed by "Hint: …".
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"help", []string{"--help"}, servercmd.ExitOK, []string{"Usage: agentmesh-relay", "Examples:", "--store", "AGENTMESH_HOME"}},
		{"unknown flag", []string{"--bogus"}, servercmd.ExitUsage, []string{"Error: flag provided but not defined: -bogus", "Hint: agentmesh-relay --help"}},
		{"extra argument", []string{"serve"}, servercmd.ExitUsage, []string{`Error: unexpected argument "serve"`, "Hint:"}},
		{"lone TLS cert", []string{"--tls-cert", "c.pem"}, servercmd.ExitUsage, []string{"Error: --tls-cert and --tls-key go together", "Hint:"}},
		{"bad listen", []string{"--listen", "8765"}, servercmd.ExitUsage, []string{`Error: --listen "8765"`, "Hint: agentmesh-relay --listen"}},
		{"bad store", []string{"--store", "postgres://db/relay"}, servercmd.ExitUsage, []string{"Error: --store", "Hint: agentmesh-relay --store sqlite://"}},
		{"bad log level", []string{"--log-level", "loud"}, servercmd.ExitUsage, []string{`Error: unknown log level "loud"`, "Hint:"}},
		{"missing TLS files", []string{"--listen", "127.0.0.1:0", "--store", "sqlite://" + filepath.Join(dir, "r.db"),
			"--tls-cert", filepath.Join(dir, "none.pem"), "--tls-key", filepath.Join(dir, "none.key")}, servercmd.ExitError, []string{"Error: TLS certificate:"}},
		{"store in a file", []string{"--listen", "127.0.0.1:0", "--store", "sqlite://" + filepath.Join(os.Args[0], "r.db")}, servercmd.ExitError, []string{"Error:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tc.args, func(k string) string {
				if k == "AGENTMESH_HOME" {
					return filepath.Join(dir, "home")
				}
				return ""
			}, &stderr)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\n%s", code, tc.code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// TestAddressInUse checks the error for a port that is taken.
func TestAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr bytes.Buffer
	dir := t.TempDir()
	code := run(context.Background(), []string{"--listen", ln.Addr().String(), "--store", "sqlite://" + filepath.Join(dir, "r.db")},
		func(string) string { return dir }, &stderr)
	if code != servercmd.ExitError || !strings.Contains(stderr.String(), "address already in use") || !strings.Contains(stderr.String(), "Hint:") {
		t.Errorf("exit %d:\n%s", code, stderr.String())
	}
}

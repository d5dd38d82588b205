package main

import (
	"bufio"
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
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

var binary struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// buildBinary compiles the command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "agentmesh-relay-test")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "agentmesh-relay")
		cmd := exec.Command("go", "build", "-o", binary.path, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

var listenRE = regexp.MustCompile(`relay listening: addr=(\S+)`)

// relayProcess is a running agentmesh-relay.
type relayProcess struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

// start runs the relay with args and returns once it listens.
func start(t *testing.T, env []string, args ...string) *relayProcess {
	t.Helper()
	cmd := exec.Command(buildBinary(t), append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
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
	p := &relayProcess{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.addr = <-addr:
		return p
	case err := <-p.done:
		t.Fatalf("relay exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("relay did not start listening")
	}
	return nil
}

// stop sends SIGTERM and checks that the relay exits cleanly.
func (p *relayProcess) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("relay exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not stop on SIGTERM")
	}
}

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
	p := start(t, env, "--store", store)
	sender, recipient := newAgent(t), newAgent(t)
	cs := connect(t, "ws://"+p.addr+"/v1/connect", sender, nil)
	want := []string{"first", "second", "third"}
	for _, m := range want {
		cs.send(protocol.Send{To: recipient.amid, EncryptedPayload: m, MessageType: protocol.MessageTypeMessage})
	}
	cs.sync()
	cs.ws.Close(websocket.StatusNormalClosure, "")
	p.stop(t)

	dir := filepath.Dir(strings.TrimPrefix(store, "sqlite://"))
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory: %v, mode %v", err, fi.Mode().Perm())
	}
	if fi, err := os.Stat(filepath.Join(dir, "relay.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store file: %v, mode %v", err, fi.Mode().Perm())
	}

	p = start(t, env, "--store", store)
	url := "ws://" + p.addr + "/v1/connect"
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
	p.stop(t)

	p = start(t, env, "--store", store)
	cr = connect(t, "ws://"+p.addr+"/v1/connect", recipient, nil)
	if cr.connected.PendingMessages != 0 {
		t.Errorf("pending_messages after acknowledging = %d", cr.connected.PendingMessages)
	}
	cr.sync()
	cr.ws.Close(websocket.StatusNormalClosure, "")
	p.stop(t)
}

// TestDefaultStoreAndHealth checks the default store under AGENTMESH_HOME,
// created private, and the health endpoints.
func TestDefaultStoreAndHealth(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	p := start(t, []string{"AGENTMESH_HOME=" + home})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + p.addr + path)
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
	p.stop(t)
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
	p := start(t, []string{"AGENTMESH_HOME=" + filepath.Join(dir, "home")}, "--tls-cert", certFile, "--tls-key", keyFile)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := connect(t, "wss://"+p.addr+"/v1/connect", newAgent(t), &websocket.DialOptions{HTTPClient: client})
	c.sync()
	c.ws.Close(websocket.StatusNormalClosure, "")
	p.stop(t)
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
		{"help", []string{"--help"}, exitOK, []string{"Usage: agentmesh-relay", "Examples:", "--store", "AGENTMESH_HOME"}},
		{"unknown flag", []string{"--bogus"}, exitUsage, []string{"Error: flag provided but not defined: -bogus", "Hint: agentmesh-relay --help"}},
		{"extra argument", []string{"serve"}, exitUsage, []string{`Error: unexpected argument "serve"`, "Hint:"}},
		{"lone TLS cert", []string{"--tls-cert", "c.pem"}, exitUsage, []string{"Error: --tls-cert and --tls-key go together", "Hint:"}},
		{"bad listen", []string{"--listen", "8765"}, exitUsage, []string{`Error: --listen "8765"`, "Hint: agentmesh-relay --listen"}},
		{"bad store", []string{"--store", "postgres://db/relay"}, exitUsage, []string{"Error: --store", "Hint: agentmesh-relay --store sqlite://"}},
		{"bad log level", []string{"--log-level", "loud"}, exitUsage, []string{`Error: unknown log level "loud"`, "Hint:"}},
		{"missing TLS files", []string{"--listen", "127.0.0.1:0", "--store", "sqlite://" + filepath.Join(dir, "r.db"),
			"--tls-cert", filepath.Join(dir, "none.pem"), "--tls-key", filepath.Join(dir, "none.key")}, exitError, []string{"Error: TLS certificate:"}},
		{"store in a file", []string{"--listen", "127.0.0.1:0", "--store", "sqlite://" + filepath.Join(os.Args[0], "r.db")}, exitError, []string{"Error:"}},
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
	if code != exitError || !strings.Contains(stderr.String(), "address already in use") || !strings.Contains(stderr.String(), "Hint:") {
		t.Errorf("exit %d:\n%s", code, stderr.String())
	}
}

package session_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/host/prekeys"
	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
)

// The test binary doubles as a host process: with these variables set it
// runs an echo host on the given state directory until it is killed.
const (
	envChildHome     = "AGENTMESH_SESSION_TEST_CHILD_HOME"
	envChildRegistry = "AGENTMESH_SESSION_TEST_CHILD_REGISTRY"
	envChildRelay    = "AGENTMESH_SESSION_TEST_CHILD_RELAY"
)

// runChildHost is the host process: identity, prekeys, nonces and sessions
// from home; it prints "ready" once it receives, then serves until killed.
func runChildHost(home string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child host:", err); return 1 }
	id, _, err := identity.Load(filepath.Join(home, "identity.json"))
	if err != nil {
		return fail(err)
	}
	pk, err := prekeys.Open(filepath.Join(home, "prekeys.json"), id, prekeys.Options{})
	if err != nil {
		return fail(err)
	}
	client, err := registry.NewClient(os.Getenv(envChildRegistry))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	conn, err := relay.Dial(ctx, os.Getenv(envChildRelay), id.Signer())
	if err != nil {
		return fail(err)
	}
	nonces, err := session.OpenNonceStore(filepath.Join(home, "nonces"), 0)
	if err != nil {
		return fail(err)
	}
	m, err := session.New(session.Config{
		Identity: id, Directory: client, Transport: transport.NewRelay(conn, nil), Prekeys: pk,
		Nonces: nonces, Policy: session.Permissive(), Handler: echoHandler{},
		SessionDir: filepath.Join(home, "sessions"),
	})
	if err != nil {
		return fail(err)
	}
	fmt.Printf("ready %d\n", len(m.Sessions()))
	if err := m.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// childHost is a host running in its own process.
type childHost struct {
	cmd      *exec.Cmd
	resumed  int
	id       *identity.Identity
	home     string
	m        *mesh
	t        testing.TB
	stderr   *logtest.Buffer
	finished chan struct{}
}

// newChildHost registers a new agent, publishes its prekeys and starts its
// host process.
func (m *mesh) newChildHost(t testing.TB) *childHost {
	t.Helper()
	ctx := context.Background()
	id, err := identity.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := id.Save(filepath.Join(home, "identity.json")); err != nil {
		t.Fatal(err)
	}
	signer := registry.NewSignerFunc(id.SigningPublicKey(), id.Sign)
	m.registry.Register(t, signer, id.ExchangePublicKey())
	pk, err := prekeys.Open(filepath.Join(home, "prekeys.json"), id, prekeys.Options{Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := pk.Publish(ctx, m.client, signer); err != nil {
		t.Fatal(err)
	}
	c := &childHost{id: id, home: home, m: m, t: t}
	c.start()
	return c
}

func (c *childHost) start() {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildHome+"="+c.home,
		envChildRegistry+"="+c.m.client.BaseURL(), envChildRelay+"="+c.m.relay)
	c.stderr = new(logtest.Buffer)
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.cmd = cmd
	c.finished = make(chan struct{})
	go func() { cmd.Wait(); close(c.finished) }()
	c.t.Cleanup(c.kill)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		c.t.Fatalf("host process did not start: %q %v\n%s", line, err, c.stderr.String())
	}
	fmt.Sscanf(line, "ready %d", &c.resumed)
}

// kill sends SIGKILL and waits for the process to end.
func (c *childHost) kill() {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-c.finished
}

func TestSessionSurvivesSIGKILL(t *testing.T) {
	m := newMesh(t)
	b := m.newChildHost(t)
	pa := &tap{}
	a := m.newHost(t, hostOptions{persist: true, tap: pa})
	s, err := a.Open(t.Context(), b.id.AMID(), echoCaps)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		w := fmt.Sprint("before-", i)
		if got := echoed(t, mustRequest(t, s, w)); got != w {
			t.Fatalf("echo %q", got)
		}
	}
	b.kill()
	// Mid-conversation: a REQUEST leaves while the host process is dead;
	// the relay keeps it for the restarted process.
	sent := len(pa.frames(true, protocol.MessageTypeMessage))
	done := make(chan protocol.Payload, 1)
	go func() {
		answer, err := s.Request(context.Background(), echoRequest("while dead"), "", nil)
		if err != nil {
			t.Error(err)
		}
		done <- answer
	}()
	logtest.Eventually(t, "the REQUEST to leave", func() bool { return len(pa.frames(true, protocol.MessageTypeMessage)) > sent })
	b.start()
	if got := echoed(t, <-done); got != "while dead" {
		t.Fatalf("echo %q for the REQUEST sent while the host was dead", got)
	}
	if b.resumed != 1 {
		t.Fatalf("the restarted host process resumed %d sessions, want 1\n%s", b.resumed, b.stderr.String())
	}
	for i := range 3 {
		w := fmt.Sprint("after-", i)
		if got := echoed(t, mustRequest(t, s, w)); got != w {
			t.Fatalf("echo %q after SIGKILL", got)
		}
	}
	if n := len(pa.frames(true, protocol.MessageTypeKnock)); n != 1 {
		t.Fatalf("%d KNOCKs, want only the first", n)
	}
}

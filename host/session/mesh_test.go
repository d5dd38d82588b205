package session_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/host/identity"
	"github.com/agentmesh/agentmesh-go/host/prekeys"
	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/internal/meshtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
)

// mesh is a real registry and relay on loopback, for hosts to meet.
type mesh struct {
	t        testing.TB
	registry *meshtest.Registry
	relay    string // WebSocket URL
	client   *registry.Client
	// offset moves the clock of the registry and of every host.
	offset atomic.Int64
}

func (m *mesh) now() time.Time { return time.Now().Add(time.Duration(m.offset.Load())) }

func newMesh(t testing.TB) *mesh {
	t.Helper()
	m := &mesh{t: t}
	m.registry = meshtest.StartRegistry(t, meshtest.RegistryOptions{Now: m.now})
	m.client = m.registry.Client
	m.relay = meshtest.StartRelay(t, meshtest.RelayOptions{}).URL
	return m
}

// hostOptions shape a test host.
type hostOptions struct {
	// policy is the KNOCK policy; nil means session.Permissive.
	policy  *session.Policy
	handler session.Handler
	// home reuses a state directory (a restart); empty makes a new one.
	home string
	// id reuses an identity; nil makes a new agent and registers it.
	id *identity.Identity
	// org enrols the new agent in an organization (admin, id) instead of
	// registering it as anonymous.
	org *testOrg
	// onSession is Config.OnSession.
	onSession func(*session.Session)
	// recorder is Config.Recorder.
	recorder session.Recorder
	// certChain is the chain sent in KNOCKs.
	certChain []string
	timeout   time.Duration
	// tap, when set, sits between the Manager and the relay.
	tap *tap
	// persist keeps sessions in <home>/sessions across restarts.
	persist bool
	// direct makes the host's transport a Hybrid that may move peers to a
	// WebRTC data channel (loopback host candidates only).
	direct bool
	// published skips publishing prekeys, published by an earlier run.
	published bool
}

// tap records the frames a host sends and receives and may change or drop
// those it sends.
type tap struct {
	transport.Transport
	// mutate, when set, sees every frame sent and returns the payload to
	// send instead, or false to drop it.
	mutate func(typ protocol.MessageType, payload string) (string, bool)

	mu       sync.Mutex
	sent     []transport.Inbound // From holds the recipient
	received []transport.Inbound
}

func (p *tap) Send(ctx context.Context, to protocol.AMID, typ protocol.MessageType, payload string) error {
	p.mu.Lock()
	mutate := p.mutate
	p.mu.Unlock()
	if mutate != nil {
		var ok bool
		if payload, ok = mutate(typ, payload); !ok {
			return nil
		}
	}
	p.mu.Lock()
	p.sent = append(p.sent, transport.Inbound{From: to, Type: typ, Payload: payload})
	p.mu.Unlock()
	return p.Transport.Send(ctx, to, typ, payload)
}

func (p *tap) Recv(ctx context.Context) (transport.Inbound, error) {
	in, err := p.Transport.Recv(ctx)
	if err == nil {
		p.mu.Lock()
		p.received = append(p.received, in)
		p.mu.Unlock()
	}
	return in, err
}

func (p *tap) setMutate(f func(protocol.MessageType, string) (string, bool)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mutate = f
}

// frames returns the frames of type typ sent (out) or received.
func (p *tap) frames(out bool, typ protocol.MessageType) []transport.Inbound {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.received
	if out {
		list = p.sent
	}
	var got []transport.Inbound
	for _, f := range list {
		if f.Type == typ {
			got = append(got, f)
		}
	}
	return got
}

// host is one agent's session layer over the mesh.
type host struct {
	t       testing.TB
	id      *identity.Identity
	home    string
	signer  *registry.Signer
	prekeys *prekeys.Store
	conn    *relay.Conn
	hybrid  *transport.Hybrid // nil unless hostOptions.direct
	nonces  *session.NonceStore
	*session.Manager
	logs *logtest.Buffer
	stop func()
}

func (m *mesh) newHost(t testing.TB, o hostOptions) *host {
	t.Helper()
	ctx := context.Background()
	h := &host{t: t, id: o.id, home: o.home}
	if h.home == "" {
		h.home = t.TempDir()
	}
	if h.id == nil {
		id, err := identity.Generate(rand.Reader, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h.id = id
		h.signer = registry.NewSignerFunc(id.SigningPublicKey(), id.Sign)
		if o.org != nil {
			o.certChain = o.org.enroll(t, h)
		} else {
			m.registry.Register(t, h.signer, id.ExchangePublicKey())
		}
	} else {
		h.signer = registry.NewSignerFunc(h.id.SigningPublicKey(), h.id.Sign)
	}
	pk, err := prekeys.Open(filepath.Join(h.home, "prekeys.json"), h.id, prekeys.Options{Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	if !o.published {
		if err := pk.Publish(ctx, m.client, h.signer); err != nil {
			t.Fatal(err)
		}
	}
	h.prekeys = pk
	h.conn, err = relay.Dial(ctx, m.relay, h.id.Signer(), relay.WithP2PCapable(o.direct))
	if err != nil {
		t.Fatal(err)
	}
	h.nonces, err = session.OpenNonceStore(filepath.Join(h.home, "nonces"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if o.policy == nil {
		o.policy = session.Permissive()
	}
	h.logs = new(logtest.Buffer)
	log := hclog.New(&hclog.LoggerOptions{Name: h.id.AMID().Short(), Level: hclog.Debug, Output: h.logs})
	var tr transport.Transport = transport.NewRelay(h.conn, log)
	if o.direct {
		hy, err := transport.NewHybrid(h.conn, transport.Config{P2P: true, NoSTUN: true, TURN: []transport.TURNServer{},
			IncludeLoopback: true}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hy.Close() })
		h.hybrid = hy
		tr = hy
	}
	if o.tap != nil {
		o.tap.Transport = tr
		tr = o.tap
	}
	h.Manager, err = session.New(session.Config{
		Identity:         h.id,
		Directory:        m.client,
		Transport:        tr,
		Prekeys:          pk,
		Nonces:           h.nonces,
		Policy:           o.policy,
		Handler:          o.handler,
		OnSession:        o.onSession,
		Recorder:         o.recorder,
		CertificateChain: o.certChain,
		Logger:           log,
		Now:              m.now,
		HandshakeTimeout: o.timeout,
		SessionDir:       sessionDir(h.home, o.persist),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Run(runCtx)
	}()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			h.Manager.Close()
			cancel()
			h.conn.Close()
			<-done
			h.nonces.Close()
		})
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("logs of %s:\n%s", h.id.AMID().Short(), h.logs.String())
		}
	})
	return h
}

// testOrg is a verified organization of the mesh's registry.
type testOrg struct {
	m      *mesh
	id     string
	admin  *registry.Signer
	domain string
}

func (m *mesh) newOrg(t testing.TB, domain string) *testOrg {
	t.Helper()
	adminID, err := identity.Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	admin := registry.NewSignerFunc(adminID.SigningPublicKey(), adminID.Sign)
	m.registry.Register(t, admin, adminID.ExchangePublicKey())
	id := m.registry.VerifiedOrganization(t, admin, domain)
	return &testOrg{m: m, id: id, admin: admin, domain: domain}
}

// enroll registers h's agent as a member of the organization and returns
// its certificate chain.
func (o *testOrg) enroll(t testing.TB, h *host) []string {
	t.Helper()
	chain := o.m.registry.Enroll(t, o.admin, o.id, h.signer, h.id.ExchangePublicKey())
	if len(chain) < 2 {
		t.Fatalf("enrolment returned a chain of %d", len(chain))
	}
	return chain
}

// revoke revokes h's agent at the registry, as its organization.
func (o *testOrg) revoke(t testing.TB, h *host) {
	t.Helper()
	if _, err := o.m.client.Revoke(context.Background(), o.admin, string(h.id.AMID()), "key_compromise", ""); err != nil {
		t.Fatal(err)
	}
}

func sessionDir(home string, persist bool) string {
	if !persist {
		return ""
	}
	return filepath.Join(home, "sessions")
}

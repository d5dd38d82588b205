package session_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// resign signs k again with the identity of h, after a change to its
// signed members.
func resign(t testing.TB, h *host, k *protocol.Knock) {
	t.Helper()
	b, err := k.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	k.Signature = protocol.B64.EncodeToString(h.id.Sign(b))
}

// changeKnocks makes x's tap rewrite every KNOCK x sends with change.
func changeKnocks(t testing.TB, x *host, p *tap, change func(k *protocol.Knock)) {
	p.setMutate(func(typ protocol.MessageType, payload string) (string, bool) {
		if typ != protocol.MessageTypeKnock {
			return payload, true
		}
		k, err := protocol.ParseKnock([]byte(payload))
		if err != nil {
			t.Errorf("our own KNOCK does not parse: %v", err)
			return payload, true
		}
		change(k)
		b, err := k.Marshal()
		if err != nil {
			t.Errorf("re-encoding the KNOCK: %v", err)
			return payload, true
		}
		return string(b), true
	})
}

func TestInvalidKnocksAreDroppedSilently(t *testing.T) {
	m := newMesh(t)
	b := m.newHost(t, hostOptions{})
	stranger := m.newHost(t, hostOptions{})
	_, forger, _ := ed25519.GenerateKey(rand.Reader)

	tests := []struct {
		name   string
		change func(x *host, k *protocol.Knock)
		why    string
	}{
		{"signature by another key", func(x *host, k *protocol.Knock) {
			if err := k.Sign(forger); err != nil {
				t.Fatal(err)
			}
		}, "why=\"signature:"},
		{"ephemeral key signed by another key", func(x *host, k *protocol.Knock) {
			if err := k.SignEphemeral(forger); err != nil {
				t.Fatal(err)
			}
		}, "why=\"ephemeral key signature"},
		{"X3DH identity key not the registered one", func(x *host, k *protocol.Knock) {
			copy(k.X3DH.IdentityKey[:], stranger.id.ExchangePublicKey().Bytes())
		}, "why=\"X3DH identity key is not the sender's registered exchange key"},
		{"stale", func(x *host, k *protocol.Knock) {
			k.Timestamp -= protocol.UnixMillis((10 * time.Minute).Milliseconds())
			resign(t, x, k)
		}, "outside the accepted window"},
		{"addressed to another agent", func(x *host, k *protocol.Knock) {
			k.To = stranger.id.AMID()
			resign(t, x, k)
		}, "why=\"addressed to " + string(stranger.id.AMID())},
		{"claims another sender", func(x *host, k *protocol.Knock) {
			k.From = stranger.id.AMID()
		}, "why=\"signed as " + string(stranger.id.AMID())},
		{"without x3dh", func(x *host, k *protocol.Knock) { k.X3DH = nil }, "why=\"no x3dh member"},
	}
	// The signed request rewritten on the wire, as a relay could.
	tests = append(tests, struct {
		name   string
		change func(x *host, k *protocol.Knock)
		why    string
	}{"intent changed after signing", nil, "why=\"signature:"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &tap{}
			x := m.newHost(t, hostOptions{tap: p, timeout: 500 * time.Millisecond})
			if tt.change != nil {
				changeKnocks(t, x, p, func(k *protocol.Knock) { tt.change(x, k) })
			} else {
				p.setMutate(func(typ protocol.MessageType, payload string) (string, bool) {
					if typ == protocol.MessageTypeKnock {
						if !strings.Contains(payload, `"capability":"*"`) {
							t.Errorf("KNOCK without the expected intent: %s", payload)
						}
						payload = strings.Replace(payload, `"capability":"*"`, `"capability":"finance/payments/send"`, 1)
					}
					return payload, true
				})
			}
			_, err := x.Open(t.Context(), b.id.AMID(), session.OpenOptions{})
			if !errors.Is(err, session.ErrHandshakeTimeout) {
				t.Fatalf("Open: %v, want no answer at all (ErrHandshakeTimeout)", err)
			}
			if n := len(p.frames(false, protocol.MessageTypeReject)) + len(p.frames(false, protocol.MessageTypeAccept)); n != 0 {
				t.Fatalf("the receiver answered an invalid KNOCK (%d frames)", n)
			}
			logtest.Eventually(t, "the receiver to log the drop", func() bool {
				return strings.Contains(b.logs.String(), "dropped KNOCK: from=\""+x.id.AMID().Short())
			})
			logs := b.logs.String()
			line := logs[strings.LastIndex(logs, "dropped KNOCK: from=\""+x.id.AMID().Short()):]
			line = line[:strings.IndexByte(line, '\n')]
			if !strings.Contains(line, tt.why) {
				t.Fatalf("drop logged as %q, want it to contain %q", line, tt.why)
			}
		})
	}
	if n := len(b.Sessions()); n != 0 {
		t.Fatalf("receiver holds %d sessions after invalid KNOCKs", n)
	}
}

func TestReplayedKnockAfterRestartIsDropped(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	b := m.newHost(t, hostOptions{})
	p := &tap{}
	a := m.newHost(t, hostOptions{tap: p})
	if _, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	knocks := p.frames(true, protocol.MessageTypeKnock)
	if len(knocks) != 1 {
		t.Fatalf("sent %d KNOCKs", len(knocks))
	}

	// Restart the receiver on the same state directory.
	b.stop()
	b2 := m.newHost(t, hostOptions{id: b.id, home: b.home})
	accepts := len(p.frames(false, protocol.MessageTypeAccept))
	if err := a.conn.Send(ctx, b.id.AMID(), knocks[0].Payload, protocol.MessageTypeKnock, nil); err != nil {
		t.Fatal(err)
	}
	logtest.Eventually(t, "the replay to be dropped", func() bool { return strings.Contains(b2.logs.String(), "why=\"replayed nonce\"") })
	if n := len(b2.Sessions()); n != 0 {
		t.Fatalf("the replayed KNOCK opened %d sessions", n)
	}
	// A new KNOCK from the same agent is still welcome.
	s, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.frames(false, protocol.MessageTypeAccept)); got != accepts+1 {
		t.Fatalf("%d ACCEPTs after the replay and a new KNOCK, want %d: the replay was answered", got, accepts+1)
	}
	if b2.Session(s.ID()) == nil {
		t.Fatal("the restarted receiver does not hold the new session")
	}
}

// sendPyKnock sends a Python-format KNOCK from x to to, claiming tier.
func sendPyKnock(t testing.TB, x *host, to protocol.AMID, tier float64) {
	t.Helper()
	k := &protocol.PyKnock{
		ProtocolVersion: protocol.ProtocolVersion,
		From:            protocol.PyAgent{AMID: x.id.AMID(), Tier: tier, ReputationScore: 1},
		Intent:          protocol.PyIntent{Category: "travel", Subcategory: "flights"},
		SessionRequest:  protocol.PySessionRequest{Type: "request_response", TTLSeconds: 300},
		Timestamp:       protocol.FormatPYTimestamp(time.Now()),
	}
	b, err := k.SigningBytes(to)
	if err != nil {
		t.Fatal(err)
	}
	k.Signature = protocol.B64.EncodeToString(x.id.Sign(b))
	wire, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := x.conn.Send(t.Context(), to, string(wire), protocol.MessageTypeKnock, nil); err != nil {
		t.Fatal(err)
	}
}

// pyReject waits for the Python-format REJECT x receives from b, checks
// its signature and returns its reason.
func pyReject(t testing.TB, p *tap, x, b *host, n int) string {
	t.Helper()
	logtest.Eventually(t, "a REJECT", func() bool { return len(p.frames(false, protocol.MessageTypeReject)) >= n })
	f := p.frames(false, protocol.MessageTypeReject)[n-1]
	h, err := protocol.ParseHandshake([]byte(f.Payload))
	if err != nil {
		t.Fatal(err)
	}
	j, ok := h.(*protocol.PyReject)
	if !ok {
		t.Fatalf("answer %T, want a Python-format REJECT", h)
	}
	if err := j.Verify(b.id.SigningPublicKey(), b.id.AMID(), x.id.AMID()); err != nil {
		t.Fatalf("REJECT signature: %v", err)
	}
	return j.Reason
}

func TestSelfAssertedTierIsIgnored(t *testing.T) {
	m := newMesh(t)
	b := m.newHost(t, hostOptions{policy: func() *session.Policy {
		p := session.Permissive()
		p.AcceptTiers = []registry.Tier{registry.TierVerified, registry.TierOrganization}
		return p
	}()})
	p := &tap{}
	x := m.newHost(t, hostOptions{tap: p}) // anonymous at the registry

	// The KNOCK claims tier 1.5 (organization) and a perfect reputation.
	sendPyKnock(t, x, b.id.AMID(), 1.5)
	if got := pyReject(t, p, x, b, 1); got != string(protocol.RejectInsufficientTrust) {
		t.Fatalf("REJECT reason %q, want %q: the self-asserted tier was believed", got, protocol.RejectInsufficientTrust)
	}
	if !strings.Contains(b.logs.String(), "claimed_tier=1.5 registry_tier=anonymous") {
		t.Fatalf("receiver did not log the claim against the registry's tier:\n%s", b.logs.String())
	}

	// A receiver that takes anonymous agents still cannot open an
	// encrypted session from a KNOCK without X3DH, and says so.
	open := m.newHost(t, hostOptions{})
	sendPyKnock(t, x, open.id.AMID(), 2)
	if got := pyReject(t, p, x, open, 2); got != "x3dh_required" {
		t.Fatalf("REJECT reason %q, want x3dh_required", got)
	}
}

func TestOrganizationCertificates(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	org := m.newOrg(t, "acme.example")
	orgOnly := session.Permissive()
	orgOnly.AcceptTiers = []registry.Tier{registry.TierOrganization}
	b := m.newHost(t, hostOptions{policy: orgOnly})
	a := m.newHost(t, hostOptions{org: org})

	s, err := a.Open(ctx, b.id.AMID(), session.OpenOptions{})
	if err != nil {
		t.Fatalf("an organization agent with a valid chain: %v", err)
	}
	if b.Session(s.ID()) == nil {
		t.Fatal("receiver holds no session")
	}
	logtest.Eventually(t, "the receiver to log an organization agent", func() bool {
		return strings.Contains(b.logs.String(), "session accepted: peer=\""+a.id.AMID().Short()) &&
			strings.Contains(b.logs.String(), "tier=organization")
	})

	// A year and a day later the agent's certificate has expired.
	m.offset.Store(int64(366 * 24 * time.Hour))
	_, err = a.Open(ctx, b.id.AMID(), session.OpenOptions{})
	var re *session.RejectedError
	if !errors.As(err, &re) || re.Reason != string(protocol.RejectCertificateExpired) {
		t.Fatalf("expired chain: %v, want REJECT %s", err, protocol.RejectCertificateExpired)
	}
	m.offset.Store(0)

	// Revoked by its organization.
	org.revoke(t, a)
	_, err = a.Open(ctx, b.id.AMID(), session.OpenOptions{})
	if !errors.As(err, &re) || re.Reason != string(protocol.RejectCertificateRevoked) {
		t.Fatalf("revoked agent: %v, want REJECT %s", err, protocol.RejectCertificateRevoked)
	}

	// An anonymous agent presenting the organization agent's chain as its
	// own gains nothing: its tier comes from the registry.
	p := &tap{}
	x := m.newHost(t, hostOptions{tap: p})
	chain, err := m.client.Lookup(ctx, string(a.id.AMID()))
	if err != nil {
		t.Fatal(err)
	}
	changeKnocks(t, x, p, func(k *protocol.Knock) { k.CertificateChain = chain.CertificateChain })
	_, err = x.Open(ctx, b.id.AMID(), session.OpenOptions{})
	if !errors.As(err, &re) || re.Reason != string(protocol.RejectInsufficientTrust) {
		t.Fatalf("borrowed chain: %v, want REJECT %s", err, protocol.RejectInsufficientTrust)
	}
}

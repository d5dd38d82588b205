package session_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

var echoCaps = session.OpenOptions{Capabilities: []string{"x-test/echo/v1"}}

func TestExchangeKeyRotationDuringSession(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	b := m.newHost(t, hostOptions{handler: echoHandler{}})
	a := m.newHost(t, hostOptions{})
	s, err := a.Open(ctx, b.id.AMID(), echoCaps)
	if err != nil {
		t.Fatal(err)
	}
	if got := echoed(t, mustRequest(t, s, "before")); got != "before" {
		t.Fatalf("echo %q", got)
	}

	rotated, err := b.id.RotateExchangeKey(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.UpdateExchangeKey(ctx, b.signer, rotated.ExchangePublicKey()); err != nil {
		t.Fatal(err)
	}
	if err := b.SetIdentity(rotated); err != nil {
		t.Fatal(err)
	}

	// The open session keeps its ratchet.
	if got := echoed(t, mustRequest(t, s, "during")); got != "during" {
		t.Fatalf("echo %q after the rotation", got)
	}
	// New sessions run X3DH against the new key.
	c := m.newHost(t, hostOptions{})
	sc, err := c.Open(ctx, b.id.AMID(), echoCaps)
	if err != nil {
		t.Fatalf("a new session after the rotation: %v", err)
	}
	if got := echoed(t, mustRequest(t, sc, "after")); got != "after" {
		t.Fatalf("echo %q on the new session", got)
	}
	look, err := m.client.Lookup(ctx, string(b.id.AMID()))
	if err != nil {
		t.Fatal(err)
	}
	if look.ExchangePublicKey != protocol.EncodeExchangePublicKey(rotated.ExchangePublicKey()) {
		t.Fatal("the registry still serves the old exchange key")
	}
	// An identity of another agent is refused.
	if err := b.SetIdentity(a.id); err == nil {
		t.Fatal("SetIdentity took another agent's identity")
	}
}

func mustRequest(t testing.TB, s *session.Session, word string) protocol.Payload {
	t.Helper()
	answer, err := s.Request(context.Background(), echoRequest(word), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return answer
}

func TestConcurrentKnocksFromOnePeer(t *testing.T) {
	m := newMesh(t)
	b := m.newHost(t, hostOptions{handler: echoHandler{}})
	a := m.newHost(t, hostOptions{})
	const n = 2
	sessions := make([]*session.Session, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { sessions[i], errs[i] = a.Open(t.Context(), b.id.AMID(), echoCaps) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if sessions[0].ID() == sessions[1].ID() {
		t.Fatal("two KNOCKs got the same session")
	}
	for i, s := range sessions {
		word := fmt.Sprintf("session-%d", i)
		if got := echoed(t, mustRequest(t, s, word)); got != word {
			t.Fatalf("session %d answered %q", i, got)
		}
	}
	if got := len(b.Sessions()); got != n {
		t.Fatalf("receiver holds %d sessions, want %d", got, n)
	}
}

func TestFiftyPeersKnockAtOnce(t *testing.T) {
	m := newMesh(t)
	p := session.Permissive()
	p.MaxConcurrentSessions = 100
	b := m.newHost(t, hostOptions{handler: echoHandler{}, policy: p})
	const n = 50
	peers := make([]*host, n)
	for i := range peers {
		peers[i] = m.newHost(t, hostOptions{})
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, x := range peers {
		wg.Go(func() {
			s, err := x.Open(t.Context(), b.id.AMID(), echoCaps)
			if err != nil {
				errs[i] = err
				return
			}
			if s.Peer() != b.id.AMID() {
				errs[i] = fmt.Errorf("peer %d: session with %s", i, s.Peer())
				return
			}
			word := string(x.id.AMID())
			answer, err := s.Request(t.Context(), echoRequest(word), "", nil)
			if err != nil {
				errs[i] = err
				return
			}
			if r, ok := answer.(*protocol.Response); !ok || !strings.Contains(string(r.Results), word) {
				errs[i] = fmt.Errorf("peer %d got another's answer: %#v", i, answer)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got := make(map[protocol.AMID]bool)
	for _, s := range b.Sessions() {
		got[s.Peer()] = true
	}
	for _, x := range peers {
		if !got[x.id.AMID()] {
			t.Fatalf("receiver has no session with %s", x.id.AMID().Short())
		}
	}
}

// dropMessages makes the tap drop the next n encrypted messages.
func dropMessages(p *tap, n int) {
	var mu sync.Mutex
	p.setMutate(func(typ protocol.MessageType, payload string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if typ == protocol.MessageTypeMessage && n > 0 {
			n--
			return payload, false
		}
		return payload, true
	})
}

// sendLost sends REQUESTs that the tap drops, without waiting for answers.
func sendLost(t testing.TB, s *session.Session, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range n {
		if _, err := s.Request(ctx, echoRequest("lost"), "", nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("lost request %d: %v", i, err)
		}
	}
}

func TestSequenceGapIsWarnedAndServed(t *testing.T) {
	m := newMesh(t)
	b := m.newHost(t, hostOptions{handler: echoHandler{}})
	p := &tap{}
	a := m.newHost(t, hostOptions{tap: p})
	s, err := a.Open(t.Context(), b.id.AMID(), echoCaps)
	if err != nil {
		t.Fatal(err)
	}
	dropMessages(p, 2)
	sendLost(t, s, 2)
	// The lost REQUESTs stay first in line for answers, so this one's
	// answer goes to the first of them: only the peer's handling matters.
	short, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	s.Request(short, echoRequest("after the gap"), "", nil)
	logtest.Eventually(t, "the gap warning", func() bool {
		return strings.Contains(b.logs.String(), "sequence gap detected: session="+s.ID()+" expected=0 got=2")
	})
	if s.Err() != nil {
		t.Fatalf("a gap closed the session: %v", s.Err())
	}
}

func TestExcessiveSkipClosesTheSession(t *testing.T) {
	m := newMesh(t)
	ctx := t.Context()
	b := m.newHost(t, hostOptions{handler: echoHandler{}})
	p := &tap{}
	a := m.newHost(t, hostOptions{tap: p})
	s, err := a.Open(ctx, b.id.AMID(), echoCaps)
	if err != nil {
		t.Fatal(err)
	}
	mustRequest(t, s, "hello")
	dropMessages(p, 1100)
	sendLost(t, s, 1100)
	if _, err := s.Request(ctx, echoRequest("too far"), "", nil); err == nil {
		t.Fatal("a REQUEST past 1000 skipped messages was answered")
	}
	<-s.Done()
	var ce *session.ClosedError
	if !errors.As(s.Err(), &ce) || ce.Reason != protocol.CloseExcessiveSkip || !ce.ByPeer {
		t.Fatalf("session ended with %v, want excessive_skip from the peer", s.Err())
	}
	logtest.Eventually(t, "the receiver to forget the session", func() bool { return len(b.Sessions()) == 0 })
}

package session_test

import (
	"fmt"
	"testing"

	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

func TestLongSessionsMoveToADirectConnection(t *testing.T) {
	m := newMesh(t)
	b := m.newHost(t, hostOptions{handler: echoHandler{}, direct: true})
	a := m.newHost(t, hostOptions{direct: true})

	// A one-shot session stays on the relay.
	short, err := a.Open(t.Context(), b.id.AMID(), echoCaps)
	if err != nil {
		t.Fatal(err)
	}
	mustRequest(t, short, "short")
	if st := a.hybrid.Stats(b.id.AMID()); st.Path != transport.PathRelay || st.Upgrades != 0 {
		t.Fatalf("a one-shot session was upgraded: %+v", st)
	}

	// A persistent one moves to a data channel; the session goes on over
	// it, end-to-end encrypted as before.
	opts := echoCaps
	opts.Type = protocol.SessionPersistent
	s, err := a.Open(t.Context(), b.id.AMID(), opts)
	if err != nil {
		t.Fatal(err)
	}
	logtest.Eventually(t, "the direct connection", func() bool {
		return a.hybrid.Stats(b.id.AMID()).Path == transport.PathDirect && b.hybrid.Stats(a.id.AMID()).Path == transport.PathDirect
	})
	before := a.hybrid.Stats(b.id.AMID()).SentDirect
	for i := range 20 {
		w := fmt.Sprint("direct-", i)
		if got := echoed(t, mustRequest(t, s, w)); got != w {
			t.Fatalf("echo %q over the direct path", got)
		}
	}
	st := a.hybrid.Stats(b.id.AMID())
	if st.SentDirect < before+20 {
		t.Fatalf("%d frames sent direct after the upgrade, want at least 20 more than %d", st.SentDirect, before)
	}
	// The one-shot session, between the same hosts, now travels direct too.
	if got := echoed(t, mustRequest(t, short, "short again")); got != "short again" {
		t.Fatalf("echo %q", got)
	}
}

package relay_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// stubRelay is a small relay of this test package's own: it checks CONNECT,
// answers as the test tells it (connected, an error frame, or nothing),
// forwards send frames to connected agents and answers JSON pings. It
// stores nothing. It lets tests produce handshake answers the real relay
// never gives.
type stubRelay struct {
	srv *httptest.Server
	// answer decides the handshake answer for the n-th CONNECT (from 1):
	// nil for connected, a frame to refuse, or errSilent to say nothing.
	answer func(n int, f protocol.Connect) *protocol.ErrorFrame

	connects atomic.Int32
	// stamps receives every CONNECT timestamp, in order.
	stamps chan string

	mu    sync.Mutex
	conns map[protocol.AMID]*websocket.Conn
}

// errSilent, returned by stubRelay.answer, makes the stub never answer.
var errSilent = &protocol.ErrorFrame{Code: "silent"}

func startStub(t *testing.T, answer func(n int, f protocol.Connect) *protocol.ErrorFrame) *stubRelay {
	t.Helper()
	s := &stubRelay{answer: answer, conns: make(map[protocol.AMID]*websocket.Conn), stamps: make(chan string, 100)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stubRelay) url() string { return "ws" + s.srv.URL[len("http"):] + "/v1/connect" }

func (s *stubRelay) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	ctx := r.Context()
	_, data, err := ws.Read(ctx)
	if err != nil {
		return
	}
	f, err := protocol.ParseClientFrame(data)
	connect, ok := f.(protocol.Connect)
	if err != nil || !ok {
		return
	}
	n := int(s.connects.Add(1))
	select {
	case s.stamps <- connect.Timestamp:
	default:
	}
	var refusal *protocol.ErrorFrame
	if s.answer != nil {
		refusal = s.answer(n, connect)
	}
	if refusal == nil {
		if _, err := protocol.VerifyConnect(connect.AMID, connect.PublicKey, connect.Timestamp, connect.Signature, time.Now()); err != nil {
			refusal = &protocol.ErrorFrame{Code: protocol.RelayInvalidSignature, Message: err.Error()}
		}
	}
	switch refusal {
	case errSilent:
		_, _, _ = ws.Read(ctx) // until the client gives up
		return
	case nil:
	default:
		writeFrame(ctx, ws, *refusal)
		ws.Close(websocket.StatusPolicyViolation, "authentication failed")
		return
	}
	id := make([]byte, 16)
	rand.Read(id)
	s.mu.Lock()
	s.conns[connect.AMID] = ws
	s.mu.Unlock()
	writeFrame(ctx, ws, protocol.Connected{SessionID: hex.EncodeToString(id)})
	defer func() {
		s.mu.Lock()
		if s.conns[connect.AMID] == ws {
			delete(s.conns, connect.AMID)
		}
		s.mu.Unlock()
	}()
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		f, err := protocol.ParseClientFrame(data)
		if err != nil {
			continue
		}
		switch f := f.(type) {
		case protocol.Send:
			s.mu.Lock()
			to := s.conns[f.To]
			s.mu.Unlock()
			if to != nil {
				writeFrame(ctx, to, protocol.Receive{From: connect.AMID, EncryptedPayload: f.EncryptedPayload,
					MessageType: f.MessageType, Timestamp: protocol.FormatServerTimestamp(time.Now()), ICECandidates: f.ICECandidates})
			}
		case protocol.Ping:
			t, _ := protocol.ParseTimestamp(f.Timestamp)
			writeFrame(ctx, ws, protocol.Pong{Timestamp: protocol.FormatServerTimestamp(t)})
		}
	}
}

// dropAll closes every connected socket without a close handshake.
func (s *stubRelay) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ws := range s.conns {
		ws.CloseNow()
	}
}

func writeFrame(ctx context.Context, ws *websocket.Conn, f protocol.Frame) {
	data, err := protocol.MarshalFrame(f)
	if err != nil {
		panic(err)
	}
	_ = ws.Write(ctx, websocket.MessageText, data)
}

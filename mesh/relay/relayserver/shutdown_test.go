package relayserver

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// TestCloseKeepsWhatWasRead checks shutdown while a client is sending: the
// relay is closed during a burst of sends, and every send the client wrote
// before it saw the relay's close frame (here, for an offline recipient:
// every one is stored) is delivered, in order, after a restart on the same
// store.
func TestCloseKeepsWhatWasRead(t *testing.T) {
	const n = 200
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "relay.db")
	clock := newClock()
	r1 := startRelayOn(t, dsn, clock, func(c *Config) {
		c.MaxQueuedPerRecipient = n + 1
		c.MaxQueuedPerSenderPerRecipient = n + 1
		c.Limits.SendsPerMinute = -1
	})
	a, b := newAgent(t), newAgent(t)
	ca := r1.connect(t, a)
	ca.sendTo(b, fmt.Sprintf("%04d", 0))
	ca.sync()

	sent, started := make(chan int, 1), make(chan struct{})
	go func() {
		i := 1
		for ; i < n; i++ {
			if i == n/2 {
				close(started)
			}
			b, err := protocol.MarshalFrame(protocol.Send{To: b.amid, EncryptedPayload: fmt.Sprintf("%04d", i), MessageType: protocol.MessageTypeMessage})
			if err != nil {
				break
			}
			if ca.ws.Write(context.Background(), websocket.MessageText, b) != nil {
				break
			}
		}
		if i < n/2 {
			close(started)
		}
		sent <- i
	}()
	<-started
	// The client reads, as clients do, and so answers the close frame.
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ca.ws.Read(context.Background()); err != nil {
				closed <- err
				return
			}
		}
	}()
	r1.srv.Close()
	written := <-sent
	if st := websocket.CloseStatus(<-closed); st != websocket.StatusGoingAway {
		t.Errorf("client saw close status %v, want %v", st, websocket.StatusGoingAway)
	}
	kept := r1.store.count(t, b.amid)
	t.Logf("%d sends written, %d read and stored before the relay closed", written, kept)
	if kept != written || written < n/2 {
		t.Fatalf("%d messages stored, want all %d written before the close", kept, written)
	}
	ca.ws.CloseNow()
	r1.stop()

	r2 := startRelayOn(t, dsn, clock, nil)
	cb := r2.connect(t, b)
	if cb.connected.PendingMessages != kept {
		t.Errorf("pending_messages after restart = %d, want %d", cb.connected.PendingMessages, kept)
	}
	for i := range kept {
		m := cb.expectReceive()
		if want := fmt.Sprintf("%04d", i); m.EncryptedPayload != want || m.From != a.amid {
			t.Fatalf("stored message %d: got %q from %s, want %q", i, m.EncryptedPayload, m.From.Short(), want)
		}
		cb.send(protocol.Ack{MessageID: m.MessageID})
	}
	if extra := cb.sync(); len(extra) != 0 {
		t.Errorf("extra frames: %#v", extra)
	}
}

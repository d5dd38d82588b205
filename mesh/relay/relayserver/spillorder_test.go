package relayserver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// TestOrderAcrossSpill checks that a connected recipient whose queue
// overflowed gets a sender's messages in order: once one message went to
// the store, later ones follow it there, even when the queue has room
// again, until the stored backlog has been pushed; after that, messages are
// delivered live again.
func TestOrderAcrossSpill(t *testing.T) {
	const queue = stallQueue
	r := startStallRelay(t, 1000)
	a, b := newAgent(t), newAgent(t)
	ca, cb := r.connect(t, a), r.connectWith(t, b, smallBuffers())
	rb := r.srv.lookup(b.amid)
	queued := func() int {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return len(rb.q)
	}

	payload := func(i int) string {
		return fmt.Sprintf("%04d", i) + strings.Repeat("o", protocol.MaxMessageSize-4)
	}
	// b does not read: send until a message goes to the store.
	n := 0
	for r.store.count(t, b.amid) == 0 {
		ca.sendTo(b, payload(n))
		n++
		ca.sync()
		if n == 1000 {
			t.Fatal("1000 messages and the recipient never stalled")
		}
	}
	spilledAt := n - 1

	// b reads a few messages, so that its queue has room again, and a
	// sends more: they must not overtake the stored one.
	for i := range 3 {
		if got := cb.expectReceive(); got.EncryptedPayload[:4] != fmt.Sprintf("%04d", i) {
			t.Fatalf("message %d: got %.4q", i, got.EncryptedPayload)
		}
	}
	logtest.Eventually(t, "room in b's queue", func() bool { return queued() < queue })
	for range 5 {
		ca.sendTo(b, payload(n))
		n++
	}
	if extra := ca.sync(); len(extra) != 0 {
		t.Fatalf("sender got %#v", extra)
	}
	if got := r.store.count(t, b.amid); got != n-spilledAt {
		t.Errorf("%d messages stored, want %d: the ones sent after the spill must follow it to the store", got, n-spilledAt)
	}

	next := 3
	for next < n {
		m := cb.expectReceive()
		if want := fmt.Sprintf("%04d", next); m.EncryptedPayload[:4] != want {
			t.Fatalf("got message %.4s, want %s (the first stored was %d)", m.EncryptedPayload, want, spilledAt)
		}
		if stored := m.MessageID != ""; stored != (next >= spilledAt) {
			t.Errorf("message %d: stored=%v", next, stored)
		}
		if m.MessageID != "" {
			cb.send(protocol.Ack{MessageID: m.MessageID})
		}
		next++
	}
	cb.sync()
	if left := r.store.count(t, b.amid); left != 0 {
		t.Errorf("%d messages left in the store after acknowledging", left)
	}

	// The backlog is pushed: live delivery again.
	logtest.Eventually(t, "the backlog to be pushed", func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return !rb.spilling
	})
	ca.sendTo(b, "live again")
	if got := cb.expectReceive(); got.EncryptedPayload != "live again" || got.MessageID != "" {
		t.Errorf("after the backlog: got %#v, want a live delivery", got)
	}
}

// TestStalledReaderSmallFrames checks that frames small enough to be
// written by the sender's own goroutine never hold the sender up when the
// recipient stops reading: once the recipient's socket backs up they are
// queued, then stored, and all arrive in order when it reads again.
func TestStalledReaderSmallFrames(t *testing.T) {
	r := startStallRelay(t, 5000)
	a, stalled, b := newAgent(t), newAgent(t), newAgent(t)
	ca, cs, cb := r.connect(t, a), r.connectWith(t, stalled, smallBuffers()), r.connect(t, b)

	payload := func(i int) string {
		return fmt.Sprintf("%05d", i) + strings.Repeat("s", directWriteMax/2)
	}
	n := 0
	for r.store.count(t, stalled.amid) == 0 {
		ca.sendTo(stalled, payload(n))
		n++
		if n%8 == 0 {
			// Returns only once the relay handled every send, which a
			// write blocked on the stalled socket would prevent.
			if extra := ca.sync(); len(extra) != 0 {
				t.Fatalf("sender got %#v", extra)
			}
		}
		if n == 5000 {
			t.Fatal("5000 messages and the recipient never stalled")
		}
	}
	ca.sendTo(b, "not held up")
	if got := cb.expectReceive(); got.EncryptedPayload != "not held up" {
		t.Fatalf("b got %q", got.EncryptedPayload)
	}
	for i := range n {
		m := cs.expectReceive()
		if want := fmt.Sprintf("%05d", i); m.EncryptedPayload[:5] != want {
			t.Fatalf("got message %.5s, want %s", m.EncryptedPayload, want)
		}
	}
}

// TestOrderSpillBeforeFirstPush checks that messages that overflow a new
// connection's queue before the flusher's first look at the store come
// after the queued ones: the first push is for the messages stored before
// the connection was registered, not for those it spilled since.
func TestOrderSpillBeforeFirstPush(t *testing.T) {
	const queue = 4
	r := startRelay(t, func(c *Config) {
		c.OutboundQueue = queue
		c.Limits.SendsPerMinute = -1
	})
	a, b := newAgent(t), newAgent(t)
	ca := r.connect(t, a)
	ca.sendTo(b, "stored before b connected")
	ca.sync()
	cb := r.connect(t, b)
	if m := cb.expectReceive(); m.EncryptedPayload != "stored before b connected" || m.MessageID == "" {
		t.Fatalf("b got %#v, want the stored message", m)
	}

	// Put b's connection back in the state it has between registering and
	// the flusher's first read of the store, with a stored message not yet
	// pushed: no flusher may start, and the stored messages go first.
	rb := r.srv.lookup(b.amid)
	logtest.Eventually(t, "b's first flush to end", func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return !rb.writing && !rb.spilling
	})
	rb.mu.Lock()
	rb.pushed = nil
	rb.writing, rb.storedFirst, rb.storedPending = true, true, true
	rb.mu.Unlock()

	const n = queue + 3
	for i := range n {
		ca.sendTo(b, fmt.Sprint(i))
	}
	if extra := ca.sync(); len(extra) != 0 {
		t.Fatalf("sender got %#v", extra)
	}
	if got := r.store.count(t, b.amid); got != 1+n-queue {
		t.Fatalf("%d messages stored, want %d", got, 1+n-queue)
	}
	rb.mu.Lock()
	rb.writing = false
	rb.kickLocked()
	rb.mu.Unlock()

	if m := cb.expectReceive(); m.EncryptedPayload != "stored before b connected" {
		t.Fatalf("first push: got %q, want the message stored before b connected", m.EncryptedPayload)
	}
	for i := range n {
		m := cb.expectReceive()
		if m.EncryptedPayload != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q", i, m.EncryptedPayload)
		}
		if stored := m.MessageID != ""; stored != (i >= queue) {
			t.Errorf("message %d: stored=%v, want %v", i, stored, i >= queue)
		}
	}
	if extra := cb.sync(); len(extra) != 0 {
		t.Errorf("b got more: %#v", extra)
	}
}

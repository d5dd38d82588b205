package relayserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// storeFor sends payloads from c to an offline agent and waits until the
// relay has handled them.
func storeFor(t *testing.T, c *client, to *agent, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		c.sendTo(to, p)
	}
	if extra := c.sync(); len(extra) != 0 {
		t.Fatalf("storing messages: got %#v", extra)
	}
}

// receiveStored reads n pushed stored messages.
func receiveStored(t *testing.T, c *client, n int) []protocol.Receive {
	t.Helper()
	out := make([]protocol.Receive, n)
	for i := range out {
		out[i] = c.expectReceive()
		if out[i].MessageID == "" {
			t.Fatalf("stored message %d (%q) has no message_id", i, out[i].EncryptedPayload)
		}
	}
	return out
}

func payloads(rs []protocol.Receive) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.EncryptedPayload
	}
	return strings.Join(s, ",")
}

// TestStoredDeliveryOrder checks that stored messages are pushed after
// connected, oldest first, with their original timestamps and distinct
// message ids.
func TestStoredDeliveryOrder(t *testing.T) {
	r := startRelay(t, nil)
	a, c, b := newAgent(t), newAgent(t), newAgent(t)
	ca, cc := r.connect(t, a), r.connect(t, c)
	var want []string
	var times []string
	for i := range 6 {
		from, name := ca, "a"
		if i%2 == 1 {
			from, name = cc, "c"
		}
		p := fmt.Sprintf("%s%d", name, i)
		storeFor(t, from, b, p)
		want = append(want, p)
		times = append(times, protocol.FormatServerTimestamp(r.clock.Now()))
		if i != 2 { // two messages share an instant: the order still holds
			r.clock.Advance(1500 * time.Microsecond)
		}
	}
	cb := r.connect(t, b)
	if cb.connected.PendingMessages != 6 {
		t.Errorf("pending_messages = %d, want 6", cb.connected.PendingMessages)
	}
	got := receiveStored(t, cb, 6)
	if payloads(got) != strings.Join(want, ",") {
		t.Errorf("order: got %s, want %s", payloads(got), strings.Join(want, ","))
	}
	ids := map[string]bool{}
	for i, m := range got {
		if m.Timestamp != times[i] {
			t.Errorf("message %d: timestamp %s, want %s", i, m.Timestamp, times[i])
		}
		wantFrom := a.amid
		if i%2 == 1 {
			wantFrom = c.amid
		}
		if m.From != wantFrom || m.MessageType != protocol.MessageTypeMessage || m.ICECandidates != nil {
			t.Errorf("message %d: %#v", i, m)
		}
		if ids[m.MessageID] || len(m.MessageID) != 36 {
			t.Errorf("message %d: message_id %q repeated or not a UUID", i, m.MessageID)
		}
		ids[m.MessageID] = true
	}
}

// TestQueueQuotas checks the per-recipient limit and the per-sender share:
// a full queue refuses new messages with RECIPIENT_OFFLINE and evicts
// nothing, and one sender filling its share does not block another.
func TestQueueQuotas(t *testing.T) {
	r := startRelay(t, func(c *Config) {
		c.MaxQueuedPerRecipient = 6
		c.MaxQueuedPerSenderPerRecipient = 4
	})
	a, c, b := newAgent(t), newAgent(t), newAgent(t)
	ca, cc := r.connect(t, a), r.connect(t, c)
	storeFor(t, ca, b, "a0", "a1", "a2", "a3")
	ca.sendTo(b, "a4")
	e := ca.expectError(protocol.RelayRecipientOffline)
	if want := "Agent " + string(b.amid) + " is offline and message queue is full"; e.Message != want {
		t.Errorf("error %q, want %q", e.Message, want)
	}
	storeFor(t, cc, b, "c0", "c1")
	cc.sendTo(b, "c2")
	cc.expectError(protocol.RelayRecipientOffline)

	cb := r.connect(t, b)
	if got := payloads(receiveStored(t, cb, 6)); got != "a0,a1,a2,a3,c0,c1" {
		t.Errorf("stored: %s", got)
	}
}

// TestAckNackRedelivery checks that only ack deletes a stored message:
// nacked and unanswered messages are pushed again on the next connection,
// acknowledged ones never.
func TestAckNackRedelivery(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	ca := r.connect(t, a)
	storeFor(t, ca, b, "m1", "m2", "m3")

	cb := r.connect(t, b)
	got := receiveStored(t, cb, 3)
	cb.send(protocol.Ack{MessageID: got[0].MessageID})
	cb.send(protocol.Nack{MessageID: got[1].MessageID, Reason: "processing_failed"})
	cb.send(protocol.Ack{MessageID: "no-such-message"})
	// Another agent cannot acknowledge b's messages.
	ca.send(protocol.Ack{MessageID: got[2].MessageID})
	ca.sync()
	if extra := cb.sync(); len(extra) != 0 {
		t.Errorf("acks answered with %#v", extra)
	}
	if n := r.store.count(t, b.amid); n != 2 {
		t.Errorf("%d messages stored after one ack, want 2", n)
	}

	// Nothing is pushed twice on the same connection, not even after the
	// store is looked at again for a new message.
	storeFor(t, ca, b) // no-op sync
	cb.send(protocol.Disconnect{})
	cb.expectClosed()
	logtest.Eventually(t, "b to be unregistered", func() bool { return r.srv.lookup(b.amid) == nil })

	cb = r.connect(t, b)
	if cb.connected.PendingMessages != 2 {
		t.Errorf("pending_messages = %d, want 2", cb.connected.PendingMessages)
	}
	again := receiveStored(t, cb, 2)
	if payloads(again) != "m2,m3" || again[0].MessageID != got[1].MessageID || again[1].MessageID != got[2].MessageID {
		t.Errorf("redelivered %s with ids %s, %s", payloads(again), again[0].MessageID, again[1].MessageID)
	}
	for _, m := range again {
		cb.send(protocol.Ack{MessageID: m.MessageID})
	}
	cb.sync()
	cb.send(protocol.Disconnect{})
	cb.expectClosed()
	logtest.Eventually(t, "b to be unregistered", func() bool { return r.srv.lookup(b.amid) == nil })
	cb = r.connect(t, b)
	if cb.connected.PendingMessages != 0 {
		t.Errorf("pending_messages = %d after acknowledging everything", cb.connected.PendingMessages)
	}
	if extra := cb.sync(); len(extra) != 0 {
		t.Errorf("pushed after acknowledging everything: %#v", extra)
	}
}

// TestStoredWhileConnected checks that a message stored while its
// recipient is connected (here: the recipient connects between the
// relay's lookup and the write) is pushed on the open connection.
func TestStoredWhileConnected(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	cb := r.connect(t, b)
	ca := r.connect(t, a)
	// Store directly, as a concurrent send would, then notify.
	m := &storedMessage{ID: newUUID(), From: a.amid, To: b.amid, Payload: "late", MessageType: protocol.MessageTypeMessage,
		CreatedAt: r.clock.Now(), ExpiresAt: r.clock.Now().Add(time.Hour)}
	if err := r.store.put(context.Background(), m, r.clock.Now(), 0, 0); err != nil {
		t.Fatal(err)
	}
	r.srv.lookup(b.amid).notifyStored()
	got := cb.expectReceive()
	if got.EncryptedPayload != "late" || got.MessageID != m.ID {
		t.Errorf("got %#v", got)
	}
	// A further notification does not push it again.
	r.srv.lookup(b.amid).notifyStored()
	ca.sendTo(b, "live")
	if got := cb.expectReceive(); got.EncryptedPayload != "live" {
		t.Errorf("got %#v, want only the live message", got)
	}
}

// TestGetPendingMessages checks the fetch API of the TypeScript client.
func TestGetPendingMessages(t *testing.T) {
	r := startRelay(t, nil)
	a, b := newAgent(t), newAgent(t)
	ca := r.connect(t, a)
	storeFor(t, ca, b, "p1")
	t1 := r.clock.Now()
	r.clock.Advance(7 * time.Millisecond)
	ca.send(protocol.Send{To: b.amid, EncryptedPayload: "k", MessageType: protocol.MessageTypeKnock})
	ca.sync()

	cb := r.connect(t, b)
	pushed := receiveStored(t, cb, 2)
	cb.send(protocol.GetPendingMessages{})
	list, ok := cb.next().(protocol.PendingMessages)
	if !ok || len(list.Messages) != 2 {
		t.Fatalf("pending_messages: %#v", list)
	}
	want := []protocol.PendingMessage{
		{ID: pushed[0].MessageID, From: a.amid, EncryptedPayload: "p1", MessageType: protocol.MessageTypeMessage, Timestamp: protocol.MillisOf(t1)},
		{ID: pushed[1].MessageID, From: a.amid, EncryptedPayload: "k", MessageType: protocol.MessageTypeKnock, Timestamp: protocol.MillisOf(t1) + 7},
	}
	for i := range want {
		if list.Messages[i] != want[i] {
			t.Errorf("message %d: got %#v, want %#v", i, list.Messages[i], want[i])
		}
	}
	cb.send(protocol.Ack{MessageID: pushed[0].MessageID})
	cb.send(protocol.GetPendingMessages{})
	list, ok = cb.next().(protocol.PendingMessages)
	if !ok || len(list.Messages) != 1 || list.Messages[0].ID != pushed[1].MessageID {
		t.Errorf("after an ack: %#v", list)
	}
}

// TestExpiry checks that expired messages are never delivered and that the
// sweeper deletes them.
func TestExpiry(t *testing.T) {
	r := startRelay(t, func(c *Config) { c.PurgeInterval = time.Hour })
	a, b := newAgent(t), newAgent(t)
	ca := r.connect(t, a)
	storeFor(t, ca, b, "old")
	r.clock.Advance(time.Hour)
	storeFor(t, ca, b, "young")
	r.clock.Advance(DefaultQueueTTL - time.Hour)

	// Expired but not yet purged: still not delivered.
	cb := r.connect(t, b)
	if cb.connected.PendingMessages != 1 {
		t.Errorf("pending_messages = %d, want 1", cb.connected.PendingMessages)
	}
	if got := receiveStored(t, cb, 1); got[0].EncryptedPayload != "young" {
		t.Errorf("delivered %q", got[0].EncryptedPayload)
	}
	cb.send(protocol.GetPendingMessages{})
	if list, ok := cb.next().(protocol.PendingMessages); !ok || len(list.Messages) != 1 || list.Messages[0].EncryptedPayload != "young" {
		t.Errorf("pending_messages: %#v", list)
	}
	if n := r.store.count(t, b.amid); n != 2 {
		t.Fatalf("%d rows before the purge, want 2", n)
	}
	r.srv.sweep()
	if n := r.store.count(t, b.amid); n != 1 {
		t.Errorf("%d rows after the purge, want 1", n)
	}
}

// TestSweeperRuns checks that the sweeper purges on its own.
func TestSweeperRuns(t *testing.T) {
	r := startRelay(t, func(c *Config) { c.PurgeInterval = 5 * time.Millisecond })
	a, b := newAgent(t), newAgent(t)
	storeFor(t, r.connect(t, a), b, "x")
	r.clock.Advance(DefaultQueueTTL)
	logtest.Eventually(t, "the expired message to be purged", func() bool { return r.store.count(t, b.amid) == 0 })
}

// TestRestartKeepsQueue checks that stored messages survive a restart of
// the relay and its store, and are delivered exactly once.
func TestRestartKeepsQueue(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "relay.db")
	clock := newClock()
	r1 := startRelayOn(t, dsn, clock, nil)
	a, b := newAgent(t), newAgent(t)
	want := []string{"one", "two", "three", "four", "five"}
	ca := r1.connect(t, a)
	storeFor(t, ca, b, want...)
	ca.ws.Close(websocket.StatusNormalClosure, "")
	r1.stop()

	r2 := startRelayOn(t, dsn, clock, nil)
	cb := r2.connect(t, b)
	if cb.connected.PendingMessages != len(want) {
		t.Errorf("pending_messages after restart = %d", cb.connected.PendingMessages)
	}
	got := receiveStored(t, cb, len(want))
	if payloads(got) != strings.Join(want, ",") {
		t.Errorf("after restart: %s", payloads(got))
	}
	for _, m := range got {
		cb.send(protocol.Ack{MessageID: m.MessageID})
	}
	if extra := cb.sync(); len(extra) != 0 {
		t.Errorf("extra frames: %#v", extra)
	}
	cb.ws.Close(websocket.StatusNormalClosure, "")
	r2.stop()

	r3 := startRelayOn(t, dsn, clock, nil)
	cb = r3.connect(t, b)
	if cb.connected.PendingMessages != 0 {
		t.Errorf("pending_messages after acknowledging and restarting = %d", cb.connected.PendingMessages)
	}
	if extra := cb.sync(); len(extra) != 0 {
		t.Errorf("redelivered: %#v", extra)
	}
}

// TestStoreFile checks the store's file modes and DSN handling.
func TestStoreFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.db")
	s, err := OpenStore(context.Background(), "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", filepath.Base(p), perm)
		}
	}
	for _, dsn := range []string{"postgres://x/y", "sqlite://", "sqlite:///", "sqlite:///tmp/x.db?mode=ro", "/tmp/x.db"} {
		if s, err := OpenStore(context.Background(), dsn); err == nil {
			s.Close()
			t.Errorf("OpenStore(%q) succeeded", dsn)
		}
	}
	if _, err := OpenStore(context.Background(), "sqlite://"+filepath.Join(dir, "missing", "relay.db")); err == nil {
		t.Error("OpenStore in a missing directory succeeded")
	}
}

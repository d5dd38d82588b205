package relayserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// handleFrame handles one text frame from an authenticated client. It
// returns false when the client asked to disconnect. A frame that does not
// decode gets an INVALID_MESSAGE error naming the problem; the connection
// stays open.
func (c *conn) handleFrame(data []byte) bool {
	now := c.s.now()
	if f, ok := parseSendFast(data); ok {
		c.handleSend(f, now)
		return true
	}
	f, err := protocol.ParseClientFrame(data)
	if err != nil {
		if c.allow(kindControl, now) {
			c.replyError(protocol.RelayInvalidMessage, err.Error(), nil)
		}
		return true
	}
	switch f := f.(type) {
	case protocol.Send:
		c.handleSend(f, now)
	case protocol.Presence:
		if c.allow(kindPresence, now) {
			c.mu.Lock()
			c.status, c.lastActivity = f.Status, now
			c.mu.Unlock()
		}
	case protocol.PresenceQuery:
		if c.allow(kindPresence, now) {
			c.reply(c.presenceOf(f.AMID, now))
		}
	case protocol.ICEOffer:
		if c.allow(kindICE, now) {
			fwd := protocol.ICEOffer{To: c.amid, SDP: f.SDP, Candidates: f.Candidates}
			if !c.forward(f.To, fwd) {
				c.replyError(protocol.RelayRecipientOffline, fmt.Sprintf("Cannot establish P2P: agent %s is offline", f.To), nil)
			}
		}
	case protocol.ICEAnswer:
		if c.allow(kindICE, now) {
			// Dropped silently when the peer is gone, as by the original.
			c.forward(f.To, protocol.ICEAnswer{To: c.amid, SDP: f.SDP, Candidates: f.Candidates})
		}
	case protocol.P2PEstablished:
		if c.allow(kindICE, now) {
			c.forward(f.Peer, protocol.P2PEstablished{Peer: c.amid})
		}
	case protocol.Ping:
		if c.allow(kindControl, now) {
			// Ping.Timestamp was checked when the frame was decoded.
			t, _ := protocol.ParseTimestamp(f.Timestamp)
			c.reply(protocol.Pong{Timestamp: protocol.FormatServerTimestamp(t)})
		}
	case protocol.Disconnect:
		c.log.Debug("client disconnected")
		return false
	case protocol.GetPendingMessages:
		if c.allow(kindControl, now) {
			c.handleGetPending(now)
		}
	case protocol.Ack:
		if c.allow(kindControl, now) {
			c.handleAck(f.MessageID)
		}
	case protocol.Nack:
		if c.allow(kindControl, now) {
			// The message stays stored and is pushed again on the next
			// connection, not on this one.
			c.log.Debug("stored message refused by the recipient", "message_id", truncate(f.MessageID))
		}
	case protocol.Connect:
		if c.allow(kindControl, now) {
			c.replyError(protocol.RelayInvalidMessage, "Already authenticated: connect is only valid as the first frame", nil)
		}
	default:
		if c.allow(kindControl, now) {
			c.replyError(protocol.RelayInvalidMessage, fmt.Sprintf("Unsupported frame type %q", f.FrameType()), nil)
		}
	}
	return true
}

// allow counts a frame against the client's budget for its kind and
// answers RATE_LIMITED when the budget is spent.
func (c *conn) allow(kind frameKind, now time.Time) bool {
	ok, retry := c.s.limits.allow(c.amid, kind, now)
	if !ok {
		c.replyError(protocol.RelayRateLimited, fmt.Sprintf("Rate limit exceeded: %d %s frames per minute", c.s.limits.limits[kind], kindNames[kind]), &retry)
	}
	return ok
}

var kindNames = [numKinds]string{
	kindSend:     "send",
	kindKnock:    "knock",
	kindICE:      "signalling",
	kindPresence: "presence",
	kindControl:  "control",
}

// handleSend delivers a message live when its recipient is connected and
// its queue has room, and stores it otherwise (PROTOCOL.md §5.5).
func (c *conn) handleSend(f protocol.Send, now time.Time) {
	if n := len(f.EncryptedPayload); n > c.s.cfg.MaxMessageSize {
		c.replyError(protocol.RelayMessageTooLarge,
			fmt.Sprintf("Message payload is %d bytes, limit %d", n, c.s.cfg.MaxMessageSize), nil)
		return
	}
	kind := kindSend
	if f.MessageType == protocol.MessageTypeKnock {
		kind = kindKnock
	}
	if !c.allow(kind, now) {
		return
	}
	m := &storedMessage{
		From:        c.amid,
		To:          f.To,
		Payload:     f.EncryptedPayload,
		MessageType: f.MessageType,
		ICE:         f.ICECandidates,
		CreatedAt:   now,
		ExpiresAt:   now.Add(c.s.cfg.QueueTTL),
	}
	rc := c.s.lookup(f.To)
	var spillTo *conn // the connected recipient whose backlog this message joins
	if rc != nil {
		live := m.receive()
		live.MessageID = ""
		b, err := protocol.MarshalFrame(live)
		if err != nil {
			c.log.Error("encoding a receive frame failed", "error", err)
			c.replyError(protocol.RelayInternalError, "Could not deliver the message", nil)
			return
		}
		switch rc.offer(outItem{data: b, msg: m}) {
		case deliveredLive:
			c.s.pairs.record(c.amid, f.To, now)
			return
		case mustStore:
			// The recipient is not keeping up, or has stored messages
			// still to be pushed: the store takes the message, behind
			// them.
			spillTo = rc
		}
	}
	if m.ID == "" { // offer may have named it already
		m.ID = newUUID()
	}
	err := c.s.store.put(context.Background(), m, now, c.s.cfg.MaxQueuedPerRecipient, c.s.cfg.MaxQueuedPerSenderPerRecipient)
	if spillTo != nil {
		spillTo.storeDone()
	}
	switch {
	case errors.Is(err, errQueueFull):
		state := "offline"
		if rc != nil {
			state = "not reading"
		}
		c.replyError(protocol.RelayRecipientOffline, fmt.Sprintf("Agent %s is %s and message queue is full", f.To, state), nil)
		return
	case err != nil:
		c.log.Error("storing a message failed", "to", f.To.Short(), "error", err)
		c.replyError(protocol.RelayInternalError, fmt.Sprintf("Could not store the message for %s", f.To), nil)
		return
	}
	c.s.pairs.record(c.amid, f.To, now)
	// The recipient may have connected while the message was being
	// stored, and its writer read the store before the message was in it:
	// the sender's next messages must not overtake this one. (A message
	// spilled by offer is in hand already: storeDone saw to it.)
	if rc := c.s.lookup(f.To); rc != nil && rc != spillTo {
		rc.notifyStored()
	}
}

// forward queues a signalling frame for a connected peer, reporting
// whether it was queued.
func (c *conn) forward(to protocol.AMID, f protocol.Frame) bool {
	rc := c.s.lookup(to)
	if rc == nil {
		return false
	}
	b, err := protocol.MarshalFrame(f)
	if err != nil {
		c.log.Error("encoding a signalling frame failed", "type", f.FrameType(), "error", err)
		return false
	}
	return rc.enqueue(outItem{data: b}, false)
}

// presenceOf answers a presence query under the relay's presence rule (see
// the package documentation): the real status only for the asker itself
// or for an agent it exchanged a message with within PresenceWindow.
func (c *conn) presenceOf(target protocol.AMID, now time.Time) protocol.PresenceResponse {
	resp := protocol.PresenceResponse{AMID: target, Status: protocol.PresenceOffline}
	if target != c.amid && !c.s.pairs.related(c.amid, target, now) {
		return resp
	}
	if rc := c.s.lookup(target); rc != nil {
		st, last := rc.presence()
		resp.Status, resp.LastSeen = st, protocol.FormatServerTimestamp(last)
	}
	return resp
}

// handleGetPending answers get_pending_messages with the stored messages
// not yet acknowledged, oldest first, as many as fit in one frame.
func (c *conn) handleGetPending(now time.Time) {
	msgs, err := c.s.store.pending(context.Background(), c.amid, now)
	if err != nil {
		c.log.Error("reading stored messages failed", "error", err)
		c.replyError(protocol.RelayInternalError, "Could not read stored messages", nil)
		return
	}
	list := make([]protocol.PendingMessage, 0, len(msgs))
	size := 64
	for _, m := range msgs {
		size += len(m.ID) + len(m.From) + len(m.Payload) + 128
		if size > protocol.MaxFrameSize && len(list) > 0 {
			break
		}
		list = append(list, protocol.PendingMessage{
			ID: m.ID, From: m.From, EncryptedPayload: m.Payload,
			MessageType: m.MessageType, Timestamp: protocol.MillisOf(m.CreatedAt),
		})
	}
	for {
		b, err := protocol.MarshalFrame(protocol.PendingMessages{Messages: list})
		if err == nil {
			c.mu.Lock()
			if c.pushed == nil && len(list) > 0 {
				c.pushed = make(map[string]struct{}, len(list))
			}
			for _, m := range list {
				c.pushed[m.ID] = struct{}{}
			}
			c.mu.Unlock()
			c.enqueue(outItem{data: b}, true)
			return
		}
		if len(list) == 0 {
			c.log.Error("encoding pending messages failed", "error", err)
			return
		}
		// Escapes made the frame larger than estimated.
		list = list[:len(list)/2]
	}
}

// handleAck deletes an acknowledged stored message. Acknowledging an
// unknown or already deleted message does nothing: clients that both get
// the push and fetch the list acknowledge twice.
func (c *conn) handleAck(id string) {
	ok, err := c.s.store.ack(context.Background(), c.amid, id)
	if err != nil {
		c.log.Error("deleting an acknowledged message failed", "error", err)
		c.replyError(protocol.RelayInternalError, "Could not acknowledge the message", nil)
		return
	}
	c.mu.Lock()
	if _, in := c.pushed[id]; in && c.pushing {
		// The flusher's read of the store may predate the deletion and
		// still list the message: it must not push it again.
		c.acked = append(c.acked, id)
	} else {
		delete(c.pushed, id)
	}
	c.mu.Unlock()
	if !ok {
		c.log.Debug("acknowledgement for no stored message")
	}
}

// truncate shortens client-supplied text for logs.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// run owns the Conn's sockets: it reads each one until it drops, then
// reconnects, until Close or a permanent failure.
func (c *Conn) run(s *socket) {
	defer c.wg.Done()
	attempt := 0
	for {
		err := c.readLoop(s)
		c.drop(s)
		if c.stopped() {
			return
		}
		if websocket.CloseStatus(err) == CloseStatusReplaced {
			c.log.Warn("another connection of this agent replaced this one; not reconnecting")
			c.fail(ErrReplaced)
			return
		}
		c.log.Info("relay connection lost", "error", err)
		if !c.cfg.reconnect {
			c.fail(fmt.Errorf("%w: %w", ErrConnectionLost, err))
			return
		}
		// A connection that did not last keeps the backoff growing, so that
		// a relay which accepts and then drops at once is not hammered.
		if time.Since(s.since) >= c.cfg.backoffMax {
			attempt = 0
		}
		s, attempt, err = c.reconnect(err, attempt)
		if err != nil {
			if !c.stopped() {
				c.log.Error("relay refused the reconnect; giving up", "error", err)
				c.fail(err)
			}
			return
		}
		if !c.install(s) {
			return
		}
	}
}

// reconnect dials until it succeeds, the Conn stops, or the relay refuses
// permanently. attempt is the number of attempts already made in this
// outage; the new count is returned.
func (c *Conn) reconnect(cause error, attempt int) (*socket, int, error) {
	for {
		attempt++
		delay := c.backoff(attempt)
		if re := (*Error)(nil); errors.As(cause, &re) && re.RetryAfter > delay {
			delay = re.RetryAfter
		}
		c.setState(StateReconnecting)
		c.notify(StateChange{State: StateReconnecting, Err: cause, Attempt: attempt, Delay: delay})
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.done:
			t.Stop()
			return nil, attempt, ErrClosed
		}
		s, err := c.connect(c.ctx)
		if err == nil {
			return s, attempt, nil
		}
		if re := (*Error)(nil); errors.As(err, &re) && !re.Temporary() {
			return nil, attempt, err
		}
		c.log.Debug("reconnect attempt failed", "attempt", attempt, "error", err)
		cause = err
	}
}

// backoff returns the wait before attempt n ≥ 1: a uniform random duration
// in [0, min(max, base·2^(n−1))).
func (c *Conn) backoff(n int) time.Duration {
	ceiling := c.cfg.backoffMax
	if n-1 < 62 {
		if d := c.cfg.backoffBase << (n - 1); d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return rand.N(ceiling)
}

// install makes s the current socket, unless the Conn has stopped.
func (c *Conn) install(s *socket) bool {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		s.ws.CloseNow()
		return false
	}
	c.cur = s
	c.state = StateConnected
	c.sessionID, c.pending = s.sessionID, s.pending
	close(c.up)
	status := c.presence
	c.mu.Unlock()
	c.log.Debug("connected to relay", "session", s.sessionID, "pending", s.pending)
	c.notify(StateChange{State: StateConnected, SessionID: s.sessionID, PendingMessages: s.pending})
	if status != "" && status != protocol.PresenceOnline {
		data, err := protocol.MarshalFrame(protocol.Presence{Status: status})
		if err == nil {
			err = c.writeOn(context.Background(), s, data, "presence")
		}
		if err != nil {
			c.log.Debug("presence not restored after reconnect", "error", err)
		}
	}
	return true
}

// drop retires s after its reader stopped.
func (c *Conn) drop(s *socket) {
	c.mu.Lock()
	if c.cur == s {
		c.cur = nil
		c.up = make(chan struct{})
	}
	c.mu.Unlock()
	close(s.dead)
	s.ws.CloseNow()
}

func (c *Conn) setState(st State) {
	c.mu.Lock()
	if c.err == nil {
		c.state = st
	}
	c.mu.Unlock()
}

// stopped reports whether the Conn has stopped for good.
func (c *Conn) stopped() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// fail stops the Conn with err.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.state = StateFailed
	close(c.done)
	c.mu.Unlock()
	c.cancel()
	c.notify(StateChange{State: StateFailed, Err: err})
}

// readLoop reads s until it fails. Reading all the time is what answers
// the relay's WebSocket pings.
func (c *Conn) readLoop(s *socket) error {
	var buf bytes.Buffer
	for {
		typ, r, err := s.ws.Reader(c.ctx)
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		if typ != websocket.MessageText {
			continue
		}
		f, err := protocol.ParseServerFrame(buf.Bytes())
		if err != nil {
			c.log.Debug("ignoring unreadable frame", "error", err)
			continue
		}
		c.dispatch(s, f)
	}
}

// dispatch hands one frame to whoever waits for it.
func (c *Conn) dispatch(s *socket, f protocol.ServerFrame) {
	switch f := f.(type) {
	case protocol.Receive:
		if f.MessageID != "" {
			switch c.seen.arrive(f.MessageID) {
			case arrivalQueued:
				return
			case arrivalTaken:
				c.ack(s, f.MessageID)
				return
			}
		}
		ts, _ := protocol.ParseTimestamp(f.Timestamp) // checked by ParseServerFrame
		c.deliver(&Message{
			From:          f.From,
			Payload:       f.EncryptedPayload,
			Type:          f.MessageType,
			Timestamp:     ts,
			ICECandidates: f.ICECandidates,
			MessageID:     f.MessageID,
		})
	case protocol.ErrorFrame:
		c.deliver(&ErrorEvent{Err: errorFromFrame(f)})
	case protocol.ICEOffer:
		c.deliver(&ICEOffer{From: f.To, SDP: f.SDP, Candidates: f.Candidates})
	case protocol.ICEAnswer:
		c.deliver(&ICEAnswer{From: f.To, SDP: f.SDP, Candidates: f.Candidates})
	case protocol.P2PEstablished:
		c.deliver(&P2PEstablished{Peer: f.Peer})
	case protocol.PresenceResponse:
		c.mu.Lock()
		waiters := c.queries[f.AMID]
		delete(c.queries, f.AMID)
		c.mu.Unlock()
		for _, ch := range waiters {
			ch <- f // buffered, one answer per waiter
		}
	case protocol.Pong:
		t, err := protocol.ParseTimestamp(f.Timestamp)
		if err != nil {
			return
		}
		c.mu.Lock()
		ch := c.pings[t.UnixMilli()]
		delete(c.pings, t.UnixMilli())
		c.mu.Unlock()
		if ch != nil {
			ch <- struct{}{}
		}
	default:
		// connected (again) or pending_messages: the relay pushes stored
		// messages as receive frames, which is all this client needs.
	}
}

// deliver queues ev for Receive, waiting while the queue is full. Once the
// Conn has stopped, events are dropped so that the reader can finish the
// close handshake.
func (c *Conn) deliver(ev Incoming) {
	select {
	case c.incoming <- ev:
	case <-c.done:
	}
}

package relayserver

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// conn is one client connection. One goroutine authenticates it, then
// reads and handles its frames and tears it down at the end. Writes are
// made by a flusher goroutine that runs only while there is something to
// write, and the keepalive ping runs from a timer, so that an idle
// connection holds a single goroutine.
//
// Frames for the client wait in q. Other connections never wait on it: a
// message that does not fit goes to the store instead, and the flusher
// pushes stored messages once q has drained. Frames that answer the client
// itself (errors, pongs…) wait for room, which slows only the client that
// is not reading.
//
// Once a message for the client has gone to the store while it was
// connected (spilling), every later message for it goes to the store too,
// until the flusher has pushed the stored backlog; then live delivery
// resumes. A connection starts spilling, until its first push of the
// stored messages. The recipient thus sees each sender's messages in the
// order they were sent.
type conn struct {
	s   *Server
	ws  *websocket.Conn
	raw net.Conn // the hijacked connection under ws; nil in handler tests
	id  uint64
	log hclog.Logger

	// Set by authenticate, read-only afterwards.
	amid      protocol.AMID
	sessionID string

	done chan struct{} // closed by teardown

	mu   sync.Mutex
	room sync.Cond // signalled when q shrinks or the connection fails
	q    []outItem // frames waiting for the flusher; nil when empty
	// writing is set while a flusher runs (or, before the first flush, to
	// keep one from starting).
	writing bool
	broken  bool // a write failed: nothing more will be written
	dead    bool // torn down: nothing more is queued or written
	// storedPending: the store may hold messages not pushed yet.
	storedPending bool
	spilling      bool
	storing       int    // messages being stored because of spilling
	storeGen      uint64 // counts the stores finished while spilling
	pingTimer     *time.Timer
	bg            sync.WaitGroup // flusher and ping

	status       protocol.PresenceStatus
	lastActivity time.Time
	pushed       map[string]struct{} // stored messages delivered on this connection, not acknowledged

	closeOnce sync.Once
}

// outItem is a frame waiting for the flusher. msg is set for a message
// delivered live, so that it can be stored if it cannot be written.
type outItem struct {
	data []byte
	msg  *storedMessage
}

func newConn(s *Server, ws *websocket.Conn, raw net.Conn) *conn {
	id := s.nextID.Add(1)
	c := &conn{
		s:       s,
		ws:      ws,
		raw:     raw,
		id:      id,
		log:     s.log.With("conn", id),
		done:    make(chan struct{}),
		writing: true,
	}
	c.room.L = &c.mu
	return c
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	if !c.authenticate() {
		return
	}
	c.mu.Lock()
	c.spilling = true
	c.mu.Unlock()
	if !c.s.register(c) {
		c.closeWith(websocket.StatusGoingAway, "relay shutting down")
		return
	}
	c.log.Info("agent connected")
	msgs, err := c.s.store.pending(context.Background(), c.amid, c.s.now())
	if err != nil {
		c.log.Error("reading stored messages failed", "error", err)
	}
	b, err := protocol.MarshalFrame(protocol.Connected{SessionID: c.sessionID, PendingMessages: len(msgs)})
	if err == nil && c.write(outItem{data: b}) {
		c.mu.Lock()
		c.writing = false
		c.storedPending = true
		c.pingTimer = time.AfterFunc(c.s.cfg.PingInterval, c.ping)
		c.kickLocked()
		c.mu.Unlock()
		c.readLoop()
	}
	c.teardown()
}

// readLoop handles frames until the socket fails or the client sends
// disconnect.
func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				c.log.Info("frame over the size limit: connection closed", "limit", readLimit(c.s.cfg.MaxMessageSize))
			} else {
				c.log.Debug("read ended", "error", err)
			}
			return
		}
		if typ != websocket.MessageText {
			if c.allow(kindControl, c.s.now()) {
				c.replyError(protocol.RelayInvalidMessage, "Binary frames are not supported: send each frame as a JSON text frame", nil)
			}
			continue
		}
		if !c.handleFrame(data) {
			return
		}
	}
}

// teardown unregisters the connection, closes it, waits for its flusher
// and stores every message still queued for it.
func (c *conn) teardown() {
	c.s.unregister(c)
	close(c.done)
	c.mu.Lock()
	c.dead = true
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	c.room.Broadcast()
	c.mu.Unlock()
	c.closeWith(websocket.StatusNormalClosure, "")
	c.bg.Wait()
	c.mu.Lock()
	q := c.q
	c.q = nil
	c.mu.Unlock()
	n := 0
	for _, it := range q {
		if it.msg != nil && c.spill(it.msg) {
			n++
		}
	}
	if n > 0 {
		c.log.Info("moved undelivered messages to the store", "count", n)
		if rc := c.s.lookup(c.amid); rc != nil {
			rc.notifyStored()
		}
	}
	c.log.Info("agent disconnected")
}

// closeGrace bounds the wait for a peer's answer to our close frame.
const closeGrace = time.Second

// closeWith closes the socket with a close handshake, the first time it is
// called. A peer that does not answer within closeGrace has its socket
// closed under it.
func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		t := time.AfterFunc(closeGrace, c.hardClose)
		c.ws.Close(code, reason)
		t.Stop()
	})
}

// closeNow closes the socket at once, without a close handshake, and cuts
// short a handshake in progress.
func (c *conn) closeNow() {
	c.hardClose()
	c.closeOnce.Do(func() {})
}

// hardClose closes the network connection under the WebSocket, which makes
// every pending read, write and close on it return.
func (c *conn) hardClose() {
	if c.raw != nil {
		c.raw.Close()
		return
	}
	if c.ws != nil {
		c.ws.CloseNow()
	}
}

// kickLocked starts the flusher unless one runs. c.mu is held.
func (c *conn) kickLocked() {
	if c.writing || c.dead || c.broken {
		return
	}
	c.writing = true
	c.bg.Add(1)
	go c.flush()
}

// enqueue queues a frame for the client. With wait it waits for room
// (until teardown or a failed write); without, it gives up at once when
// the queue is full. It reports whether the frame was queued.
func (c *conn) enqueue(it outItem, wait bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for wait && !c.dead && !c.broken && len(c.q) >= c.s.cfg.OutboundQueue {
		c.room.Wait()
	}
	if c.dead || c.broken || len(c.q) >= c.s.cfg.OutboundQueue {
		return false
	}
	c.pushLocked(it)
	return true
}

func (c *conn) pushLocked(it outItem) {
	if c.q == nil {
		c.q = make([]outItem, 0, 4)
	}
	c.q = append(c.q, it)
	c.kickLocked()
}

// deliverResult says what became of a message offered to a connection.
type deliverResult int

const (
	deliveredLive deliverResult = iota // queued for the flusher
	mustStore                          // the caller stores it, then calls storeDone
	notConnected                       // torn down: the caller stores it as for an offline recipient
)

// offer queues a live message unless the connection is spilling or its
// queue is full. In both of those cases the connection is (or stays)
// spilling and the caller must store the message and then call storeDone,
// whatever the outcome of the store.
func (c *conn) offer(it outItem) deliverResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.broken {
		return notConnected
	}
	if !c.spilling && len(c.q) < c.s.cfg.OutboundQueue {
		c.pushLocked(it)
		return deliveredLive
	}
	c.spilling = true
	c.storing++
	return mustStore
}

// storeDone ends a store that offer asked for and has the flusher push the
// stored messages.
func (c *conn) storeDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.storing--
	c.storeGen++
	c.storedPending = true
	c.kickLocked()
}

// notifyStored tells the flusher that the store may hold messages it has
// not pushed yet.
func (c *conn) notifyStored() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.storedPending = true
	c.kickLocked()
}

// reply queues a frame answering the client itself.
func (c *conn) reply(f protocol.Frame) {
	b, err := protocol.MarshalFrame(f)
	if err != nil {
		c.log.Error("encoding a reply failed", "type", f.FrameType(), "error", err)
		return
	}
	c.enqueue(outItem{data: b}, true)
}

func (c *conn) replyError(code protocol.RelayErrorCode, msg string, retryAfter *int) {
	c.reply(protocol.ErrorFrame{Code: code, Message: msg, RetryAfterSeconds: retryAfter})
}

// flush writes the queued frames, and the stored messages whenever the
// queue is empty, until there is nothing left to write.
func (c *conn) flush() {
	defer c.bg.Done()
	c.mu.Lock()
	for {
		if c.dead {
			break
		}
		if len(c.q) > 0 {
			it := c.q[0]
			c.q[0] = outItem{}
			c.q = c.q[1:]
			if len(c.q) == 0 {
				c.q = nil
			}
			c.room.Broadcast()
			c.mu.Unlock()
			ok := c.write(it)
			c.mu.Lock()
			if !ok {
				c.broken = true
				c.room.Broadcast()
				break
			}
			continue
		}
		if !c.storedPending {
			break
		}
		c.storedPending = false
		gen := c.storeGen
		c.mu.Unlock()
		msgs, err := c.s.store.pending(context.Background(), c.amid, c.s.now())
		ok := true
		if err != nil {
			c.log.Error("reading stored messages failed", "error", err)
		} else {
			ok = c.pushStored(msgs)
		}
		c.mu.Lock()
		if !ok {
			c.broken = true
			c.room.Broadcast()
			break
		}
		if err == nil && c.spilling && c.storing == 0 && c.storeGen == gen {
			// Everything stored so far has been pushed: back to live
			// delivery.
			c.spilling = false
		}
	}
	c.writing = false
	c.mu.Unlock()
}

// pushStored writes the stored messages not yet delivered on this
// connection, with their message ids.
func (c *conn) pushStored(msgs []*storedMessage) bool {
	for _, m := range msgs {
		c.mu.Lock()
		_, seen := c.pushed[m.ID]
		if !seen {
			if c.pushed == nil {
				c.pushed = make(map[string]struct{})
			}
			c.pushed[m.ID] = struct{}{}
		}
		c.mu.Unlock()
		if seen {
			continue
		}
		b, err := protocol.MarshalFrame(m.receive())
		if err != nil {
			c.log.Error("encoding a stored message failed", "message_id", m.ID, "error", err)
			continue
		}
		if !c.write(outItem{data: b}) {
			return false
		}
	}
	return true
}

// write sends one frame. If the socket fails, a live message is stored and
// the socket is closed so that the reader tears the connection down.
func (c *conn) write(it outItem) bool {
	err := c.ws.Write(context.Background(), websocket.MessageText, it.data)
	if err == nil {
		return true
	}
	if !errors.Is(err, context.Canceled) {
		c.log.Debug("write failed", "error", err)
	}
	if it.msg != nil && c.spill(it.msg) {
		c.log.Info("moved an undelivered message to the store")
	}
	c.hardClose()
	return false
}

// spill stores a message that was accepted for live delivery but could not
// be written. It was accepted already, so the queue limits do not apply.
func (c *conn) spill(m *storedMessage) bool {
	m.ID = newUUID()
	if err := c.s.store.put(context.Background(), m, c.s.now(), 0, 0); err != nil {
		c.log.Error("storing an undelivered message failed: message lost", "from", m.From.Short(), "error", err)
		return false
	}
	return true
}

// ping runs from the keepalive timer: it pings the client and waits for
// the pong (read by the reader) on the timer's own goroutine, so writes go
// on meanwhile. A client that does not answer within PingTimeout is
// unregistered and its socket closed.
func (c *conn) ping() {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.bg.Add(1)
	c.mu.Unlock()
	defer c.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.PingTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err == nil {
		c.mu.Lock()
		if !c.dead {
			c.pingTimer.Reset(c.s.cfg.PingInterval)
		}
		c.mu.Unlock()
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	c.log.Info("no pong within the ping timeout: disconnecting", "timeout", c.s.cfg.PingTimeout)
	c.s.unregister(c)
	c.closeNow()
}

// presence returns the client's status and last activity.
func (c *conn) presence() (protocol.PresenceStatus, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.lastActivity
}

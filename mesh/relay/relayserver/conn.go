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

// conn is one client connection. Its handler goroutine (the HTTP
// handler's) authenticates, reads and handles frames, and tears the
// connection down. Once authenticated, a writer goroutine owns every write
// and a keepalive goroutine pings the client.
//
// Frames for the client go through out. Other connections never wait on
// it: a message that does not fit goes to the store instead, and the
// writer pushes stored messages once out has drained. Frames that answer
// the client itself (errors, pongs…) do wait, which slows only the client
// that is not reading.
type conn struct {
	s   *Server
	ws  *websocket.Conn
	raw net.Conn // the hijacked connection under ws; nil in handler tests
	id  uint64
	log hclog.Logger

	// Set by authenticate, read-only afterwards.
	amid      protocol.AMID
	sessionID string

	out      chan outItem
	storedCh chan struct{} // capacity 1: the store may hold new messages
	done     chan struct{} // closed by teardown
	wdone    chan struct{} // closed when the writer stops

	qmu  sync.RWMutex
	dead bool // no more frames are queued once set

	mu           sync.Mutex
	status       protocol.PresenceStatus
	lastActivity time.Time
	pushed       map[string]struct{} // stored messages delivered on this connection, not acknowledged

	closeOnce sync.Once
	bg        sync.WaitGroup // writer and keepalive
}

// outItem is a frame waiting for the writer. msg is set for a message
// delivered live, so that it can be stored if it cannot be written.
type outItem struct {
	data []byte
	msg  *storedMessage
}

func newConn(s *Server, ws *websocket.Conn, raw net.Conn) *conn {
	id := s.nextID.Add(1)
	return &conn{
		s:        s,
		ws:       ws,
		raw:      raw,
		id:       id,
		log:      s.log.With("conn", id),
		out:      make(chan outItem, s.cfg.OutboundQueue),
		storedCh: make(chan struct{}, 1),
		done:     make(chan struct{}),
		wdone:    make(chan struct{}),
		pushed:   make(map[string]struct{}),
	}
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	if !c.authenticate() {
		return
	}
	if !c.s.register(c) {
		c.closeWith(websocket.StatusGoingAway, "relay shutting down")
		return
	}
	c.log.Info("agent connected")
	c.bg.Add(2)
	go c.writeLoop()
	go c.keepalive()
	c.readLoop()
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

// teardown unregisters the connection, closes it, waits for its goroutines
// and stores every message still queued for it.
func (c *conn) teardown() {
	c.s.unregister(c)
	close(c.done)
	c.qmu.Lock()
	c.dead = true
	c.qmu.Unlock()
	c.closeWith(websocket.StatusNormalClosure, "")
	c.bg.Wait()
	n := 0
	for drained := false; !drained; {
		select {
		case it := <-c.out:
			if it.msg != nil && c.spill(it.msg) {
				n++
			}
		default:
			drained = true
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
	c.ws.CloseNow()
}

// enqueue queues a frame for the client. With wait it waits for room
// (until teardown or until the writer stops); without, it gives up at once
// when the queue is full.
// It reports whether the frame was queued.
func (c *conn) enqueue(it outItem, wait bool) bool {
	c.qmu.RLock()
	defer c.qmu.RUnlock()
	if c.dead {
		return false
	}
	if wait {
		select {
		case c.out <- it:
			return true
		case <-c.done:
			return false
		case <-c.wdone:
			return false
		}
	}
	select {
	case c.out <- it:
		return true
	default:
		return false
	}
}

// notifyStored tells the writer that the store may hold messages it has
// not pushed yet.
func (c *conn) notifyStored() {
	select {
	case c.storedCh <- struct{}{}:
	default:
	}
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

// writeLoop sends connected and the stored messages, then every queued
// frame, pushing newly stored messages whenever the queue is empty.
func (c *conn) writeLoop() {
	defer c.bg.Done()
	defer close(c.wdone)
	msgs, err := c.s.store.pending(context.Background(), c.amid, c.s.now())
	if err != nil {
		c.log.Error("reading stored messages failed", "error", err)
	}
	b, err := protocol.MarshalFrame(protocol.Connected{SessionID: c.sessionID, PendingMessages: len(msgs)})
	if err != nil || !c.write(outItem{data: b}) {
		return
	}
	if !c.pushStored(msgs) {
		return
	}
	pendingStored := false
	for {
		if pendingStored && len(c.out) == 0 {
			pendingStored = false
			msgs, err := c.s.store.pending(context.Background(), c.amid, c.s.now())
			if err != nil {
				c.log.Error("reading stored messages failed", "error", err)
			} else if !c.pushStored(msgs) {
				return
			}
		}
		select {
		case it := <-c.out:
			if !c.write(it) {
				return
			}
		case <-c.storedCh:
			pendingStored = true
		case <-c.done:
			return
		}
	}
}

// pushStored writes the stored messages not yet delivered on this
// connection, with their message ids.
func (c *conn) pushStored(msgs []*storedMessage) bool {
	for _, m := range msgs {
		c.mu.Lock()
		_, seen := c.pushed[m.ID]
		c.pushed[m.ID] = struct{}{}
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
// the socket is closed so that the handler tears the connection down.
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

// keepalive pings the client every PingInterval. A client that does not
// answer within PingTimeout is unregistered and its socket closed.
func (c *conn) keepalive() {
	defer c.bg.Done()
	t := time.NewTicker(c.s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.PingTimeout)
		err := c.ws.Ping(ctx)
		cancel()
		if err == nil {
			continue
		}
		select {
		case <-c.done:
			return
		default:
		}
		c.log.Info("no pong within the ping timeout: disconnecting", "timeout", c.s.cfg.PingTimeout)
		c.s.unregister(c)
		c.closeNow()
		return
	}
}

// presence returns the client's status and last activity.
func (c *conn) presence() (protocol.PresenceStatus, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.lastActivity
}

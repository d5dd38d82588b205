package relayserver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// conn is one client connection. One goroutine authenticates it, then
// reads and handles its frames and tears it down at the end. Writes are
// made by a flusher goroutine that runs only while there is something to
// write (or, for a small message when nothing is queued, by the sender's
// goroutine), and the keepalive ping runs from a timer, so that an idle
// connection holds a single goroutine.
//
// Frames for the client wait in q. Other connections never wait on it: a
// message that does not fit goes to the store instead, and the flusher
// pushes stored messages once q has drained. Frames that answer the client
// itself (errors, pongs…) wait for room, which slows only the client that
// is not reading.
//
// Once a message for the client has gone to the store while it was
// connected (spilling, or a store for a recipient found not connected that
// ended after it connected: see notifyStored), every later message for it
// goes to the store too, until the flusher has pushed the stored backlog;
// then live delivery resumes. A new connection gets the messages stored for
// it before it was registered ahead of anything queued, and those it
// spilled since after. The recipient thus sees each sender's messages in
// the order they were sent, and each stored message once per connection.
type conn struct {
	s   *Server
	ws  *websocket.Conn
	raw net.Conn // the hijacked connection under ws; nil in handler tests
	// sys is raw's socket, to inspect its send queue; nil if raw has none.
	sys syscall.RawConn
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
	// closing: the relay is shutting down; the close frame is sent or
	// about to be, and nothing more is queued or written.
	closing bool
	serving bool // authenticated and registered, reading frames
	// drain closes the socket when the client does not answer the
	// shutdown's close frame; shutdownAt is when that frame was sent.
	drain      *time.Timer
	shutdownAt time.Time
	// draining mirrors closing for the reader, which checks it after each
	// frame without taking mu.
	draining atomic.Bool
	dead     bool // torn down: nothing more is queued or written
	// storedPending: the store may hold messages not pushed yet.
	storedPending bool
	// storedFirst: the messages stored before the connection was
	// registered are pushed before anything queued.
	storedFirst bool
	// spilledEarly holds the ids of the messages spilled while storedFirst
	// was set: they were sent after the ones queued, so the first push
	// leaves them for a later one, after the queue.
	spilledEarly map[string]struct{}
	spilling     bool
	storing      int    // messages being stored because of spilling
	storeGen     uint64 // counts the stores finished while spilling
	pingTimer    *time.Timer
	bg           sync.WaitGroup // flusher and ping

	status       protocol.PresenceStatus
	lastActivity time.Time
	pushed       map[string]struct{} // stored messages delivered on this connection, not acknowledged
	// pushing is set while the flusher pushes stored messages from a read
	// of the store; acked holds the messages acknowledged meanwhile, which
	// that read may still list: they leave pushed only once it is done.
	pushing bool
	acked   []string

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
	if sc, ok := raw.(syscall.Conn); ok {
		c.sys, _ = sc.SyscallConn()
	}
	return c
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	if !c.authenticate() {
		return
	}
	// From registration on, messages for the client may be queued or
	// spilled: what the store holds already is pushed first, and what is
	// spilled from now until then is told apart (see offer).
	c.mu.Lock()
	c.storedFirst = true
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
		c.serving = true
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
		buf := readBuffers.Get().(*bytes.Buffer)
		typ, data, err := c.read(buf)
		if err != nil {
			readBuffers.Put(buf)
			if errors.Is(err, websocket.ErrMessageTooBig) {
				c.log.Info("frame over the size limit: connection closed", "limit", readLimit(c.s.cfg.MaxMessageSize))
			} else {
				c.log.Debug("read ended", "error", err)
			}
			return
		}
		if typ != websocket.MessageText {
			readBuffers.Put(buf)
			if c.allow(kindControl, c.s.now()) {
				c.replyError(protocol.RelayInvalidMessage, "Binary frames are not supported: send each frame as a JSON text frame", nil)
			}
			continue
		}
		draining := c.draining.Load()
		if draining {
			c.holdDrain()
		}
		more := c.handleFrame(data)
		readBuffers.Put(buf)
		if !more {
			return
		}
		if draining {
			c.extendDrain()
		}
	}
}

// readBuffers hold frames while they are handled: nothing handleFrame
// keeps refers to the frame's bytes.
var readBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// read reads the next message into buf, as websocket.Conn.Read does into a
// new slice.
func (c *conn) read(buf *bytes.Buffer) (websocket.MessageType, []byte, error) {
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return 0, nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return 0, nil, err
	}
	return typ, buf.Bytes(), nil
}

// shutdownMax bounds how long a closing connection goes on handling
// frames after the relay sent its close frame.
const shutdownMax = 10 * time.Second

// holdDrain stops a closing connection's drain timer while a frame is
// handled, however long the store takes.
func (c *conn) holdDrain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drain != nil {
		c.drain.Stop()
	}
}

// extendDrain gives a closing connection another closeGrace after each
// frame it handles, within shutdownMax: a client that is still sending
// what it wrote before it saw the close is not cut off while the relay
// works through it.
func (c *conn) extendDrain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drain == nil {
		return
	}
	if left := shutdownMax - time.Since(c.shutdownAt); left < closeGrace {
		c.drain.Reset(max(left, 0))
	} else {
		c.drain.Reset(closeGrace)
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
	if c.drain != nil {
		c.drain.Stop()
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
	if c.writing || c.dead || c.broken || c.closing || (len(c.q) == 0 && !c.storedPending) {
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
	for wait && !c.dead && !c.broken && !c.closing && len(c.q) >= c.s.cfg.OutboundQueue {
		c.room.Wait()
	}
	if c.dead || c.broken || c.closing || len(c.q) >= c.s.cfg.OutboundQueue {
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
	deliveredLive deliverResult = iota // written, or queued for the flusher
	mustStore                          // the caller stores it, then calls storeDone
	notConnected                       // torn down: the caller stores it as for an offline recipient
)

// directWriteMax is the largest frame offer writes itself rather than
// queueing it for the flusher. It does so only when the recipient's socket
// has nothing unacknowledged in its send queue, so a frame this small fits
// the socket's buffer and the write returns without waiting for the peer.
const directWriteMax = 4096

// offer delivers a live message unless the connection is spilling or its
// queue is full: it writes the message itself when nothing is queued or
// being written and the write cannot block (see directWriteMax), and
// queues it otherwise. In both of those cases the connection is (or stays)
// spilling and the caller must store the message and then call storeDone,
// whatever the outcome of the store.
func (c *conn) offer(it outItem) deliverResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.broken || c.closing {
		return notConnected
	}
	if !c.spilling && len(c.q) == 0 && !c.writing && len(it.data) <= directWriteMax && c.sys != nil && sendQueueEmpty(c.sys) {
		// Nothing is waiting or being written, and the socket has room:
		// writing here saves waking a writer and cannot block.
		c.writing = true
		c.bg.Add(1)
		c.mu.Unlock()
		ok := c.write(it)
		c.mu.Lock()
		c.bg.Done()
		c.writing = false
		if !ok {
			c.broken = true
		}
		c.room.Broadcast()
		c.kickLocked()
		return deliveredLive
	}
	if !c.spilling && len(c.q) < c.s.cfg.OutboundQueue {
		c.pushLocked(it)
		return deliveredLive
	}
	c.spilling = true
	c.storing++
	if c.storedFirst && it.msg != nil {
		if it.msg.ID == "" {
			it.msg.ID = newUUID()
		}
		if c.spilledEarly == nil {
			c.spilledEarly = make(map[string]struct{})
		}
		c.spilledEarly[it.msg.ID] = struct{}{}
	}
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

// notifyStored tells the flusher that the store holds messages for the
// client that were stored outside offer (for a recipient that was not
// connected, or still queued when a connection ended) and that its last
// read of the store may have missed. Until the flusher has pushed them,
// later messages follow them to the store, as when spilling.
func (c *conn) notifyStored() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spilling = true
	c.storeGen++
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
		if c.dead || c.closing {
			break
		}
		if len(c.q) > 0 && !c.storedFirst {
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
		first := c.storedFirst
		gen := c.storeGen
		c.pushing = true
		c.mu.Unlock()
		msgs, err := c.s.store.pending(context.Background(), c.amid, c.s.now())
		ok, deferred := true, false
		if err != nil {
			c.log.Error("reading stored messages failed", "error", err)
		} else {
			if c.s.storeReadHookForTest != nil {
				c.s.storeReadHookForTest(c)
			}
			ok, deferred = c.pushStored(msgs, first)
		}
		c.mu.Lock()
		c.pushing = false
		for _, id := range c.acked {
			delete(c.pushed, id)
		}
		c.acked = nil
		if first {
			// Messages spilled from now on follow the queue anyway.
			c.storedFirst = false
			if c.spilledEarly != nil {
				deferred = true
				c.spilledEarly = nil
			}
		}
		if !ok {
			c.broken = true
			c.room.Broadcast()
			break
		}
		if deferred {
			// Spilled messages wait behind the queue: push them once it
			// has drained, and stay spilling until then.
			c.storedPending = true
			continue
		}
		if err == nil && c.spilling && c.storing == 0 && c.storeGen == gen {
			// Everything stored so far has been pushed: back to live
			// delivery.
			c.spilling = false
		}
	}
	c.writing = false
	c.room.Broadcast()
	c.mu.Unlock()
}

// pushStored writes the stored messages not yet delivered on this
// connection, with their message ids. On the first push (first) it leaves
// out the messages spilled before it, which come after the queue; deferred
// reports whether it left any out.
func (c *conn) pushStored(msgs []*storedMessage, first bool) (ok, deferred bool) {
	for _, m := range msgs {
		c.mu.Lock()
		if first {
			if _, early := c.spilledEarly[m.ID]; early {
				c.mu.Unlock()
				deferred = true
				continue
			}
		}
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
			return false, deferred
		}
	}
	return true, deferred
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
	c.mu.Lock()
	ended := c.dead || c.closing
	c.mu.Unlock()
	if ended {
		return
	}
	c.log.Info("no pong within the ping timeout: disconnecting", "timeout", c.s.cfg.PingTimeout)
	c.s.unregister(c)
	c.closeNow()
}

// opClose is the WebSocket close frame's opcode (RFC 6455 §5.5.1).
const opClose = 8

// shutdown ends the connection when the relay closes, without losing the
// frames the client sends before it sees the close: the flusher stops
// (what is still queued is stored at teardown), a close frame (1001) is
// written, and the reader goes on handling frames until the client's close
// arrives, or closeGrace passes without a frame (shutdownMax at most). A
// connection that is not serving yet is
// closed at once.
//
// The close frame is written as a message of the close opcode through
// websocket.Conn.Write rather than with websocket.Conn.Close, whose close
// handshake reads and discards every frame that arrives before the peer's
// close.
func (c *conn) shutdown() {
	c.mu.Lock()
	if !c.serving || c.dead {
		c.mu.Unlock()
		c.closeWith(websocket.StatusGoingAway, "relay shutting down")
		return
	}
	c.closing = true
	c.pingTimer.Stop()
	c.room.Broadcast()
	// A write blocked on a client that does not read is cut short.
	stuck := time.AfterFunc(closeGrace, c.hardClose)
	for c.writing {
		c.room.Wait()
	}
	stuck.Stop()
	broken := c.broken || c.dead
	if !broken {
		c.shutdownAt = time.Now()
		c.drain = time.AfterFunc(closeGrace, c.hardClose)
		c.draining.Store(true)
	}
	c.mu.Unlock()
	if broken {
		return
	}
	reason := "relay shutting down"
	p := make([]byte, 2+len(reason))
	p[0], p[1] = byte(websocket.StatusGoingAway>>8), byte(websocket.StatusGoingAway&0xff)
	copy(p[2:], reason)
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	err := c.ws.Write(ctx, websocket.MessageType(opClose), p)
	cancel()
	if err != nil {
		c.log.Debug("writing the close frame failed", "error", err)
		c.hardClose()
	}
}

// presence returns the client's status and last activity.
func (c *conn) presence() (protocol.PresenceStatus, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.lastActivity
}

package relayserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// WebSocket close statuses the server sends besides the standard ones
// (1000 after a disconnect frame, 1001 on shutdown, 1008 after a refused
// CONNECT, 1009 for a frame over the read limit).
const (
	// StatusReplaced closes a connection whose AMID connected again: the
	// newer connection takes over. A client that gets it should not
	// reconnect by itself, or two instances of one agent would take turns
	// replacing each other.
	StatusReplaced = 4000
)

// Server is the relay: an http.Handler that serves the relay protocol over
// WebSocket on every path except /healthz and /readyz. Create it with New
// and stop it with Close. Several Servers may run in one process.
type Server struct {
	cfg    Config
	log    hclog.Logger
	store  *Store
	limits *limiter
	pairs  *pairSet
	replay *replayCache

	nextID atomic.Uint64

	// acceptHookForTest, when set before serving, sees each hijacked
	// network connection before it is used.
	acceptHookForTest func(net.Conn)
	// storeReadHookForTest, when set before serving, runs in a writer
	// between its read of the stored messages and their push.
	storeReadHookForTest func(*conn)

	mu       sync.Mutex
	closed   bool
	clients  map[protocol.AMID]*conn // authenticated and registered
	conns    map[*conn]struct{}      // every open connection
	handlers sync.WaitGroup          // one per entry of conns

	closeOnce   sync.Once
	stop        chan struct{}
	sweeperDone chan struct{}
}

// New returns a Server for cfg and starts its background sweeper, which
// deletes expired messages every Config.PurgeInterval.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		store:       cfg.Store,
		limits:      newLimiter(cfg.Limits),
		pairs:       newPairSet(cfg.PresenceWindow),
		replay:      newReplayCache(),
		clients:     make(map[protocol.AMID]*conn),
		conns:       make(map[*conn]struct{}),
		stop:        make(chan struct{}),
		sweeperDone: make(chan struct{}),
	}
	go s.sweeper()
	return s, nil
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// ServeHTTP answers GET /healthz and GET /readyz and upgrades every other
// request to a relay WebSocket connection. The original relay accepts any
// path; clients use /v1/connect.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		s.serveHealth(w, r, false)
		return
	case "/readyz":
		s.serveHealth(w, r, true)
		return
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
		return
	}
	s.serveWebSocket(w, r)
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request, ready bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body := map[string]string{"status": "ok"}
	code := http.StatusOK
	if ready {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		switch err := s.store.Ping(ctx); {
		case closed:
			body, code = map[string]string{"status": "unavailable", "error": "relay shutting down"}, http.StatusServiceUnavailable
		case err != nil:
			s.log.Warn("readiness check failed", "error", err)
			body, code = map[string]string{"status": "unavailable", "error": "store unreachable"}, http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	// The relay holds no ambient authority (no cookies: every connection
	// authenticates with a signature), so browsers on any origin may
	// connect, as they may to the original relay.
	hj := &hijackRecorder{ResponseWriter: w}
	ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	ws.SetReadLimit(readLimit(s.cfg.MaxMessageSize))
	if s.acceptHookForTest != nil {
		s.acceptHookForTest(hj.conn)
	}
	c := newConn(s, ws, hj.conn)
	if !s.track(c) {
		ws.Close(websocket.StatusGoingAway, "relay shutting down")
		return
	}
	c.log.Debug("connection opened", "remote", r.RemoteAddr)
	// The connection runs on a goroutine of its own, so that the HTTP
	// handler's goroutine, its deeper stack, the request and the response
	// writer are freed while the connection lasts.
	go func() {
		defer s.untrack(c)
		c.serve()
	}()
}

// hijackRecorder keeps the network connection that websocket.Accept
// hijacks, so that an unresponsive peer can be cut off without waiting for
// the close handshake.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

// Buffer sizes of a relay connection's socket reader and writer. net/http
// hands over buffers of 4 KiB each with a hijacked connection, and the
// WebSocket keeps them for the connection's life; smaller ones save memory
// on idle connections. Larger reads and writes bypass the buffers.
const (
	connReadBuffer  = 1024
	connWriteBuffer = 2048
)

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// An http.Server's read and write timeouts would otherwise cut long
	// lived connections; the relay keeps them alive with pings instead.
	conn.SetDeadline(time.Time{})
	h.conn = conn
	if brw.Writer.Buffered() > 0 {
		return conn, brw, nil
	}
	// Bytes the client sent after the upgrade request are already in
	// net/http's reader: the smaller reader starts with a copy of them
	// buffered, as the WebSocket takes over only what is buffered.
	n := brw.Reader.Buffered()
	if n > connReadBuffer {
		return conn, brw, nil
	}
	var br *bufio.Reader
	if n == 0 {
		br = bufio.NewReaderSize(conn, connReadBuffer)
	} else {
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), connReadBuffer)
		if _, err := br.Peek(n); err != nil {
			return nil, nil, fmt.Errorf("relay: buffering the bytes read with the upgrade request: %w", err)
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, connWriteBuffer)), nil
}

// track adds c to the open connections, unless the server is closed.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.handlers.Done()
}

// register makes c the connection of its AMID. A connection already
// registered for the AMID is closed with StatusReplaced; when it finishes,
// its teardown leaves c registered (unregister checks identity).
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	old := s.clients[c.amid]
	s.clients[c.amid] = c
	s.mu.Unlock()
	if old != nil {
		old.log.Info("connection replaced by a newer one", "new_conn", c.id)
		go old.closeWith(StatusReplaced, "replaced by a newer connection")
	}
	return true
}

// unregister removes c if, and only if, it is still the connection of its
// AMID.
func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[c.amid] == c {
		delete(s.clients, c.amid)
	}
}

// lookup returns the registered connection of amid, or nil.
func (s *Server) lookup(amid protocol.AMID) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients[amid]
}

// Close stops accepting connections, closes every open connection (status
// 1001) and waits until each has finished, then stops the sweeper. Each
// authenticated connection stops writing, sends its close frame and goes
// on handling the frames the client sent before it saw the close, until
// the client's close frame arrives, or a second passes without a frame
// (ten seconds at most); sends among them are stored, as every recipient
// is closing. Messages still queued for a connection are moved to the
// store too, so close the Store only after Close returns. Close is idempotent and always returns nil.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		close(s.stop)
		for _, c := range conns {
			go c.shutdown()
		}
		s.handlers.Wait()
		<-s.sweeperDone
		s.log.Info("relay closed", "connections", len(conns))
	})
	return nil
}

// sweeper deletes expired messages and forgets stale in-memory state every
// PurgeInterval until Close.
func (s *Server) sweeper() {
	defer close(s.sweeperDone)
	t := time.NewTicker(s.cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

func (s *Server) sweep() {
	now := s.now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := s.store.purgeExpired(ctx, now)
	switch {
	case err != nil:
		s.log.Error("purging expired messages failed", "error", err)
	case n > 0:
		s.log.Info("purged expired messages", "count", n)
	}
	s.limits.sweep(now)
	s.pairs.sweep(now)
	s.replay.sweep(now)
}

// newUUID returns a random (version 4) UUID, lowercase and hyphenated.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

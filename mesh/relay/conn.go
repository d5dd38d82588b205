package relay

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// closeTimeout bounds the disconnect frame and close handshake of Close.
const closeTimeout = 2 * time.Second

// Conn is an authenticated connection to a relay that reconnects by itself.
// Create it with Dial. It is safe for concurrent use.
type Conn struct {
	url    string
	key    crypto.Signer
	amid   protocol.AMID
	pubKey string // raw base64, as CONNECT carries it
	cfg    config
	log    hclog.Logger

	// ctx ends when the Conn stops for good; socket reads and reconnect
	// dials use it.
	ctx    context.Context
	cancel context.CancelFunc
	// done is closed, with err set, when the Conn stops for good: at the
	// start of Close, or when a reconnect is refused permanently.
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	incoming chan Incoming
	seen     *dedupSet

	stampMu     sync.Mutex
	lastConnect int64 // milliseconds of the last CONNECT timestamp
	lastPing    int64 // milliseconds of the last ping timestamp

	mu        sync.Mutex
	cur       *socket       // nil while reconnecting
	up        chan struct{} // closed when cur is set; replaced when it drops
	err       error         // why the Conn stopped: ErrClosed or a failure
	state     State
	sessionID string
	pending   int
	presence  protocol.PresenceStatus // last SetPresence, sent again after reconnect
	pings     map[int64]chan struct{}
	queries   map[protocol.AMID][]chan protocol.PresenceResponse
}

// socket is one authenticated WebSocket of a Conn.
type socket struct {
	ws        *websocket.Conn
	dead      chan struct{} // closed when its reader has stopped
	sessionID string
	pending   int
	since     time.Time
}

// Dial connects to the relay at url (ws:// or wss://) and authenticates as
// the agent whose Ed25519 key is key: an ed25519.PrivateKey, or any
// crypto.Signer over one, such as an identity's Signer. It makes one attempt, bounded by ctx
// and WithHandshakeTimeout, and returns once the relay has sent connected.
// A relay that refuses the CONNECT makes Dial return its error frame as an
// *Error; other failures (network, handshake timeout, the relay closing the
// socket) are returned wrapped. After Dial returns, ctx no longer matters:
// the Conn lives until Close, reconnecting as needed.
func Dial(ctx context.Context, url string, key crypto.Signer, opts ...Option) (*Conn, error) {
	if key == nil {
		return nil, errors.New("relay: dial: no signing key")
	}
	if k, ok := key.(ed25519.PrivateKey); ok && len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("relay: dial: private key is %d bytes, want %d", len(k), ed25519.PrivateKeySize)
	}
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("relay: dial: signing key is %T, want an Ed25519 key", key.Public())
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("relay: dial: nil option")
		}
		o(&cfg)
	}
	cfg.dedupWindow = max(cfg.dedupWindow, 2*cfg.receiveBuffer)
	amid := protocol.DeriveAMID(pub)
	c := &Conn{
		url:      url,
		key:      key,
		amid:     amid,
		pubKey:   protocol.B64.EncodeToString(pub),
		cfg:      cfg,
		log:      cfg.logger.Named("relay").With("amid", amid.Short()),
		done:     make(chan struct{}),
		incoming: make(chan Incoming, cfg.receiveBuffer),
		seen:     newDedupSet(cfg.dedupWindow),
		up:       make(chan struct{}),
		pings:    make(map[int64]chan struct{}),
		queries:  make(map[protocol.AMID][]chan protocol.PresenceResponse),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	s, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.install(s)
	c.wg.Add(1)
	go c.run(s)
	return c, nil
}

// AMID returns the agent's AMID, derived from the key given to Dial.
func (c *Conn) AMID() protocol.AMID { return c.amid }

// SessionID returns the relay's id for the current or last connection.
func (c *Conn) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// PendingMessages returns how many stored messages the relay announced in
// its last connected frame.
func (c *Conn) PendingMessages() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending
}

// State returns the Conn's current state.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Send sends payload to the agent to. The relay delivers it at once when
// the recipient is connected and stores it otherwise; it confirms neither,
// but reports refusals (RATE_LIMITED, MESSAGE_TOO_LARGE, …) later as an
// ErrorEvent. While the Conn is reconnecting, Send waits for the new
// connection until ctx ends, then returns an error wrapping ErrNotConnected
// and ctx's error.
func (c *Conn) Send(ctx context.Context, to protocol.AMID, payload string, mt protocol.MessageType, candidates []protocol.ICECandidate) error {
	_, err := c.write(ctx, protocol.Send{To: to, EncryptedPayload: payload, MessageType: mt, ICECandidates: candidates})
	return err
}

// SetPresence tells the relay the agent's presence status. The Conn sends
// the last status again after every reconnect, since the relay starts each
// connection as online.
func (c *Conn) SetPresence(ctx context.Context, status protocol.PresenceStatus) error {
	if !status.Valid() {
		return fmt.Errorf("relay: presence: %q is not a presence status", status)
	}
	c.mu.Lock()
	c.presence = status
	c.mu.Unlock()
	_, err := c.write(ctx, protocol.Presence{Status: status})
	return err
}

// QueryPresence asks the relay for the presence of amid and waits for the
// answer about that AMID. A query whose socket drops is asked again on the
// next connection, until ctx ends.
func (c *Conn) QueryPresence(ctx context.Context, amid protocol.AMID) (protocol.PresenceResponse, error) {
	for {
		ch := make(chan protocol.PresenceResponse, 1)
		c.mu.Lock()
		c.queries[amid] = append(c.queries[amid], ch)
		c.mu.Unlock()
		r, retry, err := c.awaitPresence(ctx, amid, ch)
		c.mu.Lock()
		c.removeQuery(amid, ch)
		c.mu.Unlock()
		if !retry {
			return r, err
		}
	}
}

func (c *Conn) awaitPresence(ctx context.Context, amid protocol.AMID, ch chan protocol.PresenceResponse) (protocol.PresenceResponse, bool, error) {
	s, err := c.write(ctx, protocol.PresenceQuery{AMID: amid})
	if err != nil {
		if s == nil || !errors.Is(err, ErrConnectionLost) {
			return protocol.PresenceResponse{}, false, err
		}
		// The write failed on a dying socket: ask again on the next one.
		select {
		case <-s.dead:
			return protocol.PresenceResponse{}, true, nil
		case <-ctx.Done():
			return protocol.PresenceResponse{}, false, err
		case <-c.done:
			return protocol.PresenceResponse{}, false, err
		}
	}
	select {
	case r := <-ch:
		return r, false, nil
	case <-s.dead:
		return protocol.PresenceResponse{}, true, nil
	case <-ctx.Done():
		return protocol.PresenceResponse{}, false, fmt.Errorf("relay: presence query: %w", ctx.Err())
	case <-c.done:
		return protocol.PresenceResponse{}, false, c.stopErr()
	}
}

// removeQuery forgets one waiter; c.mu must be held.
func (c *Conn) removeQuery(amid protocol.AMID, ch chan protocol.PresenceResponse) {
	list := c.queries[amid]
	for i, w := range list {
		if w == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(c.queries, amid)
	} else {
		c.queries[amid] = list
	}
}

// SendICEOffer forwards a WebRTC offer to the agent to. The relay answers
// RECIPIENT_OFFLINE, as an ErrorEvent, when to is not connected.
func (c *Conn) SendICEOffer(ctx context.Context, to protocol.AMID, sdp string, candidates []protocol.ICECandidate) error {
	_, err := c.write(ctx, protocol.ICEOffer{To: to, SDP: sdp, Candidates: candidates})
	return err
}

// SendICEAnswer forwards a WebRTC answer to the agent to.
func (c *Conn) SendICEAnswer(ctx context.Context, to protocol.AMID, sdp string, candidates []protocol.ICECandidate) error {
	_, err := c.write(ctx, protocol.ICEAnswer{To: to, SDP: sdp, Candidates: candidates})
	return err
}

// SendP2PEstablished tells peer that this agent reached it directly.
func (c *Conn) SendP2PEstablished(ctx context.Context, peer protocol.AMID) error {
	_, err := c.write(ctx, protocol.P2PEstablished{Peer: peer})
	return err
}

// Ping sends a JSON ping and waits for the relay's pong, returning the
// round-trip time. It fails with ErrConnectionLost when the socket drops
// first.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	ms := c.nextStamp(&c.lastPing)
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.pings[ms] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pings, ms)
		c.mu.Unlock()
	}()
	start := time.Now()
	s, err := c.write(ctx, protocol.Ping{Timestamp: protocol.FormatSigningTimestamp(time.UnixMilli(ms))})
	if err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-s.dead:
		return 0, fmt.Errorf("relay: ping: %w", ErrConnectionLost)
	case <-ctx.Done():
		return 0, fmt.Errorf("relay: ping: %w", ctx.Err())
	case <-c.done:
		return 0, c.stopErr()
	}
}

// Receive returns the next event from the relay, waiting until one arrives
// or ctx ends. A stored message (MessageID set) is acknowledged to the
// relay as Receive returns it. After Close, Receive returns ErrClosed; after
// a permanent failure it returns the events still queued and then the
// failure.
func (c *Conn) Receive(ctx context.Context) (Incoming, error) {
	select {
	case <-c.done:
		if err := c.stopErr(); errors.Is(err, ErrClosed) {
			return nil, err
		}
	default:
	}
	select {
	case ev := <-c.incoming:
		c.took(ev)
		return ev, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		err := c.stopErr()
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		select {
		case ev := <-c.incoming:
			c.took(ev)
			return ev, nil
		default:
			return nil, err
		}
	}
}

// took acknowledges a stored message the application has taken.
func (c *Conn) took(ev Incoming) {
	m, ok := ev.(*Message)
	if !ok || m.MessageID == "" {
		return
	}
	c.seen.take(m.MessageID)
	c.mu.Lock()
	s := c.cur
	c.mu.Unlock()
	if s != nil {
		// If this write is lost, the relay pushes the message again on the
		// next connection and the dedup set acknowledges it then.
		c.ack(s, m.MessageID)
	}
}

func (c *Conn) ack(s *socket, id string) {
	data, err := protocol.MarshalFrame(protocol.Ack{MessageID: id})
	if err == nil {
		err = c.writeOn(context.Background(), s, data, "ack")
	}
	if err != nil {
		c.log.Debug("acknowledgement not sent; the relay will deliver the message again", "error", err)
	}
}

// Close sends disconnect, closes the socket and stops reconnecting. Calls
// waiting on the Conn return ErrClosed. Close always returns nil.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		stopped := c.err != nil
		if !stopped {
			c.err = ErrClosed
			c.state = StateClosed
			close(c.done)
		}
		s := c.cur
		c.mu.Unlock()
		if s != nil {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			if data, err := protocol.MarshalFrame(protocol.Disconnect{Reason: "client closing"}); err == nil {
				_ = s.ws.Write(ctx, websocket.MessageText, data)
			}
			cancel()
			_ = s.ws.Close(websocket.StatusNormalClosure, "")
		}
		c.cancel()
		c.wg.Wait()
		if !stopped {
			c.notify(StateChange{State: StateClosed})
		}
	})
	return nil
}

// stopErr returns why the Conn stopped.
func (c *Conn) stopErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// write marshals f and writes it on the current socket, waiting for one
// while the Conn reconnects.
func (c *Conn) write(ctx context.Context, f protocol.Frame) (*socket, error) {
	data, err := protocol.MarshalFrame(f)
	if err != nil {
		return nil, fmt.Errorf("relay: %s: %w", f.FrameType(), err)
	}
	s, err := c.socket(ctx)
	if err != nil {
		return nil, err
	}
	return s, c.writeOn(ctx, s, data, f.FrameType())
}

// socket returns the current socket, waiting while there is none.
func (c *Conn) socket(ctx context.Context) (*socket, error) {
	for {
		c.mu.Lock()
		s, up, err := c.cur, c.up, c.err
		c.mu.Unlock()
		switch {
		case err != nil:
			return nil, err
		case s != nil:
			return s, nil
		}
		select {
		case <-up:
		case <-c.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (reconnecting): %w", ErrNotConnected, ctx.Err())
		}
	}
}

// writeOn writes one text frame on s, bounded by ctx and the write
// timeout. The WebSocket library closes a socket whose write is cut short,
// and the reader then starts a reconnect.
func (c *Conn) writeOn(ctx context.Context, s *socket, data []byte, what string) error {
	wctx, cancel := context.WithTimeout(ctx, c.cfg.writeTimeout)
	err := s.ws.Write(wctx, websocket.MessageText, data)
	cancel()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("relay: write %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("relay: write %s: %w: %w", what, ErrConnectionLost, err)
}

// nextStamp returns the clock's time in milliseconds, moved forward so that
// it is strictly later than *last, and stores it in *last.
func (c *Conn) nextStamp(last *int64) int64 {
	c.stampMu.Lock()
	defer c.stampMu.Unlock()
	ms := c.cfg.now().UnixMilli()
	if ms <= *last {
		ms = *last + 1
	}
	*last = ms
	return ms
}

func (c *Conn) notify(sc StateChange) {
	if c.cfg.stateFunc != nil {
		c.cfg.stateFunc(sc)
	}
}

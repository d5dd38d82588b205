package relay

import (
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults of the options below.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultBackoffBase      = 250 * time.Millisecond
	DefaultBackoffMax       = 30 * time.Second
	DefaultReceiveBuffer    = 256
	DefaultDedupWindow      = 4096
)

// An Option configures Dial.
type Option func(*config)

type config struct {
	p2pCapable       bool
	handshakeTimeout time.Duration
	writeTimeout     time.Duration
	backoffBase      time.Duration
	backoffMax       time.Duration
	reconnect        bool
	stateFunc        func(StateChange)
	now              func() time.Time
	logger           hclog.Logger
	receiveBuffer    int
	dedupWindow      int
	httpClient       *http.Client
}

func defaultConfig() config {
	return config{
		handshakeTimeout: DefaultHandshakeTimeout,
		writeTimeout:     DefaultWriteTimeout,
		backoffBase:      DefaultBackoffBase,
		backoffMax:       DefaultBackoffMax,
		reconnect:        true,
		now:              time.Now,
		logger:           hclog.NewNullLogger(),
		receiveBuffer:    DefaultReceiveBuffer,
		dedupWindow:      DefaultDedupWindow,
	}
}

// WithP2PCapable sets p2p_capable in CONNECT (default false).
func WithP2PCapable(capable bool) Option {
	return func(c *config) { c.p2pCapable = capable }
}

// WithHandshakeTimeout bounds each connection attempt, from dialling to the
// relay's connected frame (default DefaultHandshakeTimeout). Values ≤ 0
// keep the default.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.handshakeTimeout = d
		}
	}
}

// WithWriteTimeout bounds the writing of one frame, whatever the caller's
// context (default DefaultWriteTimeout). A write that times out drops the
// socket, and the Conn reconnects. Values ≤ 0 keep the default.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.writeTimeout = d
		}
	}
}

// WithBackoff sets the reconnect backoff: before attempt n of an outage the
// Conn waits a random duration in [0, min(max, base·2^(n−1))) ("full
// jitter"), and at least the RetryAfter of a temporary refusal. Defaults:
// DefaultBackoffBase and DefaultBackoffMax. Values ≤ 0 keep the default;
// max is raised to base when smaller.
func WithBackoff(base, max time.Duration) Option {
	return func(c *config) {
		if base > 0 {
			c.backoffBase = base
		}
		if max > 0 {
			c.backoffMax = max
		}
		if c.backoffMax < c.backoffBase {
			c.backoffMax = c.backoffBase
		}
	}
}

// WithReconnect turns automatic reconnection on (the default) or off. A
// Conn without it fails with ErrConnectionLost when its socket drops.
func WithReconnect(enabled bool) Option {
	return func(c *config) { c.reconnect = enabled }
}

// WithStateFunc registers f to hear every state change: StateConnected for
// each connection, the first one made by Dial included; StateReconnecting
// before each reconnect attempt; StateFailed or StateClosed once at the
// end. f is called from the Conn's own goroutine, in order, and must return
// quickly; it must not call Close.
func WithStateFunc(f func(StateChange)) Option {
	return func(c *config) { c.stateFunc = f }
}

// WithClock sets the clock whose time CONNECT signs (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithLogger sets the logger (default: none). The Conn logs connection
// events at debug and info level; it never logs keys or payloads.
func WithLogger(l hclog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithReceiveBuffer sets how many events the Conn queues for Receive
// before it stops reading the socket (default DefaultReceiveBuffer). A Conn
// that stops reading also stops answering the relay's WebSocket pings, so
// an application that never calls Receive is eventually dropped by the
// relay. Values ≤ 0 keep the default.
func WithReceiveBuffer(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.receiveBuffer = n
		}
	}
}

// WithDedupWindow sets how many stored-message ids the Conn remembers to
// drop repeated deliveries (default DefaultDedupWindow). It is raised to
// twice the receive buffer when smaller. Values ≤ 0 keep the default.
func WithDedupWindow(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.dedupWindow = n
		}
	}
}

// WithHTTPClient sets the HTTP client used for the WebSocket handshake, for
// instance to configure TLS (default http.DefaultClient).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.httpClient = hc }
}

package relayserver

import (
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Defaults applied by New to zero fields of Config and Limits.
const (
	DefaultAuthTimeout                    = 10 * time.Second
	DefaultPingInterval                   = 25 * time.Second
	DefaultPingTimeout                    = 10 * time.Second
	DefaultQueueTTL                       = 72 * time.Hour
	DefaultMaxQueuedPerRecipient          = 100
	DefaultMaxQueuedPerSenderPerRecipient = 50
	DefaultOutboundQueue                  = 64
	DefaultPurgeInterval                  = 5 * time.Minute
	DefaultPresenceWindow                 = 24 * time.Hour

	DefaultSendsPerMinute    = 100
	DefaultKnocksPerMinute   = 30
	DefaultICEPerMinute      = 60
	DefaultPresencePerMinute = 60
	DefaultControlPerMinute  = 600
)

// Config configures a Server. Only Store is required; every other zero
// field takes the default named beside it.
type Config struct {
	// Store keeps messages for offline recipients. It is required, and
	// the caller closes it after Server.Close.
	Store *Store
	// Logger receives the server's logs; nil discards them. Payloads,
	// signatures and keys are never logged.
	Logger hclog.Logger
	// Now is the clock for timestamps, freshness checks, rate limits,
	// presence and message expiry; nil means time.Now. Keepalive timers
	// always run on the real clock.
	Now func() time.Time

	// AuthTimeout bounds the wait for the CONNECT frame (10 s).
	AuthTimeout time.Duration
	// PingInterval is the time between WebSocket pings (25 s).
	PingInterval time.Duration
	// PingTimeout is how long a ping may wait for its pong before the
	// connection is unregistered and closed (10 s).
	PingTimeout time.Duration

	// QueueTTL is how long a stored message waits for its recipient (72 h).
	QueueTTL time.Duration
	// MaxQueuedPerRecipient bounds the stored messages of one recipient
	// (100). A full queue refuses new messages; it never evicts.
	MaxQueuedPerRecipient int
	// MaxQueuedPerSenderPerRecipient bounds what one sender may store for
	// one recipient (50), so that no sender can fill another's queue alone.
	MaxQueuedPerSenderPerRecipient int
	// OutboundQueue is the number of frames waiting for one connection's
	// writer (64). Messages for a connection whose queue is full go to the
	// store instead.
	OutboundQueue int
	// PurgeInterval is the time between sweeps that delete expired
	// messages and forget idle rate-limit, replay and presence state (5 min).
	PurgeInterval time.Duration
	// PresenceWindow is how long a message between two agents lets each
	// see the other's presence (24 h).
	PresenceWindow time.Duration

	// Limits are the per-agent rate limits.
	Limits Limits
	// MaxMessageSize bounds encrypted_payload in bytes
	// (protocol.MaxMessageSize, 65 536).
	MaxMessageSize int
}

// Limits are per-agent frame budgets per minute, counted per AMID in fixed
// one-minute windows that survive reconnects. Zero means the default; a
// negative value removes the limit.
type Limits struct {
	// SendsPerMinute counts send frames other than knocks (100).
	SendsPerMinute int
	// KnocksPerMinute counts send frames with message_type knock (30).
	KnocksPerMinute int
	// ICEPerMinute counts ice_offer, ice_answer and p2_p_established (60).
	ICEPerMinute int
	// PresencePerMinute counts presence and presence_query (60).
	PresencePerMinute int
	// ControlPerMinute counts every other frame: ping,
	// get_pending_messages, ack, nack and frames the relay refuses (600).
	ControlPerMinute int
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Store == nil {
		return c, errors.New("relayserver: Config.Store is required")
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	dur := func(p *time.Duration, def time.Duration) {
		if *p <= 0 {
			*p = def
		}
	}
	num := func(p *int, def int) {
		if *p <= 0 {
			*p = def
		}
	}
	dur(&c.AuthTimeout, DefaultAuthTimeout)
	dur(&c.PingInterval, DefaultPingInterval)
	dur(&c.PingTimeout, DefaultPingTimeout)
	dur(&c.QueueTTL, DefaultQueueTTL)
	dur(&c.PurgeInterval, DefaultPurgeInterval)
	dur(&c.PresenceWindow, DefaultPresenceWindow)
	num(&c.MaxQueuedPerRecipient, DefaultMaxQueuedPerRecipient)
	num(&c.MaxQueuedPerSenderPerRecipient, DefaultMaxQueuedPerSenderPerRecipient)
	num(&c.OutboundQueue, DefaultOutboundQueue)
	num(&c.MaxMessageSize, protocol.MaxMessageSize)
	limit := func(p *int, def int) {
		if *p == 0 {
			*p = def
		}
	}
	limit(&c.Limits.SendsPerMinute, DefaultSendsPerMinute)
	limit(&c.Limits.KnocksPerMinute, DefaultKnocksPerMinute)
	limit(&c.Limits.ICEPerMinute, DefaultICEPerMinute)
	limit(&c.Limits.PresencePerMinute, DefaultPresencePerMinute)
	limit(&c.Limits.ControlPerMinute, DefaultControlPerMinute)
	return c, nil
}

// readLimit is the largest WebSocket message the server reads: a send frame
// with a payload of maxMessageSize bytes plus room for its other members,
// so that an oversized payload gets MESSAGE_TOO_LARGE rather than a closed
// socket. Anything larger closes the connection with status 1009.
func readLimit(maxMessageSize int) int64 {
	return int64(maxMessageSize) + 16<<10
}

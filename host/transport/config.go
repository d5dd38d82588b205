package transport

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// DefaultSTUN are the STUN servers used when Config names none.
var DefaultSTUN = []string{"stun:stun.l.google.com:19302", "stun:stun1.l.google.com:19302"}

// Environment variables that name a TURN server (PROTOCOL.md §5.9).
const (
	EnvTURNURL        = "TURN_SERVER_URL"
	EnvTURNUsername   = "TURN_USERNAME"
	EnvTURNCredential = "TURN_CREDENTIAL"
)

// Defaults of Config.
const (
	DefaultDirectTimeout = 5 * time.Second
	DefaultTURNTimeout   = 5 * time.Second
	DefaultPingInterval  = time.Second
	DefaultRefreshBefore = time.Minute
	DefaultTURNTTL       = time.Hour

	DefaultICEDisconnectedTimeout = 3 * time.Second
	DefaultICEFailedTimeout       = 6 * time.Second
	DefaultICEKeepaliveInterval   = time.Second

	DefaultMaxUnackedFrames = 8192
	DefaultMaxUnackedBytes  = 8 << 20
	DefaultMaxHeldFrames    = 8192
	DefaultMaxHeldBytes     = 8 << 20
)

// TURNServer is one TURN server. It authenticates either with a fixed
// Username and Credential, or, when Secret is set, with time-limited
// credentials of the TURN REST scheme: the user name is
// "<expiry unix seconds>:<Name>" and the credential is
// base64(HMAC-SHA1(Secret, user name)). Time-limited credentials are made
// afresh before they expire and the direct path restarts ICE with them.
type TURNServer struct {
	// URL is the server, as "turn:host:port" or "turns:host:port"
	// (optionally with "?transport=udp|tcp").
	URL string
	// Username and Credential are fixed credentials.
	Username   string
	Credential string
	// Secret is the REST scheme's shared secret; it replaces Username and
	// Credential when set.
	Secret string
	// Name is the REST scheme's user part ("agentmesh" when empty).
	Name string
	// TTL is how long REST credentials last (DefaultTURNTTL when zero).
	TTL time.Duration
}

// Config shapes the direct path of a Hybrid. The zero value disables it:
// every frame goes through the relay.
type Config struct {
	// P2P enables the direct path: Upgrade and answering peers' offers.
	// The relay connection should be dialled with relay.WithP2PCapable(true)
	// to match.
	P2P bool
	// STUN lists STUN server URLs; nil means DefaultSTUN. They replace the
	// defaults entirely. NoSTUN uses none at all.
	STUN   []string
	NoSTUN bool
	// TURN lists TURN servers, tried in this order after the direct
	// attempt. Nil means the one named by the environment (TURNFromEnv),
	// if any.
	TURN []TURNServer
	// RelayOnly skips the direct attempt: only TURN relay candidates are
	// used (ICE transport policy "relay").
	RelayOnly bool
	// DirectTimeout bounds the direct attempt (DefaultDirectTimeout).
	DirectTimeout time.Duration
	// TURNTimeout bounds each TURN attempt (DefaultTURNTimeout).
	TURNTimeout time.Duration
	// PingInterval spaces the pings that measure round trip and loss on a
	// data channel (DefaultPingInterval).
	PingInterval time.Duration
	// RefreshBefore is how long before time-limited TURN credentials
	// expire they are replaced (DefaultRefreshBefore, at most half their
	// lifetime).
	RefreshBefore time.Duration
	// ICEDisconnectedTimeout is how long a direct connection may go
	// without traffic before ICE counts it as disconnected
	// (DefaultICEDisconnectedTimeout); ICEFailedTimeout is how long after
	// that it counts as failed and frames fall back to the relay
	// (DefaultICEFailedTimeout); ICEKeepaliveInterval spaces the ICE
	// keepalives that keep an idle connection alive
	// (DefaultICEKeepaliveInterval).
	ICEDisconnectedTimeout time.Duration
	ICEFailedTimeout       time.Duration
	ICEKeepaliveInterval   time.Duration
	// MaxUnackedFrames and MaxUnackedBytes bound the frames to one peer
	// that went over a data channel and that the peer has not yet
	// acknowledged (kept to be sent again on the relay should the channel
	// close): once either bound is reached Send waits for acknowledgements,
	// or for the channel to close and the frames to move to the relay, or
	// for its context to end (DefaultMaxUnackedFrames,
	// DefaultMaxUnackedBytes). A single frame larger than MaxUnackedBytes
	// is still sent, alone.
	MaxUnackedFrames int
	MaxUnackedBytes  int
	// MaxHeldFrames and MaxHeldBytes bound the frames from one peer held
	// back until the frames before them arrive (frames that came over a
	// data channel before the relay's switch marker, or before the relay
	// frames they follow): once either bound is reached the data channel
	// is not read further until the gap is filled or the channel closes
	// (DefaultMaxHeldFrames, DefaultMaxHeldBytes).
	MaxHeldFrames int
	MaxHeldBytes  int
	// IncludeLoopback gathers loopback host candidates too (for tests and
	// hosts on one machine).
	IncludeLoopback bool
	// Now is the clock for TURN credentials; nil means time.Now.
	Now func() time.Time
}

// TURNFromEnv returns the TURN server named by TURN_SERVER_URL,
// TURN_USERNAME and TURN_CREDENTIAL as read by getenv (os.Getenv when
// nil), or nil when the URL is unset.
func TURNFromEnv(getenv func(string) string) []TURNServer {
	if getenv == nil {
		getenv = os.Getenv
	}
	u := strings.TrimSpace(getenv(EnvTURNURL))
	if u == "" {
		return nil
	}
	return []TURNServer{{URL: u, Username: getenv(EnvTURNUsername), Credential: getenv(EnvTURNCredential)}}
}

// RESTCredentials returns TURN REST credentials for name valid until
// expires: "<expires unix>:<name>" and base64(HMAC-SHA1(secret, username)).
func RESTCredentials(secret, name string, expires time.Time) (username, credential string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + name
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// orDefault sets *v to def when it is zero or less.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	orDefault(&c.DirectTimeout, DefaultDirectTimeout)
	orDefault(&c.TURNTimeout, DefaultTURNTimeout)
	orDefault(&c.PingInterval, DefaultPingInterval)
	orDefault(&c.RefreshBefore, DefaultRefreshBefore)
	orDefault(&c.ICEDisconnectedTimeout, DefaultICEDisconnectedTimeout)
	orDefault(&c.ICEFailedTimeout, DefaultICEFailedTimeout)
	orDefault(&c.ICEKeepaliveInterval, DefaultICEKeepaliveInterval)
	orDefault(&c.MaxUnackedFrames, DefaultMaxUnackedFrames)
	orDefault(&c.MaxUnackedBytes, DefaultMaxUnackedBytes)
	orDefault(&c.MaxHeldFrames, DefaultMaxHeldFrames)
	orDefault(&c.MaxHeldBytes, DefaultMaxHeldBytes)
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.NoSTUN:
		c.STUN = nil
	case c.STUN == nil:
		c.STUN = DefaultSTUN
	}
	for i, s := range c.STUN {
		if !strings.HasPrefix(s, "stun:") && !strings.HasPrefix(s, "stuns:") {
			return c, fmt.Errorf("transport: config: stun[%d] %q is not a stun: or stuns: URL", i, s)
		}
	}
	if c.TURN == nil {
		c.TURN = TURNFromEnv(nil)
	}
	for i, t := range c.TURN {
		if !strings.HasPrefix(t.URL, "turn:") && !strings.HasPrefix(t.URL, "turns:") {
			return c, fmt.Errorf("transport: config: turn[%d] url %q is not a turn: or turns: URL", i, t.URL)
		}
		if t.Secret == "" && (t.Username == "" || t.Credential == "") {
			return c, fmt.Errorf("transport: config: turn[%d] %s: %w", i, t.URL, errNoTURNCredentials)
		}
	}
	if c.RelayOnly && len(c.TURN) == 0 {
		return c, errors.New("transport: config: relay-only ICE needs a TURN server")
	}
	return c, nil
}

var errNoTURNCredentials = errors.New("needs a username and credential, or a REST secret")

// iceServers returns the pion ICE servers for STUN plus the given TURN
// servers, with fresh credentials, and when the earliest time-limited
// credential expires (zero when none does).
func (c Config) iceServers(turn []TURNServer) ([]webrtc.ICEServer, time.Time) {
	var out []webrtc.ICEServer
	if len(c.STUN) > 0 {
		out = append(out, webrtc.ICEServer{URLs: append([]string(nil), c.STUN...)})
	}
	var expiry time.Time
	for _, t := range turn {
		user, cred := t.Username, t.Credential
		if t.Secret != "" {
			ttl := t.TTL
			if ttl <= 0 {
				ttl = DefaultTURNTTL
			}
			name := t.Name
			if name == "" {
				name = "agentmesh"
			}
			exp := c.Now().Add(ttl)
			user, cred = RESTCredentials(t.Secret, name, exp)
			// The user name keeps whole seconds only.
			exp = time.Unix(exp.Unix(), 0)
			if expiry.IsZero() || exp.Before(expiry) {
				expiry = exp
			}
		}
		out = append(out, webrtc.ICEServer{URLs: []string{t.URL}, Username: user, Credential: cred, CredentialType: webrtc.ICECredentialTypePassword})
	}
	return out, expiry
}

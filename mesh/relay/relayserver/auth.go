package relayserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// authenticate reads and checks the CONNECT frame (PROTOCOL.md §5.2). On
// failure it sends the error frame, closes the connection and returns false.
func (c *conn) authenticate() bool {
	timedOut := make(chan struct{})
	timer := time.AfterFunc(c.s.cfg.AuthTimeout, func() {
		defer close(timedOut)
		c.failAuth(protocol.ErrorFrame{Code: protocol.RelayInvalidMessage,
			Message: fmt.Sprintf("Expected Connect message within %s", c.s.cfg.AuthTimeout)})
	})
	typ, data, err := c.ws.Read(context.Background())
	if !timer.Stop() {
		<-timedOut
		c.log.Debug("authentication timed out")
		return false
	}
	if err != nil {
		c.log.Debug("connection closed before authentication", "error", err)
		c.closeNow()
		return false
	}
	if typ != websocket.MessageText {
		c.failAuth(protocol.ErrorFrame{Code: protocol.RelayInvalidMessage, Message: "Expected Connect message, got a binary frame"})
		return false
	}
	now := c.s.now()
	cf, fail := c.s.checkConnect(data, now)
	if fail != nil {
		c.failAuth(*fail)
		return false
	}
	c.amid = cf.AMID
	c.sessionID = newUUID()
	c.status, c.lastActivity = protocol.PresenceOnline, now
	c.log = c.log.With("amid", cf.AMID.Short())
	return true
}

// failAuth sends f, then closes the connection with a policy-violation
// status.
func (c *conn) failAuth(f protocol.ErrorFrame) {
	c.log.Info("authentication refused", "code", f.Code, "reason", f.Message)
	if b, err := protocol.MarshalFrame(f); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.ws.Write(ctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			c.log.Debug("writing the authentication error failed", "error", err)
		}
	}
	c.closeWith(websocket.StatusPolicyViolation, "authentication failed")
}

// connectHead is the part of a CONNECT read leniently, to report the
// protocol before the members that failed to decode.
type connectHead struct {
	Type     json.RawMessage `json:"type"`
	Protocol json.RawMessage `json:"protocol"`
}

// checkConnect decodes and verifies a CONNECT frame, in the order of
// PROTOCOL.md §5.2: protocol, timestamp window, public key, AMID,
// signature, and then whether the signature was used before (replay). It
// returns the error frame to send on failure.
func (s *Server) checkConnect(data []byte, now time.Time) (protocol.Connect, *protocol.ErrorFrame) {
	fail := func(code protocol.RelayErrorCode, format string, args ...any) (protocol.Connect, *protocol.ErrorFrame) {
		return protocol.Connect{}, &protocol.ErrorFrame{Code: code, Message: fmt.Sprintf(format, args...)}
	}
	f, err := protocol.ParseClientFrame(data)
	if err != nil {
		var head connectHead
		var typ, proto string
		if json.Unmarshal(data, &head) != nil || json.Unmarshal(head.Type, &typ) != nil || typ != "connect" {
			return fail(protocol.RelayInvalidMessage, "Expected Connect message")
		}
		if json.Unmarshal(head.Protocol, &proto) == nil {
			if fe := checkProtocol(proto); fe != nil {
				return protocol.Connect{}, fe
			}
		}
		var de *protocol.DecodeError
		if errors.As(err, &de) {
			switch de.Field {
			case "timestamp":
				return fail(protocol.RelayTimestampExpired, "Invalid timestamp: %v", err)
			case "amid":
				return fail(protocol.RelayAMIDMismatch, "Invalid AMID: %v", err)
			}
		}
		return fail(protocol.RelayInvalidMessage, "Expected Connect message: %v", err)
	}
	cf, ok := f.(protocol.Connect)
	if !ok {
		return fail(protocol.RelayInvalidMessage, "Expected Connect message, got %s", f.FrameType())
	}
	if fe := checkProtocol(cf.Protocol); fe != nil {
		return protocol.Connect{}, fe
	}
	ts, err := protocol.ParseTimestamp(cf.Timestamp)
	if err == nil {
		err = protocol.CheckFreshness(ts, now)
	}
	if err != nil {
		return fail(protocol.RelayTimestampExpired, "Timestamp rejected: %v", err)
	}
	pub, err := protocol.ParseSigningPublicKey(cf.PublicKey)
	if err != nil {
		return fail(protocol.RelayInvalidSignature, "Signature verification failed: %v", err)
	}
	if !cf.AMID.Matches(pub) {
		return fail(protocol.RelayAMIDMismatch, "AMID %s is not derived from the public key", cf.AMID)
	}
	if err := protocol.VerifyTimestamp(pub, cf.Timestamp, cf.Signature, now); err != nil {
		return fail(protocol.RelayInvalidSignature, "Signature verification failed: %v", err)
	}
	// The timestamp stays acceptable until it is MaxTimestampAge old; so
	// long the signature must not be accepted again.
	switch s.replay.remember(cf.AMID, cf.Signature, now, ts.Add(protocol.MaxTimestampAge+time.Second)) {
	case replayed:
		return fail(protocol.RelayInvalidSignature, "Signature verification failed: this CONNECT signature was already used; sign a new timestamp")
	case replayFull:
		return fail(protocol.RelayRateLimited, "Too many connections; try again later")
	}
	return cf, nil
}

func checkProtocol(p string) *protocol.ErrorFrame {
	switch p {
	case protocol.ProtocolVersion:
		return nil
	case protocol.LegacyProtocolVersion:
		return &protocol.ErrorFrame{Code: protocol.RelayProtocolUpgradeRequired,
			Message: fmt.Sprintf("%s is no longer supported: upgrade the client to %s", p, protocol.ProtocolVersion)}
	}
	if len(p) > 40 {
		p = p[:40] + "…"
	}
	return &protocol.ErrorFrame{Code: protocol.RelayProtocolMismatch,
		Message: fmt.Sprintf("Expected %s, got %q", protocol.ProtocolVersion, p)}
}

// maxReplayEntries bounds the replay cache.
const maxReplayEntries = 1 << 20

// replayCache remembers the CONNECT signatures accepted while their
// timestamps are fresh, so that a signature seen once (by anyone between
// the agent and the relay) cannot open a second connection (PROTOCOL.md
// §13 W-1). It is kept in memory: after a restart, signatures of the last
// few minutes could be replayed once more.
type replayCache struct {
	mu   sync.Mutex
	seen map[replayKey]time.Time // until when the signature stays refused
}

type replayKey struct {
	amid protocol.AMID
	sig  string
}

type replayResult int

const (
	replayNew replayResult = iota
	replayed
	replayFull
)

func newReplayCache() *replayCache {
	return &replayCache{seen: make(map[replayKey]time.Time)}
}

// remember records the signature until the given time, reporting whether
// it was new. Signatures are compared as sent: the protocol's base64 is
// canonical and Ed25519 signatures as Go verifies them are not malleable.
func (r *replayCache) remember(amid protocol.AMID, sig string, now, until time.Time) replayResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := replayKey{amid, sig}
	if exp, ok := r.seen[k]; ok && now.Before(exp) {
		return replayed
	}
	if len(r.seen) >= maxReplayEntries {
		r.sweepLocked(now)
		if len(r.seen) >= maxReplayEntries {
			return replayFull
		}
	}
	r.seen[k] = until
	return replayNew
}

func (r *replayCache) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweepLocked(now)
}

func (r *replayCache) sweepLocked(now time.Time) {
	for k, exp := range r.seen {
		if !now.Before(exp) {
			delete(r.seen, k)
		}
	}
}

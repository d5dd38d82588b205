package relay

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// readLimit is the largest frame the Conn reads: protocol.MaxFrameSize,
// well above a 64 KiB payload with its JSON escaping, so that no frame the
// relay may send closes the socket.
const readLimit = protocol.MaxFrameSize

// connect dials the relay and authenticates (PROTOCOL.md §5.2), bounded by
// ctx, the handshake timeout and the Conn's life.
func (c *Conn) connect(ctx context.Context) (*socket, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.handshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	ws, _, err := websocket.Dial(ctx, c.url, &websocket.DialOptions{HTTPClient: c.cfg.httpClient})
	if err != nil {
		return nil, fmt.Errorf("relay: dial %s: %w", c.url, c.timeoutErr(ctx, err))
	}
	ws.SetReadLimit(readLimit)
	s := &socket{ws: ws, dead: make(chan struct{})}
	if err := c.handshake(ctx, s); err != nil {
		ws.CloseNow()
		return nil, err
	}
	s.since = time.Now()
	return s, nil
}

// handshake sends CONNECT and waits for connected or an error frame.
func (c *Conn) handshake(ctx context.Context, s *socket) error {
	ts := protocol.FormatSigningTimestamp(time.UnixMilli(c.nextStamp(&c.lastConnect)))
	sig, err := c.key.Sign(nil, []byte(ts), crypto.Hash(0))
	if err != nil {
		return fmt.Errorf("relay: signing connect: %w", err)
	}
	data, err := protocol.MarshalFrame(protocol.Connect{
		Protocol:   protocol.ProtocolVersion,
		AMID:       c.amid,
		PublicKey:  c.pubKey,
		Signature:  protocol.B64.EncodeToString(sig),
		Timestamp:  ts,
		P2PCapable: c.cfg.p2pCapable,
	})
	if err != nil {
		return fmt.Errorf("relay: connect frame: %w", err)
	}
	if err := s.ws.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("relay: send connect: %w", c.timeoutErr(ctx, err))
	}
	for {
		typ, data, err := s.ws.Read(ctx)
		if err != nil {
			return fmt.Errorf("relay: waiting for connected: %w", c.timeoutErr(ctx, err))
		}
		if typ != websocket.MessageText {
			continue
		}
		f, err := protocol.ParseServerFrame(data)
		if err != nil {
			c.log.Debug("ignoring unreadable frame during handshake", "error", err)
			continue
		}
		switch f := f.(type) {
		case protocol.Connected:
			s.sessionID, s.pending = f.SessionID, f.PendingMessages
			return nil
		case protocol.ErrorFrame:
			return errorFromFrame(f)
		default:
			c.log.Debug("ignoring frame before connected", "type", f.FrameType())
		}
	}
}

// timeoutErr names the deadline when it is what cut err short.
func (c *Conn) timeoutErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer before the deadline (handshake timeout %s): %w", c.cfg.handshakeTimeout, context.DeadlineExceeded)
	}
	return err
}

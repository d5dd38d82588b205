package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
)

// Path names how frames to a peer travel.
type Path string

// Paths of a peer's frames.
const (
	PathRelay  Path = "relay"
	PathDirect Path = "direct"
)

// inboundBuffer is how many received frames wait for Recv before the
// paths stop reading.
const inboundBuffer = 1024

// Hybrid is a Transport that reaches each peer through the relay and, once
// Upgrade has opened a WebRTC data channel to it, directly. Frames keep
// their order and are delivered once across every switch of path, so the
// session layer above never sees which path carried them. It is safe for
// concurrent use.
type Hybrid struct {
	conn *relay.Conn
	cfg  Config
	log  hclog.Logger

	in       chan Inbound
	done     chan struct{}
	stopOnce sync.Once
	closed   sync.Once
	wg       sync.WaitGroup

	mu    sync.Mutex
	peers map[protocol.AMID]*peer

	// beforeControl, when set, runs before a relay control frame is
	// handled (tests stall markers with it).
	beforeControl atomic.Pointer[func(controlKind)]
}

var _ Transport = (*Hybrid)(nil)

// NewHybrid returns a Transport over conn that upgrades peers to direct
// data channels as cfg allows, and starts reading conn. The caller keeps
// ownership of conn: Close leaves it open. Nothing else may call
// conn.Receive.
func NewHybrid(conn *relay.Conn, cfg Config, log hclog.Logger) (*Hybrid, error) {
	if conn == nil {
		return nil, errors.New("transport: hybrid: no relay connection")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	h := &Hybrid{
		conn:  conn,
		cfg:   cfg,
		log:   log.Named("transport"),
		in:    make(chan Inbound, inboundBuffer),
		done:  make(chan struct{}),
		peers: make(map[protocol.AMID]*peer),
	}
	h.wg.Add(1)
	go h.readRelay()
	return h, nil
}

// Send implements Transport: it sends over the peer's data channel when
// one is up, over the relay otherwise.
func (h *Hybrid) Send(ctx context.Context, to protocol.AMID, typ protocol.MessageType, payload string) error {
	select {
	case <-h.done:
		return ErrClosed
	default:
	}
	return h.peer(to).send(ctx, typ, payload)
}

// Recv implements Transport.
func (h *Hybrid) Recv(ctx context.Context) (Inbound, error) {
	select {
	case in := <-h.in:
		return in, nil
	case <-h.done:
		return Inbound{}, ErrClosed
	case <-ctx.Done():
		return Inbound{}, ctx.Err()
	}
}

// Close closes every data channel and stops reading the relay
// connection, which stays open. Send and Recv then return ErrClosed.
func (h *Hybrid) Close() error {
	h.closed.Do(func() {
		h.stop()
		h.mu.Lock()
		peers := make([]*peer, 0, len(h.peers))
		for _, p := range h.peers {
			peers = append(peers, p)
		}
		h.mu.Unlock()
		for _, p := range peers {
			p.closeAttempts()
		}
		h.wg.Wait()
	})
	return nil
}

func (h *Hybrid) stop() { h.stopOnce.Do(func() { close(h.done) }) }

// isDone says whether h stopped.
func (h *Hybrid) isDone() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// Stats describes the path to one peer.
type Stats struct {
	// Path is how frames to the peer travel now.
	Path Path
	// LocalCandidate and RemoteCandidate are the types ("host", "srflx",
	// "prflx", "relay") of the selected ICE candidate pair; empty on the
	// relay path.
	LocalCandidate, RemoteCandidate string
	// Gathered counts this host's candidates of the live direct attempt
	// by type.
	Gathered map[string]int
	// RTT is the smoothed round trip of pings over the data channel; zero
	// before the first pong.
	RTT time.Duration
	// PingsSent, PongsReceived and PingsLost count pings over data
	// channels; a ping is lost when its pong has not come within four
	// ping intervals. Loss is PingsLost / PingsSent.
	PingsSent, PongsReceived, PingsLost uint64
	Loss                                float64
	// SentDirect and SentRelay count frames sent to the peer per path,
	// resends included; Resent counts frames sent again on the relay
	// because the data channel closed before acknowledging them.
	SentDirect, SentRelay, Resent uint64
	// Upgrades, Fallbacks and ICERestarts count data channels opened, data
	// channels left for the relay, and ICE restarts (TURN credential
	// refreshes): offered by this host, or answered by it with fresh
	// credentials of its own.
	Upgrades, Fallbacks, ICERestarts int
}

// Stats returns the state of the path to peer.
func (h *Hybrid) Stats(peer protocol.AMID) Stats {
	return h.peer(peer).stats()
}

// peer returns the state for amid, creating it.
func (h *Hybrid) peer(amid protocol.AMID) *peer {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.peers[amid]
	if p == nil {
		p = newPeer(h, amid)
		h.peers[amid] = p
	}
	return p
}

// deliver hands a frame to Recv, waiting while its buffer is full.
func (h *Hybrid) deliver(in Inbound) {
	select {
	case h.in <- in:
	case <-h.done:
	}
}

// readRelay reads the relay connection until it or h closes.
func (h *Hybrid) readRelay() {
	defer h.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-h.done
		cancel()
	}()
	defer cancel()
	for {
		ev, err := h.conn.Receive(ctx)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Debug("relay connection stopped", "error", err)
				h.stop()
			}
			return
		}
		switch ev := ev.(type) {
		case *relay.Message:
			p := h.peer(ev.From)
			if k, seq, ok := parseControl(ev.Type, ev.Payload); ok {
				if f := h.beforeControl.Load(); f != nil {
					(*f)(k)
				}
				if k == controlRestart {
					go p.onRestartRequest()
				} else {
					p.onControl(k, seq)
				}
				continue
			}
			p.onRelayFrame(Inbound{From: ev.From, Type: ev.Type, Payload: ev.Payload})
		case *relay.ICEOffer:
			p := h.peer(ev.From)
			go p.onOffer(ev.SDP)
		case *relay.ICEAnswer:
			h.peer(ev.From).onAnswer(ev.SDP)
		case *relay.P2PEstablished:
			h.log.Debug("peer reached this host directly", "peer", ev.Peer.Short())
		case *relay.ErrorEvent:
			h.log.Warn("relay reported an error", "code", ev.Err.Code, "message", ev.Err.Message)
		}
	}
}

// sendControl sends a relay control frame to peer.
func (h *Hybrid) sendControl(ctx context.Context, to protocol.AMID, k controlKind, seq uint64) error {
	if err := h.conn.Send(ctx, to, controlPayload(k, seq), protocol.MessageTypeStatus, nil); err != nil {
		return fmt.Errorf("transport: %s marker to %s: %w", k, to.Short(), err)
	}
	return nil
}

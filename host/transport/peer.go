package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pion/webrtc/v4"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/relay"
)

// Flow control on a data channel: Send waits while more than highWater
// bytes are queued, until the queue falls below lowWater.
const (
	highWater = 1 << 20
	lowWater  = 256 << 10
)

// fallbackTimeout bounds the relay writes of a fallback that no Send is
// waiting for.
const fallbackTimeout = 10 * time.Second

var errChannelDown = errors.New("data channel closed")

// sentFrame is a frame kept until the peer acknowledges it.
type sentFrame struct {
	seq     uint64
	typ     protocol.MessageType
	payload string
}

// peer is the state of the paths to one peer.
type peer struct {
	h    *Hybrid
	amid protocol.AMID
	log  hclog.Logger

	// Sending. txMu orders the frames to the peer and path switches.
	txMu       sync.Mutex
	next       uint64   // sequence number of the next frame
	ch         *channel // non-nil while frames go direct
	resumeDue  bool     // a resume marker must precede the next relay frame
	resumeFrom uint64
	resend     []sentFrame // frames to resend on the relay after the marker
	unackedMu  sync.Mutex
	unacked    []sentFrame // frames sent on ch and not yet acknowledged

	// Receiving.
	rxMu      sync.Mutex
	sequenced bool // a switch marker was seen: deliver in sequence order
	relaySeq  bool // relay frames are numbered from relayNext (after resume)
	expect    uint64
	relayNext uint64
	pending   map[uint64]Inbound

	// Signalling.
	attMu sync.Mutex
	att   *attempt

	stMu sync.Mutex
	st   Stats
}

func newPeer(h *Hybrid, amid protocol.AMID) *peer {
	return &peer{h: h, amid: amid, log: h.log.With("peer", amid.Short()), pending: make(map[uint64]Inbound)}
}

func (p *peer) count(f func(*Stats)) {
	p.stMu.Lock()
	f(&p.st)
	p.stMu.Unlock()
}

// send sends one frame on the peer's current path.
func (p *peer) send(ctx context.Context, typ protocol.MessageType, payload string) error {
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if ch := p.ch; ch != nil {
		p.unackedMu.Lock()
		p.unacked = append(p.unacked, sentFrame{p.next, typ, payload})
		p.unackedMu.Unlock()
		err := ch.sendData(ctx, p.next, typ, payload)
		if err == nil {
			p.next++
			p.count(func(s *Stats) { s.SentDirect++ })
			return nil
		}
		p.unackedMu.Lock()
		p.unacked = p.unacked[:len(p.unacked)-1]
		p.unackedMu.Unlock()
		if ctx.Err() != nil {
			return fmt.Errorf("transport: send to %s: %w", p.amid.Short(), ctx.Err())
		}
		p.leaveLocked(ch, err.Error())
	}
	if err := p.flushResumeLocked(ctx); err != nil {
		return err
	}
	if err := p.relaySend(ctx, sentFrame{p.next, typ, payload}); err != nil {
		return err
	}
	p.next++
	return nil
}

func (p *peer) relaySend(ctx context.Context, f sentFrame) error {
	err := p.h.conn.Send(ctx, p.amid, f.payload, f.typ, nil)
	if errors.Is(err, relay.ErrClosed) {
		return ErrClosed
	}
	if err == nil {
		p.count(func(s *Stats) { s.SentRelay++ })
	}
	return err
}

// leaveLocked moves the peer's frames from ch back to the relay: the
// frames ch has not acknowledged will be sent again there after a resume
// marker. txMu must be held.
func (p *peer) leaveLocked(ch *channel, reason string) {
	if p.ch != ch {
		return
	}
	p.ch = nil
	p.unackedMu.Lock()
	from := p.next
	if len(p.unacked) > 0 {
		from = p.unacked[0].seq
	}
	p.resend = append(p.resend, p.unacked...)
	p.unacked = nil
	p.unackedMu.Unlock()
	if !p.resumeDue {
		p.resumeFrom = from
	}
	p.resumeDue = true
	p.count(func(s *Stats) { s.Fallbacks++ })
	p.log.Info("direct path lost; frames go through the relay again", "reason", reason, "unacknowledged", len(p.resend))
	ch.close()
}

// flushResumeLocked sends the pending resume marker and the frames to
// resend. After a failure it keeps what is left for the next try. txMu
// must be held.
func (p *peer) flushResumeLocked(ctx context.Context) error {
	if !p.resumeDue {
		return nil
	}
	if err := p.h.sendControl(ctx, p.amid, controlResume, p.resumeFrom); err != nil {
		return err
	}
	for i, f := range p.resend {
		if err := p.relaySend(ctx, f); err != nil {
			p.resend = p.resend[i:]
			p.resumeFrom = f.seq
			return fmt.Errorf("transport: resend to %s: %w", p.amid.Short(), err)
		}
		p.count(func(s *Stats) { s.Resent++ })
	}
	p.resend = nil
	p.resumeDue = false
	return nil
}

// channelUp switches the peer's frames to ch: a switch marker goes over
// the relay last, then frames go direct.
func (p *peer) channelUp(ch *channel) {
	p.txMu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
	defer cancel()
	err := p.flushResumeLocked(ctx)
	if err == nil {
		err = p.h.sendControl(ctx, p.amid, controlSwitch, p.next)
	}
	if err != nil {
		p.txMu.Unlock()
		p.log.Warn("data channel open but frames stay on the relay", "error", err)
		return
	}
	if p.ch != nil && p.ch != ch {
		p.ch.close()
	}
	p.ch = ch
	p.txMu.Unlock()
	p.count(func(s *Stats) { s.Upgrades++ })
	p.log.Info("frames go over a direct data channel")
	ch.start()
	if err := p.h.conn.SendP2PEstablished(ctx, p.amid); err != nil {
		p.log.Debug("p2p notice not sent", "error", err)
	}
}

// channelDown falls back to the relay when ch closes.
func (p *peer) channelDown(ch *channel, reason string) {
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.ch != ch {
		ch.close()
		return
	}
	p.leaveLocked(ch, reason)
	ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
	defer cancel()
	if err := p.flushResumeLocked(ctx); err != nil {
		p.log.Warn("frames to resend wait for the next send", "error", err)
	}
}

// onAck forgets the frames the peer acknowledged.
func (p *peer) onAck(seq uint64) {
	p.unackedMu.Lock()
	i := 0
	for i < len(p.unacked) && p.unacked[i].seq <= seq {
		i++
	}
	p.unacked = p.unacked[i:]
	p.unackedMu.Unlock()
}

// onRelayFrame receives a session frame from the relay.
func (p *peer) onRelayFrame(in Inbound) {
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	switch {
	case !p.sequenced:
		p.h.deliver(in)
	case p.relaySeq:
		s := p.relayNext
		p.relayNext++
		p.acceptLocked(s, in)
	default:
		// The peer switched to a data channel but sends through the relay
		// without a resume marker: it started afresh.
		p.log.Warn("relay frame while the peer is on a data channel; starting its sequence afresh")
		p.sequenced = false
		clear(p.pending)
		p.h.deliver(in)
	}
}

// onControl handles a switch or resume marker.
func (p *peer) onControl(k controlKind, seq uint64) {
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	switch k {
	case controlSwitch:
		p.sequenced, p.relaySeq, p.expect = true, false, seq
	case controlResume:
		if !p.sequenced || seq > p.expect {
			p.expect = seq
		}
		p.sequenced, p.relaySeq, p.relayNext = true, true, seq
	}
	for s := range p.pending {
		if s < p.expect {
			delete(p.pending, s)
		}
	}
	p.drainLocked()
}

// onDCFrame receives a frame from a data channel; it returns the highest
// sequence number delivered in order, to acknowledge.
func (p *peer) onDCFrame(seq uint64, in Inbound) (acked uint64, ok bool) {
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	if !p.sequenced {
		p.pending[seq] = in
		return 0, false
	}
	p.acceptLocked(seq, in)
	return p.expect - 1, p.expect > 0
}

// acceptLocked delivers the frame numbered s in order, once.
func (p *peer) acceptLocked(s uint64, in Inbound) {
	switch {
	case s < p.expect:
		return
	case s > p.expect:
		p.pending[s] = in
		return
	}
	p.h.deliver(in)
	p.expect++
	p.drainLocked()
}

func (p *peer) drainLocked() {
	for {
		in, ok := p.pending[p.expect]
		if !ok {
			return
		}
		delete(p.pending, p.expect)
		p.h.deliver(in)
		p.expect++
	}
}

func (p *peer) stats() Stats {
	p.stMu.Lock()
	st := p.st
	p.stMu.Unlock()
	st.Path = PathRelay
	p.txMu.Lock()
	ch := p.ch
	p.txMu.Unlock()
	if ch != nil {
		st.Path = PathDirect
	}
	p.attMu.Lock()
	att := p.att
	p.attMu.Unlock()
	if att != nil {
		st.Gathered = att.gathered()
		if ch != nil && ch.att == att {
			st.LocalCandidate, st.RemoteCandidate = att.selectedPair()
		}
	}
	if st.PingsSent > 0 {
		st.Loss = float64(st.PingsLost) / float64(st.PingsSent)
	}
	return st
}

// channel is one open data channel to the peer.
type channel struct {
	p   *peer
	att *attempt
	dc  *webrtc.DataChannel

	down     chan struct{}
	downOnce sync.Once
	low      chan struct{}
	ackReady chan struct{}

	mu       sync.Mutex
	ackSeq   uint64
	pings    map[uint64]time.Time
	pingID   uint64
	startOne sync.Once
}

func newChannel(p *peer, att *attempt, dc *webrtc.DataChannel) *channel {
	ch := &channel{p: p, att: att, dc: dc, down: make(chan struct{}), low: make(chan struct{}, 1),
		ackReady: make(chan struct{}, 1), pings: make(map[uint64]time.Time)}
	dc.SetBufferedAmountLowThreshold(lowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case ch.low <- struct{}{}:
		default:
		}
	})
	dc.OnMessage(func(m webrtc.DataChannelMessage) { ch.onMessage(m.Data) })
	dc.OnClose(func() { go p.channelDown(ch, "data channel closed") })
	return ch
}

// start runs the acknowledgement and ping loops.
func (ch *channel) start() {
	ch.startOne.Do(func() {
		go ch.ackLoop()
		go ch.pingLoop()
	})
}

// close closes the data channel; the attempt's connection stays for ICE
// restarts only while a channel is live, so it closes too.
func (ch *channel) close() {
	ch.downOnce.Do(func() {
		close(ch.down)
		go func() {
			_ = ch.dc.Close()
			ch.att.close()
		}()
	})
}

func (ch *channel) sendData(ctx context.Context, seq uint64, typ protocol.MessageType, payload string) error {
	for ch.dc.BufferedAmount() > highWater {
		select {
		case <-ch.low:
		case <-ch.down:
			return errChannelDown
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case <-ch.down:
		return errChannelDown
	default:
	}
	return ch.dc.Send(encodeData(seq, typ, payload))
}

func (ch *channel) onMessage(b []byte) {
	kind, n, typ, payload, err := decodeDC(b)
	if err != nil {
		ch.p.log.Warn("dropped a data channel message", "error", err)
		return
	}
	switch kind {
	case dcData:
		if acked, ok := ch.p.onDCFrame(n, Inbound{From: ch.p.amid, Type: typ, Payload: payload}); ok {
			ch.mu.Lock()
			ch.ackSeq = acked
			ch.mu.Unlock()
			select {
			case ch.ackReady <- struct{}{}:
			default:
			}
		}
	case dcAck:
		ch.p.onAck(n)
	case dcPing:
		_ = ch.dc.Send(encodeNum(dcPong, n))
	case dcPong:
		ch.mu.Lock()
		sent, ok := ch.pings[n]
		delete(ch.pings, n)
		ch.mu.Unlock()
		if ok {
			rtt := time.Since(sent)
			ch.p.count(func(s *Stats) {
				s.PongsReceived++
				if s.RTT == 0 {
					s.RTT = rtt
				} else {
					s.RTT = (7*s.RTT + rtt) / 8
				}
			})
		}
	}
}

// ackLoop sends the latest acknowledgement whenever one is due; under
// load acknowledgements coalesce.
func (ch *channel) ackLoop() {
	for {
		select {
		case <-ch.down:
			return
		case <-ch.ackReady:
		}
		ch.mu.Lock()
		seq := ch.ackSeq
		ch.mu.Unlock()
		if err := ch.dc.Send(encodeNum(dcAck, seq)); err != nil {
			return
		}
	}
}

// pingLoop measures round trip and loss.
func (ch *channel) pingLoop() {
	interval := ch.p.h.cfg.PingInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ch.down:
			return
		case <-t.C:
		}
		now := time.Now()
		ch.mu.Lock()
		var lost uint64
		for id, sent := range ch.pings {
			if now.Sub(sent) > 4*interval {
				delete(ch.pings, id)
				lost++
			}
		}
		ch.pingID++
		id := ch.pingID
		ch.pings[id] = now
		ch.mu.Unlock()
		ch.p.count(func(s *Stats) { s.PingsLost += lost; s.PingsSent++ })
		if err := ch.dc.Send(encodeNum(dcPing, id)); err != nil {
			return
		}
	}
}

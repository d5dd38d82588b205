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
	retrying   bool        // a background resend of the frames above runs
	unackedMu  sync.Mutex
	unacked    []sentFrame   // frames sent on ch and not yet acknowledged
	unackedLen int           // their size in bytes
	acked      chan struct{} // signalled when unacked shrinks

	// Receiving.
	rxMu      sync.Mutex
	sequenced bool // a switch marker was seen: deliver in sequence order
	relaySeq  bool // relay frames are numbered from relayNext (after resume)
	expect    uint64
	relayNext uint64
	pending   map[uint64]Inbound // frames held back until the gap before them fills
	heldLen   int                // the size of pending's frames in bytes
	rxCond    *sync.Cond         // signalled (with rxMu) when pending shrinks or a channel closes

	// Signalling.
	attMu sync.Mutex
	att   *attempt

	stMu sync.Mutex
	st   Stats
}

func newPeer(h *Hybrid, amid protocol.AMID) *peer {
	p := &peer{h: h, amid: amid, log: h.log.With("peer", amid.Short()), pending: make(map[uint64]Inbound),
		acked: make(chan struct{}, 1)}
	p.rxCond = sync.NewCond(&p.rxMu)
	return p
}

// frameSize is what a frame counts for against the byte bounds.
func frameSize(typ protocol.MessageType, payload string) int { return len(typ) + len(payload) }

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
		size := frameSize(typ, payload)
		err := p.waitRoomLocked(ctx, ch, size)
		if err == nil {
			p.unackedMu.Lock()
			p.unacked = append(p.unacked, sentFrame{p.next, typ, payload})
			p.unackedLen += size
			p.unackedMu.Unlock()
			err = ch.sendData(ctx, p.next, typ, payload)
			if err == nil {
				p.next++
				p.count(func(s *Stats) { s.SentDirect++ })
				return nil
			}
			p.unackedMu.Lock()
			// An acknowledgement cannot have covered it: it was not sent.
			if n := len(p.unacked); n > 0 && p.unacked[n-1].seq == p.next {
				p.unacked = p.unacked[:n-1]
				p.unackedLen -= size
			}
			p.unackedMu.Unlock()
		}
		if errors.Is(err, ErrClosed) {
			return ErrClosed
		}
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

// waitRoomLocked waits until a frame of size bytes fits among the frames
// ch has not acknowledged, within MaxUnackedFrames and MaxUnackedBytes. It
// returns errChannelDown when ch closes first: the caller moves to the
// relay. txMu must be held.
func (p *peer) waitRoomLocked(ctx context.Context, ch *channel, size int) error {
	cfg := p.h.cfg
	for {
		p.unackedMu.Lock()
		full := len(p.unacked) > 0 &&
			(len(p.unacked) >= cfg.MaxUnackedFrames || p.unackedLen+size > cfg.MaxUnackedBytes)
		p.unackedMu.Unlock()
		if !full {
			return nil
		}
		select {
		case <-p.acked:
		case <-ch.down:
			return errChannelDown
		case <-p.h.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
	p.unackedLen = 0
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
	// Closed first, so that a Send waiting for acknowledgements on ch
	// gives way.
	ch.close()
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.ch != ch {
		return
	}
	p.leaveLocked(ch, reason)
	ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
	defer cancel()
	if err := p.flushResumeLocked(ctx); err != nil {
		p.log.Warn("frames to resend are sent again in the background", "error", err)
		p.retryResumeLocked()
	}
}

// Backoff of the background resend after a fallback.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 5 * time.Second
)

// retryResumeLocked starts resending the frames left over from a fallback
// in the background, with backoff, until they are sent, a Send sends them,
// or the Hybrid closes. txMu must be held.
func (p *peer) retryResumeLocked() {
	if p.retrying {
		return
	}
	p.retrying = true
	go func() {
		delay := retryFirst
		for {
			t := time.NewTimer(delay)
			select {
			case <-p.h.done:
				t.Stop()
				p.txMu.Lock()
				p.retrying = false
				p.txMu.Unlock()
				return
			case <-t.C:
			}
			p.txMu.Lock()
			if !p.resumeDue {
				p.retrying = false
				p.txMu.Unlock()
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
			err := p.flushResumeLocked(ctx)
			cancel()
			if err == nil || errors.Is(err, ErrClosed) {
				p.retrying = false
				p.txMu.Unlock()
				if err != nil {
					p.log.Warn("frames to resend are lost with the relay connection", "error", err)
				}
				return
			}
			p.txMu.Unlock()
			p.log.Debug("resend failed; trying again", "error", err, "in", delay)
			delay = min(2*delay, retryMax)
		}
	}()
}

// onAck forgets the frames the peer acknowledged.
func (p *peer) onAck(seq uint64) {
	p.unackedMu.Lock()
	i := 0
	for i < len(p.unacked) && p.unacked[i].seq <= seq {
		p.unackedLen -= frameSize(p.unacked[i].typ, p.unacked[i].payload)
		i++
	}
	p.unacked = p.unacked[i:]
	if len(p.unacked) == 0 {
		p.unacked = nil // let the backing array go
	}
	p.unackedMu.Unlock()
	if i > 0 {
		select {
		case p.acked <- struct{}{}:
		default:
		}
	}
}

// onRelayFrame receives a session frame from the relay.
func (p *peer) onRelayFrame(in Inbound) {
	p.rxMu.Lock()
	defer p.ackDelivered(p.expect)
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
		p.heldLen = 0
		p.rxCond.Broadcast()
		p.h.deliver(in)
	}
}

// onControl handles a switch or resume marker.
func (p *peer) onControl(k controlKind, seq uint64) {
	p.rxMu.Lock()
	defer p.ackDelivered(p.expect)
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
			p.unholdLocked(s)
		}
	}
	p.drainLocked()
	p.rxCond.Broadcast()
}

// ackDelivered acknowledges on the live data channel, if any, the frames
// delivered in order when relay traffic (a marker, or frames filling a
// gap) let frames held back go: no data channel frame may come to prompt
// the acknowledgement. before is the next expected number before that
// traffic; rxMu must not be held.
func (p *peer) ackDelivered(before uint64) {
	p.rxMu.Lock()
	next, seq := p.expect, p.sequenced
	p.rxMu.Unlock()
	if !seq || next == before || next == 0 {
		return
	}
	p.attMu.Lock()
	a := p.att
	p.attMu.Unlock()
	if a == nil {
		return
	}
	a.mu.Lock()
	ch := a.ch
	a.mu.Unlock()
	if ch != nil {
		ch.ack(next - 1)
	}
}

// holdLocked keeps the frame numbered s until the frames before it come.
func (p *peer) holdLocked(s uint64, in Inbound) {
	if old, ok := p.pending[s]; ok {
		p.heldLen -= frameSize(old.Type, old.Payload)
	}
	p.pending[s] = in
	p.heldLen += frameSize(in.Type, in.Payload)
}

// unholdLocked forgets the held frame numbered s.
func (p *peer) unholdLocked(s uint64) {
	if in, ok := p.pending[s]; ok {
		p.heldLen -= frameSize(in.Type, in.Payload)
		delete(p.pending, s)
	}
}

// mustHoldLocked says whether a data channel frame numbered s would be
// held back rather than delivered.
func (p *peer) mustHoldLocked(s uint64) bool { return !p.sequenced || s > p.expect }

// heldFullLocked says whether another held frame of size bytes would pass
// MaxHeldFrames or MaxHeldBytes.
func (p *peer) heldFullLocked(size int) bool {
	cfg := p.h.cfg
	return len(p.pending) > 0 && (len(p.pending) >= cfg.MaxHeldFrames || p.heldLen+size > cfg.MaxHeldBytes)
}

// onDCFrame receives a frame from a data channel; it returns the highest
// sequence number delivered in order, to acknowledge.
//
// While as many frames as the bounds allow are held back, it waits (and
// the channel is not read) until the gap before them fills. When ch closes
// meanwhile the frame is dropped unacknowledged: the sender sends it again
// on the relay.
func (p *peer) onDCFrame(ch *channel, seq uint64, in Inbound) (acked uint64, ok bool) {
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	size := frameSize(in.Type, in.Payload)
	for p.mustHoldLocked(seq) && p.heldFullLocked(size) {
		if _, dup := p.pending[seq]; dup || ch.isDown() || p.h.isDone() {
			return 0, false
		}
		p.rxCond.Wait()
	}
	if !p.sequenced {
		p.holdLocked(seq, in)
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
		p.holdLocked(s, in)
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
		p.unholdLocked(p.expect)
		p.rxCond.Broadcast()
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
			// Wake a data channel reader waiting for room among held
			// frames; not inline, as the caller may hold txMu while a
			// delivery under rxMu waits for Recv.
			ch.p.rxMu.Lock()
			ch.p.rxCond.Broadcast()
			ch.p.rxMu.Unlock()
			_ = ch.dc.Close()
			ch.att.close()
		}()
	})
}

// isDown says whether ch was closed.
func (ch *channel) isDown() bool {
	select {
	case <-ch.down:
		return true
	default:
		return false
	}
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
		if acked, ok := ch.p.onDCFrame(ch, n, Inbound{From: ch.p.amid, Type: typ, Payload: payload}); ok {
			ch.ack(acked)
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

// ack has the ack loop acknowledge every frame up to seq.
func (ch *channel) ack(seq uint64) {
	ch.mu.Lock()
	ch.ackSeq = max(ch.ackSeq, seq)
	ch.mu.Unlock()
	select {
	case ch.ackReady <- struct{}{}:
	default:
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

package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// channelLabel names the data channel (PROTOCOL.md §5.9).
const channelLabel = "agentmesh"

var (
	errYielded = errors.New("the peer's simultaneous offer won")
	errFailed  = errors.New("peer connection failed")
)

// plan is one way to try for a data channel.
type plan struct {
	name    string
	policy  webrtc.ICETransportPolicy
	turn    []TURNServer
	timeout time.Duration
}

// attempt is one peer connection: being set up, or carrying the data
// channel.
type attempt struct {
	p         *peer
	id        string
	initiator bool
	plan      plan
	pc        *webrtc.PeerConnection

	opened    chan struct{}
	openOnce  sync.Once
	failed    chan struct{}
	failOnce  sync.Once
	failErr   error
	closeOnce sync.Once

	// restartMu runs one ICE restart at a time, offered or answered;
	// stable is signalled when an offer has been answered.
	restartMu sync.Mutex
	stable    chan struct{}

	mu      sync.Mutex
	ch      *channel
	refresh *time.Timer
	expiry  time.Time // when the attempt's time-limited TURN credentials expire
	closed  bool
}

func newAttemptID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newAttempt makes the peer connection of an attempt.
func (p *peer) newAttempt(id string, initiator bool, pl plan) (*attempt, time.Time, error) {
	cfg := p.h.cfg
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	se.SetICETimeouts(cfg.ICEDisconnectedTimeout, cfg.ICEFailedTimeout, cfg.ICEKeepaliveInterval)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	servers, expiry := cfg.iceServers(pl.turn)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{
		ICEServers:         servers,
		ICETransportPolicy: pl.policy,
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("transport: peer connection: %w", err)
	}
	a := &attempt{p: p, id: id, initiator: initiator, plan: pl, pc: pc,
		opened: make(chan struct{}), failed: make(chan struct{}), stable: make(chan struct{}, 1)}
	pc.OnSignalingStateChange(func(s webrtc.SignalingState) {
		if s == webrtc.SignalingStateStable {
			select {
			case a.stable <- struct{}{}:
			default:
			}
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			a.fail(fmt.Errorf("%w: %s", errFailed, s))
		}
	})
	return a, expiry, nil
}

// bind attaches the attempt's data channel.
func (a *attempt) bind(dc *webrtc.DataChannel) {
	ch := newChannel(a.p, a, dc)
	a.mu.Lock()
	a.ch = ch
	a.mu.Unlock()
	dc.OnOpen(func() {
		a.openOnce.Do(func() { close(a.opened) })
		go a.p.channelUp(ch)
	})
}

// fail records why the attempt stopped and takes its channel down.
func (a *attempt) fail(err error) {
	a.failOnce.Do(func() {
		a.failErr = err
		close(a.failed)
	})
	a.mu.Lock()
	ch := a.ch
	a.mu.Unlock()
	if ch != nil {
		go a.p.channelDown(ch, err.Error())
	}
}

// close closes the peer connection.
func (a *attempt) close() {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		if a.refresh != nil {
			a.refresh.Stop()
		}
		a.mu.Unlock()
		_ = a.pc.Close()
		a.fail(errors.New("closed"))
	})
}

// gathered counts the attempt's local candidates by type.
func (a *attempt) gathered() map[string]int {
	d := a.pc.LocalDescription()
	if d == nil {
		return nil
	}
	out := map[string]int{}
	for _, line := range strings.Split(d.SDP, "\n") {
		if !strings.HasPrefix(line, "a=candidate:") {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "typ" {
				out[f[i+1]]++
			}
		}
	}
	return out
}

// selectedPair returns the types of the selected candidate pair.
func (a *attempt) selectedPair() (local, remote string) {
	sctp := a.pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return "", ""
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return "", ""
	}
	return pair.Local.Typ.String(), pair.Remote.Typ.String()
}

// describe sets d as local description and waits for every candidate
// (no trickle), returning the complete SDP.
func (a *attempt) describe(ctx context.Context, d webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(a.pc)
	if err := a.pc.SetLocalDescription(d); err != nil {
		return "", fmt.Errorf("local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
	return a.pc.LocalDescription().SDP, nil
}

// Upgrade tries to open a direct data channel to peer and move its frames
// there: first with every candidate (policy "all", STUN and TURN servers)
// for DirectTimeout, then through each TURN server in turn with relay
// candidates only, for TURNTimeout each. It returns nil once frames to the
// peer go direct, or an error saying why they stay on the relay. The peer
// must run a Hybrid with P2P enabled.
func (h *Hybrid) Upgrade(ctx context.Context, peer protocol.AMID) error {
	if !h.cfg.P2P {
		return errors.New("transport: upgrade: direct connections are disabled")
	}
	p := h.peer(peer)
	if p.stats().Path == PathDirect {
		return nil
	}
	var plans []plan
	if !h.cfg.RelayOnly {
		plans = append(plans, plan{name: "direct", policy: webrtc.ICETransportPolicyAll, turn: h.cfg.TURN, timeout: h.cfg.DirectTimeout})
	}
	for _, t := range h.cfg.TURN {
		plans = append(plans, plan{name: "turn " + t.URL, policy: webrtc.ICETransportPolicyRelay, turn: []TURNServer{t}, timeout: h.cfg.TURNTimeout})
	}
	var why []string
	for _, pl := range plans {
		err := p.try(ctx, pl)
		if err == nil {
			return nil
		}
		p.log.Info("no data channel", "attempt", pl.name, "error", err)
		why = append(why, pl.name+": "+err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	if len(why) == 0 {
		why = append(why, "no way to try")
	}
	err := fmt.Errorf("transport: upgrade %s: frames stay on the relay: %s", peer.Short(), strings.Join(why, "; "))
	p.log.Warn("direct path unavailable; frames stay on the relay", "error", err)
	return err
}

// try runs one plan as the offering side.
func (p *peer) try(ctx context.Context, pl plan) error {
	ctx, cancel := context.WithTimeout(ctx, pl.timeout)
	defer cancel()
	a, expiry, err := p.newAttempt(newAttemptID(), true, pl)
	if err != nil {
		return err
	}
	ordered := true
	dc, err := a.pc.CreateDataChannel(channelLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		a.close()
		return fmt.Errorf("data channel: %w", err)
	}
	a.bind(dc)
	p.attMu.Lock()
	old := p.att
	p.att = a
	p.attMu.Unlock()
	if old != nil {
		old.close()
	}
	err = a.offer(ctx, nil)
	if err == nil {
		select {
		case <-a.opened:
			a.scheduleRefresh(expiry)
			return nil
		case <-a.failed:
			err = a.failErr
		case <-ctx.Done():
			err = fmt.Errorf("no data channel within %s", pl.timeout)
		}
	}
	if errors.Is(err, errYielded) {
		// The peer's offer replaced this one: wait for its channel.
		p.attMu.Lock()
		cur := p.att
		p.attMu.Unlock()
		if cur != nil && cur != a {
			select {
			case <-cur.opened:
				return nil
			case <-cur.failed:
				err = cur.failErr
			case <-ctx.Done():
				err = fmt.Errorf("no data channel within %s", pl.timeout)
			}
		}
	}
	p.attMu.Lock()
	if p.att == a {
		p.att = nil
	}
	p.attMu.Unlock()
	a.close()
	return err
}

// offer sends an offer (an ICE restart when opts asks) through the relay.
func (a *attempt) offer(ctx context.Context, opts *webrtc.OfferOptions) error {
	o, err := a.pc.CreateOffer(opts)
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	sdp, err := a.describe(ctx, o)
	if err != nil {
		return err
	}
	msg := marshalSDP(sdpMessage{SDP: sdp, Type: "offer", Attempt: a.id})
	if err := a.p.h.conn.SendICEOffer(ctx, a.p.amid, msg, []protocol.ICECandidate{}); err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	return nil
}

// scheduleRefresh plans fresh TURN credentials before the current ones,
// expiring at expiry, do: the offering side restarts ICE, the answering
// side asks it to (an ICE restart needs an offer) and answers with fresh
// credentials of its own.
func (a *attempt) scheduleRefresh(expiry time.Time) {
	if expiry.IsZero() {
		return
	}
	cfg := a.p.h.cfg
	now := cfg.Now()
	lead := min(cfg.RefreshBefore, expiry.Sub(now)/2)
	wait := max(expiry.Sub(now)-lead, 0)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if a.refresh != nil {
		a.refresh.Stop()
	}
	a.expiry = expiry
	if a.initiator {
		a.refresh = time.AfterFunc(wait, a.restart)
	} else {
		a.refresh = time.AfterFunc(wait, a.askRestart)
	}
}

// fresherCredentials gives the peer connection fresh TURN credentials,
// used from the next ICE restart on, and returns when they expire.
func (a *attempt) fresherCredentials() (time.Time, error) {
	servers, expiry := a.p.h.cfg.iceServers(a.plan.turn)
	conf := a.pc.GetConfiguration()
	conf.ICEServers = servers
	if err := a.pc.SetConfiguration(conf); err != nil {
		return time.Time{}, fmt.Errorf("ICE servers: %w", err)
	}
	return expiry, nil
}

// restart replaces the TURN credentials and restarts ICE; the data
// channel and its frames carry on over the new path. It returns once the
// peer answered, or gave up waiting.
func (a *attempt) restart() {
	a.restartMu.Lock()
	defer a.restartMu.Unlock()
	cfg := a.p.h.cfg
	ctx, cancel := context.WithTimeout(context.Background(), a.plan.timeout+cfg.DirectTimeout)
	defer cancel()
	select {
	case <-a.stable: // an earlier answer's signal
	default:
	}
	expiry, err := a.fresherCredentials()
	if err == nil {
		err = a.offer(ctx, &webrtc.OfferOptions{ICERestart: true})
	}
	if err != nil {
		a.p.log.Warn("TURN credentials not refreshed", "error", err)
		return
	}
	a.p.count(func(s *Stats) { s.ICERestarts++ })
	a.p.log.Debug("ICE restarted with fresh TURN credentials")
	a.scheduleRefresh(expiry)
	select {
	case <-a.stable:
	case <-a.failed:
	case <-ctx.Done():
		a.p.log.Warn("ICE restart not answered", "timeout", a.plan.timeout+cfg.DirectTimeout)
	}
}

// askRestart asks the offering peer for an ICE restart, as the answering
// side's TURN credentials near their expiry, and asks again later until a
// restart comes or they expired.
func (a *attempt) askRestart() {
	cfg := a.p.h.cfg
	ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
	defer cancel()
	if err := a.p.h.sendControl(ctx, a.p.amid, controlRestart, 0); err != nil {
		a.p.log.Warn("ICE restart not asked for", "error", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	left := a.expiry.Sub(cfg.Now())
	if a.closed || left <= 0 {
		return
	}
	a.refresh = time.AfterFunc(max(left/4, 100*time.Millisecond), a.askRestart)
}

// answerRestart answers the peer's ICE restart with fresh TURN
// credentials of this host's own.
func (a *attempt) answerRestart(d sdpMessage) error {
	a.restartMu.Lock()
	defer a.restartMu.Unlock()
	expiry, err := a.fresherCredentials()
	if err != nil {
		return err
	}
	if err := a.answer(d); err != nil {
		return err
	}
	a.p.count(func(s *Stats) { s.ICERestarts++ })
	a.p.log.Debug("answered an ICE restart with fresh TURN credentials")
	a.scheduleRefresh(expiry)
	return nil
}

// onRestartRequest restarts ICE when the answering peer asks for it.
func (p *peer) onRestartRequest() {
	p.attMu.Lock()
	a := p.att
	p.attMu.Unlock()
	if a == nil || !a.initiator {
		p.log.Debug("ignored a request for an ICE restart: no connection offered by this host")
		return
	}
	select {
	case <-a.opened:
	default:
		p.log.Debug("ignored a request for an ICE restart: the connection is not up")
		return
	}
	a.restart()
}

// onOffer answers a peer's offer, or its ICE restart.
func (p *peer) onOffer(raw string) {
	if !p.h.cfg.P2P {
		p.log.Debug("ignored an ICE offer: direct connections are disabled")
		return
	}
	d, err := parseSDP(raw)
	if err != nil || d.Type != "offer" {
		p.log.Warn("ignored a malformed ICE offer", "error", err)
		return
	}
	p.attMu.Lock()
	cur := p.att
	if cur != nil && cur.id == d.Attempt && !cur.initiator {
		p.attMu.Unlock()
		if err := cur.answerRestart(d); err != nil {
			p.log.Warn("ICE restart not answered", "error", err)
		}
		return
	}
	if cur != nil && cur.initiator {
		select {
		case <-cur.opened:
		default:
			if p.h.conn.AMID() < p.amid {
				// Both offered at once: the lower AMID's offer wins.
				p.attMu.Unlock()
				return
			}
		}
	}
	pl := plan{name: "answer", policy: webrtc.ICETransportPolicyAll, turn: p.h.cfg.TURN,
		timeout: p.h.cfg.DirectTimeout + time.Duration(len(p.h.cfg.TURN))*p.h.cfg.TURNTimeout}
	if p.h.cfg.RelayOnly {
		pl.policy = webrtc.ICETransportPolicyRelay
	}
	a, expiry, err := p.newAttempt(d.Attempt, false, pl)
	if err != nil {
		p.attMu.Unlock()
		p.log.Warn("ICE offer not answered", "error", err)
		return
	}
	p.att = a
	p.attMu.Unlock()
	if cur != nil {
		if cur.initiator {
			cur.fail(errYielded)
		}
		cur.close()
	}
	a.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() == channelLabel {
			a.bind(dc)
		}
	})
	if err := a.answer(d); err != nil {
		p.log.Warn("ICE offer not answered", "error", err)
		a.close()
		return
	}
	// An answer that never leads to a channel is given up.
	select {
	case <-a.opened:
		a.scheduleRefresh(expiry)
	case <-a.failed:
	case <-p.h.done:
		a.close()
	case <-time.After(pl.timeout + p.h.cfg.DirectTimeout):
		p.log.Info("no data channel from the peer's offer", "timeout", pl.timeout)
		a.close()
	}
}

// answer applies an offer and sends the answer through the relay.
func (a *attempt) answer(d sdpMessage) error {
	if err := a.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}); err != nil {
		return fmt.Errorf("remote offer: %w", err)
	}
	ans, err := a.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.plan.timeout)
	defer cancel()
	sdp, err := a.describe(ctx, ans)
	if err != nil {
		return err
	}
	msg := marshalSDP(sdpMessage{SDP: sdp, Type: "answer", Attempt: a.id})
	if err := a.p.h.conn.SendICEAnswer(ctx, a.p.amid, msg, []protocol.ICECandidate{}); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return nil
}

// onAnswer applies the peer's answer to the offer it names.
func (p *peer) onAnswer(raw string) {
	d, err := parseSDP(raw)
	if err != nil || d.Type != "answer" {
		p.log.Warn("ignored a malformed ICE answer", "error", err)
		return
	}
	p.attMu.Lock()
	a := p.att
	p.attMu.Unlock()
	if a == nil || !a.initiator || a.id != d.Attempt {
		p.log.Debug("ignored an ICE answer to an offer given up")
		return
	}
	if err := a.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
		p.log.Warn("ICE answer not applied", "error", err)
		a.fail(fmt.Errorf("answer: %w", err))
	}
}

// closeAttempts closes the peer's connection.
func (p *peer) closeAttempts() {
	p.attMu.Lock()
	a := p.att
	p.att = nil
	p.attMu.Unlock()
	if a != nil {
		a.close()
	}
}

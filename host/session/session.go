package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// maxGaps bounds the missing sequence numbers a session remembers, so
// that a late message can still be taken once.
const maxGaps = 1024

// ClosedError is returned by a Session's methods once it has ended.
type ClosedError struct {
	Reason protocol.CloseReason
	// ByPeer reports whether the peer ended the session.
	ByPeer bool
}

func (e *ClosedError) Error() string {
	if e.ByPeer {
		return fmt.Sprintf("session closed by the peer: %s", e.Reason)
	}
	return fmt.Sprintf("session closed: %s", e.Reason)
}

// Session is one end-to-end encrypted session with a peer. Its methods are
// safe for concurrent use.
type Session struct {
	m         *Manager
	id        atomic.Pointer[string] // replaced when a lost session is opened again
	peer      protocol.AMID
	initiator bool
	intent    string
	typ       protocol.SessionType
	created   time.Time
	expires   time.Time

	inbox    chan *protocol.EncryptedEnvelope
	requests chan *protocol.Message
	done     chan struct{}
	expiry   *time.Timer

	// sendMu orders encryption and transmission, so that messages leave
	// in the order of their sequence numbers.
	sendMu sync.Mutex

	mu       sync.Mutex
	ratchet  *ratchet.State
	sendSeq  uint64
	recvNext uint64
	gaps     map[uint64]bool
	held     [][]byte // plaintexts waiting until the ratchet may send
	local    []string // the capabilities we speak, as last announced
	agreed   []string
	waiters  []*waiter
	capWait  []chan *protocol.CapabilityResponse
	closed   *ClosedError
	received int
	lastUsed time.Time
	messages uint64 // sent and received, for the session file

	reopening atomic.Bool // a new handshake replaces a session the peer lost
}

// waiter is a REQUEST of ours awaiting its RESPONSE or ERROR.
type waiter struct {
	req      *protocol.Request
	schema   string
	onStatus func(*protocol.Status)
	result   chan protocol.Payload
}

func (m *Manager) newSession(id string, peer protocol.AMID, initiator bool, intent string, typ protocol.SessionType,
	ttl time.Duration, st *ratchet.State, local, agreed []string) *Session {
	now := m.now()
	s := &Session{
		m:         m,
		peer:      peer,
		initiator: initiator,
		intent:    intent,
		typ:       typ,
		created:   now,
		expires:   now.Add(ttl),
		inbox:     make(chan *protocol.EncryptedEnvelope, inboxSize),
		requests:  make(chan *protocol.Message, requestQueue),
		done:      make(chan struct{}),
		ratchet:   st,
		gaps:      make(map[uint64]bool),
		local:     slices.Clone(local),
		agreed:    slices.Clone(agreed),
	}
	s.id.Store(&id)
	s.lastUsed = now
	return s
}

// start runs the session's goroutines: one decrypts and handles messages
// in order, one serves REQUESTs in order so that answers keep their order.
func (s *Session) start() {
	s.m.wg.Add(2)
	go s.receiveLoop()
	go s.requestLoop()
	if ttl := s.expires.Sub(s.m.now()); ttl > 0 {
		s.expiry = time.AfterFunc(ttl, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Close(ctx, protocol.CloseSessionExpired)
		})
	}
}

// ID returns the session id (the ACCEPT's sessionId).
func (s *Session) ID() string { return *s.id.Load() }

// Peer returns the other agent.
func (s *Session) Peer() protocol.AMID { return s.peer }

// Initiator reports whether we opened the session.
func (s *Session) Initiator() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initiator
}

// Intent returns the intent the KNOCK asked for.
func (s *Session) Intent() string { return s.intent }

// Expires returns when the session's TTL runs out.
func (s *Session) Expires() time.Time { return s.expires }

// Capabilities returns the capabilities agreed for the session.
func (s *Session) Capabilities() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.agreed)
}

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it is open.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed == nil {
		return nil
	}
	return s.closed
}

// Request sends a REQUEST and waits for its RESPONSE or ERROR, passing
// STATUS updates to onStatus (which may be nil). The answer is a
// *protocol.Response or a *protocol.ErrorPayload. Answers are matched to
// REQUESTs in order, as the peer serves a session's REQUESTs one by one.
func (s *Session) Request(ctx context.Context, req *protocol.Request, schema string, onStatus func(*protocol.Status)) (protocol.Payload, error) {
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("session: request: %w", err)
	}
	w := &waiter{req: req, schema: schema, onStatus: onStatus, result: make(chan protocol.Payload, 1)}
	if err := s.sendWaiting(ctx, req, schema, w); err != nil {
		s.dropWaiter(w)
		return nil, err
	}
	select {
	case p, ok := <-w.result:
		if !ok {
			return nil, s.Err()
		}
		return p, nil
	case <-ctx.Done():
		// The waiter stays in line: the answer, when it comes, is
		// discarded in its place.
		return nil, ctx.Err()
	}
}

func (s *Session) dropWaiter(w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.waiters, w); i >= 0 {
		s.waiters = slices.Delete(s.waiters, i, i+1)
	}
}

// RequestCapabilities offers capabilities to the peer (capability_request)
// and waits for its capability_response; accepted capabilities join the
// session's.
func (s *Session) RequestCapabilities(ctx context.Context, offered []string) (*protocol.CapabilityResponse, error) {
	ch := make(chan *protocol.CapabilityResponse, 1)
	s.mu.Lock()
	if s.closed != nil {
		err := s.closed
		s.mu.Unlock()
		return nil, err
	}
	s.capWait = append(s.capWait, ch)
	for _, c := range offered {
		if !slices.Contains(s.local, c) {
			s.local = append(s.local, c)
		}
	}
	s.mu.Unlock()
	err := s.send(ctx, &protocol.CapabilityRequest{OfferedCapabilities: offered, ProtocolVersion: protocol.ProtocolVersion}, "")
	if err != nil {
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, s.Err()
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// announce sends a capability_update for what changed between the
// capabilities we last told the peer and offered.
func (s *Session) announce(ctx context.Context, offered []string) error {
	s.mu.Lock()
	var added, removed []string
	for _, c := range offered {
		if !slices.Contains(s.local, c) {
			added = append(added, c)
		}
	}
	for _, c := range s.local {
		if !slices.Contains(offered, c) {
			removed = append(removed, c)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.local = slices.Clone(offered)
	s.agreed = slices.DeleteFunc(s.agreed, func(c string) bool { return slices.Contains(removed, c) })
	s.mu.Unlock()
	return s.send(ctx, &protocol.CapabilityUpdate{AddedCapabilities: added, RemovedCapabilities: removed, Reason: "skills changed"}, "")
}

// Close ends the session: a CLOSE with reason goes to the peer, inside the
// ratchet when it can send, and the session is forgotten. Closing a closed
// session does nothing.
func (s *Session) Close(ctx context.Context, reason protocol.CloseReason) error {
	s.mu.Lock()
	if s.closed != nil {
		s.mu.Unlock()
		return nil
	}
	canSend := s.ratchet.CanSend()
	s.mu.Unlock()
	var err error
	if canSend {
		err = s.send(ctx, &protocol.Close{Reason: reason}, "")
	} else {
		var b []byte
		b, err = json.Marshal(&protocol.Close{Reason: reason, SessionID: s.ID()})
		if err == nil {
			err = s.m.send(ctx, s.peer, protocol.MessageTypeClose, b)
		}
	}
	s.end(reason, false)
	if err != nil {
		return fmt.Errorf("session: sending CLOSE: %w", err)
	}
	return nil
}

// end marks the session closed, fails whatever waits on it and forgets it.
func (s *Session) end(reason protocol.CloseReason, byPeer bool) { s.endWith(reason, byPeer, false) }

// stop ends the session in this process only, keeping its file, so that
// it resumes when the host starts again.
func (s *Session) stop() { s.endWith("host_stopped", false, true) }

func (s *Session) endWith(reason protocol.CloseReason, byPeer, keepFile bool) {
	s.mu.Lock()
	if s.closed != nil {
		s.mu.Unlock()
		return
	}
	s.closed = &ClosedError{Reason: reason, ByPeer: byPeer}
	for _, w := range s.waiters {
		close(w.result)
	}
	s.waiters = nil
	for _, c := range s.capWait {
		close(c)
	}
	s.capWait = nil
	s.held = nil
	s.mu.Unlock()
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.m.removeSession(s)
	if f := s.m.files; f != nil && !keepFile {
		if err := f.remove(s.peer, s.ID()); err != nil {
			s.m.log.Warn("deleting a session file", "session", s.ID(), "error", err)
		}
	}
	close(s.done)
	s.m.log.Info("session closed", "peer", s.peer.Short(), "session", s.ID(), "reason", reason, "by_peer", byPeer)
}

// send encrypts one payload in the session's envelope and sends it. A
// responder's ratchet cannot send before its first message arrives; until
// then the message is held, in order, and sent as soon as it can.
func (s *Session) send(ctx context.Context, p protocol.Payload, schema string) error {
	return s.sendWaiting(ctx, p, schema, nil)
}

// sendWaiting is send that, when w is not nil, puts w in line for the
// answer in the same step as the REQUEST takes its place in the stream, so
// that answers match REQUESTs even when several are sent at once.
func (s *Session) sendWaiting(ctx context.Context, p protocol.Payload, schema string, w *waiter) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if s.closed != nil {
		err := s.closed
		s.mu.Unlock()
		return err
	}
	if w != nil {
		s.waiters = append(s.waiters, w)
	}
	msg := &protocol.Message{
		Type:      p.PayloadType(),
		SessionID: s.ID(),
		Sequence:  s.sendSeq,
		Timestamp: s.m.now(),
		Payload:   p,
		Schema:    schema,
	}
	plain, err := msg.Marshal()
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("session: encoding %s: %w", p.PayloadType(), err)
	}
	s.sendSeq++
	if !s.ratchet.CanSend() {
		s.held = append(s.held, plain)
		s.mu.Unlock()
		s.record(true, msg.Type, plain, msg.Timestamp)
		return nil
	}
	wire, err := s.seal(plain)
	if err == nil {
		s.touchLocked()
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.record(true, msg.Type, plain, msg.Timestamp)
	return s.m.send(ctx, s.peer, protocol.MessageTypeMessage, wire)
}

// record hands a message to the Recorder, if there is one.
func (s *Session) record(sent bool, typ protocol.PayloadType, plain []byte, at time.Time) {
	if r := s.m.cfg.Recorder; r != nil {
		r.Record(Recorded{SessionID: s.ID(), Peer: s.peer, Sent: sent, Type: typ, Envelope: plain, Time: at})
	}
}

// touchLocked records a message sent or received and saves the session;
// s.mu must be held. The state is on disk before the message is handed to
// the transport or to the handler.
func (s *Session) touchLocked() {
	s.lastUsed = s.m.now()
	s.messages++
	s.persistLocked()
}

// persistLocked writes the session's file, if sessions are kept; s.mu
// must be held.
func (s *Session) persistLocked() {
	f := s.m.files
	if f == nil || s.closed != nil {
		return
	}
	st, err := s.ratchet.MarshalBinary()
	if err != nil {
		s.m.log.Error("saving a session: ratchet state", "session", s.ID(), "error", err)
		return
	}
	defer clear(st)
	err = f.save(&sessionRecord{
		ID: s.ID(), Peer: string(s.peer), Initiator: s.initiator, Intent: s.intent, Type: string(s.typ),
		CreatedAt: s.created, LastUsed: s.lastUsed, ExpiresAt: s.expires, Messages: s.messages,
		SendSeq: s.sendSeq, RecvNext: s.recvNext, Local: s.local, Agreed: s.agreed, Ratchet: st,
	})
	if err != nil {
		s.m.log.Error("saving a session", "session", s.ID(), "error", err)
	}
}

// seal encrypts plain into an envelope; s.mu must be held.
func (s *Session) seal(plain []byte) ([]byte, error) {
	h, ct, err := s.ratchet.Encrypt(plain)
	if err != nil {
		return nil, fmt.Errorf("session: encrypting: %w", err)
	}
	env := protocol.EncryptedEnvelope{SessionID: s.ID(), Header: protocol.RatchetHeader(h), Ciphertext: ct}
	return env.Marshal(), nil
}

// flushHeld sends the messages held until the ratchet could send.
func (s *Session) flushHeld(ctx context.Context) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	held := s.held
	s.held = nil
	var wires [][]byte
	for _, plain := range held {
		w, err := s.seal(plain)
		if err != nil {
			s.m.log.Error("sending a held message", "session", s.ID(), "error", err)
			continue
		}
		wires = append(wires, w)
	}
	if len(wires) > 0 {
		s.touchLocked()
	}
	s.mu.Unlock()
	for _, w := range wires {
		if err := s.m.send(ctx, s.peer, protocol.MessageTypeMessage, w); err != nil {
			s.m.log.Warn("sending a held message", "session", s.ID(), "error", err)
		}
	}
}

// handleMessage queues an encrypted message for its session.
func (m *Manager) handleMessage(ctx context.Context, in transport.Inbound) {
	env, err := protocol.ParseEncryptedEnvelope([]byte(in.Payload))
	if err != nil {
		m.log.Debug("dropped malformed envelope", "from", in.From.Short(), "error", err)
		return
	}
	s := m.findSession(in.From, env.SessionID)
	if s == nil {
		m.log.Debug("message for no open session", "from", in.From.Short(), "session", env.SessionID)
		m.answerNotFound(ctx, in.From, env.SessionID)
		return
	}
	select {
	case s.inbox <- env:
	case <-s.done:
	case <-ctx.Done():
	}
}

// handlePlainClose ends a session on a CLOSE sent outside the ratchet,
// which only a peer that could not yet encrypt sends. The relay
// authenticated the sender; it must name one of its sessions with us.
func (m *Manager) handlePlainClose(in transport.Inbound) {
	var c struct {
		Type      string `json:"type"`
		Reason    string `json:"reason"`
		SessionID string `json:"session_id"`
	}
	if err := json.Unmarshal([]byte(in.Payload), &c); err != nil || c.SessionID == "" {
		m.log.Debug("dropped plaintext close without a session id", "from", in.From.Short())
		return
	}
	m.mu.Lock()
	s := m.sessions[sessionKey{in.From, c.SessionID}]
	m.mu.Unlock()
	if s != nil {
		s.end(protocol.CloseReason(c.Reason), true)
	}
}

// context returns a context that ends with the session or the Manager.
func (s *Session) context() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.done:
		case <-s.m.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

// receiveLoop decrypts and handles the session's messages in order.
func (s *Session) receiveLoop() {
	defer s.m.wg.Done()
	ctx, cancel := s.context()
	defer cancel()
	for {
		select {
		case env := <-s.inbox:
			s.receive(ctx, env)
		case <-s.done:
			return
		}
	}
}

// receive decrypts one envelope and handles its message.
func (s *Session) receive(ctx context.Context, env *protocol.EncryptedEnvelope) {
	s.mu.Lock()
	if s.closed != nil {
		s.mu.Unlock()
		return
	}
	couldSend := s.ratchet.CanSend()
	plain, err := s.ratchet.Decrypt(ratchet.Header(env.Header), env.Ciphertext)
	canSend := s.ratchet.CanSend()
	s.mu.Unlock()
	switch {
	case errors.Is(err, ratchet.ErrExcessiveSkip):
		s.m.log.Warn("peer skipped too many messages; closing the session", "session", s.ID(), "peer", s.peer.Short())
		s.Close(ctx, protocol.CloseExcessiveSkip)
		return
	case err != nil:
		s.m.log.Warn("dropped message that does not decrypt", "session", s.ID(), "peer", s.peer.Short(), "error", err)
		return
	}
	if !couldSend && canSend {
		s.flushHeld(ctx)
	}
	msg, err := protocol.ParseMessage(plain)
	if err != nil {
		s.m.log.Warn("dropped message that does not parse", "session", s.ID(), "error", err)
		return
	}
	for _, w := range msg.Warnings {
		s.m.log.Warn("message accepted with a warning", "session", s.ID(), "warning", w)
	}
	if msg.Type == "" {
		s.m.log.Debug("opaque application message", "session", s.ID(), "bytes", len(plain))
		return
	}
	if !s.checkSequence(msg.Sequence) {
		return
	}
	s.record(false, msg.Type, plain, s.m.now())
	s.dispatch(ctx, msg)
}

// checkSequence applies the sequence rules of PROTOCOL.md §7.2: a message
// already seen is dropped, a gap is warned about and the message taken; a
// message that fills a remembered gap is taken once.
func (s *Session) checkSequence(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case seq == s.recvNext:
		s.recvNext++
	case seq > s.recvNext:
		s.m.log.Warn("sequence gap detected", "session", s.ID(), "expected", s.recvNext, "got", seq)
		for n := s.recvNext; n < seq && len(s.gaps) < maxGaps; n++ {
			s.gaps[n] = true
		}
		s.recvNext = seq + 1
	case s.gaps[seq]:
		delete(s.gaps, seq)
	default:
		s.m.log.Warn("dropped duplicate message", "session", s.ID(), "sequence", seq)
		return false
	}
	s.received++
	s.touchLocked()
	return true
}

// dispatch handles one decrypted message by type.
func (s *Session) dispatch(ctx context.Context, msg *protocol.Message) {
	switch p := msg.Payload.(type) {
	case *protocol.Request:
		s.serve(ctx, msg, p)
	case *protocol.Status:
		s.mu.Lock()
		var w *waiter
		if len(s.waiters) > 0 {
			w = s.waiters[0]
		}
		s.mu.Unlock()
		if w != nil && w.onStatus != nil {
			w.onStatus(p)
		}
	case *protocol.Response, *protocol.ErrorPayload:
		s.mu.Lock()
		var w *waiter
		if len(s.waiters) > 0 {
			w = s.waiters[0]
			s.waiters = s.waiters[1:]
		}
		s.mu.Unlock()
		if w == nil {
			s.m.log.Warn("dropped answer to no request", "session", s.ID(), "type", msg.Type)
			return
		}
		w.result <- msg.Payload
	case *protocol.Close:
		s.end(p.Reason, true)
	case *protocol.CapabilityRequest:
		s.mu.Lock()
		accepted, rejected := Negotiate(p.OfferedCapabilities, s.local)
		s.agreed = sortedUnique(append(s.agreed, accepted...))
		s.mu.Unlock()
		s.reply(ctx, &protocol.CapabilityResponse{AcceptedCapabilities: accepted, RejectedCapabilities: rejected,
			AcceptedSchemas: intersect(p.OfferedSchemas, accepted), ProtocolVersion: protocol.ProtocolVersion})
	case *protocol.CapabilityUpdate:
		s.mu.Lock()
		accepted, rejected := Negotiate(p.AddedCapabilities, s.local)
		s.agreed = slices.DeleteFunc(s.agreed, func(c string) bool { return slices.Contains(p.RemovedCapabilities, c) })
		s.agreed = sortedUnique(append(s.agreed, accepted...))
		s.mu.Unlock()
		s.m.log.Info("peer changed its capabilities", "session", s.ID(), "added", p.AddedCapabilities,
			"removed", p.RemovedCapabilities, "accepted", accepted)
		s.reply(ctx, &protocol.CapabilityResponse{AcceptedCapabilities: accepted, RejectedCapabilities: rejected,
			ProtocolVersion: protocol.ProtocolVersion})
	case *protocol.CapabilityResponse:
		s.mu.Lock()
		s.agreed = sortedUnique(append(s.agreed, p.AcceptedCapabilities...))
		var ch chan *protocol.CapabilityResponse
		if len(s.capWait) > 0 {
			ch = s.capWait[0]
			s.capWait = s.capWait[1:]
		}
		s.mu.Unlock()
		if ch != nil {
			ch <- p
		}
	default:
		s.m.log.Warn("message of unknown type handled as opaque", "session", s.ID(), "type", msg.Type)
	}
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// reply sends a payload, logging a failure.
func (s *Session) reply(ctx context.Context, p protocol.Payload) {
	if err := s.send(ctx, p, ""); err != nil && s.Err() == nil {
		s.m.log.Warn("sending a reply", "session", s.ID(), "type", p.PayloadType(), "error", err)
	}
}

// serve checks that a REQUEST can be served in this session and queues it
// for the handler; one that cannot gets ERROR capability_mismatch naming
// what we could do instead.
func (s *Session) serve(ctx context.Context, msg *protocol.Message, req *protocol.Request) {
	h := s.m.cfg.Handler
	var capability string
	ok := false
	if h != nil {
		capability, ok = h.Route(req.Intent)
	}
	if !ok {
		s.reply(ctx, s.mismatch(req.Intent, "", fmt.Sprintf("no skill here serves the intent %q", req.Intent)))
		return
	}
	if capability != "" && !s.hasCapability(capability) {
		s.reply(ctx, s.mismatch(req.Intent, capability,
			fmt.Sprintf("intent %q needs %s, which this session has not agreed", req.Intent, capability)))
		return
	}
	select {
	case s.requests <- msg:
	default:
		retry := 1
		s.reply(ctx, &protocol.ErrorPayload{Code: protocol.CodeRateLimited, RetryAfterSeconds: &retry,
			Message: fmt.Sprintf("%d requests already wait in this session", requestQueue)})
	}
}

// hasCapability reports whether the session agreed capability, or another
// version of its family.
func (s *Session) hasCapability(capability string) bool {
	fam, _, versioned := splitCapability(capability)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.agreed {
		if a == capability {
			return true
		}
		if f, _, ok := splitCapability(a); versioned && ok && f == fam {
			return true
		}
	}
	return false
}

// mismatch builds the ERROR capability_mismatch with fallbacks: the
// intents we serve and the capabilities agreed.
func (s *Session) mismatch(intent, capability, message string) *protocol.ErrorPayload {
	details := map[string]any{"intent": intent, "agreed_capabilities": s.Capabilities()}
	if capability != "" {
		details["required_capability"] = capability
	}
	if h := s.m.cfg.Handler; h != nil {
		details["suggestions"] = h.Intents()
	}
	b, _ := json.Marshal(details)
	return &protocol.ErrorPayload{Code: protocol.CodeCapabilityMismatch, Message: message, Details: b}
}

// requestLoop serves the session's REQUESTs one at a time.
func (s *Session) requestLoop() {
	defer s.m.wg.Done()
	ctx, cancel := s.context()
	defer cancel()
	for {
		select {
		case msg := <-s.requests:
			req := msg.Payload.(*protocol.Request)
			meta := RequestMeta{SessionID: s.ID(), Peer: s.peer, Schema: msg.Schema}
			answer := s.m.cfg.Handler.HandleRequest(ctx, req, meta, func(st *protocol.Status) {
				s.reply(ctx, st)
			})
			if answer == nil {
				answer = &protocol.ErrorPayload{Code: protocol.CodeInternalError, Message: "the handler gave no answer"}
			}
			s.reply(ctx, answer)
		case <-s.done:
			return
		}
	}
}

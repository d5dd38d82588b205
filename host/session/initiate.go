package session

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// OpenOptions describe the session an initiator asks for.
type OpenOptions struct {
	// Intent is the capability asked for, such as "travel/flights/search";
	// empty means "*".
	Intent string
	// Type is the session type (default one-shot).
	Type protocol.SessionType
	// TTL is the session lifetime asked for (default 300 seconds, the
	// default policy's maximum).
	TTL time.Duration
	// Capabilities are the capabilities we speak in this session and offer
	// in the KNOCK; nil means those our Handler offers.
	Capabilities []string
	// Priority is 0–10, or nil.
	Priority *int64

	// optimistic, when set, seals the first REQUEST for sending with the
	// KNOCK (see OpenWithRequest); firstWaiter awaits its answer.
	optimistic  func(sk *ratchet.SharedSecret, knockNonce string) (string, bool)
	firstWaiter *waiter
}

// DefaultSessionTTL is the lifetime asked for when OpenOptions.TTL is zero.
const DefaultSessionTTL = 300 * time.Second

// RejectedError is the error of an Open that the peer refused with a
// signed REJECT.
type RejectedError struct {
	Peer   protocol.AMID
	Reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("session: %s rejected the KNOCK: %s", e.Peer.Short(), e.Reason)
}

// ErrHandshakeTimeout is returned by Open when the peer does not answer
// within Config.HandshakeTimeout.
var ErrHandshakeTimeout = errors.New("session: no ACCEPT or REJECT before the handshake timeout")

// pendingKnock is one of our KNOCKs awaiting its answer.
type pendingKnock struct {
	knock   *protocol.Knock
	peerKey ed25519.PublicKey
	once    sync.Once
	answer  chan protocol.Handshake
	err     error
}

func (p *pendingKnock) deliver(h protocol.Handshake) {
	p.once.Do(func() { p.answer <- h; close(p.answer) })
}

func (p *pendingKnock) fail(err error) {
	p.once.Do(func() { p.err = err; close(p.answer) })
}

// peerKeys are a peer's registered keys.
type peerKeys struct {
	signing  ed25519.PublicKey
	exchange *ratchet.PublicKey
}

// registeredKeys parses and checks the keys of a registry lookup: the
// signing key must derive the looked-up AMID.
func registeredKeys(amid protocol.AMID, l *registry.AgentLookup) (peerKeys, error) {
	if protocol.AMID(l.AMID) != amid {
		return peerKeys{}, fmt.Errorf("registry answered for %s, not %s", l.AMID, amid)
	}
	sig, err := protocol.ParseSigningPublicKey(l.SigningPublicKey)
	if err != nil {
		return peerKeys{}, fmt.Errorf("registered signing key: %w", err)
	}
	if !amid.Matches(sig) {
		return peerKeys{}, errors.New("registered signing key does not derive the AMID")
	}
	exch, err := ratchet.ParsePublicKey(l.ExchangePublicKey)
	if err != nil {
		return peerKeys{}, fmt.Errorf("registered exchange key: %w", err)
	}
	return peerKeys{signing: sig, exchange: exch}, nil
}

// Open starts a session with peer (PROTOCOL.md §6.3): it looks the peer up
// in the registry, runs X3DH against a verified prekey bundle, sends a
// signed KNOCK and waits for the peer's signed answer. A REJECT is a
// *RejectedError; no answer within the handshake timeout is
// ErrHandshakeTimeout.
func (m *Manager) Open(ctx context.Context, peer protocol.AMID, opts OpenOptions) (*Session, error) {
	a, st, opts, local, err := m.handshake(ctx, peer, opts)
	if err != nil {
		return nil, err
	}
	s := m.newSession(a.SessionID, peer, true, opts.Intent, opts.Type, opts.TTL, st, local, a.AcceptedCapabilities)
	if opts.firstWaiter != nil {
		// The REQUEST went with the KNOCK as sequence 0.
		s.waiters = []*waiter{opts.firstWaiter}
		s.sendSeq = 1
	}
	if NoCommon(s.agreed) && len(local) > 0 {
		m.log.Warn("no capability in common; the session carries raw messages", "peer", peer.Short(), "session", s.ID(),
			"offered", local, "rejected", a.RejectedCapabilities)
	}
	if err := m.addSession(s); err != nil {
		st.Wipe()
		return nil, err
	}
	m.log.Info("session opened", "peer", peer.Short(), "session", s.ID(), "intent", opts.Intent, "capabilities", s.agreed)
	m.maybeUpgrade(peer, opts.Type)
	if opts.firstWaiter != nil {
		// The responder may answer only once it has decrypted a message of
		// the ratchet: send one now, so that the answer to the optimistic
		// REQUEST need not wait for our next message.
		if err := s.send(ctx, &protocol.CapabilityRequest{OfferedCapabilities: local, ProtocolVersion: protocol.ProtocolVersion}, ""); err != nil {
			m.log.Warn("sending the first ratchet message", "session", s.ID(), "error", err)
		}
	}
	return s, nil
}

// handshake runs the initiator's side of the handshake and returns the
// verified ACCEPT with the started ratchet, and the options and
// capabilities it used.
func (m *Manager) handshake(ctx context.Context, peer protocol.AMID, opts OpenOptions) (*protocol.Accept, *ratchet.State, OpenOptions, []string, error) {
	id := m.identity()
	us := id.AMID()
	if peer == us {
		return nil, nil, opts, nil, errors.New("session: cannot open a session with ourselves")
	}
	if opts.Intent == "" {
		opts.Intent = "*"
	}
	if opts.Type == "" {
		opts.Type = protocol.SessionOneShot
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultSessionTTL
	}
	if opts.TTL < time.Second {
		return nil, nil, opts, nil, fmt.Errorf("session: TTL %v is shorter than a second", opts.TTL)
	}
	local := opts.Capabilities
	if local == nil {
		local = m.offered()
	}

	look, err := m.cfg.Directory.Lookup(ctx, string(peer))
	if err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: looking up %s: %w", peer, err)
	}
	if look.Revoked {
		return nil, nil, opts, nil, fmt.Errorf("session: %s is revoked at the registry", peer)
	}
	keys, err := registeredKeys(peer, look)
	if err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: %s: %w", peer, err)
	}
	enc, err := m.cfg.Directory.FetchPrekeyBundle(ctx, string(peer))
	if err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: fetching the prekey bundle of %s: %w", peer, err)
	}
	bundle, err := decodeBundle(enc)
	if err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: prekey bundle of %s: %w", peer, err)
	}
	if !bundle.IdentityKey.Equal(keys.exchange) {
		return nil, nil, opts, nil, fmt.Errorf("session: prekey bundle of %s names an identity key that is not its registered exchange key", peer)
	}
	ourExchange, err := ratchet.PrivateKeyFromECDH(id.ExchangeKey())
	if err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: our exchange key: %w", err)
	}
	sk, x3dh, err := ratchet.InitiateX3DH(m.rand, ourExchange, bundle, keys.signing)
	if err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: X3DH with %s: %w", peer, err)
	}
	defer sk.Wipe()

	k, err := protocol.NewKnock(us, peer, protocol.KnockRequest{
		Type:     opts.Type,
		TTL:      int64(opts.TTL / time.Second),
		Intent:   protocol.Intent{Capability: opts.Intent, Action: "message"},
		Priority: opts.Priority,
	}, m.now(), m.rand)
	if err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: %w", err)
	}
	k.X3DH = &protocol.X3DHInit{
		IdentityKey:     x3dh.IdentityKey.Array(),
		EphemeralKey:    x3dh.EphemeralKey.Array(),
		SignedPrekeyID:  x3dh.SignedPrekeyID,
		OneTimePrekeyID: x3dh.OneTimePrekeyID,
	}
	k.X3DH.EphemeralSignature = id.Sign(protocol.EphemeralSigningBytes(us, peer, k.X3DH.EphemeralKey))
	k.CertificateChain = m.cfg.CertificateChain
	k.OfferedCapabilities = local
	signed, err := k.SigningBytes()
	if err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: signing the KNOCK: %w", err)
	}
	k.Signature = protocol.B64.EncodeToString(id.Sign(signed))
	wire, err := k.Marshal()
	if err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: encoding the KNOCK: %w", err)
	}

	p := &pendingKnock{knock: k, peerKey: keys.signing, answer: make(chan protocol.Handshake, 1)}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, nil, opts, nil, ErrManagerClosed
	}
	m.pending[k.Nonce] = p
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.pending, k.Nonce)
		m.mu.Unlock()
	}()

	if err := m.send(ctx, peer, protocol.MessageTypeKnock, wire); err != nil {
		return nil, nil, opts, nil, fmt.Errorf("session: sending the KNOCK to %s: %w", peer, err)
	}
	if opts.optimistic != nil {
		if frame, ok := opts.optimistic(sk, k.Nonce); ok {
			if err := m.send(ctx, peer, protocol.MessageTypeOptimistic, []byte(frame)); err != nil {
				return nil, nil, opts, nil, fmt.Errorf("session: sending the optimistic REQUEST to %s: %w", peer, err)
			}
		} else {
			opts.firstWaiter = nil
		}
	}
	timer := time.NewTimer(m.cfg.HandshakeTimeout)
	defer timer.Stop()
	var answer protocol.Handshake
	select {
	case h, ok := <-p.answer:
		if !ok {
			return nil, nil, opts, nil, p.err
		}
		answer = h
	case <-timer.C:
		return nil, nil, opts, nil, fmt.Errorf("%w (%v, peer %s)", ErrHandshakeTimeout, m.cfg.HandshakeTimeout, peer)
	case <-ctx.Done():
		return nil, nil, opts, nil, fmt.Errorf("session: waiting for %s to answer: %w", peer, ctx.Err())
	}
	switch a := answer.(type) {
	case *protocol.Reject:
		return nil, nil, opts, nil, &RejectedError{Peer: peer, Reason: a.Reason}
	case *protocol.Accept:
		st, err := m.accepted(k, a, sk)
		if err != nil {
			return nil, nil, opts, nil, err
		}
		return a, st, opts, local, nil
	}
	return nil, nil, opts, nil, fmt.Errorf("session: unexpected answer %T", answer)
}

// accepted starts the initiator's ratchet from a verified ACCEPT.
func (m *Manager) accepted(k *protocol.Knock, a *protocol.Accept, sk *ratchet.SharedSecret) (*ratchet.State, error) {
	if a.RatchetKey == nil {
		return nil, fmt.Errorf("session: the ACCEPT of %s has no ratchet_key: the peer cannot hold an encrypted session", k.To)
	}
	if err := checkSessionID(a.SessionID); err != nil {
		return nil, fmt.Errorf("session: the ACCEPT of %s: %w", k.To, err)
	}
	remote, err := ratchet.NewPublicKey(a.RatchetKey[:])
	if err != nil {
		return nil, fmt.Errorf("session: the ACCEPT of %s: ratchet_key: %w", k.To, err)
	}
	st, err := ratchet.NewInitiator(sk, m.rand)
	if err != nil {
		return nil, fmt.Errorf("session: starting the ratchet: %w", err)
	}
	if err := st.SetRemoteRatchetKey(remote); err != nil {
		return nil, fmt.Errorf("session: starting the ratchet: %w", err)
	}
	return st, nil
}

// handleAnswer matches an ACCEPT or REJECT with our KNOCK. An answer that
// matches no KNOCK, comes from another agent or fails its checks is
// dropped: only a valid signed answer ends the wait.
func (m *Manager) handleAnswer(in transport.Inbound) {
	h, err := protocol.ParseHandshake([]byte(in.Payload))
	if err != nil {
		m.log.Debug("dropped malformed answer", "from", in.From.Short(), "error", err)
		return
	}
	var nonce, from, to string
	var ts protocol.UnixMillis
	var verify func(ed25519.PublicKey) error
	switch a := h.(type) {
	case *protocol.Accept:
		nonce, from, to, ts, verify = a.KnockNonce, string(a.From), string(a.To), a.Timestamp, a.Verify
	case *protocol.Reject:
		nonce, from, to, ts, verify = a.KnockNonce, string(a.From), string(a.To), a.Timestamp, a.Verify
	default:
		m.log.Debug("dropped answer in an unsupported format", "from", in.From.Short(), "type", fmt.Sprintf("%T", h))
		return
	}
	m.mu.Lock()
	p := m.pending[nonce]
	m.mu.Unlock()
	switch {
	case p == nil:
		m.log.Debug("dropped answer to no KNOCK of ours", "from", in.From.Short())
	case protocol.AMID(from) != p.knock.To || in.From != p.knock.To || protocol.AMID(to) != p.knock.From:
		m.log.Warn("dropped answer with the wrong sender or recipient", "from", in.From.Short(), "claims", from)
	case protocol.CheckKnockFreshness(ts, m.now()) != nil:
		m.log.Warn("dropped stale answer", "from", in.From.Short())
	case verify(p.peerKey) != nil:
		m.log.Warn("dropped answer with a bad signature", "from", in.From.Short())
	default:
		p.deliver(h)
	}
}

// decodeBundle converts the registry's bundle for X3DH.
func decodeBundle(b *registry.PrekeyBundle) (*ratchet.Bundle, error) {
	if b.SignedPrekeyID < 0 {
		return nil, fmt.Errorf("signed_prekey_id %d is negative", b.SignedPrekeyID)
	}
	enc := ratchet.EncodedBundle{
		IdentityKey:           b.IdentityKey,
		SignedPrekey:          b.SignedPrekey,
		SignedPrekeySignature: b.SignedPrekeySignature,
		SignedPrekeyID:        uint32(b.SignedPrekeyID),
	}
	if otk := b.OneTime(); otk != nil {
		if otk.ID < 0 {
			return nil, fmt.Errorf("one-time prekey id %d is negative", otk.ID)
		}
		enc.OneTimePrekey = &ratchet.EncodedPrekey{ID: uint32(otk.ID), Key: otk.Key}
	}
	return enc.Decode()
}

// checkSessionID accepts the ids peers assign: printable, short.
func checkSessionID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("session id must be 1 to 128 characters, got %d", len(id))
	}
	if strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return errors.New("session id holds characters other than printable ASCII")
	}
	return nil
}

// upgrader is a transport that can move a peer's frames to a direct path,
// such as transport.Hybrid.
type upgrader interface {
	Upgrade(ctx context.Context, peer protocol.AMID) error
}

// maybeUpgrade asks the transport, if it can, to move frames to the peer
// onto a direct path, for sessions expected to last (streaming and
// persistent). It runs in the background; failing leaves the session on
// the relay, which the transport logs.
func (m *Manager) maybeUpgrade(peer protocol.AMID, typ protocol.SessionType) {
	u, ok := m.cfg.Transport.(upgrader)
	if !ok || (typ != protocol.SessionStreaming && typ != protocol.SessionPersistent) {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		go func() {
			select {
			case <-m.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := u.Upgrade(ctx, peer); err != nil {
			m.log.Info("session stays on the relay", "peer", peer.Short(), "why", err)
			return
		}
		m.log.Info("session moved to a direct connection", "peer", peer.Short())
	}()
}

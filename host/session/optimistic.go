package session

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Optimistic sends: the first REQUEST of a session travels with its KNOCK,
// as a relay frame of type optimistic_message, instead of waiting a round
// trip for the ACCEPT. The ratchet cannot carry it (the initiator learns
// the responder's ratchet key only from the ACCEPT), so it is sealed with
// XChaCha20-Poly1305 under a key derived from the X3DH secret:
//
//	K = HKDF-SHA256(SK, salt = none, info = "agentmesh-optimistic-v1" || KNOCK nonce)
//
// Only a responder that accepts the KNOCK derives SK, so a REJECT discards
// the message unread; the KNOCK nonce is spent once, so the frame cannot be
// replayed. The frame is
//
//	{"knock_nonce":"<hex>","nonce":"<b64 24 bytes>","ciphertext":"<b64>"}
//
// and the plaintext is the session envelope of the REQUEST, sequence 0.
const (
	optimisticInfo = "agentmesh-optimistic-v1"
	// optimisticWait is how long a responder keeps an optimistic message
	// whose KNOCK it has not yet accepted, or a key for one not yet come.
	optimisticWait = 2 * time.Minute
	// maxOptimisticPending bounds what the responder keeps, and
	// maxOptimisticPerSender what one sender may make it keep.
	maxOptimisticPending   = 1024
	maxOptimisticPerSender = 16
)

type optimisticFrame struct {
	KnockNonce string `json:"knock_nonce"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// optimisticKey derives K from the X3DH secret.
func optimisticKey(sk *ratchet.SharedSecret, knockNonce string) ([]byte, error) {
	return hkdf.Key(sha256.New, sk.Bytes(), nil, optimisticInfo+knockNonce, chacha20poly1305.KeySize)
}

type optimisticID struct {
	from  protocol.AMID
	nonce string
}

// optimisticInbox matches optimistic messages with the sessions their
// KNOCKs opened, whichever arrives first.
type optimisticInbox struct {
	mu      sync.Mutex
	frames  map[optimisticID]optimisticPending
	waiting map[optimisticID]optimisticSession
}

type optimisticPending struct {
	frame optimisticFrame
	at    time.Time
}

type optimisticSession struct {
	s   *Session
	key []byte
	at  time.Time
}

// fromSender counts the messages kept from one sender; o.mu must be held.
func (o *optimisticInbox) fromSender(from protocol.AMID) int {
	n := 0
	for k := range o.frames {
		if k.from == from {
			n++
		}
	}
	return n
}

func (o *optimisticInbox) sweep(now time.Time) {
	for k, p := range o.frames {
		if now.Sub(p.at) > optimisticWait {
			delete(o.frames, k)
		}
	}
	for k, w := range o.waiting {
		if now.Sub(w.at) > optimisticWait {
			clear(w.key)
			delete(o.waiting, k)
		}
	}
}

// meetOptimistic is either half of the matching of an optimistic message
// with its KNOCK's session, for the one that arrives, under k. Holding
// o.mu, after a sweep, it removes and returns what the other half keeps
// under k in theirs if that arrived first; otherwise it keeps mine in ours
// if room, called with o.mu held, says there is room for it. theirs and
// ours are o.frames and o.waiting, which New makes once.
func meetOptimistic[Theirs, Mine any](o *optimisticInbox, k optimisticID, now time.Time,
	theirs map[optimisticID]Theirs, ours map[optimisticID]Mine, mine Mine, room func() bool) (Theirs, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sweep(now)
	if v, ok := theirs[k]; ok {
		delete(theirs, k)
		return v, true
	}
	if room() {
		ours[k] = mine
	}
	var none Theirs
	return none, false
}

// handleOptimistic keeps an optimistic message for its KNOCK, or serves it
// at once when the KNOCK's session is already open.
func (m *Manager) handleOptimistic(ctx context.Context, in transport.Inbound) {
	var f optimisticFrame
	if err := json.Unmarshal([]byte(in.Payload), &f); err != nil || f.KnockNonce == "" ||
		len(f.Nonce) != chacha20poly1305.NonceSizeX || len(f.KnockNonce) > MaxNonceLen {
		m.log.Debug("dropped malformed optimistic message", "from", in.From.Short())
		return
	}
	k := optimisticID{in.From, f.KnockNonce}
	now := m.now()
	o := &m.optimistic
	w, ok := meetOptimistic(o, k, now, o.waiting, o.frames, optimisticPending{f, now}, func() bool {
		_, dup := o.frames[k]
		return !dup && len(o.frames) < maxOptimisticPending && o.fromSender(in.From) < maxOptimisticPerSender
	})
	if ok {
		w.s.serveOptimistic(ctx, w.key, f)
	}
}

// acceptedOptimistic is called by the responder for an accepted KNOCK,
// with K: it serves the KNOCK's optimistic message if it came, or waits for
// it.
func (m *Manager) acceptedOptimistic(ctx context.Context, s *Session, knockNonce string, key []byte) {
	k := optimisticID{s.peer, knockNonce}
	now := m.now()
	o := &m.optimistic
	p, ok := meetOptimistic(o, k, now, o.frames, o.waiting, optimisticSession{s, key, now}, func() bool {
		return len(o.waiting) < maxOptimisticPending
	})
	if ok {
		s.serveOptimistic(ctx, key, p.frame)
	}
}

// serveOptimistic opens an optimistic message and serves its REQUEST as the
// session's first message.
func (s *Session) serveOptimistic(ctx context.Context, key []byte, f optimisticFrame) {
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return
	}
	plain, err := aead.Open(nil, f.Nonce, f.Ciphertext, []byte(f.KnockNonce))
	if err != nil {
		s.m.log.Warn("dropped optimistic message that does not decrypt", "session", s.ID(), "peer", s.peer.Short())
		return
	}
	msg, err := protocol.ParseMessage(plain)
	if err != nil {
		s.m.log.Warn("dropped optimistic message that does not parse", "session", s.ID(), "error", err)
		return
	}
	req, ok := msg.Payload.(*protocol.Request)
	if !ok || msg.Sequence != 0 {
		s.m.log.Warn("dropped optimistic message that is not a first REQUEST", "session", s.ID(), "type", msg.Type)
		return
	}
	if !s.checkSequence(0) {
		return
	}
	s.record(false, msg.Type, plain, s.m.now())
	s.m.log.Debug("serving an optimistic REQUEST", "session", s.ID(), "intent", req.Intent)
	s.serve(ctx, msg, req)
}

// OpenWithRequest opens a session and sends req on it. To a peer on our
// policy's allowlist the REQUEST travels with the KNOCK (an optimistic
// send), saving a round trip; to others it is sent once the session is
// open. It returns the session and the REQUEST's answer, as Request does;
// a REJECT is a *RejectedError and the peer never reads the REQUEST.
func (m *Manager) OpenWithRequest(ctx context.Context, peer protocol.AMID, opts OpenOptions, req *protocol.Request,
	schema string, onStatus func(*protocol.Status)) (*Session, protocol.Payload, error) {
	if err := req.Validate(); err != nil {
		return nil, nil, fmt.Errorf("session: request: %w", err)
	}
	if !slices.Contains(m.Policy().Allowlist, peer) {
		s, err := m.Open(ctx, peer, opts)
		if err != nil {
			return nil, nil, err
		}
		answer, err := s.Request(ctx, req, schema, onStatus)
		return s, answer, err
	}
	w := &waiter{req: req, schema: schema, onStatus: onStatus, result: make(chan protocol.Payload, 1)}
	var sealErr error
	var sent []byte // the REQUEST's envelope, for the transcript
	sentAt := m.now()
	opts.optimistic = func(sk *ratchet.SharedSecret, knockNonce string) (string, bool) {
		key, err := optimisticKey(sk, knockNonce)
		if err != nil {
			sealErr = err
			return "", false
		}
		defer clear(key)
		aead, err := chacha20poly1305.NewX(key)
		if err != nil {
			sealErr = err
			return "", false
		}
		plain, err := (&protocol.Message{Type: protocol.PayloadRequest, SessionID: "optimistic", Sequence: 0,
			Timestamp: sentAt, Payload: req, Schema: schema}).Marshal()
		if err != nil {
			sealErr = err
			return "", false
		}

		f := optimisticFrame{KnockNonce: knockNonce, Nonce: make([]byte, chacha20poly1305.NonceSizeX)}
		if _, err := io.ReadFull(rand.Reader, f.Nonce); err != nil {
			sealErr = err
			return "", false
		}
		f.Ciphertext = aead.Seal(nil, f.Nonce, plain, []byte(knockNonce))
		b, err := json.Marshal(f)
		if err != nil {
			sealErr = err
			return "", false
		}
		sent = plain
		return string(b), true
	}
	opts.firstWaiter = w
	s, err := m.Open(ctx, peer, opts)
	if err != nil {
		return nil, nil, errors.Join(err, sealErr)
	}
	if sent == nil {
		// Sealing failed: send the REQUEST the ordinary way.
		m.log.Warn("optimistic REQUEST not sealed; sending it after the ACCEPT", "error", sealErr)
		answer, err := s.Request(ctx, req, schema, onStatus)
		return s, answer, err
	}
	s.record(true, protocol.PayloadRequest, sent, sentAt)
	select {
	case p, ok := <-w.result:
		if !ok {
			return s, nil, s.Err()
		}
		return s, p, nil
	case <-ctx.Done():
		return s, nil, ctx.Err()
	}
}

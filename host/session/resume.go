package session

import (
	"context"
	"encoding/json"
	"time"

	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// loadSessions resumes the sessions kept on disk. A file that does not
// open is left in place and logged; an expired session, or one unused for
// SessionIdleLimit, is deleted.
func (m *Manager) loadSessions() {
	recs, _, problems := m.files.loadAll()
	for _, p := range problems {
		m.log.Warn("skipped a session file", "error", p)
	}
	now := m.now()
	for _, r := range recs {
		peer := protocol.AMID(r.Peer)
		why := ""
		switch {
		case !r.ExpiresAt.After(now):
			why = "expired"
		case now.Sub(r.LastUsed) > SessionIdleLimit:
			why = "unused for " + SessionIdleLimit.String()
		}
		if why != "" {
			if err := m.files.remove(peer, r.ID); err != nil {
				m.log.Warn("deleting a session file", "session", r.ID, "error", err)
			} else {
				m.log.Info("deleted a session file", "peer", peer.Short(), "session", r.ID, "why", why)
			}
			clear(r.Ratchet)
			continue
		}
		st, err := ratchet.UnmarshalState(r.Ratchet, m.rand)
		clear(r.Ratchet)
		if err != nil {
			m.log.Warn("skipped a session file", "peer", peer.Short(), "session", r.ID, "error", err)
			continue
		}
		s := m.newSession(r.ID, peer, r.Initiator, r.Intent, protocol.SessionType(r.Type), 0, st, r.Local, r.Agreed)
		s.created, s.expires, s.lastUsed = r.CreatedAt, r.ExpiresAt, r.LastUsed
		s.sendSeq, s.recvNext, s.messages = r.SendSeq, r.RecvNext, r.Messages
		m.mu.Lock()
		m.sessions[sessionKey{peer, r.ID}] = s
		m.mu.Unlock()
		if m.cfg.OnSession != nil {
			m.cfg.OnSession(s)
		}
		s.start()
		m.log.Info("session resumed", "peer", peer.Short(), "session", r.ID, "messages", r.Messages)
	}
}

// cleanupLoop ends, every SessionCleanupInterval, the sessions unused for
// SessionIdleLimit (their files are deleted with them).
func (m *Manager) cleanupLoop() {
	defer m.wg.Done()
	t := time.NewTicker(SessionCleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			m.cleanupIdle()
		}
	}
}

// cleanupIdle ends the sessions unused for SessionIdleLimit.
func (m *Manager) cleanupIdle() {
	now := m.now()
	for _, s := range m.Sessions() {
		s.mu.Lock()
		idle := now.Sub(s.lastUsed)
		s.mu.Unlock()
		if idle > SessionIdleLimit {
			m.log.Info("ending an idle session", "peer", s.peer.Short(), "session", s.ID(), "idle", idle.Round(time.Minute))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.Close(ctx, protocol.CloseSessionExpired)
			cancel()
		}
	}
}

// notFound is the plaintext ERROR a host sends, with message_type status,
// for an encrypted message of a session it does not hold: it has no
// ratchet to encrypt it with.
type notFound struct {
	Type      string `json:"type"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	SessionID string `json:"session_id"`
}

// answerNotFound tells peer that we hold no session id, at most once a
// minute per session.
func (m *Manager) answerNotFound(ctx context.Context, peer protocol.AMID, id string) {
	key := sessionKey{peer, id}
	now := m.now()
	m.notFoundMu.Lock()
	if last, ok := m.notFoundSent[key]; ok && now.Sub(last) < time.Minute {
		m.notFoundMu.Unlock()
		return
	}
	if len(m.notFoundSent) > 10000 {
		clear(m.notFoundSent)
	}
	m.notFoundSent[key] = now
	m.notFoundMu.Unlock()
	b, err := json.Marshal(notFound{Type: "error", Code: string(protocol.CodeSessionNotFound),
		Message: "no session " + id + " here", SessionID: id})
	if err != nil {
		return
	}
	if err := m.send(ctx, peer, protocol.MessageTypeStatus, b); err != nil {
		m.log.Warn("sending session_not_found", "to", peer.Short(), "error", err)
	}
}

// handlePlainStatus acts on a plaintext status frame: session_not_found
// for one of our sessions makes us open it again with a new handshake.
// The frame is not authenticated (the peer has no session to sign it
// with), so it can only cost a handshake: the session is replaced only
// once the new handshake succeeds.
func (m *Manager) handlePlainStatus(in transport.Inbound) {
	var nf notFound
	if err := json.Unmarshal([]byte(in.Payload), &nf); err != nil || nf.Type != "error" || nf.Code != string(protocol.CodeSessionNotFound) {
		m.log.Debug("ignored a status frame", "from", in.From.Short())
		return
	}
	m.mu.Lock()
	s := m.sessions[sessionKey{in.From, nf.SessionID}]
	m.mu.Unlock()
	if s == nil {
		return
	}
	if !s.reopening.CompareAndSwap(false, true) {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer s.reopening.Store(false)
		m.reopen(s)
	}()
}

// reopen replaces a session the peer lost with a new one under the same
// Session value: a new KNOCK, then the REQUESTs still waiting for answers
// are sent again on it, in order.
func (m *Manager) reopen(s *Session) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.HandshakeTimeout+30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.mu.Lock()
	ttl := s.expires.Sub(m.now()).Round(time.Second)
	opts := OpenOptions{Intent: s.intent, Type: s.typ, TTL: max(ttl, time.Second), Capabilities: s.local}
	s.mu.Unlock()
	old := s.ID()
	m.log.Info("peer lost the session; opening it again", "peer", s.peer.Short(), "session", old)
	a, st, _, _, err := m.handshake(ctx, s.peer, opts)
	if err != nil {
		m.log.Warn("opening a lost session again failed; ending it", "peer", s.peer.Short(), "session", old, "error", err)
		s.end(protocol.CloseReason(protocol.CodeSessionNotFound), true)
		return
	}
	s.rebind(ctx, a, st)
}

// rebind moves s onto a new handshake's ratchet and id and sends again
// the REQUESTs that wait for answers.
func (s *Session) rebind(ctx context.Context, a *protocol.Accept, st *ratchet.State) {
	m := s.m
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if s.closed != nil {
		s.mu.Unlock()
		st.Wipe()
		return
	}
	old := s.ID()
	m.mu.Lock()
	delete(m.sessions, sessionKey{s.peer, old})
	m.sessions[sessionKey{s.peer, a.SessionID}] = s
	m.mu.Unlock()
	s.id.Store(&a.SessionID)
	m.cache.rename(old, a.SessionID)
	s.ratchet.Wipe()
	s.ratchet = st
	s.initiator = true
	s.sendSeq, s.recvNext = 0, 0
	clear(s.gaps)
	s.held = nil
	s.agreed = append([]string(nil), a.AcceptedCapabilities...)
	var wires [][]byte
	for _, w := range s.waiters {
		plain, err := (&protocol.Message{Type: protocol.PayloadRequest, SessionID: a.SessionID, Sequence: s.sendSeq,
			Timestamp: m.now(), Payload: w.req, Schema: w.schema}).Marshal()
		if err != nil {
			continue
		}
		s.sendSeq++
		if wire, err := s.seal(plain); err == nil {
			wires = append(wires, wire)
		}
	}
	s.touchLocked()
	s.mu.Unlock()
	if m.files != nil {
		if err := m.files.remove(s.peer, old); err != nil {
			m.log.Warn("deleting a session file", "session", old, "error", err)
		}
	}
	m.log.Info("session opened again", "peer", s.peer.Short(), "old", old, "session", a.SessionID, "resent", len(wires))
	for _, w := range wires {
		if err := m.send(ctx, s.peer, protocol.MessageTypeMessage, w); err != nil {
			m.log.Warn("sending a REQUEST again", "session", a.SessionID, "error", err)
		}
	}
}

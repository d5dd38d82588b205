package session

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/host/transport"
	"github.com/agentmesh/agentmesh-go/mesh/certs"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// handleKnock answers a KNOCK (PROTOCOL.md §6.3 step 3, §6.4). A KNOCK that
// fails verification (format, recipient, freshness, signature, nonce, X3DH
// identity key) is dropped without a word: answering would tell a forger
// or a replayer something. A verified KNOCK gets a signed REJECT or ACCEPT.
func (m *Manager) handleKnock(ctx context.Context, in transport.Inbound) {
	h, err := protocol.ParseHandshake([]byte(in.Payload))
	if err != nil {
		m.log.Info("dropped KNOCK", "from", in.From.Short(), "why", "malformed: "+err.Error())
		return
	}
	switch k := h.(type) {
	case *protocol.Knock:
		m.handleTSKnock(ctx, in, k)
	case *protocol.PyKnock:
		m.handlePyKnock(ctx, in, k)
	default:
		m.log.Info("dropped KNOCK", "from", in.From.Short(), "why", fmt.Sprintf("a %T sent as a KNOCK", h))
	}
}

func (m *Manager) handleTSKnock(ctx context.Context, in transport.Inbound, k *protocol.Knock) {
	look, keys, why := m.verifyKnock(ctx, in, k)
	if why != "" {
		m.log.Info("dropped KNOCK", "from", in.From.Short(), "why", why)
		return
	}
	now := m.now()
	if look.Revoked {
		m.reject(ctx, k, protocol.RejectCertificateRevoked, "the registry lists the sender as revoked")
		return
	}
	d := m.eval.Evaluate(KnockFacts{
		From:           k.From,
		Intent:         k.Request.Intent.Capability,
		TTL:            k.Request.TTL,
		Sender:         FactsFromLookup(look),
		ActiveSessions: m.activeSessions(),
	}, now)
	if !d.Accept {
		m.reject(ctx, k, d.Reason, d.Detail)
		return
	}
	if look.Tier == registry.TierVerified || look.Tier == registry.TierOrganization {
		if reason, detail := m.checkCertificate(ctx, k, look, now); reason != "" {
			m.reject(ctx, k, reason, detail)
			return
		}
	}
	m.accept(ctx, k, keys, look)
}

// verifyKnock parses and verifies a KNOCK; why says what failed.
func (m *Manager) verifyKnock(ctx context.Context, in transport.Inbound, k *protocol.Knock) (look *registry.AgentLookup, keys peerKeys, why string) {
	us := m.AMID()
	switch {
	case k.From != in.From:
		return nil, keys, fmt.Sprintf("signed as %s but sent by %s", k.From, in.From)
	case k.To != us:
		return nil, keys, fmt.Sprintf("addressed to %s", k.To)
	case !strings.HasPrefix(k.Version, "agentmesh/"):
		return nil, keys, fmt.Sprintf("version %q", k.Version)
	case k.X3DH == nil:
		return nil, keys, "no x3dh member"
	}
	if err := protocol.CheckKnockFreshness(k.Timestamp, m.now()); err != nil {
		return nil, keys, err.Error()
	}
	look, err := m.cfg.Directory.Lookup(ctx, string(k.From))
	if err != nil {
		return nil, keys, "sender lookup: " + err.Error()
	}
	keys, err = registeredKeys(k.From, look)
	if err != nil {
		return nil, keys, err.Error()
	}
	if err := k.Verify(keys.signing); err != nil {
		return nil, keys, "signature: " + err.Error()
	}
	if err := k.VerifyEphemeral(keys.signing); err != nil {
		return nil, keys, "ephemeral key signature: " + err.Error()
	}
	if k.X3DH.IdentityKey != keys.exchange.Array() {
		return nil, keys, "X3DH identity key is not the sender's registered exchange key"
	}
	// Only a KNOCK the sender really signed spends its nonce, so a forger
	// cannot burn nonces the sender has yet to use.
	fresh, err := m.cfg.Nonces.Seen(k.Nonce, m.now())
	if err != nil {
		return nil, keys, "nonce store: " + err.Error()
	}
	if !fresh {
		return nil, keys, "replayed nonce"
	}
	return look, keys, ""
}

// checkCertificate validates the chain of a verified or organization
// sender, from the KNOCK or else from the registry, and returns the REJECT
// reason when it fails.
func (m *Manager) checkCertificate(ctx context.Context, k *protocol.Knock, look *registry.AgentLookup, now time.Time) (protocol.RejectReason, string) {
	if m.certs == nil {
		return protocol.RejectInvalidCertificate, "no certificate checker configured"
	}
	kk := k
	if len(k.CertificateChain) == 0 {
		c := *k
		c.CertificateChain = look.CertificateChain
		kk = &c
	}
	v, err := m.certs.Check(ctx, kk, now)
	if err != nil {
		if errors.Is(err, ErrCertCheckUnavailable) {
			m.log.Warn("cannot check a certificate chain; refusing", "from", k.From.Short(), "error", err)
		}
		return certs.RejectReason(err), err.Error()
	}
	if string(v.Tier) != string(look.Tier) {
		return protocol.RejectInvalidCertificate, fmt.Sprintf("certificate tier %s, registry tier %s", v.Tier, look.Tier)
	}
	return "", ""
}

// reject sends a signed REJECT.
func (m *Manager) reject(ctx context.Context, k *protocol.Knock, reason protocol.RejectReason, detail string) {
	id := m.identity()
	j := &protocol.Reject{
		Reason:     string(reason),
		Timestamp:  protocol.MillisOf(m.now()),
		From:       id.AMID(),
		To:         k.From,
		KnockNonce: k.Nonce,
	}
	msg, err := j.SigningBytes()
	if err != nil {
		m.log.Error("signing a REJECT", "error", err)
		return
	}
	j.Signature = protocol.B64.EncodeToString(id.Sign(msg))
	wire, err := j.Marshal()
	if err != nil {
		m.log.Error("encoding a REJECT", "error", err)
		return
	}
	m.log.Info("rejected KNOCK", "from", k.From.Short(), "reason", reason, "detail", detail)
	if err := m.send(ctx, k.From, protocol.MessageTypeReject, wire); err != nil {
		m.log.Warn("sending a REJECT", "to", k.From.Short(), "error", err)
	}
}

// accept completes X3DH as responder, opens the session and sends the
// signed ACCEPT. The one-time prekey is consumed only now, once the
// session is certain.
func (m *Manager) accept(ctx context.Context, k *protocol.Knock, keys peerKeys, look *registry.AgentLookup) {
	id := m.identity()
	ourExchange, err := ratchet.PrivateKeyFromECDH(id.ExchangeKey())
	if err != nil {
		m.log.Error("our exchange key", "error", err)
		return
	}
	eph, err := ratchet.NewPublicKey(k.X3DH.EphemeralKey[:])
	if err != nil {
		m.log.Info("dropped KNOCK", "from", k.From.Short(), "why", "ephemeral key: "+err.Error())
		return
	}
	msg := &ratchet.InitiatorMessage{
		IdentityKey:     keys.exchange,
		EphemeralKey:    eph,
		SignedPrekeyID:  k.X3DH.SignedPrekeyID,
		OneTimePrekeyID: k.X3DH.OneTimePrekeyID,
	}
	resp, err := ratchet.RespondX3DH(ourExchange, keys.exchange, msg, m.cfg.Prekeys)
	if err != nil {
		// The sender used a prekey we no longer hold (rotated away, or lost
		// in a restart): tell it, so that it fetches a fresh bundle.
		m.reject(ctx, k, protocol.RejectReason("invalid_prekey"), err.Error())
		return
	}
	defer resp.SharedSecret.Wipe()
	optKey, err := optimisticKey(resp.SharedSecret, k.Nonce)
	if err != nil {
		m.log.Error("deriving the optimistic key", "error", err)
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			clear(optKey)
		}
	}()
	st, err := ratchet.NewResponder(resp.SharedSecret, eph, m.rand)
	if err != nil {
		m.log.Error("starting the ratchet", "error", err)
		return
	}
	if resp.ConsumeOneTimePrekey != nil {
		if err := m.cfg.Prekeys.Consume(*resp.ConsumeOneTimePrekey); err != nil {
			m.log.Error("consuming a one-time prekey; refusing the session", "id", *resp.ConsumeOneTimePrekey, "error", err)
			st.Wipe()
			m.reject(ctx, k, protocol.RejectReason("invalid_prekey"), "one-time prekey could not be consumed")
			return
		}
	}
	local := m.offered()
	accepted, rejected := Negotiate(k.OfferedCapabilities, local)
	if NoCommon(accepted) && len(k.OfferedCapabilities) > 0 {
		m.log.Warn("no capability in common; the session carries raw messages", "peer", k.From.Short(),
			"offered", k.OfferedCapabilities, "ours", local)
	}
	sid, err := newSessionID(m.rand)
	if err != nil {
		m.log.Error("session id", "error", err)
		return
	}
	ttl := time.Duration(k.Request.TTL) * time.Second
	s := m.newSession(sid, k.From, false, k.Request.Intent.Capability, k.Request.Type, ttl, st, local, accepted)
	if err := m.addSession(s); err != nil {
		return
	}
	// An optimistic REQUEST sent with the KNOCK is taken before the ACCEPT
	// leaves, so that it keeps its place (sequence 0) ahead of the
	// initiator's first ratchet message.
	handedOff = true
	m.acceptedOptimistic(ctx, s, k.Nonce, optKey)
	a := &protocol.Accept{
		SessionID:            sid,
		Timestamp:            protocol.MillisOf(m.now()),
		From:                 id.AMID(),
		To:                   k.From,
		KnockNonce:           k.Nonce,
		AcceptedCapabilities: accepted,
		RejectedCapabilities: rejected,
	}
	rk := st.RatchetPublicKey().Array()
	a.RatchetKey = &rk
	signed, err := a.SigningBytes()
	if err == nil {
		a.Signature = protocol.B64.EncodeToString(id.Sign(signed))
	}
	wire, merr := a.Marshal()
	if err != nil || merr != nil {
		m.log.Error("encoding an ACCEPT", "error", errors.Join(err, merr))
		s.end(protocol.CloseError, false)
		return
	}
	if err := m.send(ctx, k.From, protocol.MessageTypeAccept, wire); err != nil {
		m.log.Warn("sending an ACCEPT; closing the session", "to", k.From.Short(), "error", err)
		s.end(protocol.CloseError, false)
		return
	}
	m.log.Info("session accepted", "peer", k.From.Short(), "session", sid, "tier", look.Tier,
		"intent", k.Request.Intent.Capability, "capabilities", accepted)
}

// newSessionID returns "sess_" and 32 random hex digits.
func newSessionID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", err
	}
	return "sess_" + hex.EncodeToString(b[:]), nil
}

// handlePyKnock answers a Python-format KNOCK (PROTOCOL.md §6.2). It is
// verified like ours, with its signature S10 standing in for the nonce it
// lacks, and evaluated with the tier and reputation the registry reports:
// the tier and reputation it claims for itself are ignored. As it carries
// no X3DH message, no encrypted session can come of it, so even a KNOCK the
// policy accepts gets a signed REJECT saying so.
func (m *Manager) handlePyKnock(ctx context.Context, in transport.Inbound, k *protocol.PyKnock) {
	drop := func(why string) { m.log.Info("dropped KNOCK", "from", in.From.Short(), "format", "python", "why", why) }
	now := m.now()
	if k.From.AMID != in.From {
		drop(fmt.Sprintf("signed as %s but sent by %s", k.From.AMID, in.From))
		return
	}
	ts, err := protocol.ParseTimestamp(k.Timestamp)
	if err != nil {
		drop("timestamp: " + err.Error())
		return
	}
	if err := protocol.CheckFreshness(ts, now); err != nil {
		drop(err.Error())
		return
	}
	look, err := m.cfg.Directory.Lookup(ctx, string(k.From.AMID))
	if err != nil {
		drop("sender lookup: " + err.Error())
		return
	}
	keys, err := registeredKeys(k.From.AMID, look)
	if err != nil {
		drop(err.Error())
		return
	}
	if err := k.Verify(keys.signing, m.AMID()); err != nil {
		drop("signature: " + err.Error())
		return
	}
	if fresh, err := m.cfg.Nonces.Seen("py:"+k.Signature, now); err != nil || !fresh {
		drop("replayed signature")
		return
	}
	intent := k.Intent.Category
	if k.Intent.Subcategory != "" {
		intent += "/" + k.Intent.Subcategory
	}
	reason, detail := protocol.RejectReason("x3dh_required"),
		"an encrypted session needs a TS-format KNOCK with an x3dh member"
	if look.Revoked {
		reason, detail = protocol.RejectCertificateRevoked, "the registry lists the sender as revoked"
	} else if d := m.eval.Evaluate(KnockFacts{
		From: k.From.AMID, Intent: intent, TTL: k.SessionRequest.TTLSeconds,
		Sender: FactsFromLookup(look), ActiveSessions: m.activeSessions(),
	}, now); !d.Accept {
		reason, detail = d.Reason, d.Detail
	}
	id := m.identity()
	j := &protocol.PyReject{Reason: string(reason), Timestamp: protocol.FormatPYTimestamp(now)}
	signed, err := j.SigningBytes(id.AMID(), k.From.AMID)
	if err != nil {
		m.log.Error("signing a REJECT", "error", err)
		return
	}
	j.Signature = protocol.B64.EncodeToString(id.Sign(signed))
	wire, err := j.Marshal()
	if err != nil {
		m.log.Error("encoding a REJECT", "error", err)
		return
	}
	m.log.Info("rejected KNOCK", "from", k.From.AMID.Short(), "format", "python", "reason", reason, "detail", detail,
		"claimed_tier", k.From.Tier, "registry_tier", look.Tier)
	if err := m.send(ctx, k.From.AMID, protocol.MessageTypeReject, wire); err != nil {
		m.log.Warn("sending a REJECT", "to", k.From.AMID.Short(), "error", err)
	}
}

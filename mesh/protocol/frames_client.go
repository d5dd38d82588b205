package protocol

// Frames clients send (PROTOCOL.md §5.2, §5.3, §5.7), including the
// signalling frames ICEOffer, ICEAnswer and P2PEstablished, which the relay
// also forwards. Each frame has its wire form for decoding, a validate
// method shared by decoding and MarshalFrame, and an appendFields method
// that writes the members after "type", each with its leading comma.

import "strconv"

// Connect is the first frame of a connection (PROTOCOL.md §5.2). The relay
// verifies Signature over the exact Timestamp string, so both are kept as
// sent.
type Connect struct {
	// Protocol is ProtocolVersion or LegacyProtocolVersion; other values
	// decode, so that the relay can answer PROTOCOL_MISMATCH.
	Protocol string
	// AMID is the sender's address; the relay checks that it is the AMID
	// of PublicKey.
	AMID AMID
	// PublicKey is the Ed25519 public key as sent: base64, with or without
	// the "ed25519:" prefix.
	PublicKey string
	// Signature is base64 of the Ed25519 signature over Timestamp.
	Signature string
	// Timestamp is the signed RFC 3339 timestamp, as sent.
	Timestamp string
	// P2PCapable says whether the client can take direct connections; false
	// when absent.
	P2PCapable bool
}

// FrameType returns "connect".
func (Connect) FrameType() string { return "connect" }

func (Connect) clientFrame() {}

type connectWire struct {
	frameHead
	Protocol   *string `json:"protocol"`
	AMID       *string `json:"amid"`
	PublicKey  *string `json:"public_key"`
	Signature  *string `json:"signature"`
	Timestamp  *string `json:"timestamp"`
	P2PCapable *bool   `json:"p2p_capable"`
}

func (Connect) fromWire(w *connectWire, r *fieldReader) Connect {
	f := Connect{
		Protocol:  r.str("protocol", w.Protocol),
		AMID:      AMID(r.str("amid", w.AMID)),
		PublicKey: r.str("public_key", w.PublicKey),
		Signature: r.str("signature", w.Signature),
		Timestamp: r.str("timestamp", w.Timestamp),
	}
	if w.P2PCapable != nil {
		f.P2PCapable = *w.P2PCapable
	}
	return f
}

func (f Connect) validate() error {
	return firstErr(checkAMID("amid", f.AMID), checkFrameTimestamp("timestamp", f.Timestamp))
}

func (f Connect) appendFields(dst []byte) []byte {
	dst = appendStrMember(dst, "protocol", f.Protocol)
	dst = appendStrMember(dst, "amid", string(f.AMID))
	dst = appendStrMember(dst, "public_key", f.PublicKey)
	dst = appendStrMember(dst, "signature", f.Signature)
	dst = appendStrMember(dst, "timestamp", f.Timestamp)
	return strconv.AppendBool(append(dst, `,"p2p_capable":`...), f.P2PCapable)
}

// Send asks the relay to deliver EncryptedPayload to To.
type Send struct {
	// To is the recipient.
	To AMID
	// EncryptedPayload is opaque to the relay: an EncryptedEnvelope for
	// MessageTypeMessage, a KNOCK/ACCEPT/REJECT or CLOSE object otherwise.
	EncryptedPayload string
	// MessageType says how to read EncryptedPayload.
	MessageType MessageType
	// ICECandidates is omitted from the frame when nil.
	ICECandidates []ICECandidate
}

// FrameType returns "send".
func (Send) FrameType() string { return "send" }

func (Send) clientFrame() {}

type sendWire struct {
	frameHead
	To               *string   `json:"to"`
	EncryptedPayload *string   `json:"encrypted_payload"`
	MessageType      *string   `json:"message_type"`
	ICECandidates    []iceWire `json:"ice_candidates"`
}

func (Send) fromWire(w *sendWire, r *fieldReader) Send {
	return Send{
		To:               AMID(r.str("to", w.To)),
		EncryptedPayload: r.str("encrypted_payload", w.EncryptedPayload),
		MessageType:      MessageType(r.str("message_type", w.MessageType)),
		ICECandidates:    iceFromWire("ice_candidates", w.ICECandidates, r),
	}
}

func (f Send) validate() error {
	return firstErr(checkAMID("to", f.To), checkMessageType("message_type", f.MessageType),
		checkCandidates("ice_candidates", f.ICECandidates))
}

func (f Send) appendFields(dst []byte) []byte {
	dst = appendStrMember(dst, "to", string(f.To))
	dst = appendStrMember(dst, "encrypted_payload", f.EncryptedPayload)
	dst = appendStrMember(dst, "message_type", string(f.MessageType))
	if f.ICECandidates != nil {
		dst = appendCandidates(dst, "ice_candidates", f.ICECandidates)
	}
	return dst
}

// Presence sets the sender's presence status. The relay does not reply.
type Presence struct {
	// Status is the new status.
	Status PresenceStatus
}

// FrameType returns "presence".
func (Presence) FrameType() string { return "presence" }

func (Presence) clientFrame() {}

type presenceWire struct {
	frameHead
	Status *string `json:"status"`
}

func (Presence) fromWire(w *presenceWire, r *fieldReader) Presence {
	return Presence{Status: PresenceStatus(r.str("status", w.Status))}
}

func (f Presence) validate() error { return checkPresence("status", f.Status) }

func (f Presence) appendFields(dst []byte) []byte {
	return appendStrMember(dst, "status", string(f.Status))
}

// PresenceQuery asks for an agent's presence; the relay answers with a
// PresenceResponse.
type PresenceQuery struct {
	// AMID is the agent asked about.
	AMID AMID
}

// FrameType returns "presence_query".
func (PresenceQuery) FrameType() string { return "presence_query" }

func (PresenceQuery) clientFrame() {}

type amidWire struct {
	frameHead
	AMID *string `json:"amid"`
}

func (PresenceQuery) fromWire(w *amidWire, r *fieldReader) PresenceQuery {
	return PresenceQuery{AMID: AMID(r.str("amid", w.AMID))}
}

func (f PresenceQuery) validate() error { return checkAMID("amid", f.AMID) }

func (f PresenceQuery) appendFields(dst []byte) []byte {
	return appendStrMember(dst, "amid", string(f.AMID))
}

// ICEOffer carries a WebRTC offer. The relay forwards it with To rewritten
// to the sender's AMID.
type ICEOffer struct {
	// To is the peer; in a frame from the relay, the sender.
	To AMID
	// SDP is the session description, opaque to the relay.
	SDP string
	// Candidates is always written as an array, empty when nil.
	Candidates []ICECandidate
}

// FrameType returns "ice_offer".
func (ICEOffer) FrameType() string { return "ice_offer" }

func (ICEOffer) clientFrame() {}

func (ICEOffer) serverFrame() {}

type iceSignalWire struct {
	frameHead
	To         *string   `json:"to"`
	SDP        *string   `json:"sdp"`
	Candidates []iceWire `json:"candidates"`
}

func (ICEOffer) fromWire(w *iceSignalWire, r *fieldReader) ICEOffer {
	to, sdp, c := w.convert(r)
	return ICEOffer{To: to, SDP: sdp, Candidates: c}
}

func (w *iceSignalWire) convert(r *fieldReader) (AMID, string, []ICECandidate) {
	to := AMID(r.str("to", w.To))
	sdp := r.str("sdp", w.SDP)
	if w.Candidates == nil {
		r.missing("candidates")
	}
	return to, sdp, iceFromWire("candidates", w.Candidates, r)
}

func appendICESignal(dst []byte, to AMID, sdp string, cs []ICECandidate) []byte {
	dst = appendStrMember(dst, "to", string(to))
	dst = appendStrMember(dst, "sdp", sdp)
	return appendCandidates(dst, "candidates", cs)
}

func (f ICEOffer) validate() error {
	return firstErr(checkAMID("to", f.To), checkCandidates("candidates", f.Candidates))
}

func (f ICEOffer) appendFields(dst []byte) []byte {
	return appendICESignal(dst, f.To, f.SDP, f.Candidates)
}

// ICEAnswer carries a WebRTC answer, forwarded like ICEOffer.
type ICEAnswer struct {
	// To is the peer; in a frame from the relay, the sender.
	To AMID
	// SDP is the session description, opaque to the relay.
	SDP string
	// Candidates is always written as an array, empty when nil.
	Candidates []ICECandidate
}

// FrameType returns "ice_answer".
func (ICEAnswer) FrameType() string { return "ice_answer" }

func (ICEAnswer) clientFrame() {}

func (ICEAnswer) serverFrame() {}

func (ICEAnswer) fromWire(w *iceSignalWire, r *fieldReader) ICEAnswer {
	to, sdp, c := w.convert(r)
	return ICEAnswer{To: to, SDP: sdp, Candidates: c}
}

func (f ICEAnswer) validate() error {
	return firstErr(checkAMID("to", f.To), checkCandidates("candidates", f.Candidates))
}

func (f ICEAnswer) appendFields(dst []byte) []byte {
	return appendICESignal(dst, f.To, f.SDP, f.Candidates)
}

// P2PEstablished tells Peer that a direct connection is up. Its tag is
// "p2_p_established", the original relay's spelling. When the relay
// forwards it, Peer is the sender.
type P2PEstablished struct {
	// Peer is the other end of the direct connection.
	Peer AMID
}

func (P2PEstablished) FrameType() string { return "p2_p_established" }

func (P2PEstablished) clientFrame() {}

func (P2PEstablished) serverFrame() {}

type peerWire struct {
	frameHead
	Peer *string `json:"peer"`
}

func (P2PEstablished) fromWire(w *peerWire, r *fieldReader) P2PEstablished {
	return P2PEstablished{Peer: AMID(r.str("peer", w.Peer))}
}

func (f P2PEstablished) validate() error { return checkAMID("peer", f.Peer) }

func (f P2PEstablished) appendFields(dst []byte) []byte {
	return appendStrMember(dst, "peer", string(f.Peer))
}

// Ping is the optional JSON keepalive; the relay answers with Pong.
type Ping struct {
	// Timestamp is an RFC 3339 timestamp.
	Timestamp string
}

// FrameType returns "ping".
func (Ping) FrameType() string { return "ping" }

func (Ping) clientFrame() {}

type timestampWire struct {
	frameHead
	Timestamp *string `json:"timestamp"`
}

func (Ping) fromWire(w *timestampWire, r *fieldReader) Ping {
	return Ping{Timestamp: r.str("timestamp", w.Timestamp)}
}

func (f Ping) validate() error { return checkFrameTimestamp("timestamp", f.Timestamp) }

func (f Ping) appendFields(dst []byte) []byte {
	return appendStrMember(dst, "timestamp", f.Timestamp)
}

// Disconnect unregisters the sender.
type Disconnect struct {
	// Reason is free text.
	Reason string
}

// FrameType returns "disconnect".
func (Disconnect) FrameType() string { return "disconnect" }

func (Disconnect) clientFrame() {}

type reasonWire struct {
	frameHead
	Reason *string `json:"reason"`
}

func (Disconnect) fromWire(w *reasonWire, r *fieldReader) Disconnect {
	return Disconnect{Reason: r.str("reason", w.Reason)}
}

func (Disconnect) validate() error { return nil }

func (f Disconnect) appendFields(dst []byte) []byte {
	return appendStrMember(dst, "reason", f.Reason)
}

// GetPendingMessages asks for stored messages (PROTOCOL.md §5.7). The
// original relay ignores it and pushes stored messages as Receive frames.
type GetPendingMessages struct{}

// FrameType returns "get_pending_messages".
func (GetPendingMessages) FrameType() string { return "get_pending_messages" }

func (GetPendingMessages) clientFrame() {}

type emptyWire struct {
	frameHead
}

func (GetPendingMessages) fromWire(*emptyWire, *fieldReader) GetPendingMessages {
	return GetPendingMessages{}
}

func (GetPendingMessages) validate() error { return nil }

func (GetPendingMessages) appendFields(dst []byte) []byte { return dst }

// Ack acknowledges one stored message (PROTOCOL.md §5.7).
type Ack struct {
	// MessageID is the PendingMessage.ID acknowledged.
	MessageID string
}

// FrameType returns "ack".
func (Ack) FrameType() string { return "ack" }

func (Ack) clientFrame() {}

type ackWire struct {
	frameHead
	MessageID *string `json:"message_id"`
	Reason    *string `json:"reason"`
}

func (Ack) fromWire(w *ackWire, r *fieldReader) Ack {
	return Ack{MessageID: r.str("message_id", w.MessageID)}
}

func (Ack) validate() error { return nil }

func (f Ack) appendFields(dst []byte) []byte {
	return appendStrMember(dst, "message_id", f.MessageID)
}

// Nack reports that a stored message could not be processed (PROTOCOL.md
// §5.7).
type Nack struct {
	// MessageID is the PendingMessage.ID refused.
	MessageID string
	// Reason is "processing_failed" or an error message.
	Reason string
}

// FrameType returns "nack".
func (Nack) FrameType() string { return "nack" }

func (Nack) clientFrame() {}

func (Nack) fromWire(w *ackWire, r *fieldReader) Nack {
	return Nack{MessageID: r.str("message_id", w.MessageID), Reason: r.str("reason", w.Reason)}
}

func (Nack) validate() error { return nil }

func (f Nack) appendFields(dst []byte) []byte {
	dst = appendStrMember(dst, "message_id", f.MessageID)
	return appendStrMember(dst, "reason", f.Reason)
}

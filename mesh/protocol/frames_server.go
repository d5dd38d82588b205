package protocol

// Frames only the relay sends (PROTOCOL.md §5.2, §5.4, §5.7). Each frame
// has its wire form for decoding, a validate method shared by decoding and
// MarshalFrame, and an appendFields method that writes the members after
// "type", each with its leading comma.

import "strconv"

// Connected confirms authentication.
type Connected struct {
	// SessionID is the relay's connection id, unrelated to E2E sessions.
	SessionID string
	// PendingMessages is the number of stored messages that follow.
	PendingMessages int
}

// FrameType returns "connected".
func (Connected) FrameType() string { return "connected" }

func (Connected) serverFrame() {}

type connectedWire struct {
	frameHead
	SessionID       *string `json:"session_id"`
	PendingMessages *int    `json:"pending_messages"`
}

func (Connected) fromWire(w *connectedWire, r *fieldReader) Connected {
	f := Connected{SessionID: r.str("session_id", w.SessionID)}
	if w.PendingMessages == nil {
		r.missing("pending_messages")
	} else {
		f.PendingMessages = *w.PendingMessages
	}
	return f
}

func (f Connected) validate() error {
	if f.PendingMessages < 0 {
		return fieldErr(frameWhat, "pending_messages", "must not be negative")
	}
	return nil
}

func (f Connected) appendFields(dst []byte) []byte {
	dst = appendStrMember(dst, "session_id", f.SessionID)
	return appendIntMember(dst, "pending_messages", int64(f.PendingMessages))
}

// Receive delivers a Send from another agent.
type Receive struct {
	// From is the sender.
	From AMID
	// EncryptedPayload is the sender's payload, as sent.
	EncryptedPayload string
	// MessageType says how to read EncryptedPayload.
	MessageType MessageType
	// Timestamp is when the relay accepted the message, RFC 3339.
	Timestamp string
	// ICECandidates is omitted from the frame when nil.
	ICECandidates []ICECandidate
	// MessageID names a message the relay stored for later delivery; the
	// recipient acknowledges it with Ack once it has handled it, and the
	// relay delivers it again until then. Empty (and omitted from the
	// frame) for a message delivered live.
	MessageID string
}

// FrameType returns "receive".
func (Receive) FrameType() string { return "receive" }

func (Receive) serverFrame() {}

type receiveWire struct {
	frameHead
	From             *string   `json:"from"`
	EncryptedPayload *string   `json:"encrypted_payload"`
	MessageType      *string   `json:"message_type"`
	Timestamp        *string   `json:"timestamp"`
	ICECandidates    []iceWire `json:"ice_candidates"`
	MessageID        *string   `json:"message_id"`
}

func (Receive) fromWire(w *receiveWire, r *fieldReader) Receive {
	return Receive{
		From:             AMID(r.str("from", w.From)),
		EncryptedPayload: r.str("encrypted_payload", w.EncryptedPayload),
		MessageType:      MessageType(r.str("message_type", w.MessageType)),
		Timestamp:        r.str("timestamp", w.Timestamp),
		ICECandidates:    iceFromWire("ice_candidates", w.ICECandidates, r),
		MessageID:        deref(w.MessageID),
	}
}

func (f Receive) validate() error {
	return firstErr(checkAMID("from", f.From), checkMessageType("message_type", f.MessageType),
		checkFrameTimestamp("timestamp", f.Timestamp), checkCandidates("ice_candidates", f.ICECandidates))
}

func (f Receive) appendFields(dst []byte) []byte {
	dst = appendStrMember(dst, "from", string(f.From))
	dst = appendStrMember(dst, "encrypted_payload", f.EncryptedPayload)
	dst = appendStrMember(dst, "message_type", string(f.MessageType))
	dst = appendStrMember(dst, "timestamp", f.Timestamp)
	if f.ICECandidates != nil {
		dst = appendCandidates(dst, "ice_candidates", f.ICECandidates)
	}
	if f.MessageID != "" {
		dst = appendStrMember(dst, "message_id", f.MessageID)
	}
	return dst
}

// PresenceResponse answers a PresenceQuery.
type PresenceResponse struct {
	// AMID is the agent asked about.
	AMID AMID
	// Status is PresenceOffline for an agent that is not connected.
	Status PresenceStatus
	// LastSeen is an RFC 3339 timestamp, omitted from the frame when empty.
	LastSeen string
}

// FrameType returns "presence_response".
func (PresenceResponse) FrameType() string { return "presence_response" }

func (PresenceResponse) serverFrame() {}

type presenceResponseWire struct {
	frameHead
	AMID     *string `json:"amid"`
	Status   *string `json:"status"`
	LastSeen *string `json:"last_seen"`
}

func (PresenceResponse) fromWire(w *presenceResponseWire, r *fieldReader) PresenceResponse {
	f := PresenceResponse{
		AMID:   AMID(r.str("amid", w.AMID)),
		Status: PresenceStatus(r.str("status", w.Status)),
	}
	if w.LastSeen != nil {
		f.LastSeen = *w.LastSeen
	}
	return f
}

func (f PresenceResponse) validate() error {
	if err := firstErr(checkAMID("amid", f.AMID), checkPresence("status", f.Status)); err != nil {
		return err
	}
	if f.LastSeen != "" {
		return checkFrameTimestamp("last_seen", f.LastSeen)
	}
	return nil
}

func (f PresenceResponse) appendFields(dst []byte) []byte {
	dst = appendStrMember(dst, "amid", string(f.AMID))
	dst = appendStrMember(dst, "status", string(f.Status))
	if f.LastSeen != "" {
		dst = appendStrMember(dst, "last_seen", f.LastSeen)
	}
	return dst
}

// ErrorFrame reports a relay error. Codes outside the known set decode.
type ErrorFrame struct {
	// Code is machine-readable; see RelayErrorCode.
	Code RelayErrorCode
	// Message is human-readable.
	Message string
	// RetryAfterSeconds is omitted from the frame when nil.
	RetryAfterSeconds *int
}

// FrameType returns "error".
func (ErrorFrame) FrameType() string { return "error" }

func (ErrorFrame) serverFrame() {}

type errorFrameWire struct {
	frameHead
	Code              *string `json:"code"`
	Message           *string `json:"message"`
	RetryAfterSeconds *int    `json:"retry_after_seconds"`
}

func (ErrorFrame) fromWire(w *errorFrameWire, r *fieldReader) ErrorFrame {
	return ErrorFrame{
		Code:              RelayErrorCode(r.str("code", w.Code)),
		Message:           r.str("message", w.Message),
		RetryAfterSeconds: w.RetryAfterSeconds,
	}
}

func (f ErrorFrame) validate() error {
	if f.RetryAfterSeconds != nil && *f.RetryAfterSeconds < 0 {
		return fieldErr(frameWhat, "retry_after_seconds", "must not be negative")
	}
	return nil
}

func (f ErrorFrame) appendFields(dst []byte) []byte {
	dst = appendStrMember(dst, "code", string(f.Code))
	dst = appendStrMember(dst, "message", f.Message)
	if f.RetryAfterSeconds != nil {
		dst = appendIntMember(dst, "retry_after_seconds", int64(*f.RetryAfterSeconds))
	}
	return dst
}

// Pong answers a Ping with the same instant.
type Pong struct {
	// Timestamp is the Ping's instant, as the relay renders it.
	Timestamp string
}

// FrameType returns "pong".
func (Pong) FrameType() string { return "pong" }

func (Pong) serverFrame() {}

func (Pong) fromWire(w *timestampWire, r *fieldReader) Pong {
	return Pong{Timestamp: r.str("timestamp", w.Timestamp)}
}

func (f Pong) validate() error { return checkFrameTimestamp("timestamp", f.Timestamp) }

func (f Pong) appendFields(dst []byte) []byte {
	return appendStrMember(dst, "timestamp", f.Timestamp)
}

// PendingMessages answers GetPendingMessages (PROTOCOL.md §5.7).
type PendingMessages struct {
	// Messages are oldest first; always written as an array.
	Messages []PendingMessage
}

// PendingMessage is one stored message in PendingMessages.
type PendingMessage struct {
	// ID names the message in Ack and Nack.
	ID string
	// From is the sender.
	From AMID
	// EncryptedPayload is the sender's payload, as sent.
	EncryptedPayload string
	// MessageType says how to read EncryptedPayload.
	MessageType MessageType
	// Timestamp is when the relay stored the message.
	Timestamp UnixMillis
}

// FrameType returns "pending_messages".
func (PendingMessages) FrameType() string { return "pending_messages" }

func (PendingMessages) serverFrame() {}

type pendingWire struct {
	frameHead
	Messages []struct {
		ID               *string `json:"id"`
		From             *string `json:"from"`
		EncryptedPayload *string `json:"encrypted_payload"`
		MessageType      *string `json:"message_type"`
		Timestamp        *int64  `json:"timestamp"`
	} `json:"messages"`
}

func (PendingMessages) fromWire(w *pendingWire, r *fieldReader) PendingMessages {
	if w.Messages == nil {
		r.missing("messages")
		return PendingMessages{}
	}
	out := make([]PendingMessage, len(w.Messages))
	for i, m := range w.Messages {
		p := "messages[" + strconv.Itoa(i) + "]."
		out[i] = PendingMessage{
			ID:               r.str(p+"id", m.ID),
			From:             AMID(r.str(p+"from", m.From)),
			EncryptedPayload: r.str(p+"encrypted_payload", m.EncryptedPayload),
			MessageType:      MessageType(r.str(p+"message_type", m.MessageType)),
		}
		if m.Timestamp == nil {
			r.missing(p + "timestamp")
		} else {
			out[i].Timestamp = UnixMillis(*m.Timestamp)
		}
	}
	return PendingMessages{Messages: out}
}

func (f PendingMessages) validate() error {
	for i, m := range f.Messages {
		p := "messages[" + strconv.Itoa(i) + "]."
		if err := firstErr(checkAMID(p+"from", m.From), checkMessageType(p+"message_type", m.MessageType)); err != nil {
			return err
		}
	}
	return nil
}

func (f PendingMessages) appendFields(dst []byte) []byte {
	dst = append(dst, `,"messages":[`...)
	for i, m := range f.Messages {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = AppendJSString(dst, m.ID)
		dst = appendStrMember(dst, "from", string(m.From))
		dst = appendStrMember(dst, "encrypted_payload", m.EncryptedPayload)
		dst = appendStrMember(dst, "message_type", string(m.MessageType))
		dst = appendIntMember(dst, "timestamp", int64(m.Timestamp))
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

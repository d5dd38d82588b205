package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Message is the plaintext inside the Double Ratchet (PROTOCOL.md §7.1
// [PROPOSED], DESIGN.md §4.7), the JSON object
//
//	{"type":…,"session_id":…,"sequence":…,"timestamp":…,"payload":{"type":…,…},"schema":…}
//
// with schema optional. The payload repeats the envelope's type.
type Message struct {
	// Type is the payload's type; empty for an opaque application message.
	Type      PayloadType
	SessionID string
	// Sequence counts messages per session and direction from 0.
	Sequence uint64
	// Timestamp is when the message was written. It is sent with
	// microsecond precision, in the form Python's isoformat writes.
	Timestamp time.Time
	Payload   Payload
	// Schema is the id of the schema the payload follows, if any.
	Schema string
	// Warnings lists what ParseMessage accepted but found unusual, for the
	// caller to log. Marshal ignores it.
	Warnings []string
}

type messageWire struct {
	Type      *string         `json:"type"`
	SessionID *string         `json:"session_id"`
	Sequence  *uint64         `json:"sequence"`
	Timestamp *string         `json:"timestamp"`
	Payload   json.RawMessage `json:"payload"`
	Schema    *string         `json:"schema"`
}

// ParseMessage decodes the plaintext of a ratchet message.
//
// A full envelope needs type, session_id, sequence, timestamp and an
// object payload, decoded by ParsePayload; a payload of an unknown type
// becomes a *Generic and a warning (PROTOCOL.md §7.3). Two other shapes are
// accepted, each with a warning in Message.Warnings:
//
//   - an object with neither "type" nor "payload", which is what the TS SDK
//     sends: an opaque application message, returned with an empty Type and
//     a *Generic payload holding the whole object;
//   - an object with "type" but no "payload", the flat form of the Python
//     client and the [TECH] model: returned with that Type and a *Generic
//     payload holding the whole object.
//
// Errors are *DecodeError values naming the member. Input larger than
// MaxFrameSize is rejected before parsing.
func ParseMessage(data []byte) (*Message, error) {
	if len(data) > MaxFrameSize {
		return nil, fieldErr(msgWhat, "", "%d bytes, limit %d", len(data), MaxFrameSize)
	}
	var probe struct {
		Type    json.RawMessage `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, jsonDecodeErr(msgWhat, "", err)
	}
	if !isJSONObject(data) { // json.Unmarshal accepts null for a struct
		return nil, fieldErr(msgWhat, "", "must be a JSON object, got null")
	}
	hasType, hasPayload := rawValue(probe.Type) != nil, rawValue(probe.Payload) != nil
	switch {
	case !hasType && !hasPayload:
		return &Message{
			Payload:  &Generic{Raw: bytes.Clone(data)},
			Warnings: []string{"no type or payload member: kept as an opaque application message"},
		}, nil
	case !hasPayload:
		var typ string
		if err := json.Unmarshal(probe.Type, &typ); err != nil {
			return nil, jsonDecodeErr(msgWhat, "type", err)
		}
		return &Message{
			Type:     PayloadType(typ),
			Payload:  &Generic{Type: typ, Raw: bytes.Clone(data)},
			Warnings: []string{fmt.Sprintf("no payload member: flat %q message kept as generic", truncateForError(typ))},
		}, nil
	}

	var w messageWire
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, jsonDecodeErr(msgWhat, "", err)
	}
	r := fieldReader{what: msgWhat}
	m := &Message{
		Type:      PayloadType(r.str("type", w.Type)),
		SessionID: r.str("session_id", w.SessionID),
	}
	if w.Sequence == nil {
		r.missing("sequence")
	} else {
		m.Sequence = *w.Sequence
	}
	ts := r.str("timestamp", w.Timestamp)
	if r.err != nil {
		return nil, r.err
	}
	if m.Type == "" {
		return nil, fieldErr(msgWhat, "type", "empty")
	}
	t, derr := parseMessageTime("timestamp", ts)
	if derr != nil {
		return nil, derr
	}
	m.Timestamp = t
	if w.Schema != nil {
		m.Schema = *w.Schema
	}
	var err error
	if m.Payload, err = decodePayload(w.Payload, m.Type); err != nil {
		return nil, err
	}
	if !m.Type.Known() {
		m.Warnings = append(m.Warnings, fmt.Sprintf("unknown payload type %q: processed as generic", truncateForError(string(m.Type))))
	}
	return m, nil
}

// Marshal encodes the message, after checking the payload with its
// Validate method. Type may be left empty; it is taken from the payload.
// An opaque message (a *Generic payload with an empty Type) is written as
// its raw object. HTML characters are not escaped.
func (m *Message) Marshal() ([]byte, error) {
	if m.Payload == nil {
		return nil, fieldErr(msgWhat, "payload", "missing")
	}
	if g, ok := m.Payload.(*Generic); ok && g.Type == "" {
		if m.Type != "" {
			return nil, fieldErr(msgWhat, "type", "%q set on an opaque message", truncateForError(string(m.Type)))
		}
		if err := g.Validate(); err != nil {
			return nil, err
		}
		return bytes.Clone(g.Raw), nil
	}
	typ := m.Payload.PayloadType()
	if m.Type != "" && m.Type != typ {
		return nil, fieldErr(msgWhat, "type", "%q does not match the payload type %q",
			truncateForError(string(m.Type)), truncateForError(string(typ)))
	}
	if err := m.Payload.Validate(); err != nil {
		return nil, err
	}
	return marshalNoEscape(struct {
		Type      PayloadType `json:"type"`
		SessionID string      `json:"session_id"`
		Sequence  uint64      `json:"sequence"`
		Timestamp string      `json:"timestamp"`
		Payload   Payload     `json:"payload"`
		Schema    string      `json:"schema,omitempty"`
	}{typ, m.SessionID, m.Sequence, FormatPYTimestamp(m.Timestamp), m.Payload, m.Schema})
}

// parseMessageTime reads a timestamp of a message or payload. Its UTC form
// must have a four-digit year, so that Marshal can write it back.
func parseMessageTime(field, s string) (time.Time, *DecodeError) {
	t, err := ParseTimestamp(s)
	if err != nil {
		return time.Time{}, fieldErr(msgWhat, field, "%v", err)
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fieldErr(msgWhat, field, "year %d in UTC is out of range", y)
	}
	return t, nil
}

package transcript

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Direction says which way a message went.
type Direction string

// The two directions.
const (
	Sent     Direction = "sent"
	Received Direction = "received"
)

// Valid reports whether d is Sent or Received.
func (d Direction) Valid() bool { return d == Sent || d == Received }

// Entry is one message of a session as the transcript keeps it. Its JSON
// form is the plaintext of a record and a line of Store.Export.
type Entry struct {
	// Direction says whether the agent sent or received the message.
	Direction Direction `json:"direction"`
	// Peer is the other agent of the session.
	Peer protocol.AMID `json:"peer_amid"`
	// SessionID is the session the message belongs to. Append fills it
	// in when it is empty.
	SessionID string `json:"session_id"`
	// Type is the message's type, such as "request" or "response".
	Type string `json:"message_type"`
	// Message is the message itself, as JSON. Append stores it compacted.
	Message json.RawMessage `json:"message"`
	// Time is when the message was sent or received. Append uses the
	// current time when it is zero.
	Time time.Time `json:"timestamp"`
}

// Limits of one entry.
const (
	// DefaultMaxMessageSize is the default of Options.MaxMessageSize.
	DefaultMaxMessageSize = 1 << 20
	// maxTypeLen bounds Entry.Type, in bytes.
	maxTypeLen = 64
	// maxEntryOverhead bounds the JSON of an entry around its message:
	// member names, the AMID, session id and type, escaped, and the
	// timestamp.
	maxEntryOverhead = 2 << 10
)

// timeFormat writes Entry.Time.
const timeFormat = time.RFC3339Nano

// appendEntry checks e, which Append was given for session id, and appends
// its JSON form to dst. A zero e.Time becomes now.
func appendEntry(dst *bytes.Buffer, e *Entry, id string, now time.Time, maxMessage int) error {
	switch {
	case !e.Direction.Valid():
		return fmt.Errorf("direction %q is neither %q nor %q", e.Direction, Sent, Received)
	case e.SessionID != "" && e.SessionID != id:
		return fmt.Errorf("entry names session %q, not %q", e.SessionID, id)
	case e.Type == "" || len(e.Type) > maxTypeLen || !printableASCII(e.Type):
		return fmt.Errorf("message type must be 1 to %d printable ASCII characters", maxTypeLen)
	case len(e.Message) == 0:
		return errors.New("message is empty")
	case len(e.Message) > maxMessage:
		return fmt.Errorf("message of %d bytes is larger than the limit of %d", len(e.Message), maxMessage)
	}
	if _, err := protocol.ParseAMID(string(e.Peer)); err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	t := e.Time
	if t.IsZero() {
		t = now
	}

	var scratch [64]byte
	dst.WriteString(`{"direction":`)
	dst.Write(protocol.AppendJSString(scratch[:0], string(e.Direction)))
	dst.WriteString(`,"peer_amid":`)
	dst.Write(protocol.AppendJSString(scratch[:0], string(e.Peer)))
	dst.WriteString(`,"session_id":`)
	dst.Write(protocol.AppendJSString(scratch[:0], id))
	dst.WriteString(`,"message_type":`)
	dst.Write(protocol.AppendJSString(scratch[:0], e.Type))
	dst.WriteString(`,"message":`)
	if err := json.Compact(dst, e.Message); err != nil {
		return fmt.Errorf("message is not valid JSON: %w", err)
	}
	dst.WriteString(`,"timestamp":"`)
	dst.Write(t.UTC().AppendFormat(scratch[:0], timeFormat))
	dst.WriteString(`"}`)
	return nil
}

// parseEntry reads the plaintext of a record (or a plaintext line of an
// older version) of session id's transcript. Members it does not know are
// ignored, so that entries written by later versions still read.
func parseEntry(data []byte, id string) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, entryErr(err)
	}
	if !e.Direction.Valid() {
		return Entry{}, fmt.Errorf("entry: direction is neither %q nor %q", Sent, Received)
	}
	switch e.SessionID {
	case "":
		e.SessionID = id
	case id:
	default:
		return Entry{}, fmt.Errorf("entry: names session %q, not %q", e.SessionID, id)
	}
	return e, nil
}

// entryErr describes why an entry did not decode without quoting its
// content, which the errors of encoding/json and time may do.
func entryErr(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var parse *time.ParseError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("entry: not valid JSON at offset %d", syntax.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Errorf("entry: a JSON %s, not an object", typ.Value)
	case errors.As(err, &typ):
		return fmt.Errorf("entry: member %s holds a JSON %s", typ.Field, typ.Value)
	case errors.As(err, &parse):
		return errors.New("entry: member timestamp is not an RFC 3339 time")
	}
	return errors.New("entry: not a transcript entry")
}

// printableASCII reports whether s holds only characters from '!' to '~'.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

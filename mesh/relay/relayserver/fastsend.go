package relayserver

import (
	"bytes"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// The exact parts of a send frame as protocol.MarshalFrame and the
// JavaScript clients write it, without ice_candidates.
var (
	sendHead    = []byte(`{"type":"send","to":"`)
	sendPayload = []byte(`","encrypted_payload":"`)
	sendType    = []byte(`","message_type":"`)
	sendTail    = []byte(`"}`)
)

// parseSendFast decodes the common form of a send frame without
// encoding/json: the members type, to, encrypted_payload and message_type
// in that order, no whitespace, and string values of printable ASCII
// without escapes. It reports false for anything else, which
// protocol.ParseClientFrame then decodes; what it accepts, it decodes as
// ParseClientFrame does, with the same checks.
func parseSendFast(data []byte) (protocol.Send, bool) {
	if len(data) > protocol.MaxFrameSize || len(data) < len(sendHead)+len(sendTail) || !bytes.HasPrefix(data, sendHead) || !bytes.HasSuffix(data, sendTail) {
		return protocol.Send{}, false
	}
	rest := data[len(sendHead) : len(data)-len(sendTail)]
	to, rest, ok := plainString(rest, sendPayload)
	if !ok {
		return protocol.Send{}, false
	}
	payload, rest, ok := plainString(rest, sendType)
	if !ok {
		return protocol.Send{}, false
	}
	mt, ok := knownMessageType(rest)
	if !ok {
		return protocol.Send{}, false
	}
	if _, err := protocol.ParseAMID(to); err != nil {
		return protocol.Send{}, false
	}
	return protocol.Send{To: protocol.AMID(to), EncryptedPayload: payload, MessageType: mt}, true
}

// messageTypes are the message types a send may carry, to match without
// allocating.
var messageTypes = []protocol.MessageType{
	protocol.MessageTypeMessage, protocol.MessageTypeKnock, protocol.MessageTypeAccept,
	protocol.MessageTypeReject, protocol.MessageTypeClose, protocol.MessageTypeStatus,
	protocol.MessageTypeOptimistic,
}

// knownMessageType returns the valid message type spelled by b.
func knownMessageType(b []byte) (protocol.MessageType, bool) {
	for _, t := range messageTypes {
		if string(b) == string(t) && t.Valid() {
			return t, true
		}
	}
	return "", false
}

// plainString reads characters that JSON leaves as they are (printable
// ASCII but '"' and '\') up to sep, or to the end when sep is nil, and
// returns them and what follows sep.
func plainString(b, sep []byte) (string, []byte, bool) {
	end := len(b)
	if sep != nil {
		end = bytes.Index(b, sep)
		if end < 0 {
			return "", nil, false
		}
	}
	for _, ch := range b[:end] {
		if ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' {
			return "", nil, false
		}
	}
	return string(b[:end]), b[end+len(sep):], true
}

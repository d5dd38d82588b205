package transport

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Frames from one host to one peer carry a sequence number per direction,
// counted from 0 over both paths. On the data channel it is explicit; on
// the relay it is implicit, counted from the last control frame. Two
// control frames travel over the relay, in order with the peer's frames,
// as message_type "status" with a payload that no session frame can have:
//
//	"amtp/1 switch N": the sender's next frame, numbered N, goes over the
//	data channel; every relay frame before this one comes before it.
//	"amtp/1 resume N": the sender's following relay frames are numbered
//	N, N+1, …; it left the data channel, and resends there every frame
//	the receiver had not acknowledged.
//
// A third travels the same way but names no frame: "amtp/1 restart 0"
// asks the peer that offered the data channel's connection to restart ICE,
// because the sender's time-limited TURN credentials are about to expire
// and only an offer lets it gather with fresh ones.
//
// The receiver delivers frames of a peer in sequence order once it has
// seen a switch, dropping numbers it already delivered.
const controlPrefix = "amtp/1 "

// controlKind names a relay control frame.
type controlKind string

const (
	controlSwitch  controlKind = "switch"
	controlResume  controlKind = "resume"
	controlRestart controlKind = "restart"
)

func controlPayload(k controlKind, seq uint64) string {
	return controlPrefix + string(k) + " " + strconv.FormatUint(seq, 10)
}

// parseControl reads a relay control frame; ok is false for any other
// frame.
func parseControl(typ protocol.MessageType, payload string) (k controlKind, seq uint64, ok bool) {
	if typ != protocol.MessageTypeStatus || !strings.HasPrefix(payload, controlPrefix) {
		return "", 0, false
	}
	kind, num, found := strings.Cut(strings.TrimPrefix(payload, controlPrefix), " ")
	switch controlKind(kind) {
	case controlSwitch, controlResume, controlRestart:
	default:
		return "", 0, false
	}
	if !found {
		return "", 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return controlKind(kind), n, true
}

// Data channel messages are binary: one kind byte, then
//
//	'D' seq(8) typeLen(1) type payload — a frame, the relay's message_type
//	    and encrypted_payload byte for byte
//	'A' seq(8) — every frame up to seq was delivered
//	'P' id(8) / 'O' id(8) — ping and its pong
const (
	dcData = 'D'
	dcAck  = 'A'
	dcPing = 'P'
	dcPong = 'O'
)

func encodeData(seq uint64, typ protocol.MessageType, payload string) []byte {
	b := make([]byte, 0, 10+len(typ)+len(payload))
	b = append(b, dcData)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, byte(len(typ)))
	b = append(b, typ...)
	return append(b, payload...)
}

func encodeNum(kind byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kind}, n)
}

var errBadDCMessage = errors.New("malformed data channel message")

// decodeDC reads a data channel message.
func decodeDC(b []byte) (kind byte, n uint64, typ protocol.MessageType, payload string, err error) {
	if len(b) < 9 {
		return 0, 0, "", "", fmt.Errorf("%w: %d bytes", errBadDCMessage, len(b))
	}
	kind, n = b[0], binary.BigEndian.Uint64(b[1:9])
	switch kind {
	case dcAck, dcPing, dcPong:
		return kind, n, "", "", nil
	case dcData:
		if len(b) < 10 || len(b) < 10+int(b[9]) {
			return 0, 0, "", "", fmt.Errorf("%w: short frame", errBadDCMessage)
		}
		tl := int(b[9])
		typ = protocol.MessageType(b[10 : 10+tl])
		if !typ.Valid() {
			return 0, 0, "", "", fmt.Errorf("%w: message type %q", errBadDCMessage, typ)
		}
		return kind, n, typ, string(b[10+tl:]), nil
	}
	return 0, 0, "", "", fmt.Errorf("%w: kind %q", errBadDCMessage, kind)
}

// sdpMessage is the SDP as ice_offer and ice_answer carry it: the
// {"sdp","type"} object of PROTOCOL.md §5.9, plus the attempt it belongs
// to and, in an offer, whether the offerer uses relay candidates only.
type sdpMessage struct {
	SDP     string `json:"sdp"`
	Type    string `json:"type"`
	Attempt string `json:"agentmesh_attempt,omitempty"`
}

func marshalSDP(d sdpMessage) string {
	b, _ := json.Marshal(d) // strings only: cannot fail
	return string(b)
}

func parseSDP(s string) (sdpMessage, error) {
	var d sdpMessage
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return d, fmt.Errorf("sdp: %w", err)
	}
	if d.SDP == "" || (d.Type != "offer" && d.Type != "answer") {
		return d, fmt.Errorf("sdp: type %q with %d bytes of SDP", d.Type, len(d.SDP))
	}
	return d, nil
}

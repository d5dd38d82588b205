package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Relay limits and versions (PROTOCOL.md §0.5, §5).
const (
	// LegacyProtocolVersion is the older protocol string the relay still
	// accepts in CONNECT.
	LegacyProtocolVersion = "agentmesh/0.1"
	// MaxFrameSize bounds one relay frame, and any message decoded by this
	// package from a frame. Larger input is rejected before parsing.
	MaxFrameSize = 1 << 20
	// MaxMessageSize is the relay's declared limit on encrypted_payload,
	// 65 536 bytes. The original relay declares but does not enforce it.
	MaxMessageSize = 65536
)

// ErrUnknownFrameType is wrapped by ParseClientFrame and ParseServerFrame
// for a well-formed frame whose type they do not know, or which travels
// only in the other direction. The relay ignores such frames silently.
var ErrUnknownFrameType = errors.New("unknown relay frame type")

// A Frame is any relay frame. FrameType returns its "type" tag.
type Frame interface {
	FrameType() string
}

// ClientFrame is a frame a client sends to the relay (PROTOCOL.md §5.2,
// §5.3, §5.7): Connect, Send, Presence, PresenceQuery, ICEOffer, ICEAnswer,
// P2PEstablished, Ping, Disconnect, GetPendingMessages, Ack or Nack.
// Consume it with a type switch.
type ClientFrame interface {
	FrameType() string
	clientFrame()
}

// ServerFrame is a frame the relay sends to a client (PROTOCOL.md §5.2,
// §5.4, §5.7): Connected, Receive, PresenceResponse, ErrorFrame, Pong,
// ICEOffer, ICEAnswer, P2PEstablished or PendingMessages. Consume it with
// a type switch.
type ServerFrame interface {
	FrameType() string
	serverFrame()
}

// ICECandidate is one ICE candidate carried in signalling frames. Its JSON
// form is {"candidate":…,"sdp_mid":…|null,"sdp_mline_index":…|null}.
type ICECandidate struct {
	// Candidate is the SDP candidate line.
	Candidate string
	// SDPMid is the media stream id, nil when absent.
	SDPMid *string
	// SDPMLineIndex is the m-line index, nil when absent.
	SDPMLineIndex *int
}

// wireFrame is implemented by every frame type of this package.
type wireFrame interface {
	Frame
	validate() error
	appendFields(dst []byte) []byte
}

var (
	_ ClientFrame = Connect{}
	_ ClientFrame = Nack{}
	_ ServerFrame = Connected{}
	_ ServerFrame = PendingMessages{}
	_ ClientFrame = ICEOffer{}
	_ ServerFrame = ICEOffer{}
	_ wireFrame   = Connect{}
	_ wireFrame   = Send{}
	_ wireFrame   = Presence{}
	_ wireFrame   = PresenceQuery{}
	_ wireFrame   = ICEOffer{}
	_ wireFrame   = ICEAnswer{}
	_ wireFrame   = P2PEstablished{}
	_ wireFrame   = Ping{}
	_ wireFrame   = Disconnect{}
	_ wireFrame   = GetPendingMessages{}
	_ wireFrame   = Ack{}
	_ wireFrame   = Nack{}
	_ wireFrame   = Connected{}
	_ wireFrame   = Receive{}
	_ wireFrame   = PresenceResponse{}
	_ wireFrame   = ErrorFrame{}
	_ wireFrame   = Pong{}
	_ wireFrame   = PendingMessages{}
)

const frameWhat = "relay frame"

// MarshalFrame encodes a frame as the relay writes it: "type" first, then
// the members in the order of PROTOCOL.md §5.2–§5.4, optional members
// omitted or written as null as the relay does, strings escaped as
// serde_json and JSON.stringify escape them. f may be a frame value or a
// non-nil pointer to one. It refuses frames that ParseClientFrame or
// ParseServerFrame would reject, and frames larger than MaxFrameSize.
func MarshalFrame(f Frame) ([]byte, error) {
	if f == nil {
		return nil, errors.New("marshal relay frame: nil frame")
	}
	if v := reflect.ValueOf(f); v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, fmt.Errorf("marshal relay frame: nil %T", f)
		}
		if elem, ok := v.Elem().Interface().(Frame); ok {
			f = elem
		}
	}
	w, ok := f.(wireFrame)
	if !ok {
		return nil, fmt.Errorf("marshal relay frame: unsupported frame type %T", f)
	}
	if err := w.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+frameSizeHint(w))
	b = append(b, `{"type":"`...)
	b = append(b, w.FrameType()...)
	b = append(b, '"')
	b = w.appendFields(b)
	b = append(b, '}')
	if len(b) > MaxFrameSize {
		return nil, fieldErr(frameWhat, "", "%d bytes, limit %d", len(b), MaxFrameSize)
	}
	return b, nil
}

func frameSizeHint(f wireFrame) int {
	switch f := f.(type) {
	case Send:
		return len(f.EncryptedPayload) + 128
	case Receive:
		return len(f.EncryptedPayload) + 160
	case Connect:
		return 256
	}
	return 64
}

// ParseClientFrame decodes a frame sent by a client. Member types, required
// members, enum values and AMIDs are checked, and every error is a
// *DecodeError naming the member. Unknown members are ignored; as in
// encoding/json, member names match case-insensitively and the last of
// duplicate members wins. A frame with an unknown type, or one only the
// relay sends, yields an error wrapping ErrUnknownFrameType.
func ParseClientFrame(data []byte) (ClientFrame, error) {
	return parseFrame(data, parseClientTag)
}

// ParseServerFrame decodes a frame sent by the relay, with the checks and
// error rules of ParseClientFrame.
func ParseServerFrame(data []byte) (ServerFrame, error) {
	return parseFrame(data, parseServerTag)
}

// parseFrame finds the frame's type and decodes it with parseTag. Frames
// written by JSON.stringify or the relay start with {"type":"…", which lets
// the common case decode the input once; anything else, or a frame whose
// decoded type turns out different (a later duplicate), takes the slow
// path that reads the type with encoding/json first.
func parseFrame[F any](data []byte, parseTag func(data []byte, tag string) (F, error)) (F, error) {
	var zero F
	if len(data) > MaxFrameSize {
		return zero, fieldErr(frameWhat, "", "%d bytes, limit %d", len(data), MaxFrameSize)
	}
	if tag, ok := quickFrameTag(data); ok {
		f, err := parseTag(data, tag)
		if err != errSlowPath && !errors.Is(err, ErrUnknownFrameType) {
			return f, err
		}
	}
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return zero, jsonDecodeErr(frameWhat, "", err)
	}
	if head.Type == nil {
		return zero, fieldErr(frameWhat, "type", "missing")
	}
	f, err := parseTag(data, *head.Type)
	if err == errSlowPath {
		// Only a frame without members beyond its type gets here.
		return zero, fieldErr(frameWhat, "type", "inconsistent")
	}
	return f, err
}

// errSlowPath asks parseFrame to read the type with encoding/json.
var errSlowPath = errors.New("frame type needs a full decode")

// quickFrameTag returns the type of a frame that starts with {"type":"
// and a plain string. The input is not validated.
func quickFrameTag(data []byte) (string, bool) {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(data, []byte(prefix)) {
		return "", false
	}
	rest := data[len(prefix):]
	for i, c := range rest[:min(len(rest), 32)] {
		switch {
		case c == '"':
			return string(rest[:i]), true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return "", false
		}
	}
	return "", false
}

func parseClientTag(data []byte, tag string) (ClientFrame, error) {
	var f ClientFrame
	var err error
	switch tag {
	case "connect":
		f, err = decodeFrame(data, tag, Connect.fromWire)
	case "send":
		f, err = decodeFrame(data, tag, Send.fromWire)
	case "presence":
		f, err = decodeFrame(data, tag, Presence.fromWire)
	case "presence_query":
		f, err = decodeFrame(data, tag, PresenceQuery.fromWire)
	case "ice_offer":
		f, err = decodeFrame(data, tag, ICEOffer.fromWire)
	case "ice_answer":
		f, err = decodeFrame(data, tag, ICEAnswer.fromWire)
	case "p2_p_established":
		f, err = decodeFrame(data, tag, P2PEstablished.fromWire)
	case "ping":
		f, err = decodeFrame(data, tag, Ping.fromWire)
	case "disconnect":
		f, err = decodeFrame(data, tag, Disconnect.fromWire)
	case "get_pending_messages":
		f, err = decodeFrame(data, tag, GetPendingMessages.fromWire)
	case "ack":
		f, err = decodeFrame(data, tag, Ack.fromWire)
	case "nack":
		f, err = decodeFrame(data, tag, Nack.fromWire)
	default:
		return nil, unknownFrame(tag, "client")
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

func parseServerTag(data []byte, tag string) (ServerFrame, error) {
	var f ServerFrame
	var err error
	switch tag {
	case "connected":
		f, err = decodeFrame(data, tag, Connected.fromWire)
	case "receive":
		f, err = decodeFrame(data, tag, Receive.fromWire)
	case "presence_response":
		f, err = decodeFrame(data, tag, PresenceResponse.fromWire)
	case "error":
		f, err = decodeFrame(data, tag, ErrorFrame.fromWire)
	case "pong":
		f, err = decodeFrame(data, tag, Pong.fromWire)
	case "ice_offer":
		f, err = decodeFrame(data, tag, ICEOffer.fromWire)
	case "ice_answer":
		f, err = decodeFrame(data, tag, ICEAnswer.fromWire)
	case "p2_p_established":
		f, err = decodeFrame(data, tag, P2PEstablished.fromWire)
	case "pending_messages":
		f, err = decodeFrame(data, tag, PendingMessages.fromWire)
	default:
		return nil, unknownFrame(tag, "server")
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

func unknownFrame(tag, side string) error {
	return &DecodeError{
		What:    frameWhat,
		Field:   "type",
		Problem: fmt.Sprintf("%q is not a %s frame type", truncateForError(tag), side),
		Err:     ErrUnknownFrameType,
	}
}

// frameHead is embedded in every wire form: the decoded type, which must
// match the one the frame was dispatched on.
type frameHead struct {
	Type *string `json:"type"`
}

func (h *frameHead) head() *frameHead { return h }

// decodeFrame decodes data into the wire form W and converts it, checking
// the values, into the frame F. It returns errSlowPath when the decoded
// type differs from tag.
func decodeFrame[W any, PW interface {
	*W
	head() *frameHead
}, F wireFrame](data []byte, tag string, convert func(F, PW, *fieldReader) F) (F, error) {
	var w W
	var zero F
	err := json.Unmarshal(data, &w)
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return zero, jsonDecodeErr(frameWhat, "", err)
	}
	// encoding/json decodes what it can after a type error, so the type
	// is known here even then.
	if t := PW(&w).head().Type; t == nil || *t != tag {
		return zero, errSlowPath
	}
	if err != nil {
		de := jsonDecodeErr(frameWhat, "", err)
		// encoding/json puts the embedded struct's name in the path.
		de.Field = strings.TrimPrefix(de.Field, "frameHead.")
		return zero, de
	}
	r := fieldReader{what: frameWhat}
	f := convert(zero, &w, &r)
	if r.err != nil {
		return zero, r.err
	}
	if err := f.validate(); err != nil {
		return zero, err
	}
	return f, nil
}

// fieldReader checks that required members of a decoded wire struct are
// present, remembering the first one that is not.
type fieldReader struct {
	what string
	err  *DecodeError
}

func (r *fieldReader) missing(field string) {
	if r.err == nil {
		r.err = fieldErr(r.what, field, "missing")
	}
}

// str returns *p, noting an error when p is nil (absent or null).
func (r *fieldReader) str(field string, p *string) string {
	if p == nil {
		r.missing(field)
		return ""
	}
	return *p
}

// deref returns *p, or "" for an absent or null member.
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// jsonDecodeErr turns an encoding/json error into a *DecodeError naming the
// member; prefix is the dotted path of the decoded value.
func jsonDecodeErr(what, prefix string, err error) *DecodeError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &DecodeError{What: what, Field: prefix, Problem: fmt.Sprintf("malformed JSON at offset %d: %v", syn.Offset, syn), Err: err}
	case errors.As(err, &typ):
		field := typ.Field
		if prefix != "" {
			field = joinPath(prefix, field)
		}
		got := typ.Value
		if len(got) > 48 {
			got = got[:48] + "…"
		}
		return &DecodeError{What: what, Field: field, Problem: fmt.Sprintf("must be %s, got JSON %s", jsonWant(typ.Type), got), Err: err}
	default:
		return &DecodeError{What: what, Field: prefix, Problem: err.Error(), Err: err}
	}
}

func joinPath(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	}
	return prefix + "." + field
}

// jsonWant names the JSON a Go type decodes from.
func jsonWant(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer in range"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer in range"
	case reflect.Float32, reflect.Float64:
		return "a finite number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	}
	return "a different JSON value"
}

// Wire forms use pointers to tell absent (or null) members from empty ones.

type iceWire struct {
	Candidate     *string `json:"candidate"`
	SDPMid        *string `json:"sdp_mid"`
	SDPMLineIndex *int    `json:"sdp_mline_index"`
}

func iceFromWire(field string, w []iceWire, r *fieldReader) []ICECandidate {
	if w == nil {
		return nil
	}
	out := make([]ICECandidate, len(w))
	for i, c := range w {
		out[i] = ICECandidate{
			Candidate:     r.str(field+"["+strconv.Itoa(i)+"].candidate", c.Candidate),
			SDPMid:        c.SDPMid,
			SDPMLineIndex: c.SDPMLineIndex,
		}
	}
	return out
}

// Value checks, shared by decoding and MarshalFrame.

func checkAMID(field string, a AMID) error {
	if _, err := ParseAMID(string(a)); err != nil {
		return fieldErr(frameWhat, field, "%v", err)
	}
	return nil
}

func checkMessageType(field string, t MessageType) error {
	if !t.Valid() {
		return fieldErr(frameWhat, field, "%q is not one of %s", truncateForError(string(t)), quoteSet(messageTypes))
	}
	return nil
}

func checkPresence(field string, s PresenceStatus) error {
	if !s.Valid() {
		return fieldErr(frameWhat, field, "%q is not one of %s", truncateForError(string(s)), quoteSet(presenceStatuses))
	}
	return nil
}

func checkFrameTimestamp(field, s string) error {
	if _, err := ParseTimestamp(s); err != nil {
		return fieldErr(frameWhat, field, "%v", err)
	}
	return nil
}

func checkCandidates(field string, cs []ICECandidate) error {
	for i, c := range cs {
		if c.SDPMLineIndex != nil && *c.SDPMLineIndex < 0 {
			return fieldErr(frameWhat, field+"["+strconv.Itoa(i)+"].sdp_mline_index", "must not be negative")
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Encoding helpers. Each writes one member with its leading comma.

func appendStrMember(dst []byte, key, val string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return AppendJSString(dst, val)
}

func appendIntMember(dst []byte, key string, v int64) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return strconv.AppendInt(dst, v, 10)
}

func appendCandidates(dst []byte, key string, cs []ICECandidate) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, `":[`...)
	for i, c := range cs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"candidate":`...)
		dst = AppendJSString(dst, c.Candidate)
		dst = append(dst, `,"sdp_mid":`...)
		if c.SDPMid == nil {
			dst = append(dst, "null"...)
		} else {
			dst = AppendJSString(dst, *c.SDPMid)
		}
		dst = append(dst, `,"sdp_mline_index":`...)
		if c.SDPMLineIndex == nil {
			dst = append(dst, "null"...)
		} else {
			dst = strconv.AppendInt(dst, int64(*c.SDPMLineIndex), 10)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

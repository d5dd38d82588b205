package protocol

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Limits of the encrypted envelope.
const (
	// MaxSessionIDLen bounds session_id, in characters.
	MaxSessionIDLen = 128
	// MinCiphertextLen is the shortest valid ciphertext: a 24-byte nonce and
	// a 16-byte Poly1305 tag around an empty plaintext (PROTOCOL.md §4.1).
	MinCiphertextLen = 24 + 16
)

// RatchetHeader is the Double Ratchet header of one message (PROTOCOL.md
// §4.4): the sender's current ratchet public key, the length of its
// previous sending chain and the message's number in the current one.
type RatchetHeader struct {
	// DHPublicKey is the sender's X25519 ratchet public key.
	DHPublicKey [32]byte
	// PN is the number of messages in the sender's previous sending chain.
	PN uint32
	// N is the message number in the current sending chain.
	N uint32
}

// Key returns the key under which a skipped message key for this header is
// stored: base64 of the ratchet key, a colon and N (PROTOCOL.md §4.2). The
// TS SDK persists its skipped keys under the same strings.
func (h RatchetHeader) Key() string {
	b := make([]byte, 0, 44+1+10)
	b = B64.AppendEncode(b, h.DHPublicKey[:])
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(h.N), 10)
	return string(b)
}

// EncryptedEnvelope is the encrypted_payload of a relay frame with
// message_type "message" (PROTOCOL.md §4.6): a ratchet header and
// nonce||secretbox, written as the JS-compact JSON
//
//	{"session_id":"…","type":"encrypted","header":{"dh_public_key":"<b64>","pn":0,"n":0},"ciphertext":"<b64>"}
//
// SessionID is the sender's own id for the session; TS peers use a
// different id on each side, so receivers route by peer AMID, not by it.
type EncryptedEnvelope struct {
	SessionID string
	Header    RatchetHeader
	// Ciphertext is the 24-byte nonce followed by the secretbox output.
	Ciphertext []byte
}

const (
	envWhat         = "encrypted envelope"
	envFixedPrefix  = `{"session_id":`
	envTypeAndDH    = `,"type":"encrypted","header":{"dh_public_key":"`
	envPN           = `","pn":`
	envN            = `,"n":`
	envCiphertext   = `},"ciphertext":"`
	envFixedSuffix  = `"}`
	envFixedLen     = len(envFixedPrefix) + len(envTypeAndDH) + len(envPN) + len(envN) + len(envCiphertext) + len(envFixedSuffix)
	envDHEncodedLen = 44 // base64 of 32 bytes, padded
)

// Marshal returns the envelope in the exact bytes the TS SDK writes. It does
// not check the values; ParseEncryptedEnvelope does.
func (e *EncryptedEnvelope) Marshal() []byte {
	return e.AppendMarshal(nil)
}

// AppendMarshal appends the envelope, as Marshal writes it, to dst and
// returns the extended buffer. It allocates at most once, to grow dst.
func (e *EncryptedEnvelope) AppendMarshal(dst []byte) []byte {
	// Two quotes, up to six bytes per escaped session-id byte, two uint32s.
	n := envFixedLen + 2 + 6*len(e.SessionID) + envDHEncodedLen + 2*10 + B64.EncodedLen(len(e.Ciphertext))
	dst = slices.Grow(dst, n)
	dst = append(dst, envFixedPrefix...)
	dst = AppendJSString(dst, e.SessionID)
	dst = append(dst, envTypeAndDH...)
	dst = B64.AppendEncode(dst, e.Header.DHPublicKey[:])
	dst = append(dst, envPN...)
	dst = strconv.AppendUint(dst, uint64(e.Header.PN), 10)
	dst = append(dst, envN...)
	dst = strconv.AppendUint(dst, uint64(e.Header.N), 10)
	dst = append(dst, envCiphertext...)
	dst = B64.AppendEncode(dst, e.Ciphertext)
	return append(dst, envFixedSuffix...)
}

// ParseEncryptedEnvelope decodes an encrypted envelope. Members may come in
// any order, with any whitespace; unknown members are skipped and duplicate
// members are rejected. It checks that type is "encrypted", that session_id
// is 1 to MaxSessionIDLen characters of valid UTF-8, that dh_public_key is
// padded base64 of 32 bytes (an "x25519:" prefix is tolerated), that pn and
// n are integers in [0, 2³²−1] written without fraction or exponent, and
// that ciphertext is padded base64 of at least MinCiphertextLen bytes.
// Input larger than MaxFrameSize is rejected before parsing.
func ParseEncryptedEnvelope(data []byte) (*EncryptedEnvelope, error) {
	if len(data) > MaxFrameSize {
		return nil, fieldErr(envWhat, "", "%d bytes, limit %d", len(data), MaxFrameSize)
	}
	r := envReader{data: data}
	if c := r.peek(); c != '{' && r.pos < len(data) {
		return nil, fieldErr(envWhat, "", "must be a JSON object, got %s", envKind(c))
	}
	e := new(EncryptedEnvelope)
	var seen memberSet
	err := r.object(func(key []byte) error {
		switch string(key) {
		case "session_id":
			if err := seen.add("session_id", 0); err != nil {
				return err
			}
			s, err := r.stringMember("session_id")
			if err != nil {
				return err
			}
			if err := checkSessionIDValue(s); err != nil {
				return err
			}
			e.SessionID = string(s)
		case "type":
			if err := seen.add("type", 1); err != nil {
				return err
			}
			s, err := r.stringMember("type")
			if err != nil {
				return err
			}
			if string(s) != "encrypted" {
				return fieldErr(envWhat, "type", "want \"encrypted\", got %q", truncateForError(string(s)))
			}
		case "header":
			if err := seen.add("header", 2); err != nil {
				return err
			}
			return r.header(&e.Header)
		case "ciphertext":
			if err := seen.add("ciphertext", 3); err != nil {
				return err
			}
			s, err := r.stringMember("ciphertext")
			if err != nil {
				return err
			}
			ct, err := decodeCiphertext(s, r.escaped)
			if err != nil {
				return err
			}
			e.Ciphertext = ct
		default:
			return r.skipValue(0)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.skipSpace(); r.pos != len(data) {
		return nil, r.syntaxErr("end of input")
	}
	if err := seen.require("session_id", "type", "header", "ciphertext"); err != nil {
		return nil, err
	}
	return e, nil
}

// memberSet records which known members of an object have been read.
type memberSet uint8

func (m *memberSet) add(field string, bit uint) error {
	if *m&(1<<bit) != 0 {
		return fieldErr(envWhat, field, "duplicate member")
	}
	*m |= 1 << bit
	return nil
}

// require reports the first of fields, numbered from bit 0, that is absent.
func (m memberSet) require(fields ...string) error {
	for i, f := range fields {
		if m&(1<<i) == 0 {
			return fieldErr(envWhat, f, "missing")
		}
	}
	return nil
}

func checkSessionIDValue(s []byte) error {
	switch {
	case len(s) == 0:
		return fieldErr(envWhat, "session_id", "empty")
	case !utf8.Valid(s):
		return fieldErr(envWhat, "session_id", "not valid UTF-8")
	case len(s) > MaxSessionIDLen && utf8.RuneCount(s) > MaxSessionIDLen:
		return fieldErr(envWhat, "session_id", "longer than %d characters", MaxSessionIDLen)
	}
	return nil
}

// decodeCiphertext decodes the ciphertext member; escaped says whether its
// JSON string held escapes.
func decodeCiphertext(s []byte, escaped bool) ([]byte, error) {
	// The strict decoder still skips CR and LF, which only an escape can
	// put in a JSON string; the protocol allows neither.
	if escaped && bytes.ContainsAny(s, "\r\n") {
		return nil, fieldErr(envWhat, "ciphertext", "not standard padded base64")
	}
	ct := make([]byte, B64.DecodedLen(len(s)))
	n, err := B64.Decode(ct, s)
	if err != nil {
		return nil, fieldErr(envWhat, "ciphertext", "not standard padded base64")
	}
	if n < MinCiphertextLen {
		return nil, fieldErr(envWhat, "ciphertext", "%d bytes, shorter than nonce and tag (%d)", n, MinCiphertextLen)
	}
	return ct[:n:n], nil
}

// header reads the header object.
func (r *envReader) header(h *RatchetHeader) error {
	if err := r.expectKind("header", '{'); err != nil {
		return err
	}
	var seen memberSet
	err := r.object(func(key []byte) error {
		switch string(key) {
		case "dh_public_key":
			if err := seen.add("header.dh_public_key", 0); err != nil {
				return err
			}
			s, err := r.stringMember("header.dh_public_key")
			if err != nil {
				return err
			}
			s, _ = bytes.CutPrefix(s, []byte(ExchangeKeyPrefix))
			var buf [33]byte // B64.DecodedLen(envDHEncodedLen)
			if len(s) != envDHEncodedLen {
				return fieldErr(envWhat, "header.dh_public_key", "not standard padded base64 of 32 bytes")
			}
			if n, err := B64.Decode(buf[:], s); err != nil || n != 32 {
				return fieldErr(envWhat, "header.dh_public_key", "not standard padded base64 of 32 bytes")
			}
			copy(h.DHPublicKey[:], buf[:32])
		case "pn":
			if err := seen.add("header.pn", 1); err != nil {
				return err
			}
			v, err := r.uint32Member("header.pn")
			if err != nil {
				return err
			}
			h.PN = v
		case "n":
			if err := seen.add("header.n", 2); err != nil {
				return err
			}
			v, err := r.uint32Member("header.n")
			if err != nil {
				return err
			}
			h.N = v
		default:
			return r.skipValue(1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return seen.require("header.dh_public_key", "header.pn", "header.n")
}

// envReader is a small JSON reader for the encrypted envelope, the hottest
// decoder of the protocol. It reads strings in place when they hold no
// escapes, so that a ciphertext is decoded straight from the input.
type envReader struct {
	data    []byte
	pos     int
	scratch []byte // unescaped string contents, reused
	escaped bool   // whether the last string read held escapes
}

// envMaxDepth bounds the nesting of skipped unknown members.
const envMaxDepth = 32

func (r *envReader) syntaxErr(want string) error {
	if r.pos >= len(r.data) {
		return fieldErr(envWhat, "", "malformed JSON: unexpected end of input, want %s", want)
	}
	return fieldErr(envWhat, "", "malformed JSON at offset %d: unexpected %q, want %s", r.pos, r.data[r.pos], want)
}

func (r *envReader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

func (r *envReader) peek() byte {
	r.skipSpace()
	if r.pos < len(r.data) {
		return r.data[r.pos]
	}
	return 0
}

// object reads an object, calling member for each key with the reader
// positioned at the value. The key may alias the scratch buffer and is
// valid only until member reads a value.
func (r *envReader) object(member func(key []byte) error) error {
	if r.peek() != '{' {
		return r.syntaxErr("'{'")
	}
	r.pos++
	if r.peek() == '}' {
		r.pos++
		return nil
	}
	for {
		if r.peek() != '"' {
			return r.syntaxErr("a member name")
		}
		key, err := r.str()
		if err != nil {
			return err
		}
		if r.peek() != ':' {
			return r.syntaxErr("':'")
		}
		r.pos++
		r.skipSpace()
		if err := member(key); err != nil {
			return err
		}
		switch r.peek() {
		case '}':
			r.pos++
			return nil
		case ',':
			r.pos++
		default:
			return r.syntaxErr("',' or '}'")
		}
	}
}

// expectKind checks that the next value starts with c.
func (r *envReader) expectKind(field string, c byte) error {
	got := r.peek()
	if got == c {
		return nil
	}
	if r.pos >= len(r.data) {
		return r.syntaxErr("a value")
	}
	return fieldErr(envWhat, field, "must be %s, got %s", envKind(c), envKind(got))
}

// stringMember reads a string value. The result aliases the input or the
// scratch buffer and is valid until the next read.
func (r *envReader) stringMember(field string) ([]byte, error) {
	if err := r.expectKind(field, '"'); err != nil {
		return nil, err
	}
	return r.str()
}

// uint32Member reads a non-negative integer that fits in 32 bits.
func (r *envReader) uint32Member(field string) (uint32, error) {
	c := r.peek()
	if c != '-' && (c < '0' || c > '9') {
		if r.pos >= len(r.data) {
			return 0, r.syntaxErr("a value")
		}
		return 0, fieldErr(envWhat, field, "must be an integer, got %s", envKind(c))
	}
	start := r.pos
	if err := r.number(); err != nil {
		return 0, err
	}
	lit := r.data[start:r.pos]
	if lit[0] == '-' {
		return 0, fieldErr(envWhat, field, "must not be negative")
	}
	if bytes.ContainsAny(lit, ".eE") {
		return 0, fieldErr(envWhat, field, "must be an integer, got %s", truncateForError(string(lit)))
	}
	if len(lit) > 10 {
		return 0, fieldErr(envWhat, field, "exceeds %d", uint32(1<<32-1))
	}
	var v uint64
	for _, d := range lit {
		v = v*10 + uint64(d-'0')
	}
	if v > 1<<32-1 {
		return 0, fieldErr(envWhat, field, "exceeds %d", uint32(1<<32-1))
	}
	return uint32(v), nil
}

// number consumes a JSON number, checking its grammar.
func (r *envReader) number() error {
	d := r.data
	i := r.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case digits() == 0:
		r.pos = i
		return r.syntaxErr("a digit")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if digits() == 0 {
			r.pos = i
			return r.syntaxErr("a digit")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			r.pos = i
			return r.syntaxErr("a digit")
		}
	}
	r.pos = i
	return nil
}

// str reads a string starting at the opening quote and returns its
// contents: a slice of the input when it holds no escapes, else the
// unescaped bytes in r.scratch. Lone surrogate escapes become U+FFFD, as in
// encoding/json.
func (r *envReader) str() ([]byte, error) {
	d := r.data
	r.pos++ // opening quote
	start := r.pos
	for i := start; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			r.pos = i + 1
			r.escaped = false
			return d[start:i], nil
		case c == '\\':
			r.escaped = true
			r.scratch = append(r.scratch[:0], d[start:i]...)
			r.pos = i
			return r.escapedStr()
		case c < 0x20:
			r.pos = i
			return nil, r.syntaxErr("no control character in a string")
		}
	}
	r.pos = len(d)
	return nil, r.syntaxErr("'\"'")
}

func (r *envReader) escapedStr() ([]byte, error) {
	d := r.data
	for r.pos < len(d) {
		c := d[r.pos]
		switch {
		case c == '"':
			r.pos++
			return r.scratch, nil
		case c < 0x20:
			return nil, r.syntaxErr("no control character in a string")
		case c != '\\':
			r.scratch = append(r.scratch, c)
			r.pos++
			continue
		}
		r.pos++
		if r.pos >= len(d) {
			break
		}
		e := d[r.pos]
		r.pos++
		switch e {
		case '"', '\\', '/':
			r.scratch = append(r.scratch, e)
		case 'b':
			r.scratch = append(r.scratch, '\b')
		case 'f':
			r.scratch = append(r.scratch, '\f')
		case 'n':
			r.scratch = append(r.scratch, '\n')
		case 'r':
			r.scratch = append(r.scratch, '\r')
		case 't':
			r.scratch = append(r.scratch, '\t')
		case 'u':
			cp, ok := r.hex4()
			if !ok {
				return nil, r.syntaxErr("four hex digits")
			}
			if cp >= 0xD800 && cp < 0xDC00 {
				// A high surrogate must be followed by \u and a low one.
				save := r.pos
				if r.pos+1 < len(d) && d[r.pos] == '\\' && d[r.pos+1] == 'u' {
					r.pos += 2
					lo, ok := r.hex4()
					if ok && lo >= 0xDC00 && lo < 0xE000 {
						cp = 0x10000 + (cp-0xD800)<<10 + (lo - 0xDC00)
					} else {
						r.pos = save
						cp = utf8.RuneError
					}
				} else {
					cp = utf8.RuneError
				}
			} else if cp >= 0xDC00 && cp < 0xE000 {
				cp = utf8.RuneError
			}
			r.scratch = utf8.AppendRune(r.scratch, cp)
		default:
			r.pos--
			return nil, r.syntaxErr("a valid escape")
		}
	}
	return nil, r.syntaxErr("'\"'")
}

func (r *envReader) hex4() (rune, bool) {
	if r.pos+4 > len(r.data) {
		return 0, false
	}
	var v rune
	for _, c := range r.data[r.pos : r.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	r.pos += 4
	return v, true
}

// skipValue consumes any JSON value, checking its syntax.
func (r *envReader) skipValue(depth int) error {
	if depth > envMaxDepth {
		return fieldErr(envWhat, "", "nested deeper than %d levels", envMaxDepth)
	}
	switch c := r.peek(); c {
	case '"':
		_, err := r.str()
		return err
	case '{':
		return r.object(func([]byte) error { return r.skipValue(depth + 1) })
	case '[':
		r.pos++
		if r.peek() == ']' {
			r.pos++
			return nil
		}
		for {
			if err := r.skipValue(depth + 1); err != nil {
				return err
			}
			c := r.peek()
			r.pos++
			if c == ']' {
				return nil
			}
			if c != ',' {
				r.pos--
				return r.syntaxErr("',' or ']'")
			}
		}
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return r.number()
		}
		return r.syntaxErr("a value")
	}
}

func (r *envReader) literal(lit string) error {
	if !bytes.HasPrefix(r.data[r.pos:], []byte(lit)) {
		return r.syntaxErr(strconv.Quote(lit))
	}
	r.pos += len(lit)
	return nil
}

// envKind names the JSON kind of a value from its first byte.
func envKind(c byte) string {
	switch {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	default:
		return fmt.Sprintf("%q", c)
	}
}

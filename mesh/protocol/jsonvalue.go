package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Signed JSON (PROTOCOL.md §0.4, §2.3) has no canonical form: a verifier must
// rebuild the exact bytes the signer's serialiser produced, and those depend
// on member order. Go maps have no order and encoding/json sorts them, so
// signed values are built from the ordered model below and written by
// MarshalJS or MarshalPY, never by encoding/json.

// Object is a JSON object whose members keep their order. A nil Object
// encodes as {}. Keys must be unique and valid UTF-8; the encoders reject an
// Object that breaks either rule.
type Object []Member

// Member is one name/value pair of an Object.
type Member struct {
	Key   string
	Value any
}

// Get returns the value of the member named key and whether it exists.
func (o Object) Get(key string) (any, bool) {
	for _, m := range o {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

// OrderedMarshaler is implemented by values that know how to render
// themselves as ordered JSON, such as the KNOCK request. OrderedJSON returns
// any value the encoders accept, typically an Object; it is encoded in place
// of the receiver. encoding/json's Marshaler is deliberately not consulted: its
// output has neither a fixed member order nor the escaping of the target
// language.
type OrderedMarshaler interface {
	OrderedJSON() (any, error)
}

// MaxJSONDepth is the deepest nesting of objects and arrays that ParseOrdered
// accepts and the encoders produce. It bounds recursion on hostile input.
const MaxJSONDepth = 64

// Sentinel errors wrapped by *DecodeError and *EncodeError, for errors.Is.
var (
	ErrDuplicateKey    = errors.New("duplicate key")
	ErrInvalidUTF8     = errors.New("invalid UTF-8")
	ErrTooDeep         = errors.New("nesting deeper than 64 levels")
	ErrUnsupportedType = errors.New("unsupported type")
)

// EncodeError reports a value that MarshalJS or MarshalPY cannot serialise.
// Field is the path of the offending value ("request.intent.params",
// "items[2]"), empty for the top-level value.
type EncodeError struct {
	Field   string
	Problem string
	Err     error
}

func (e *EncodeError) Error() string {
	if e.Field == "" {
		return "cannot encode JSON: " + e.Problem
	}
	return fmt.Sprintf("cannot encode JSON: %s: %s", e.Field, e.Problem)
}

func (e *EncodeError) Unwrap() error { return e.Err }

// prefixKey and prefixIndex build the path of an error while the recursion
// unwinds, so paths cost nothing on success.
func prefixKey(err error, key string) error {
	return prefixPath(err, pathKey(key))
}

func prefixIndex(err error, i int) error {
	return prefixPath(err, "["+strconv.Itoa(i)+"]")
}

func prefixPath(err error, seg string) error {
	var field *string
	switch e := err.(type) {
	case *EncodeError:
		field = &e.Field
	case *DecodeError:
		field = &e.Field
	default:
		return err
	}
	switch {
	case *field == "":
		*field = seg
	case (*field)[0] == '[':
		*field = seg + *field
	default:
		*field = seg + "." + *field
	}
	return err
}

// pathKey renders a key for an error path: plain when it is harmless,
// quoted when it holds separators or unprintable characters, and cut short
// when hostile input makes it long.
func pathKey(key string) string {
	key = truncateForError(key)
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e || c == '.' || c == '[' || c == ']' || c == '"' {
			return strconv.Quote(key)
		}
	}
	if key == "" {
		return `""`
	}
	return key
}

// validNumber reports whether s matches the JSON number grammar of RFC 8259
// §6. strconv.ParseFloat alone would also accept "Inf", "0x1p3" and "+1".
func validNumber(s string) bool {
	return scanNumber(s, 0) == len(s) && len(s) > 0
}

// scanNumber returns the end of the longest JSON number starting at s[i], or
// i when none starts there.
func scanNumber(s string, i int) int {
	start := i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return start
	}
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j == i+1 {
			return start
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k == j {
			return start
		}
		i = k
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ParseOrdered parses JSON into ordered values: objects as Object, arrays as
// []any, numbers as json.Number (the literal as written, so each encoder can
// apply its own language's number rules), strings, bools and nil.
//
// It is stricter than encoding/json: duplicate keys (whose meaning differs
// between JSON.parse and json.loads), trailing data, invalid UTF-8, raw
// control characters in strings, \u escapes of unpaired surrogates (which a
// Go string cannot hold) and nesting deeper than MaxJSONDepth are all
// rejected. Errors are *DecodeError with What "JSON" and Field the path of
// the offending member.
func ParseOrdered(data []byte) (any, error) {
	// One copy of the input backs every unescaped string and number, so
	// parsing allocates little beyond the containers.
	p := parser{s: string(data)}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i < len(p.s) {
		return nil, p.errorf("trailing data at offset %d", p.i)
	}
	return v, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) errorf(format string, args ...any) *DecodeError {
	return &DecodeError{What: "JSON", Problem: fmt.Sprintf(format, args...)}
}

func (p *parser) sentinel(err error) *DecodeError {
	return &DecodeError{What: "JSON", Problem: fmt.Sprintf("%v at offset %d", err, p.i), Err: err}
}

// unexpected describes the byte at the cursor without echoing more input.
func (p *parser) unexpected(want string) *DecodeError {
	if p.i >= len(p.s) {
		return p.errorf("unexpected end of input, want %s", want)
	}
	return p.errorf("unexpected %q at offset %d, want %s", p.s[p.i], p.i, want)
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	p.skipSpace()
	if p.i >= len(p.s) {
		return nil, p.unexpected("a value")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || isDigit(c):
		end := scanNumber(p.s, p.i)
		if end == p.i {
			return nil, p.errorf("malformed number at offset %d", p.i)
		}
		n := json.Number(p.s[p.i:end])
		p.i = end
		return n, nil
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return false, nil
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return nil, nil
	}
	return nil, p.unexpected("a value")
}

func (p *parser) object(depth int) (Object, error) {
	if depth > MaxJSONDepth {
		return nil, p.sentinel(ErrTooDeep)
	}
	p.i++ // '{'
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return Object{}, nil
	}
	var o Object
	var seen map[string]struct{} // built once the object outgrows a pairwise check
	for {
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.unexpected("a string key")
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if isDuplicate(o, &seen, key) {
			e := p.sentinel(ErrDuplicateKey)
			e.Field = pathKey(key)
			return nil, e
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.unexpected("':'")
		}
		p.i++
		v, err := p.value(depth)
		if err != nil {
			return nil, prefixKey(err, key)
		}
		o = append(o, Member{Key: key, Value: v})
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return o, nil
		}
		return nil, p.unexpected("',' or '}'")
	}
}

// isDuplicate reports whether key is already among the members read so
// far. Past 16 members it switches to a map, so that hostile input with
// many keys costs linear rather than quadratic time.
func isDuplicate(read []Member, seen *map[string]struct{}, key string) bool {
	if len(read) < 16 {
		_, dup := Object(read).Get(key)
		return dup
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*len(read))
		for _, m := range read {
			(*seen)[m.Key] = struct{}{}
		}
	}
	if _, dup := (*seen)[key]; dup {
		return true
	}
	(*seen)[key] = struct{}{}
	return false
}

func (p *parser) array(depth int) ([]any, error) {
	if depth > MaxJSONDepth {
		return nil, p.sentinel(ErrTooDeep)
	}
	p.i++ // '['
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return []any{}, nil
	}
	var a []any
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, prefixIndex(err, len(a))
		}
		a = append(a, v)
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return a, nil
		}
		return nil, p.unexpected("',' or ']'")
	}
}

// str reads a string literal at the cursor. Strings without escapes, the
// common case, are returned as substrings of the input copy.
func (p *parser) str() (string, error) {
	p.i++ // '"'
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			return s, nil
		case c == '\\':
			return p.escapedStr(start)
		case c < 0x20:
			return "", p.errorf("control character U+%04X in string at offset %d", c, p.i)
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				return "", p.sentinel(ErrInvalidUTF8)
			}
			p.i += size
		}
	}
	return "", p.errorf("unterminated string starting at offset %d", start-1)
}

// escapedStr continues str once it meets a backslash, building the value
// in a fresh buffer.
func (p *parser) escapedStr(start int) (string, error) {
	buf := make([]byte, 0, p.i-start+16)
	buf = append(buf, p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.errorf("control character U+%04X in string at offset %d", c, p.i)
		case c < utf8.RuneSelf && c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				return "", p.sentinel(ErrInvalidUTF8)
			}
			buf = append(buf, p.s[p.i:p.i+size]...)
			p.i += size
			continue
		}
		// A backslash.
		if p.i+1 >= len(p.s) {
			break
		}
		esc := p.s[p.i+1]
		switch esc {
		case '"', '\\', '/':
			buf = append(buf, esc)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := p.unicodeEscape()
			if err != nil {
				return "", err
			}
			buf = utf8.AppendRune(buf, r)
			continue
		default:
			return "", p.errorf("invalid escape %q at offset %d", esc, p.i)
		}
		p.i += 2
	}
	return "", p.errorf("unterminated string starting at offset %d", start-1)
}

// unicodeEscape reads \uXXXX, or a surrogate pair \uD8xx\uDCxx, at the cursor.
func (p *parser) unicodeEscape() (rune, error) {
	at := p.i
	r, ok := hex4(p.s, p.i+2)
	if !ok {
		return 0, p.errorf("invalid \\u escape at offset %d", at)
	}
	p.i += 6
	switch {
	case r >= 0xdc00 && r <= 0xdfff:
		return 0, p.errorf("unpaired surrogate escape at offset %d", at)
	case r >= 0xd800 && r <= 0xdbff:
		if !strings.HasPrefix(p.s[p.i:], `\u`) {
			return 0, p.errorf("unpaired surrogate escape at offset %d", at)
		}
		lo, ok := hex4(p.s, p.i+2)
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return 0, p.errorf("unpaired surrogate escape at offset %d", at)
		}
		p.i += 6
		return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), nil
	}
	return r, nil
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		var d byte
		switch {
		case isDigit(c):
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

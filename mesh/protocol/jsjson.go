package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MarshalJS returns the bytes JavaScript's JSON.stringify(v) produces, the
// JS-compact form of PROTOCOL.md §0.4 that TS-format KNOCK, ACCEPT and REJECT
// are signed over (S7–S9).
//
// v may be nil, a bool, a string, any Go integer or float, a json.Number, an
// Object, a []any, []string or []Object, a json.RawMessage (parsed with
// ParseOrdered and re-encoded, so its member order is kept), an
// OrderedMarshaler, or a named type whose underlying type is one of these
// (such as AMID or UnixMillis). Nil slices encode as []. Maps, structs and
// pointers are refused: a map has no member order and the other two have no
// single JavaScript rendering. Errors are *EncodeError.
//
// Every number is treated as a JavaScript double: integers beyond 2^53 round
// as they would in JavaScript, and floats print as Number::toString does
// (shortest round-trip digits, exponent form below 1e-6 and from 1e21 on,
// -0 as 0, NaN and ±Infinity as null). Objects list integer-like keys ("0",
// "17") first in ascending numeric order, as every JavaScript object does.
func MarshalJS(v any) ([]byte, error) {
	b, err := AppendJS(make([]byte, 0, 256), v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// AppendJS appends the JSON.stringify(v) bytes to dst. On error it returns
// dst with its length unchanged. Given a buffer with room to spare, it does
// not allocate, except for json.RawMessage and OrderedMarshaler values,
// slices of named types and objects of more than 16 members.
func AppendJS(dst []byte, v any) ([]byte, error) {
	out, err := appendValue(dst, v, formatJS, 0)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// hexDigits are lowercase: both JSON.stringify and json.dumps write \u00xx
// escapes in lower case.
const hexDigits = "0123456789abcdef"

// appendEscape writes the escape shared by both dialects for an ASCII byte
// that may not appear literally: the two-character forms where the
// languages have them, \u00xx otherwise.
func appendEscape(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

func errInvalidString() error {
	return &EncodeError{Problem: "string is " + ErrInvalidUTF8.Error(), Err: ErrInvalidUTF8}
}

// appendJSString quotes s as JSON.stringify does (ES2019 QuoteJSONString):
// only '"', '\' and code points below U+0020 are escaped. Everything else,
// including '/', '<', '>', '&', DEL, U+2028 and U+2029, stays literal UTF-8,
// where encoding/json would escape some of them. Lone surrogates, which
// JavaScript would write as \udxxx, cannot occur in valid UTF-8 and are
// refused with the rest of invalid UTF-8.
func appendJSString(dst []byte, s string) ([]byte, error) {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsPlain[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst, errInvalidString()
			}
			i += size
			continue
		}
		dst = appendEscape(append(dst, s[start:i]...), c)
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), nil
}

// AppendJSString appends s quoted as JSON.stringify quotes a string, for
// callers that write JSON by hand (the encrypted envelope, the identity
// file). Invalid UTF-8, which no JavaScript string can hold, is replaced by
// U+FFFD.
func AppendJSString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	dst, _ = appendJSString(dst, s)
	return dst
}

// jsPlain marks the ASCII bytes JSON.stringify copies as they are. Bytes
// from 0x80 up are false so that the loop stops to validate UTF-8.
var jsPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// maxSafeInteger is 2^53: every integer up to it in magnitude is an exact
// double, so its decimal form is also its Number::toString form.
const maxSafeInteger = 1 << 53

func appendJSInt(dst []byte, i int64) []byte {
	if -maxSafeInteger <= i && i <= maxSafeInteger {
		return strconv.AppendInt(dst, i, 10)
	}
	// Go rounds the conversion to nearest-even, as JavaScript does when it
	// reads a long integer literal.
	return appendJSFloat(dst, float64(i))
}

func appendJSUint(dst []byte, u uint64) []byte {
	if u <= maxSafeInteger {
		return strconv.AppendUint(dst, u, 10)
	}
	return appendJSFloat(dst, float64(u))
}

// appendJSNumber writes a json.Number as JSON.stringify(JSON.parse(lit))
// would. lit has already been checked against the JSON grammar.
func appendJSNumber(dst []byte, lit string) []byte {
	// Integer literals of at most 15 characters are below 2^53 and print as
	// themselves; this keeps the common timestamps and TTLs off ParseFloat.
	if len(lit) <= 15 && !strings.ContainsAny(lit, ".eE") {
		if lit == "-0" {
			return append(dst, '0')
		}
		return append(dst, lit...)
	}
	// Out of range literals give ±Inf, as in JSON.parse; both print as null.
	x, _ := strconv.ParseFloat(lit, 64)
	return appendJSFloat(dst, x)
}

// appendJSFloat writes x as ECMAScript Number::toString(x) (ES2023
// §6.1.6.1.20). With the shortest round-trip digits s of length k and n such
// that x = s × 10^(n−k), the spec picks one of four layouts by k and n.
func appendJSFloat(dst []byte, x float64) []byte {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return append(dst, "null"...)
	case x == 0:
		return append(dst, '0') // also -0
	case x < 0:
		dst = append(dst, '-')
		x = -x
	}
	var buf [32]byte
	digits, n := shortestDecimal(&buf, x)
	k := len(digits)
	switch {
	case k <= n && n <= 21: // 1e20 → 100000000000000000000
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21: // 1.5
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0: // 0.000001
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default: // 1e+21, 1.5e-7
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// shortestDecimal returns the shortest digits that read back as x > 0 (or
// "0" for 0) and the position n of the decimal point: x = 0.digits × 10^n.
// Go's shortest formatting, JavaScript's Number::toString and Python's
// repr all choose the digits closest to x among the shortest candidates, so
// one digit generator serves both dialects.
func shortestDecimal(buf *[32]byte, x float64) (digits []byte, n int) {
	b := strconv.AppendFloat(buf[:0], x, 'e', -1, 64) // d[.ddd]e±XX
	e := slices.Index(b, 'e')
	exp := 0
	for _, c := range b[e+2:] {
		exp = exp*10 + int(c-'0')
	}
	if b[e+1] == '-' {
		exp = -exp
	}
	if e > 1 { // drop the '.'
		copy(b[1:], b[2:e])
		e--
	}
	return b[:e], exp + 1
}

// isArrayIndex reports whether key is an array index in the sense of
// ECMAScript: the canonical decimal form of an integer below 2^32−1. Objects
// enumerate such keys before all others, whatever the insertion order.
func isArrayIndex(key string) bool {
	switch {
	case key == "0":
		return true
	case len(key) == 0 || len(key) > 10 || key[0] == '0':
		return false
	}
	for i := 0; i < len(key); i++ {
		if !isDigit(key[i]) {
			return false
		}
	}
	return len(key) < 10 || key <= "4294967294"
}

// compareArrayIndex orders canonical decimals numerically: without leading
// zeros, the shorter one is smaller and equal lengths compare as strings.
func compareArrayIndex(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// appendJSObject writes o's members in JavaScript's own-property order
// (OrdinaryOwnPropertyKeys): array indices ascending, then the remaining keys
// in insertion order. o has already been checked for duplicate keys.
func appendJSObject(dst []byte, o Object, depth int) ([]byte, error) {
	// Positions of array-index keys, rare outside user params; the array
	// keeps the common sizes off the heap.
	var small [8]int
	indices := small[:0]
	for i, m := range o {
		if isArrayIndex(m.Key) {
			indices = append(indices, i)
		}
	}
	if len(indices) > 1 {
		slices.SortFunc(indices, func(a, b int) int { return compareArrayIndex(o[a].Key, o[b].Key) })
	}
	dst = append(dst, '{')
	var err error
	for n, i := range indices {
		if n > 0 {
			dst = append(dst, ',')
		}
		if dst, err = appendMember(dst, o[i], formatJS, depth); err != nil {
			return dst, err
		}
	}
	n := len(indices)
	for _, m := range o {
		if len(indices) > 0 && isArrayIndex(m.Key) {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		if dst, err = appendMember(dst, m, formatJS, depth); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// format selects the serialiser whose bytes the walk reproduces.
type format uint8

const (
	formatJS       format = iota // JSON.stringify(v)
	formatPY                     // json.dumps(v)
	formatPYSorted               // json.dumps(v, sort_keys=True)
)

var (
	objectType = reflect.TypeFor[Object]()
	memberType = reflect.TypeFor[Member]()
)

// appendValue is the walk shared by both encoders: it resolves the Go type of
// v and leaves strings, numbers and objects to the dialect. On error the
// returned bytes are partial; the exported Append functions discard them.
func appendValue(dst []byte, v any, f format, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case string:
		return appendStringValue(dst, v, f)
	case int:
		return appendInt(dst, int64(v), f), nil
	case int64:
		return appendInt(dst, v, f), nil
	case uint64:
		return appendUint(dst, v, f), nil
	case float64:
		return appendFloat(dst, v, f), nil
	case json.Number:
		return appendNumber(dst, v, f)
	case Object:
		return appendObject(dst, v, f, depth+1)
	case []any:
		return appendArray(dst, len(v), f, depth+1, func(dst []byte, i int) ([]byte, error) {
			return appendValue(dst, v[i], f, depth+1)
		})
	case []string:
		// A dedicated loop: boxing each string in an interface would allocate.
		return appendArray(dst, len(v), f, depth+1, func(dst []byte, i int) ([]byte, error) {
			return appendStringValue(dst, v[i], f)
		})
	case []Object:
		return appendArray(dst, len(v), f, depth+1, func(dst []byte, i int) ([]byte, error) {
			return appendObject(dst, v[i], f, depth+2)
		})
	case json.RawMessage:
		return appendRaw(dst, v, f, depth)
	case OrderedMarshaler:
		return appendMarshaler(dst, v, f, depth)
	}
	return appendReflect(dst, reflect.ValueOf(v), f, depth)
}

func appendStringValue(dst []byte, s string, f format) ([]byte, error) {
	if f == formatJS {
		return appendJSString(dst, s)
	}
	return appendPYString(dst, s)
}

func appendInt(dst []byte, i int64, f format) []byte {
	if f == formatJS {
		return appendJSInt(dst, i)
	}
	return strconv.AppendInt(dst, i, 10)
}

func appendUint(dst []byte, u uint64, f format) []byte {
	if f == formatJS {
		return appendJSUint(dst, u)
	}
	return strconv.AppendUint(dst, u, 10)
}

func appendFloat(dst []byte, x float64, f format) []byte {
	if f == formatJS {
		return appendJSFloat(dst, x)
	}
	return appendPYFloat(dst, x)
}

func appendNumber(dst []byte, n json.Number, f format) ([]byte, error) {
	if !validNumber(string(n)) {
		return dst, &EncodeError{Problem: fmt.Sprintf("json.Number %q is not a JSON number", truncateForError(string(n)))}
	}
	if f == formatJS {
		return appendJSNumber(dst, string(n)), nil
	}
	return appendPYNumber(dst, string(n)), nil
}

// appendArray writes n elements produced by elem with the dialect's
// separator.
func appendArray(dst []byte, n int, f format, depth int, elem func([]byte, int) ([]byte, error)) ([]byte, error) {
	if depth > MaxJSONDepth {
		return dst, &EncodeError{Problem: ErrTooDeep.Error(), Err: ErrTooDeep}
	}
	dst = append(dst, '[')
	var err error
	for i := range n {
		if i > 0 && f == formatJS {
			dst = append(dst, ',')
		} else if i > 0 {
			dst = append(dst, ',', ' ')
		}
		if dst, err = elem(dst, i); err != nil {
			return dst, prefixIndex(err, i)
		}
	}
	return append(dst, ']'), nil
}

func appendObject(dst []byte, o Object, f format, depth int) ([]byte, error) {
	if depth > MaxJSONDepth {
		return dst, &EncodeError{Problem: ErrTooDeep.Error(), Err: ErrTooDeep}
	}
	if key, ok := duplicateKey(o); ok {
		return dst, &EncodeError{Field: pathKey(key), Problem: ErrDuplicateKey.Error(), Err: ErrDuplicateKey}
	}
	if f == formatJS {
		return appendJSObject(dst, o, depth)
	}
	return appendPYObject(dst, o, f, depth)
}

// appendMember writes one "key":value pair in dialect f.
func appendMember(dst []byte, m Member, f format, depth int) ([]byte, error) {
	var err error
	if dst, err = appendStringValue(dst, m.Key, f); err != nil {
		return dst, &EncodeError{Field: pathKey(m.Key), Problem: "key is " + ErrInvalidUTF8.Error(), Err: ErrInvalidUTF8}
	}
	if f == formatJS {
		dst = append(dst, ':')
	} else {
		dst = append(dst, ": "...)
	}
	if dst, err = appendValue(dst, m.Value, f, depth); err != nil {
		return dst, prefixKey(err, m.Key)
	}
	return dst, nil
}

// duplicateKey reports the first key that occurs twice in o. Small objects,
// the usual case, are checked pairwise so that encoding does not allocate.
func duplicateKey(o Object) (string, bool) {
	if len(o) <= 16 {
		for i := 1; i < len(o); i++ {
			for j := range i {
				if o[i].Key == o[j].Key {
					return o[i].Key, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, len(o))
	for _, m := range o {
		if _, ok := seen[m.Key]; ok {
			return m.Key, true
		}
		seen[m.Key] = struct{}{}
	}
	return "", false
}

// appendRaw re-encodes raw JSON through the ordered model, so the member
// order on the wire is what gets signed (PROTOCOL.md §2.3). Like
// encoding/json, an empty RawMessage stands for null.
func appendRaw(dst []byte, raw json.RawMessage, f format, depth int) ([]byte, error) {
	if len(raw) == 0 {
		return append(dst, "null"...), nil
	}
	v, err := ParseOrdered(raw)
	if err != nil {
		var de *DecodeError
		errors.As(err, &de)
		return dst, &EncodeError{Field: de.Field, Problem: "raw JSON: " + de.Problem, Err: err}
	}
	return appendValue(dst, v, f, depth)
}

func appendMarshaler(dst []byte, m OrderedMarshaler, f format, depth int) ([]byte, error) {
	// Each OrderedJSON call counts as a level, so a value that returns
	// itself ends in ErrTooDeep instead of exhausting the stack.
	if depth+1 > MaxJSONDepth {
		return dst, &EncodeError{Problem: ErrTooDeep.Error(), Err: ErrTooDeep}
	}
	v, err := m.OrderedJSON()
	if err != nil {
		return dst, &EncodeError{Problem: fmt.Sprintf("%T.OrderedJSON: %v", m, err), Err: err}
	}
	return appendValue(dst, v, f, depth+1)
}

// appendReflect handles the less common integer and float types, named types
// whose underlying type is a supported kind (AMID, UnixMillis, []AMID, named
// Objects), and refuses the rest. It does not allocate for scalars.
func appendReflect(dst []byte, rv reflect.Value, f format, depth int) ([]byte, error) {
	switch rv.Kind() {
	case reflect.String:
		return appendStringValue(dst, rv.String(), f)
	case reflect.Bool:
		return appendValue(dst, rv.Bool(), f, depth)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return appendInt(dst, rv.Int(), f), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return appendUint(dst, rv.Uint(), f), nil
	case reflect.Float32, reflect.Float64:
		// Neither language has single precision: a float32 is widened
		// exactly, as Math.fround or a numpy float32 would be.
		return appendFloat(dst, rv.Float(), f), nil
	case reflect.Map:
		return dst, &EncodeError{
			Problem: fmt.Sprintf("%v: a map has no member order, use protocol.Object", rv.Type()),
			Err:     ErrUnsupportedType,
		}
	case reflect.Slice, reflect.Array:
		elem := rv.Type().Elem()
		if elem == memberType && rv.Kind() == reflect.Slice {
			return appendObject(dst, rv.Convert(objectType).Interface().(Object), f, depth+1)
		}
		if elem.Kind() == reflect.Uint8 {
			return dst, &EncodeError{
				Problem: fmt.Sprintf("%v: encode bytes as a base64 string", rv.Type()),
				Err:     ErrUnsupportedType,
			}
		}
		return appendArray(dst, rv.Len(), f, depth+1, func(dst []byte, i int) ([]byte, error) {
			return appendValue(dst, rv.Index(i).Interface(), f, depth+1)
		})
	}
	return dst, &EncodeError{Problem: fmt.Sprintf("unsupported type %v", rv.Type()), Err: ErrUnsupportedType}
}

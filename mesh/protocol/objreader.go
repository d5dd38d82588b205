package protocol

import (
	"encoding/json"
	"math"
	"strconv"
)

// objReader reads typed members out of an ordered JSON object and remembers
// the first problem, so decoders read as a list of fields rather than a
// ladder of error checks. Errors name the member's dotted path.
type objReader struct {
	what   string // kind of message, for DecodeError.What
	prefix string // dotted path of obj, "" at the top
	obj    Object
	err    *DecodeError
}

func newObjReader(what, prefix string, v any) *objReader {
	r := &objReader{what: what, prefix: prefix}
	obj, ok := v.(Object)
	if !ok {
		r.fail("", "must be a JSON object, got %s", jsonKind(v))
		return r
	}
	r.obj = obj
	return r
}

func (r *objReader) path(key string) string {
	if r.prefix == "" {
		return key
	}
	if key == "" {
		return r.prefix
	}
	return r.prefix + "." + key
}

func (r *objReader) fail(key, format string, args ...any) {
	if r.err == nil {
		r.err = fieldErr(r.what, r.path(key), format, args...)
	}
}

// get returns the member's value; a missing required member is an error.
// A JSON null counts as absent.
func (r *objReader) get(key string, required bool) (any, bool) {
	if r.err != nil {
		return nil, false
	}
	v, ok := r.obj.Get(key)
	if !ok || v == nil {
		if required {
			r.fail(key, "missing")
		}
		return nil, false
	}
	return v, true
}

func (r *objReader) str(key string, required bool) string {
	v, ok := r.get(key, required)
	if !ok {
		return ""
	}
	s, isStr := v.(string)
	if !isStr {
		r.fail(key, "must be a string, got %s", jsonKind(v))
		return ""
	}
	return s
}

func (r *objReader) boolean(key string) bool {
	v, ok := r.get(key, false)
	if !ok {
		return false
	}
	b, isBool := v.(bool)
	if !isBool {
		r.fail(key, "must be a boolean, got %s", jsonKind(v))
	}
	return b
}

// integer reads a JSON number that holds an integer in [lo, hi]. Like
// JavaScript, it accepts 3600.0 as the integer 3600.
func (r *objReader) integer(key string, required bool, lo, hi int64) (int64, bool) {
	v, ok := r.get(key, required)
	if !ok {
		return 0, false
	}
	n, isNum := v.(json.Number)
	if !isNum {
		r.fail(key, "must be a number, got %s", jsonKind(v))
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			r.fail(key, "must be an integer")
			return 0, false
		}
		i = int64(f)
	}
	if i < lo || i > hi {
		r.fail(key, "must be between %d and %d, got %d", lo, hi, i)
		return 0, false
	}
	return i, true
}

func (r *objReader) number(key string, required bool) (float64, bool) {
	v, ok := r.get(key, required)
	if !ok {
		return 0, false
	}
	n, isNum := v.(json.Number)
	if !isNum {
		r.fail(key, "must be a number, got %s", jsonKind(v))
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		r.fail(key, "number out of range")
		return 0, false
	}
	return f, true
}

func (r *objReader) object(key string, required bool) *objReader {
	v, ok := r.get(key, required)
	if !ok {
		return nil
	}
	sub := newObjReader(r.what, r.path(key), v)
	if sub.err != nil {
		r.fail(key, "must be a JSON object, got %s", jsonKind(v))
		return nil
	}
	return sub
}

// adopt copies a sub-reader's error into r.
func (r *objReader) adopt(sub *objReader) {
	if sub != nil && sub.err != nil && r.err == nil {
		r.err = sub.err
	}
}

func (r *objReader) strings(key string, required bool, max int) []string {
	v, ok := r.get(key, required)
	if !ok {
		return nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		r.fail(key, "must be an array of strings, got %s", jsonKind(v))
		return nil
	}
	if len(arr) > max {
		r.fail(key, "has %d entries, at most %d allowed", len(arr), max)
		return nil
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			r.fail(key+"["+strconv.Itoa(i)+"]", "must be a string, got %s", jsonKind(e))
			return nil
		}
		out[i] = s
	}
	return out
}

func (r *objReader) amid(key string, required bool) AMID {
	s := r.str(key, required)
	if s == "" {
		if r.err == nil && required {
			r.fail(key, "empty AMID")
		}
		return ""
	}
	a, err := ParseAMID(s)
	if err != nil {
		r.fail(key, "%v", err)
	}
	return a
}

// b64 reads a standard padded base64 member that decodes to want bytes
// (any length when want is 0). It never echoes the value.
func (r *objReader) b64(key string, required bool, want int) []byte {
	s := r.str(key, required)
	if s == "" {
		return nil
	}
	b, err := DecodeB64(s, want)
	if err != nil {
		r.fail(key, "%v", err)
	}
	return b
}

// x25519Key reads a 32-byte X25519 public key written as standard padded
// base64, with or without a key prefix (PROTOCOL.md §0.2). It returns nil
// when the member is absent or malformed.
func (r *objReader) x25519Key(key string, required bool) *[32]byte {
	s := r.str(key, required)
	if s == "" {
		return nil
	}
	body, _ := StripKeyPrefix(s)
	b, err := DecodeB64(body, 32)
	if err != nil {
		r.fail(key, "%v", err)
		return nil
	}
	return (*[32]byte)(b)
}

// jsonKind names the JSON type of a value produced by ParseOrdered.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case Object:
		return "an object"
	case []any:
		return "an array"
	default:
		return "an unexpected value"
	}
}

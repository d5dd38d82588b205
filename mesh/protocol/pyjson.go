package protocol

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MarshalPY returns the bytes of Python's json.dumps(v) with default
// arguments: separators ", " and ": ", members in insertion order,
// ensure_ascii=True and allow_nan=True. This is the PY-default form of
// PROTOCOL.md §0.4 that PY-format KNOCK, ACCEPT and REJECT are signed over
// (S10–S12).
//
// It accepts the same values as MarshalJS. Python keeps int and float apart,
// so numbers follow their Go or JSON form rather than their value: Go
// integers and json.Number literals without '.', 'e' or 'E' print as
// integers of any size; Go floats and the other json.Number literals print
// as repr(float), so 1.0 stays "1.0" and NaN, Infinity and -0.0 are written
// as Python writes them. Errors are *EncodeError.
func MarshalPY(v any) ([]byte, error) {
	return marshalPY(v, formatPY)
}

// AppendPY appends the json.dumps(v) bytes to dst. On error it returns dst
// with its length unchanged. It allocates no more than AppendJS does.
func AppendPY(dst []byte, v any) ([]byte, error) {
	out, err := appendValue(dst, v, formatPY, 0)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// MarshalPYSorted returns the bytes of json.dumps(v, sort_keys=True), the
// PY-sorted form used by the DHT record (PROTOCOL.md §1.7, S14). Members of
// every object, nested ones included, are sorted by key in code point order.
func MarshalPYSorted(v any) ([]byte, error) {
	return marshalPY(v, formatPYSorted)
}

func marshalPY(v any, f format) ([]byte, error) {
	b, err := appendValue(make([]byte, 0, 256), v, f, 0)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// appendPYString quotes s as json.dumps does with ensure_ascii=True
// (py_encode_basestring_ascii): the output is printable ASCII only. '"',
// '\' and the five control characters with short forms use them; every other
// code point outside U+0020–U+007E, DEL included, becomes \uxxxx in lower
// case, code points above U+FFFF as a UTF-16 surrogate pair.
func appendPYString(dst []byte, s string) ([]byte, error) {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if pyPlain[c] {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			dst = appendEscape(dst, c)
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst, errInvalidString()
			}
			if r > 0xffff {
				r -= 0x10000
				dst = appendU4(dst, 0xd800+r>>10)
				r = 0xdc00 + r&0x3ff
			}
			dst = appendU4(dst, r)
			i += size
		}
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), nil
}

// pyPlain marks the bytes json.dumps copies as they are: printable ASCII
// other than '"' and '\'.
var pyPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// appendPYNumber writes a json.Number as json.dumps(json.loads(lit)) would.
// lit has already been checked against the JSON grammar.
func appendPYNumber(dst []byte, lit string) []byte {
	if !strings.ContainsAny(lit, ".eE") {
		// json.loads reads this as int(lit): exact at any size, and
		// without leading zeros (the grammar forbids them) only "-0"
		// prints differently.
		if lit == "-0" {
			return append(dst, '0')
		}
		return append(dst, lit...)
	}
	// float(lit) rounds like ParseFloat and gives ±inf out of range, which
	// json.dumps writes as Infinity; the range error is therefore ignored.
	x, _ := strconv.ParseFloat(lit, 64)
	return appendPYFloat(dst, x)
}

// appendPYFloat writes x as Python's float.__repr__ (float_repr_style
// "short"): the shortest round-trip digits, in positional form with at least
// one fractional digit when the decimal exponent e of x = d.ddd × 10^e has
// -4 <= e < 16, and otherwise as d[.ddd]e±XX with at least two exponent
// digits.
func appendPYFloat(dst []byte, x float64) []byte {
	switch {
	case math.IsNaN(x):
		return append(dst, "NaN"...)
	case math.IsInf(x, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(x, -1):
		return append(dst, "-Infinity"...)
	case math.Signbit(x):
		dst = append(dst, '-') // -0.0 keeps its sign
		x = -x
	}
	var buf [32]byte
	digits, n := shortestDecimal(&buf, x) // x = 0.digits × 10^n, so e = n-1
	k := len(digits)
	switch {
	case 1 <= n && n <= 16:
		if k <= n { // 100.0
			dst = append(dst, digits...)
			for range n - k {
				dst = append(dst, '0')
			}
			return append(dst, '.', '0')
		}
		dst = append(dst, digits[:n]...) // 1.5
		dst = append(dst, '.')
		return append(dst, digits[n:]...)
	case -3 <= n && n <= 0: // 0.0001
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits[0]) // 1e-05, 1.5e+16
	if k > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	e := n - 1
	if e < 0 {
		dst = append(dst, 'e', '-')
		e = -e
	} else {
		dst = append(dst, 'e', '+')
	}
	if e < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(e), 10)
}

// appendPYObject writes o's members with json.dumps' separators, in
// insertion order or, for sort_keys, by key. Python orders str by code
// point, which for valid UTF-8 is plain byte order; keys that are not valid
// UTF-8 fail when they are written.
func appendPYObject(dst []byte, o Object, f format, depth int) ([]byte, error) {
	if len(o) == 0 {
		return append(dst, '{', '}'), nil
	}
	members := o
	if f == formatPYSorted && !slices.IsSortedFunc(o, compareKeys) {
		members = slices.Clone(o)
		slices.SortFunc(members, compareKeys)
	}
	dst = append(dst, '{')
	var err error
	for i, m := range members {
		if i > 0 {
			dst = append(dst, ',', ' ')
		}
		if dst, err = appendMember(dst, m, f, depth); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func compareKeys(a, b Member) int { return strings.Compare(a.Key, b.Key) }

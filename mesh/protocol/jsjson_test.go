package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// Every expected output in this file is what JavaScript's JSON.stringify
// (ES2019 and later) returns for the same value, derived from the
// ECMAScript specification: QuoteJSONString for strings, Number::toString
// for numbers and OrdinaryOwnPropertyKeys for member order.

// knockObject is a TS-format KNOCK of realistic size (about 340 bytes).
func knockObject() Object {
	return Object{
		{"version", "agentmesh/0.2"},
		{"from", "5KQwrPbwdL6PhXujxW37FSSQZ1Jt"},
		{"to", "3vQB7B6MrGQZaxCuFg4oh9PyzG7h"},
		{"request", Object{
			{"type", "one-shot"},
			{"ttl", 3600},
			{"intent", Object{
				{"capability", "weather/forecast"},
				{"action", "message"},
				{"params", Object{{"city", "Zürich"}, {"days", 3}}},
			}},
			{"priority", 5},
		}},
		{"timestamp", UnixMillis(1769963110555)},
		{"nonce", "9f86d081884c7d659a2feaa0c55ad015"},
		{"signature", "04HZgTrSnhz+IGT/jMlOdZHK6GJNbhiwAb1OCxPHGXIiMwvVKUe6JpcsSmmPZz1jOajjEsMlKssb9CHQd9pDBQ=="},
	}
}

// orderedPair renders itself as an Object through OrderedMarshaler.
type orderedPair struct{ a, b string }

func (p orderedPair) OrderedJSON() (any, error) {
	return Object{{"second", p.b}, {"first", p.a}}, nil
}

// selfMarshaler returns itself forever.
type selfMarshaler struct{}

func (s selfMarshaler) OrderedJSON() (any, error) { return s, nil }

var errMarshalerFailed = errors.New("marshaler failed")

type failingMarshaler struct{}

func (failingMarshaler) OrderedJSON() (any, error) { return nil, errMarshalerFailed }

type namedObject Object

func TestMarshalJS(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"knock", knockObject(), `{"version":"agentmesh/0.2","from":"5KQwrPbwdL6PhXujxW37FSSQZ1Jt","to":"3vQB7B6MrGQZaxCuFg4oh9PyzG7h",` +
			`"request":{"type":"one-shot","ttl":3600,"intent":{"capability":"weather/forecast","action":"message",` +
			`"params":{"city":"Zürich","days":3}},"priority":5},"timestamp":1769963110555,"nonce":"9f86d081884c7d659a2feaa0c55ad015",` +
			`"signature":"04HZgTrSnhz+IGT/jMlOdZHK6GJNbhiwAb1OCxPHGXIiMwvVKUe6JpcsSmmPZz1jOajjEsMlKssb9CHQd9pDBQ=="}`},

		// Member order.
		{"insertion order", Object{{"z", 1}, {"a", 2}, {"m", 3}}, `{"z":1,"a":2,"m":3}`},
		{"integer-like keys first, ascending", Object{{"b", 1}, {"10", 2}, {"a", 3}, {"2", 4}, {"0", 5}},
			`{"0":5,"2":4,"10":2,"b":1,"a":3}`},
		{"largest array index", Object{{"a", 1}, {"4294967295", 2}, {"4294967294", 3}},
			`{"4294967294":3,"a":1,"4294967295":2}`},
		{"non-canonical numbers keep insertion order", Object{{"01", 1}, {"-1", 2}, {"1.5", 3}, {" 1", 4}, {"1e3", 5}, {"", 6}},
			`{"01":1,"-1":2,"1.5":3," 1":4,"1e3":5,"":6}`},
		{"nested objects reorder too", Object{{"p", Object{{"x", 1}, {"1", 2}}}, {"q", []any{Object{{"k", nil}, {"7", true}}}}},
			`{"p":{"1":2,"x":1},"q":[{"7":true,"k":null}]}`},

		// Strings.
		{"html characters and slash literal", "<a href='/x'>&amp;</a>", `"<a href='/x'>&amp;</a>"`},
		{"line and paragraph separators literal", "a\u2028b\u2029c", "\"a\u2028b\u2029c\""},
		{"short escapes", "\"\\\b\f\n\r\t", `"\"\\\b\f\n\r\t"`},
		{"other controls as lowercase hex", "\x00\x01\x07\x0b\x0e\x1a\x1b\x1f", `"\u0000\u0001\u0007\u000b\u000e\u001a\u001b\u001f"`},
		{"space and DEL literal", " \x7f~", "\" \x7f~\""},
		{"BMP literal", "é 日本 \uffff", `"é 日本 ` + "\uffff" + `"`},
		{"astral literal", "😀\U0010ffff", `"😀` + "\U0010ffff" + `"`},
		{"empty string", "", `""`},
		{"escaped key", Object{{"a\"b\n", 1}}, `{"a\"b\n":1}`},

		// Numbers.
		{"1e-7", 1e-7, `1e-7`},
		{"1.5e-7", 1.5e-7, `1.5e-7`},
		{"0.000001", 0.000001, `0.000001`},
		{"1e21", 1e21, `1e+21`},
		{"1e20", 1e20, `100000000000000000000`},
		{"large double stays positional", 123456789012345680000.0, `123456789012345680000`},
		{"1.23e-18", 123e-20, `1.23e-18`},
		{"negative zero", math.Copysign(0, -1), `0`},
		{"0.1", 0.1, `0.1`},
		{"1.5", 1.5, `1.5`},
		{"float 100", 100.0, `100`},
		{"smallest denormal", 5e-324, `5e-324`},
		{"largest double", math.MaxFloat64, `1.7976931348623157e+308`},
		{"NaN", math.NaN(), `null`},
		{"infinity", math.Inf(1), `null`},
		{"negative infinity", math.Inf(-1), `null`},
		{"float32 widened", float32(0.1), `0.10000000149011612`},
		{"2^53", int64(1 << 53), `9007199254740992`},
		{"2^53+1 rounds", int64(1<<53 + 1), `9007199254740992`},
		{"-(2^53+1) rounds", int64(-(1<<53 + 1)), `-9007199254740992`},
		{"max uint64", uint64(math.MaxUint64), `18446744073709552000`},
		{"min int64", int64(math.MinInt64), `-9223372036854776000`},
		{"small ints", []any{int8(-8), int16(300), int32(-70000), uint8(255), uint16(65535), uint32(1 << 31), uint(7), uintptr(9)},
			`[-8,300,-70000,255,65535,2147483648,7,9]`},
		{"number 1.0", json.Number("1.0"), `1`},
		{"number -0", json.Number("-0"), `0`},
		{"number -0.0", json.Number("-0.0"), `0`},
		{"number 1E5", json.Number("1E5"), `100000`},
		{"number 2^53+1", json.Number("9007199254740993"), `9007199254740992`},
		{"number beyond 1e20", json.Number("123456789012345678901"), `123456789012345680000`},
		{"number overflow", json.Number("1e400"), `null`},
		{"number underflow", json.Number("-1e-400"), `0`},
		{"number timestamp", json.Number("1769963110555"), `1769963110555`},

		// Go types.
		{"nil", nil, `null`},
		{"bools", []any{true, false}, `[true,false]`},
		{"string slice", []string{"a", "\n"}, `["a","\n"]`},
		{"object slice", []Object{{{"a", 1}}, nil}, `[{"a":1},{}]`},
		{"nil slice", []any(nil), `[]`},
		{"empty object", Object{}, `{}`},
		{"named string and int", []any{AMID("5KQw"), UnixMillis(-1)}, `["5KQw",-1]`},
		{"named slice via reflection", []AMID{"a", "b"}, `["a","b"]`},
		{"int slice via reflection", []int{1, 2}, `[1,2]`},
		{"named object", namedObject{{"b", 1}, {"3", 2}}, `{"3":2,"b":1}`},
		{"ordered marshaler", Object{{"p", orderedPair{"x", "y"}}}, `{"p":{"second":"y","first":"x"}}`},

		// Raw JSON is re-encoded with its member order.
		{"raw keeps order", Object{{"request", json.RawMessage(`{"z": 1, "a": {"y": [1, 2.50, "x"], "b": null}}`)}},
			`{"request":{"z":1,"a":{"y":[1,2.5,"x"],"b":null}}}`},
		{"raw integer-like keys", json.RawMessage(`{"b":1,"1":2}`), `{"1":2,"b":1}`},
		{"raw escapes normalised", json.RawMessage(`"\u00e9\/\u2028\ud83d\ude00"`), "\"é/\u2028😀\""},
		{"raw numbers normalised", json.RawMessage(`[1.0, -0, 1E2, 0.1e1]`), `[1,0,100,1]`},
		{"empty raw is null", json.RawMessage(nil), `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalJS(tt.in)
			if err != nil {
				t.Fatalf("MarshalJS(%#v) error: %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalJS(%#v)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func nestedArrays(depth int) any {
	var v any = "leaf"
	for range depth {
		v = []any{v}
	}
	return v
}

// encodeErrorTests are the failures both encoders share.
var encodeErrorTests = []struct {
	name      string
	in        any
	wantErr   error // nil: any *EncodeError
	wantField string
}{
	{"map", map[string]any{"a": 1}, ErrUnsupportedType, ""},
	{"nested map", Object{{"req", Object{{"params", map[string]int{}}}}}, ErrUnsupportedType, "req.params"},
	{"struct", struct{ A int }{1}, ErrUnsupportedType, ""},
	{"pointer", Object{{"p", new(int)}}, ErrUnsupportedType, "p"},
	{"byte slice", []any{1, []byte("ab")}, ErrUnsupportedType, "[1]"},
	{"duplicate key", Object{{"a", 1}, {"b", 2}, {"a", 3}}, ErrDuplicateKey, "a"},
	{"duplicate key in array", Object{{"x", []any{1, Object{{"k", 1}, {"k", 2}}}}}, ErrDuplicateKey, "x[1].k"},
	{"duplicate key among many", manyKeys(40, "k7"), ErrDuplicateKey, "k7"},
	{"duplicate integer-like key", Object{{"1", 1}, {"1", 2}}, ErrDuplicateKey, "1"},
	{"invalid UTF-8 value", Object{{"s", "ok\xff"}}, ErrInvalidUTF8, "s"},
	{"invalid UTF-8 key", Object{{"k\xff", 1}}, ErrInvalidUTF8, `"k\xff"`},
	{"encoded surrogate", "\xed\xa0\x80", ErrInvalidUTF8, ""},
	{"invalid UTF-8 in string slice", []string{"ok", "\xc3"}, ErrInvalidUTF8, "[1]"},
	{"malformed number", json.Number("1."), nil, ""},
	{"number Infinity", Object{{"n", json.Number("Infinity")}}, nil, "n"},
	{"number with plus", json.Number("+1"), nil, ""},
	{"empty number", json.Number(""), nil, ""},
	{"raw duplicate key", Object{{"request", json.RawMessage(`{"a":1,"b":{"c":1,"c":2}}`)}}, ErrDuplicateKey, "request.b.c"},
	{"raw syntax error", json.RawMessage(`{"a":}`), nil, "a"},
	{"raw invalid UTF-8", json.RawMessage("[\"\xff\"]"), ErrInvalidUTF8, "[0]"},
	{"too deep", nestedArrays(MaxJSONDepth + 1), ErrTooDeep, strings.Repeat("[0]", MaxJSONDepth)},
	{"self-returning marshaler", selfMarshaler{}, ErrTooDeep, ""},
	{"failing marshaler", Object{{"m", failingMarshaler{}}}, errMarshalerFailed, "m"},
}

// manyKeys returns an Object with n distinct keys and dup appended, past
// the size where duplicate detection switches to a map.
func manyKeys(n int, dup string) Object {
	o := make(Object, 0, n+1)
	for i := range n {
		o = append(o, Member{"k" + strconv.Itoa(i), i})
	}
	return append(o, Member{dup, 0})
}

func TestMarshalJSErrors(t *testing.T) {
	for _, tt := range encodeErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalJS(tt.in)
			checkEncodeError(t, got, err, tt.wantErr, tt.wantField)

			dst := []byte("prefix")
			out, err := AppendJS(dst, tt.in)
			if err == nil || string(out) != "prefix" {
				t.Errorf("AppendJS on error = %q, %v; want dst unchanged and an error", out, err)
			}
		})
	}
}

func checkEncodeError(t *testing.T, got []byte, err, wantErr error, wantField string) {
	t.Helper()
	var ee *EncodeError
	if !errors.As(err, &ee) {
		t.Fatalf("error = %v (output %q), want *EncodeError", err, got)
	}
	if got != nil {
		t.Errorf("output = %q, want nil on error", got)
	}
	if wantErr != nil && !errors.Is(err, wantErr) {
		t.Errorf("error = %v, want errors.Is %v", err, wantErr)
	}
	if ee.Field != wantField {
		t.Errorf("error field = %q, want %q (error: %v)", ee.Field, wantField, err)
	}
}

func TestMarshalJSDepthLimit(t *testing.T) {
	if _, err := MarshalJS(nestedArrays(MaxJSONDepth)); err != nil {
		t.Errorf("MarshalJS at depth %d: %v", MaxJSONDepth, err)
	}
	var o any = "leaf"
	for range MaxJSONDepth + 1 {
		o = Object{{"k", o}}
	}
	if _, err := MarshalJS(o); !errors.Is(err, ErrTooDeep) {
		t.Errorf("MarshalJS of objects at depth %d: error %v, want ErrTooDeep", MaxJSONDepth+1, err)
	}
}

func TestMarshalJSDoesNotReorderInput(t *testing.T) {
	in := Object{{"b", 1}, {"2", 2}, {"1", 3}}
	if _, err := MarshalJS(in); err != nil {
		t.Fatal(err)
	}
	if in[0].Key != "b" || in[1].Key != "2" || in[2].Key != "1" {
		t.Errorf("MarshalJS changed its input to %v", in)
	}
}

func TestAppendAllocs(t *testing.T) {
	// Values are boxed once, outside the measured function: converting an
	// Object to any allocates its slice header.
	values := []struct {
		name string
		v    any
	}{
		{"knock", knockObject()},
		{"numbers and slices", Object{
			{"f", 1.5e-9}, {"f32", float32(2.5)}, {"i8", int8(3)},
			{"n", json.Number("1.25e3")}, {"big", json.Number("123456789012345678")},
			{"s", []string{"a", "é😀\n"}}, {"o", []Object{{{"1", 2}, {"a", 3}}}},
		}},
	}
	encoders := []struct {
		name   string
		append func([]byte, any) ([]byte, error)
	}{
		{"AppendJS", AppendJS},
		{"AppendPY", AppendPY},
	}
	for _, e := range encoders {
		for _, tt := range values {
			buf := make([]byte, 0, 1024)
			allocs := testing.AllocsPerRun(100, func() {
				buf, _ = e.append(buf[:0], tt.v)
			})
			if allocs != 0 {
				t.Errorf("%s of %s into a reused buffer: %v allocations, want 0", e.name, tt.name, allocs)
			}
		}
	}
}

// randString mixes ASCII, the characters with escaping rules, BMP and
// astral code points.
func randString(r *rand.Rand) string {
	special := []rune{'"', '\\', '\u2028', '\u2029', 0x7f, '<', '/', 0, '\n', 0x1f}
	var b []rune
	for range r.IntN(6) {
		switch r.IntN(4) {
		case 0:
			b = append(b, rune(r.IntN(0x80)))
		case 1:
			b = append(b, special[r.IntN(len(special))])
		case 2:
			b = append(b, rune(0x80+r.IntN(0xd800-0x80)))
		default:
			b = append(b, rune(0x10000+r.IntN(0x100000)))
		}
	}
	return string(b)
}

func randKey(r *rand.Rand) string {
	switch r.IntN(5) {
	case 0:
		return strconv.Itoa(r.IntN(1000))
	case 1:
		return []string{"4294967294", "4294967295", "01", "-1", "0"}[r.IntN(5)]
	}
	return randString(r)
}

// randValue returns a random encodable value. With finite set it avoids
// NaN and infinities, which json.dumps writes as non-JSON tokens.
func randValue(r *rand.Rand, depth int, finite bool) any {
	n := 10
	if depth >= 4 {
		n = 7
	}
	switch r.IntN(n) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return randString(r)
	case 3:
		return r.Int64() >> r.IntN(64)
	case 4:
		x := math.Float64frombits(r.Uint64())
		if finite && (math.IsNaN(x) || math.IsInf(x, 0)) {
			return 0.0
		}
		return x
	case 5:
		return r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
	case 6:
		x := r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30))
		return json.Number(strconv.FormatFloat(x, "eEf"[r.IntN(3)], -1, 64))
	case 7:
		return randObject(r, depth+1, finite)
	case 8:
		a := make([]any, r.IntN(4))
		for i := range a {
			a[i] = randValue(r, depth+1, finite)
		}
		return a
	}
	return []string{randString(r), randString(r)}
}

func randObject(r *rand.Rand, depth int, finite bool) Object {
	o := Object{}
	for range r.IntN(6) {
		k := randKey(r)
		if _, dup := o.Get(k); !dup {
			o = append(o, Member{k, randValue(r, depth, finite)})
		}
	}
	return o
}

func TestMarshalJSRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		x := randObject(r, 0, false)
		out, err := MarshalJS(x)
		if err != nil {
			t.Fatalf("case %d: MarshalJS(%#v): %v", i, x, err)
		}
		if !json.Valid(out) {
			t.Fatalf("case %d: MarshalJS output is not valid JSON: %s", i, out)
		}
		v, err := ParseOrdered(out)
		if err != nil {
			t.Fatalf("case %d: ParseOrdered(%s): %v", i, out, err)
		}
		again, err := MarshalJS(v)
		if err != nil {
			t.Fatalf("case %d: MarshalJS after ParseOrdered: %v", i, err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("case %d: re-encoding differs\n got %s\nwant %s", i, again, out)
		}
	}
}

func ExampleMarshalJS() {
	b, err := MarshalJS(Object{
		{"type", "ACCEPT"},
		{"params", Object{{"b", "<ok>"}, {"2", 1.0}, {"1", 1e21}}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	// Output: {"type":"ACCEPT","params":{"1":1e+21,"2":1,"b":"<ok>"}}
}

func BenchmarkMarshalJS(b *testing.B) {
	var knock any = knockObject()
	out, err := MarshalJS(knock)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf, _ = AppendJS(buf[:0], knock)
	}
}

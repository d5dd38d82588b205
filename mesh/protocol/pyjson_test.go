package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// Every expected output in this file is what Python 3's json.dumps returns
// for the same value with default arguments (or sort_keys=True where
// stated), derived from the json module's encoder: ensure_ascii escaping,
// separators ", " and ": ", float.__repr__ for floats and int.__repr__ for
// integers.

func TestMarshalPY(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"knock", knockObject(), `{"version": "agentmesh/0.2", "from": "5KQwrPbwdL6PhXujxW37FSSQZ1Jt", "to": "3vQB7B6MrGQZaxCuFg4oh9PyzG7h", ` +
			`"request": {"type": "one-shot", "ttl": 3600, "intent": {"capability": "weather/forecast", "action": "message", ` +
			`"params": {"city": "Z\u00fcrich", "days": 3}}, "priority": 5}, "timestamp": 1769963110555, "nonce": "9f86d081884c7d659a2feaa0c55ad015", ` +
			`"signature": "04HZgTrSnhz+IGT/jMlOdZHK6GJNbhiwAb1OCxPHGXIiMwvVKUe6JpcsSmmPZz1jOajjEsMlKssb9CHQd9pDBQ=="}`},
		{"PY-format KNOCK", Object{
			{"from", Object{{"amid", "5KQw"}, {"tier", 1.5}, {"display_name", nil}, {"reputation_score", 0.5}}},
			{"intent", Object{{"category", "travel"}, {"urgency", "normal"}}},
			{"timestamp", "2026-02-01T16:25:10.555123+00:00"},
		}, `{"from": {"amid": "5KQw", "tier": 1.5, "display_name": null, "reputation_score": 0.5}, ` +
			`"intent": {"category": "travel", "urgency": "normal"}, "timestamp": "2026-02-01T16:25:10.555123+00:00"}`},

		// Member order and separators.
		{"insertion order, integer-like keys not moved", Object{{"b", 1}, {"10", 2}, {"2", 3}}, `{"b": 1, "10": 2, "2": 3}`},
		{"nested separators", Object{{"a", []any{1, 2, Object{{"x", nil}}}}}, `{"a": [1, 2, {"x": null}]}`},
		{"empty containers", Object{{"a", Object{}}, {"b", []any{}}, {"c", []string(nil)}}, `{"a": {}, "b": [], "c": []}`},

		// Strings.
		{"html characters and slash literal", "<a href='/x'>&amp;</a>", `"<a href='/x'>&amp;</a>"`},
		{"line and paragraph separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"short escapes", "\"\\\b\f\n\r\t", `"\"\\\b\f\n\r\t"`},
		{"other controls as lowercase hex", "\x00\x01\x07\x0b\x0e\x1a\x1b\x1f", `"\u0000\u0001\u0007\u000b\u000e\u001a\u001b\u001f"`},
		{"space and tilde literal, DEL escaped", " ~\x7f", `" ~\u007f"`},
		{"BMP escaped", "é 日本 \u00ff\uffff", `"\u00e9 \u65e5\u672c \u00ff\uffff"`},
		{"astral as surrogate pair", "😀\U0010ffff\U00010000", `"\ud83d\ude00\udbff\udfff\ud800\udc00"`},
		{"escaped key", Object{{"é\n", 1}}, `{"\u00e9\n": 1}`},

		// Numbers: Go floats are Python floats.
		{"float 1.0", 1.0, `1.0`},
		{"float 100", 100.0, `100.0`},
		{"0.1", 0.1, `0.1`},
		{"1.5", 1.5, `1.5`},
		{"123.456", 123.456, `123.456`},
		{"0.0001", 0.0001, `0.0001`},
		{"0.00012345", 0.00012345, `0.00012345`},
		{"1e-05", 1e-5, `1e-05`},
		{"1e-07", 1e-7, `1e-07`},
		{"1e15 positional", 1e15, `1000000000000000.0`},
		{"largest positional", 9999999999999998.0, `9999999999999998.0`},
		{"1e16", 1e16, `1e+16`},
		{"1.5e16", 1.5e16, `1.5e+16`},
		{"1e21", 1e21, `1e+21`},
		{"smallest denormal", 5e-324, `5e-324`},
		{"largest double", math.MaxFloat64, `1.7976931348623157e+308`},
		{"zero", 0.0, `0.0`},
		{"negative zero", math.Copysign(0, -1), `-0.0`},
		{"NaN", math.NaN(), `NaN`},
		{"infinity", math.Inf(1), `Infinity`},
		{"negative infinity", math.Inf(-1), `-Infinity`},
		{"float32 widened", float32(0.1), `0.10000000149011612`},
		// Go integers are Python ints, exact at any size.
		{"2^53+1", int64(1<<53 + 1), `9007199254740993`},
		{"max uint64", uint64(math.MaxUint64), `18446744073709551615`},
		{"min int64", int64(math.MinInt64), `-9223372036854775808`},
		{"small ints", []any{int8(-8), uint16(65535), UnixMillis(1769963110555)}, `[-8, 65535, 1769963110555]`},
		// json.Number follows the literal: int unless it has '.', 'e' or 'E'.
		{"number 1.0", json.Number("1.0"), `1.0`},
		{"number 1", json.Number("1"), `1`},
		{"number -0", json.Number("-0"), `0`},
		{"number -0.0", json.Number("-0.0"), `-0.0`},
		{"number 1E5", json.Number("1E5"), `100000.0`},
		{"number 0.1e1", json.Number("0.1e1"), `1.0`},
		{"number big int", json.Number("123456789012345678901234567890"), `123456789012345678901234567890`},
		{"number 1e400", json.Number("1e400"), `Infinity`},
		{"number -1e400", json.Number("-1e400"), `-Infinity`},
		{"number -1e-400", json.Number("-1e-400"), `-0.0`},

		// Other values.
		{"None, True, False", []any{nil, true, false}, `[null, true, false]`},
		{"ordered marshaler", orderedPair{"x", "y"}, `{"second": "y", "first": "x"}`},
		{"raw keeps order", json.RawMessage(`{"z":1.0,"a":[1,"\u00e9"],"1":-0}`), `{"z": 1.0, "a": [1, "\u00e9"], "1": 0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalPY(tt.in)
			if err != nil {
				t.Fatalf("MarshalPY(%#v) error: %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalPY(%#v)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestMarshalPYSorted(t *testing.T) {
	// json.dumps(v, sort_keys=True) outputs.
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"top level", Object{{"b", 1}, {"a", 2}, {"c", 3}}, `{"a": 2, "b": 1, "c": 3}`},
		{"numeric strings sort as strings", Object{{"2", 1}, {"10", 2}, {"1", 3}}, `{"1": 3, "10": 2, "2": 1}`},
		{"code point order", Object{{"z", 1}, {"é", 2}, {"e", 3}, {"😀", 4}, {"\uffff", 5}, {"Z", 6}},
			`{"Z": 6, "e": 3, "z": 1, "\u00e9": 2, "\uffff": 5, "\ud83d\ude00": 4}`},
		{"nested objects sorted", Object{{"b", []any{Object{{"y", 1}, {"x", 2}}}}, {"a", Object{{"d", 1}, {"c", 2}}}},
			`{"a": {"c": 2, "d": 1}, "b": [{"x": 2, "y": 1}]}`},
		{"already sorted", Object{{"a", 1}, {"b", 2}}, `{"a": 1, "b": 2}`},
		{"DHT record", Object{{"signature", "sig"}, {"amid", "5KQw"}, {"timestamp", 1.7e9}, {"relay", "wss://r"}},
			`{"amid": "5KQw", "relay": "wss://r", "signature": "sig", "timestamp": 1700000000.0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalPYSorted(tt.in)
			if err != nil {
				t.Fatalf("MarshalPYSorted(%#v) error: %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalPYSorted(%#v)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}

	in := Object{{"b", 1}, {"a", 2}}
	if _, err := MarshalPYSorted(in); err != nil {
		t.Fatal(err)
	}
	if in[0].Key != "b" {
		t.Errorf("MarshalPYSorted reordered its input to %v", in)
	}
}

func TestMarshalPYErrors(t *testing.T) {
	for _, tt := range encodeErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalPY(tt.in)
			checkEncodeError(t, got, err, tt.wantErr, tt.wantField)

			got, err = MarshalPYSorted(tt.in)
			checkEncodeError(t, got, err, tt.wantErr, tt.wantField)

			out, err := AppendPY([]byte("prefix"), tt.in)
			if err == nil || string(out) != "prefix" {
				t.Errorf("AppendPY on error = %q, %v; want dst unchanged and an error", out, err)
			}
		})
	}
}

func TestMarshalPYRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		x := randObject(r, 0, true)
		out, err := MarshalPY(x)
		if err != nil {
			t.Fatalf("case %d: MarshalPY(%#v): %v", i, x, err)
		}
		if !json.Valid(out) {
			t.Fatalf("case %d: MarshalPY output is not valid JSON: %s", i, out)
		}
		if !isPrintableASCII(out) {
			t.Fatalf("case %d: MarshalPY output is not printable ASCII: %q", i, out)
		}
		v, err := ParseOrdered(out)
		if err != nil {
			t.Fatalf("case %d: ParseOrdered(%s): %v", i, out, err)
		}
		again, err := MarshalPY(v)
		if err != nil {
			t.Fatalf("case %d: MarshalPY after ParseOrdered: %v", i, err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("case %d: re-encoding differs\n got %s\nwant %s", i, again, out)
		}
	}
}

func isPrintableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// FuzzMarshalPYString checks that any valid string becomes printable ASCII
// that decodes back to the same string, and that invalid UTF-8 is refused.
func FuzzMarshalPYString(f *testing.F) {
	for _, s := range []string{"", "plain", "é日本😀", "\x00\x1f\x7f\"\\/", "\u2028\u2029\ufeff\uffff", "\U0010ffff", "bad\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := MarshalPY(s)
		if !utf8.ValidString(s) {
			if err == nil {
				t.Fatalf("MarshalPY(%q) = %s, want an error for invalid UTF-8", s, out)
			}
			return
		}
		if err != nil {
			t.Fatalf("MarshalPY(%q): %v", s, err)
		}
		if !isPrintableASCII(out) {
			t.Fatalf("MarshalPY(%q) = %q, not printable ASCII", s, out)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", out, err)
		}
		if back != s {
			t.Fatalf("MarshalPY(%q) = %s decodes to %q", s, out, back)
		}
	})
}

func BenchmarkMarshalPY(b *testing.B) {
	var knock any = knockObject()
	out, err := MarshalPY(knock)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf, _ = AppendPY(buf[:0], knock)
	}
}

package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParseOrdered(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"member order kept", `{"z":1,"a":2,"10":3,"2":4}`,
			Object{{"z", json.Number("1")}, {"a", json.Number("2")}, {"10", json.Number("3")}, {"2", json.Number("4")}}},
		{"nested", `{"request":{"type":"one-shot","intent":{"params":[1,{"x":null}]}}}`,
			Object{{"request", Object{{"type", "one-shot"}, {"intent", Object{{"params", []any{json.Number("1"), Object{{"x", nil}}}}}}}}}},
		{"numbers kept as written", `[1.0, -0, 1E5, 0.1e-2, 123456789012345678901234567890]`,
			[]any{json.Number("1.0"), json.Number("-0"), json.Number("1E5"), json.Number("0.1e-2"), json.Number("123456789012345678901234567890")}},
		{"literals", `[true,false,null]`, []any{true, false, nil}},
		{"whitespace", " \t\r\n{ \"a\" :\n[ ] , \"b\" : { } }\n ", Object{{"a", []any{}}, {"b", Object{}}}},
		{"empty object", `{}`, Object{}},
		{"empty array", `[]`, []any{}},
		{"top-level string", `"x"`, "x"},
		{"top-level number", `-12.5e+3`, json.Number("-12.5e+3")},
		{"top-level null", `null`, nil},
		{"short escapes", `"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t"},
		{"unicode escapes", `"\u00e9\u00E9\u0000\u2028"`, "éé\x00\u2028"},
		{"surrogate pair escape", `"\ud83d\ude00 \uDBFF\uDFFF"`, "😀 \U0010ffff"},
		{"raw UTF-8", `"é日本😀"`, "é日本😀"},
		{"escape after UTF-8", `"é\n日"`, "é\n日"},
		{"empty key", `{"":1}`, Object{{"", json.Number("1")}}},
		{"keys differing only by escapes", `{"a":1,"\u0062":2}`, Object{{"a", json.Number("1")}, {"b", json.Number("2")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOrdered([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseOrdered(%q) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseOrdered(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}
}

func nestedJSON(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

func TestParseOrderedErrors(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantErr   error // nil: any *DecodeError
		wantField string
	}{
		{"duplicate key", `{"a":1,"a":2}`, ErrDuplicateKey, "a"},
		{"duplicate key nested", `{"request":{"params":{"x":1,"y":2,"x":3}}}`, ErrDuplicateKey, "request.params.x"},
		{"duplicate key in array", `{"items":[{},{"k":1,"k":1}]}`, ErrDuplicateKey, "items[1].k"},
		{"duplicate key via escape", `{"a":1,"\u0061":2}`, ErrDuplicateKey, "a"},
		{"duplicate key among many", `{` + manyKeysJSON(40) + `,"k7":0}`, ErrDuplicateKey, "k7"},
		{"duplicate odd key is quoted", `{"a.b":1,"a.b":2}`, ErrDuplicateKey, `"a.b"`},
		{"trailing data", `{} x`, nil, ""},
		{"two values", `1 2`, nil, ""},
		{"trailing comma in array", `[1,]`, nil, "[1]"},
		{"trailing comma in object", `{"a":1,}`, nil, ""},
		{"invalid UTF-8 in string", "[\"a\xffb\"]", ErrInvalidUTF8, "[0]"},
		{"invalid UTF-8 in key", "{\"\xc3\":1}", ErrInvalidUTF8, ""},
		{"invalid UTF-8 after escape", "\"\\n\xe2\x82\"", ErrInvalidUTF8, ""},
		{"encoded surrogate", "\"\xed\xa0\x80\"", ErrInvalidUTF8, ""},
		{"invalid UTF-8 outside strings", "\xff", nil, ""},
		{"raw control character", "{\"a\":\"x\ny\"}", nil, "a"},
		{"raw control character after escape", "\"\\t\x01\"", nil, ""},
		{"lone high surrogate", `"\ud800"`, nil, ""},
		{"lone low surrogate", `"\udc00"`, nil, ""},
		{"high surrogate then letter", `"\ud800\u0041"`, nil, ""},
		{"high surrogate then text", `"\ud800abcdef"`, nil, ""},
		{"short unicode escape", `"\u12"`, nil, ""},
		{"bad unicode escape", `"\u12g4"`, nil, ""},
		{"unknown escape", `"\x41"`, nil, ""},
		{"unterminated string", `"abc`, nil, ""},
		{"unterminated escape", `"abc\`, nil, ""},
		{"unterminated object", `{"a":1`, nil, ""},
		{"unterminated array", `[1,2`, nil, ""},
		{"missing colon", `{"a" 1}`, nil, ""},
		{"missing value", `{"a":}`, nil, "a"},
		{"unquoted key", `{a:1}`, nil, ""},
		{"single quotes", `['a']`, nil, "[0]"},
		{"leading zero", `[01]`, nil, ""},
		{"bare minus", `-`, nil, ""},
		{"missing fraction digits", `1.`, nil, ""},
		{"leading dot", `.5`, nil, ""},
		{"plus sign", `+1`, nil, ""},
		{"missing exponent digits", `1e+`, nil, ""},
		{"NaN", `NaN`, nil, ""},
		{"Infinity", `[Infinity]`, nil, "[0]"},
		{"hex", `0x10`, nil, ""},
		{"truncated literal", `tru`, nil, ""},
		{"capitalised literal", `True`, nil, ""},
		{"empty input", ``, nil, ""},
		{"only whitespace", " \n", nil, ""},
		{"byte order mark", "\xef\xbb\xbf{}", nil, ""},
		{"comment", `{} // x`, nil, ""},
		{"too deep", nestedJSON(MaxJSONDepth + 1), ErrTooDeep, strings.Repeat("[0]", MaxJSONDepth)},
		{"too deep objects", strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1),
			ErrTooDeep, strings.TrimSuffix(strings.Repeat("a.", MaxJSONDepth), ".")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOrdered([]byte(tt.in))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("ParseOrdered(%q) = %#v, %v; want *DecodeError", tt.in, got, err)
			}
			if got != nil {
				t.Errorf("ParseOrdered(%q) value = %#v, want nil on error", tt.in, got)
			}
			if de.What != "JSON" {
				t.Errorf("error What = %q, want JSON", de.What)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want errors.Is %v", err, tt.wantErr)
			}
			if de.Field != tt.wantField {
				t.Errorf("error field = %q, want %q (error: %v)", de.Field, tt.wantField, err)
			}
		})
	}
}

func manyKeysJSON(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = `"k` + strconv.Itoa(i) + `":1`
	}
	return strings.Join(keys, ",")
}

func TestParseOrderedDepthLimit(t *testing.T) {
	if _, err := ParseOrdered([]byte(nestedJSON(MaxJSONDepth))); err != nil {
		t.Errorf("ParseOrdered at depth %d: %v", MaxJSONDepth, err)
	}
}

func TestParseOrderedDoesNotAliasInput(t *testing.T) {
	in := []byte(`{"key":"value"}`)
	v, err := ParseOrdered(in)
	if err != nil {
		t.Fatal(err)
	}
	copy(in, bytes.Repeat([]byte("x"), len(in)))
	want := Object{{"key", "value"}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("after overwriting the input, value = %#v, want %#v", v, want)
	}
}

func TestObjectGet(t *testing.T) {
	o := Object{{"a", 1}, {"b", nil}}
	tests := []struct {
		key    string
		want   any
		wantOK bool
	}{
		{"a", 1, true},
		{"b", nil, true},
		{"c", nil, false},
		{"", nil, false},
	}
	for _, tt := range tests {
		got, ok := o.Get(tt.key)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Get(%q) = %v, %v; want %v, %v", tt.key, got, ok, tt.want, tt.wantOK)
		}
	}
	if _, ok := Object(nil).Get("a"); ok {
		t.Error("Get on a nil Object reported a member")
	}
}

// FuzzParseOrdered checks that ParseOrdered never panics, accepts only valid
// JSON, and that whatever it accepts encodes to JS bytes that are a fixed
// point of parsing and encoding again.
func FuzzParseOrdered(f *testing.F) {
	for _, s := range []string{
		`{"version":"agentmesh/0.2","request":{"b":1,"10":2,"a":[1.0,-0,1e400,"\u2028"]}}`,
		`{"a":1,"a":2}`,
		`"\ud83d\ude00\ud800"`,
		`[1e-7, 1E21, 123456789012345678901, 5e-324, -0.0]`,
		nestedJSON(MaxJSONDepth),
		"[\"\xff\"]",
		`{"":{"0":{"4294967295":null}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseOrdered(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || v != nil {
				t.Fatalf("ParseOrdered error = %#v with value %#v; want *DecodeError and nil", err, v)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("ParseOrdered accepted invalid JSON %q", data)
		}
		out, err := MarshalJS(v)
		if err != nil {
			t.Fatalf("MarshalJS of parsed %q: %v", data, err)
		}
		if _, err := MarshalPY(v); err != nil {
			t.Fatalf("MarshalPY of parsed %q: %v", data, err)
		}
		v2, err := ParseOrdered(out)
		if err != nil {
			t.Fatalf("ParseOrdered(MarshalJS) of %q: %v (encoded %s)", data, err, out)
		}
		again, err := MarshalJS(v2)
		if err != nil {
			t.Fatalf("MarshalJS after re-parse: %v", err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("re-encoding of %q differs\n got %s\nwant %s", data, again, out)
		}
	})
}

func BenchmarkParseOrdered(b *testing.B) {
	data, err := MarshalJS(knockObject())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseOrdered(data); err != nil {
			b.Fatal(err)
		}
	}
}

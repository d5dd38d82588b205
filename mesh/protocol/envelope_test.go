package protocol

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// secretboxVector is the XSalsa20-Poly1305 output of PROTOCOL.md §4.1
// ("Hello, World!" under the vector key): nonce || tag || ciphertext.
const secretboxVector = "lke+rObpmDeAAC62SQR52cuwwS6WaIFnLeeZsnxezMifDIJ9KWIY4Xq/QVtOLdMcWFAgek8="

// dhCounting is base64 of the bytes 0, 1, …, 31.
const dhCounting = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func testEnvelope(t testing.TB) *EncryptedEnvelope {
	t.Helper()
	ct, err := base64.StdEncoding.DecodeString(secretboxVector)
	if err != nil {
		t.Fatal(err)
	}
	e := &EncryptedEnvelope{
		SessionID:  "session_0123456789abcdef0123456789abcdef",
		Header:     RatchetHeader{PN: 3, N: 7},
		Ciphertext: ct,
	}
	for i := range e.Header.DHPublicKey {
		e.Header.DHPublicKey[i] = byte(i)
	}
	return e
}

// expectDecodeErr fails unless err is a *DecodeError for field whose
// problem contains problem.
func expectDecodeErr(t *testing.T, err error, what, field, problem string) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want a *DecodeError", err, err)
	}
	if de.What != what || de.Field != field || !strings.Contains(de.Problem, problem) {
		t.Errorf("error = %q (what %q, field %q), want what %q, field %q, problem containing %q",
			err, de.What, de.Field, what, field, problem)
	}
}

func TestEnvelopeMarshalGolden(t *testing.T) {
	tests := []struct {
		name    string
		session string
		want    string
	}{
		{
			name:    "ts session id",
			session: "session_0123456789abcdef0123456789abcdef",
			want: `{"session_id":"session_0123456789abcdef0123456789abcdef","type":"encrypted",` +
				`"header":{"dh_public_key":"` + dhCounting + `","pn":3,"n":7},"ciphertext":"` + secretboxVector + `"}`,
		},
		{
			// JSON.stringify escapes only '"', '\' and controls; '/', '<',
			// non-ASCII and U+2028 stay literal.
			name:    "escapes as JSON.stringify",
			session: "a\"b\\c/d<e>\x01\x1f\n\t\u00e9\u2028",
			want: `{"session_id":"a\"b\\c/d<e>\u0001\u001f\n\t` + "\u00e9\u2028" + `","type":"encrypted",` +
				`"header":{"dh_public_key":"` + dhCounting + `","pn":3,"n":7},"ciphertext":"` + secretboxVector + `"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testEnvelope(t)
			e.SessionID = tt.session
			if got := string(e.Marshal()); got != tt.want {
				t.Errorf("Marshal() =\n%s\nwant\n%s", got, tt.want)
			}
			prefix := []byte("prefix:")
			if got := string(e.AppendMarshal(prefix)); got != "prefix:"+tt.want {
				t.Errorf("AppendMarshal(prefix) = %s", got)
			}
		})
	}
}

func TestEnvelopeMarshalLimits(t *testing.T) {
	e := testEnvelope(t)
	e.Header.PN = 1<<32 - 1
	e.Header.N = 1<<32 - 1
	got := string(e.Marshal())
	if !strings.Contains(got, `"pn":4294967295,"n":4294967295`) {
		t.Errorf("Marshal() = %s, want both counters 4294967295", got)
	}
	back, err := ParseEncryptedEnvelope([]byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Errorf("round trip = %+v, want %+v", back, e)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, size := range []int{MinCiphertextLen, 41, 42, 43, 1024, 65536} {
		e := testEnvelope(t)
		e.Ciphertext = bytes.Repeat([]byte{0xA5, 0x5A, 0x00}, size/3+1)[:size]
		got, err := ParseEncryptedEnvelope(e.Marshal())
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("size %d: round trip = %+v, want %+v", size, got, e)
		}
	}
}

func TestParseEncryptedEnvelopeAccepts(t *testing.T) {
	want := testEnvelope(t)
	tests := []struct {
		name  string
		input string
	}{
		{"reordered with whitespace", " {\n\t\"ciphertext\" : \"" + secretboxVector + "\" ,\r\n \"header\":{ \"n\":7, \"pn\" : 3 , \"dh_public_key\":\"" + dhCounting + "\"},\"type\":\"encrypted\",\"session_id\":\"session_0123456789abcdef0123456789abcdef\"} "},
		{"unknown members skipped", `{"v":[1,-2.5e3,{"x":[true,false,null,"s\"\\"]}],"session_id":"session_0123456789abcdef0123456789abcdef","type":"encrypted","header":{"extra":{},"dh_public_key":"` + dhCounting + `","pn":3,"n":7},"ciphertext":"` + secretboxVector + `","ad":"x"}`},
		{"escaped strings", `{"session_id":"session_0123456789abcdef\u0030123456789abcdef","type":"encr\u0079pted","header":{"dh_public_key":"` + dhCounting + `","pn":3,"n":7},"ciphertext":"` + strings.ReplaceAll(secretboxVector, "/", `\/`) + `"}`},
		{"escaped member name", `{"session\u005fid":"session_0123456789abcdef0123456789abcdef","type":"encrypted","header":{"dh_public_key":"` + dhCounting + `","pn":3,"n":7},"ciphertext":"` + secretboxVector + `"}`},
		{"prefixed ratchet key", `{"session_id":"session_0123456789abcdef0123456789abcdef","type":"encrypted","header":{"dh_public_key":"x25519:` + dhCounting + `","pn":3,"n":7},"ciphertext":"` + secretboxVector + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEncryptedEnvelope([]byte(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseEncryptedEnvelope = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseEncryptedEnvelopeRejects(t *testing.T) {
	const (
		sid = `"session_id":"s1"`
		typ = `"type":"encrypted"`
		hdr = `"header":{"dh_public_key":"` + dhCounting + `","pn":0,"n":0}`
		ct  = `"ciphertext":"` + secretboxVector + `"`
	)
	obj := func(members ...string) string { return "{" + strings.Join(members, ",") + "}" }
	header := func(pn, n string) string {
		return `"header":{"dh_public_key":"` + dhCounting + `","pn":` + pn + `,"n":` + n + `}`
	}
	tests := []struct {
		name    string
		input   string
		field   string
		problem string
	}{
		{"empty input", ``, "", "unexpected end of input"},
		{"array", `[]`, "", "must be a JSON object, got an array"},
		{"null", `null`, "", "must be a JSON object, got null"},
		{"truncated", obj(sid, typ, hdr, ct)[:40], "", "malformed JSON"},
		{"trailing data", obj(sid, typ, hdr, ct) + `{}`, "", "want end of input"},
		{"trailing comma", `{` + sid + `,}`, "", "want a member name"},
		{"missing session_id", obj(typ, hdr, ct), "session_id", "missing"},
		{"missing type", obj(sid, hdr, ct), "type", "missing"},
		{"missing header", obj(sid, typ, ct), "header", "missing"},
		{"missing ciphertext", obj(sid, typ, hdr), "ciphertext", "missing"},
		{"missing n", obj(sid, typ, `"header":{"dh_public_key":"`+dhCounting+`","pn":0}`, ct), "header.n", "missing"},
		{"missing dh_public_key", obj(sid, typ, `"header":{"pn":0,"n":0}`, ct), "header.dh_public_key", "missing"},
		{"duplicate session_id", obj(sid, sid, typ, hdr, ct), "session_id", "duplicate member"},
		{"duplicate n", obj(sid, typ, `"header":{"dh_public_key":"`+dhCounting+`","pn":0,"n":0,"n":1}`, ct), "header.n", "duplicate member"},
		{"wrong type", obj(sid, `"type":"plain"`, hdr, ct), "type", `want "encrypted", got "plain"`},
		{"type not a string", obj(sid, `"type":1`, hdr, ct), "type", "must be a string, got a number"},
		{"empty session_id", obj(`"session_id":""`, typ, hdr, ct), "session_id", "empty"},
		{"session_id a number", obj(`"session_id":5`, typ, hdr, ct), "session_id", "must be a string, got a number"},
		{"session_id too long", obj(`"session_id":"`+strings.Repeat("é", 129)+`"`, typ, hdr, ct), "session_id", "longer than 128 characters"},
		{"session_id invalid UTF-8", obj("\"session_id\":\"\xff\"", typ, hdr, ct), "session_id", "not valid UTF-8"},
		{"header not an object", obj(sid, typ, `"header":[]`, ct), "header", "must be an object, got an array"},
		{"pn a float", obj(sid, typ, header("1.5", "0"), ct), "header.pn", "must be an integer, got 1.5"},
		{"pn in exponent form", obj(sid, typ, header("1e3", "0"), ct), "header.pn", "must be an integer"},
		{"pn negative", obj(sid, typ, header("-1", "0"), ct), "header.pn", "must not be negative"},
		{"n over uint32", obj(sid, typ, header("0", "4294967296"), ct), "header.n", "exceeds 4294967295"},
		{"n far over uint32", obj(sid, typ, header("0", "123456789012345678901234567890"), ct), "header.n", "exceeds 4294967295"},
		{"n a string", obj(sid, typ, header("0", `"1"`), ct), "header.n", "must be an integer, got a string"},
		{"n with leading zero", obj(sid, typ, header("0", "01"), ct), "", "malformed JSON"},
		{"dh key unpadded", obj(sid, typ, `"header":{"dh_public_key":"`+strings.TrimRight(dhCounting, "=")+`","pn":0,"n":0}`, ct), "header.dh_public_key", "not standard padded base64 of 32 bytes"},
		{"dh key 31 bytes", obj(sid, typ, `"header":{"dh_public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","pn":0,"n":0}`, ct), "header.dh_public_key", "32 bytes"},
		{"dh key 33 bytes", obj(sid, typ, `"header":{"dh_public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","pn":0,"n":0}`, ct), "header.dh_public_key", "32 bytes"},
		{"dh key url-safe", obj(sid, typ, `"header":{"dh_public_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-_","pn":0,"n":0}`, ct), "header.dh_public_key", "base64"},
		{"dh key very long", obj(sid, typ, `"header":{"dh_public_key":"`+strings.Repeat("A", 4000)+`","pn":0,"n":0}`, ct), "header.dh_public_key", "base64"},
		{"ciphertext unpadded", obj(sid, typ, hdr, `"ciphertext":"`+strings.TrimRight(secretboxVector, "=")+`"`), "ciphertext", "not standard padded base64"},
		{"ciphertext with escaped newline", obj(sid, typ, hdr, `"ciphertext":"`+secretboxVector[:4]+`\n`+secretboxVector[4:]+`"`), "ciphertext", "not standard padded base64"},
		{"ciphertext non-canonical padding bits", obj(sid, typ, hdr, `"ciphertext":"`+strings.Repeat("A", 52)+`AB=="`), "ciphertext", "not standard padded base64"},
		{"ciphertext too short", obj(sid, typ, hdr, `"ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`), "ciphertext", "39 bytes, shorter than nonce and tag (40)"},
		{"ciphertext empty", obj(sid, typ, hdr, `"ciphertext":""`), "ciphertext", "0 bytes"},
		{"raw control character", obj("\"session_id\":\"a\tb\"", typ, hdr, ct), "", "no control character"},
		{"bad escape", obj(`"session_id":"\x41"`, typ, hdr, ct), "", "want a valid escape"},
		{"unterminated string", `{"session_id":"abc`, "", "unexpected end of input"},
		{"bad literal", obj(`"x":nul`, sid, typ, hdr, ct), "", "malformed JSON"},
		{"deep nesting", `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "", "nested deeper than 32 levels"},
		{"huge input", `{"x":"` + strings.Repeat("A", MaxFrameSize) + `"}`, "", "limit 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEncryptedEnvelope([]byte(tt.input))
			if got != nil {
				t.Errorf("ParseEncryptedEnvelope returned %+v with error %v, want nil", got, err)
			}
			expectDecodeErr(t, err, "encrypted envelope", tt.field, tt.problem)
		})
	}
}

func TestEnvelopeErrorsDoNotEchoKeys(t *testing.T) {
	// A key-like value that is not valid base64 must not appear in the error.
	secret := "SECRETSECRETSECRETSECRETSECRETSECRETSECRE!="
	in := `{"session_id":"s","type":"encrypted","header":{"dh_public_key":"` + secret + `","pn":0,"n":0},"ciphertext":"` + secret + `"}`
	_, err := ParseEncryptedEnvelope([]byte(in))
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error = %v, want an error without the value", err)
	}
}

func TestRatchetHeaderKey(t *testing.T) {
	tests := []struct {
		name string
		h    RatchetHeader
		want string
	}{
		{"zero", RatchetHeader{}, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:0"},
		{"counting, pn ignored", testEnvelope(t).Header, dhCounting + ":7"},
		{"max", RatchetHeader{N: 1<<32 - 1}, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:4294967295"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Key(); got != tt.want {
				t.Errorf("Key() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEnvelopeAllocs(t *testing.T) {
	e := testEnvelope(t)
	e.Ciphertext = make([]byte, 1024)
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = e.AppendMarshal(buf[:0]) }); n != 0 {
		t.Errorf("AppendMarshal into a large buffer: %v allocations, want 0", n)
	}
	data := e.Marshal()
	// The envelope, its session id and its ciphertext.
	if n := testing.AllocsPerRun(100, func() {
		if _, err := ParseEncryptedEnvelope(data); err != nil {
			t.Fatal(err)
		}
	}); n > 3 {
		t.Errorf("ParseEncryptedEnvelope: %v allocations, want at most 3", n)
	}
}

func FuzzParseEncryptedEnvelope(f *testing.F) {
	f.Add(testEnvelope(f).Marshal())
	f.Add([]byte(`{"session_id":"s","type":"encrypted","header":{"dh_public_key":"` + dhCounting + `","pn":1,"n":2},"ciphertext":"` + secretboxVector + `","x":[{}]}`))
	f.Add([]byte(`{"session_id":"\ud83d\ude00\ud800","type":"encrypted","header":{"n":0,"pn":0,"dh_public_key":"x25519:` + dhCounting + `"},"ciphertext":"` + secretboxVector + `"}`))
	f.Add([]byte(`{"header":{"pn":1.5}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEncryptedEnvelope(data)
		if err != nil {
			if e != nil {
				t.Fatalf("error %v with non-nil envelope", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is %T, want *DecodeError", err, err)
			}
			return
		}
		out := e.Marshal()
		back, err := ParseEncryptedEnvelope(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("round trip changed the envelope: %+v, want %+v", back, e)
		}
		if again := back.Marshal(); !bytes.Equal(again, out) {
			t.Fatalf("Marshal is not stable: %s, then %s", out, again)
		}
	})
}

func BenchmarkEnvelopeMarshal(b *testing.B) {
	e := testEnvelope(b)
	e.Ciphertext = make([]byte, 1024)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(e.Marshal())))
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendMarshal(buf[:0])
	}
}

func BenchmarkEnvelopeParse(b *testing.B) {
	e := testEnvelope(b)
	e.Ciphertext = make([]byte, 1024)
	data := e.Marshal()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEncryptedEnvelope(data); err != nil {
			b.Fatal(err)
		}
	}
}

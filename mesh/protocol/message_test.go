package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2026, 2, 1, 16, 25, 10, 555123000, time.UTC)

func TestMessageRoundTrip(t *testing.T) {
	for _, tt := range testPayloads {
		t.Run(tt.name, func(t *testing.T) {
			m := &Message{
				Type:      tt.payload.PayloadType(),
				SessionID: "sess_0123456789abcdef0123456789abcdef",
				Sequence:  42,
				Timestamp: testTime,
				Payload:   tt.payload,
				Schema:    "agentmesh/travel/flight-search/v1",
			}
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseMessage(data)
			if err != nil {
				t.Fatalf("ParseMessage(%s): %v", data, err)
			}
			if !m.Type.Known() {
				m.Warnings = []string{`unknown payload type "x-acme/bid": processed as generic`}
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("round trip =\n%#v\nwant\n%#v", got, m)
			}
		})
	}
}

func TestMessageMarshalGolden(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{
			"request, type from payload, no HTML escaping",
			Message{
				SessionID: "s<1>", Sequence: 0, Timestamp: testTime,
				Payload: &Request{Intent: "a&b", Parameters: json.RawMessage(`{ "q" : "<x>" }`)},
			},
			`{"type":"request","session_id":"s<1>","sequence":0,"timestamp":"2026-02-01T16:25:10.555123+00:00",` +
				`"payload":{"type":"request","intent":"a&b","parameters":{"q":"<x>"},"priority":"normal"}}`,
		},
		{
			"status with schema, whole-second timestamp",
			Message{
				Type: PayloadStatus, SessionID: "s", Sequence: 18446744073709551615,
				Timestamp: time.Date(2026, 2, 1, 18, 25, 10, 999, time.FixedZone("", 2*3600)),
				Payload:   &Status{Progress: 0.5}, Schema: "x-acme/status/v1",
			},
			`{"type":"status","session_id":"s","sequence":18446744073709551615,"timestamp":"2026-02-01T16:25:10+00:00",` +
				`"payload":{"type":"status","progress":0.5},"schema":"x-acme/status/v1"}`,
		},
		{
			"opaque message is written as is",
			Message{Payload: &Generic{Raw: json.RawMessage(`{"hello":"world"}`)}},
			`{"hello":"world"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.msg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Marshal =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestParseMessageShapes(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  *Message
	}{
		{
			"python envelope",
			`{"type": "close", "session_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "sequence": 3, "timestamp": "2026-02-01T16:25:10.555123+00:00", "payload": {"reason": "completed", "reputation_feedback": 0.8}}`,
			&Message{
				Type: PayloadClose, SessionID: "0f8fad5b-d9cb-469f-a165-70867728950e", Sequence: 3, Timestamp: testTime,
				Payload: &Close{Reason: CloseCompleted, ReputationFeedback: &Feedback{Score: 0.8}},
			},
		},
		{
			"unknown payload type",
			`{"type":"capability_negotiation","session_id":"s","sequence":0,"timestamp":"2026-02-01T16:25:10.555123Z","payload":{"i_need":["x"]}}`,
			&Message{
				Type: "capability_negotiation", SessionID: "s", Timestamp: testTime,
				Payload:  &Generic{Type: "capability_negotiation", Raw: json.RawMessage(`{"i_need":["x"]}`)},
				Warnings: []string{`unknown payload type "capability_negotiation": processed as generic`},
			},
		},
		{
			"ts application object",
			`{"action":"search","query":"shoes","type":null}`,
			&Message{
				Payload:  &Generic{Raw: json.RawMessage(`{"action":"search","query":"shoes","type":null}`)},
				Warnings: []string{"no type or payload member: kept as an opaque application message"},
			},
		},
		{
			"ts object with odd member types",
			`{"sequence":"first","timestamp":1769963110555}`,
			&Message{
				Payload:  &Generic{Raw: json.RawMessage(`{"sequence":"first","timestamp":1769963110555}`)},
				Warnings: []string{"no type or payload member: kept as an opaque application message"},
			},
		},
		{
			"python flat request",
			`{"type":"request","intent":{"category":"travel"},"parameters":{}}`,
			&Message{
				Type:     PayloadRequest,
				Payload:  &Generic{Type: "request", Raw: json.RawMessage(`{"type":"request","intent":{"category":"travel"},"parameters":{}}`)},
				Warnings: []string{`no payload member: flat "request" message kept as generic`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessage([]byte(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMessage =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestParseMessageRejects(t *testing.T) {
	const (
		head = `"session_id":"s","sequence":1,"timestamp":"2026-02-01T16:25:10Z"`
		prog = `"payload":{"progress":0.5}`
	)
	tests := []struct {
		name    string
		input   string
		field   string
		problem string
	}{
		{"empty", ``, "", "malformed JSON"},
		{"array", `[{"type":"status"}]`, "", "must be a JSON object, got JSON array"},
		{"string", `"hello"`, "", "must be a JSON object, got JSON string"},
		{"null", `null`, "", "must be a JSON object, got null"},
		{"huge", `{"x":"` + strings.Repeat("a", MaxFrameSize) + `"}`, "", "limit 1048576"},
		{"payload without type", `{` + head + `,` + prog + `}`, "type", "missing"},
		{"flat message type a number", `{"type":5}`, "type", "must be a string, got JSON number"},
		{"type a number", `{"type":5,` + head + `,` + prog + `}`, "type", "must be a string, got JSON number"},
		{"empty type", `{"type":"",` + head + `,` + prog + `}`, "type", "empty"},
		{"missing session_id", `{"type":"status","sequence":1,"timestamp":"2026-02-01T16:25:10Z",` + prog + `}`, "session_id", "missing"},
		{"missing sequence", `{"type":"status","session_id":"s","timestamp":"2026-02-01T16:25:10Z",` + prog + `}`, "sequence", "missing"},
		{"negative sequence", `{"type":"status","session_id":"s","sequence":-1,"timestamp":"2026-02-01T16:25:10Z",` + prog + `}`, "sequence", "must be a non-negative integer in range, got JSON number -1"},
		{"fractional sequence", `{"type":"status","session_id":"s","sequence":1.5,"timestamp":"2026-02-01T16:25:10Z",` + prog + `}`, "sequence", "got JSON number 1.5"},
		{"sequence overflow", `{"type":"status","session_id":"s","sequence":18446744073709551616,"timestamp":"2026-02-01T16:25:10Z",` + prog + `}`, "sequence", "got JSON number 18446744073709551616"},
		{"missing timestamp", `{"type":"status","session_id":"s","sequence":1,` + prog + `}`, "timestamp", "missing"},
		{"millisecond timestamp", `{"type":"status","session_id":"s","sequence":1,"timestamp":1769963110555,` + prog + `}`, "timestamp", "must be a string, got JSON number"},
		{"bad timestamp", `{"type":"status","session_id":"s","sequence":1,"timestamp":"2026-13-01T00:00:00Z",` + prog + `}`, "timestamp", "field out of range"},
		{"timestamp out of range", `{"type":"status","session_id":"s","sequence":1,"timestamp":"0000-01-01T00:00:00+00:01",` + prog + `}`, "timestamp", "year -1 in UTC is out of range"},
		{"payload an array", `{"type":"status",` + head + `,"payload":[0.5]}`, "payload", "must be a JSON object, got JSON array"},
		{"payload a string", `{"type":"x",` + head + `,"payload":"opaque"}`, "payload", "must be a JSON object, got JSON string"},
		{"payload type mismatch", `{"type":"status",` + head + `,"payload":{"type":"close","progress":0.5}}`, "payload.type", `"close" does not match the message type "status"`},
		{"bad payload", `{"type":"status",` + head + `,"payload":{"progress":1.2}}`, "payload.progress", "must be at most 1, got 1.2"},
		{"schema a number", `{"type":"status",` + head + `,` + prog + `,"schema":1}`, "schema", "must be a string, got JSON number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessage([]byte(tt.input))
			if got != nil {
				t.Errorf("ParseMessage returned %#v with error %v, want nil", got, err)
			}
			expectDecodeErr(t, err, "message", tt.field, tt.problem)
		})
	}
}

func TestMessageMarshalRejects(t *testing.T) {
	tests := []struct {
		name    string
		msg     Message
		field   string
		problem string
	}{
		{"no payload", Message{Type: PayloadStatus}, "payload", "missing"},
		{"type mismatch", Message{Type: PayloadClose, Payload: &Status{}}, "type", `"close" does not match the payload type "status"`},
		{"type on opaque", Message{Type: PayloadStatus, Payload: &Generic{Raw: json.RawMessage(`{}`)}}, "type", "set on an opaque message"},
		{"opaque not an object", Message{Payload: &Generic{Raw: json.RawMessage(`[1]`)}}, "payload", "must be a JSON object"},
		{"invalid payload", Message{Payload: &Status{Progress: 2}}, "payload.progress", "must be at most 1"},
		{"invalid request", Message{Payload: &Request{}}, "payload.intent", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.msg.Marshal()
			if got != nil {
				t.Errorf("Marshal = %s, want nil", got)
			}
			expectDecodeErr(t, err, "message", tt.field, tt.problem)
		})
	}
}

func TestOpaqueMessageRoundTrip(t *testing.T) {
	in := []byte(`{"from":"x","payload_kind":"chat","text":"<b>hi</b>"}`)
	m, err := ParseMessage(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Errorf("Marshal = %s, want the original %s", out, in)
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, tt := range testPayloads {
		m := &Message{SessionID: "s", Sequence: 1, Timestamp: testTime, Payload: tt.payload}
		data, err := m.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"type":"request","intent":{"category":"travel"},"parameters":{}}`))
	f.Add([]byte(`{"hello":"world"}`))
	f.Add([]byte(`{"type":"close","session_id":"s","sequence":0,"timestamp":"2026-02-01T16:25:10-23:59","payload":{"reason":"x","reputation_feedback":{"score":1,"tags":["a"]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(data)
		if err != nil {
			if m != nil {
				t.Fatalf("error %v with non-nil message", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is %T, want *DecodeError", err, err)
			}
			return
		}
		if g, ok := m.Payload.(*Generic); ok && g.Type != "" && m.Type.Known() {
			// A flat message of a known type: Marshal wraps it in an
			// envelope whose payload need not decode as that type.
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", m, err)
		}
		back, err := ParseMessage(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		again, err := back.Marshal()
		if err != nil {
			t.Fatalf("Marshal after re-parsing: %v", err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("Marshal is not stable:\n%s\nthen\n%s", out, again)
		}
	})
}

package protocol

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// AMIDs of the Ed25519 keys whose seeds are 32 bytes of 1, 2 and 3.
const (
	amidA = "jPUMBAvNeJo8USHNtJ81Wm7cqnk"
	amidB = "2Uq51iFVLnqmgbVY3vLZtMD5PR87"
	amidC = "3YDAM5ZLRKg7eHH1Zs6sSMwkga8w"
)

func ptr[T any](v T) *T { return &v }

var testCandidates = []ICECandidate{
	{Candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", SDPMid: ptr("0"), SDPMLineIndex: ptr(0)},
	{Candidate: "candidate:2 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active"},
}

func TestClientFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		frame ClientFrame
	}{
		{"connect", Connect{Protocol: ProtocolVersion, AMID: amidA, PublicKey: "ed25519:AAAA", Signature: "c2ln", Timestamp: "2026-02-01T16:25:10.555+00:00", P2PCapable: true}},
		{"connect legacy", Connect{Protocol: LegacyProtocolVersion, AMID: amidA, PublicKey: "AAAA", Signature: "c2ln", Timestamp: "2026-02-01T16:25:10Z"}},
		{"send", Send{To: amidB, EncryptedPayload: `{"session_id":"s"}`, MessageType: MessageTypeMessage}},
		{"send with candidates", Send{To: amidB, EncryptedPayload: "x", MessageType: MessageTypeKnock, ICECandidates: testCandidates}},
		{"send with empty candidates", Send{To: amidB, EncryptedPayload: "", MessageType: MessageTypeOptimistic, ICECandidates: []ICECandidate{}}},
		{"presence", Presence{Status: PresenceDND}},
		{"presence query", PresenceQuery{AMID: amidC}},
		{"ice offer", ICEOffer{To: amidB, SDP: "v=0\r\n", Candidates: testCandidates}},
		{"ice answer", ICEAnswer{To: amidB, SDP: "v=0\r\n", Candidates: []ICECandidate{}}},
		{"p2p established", P2PEstablished{Peer: amidC}},
		{"ping", Ping{Timestamp: "2026-02-01T16:25:10.555123456Z"}},
		{"disconnect", Disconnect{Reason: "bye"}},
		{"get pending messages", GetPendingMessages{}},
		{"ack", Ack{MessageID: "0f8fad5b-d9cb-469f-a165-70867728950e"}},
		{"nack", Nack{MessageID: "0f8fad5b-d9cb-469f-a165-70867728950e", Reason: "processing_failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := MarshalFrame(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseClientFrame(data)
			if err != nil {
				t.Fatalf("ParseClientFrame(%s): %v", data, err)
			}
			if !reflect.DeepEqual(got, tt.frame) {
				t.Errorf("round trip = %#v, want %#v", got, tt.frame)
			}
			if got.FrameType() != tt.frame.FrameType() {
				t.Errorf("FrameType() = %q, want %q", got.FrameType(), tt.frame.FrameType())
			}
		})
	}
}

func TestServerFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		frame ServerFrame
	}{
		{"connected", Connected{SessionID: "0f8fad5b-d9cb-469f-a165-70867728950e", PendingMessages: 3}},
		{"receive", Receive{From: amidA, EncryptedPayload: "p", MessageType: MessageTypeAccept, Timestamp: "2026-02-01T16:25:10.555123456Z"}},
		{"stored receive", Receive{From: amidA, EncryptedPayload: "p", MessageType: MessageTypeMessage, Timestamp: "2026-02-01T16:25:10Z", MessageID: "0f8fad5b-d9cb-469f-a165-70867728950e"}},
		{"receive with candidates", Receive{From: amidA, EncryptedPayload: "p", MessageType: MessageTypeMessage, Timestamp: "2026-02-01T16:25:10Z", ICECandidates: testCandidates}},
		{"presence response online", PresenceResponse{AMID: amidB, Status: PresenceOnline, LastSeen: "2026-02-01T16:25:10.5Z"}},
		{"presence response offline", PresenceResponse{AMID: amidB, Status: PresenceOffline}},
		{"error", ErrorFrame{Code: RelayRateLimited, Message: "Rate limit exceeded", RetryAfterSeconds: ptr(42)}},
		{"error without retry", ErrorFrame{Code: RelayRecipientOffline, Message: "Agent x is offline"}},
		{"error with unknown code", ErrorFrame{Code: "NEW_CODE", Message: "m"}},
		{"pong", Pong{Timestamp: "2026-02-01T16:25:10.555Z"}},
		{"ice offer", ICEOffer{To: amidA, SDP: "v=0", Candidates: testCandidates}},
		{"ice answer", ICEAnswer{To: amidA, SDP: "v=0", Candidates: testCandidates[:1]}},
		{"p2p established", P2PEstablished{Peer: amidA}},
		{"pending messages", PendingMessages{Messages: []PendingMessage{
			{ID: "1", From: amidA, EncryptedPayload: "a", MessageType: MessageTypeKnock, Timestamp: 1769963110555},
			{ID: "2", From: amidB, EncryptedPayload: "b", MessageType: MessageTypeMessage, Timestamp: 1769963110556},
		}}},
		{"no pending messages", PendingMessages{Messages: []PendingMessage{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := MarshalFrame(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseServerFrame(data)
			if err != nil {
				t.Fatalf("ParseServerFrame(%s): %v", data, err)
			}
			if !reflect.DeepEqual(got, tt.frame) {
				t.Errorf("round trip = %#v, want %#v", got, tt.frame)
			}
		})
	}
}

// TestConnectCarriesSignedTimestamp checks that a CONNECT keeps the signed
// timestamp string byte for byte, so the relay can verify it.
func TestConnectCarriesSignedTimestamp(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	pub := priv.Public().(ed25519.PublicKey)
	now := time.Date(2026, 2, 1, 16, 25, 10, 120e6, time.UTC)
	// A JS-style timestamp, which the relay's re-rendering would change.
	ts := "2026-02-01T16:25:10.120Z"
	data, err := MarshalFrame(Connect{
		Protocol:  ProtocolVersion,
		AMID:      DeriveAMID(pub),
		PublicKey: B64.EncodeToString(pub),
		Signature: SignTimestamp(priv, ts),
		Timestamp: ts,
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseClientFrame(data)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := f.(Connect)
	if !ok {
		t.Fatalf("ParseClientFrame = %T, want Connect", f)
	}
	if c.AMID != amidA || c.Timestamp != ts {
		t.Errorf("AMID, Timestamp = %q, %q; want %q, %q", c.AMID, c.Timestamp, amidA, ts)
	}
	if _, err := VerifyConnect(c.AMID, c.PublicKey, c.Timestamp, c.Signature, now); err != nil {
		t.Errorf("VerifyConnect: %v", err)
	}
}

func TestMarshalFrameGolden(t *testing.T) {
	tests := []struct {
		name  string
		frame Frame
		want  string
	}{
		{
			"connect",
			Connect{Protocol: ProtocolVersion, AMID: amidA, PublicKey: "AAAA", Signature: "c2ln", Timestamp: "2026-02-01T16:25:10.555+00:00"},
			`{"type":"connect","protocol":"agentmesh/0.2","amid":"` + amidA + `","public_key":"AAAA","signature":"c2ln","timestamp":"2026-02-01T16:25:10.555+00:00","p2p_capable":false}`,
		},
		{
			"send omits absent candidates",
			Send{To: amidB, EncryptedPayload: `{"a":"<&>"}`, MessageType: MessageTypeMessage},
			`{"type":"send","to":"` + amidB + `","encrypted_payload":"{\"a\":\"<&>\"}","message_type":"message"}`,
		},
		{
			"send writes candidate nulls",
			Send{To: amidB, EncryptedPayload: "x", MessageType: MessageTypeKnock, ICECandidates: testCandidates},
			`{"type":"send","to":"` + amidB + `","encrypted_payload":"x","message_type":"knock","ice_candidates":[` +
				`{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host","sdp_mid":"0","sdp_mline_index":0},` +
				`{"candidate":"candidate:2 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active","sdp_mid":null,"sdp_mline_index":null}]}`,
		},
		{
			"ice offer with nil candidates writes an empty array",
			&ICEOffer{To: amidB, SDP: "v=0\r\n"},
			`{"type":"ice_offer","to":"` + amidB + `","sdp":"v=0\r\n","candidates":[]}`,
		},
		{"p2p established", P2PEstablished{Peer: amidC}, `{"type":"p2_p_established","peer":"` + amidC + `"}`},
		{"presence", Presence{Status: PresenceAway}, `{"type":"presence","status":"away"}`},
		{"presence query", PresenceQuery{AMID: amidC}, `{"type":"presence_query","amid":"` + amidC + `"}`},
		{"ping", Ping{Timestamp: "2026-02-01T16:25:10Z"}, `{"type":"ping","timestamp":"2026-02-01T16:25:10Z"}`},
		{"disconnect", Disconnect{Reason: "line\nbreak \u2028 \x7f"}, `{"type":"disconnect","reason":"line\nbreak ` + "\u2028 \x7f" + `"}`},
		{"get pending messages", GetPendingMessages{}, `{"type":"get_pending_messages"}`},
		{"ack", Ack{MessageID: "m1"}, `{"type":"ack","message_id":"m1"}`},
		{"nack", Nack{MessageID: "m1", Reason: "processing_failed"}, `{"type":"nack","message_id":"m1","reason":"processing_failed"}`},
		{"connected", Connected{SessionID: "u", PendingMessages: 2}, `{"type":"connected","session_id":"u","pending_messages":2}`},
		{
			"receive",
			Receive{From: amidA, EncryptedPayload: "p", MessageType: MessageTypeReject, Timestamp: "2026-02-01T16:25:10.555123456Z"},
			`{"type":"receive","from":"` + amidA + `","encrypted_payload":"p","message_type":"reject","timestamp":"2026-02-01T16:25:10.555123456Z"}`,
		},
		{
			"presence response omits empty last_seen",
			PresenceResponse{AMID: amidA, Status: PresenceOffline},
			`{"type":"presence_response","amid":"` + amidA + `","status":"offline"}`,
		},
		{
			"presence response with last_seen",
			PresenceResponse{AMID: amidA, Status: PresenceOnline, LastSeen: "2026-02-01T16:25:10Z"},
			`{"type":"presence_response","amid":"` + amidA + `","status":"online","last_seen":"2026-02-01T16:25:10Z"}`,
		},
		{
			"error omits absent retry",
			ErrorFrame{Code: RelayRecipientOffline, Message: "Cannot establish P2P: agent x is offline"},
			`{"type":"error","code":"RECIPIENT_OFFLINE","message":"Cannot establish P2P: agent x is offline"}`,
		},
		{
			"error with retry",
			ErrorFrame{Code: RelayRateLimited, Message: "Rate limit exceeded", RetryAfterSeconds: ptr(0)},
			`{"type":"error","code":"RATE_LIMITED","message":"Rate limit exceeded","retry_after_seconds":0}`,
		},
		{"pong", Pong{Timestamp: "2026-02-01T16:25:10.555Z"}, `{"type":"pong","timestamp":"2026-02-01T16:25:10.555Z"}`},
		{
			"pending messages",
			PendingMessages{Messages: []PendingMessage{{ID: "1", From: amidA, EncryptedPayload: "a", MessageType: MessageTypeKnock, Timestamp: 1769963110555}}},
			`{"type":"pending_messages","messages":[{"id":"1","from":"` + amidA + `","encrypted_payload":"a","message_type":"knock","timestamp":1769963110555}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalFrame(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalFrame =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestParseFrameAccepts(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  ClientFrame
	}{
		{
			"unknown members and whitespace",
			` { "to" : "` + amidB + `", "type":"send", "extra":{"nested":[1,2]}, "encrypted_payload":"p", "message_type":"status" } `,
			Send{To: amidB, EncryptedPayload: "p", MessageType: MessageTypeStatus},
		},
		{
			"null candidates are absent",
			`{"type":"send","to":"` + amidB + `","encrypted_payload":"p","message_type":"message","ice_candidates":null}`,
			Send{To: amidB, EncryptedPayload: "p", MessageType: MessageTypeMessage},
		},
		{
			"p2p_capable defaults to false",
			`{"type":"connect","protocol":"agentmesh/9","amid":"` + amidA + `","public_key":"k","signature":"s","timestamp":"2026-02-01T16:25:10Z"}`,
			Connect{Protocol: "agentmesh/9", AMID: amidA, PublicKey: "k", Signature: "s", Timestamp: "2026-02-01T16:25:10Z"},
		},
		{
			"candidate with absent optional members",
			`{"type":"ice_answer","to":"` + amidB + `","sdp":"","candidates":[{"candidate":"c"}]}`,
			ICEAnswer{To: amidB, Candidates: []ICECandidate{{Candidate: "c"}}},
		},
		{
			// As in encoding/json, the last of duplicate members wins, even
			// for the type and even when an earlier type's member is bad.
			"duplicate type, last wins",
			`{"type":"send","to":5,"type":"ping","timestamp":"2026-02-01T16:25:10Z"}`,
			Ping{Timestamp: "2026-02-01T16:25:10Z"},
		},
		{
			"duplicate type from unknown to known",
			`{"type":"knock_with_message","type":"disconnect","reason":"r"}`,
			Disconnect{Reason: "r"},
		},
		{
			"get_pending_messages with extra members",
			`{"type":"get_pending_messages","limit":10}`,
			GetPendingMessages{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClientFrame([]byte(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseClientFrame = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseClientFrameRejects(t *testing.T) {
	send := func(members string) string { return `{"type":"send",` + members + `}` }
	const okSend = `"to":"` + amidB + `","encrypted_payload":"p","message_type":"message"`
	tests := []struct {
		name    string
		input   string
		field   string
		problem string
	}{
		{"empty", ``, "", "unexpected end of JSON input"},
		{"malformed", `{"type":"send",`, "", "malformed JSON"},
		{"not an object", `["send"]`, "", "must be a JSON object, got JSON array"},
		{"missing type", `{"to":"x"}`, "type", "missing"},
		{"null type", `{"type":null}`, "type", "missing"},
		{"type a number", `{"type":7}`, "type", "must be a string, got JSON number"},
		{"type replaced by a number", `{"type":"ping","timestamp":"2026-02-01T16:25:10Z","type":7}`, "type", "must be a string, got JSON number"},
		{"type replaced by null", `{"type":"ping","timestamp":"2026-02-01T16:25:10Z","type":null}`, "type", "missing"},
		{"unknown type, malformed", `{"type":"x-new","a":`, "", "malformed JSON"},
		{"known type, malformed", `{"type":"get_pending_messages"`, "", "malformed JSON"},
		{"unknown type in a frame with a bad member", `{"type":"x-new","to":5`, "", "malformed JSON"},
		{"huge", `{"type":"send","x":"` + strings.Repeat("a", MaxFrameSize) + `"}`, "", "limit 1048576"},
		{"send missing to", send(`"encrypted_payload":"p","message_type":"message"`), "to", "missing"},
		{"send missing payload", send(`"to":"` + amidB + `","message_type":"message"`), "encrypted_payload", "missing"},
		{"send missing message_type", send(`"to":"` + amidB + `","encrypted_payload":"p"`), "message_type", "missing"},
		{"send payload a number", send(`"to":"` + amidB + `","encrypted_payload":5,"message_type":"message"`), "encrypted_payload", "must be a string, got JSON number"},
		{"send payload an object", send(`"to":"` + amidB + `","encrypted_payload":{},"message_type":"message"`), "encrypted_payload", "must be a string, got JSON object"},
		{"send bad message_type", send(`"to":"` + amidB + `","encrypted_payload":"p","message_type":"knock_with_message"`), "message_type",
			`"knock_with_message" is not one of "knock", "accept", "reject", "message", "close", "status" or "optimistic_message"`},
		{"send bad AMID", send(`"to":"0OIl","encrypted_payload":"p","message_type":"message"`), "to", "invalid base58 character"},
		{"send empty AMID", send(`"to":"","encrypted_payload":"p","message_type":"message"`), "to", "empty AMID"},
		{"send short AMID", send(`"to":"1117bWpTW","encrypted_payload":"p","message_type":"message"`), "to", "decodes to 8 bytes, want 20"},
		{"send candidates an object", send(okSend + `,"ice_candidates":{}`), "ice_candidates", "must be an array"},
		{"send candidate missing candidate", send(okSend + `,"ice_candidates":[{"sdp_mid":"0"}]`), "ice_candidates[0].candidate", "missing"},
		{"send candidate index a string", send(okSend + `,"ice_candidates":[{"candidate":"c","sdp_mline_index":"0"}]`), "ice_candidates.sdp_mline_index", "must be an integer in range, got JSON string"},
		{"send candidate index a float", send(okSend + `,"ice_candidates":[{"candidate":"c","sdp_mline_index":0.5}]`), "ice_candidates.sdp_mline_index", "got JSON number 0.5"},
		{"send candidate index negative", send(okSend + `,"ice_candidates":[{"candidate":"c"},{"candidate":"c","sdp_mline_index":-1}]`), "ice_candidates[1].sdp_mline_index", "must not be negative"},
		{"connect p2p_capable a string", `{"type":"connect","protocol":"p","amid":"` + amidA + `","public_key":"k","signature":"s","timestamp":"2026-02-01T16:25:10Z","p2p_capable":"yes"}`, "p2p_capable", "must be a boolean, got JSON string"},
		{"connect missing signature", `{"type":"connect","protocol":"p","amid":"` + amidA + `","public_key":"k","timestamp":"2026-02-01T16:25:10Z"}`, "signature", "missing"},
		{"connect bad timestamp", `{"type":"connect","protocol":"p","amid":"` + amidA + `","public_key":"k","signature":"s","timestamp":"yesterday"}`, "timestamp", "not an RFC 3339 date-time"},
		{"connect millisecond timestamp", `{"type":"connect","protocol":"p","amid":"` + amidA + `","public_key":"k","signature":"s","timestamp":1769963110555}`, "timestamp", "must be a string, got JSON number"},
		{"presence bad status", `{"type":"presence","status":"busy"}`, "status", `"busy" is not one of "online", "away", "offline" or "dnd"`},
		{"presence missing status", `{"type":"presence"}`, "status", "missing"},
		{"presence query bad AMID", `{"type":"presence_query","amid":"x"}`, "amid", "decodes to"},
		{"ice offer missing candidates", `{"type":"ice_offer","to":"` + amidB + `","sdp":"v=0"}`, "candidates", "missing"},
		{"ice offer null candidates", `{"type":"ice_offer","to":"` + amidB + `","sdp":"v=0","candidates":null}`, "candidates", "missing"},
		{"ice answer missing sdp", `{"type":"ice_answer","to":"` + amidB + `","candidates":[]}`, "sdp", "missing"},
		{"p2p established missing peer", `{"type":"p2_p_established"}`, "peer", "missing"},
		{"ping missing timestamp", `{"type":"ping"}`, "timestamp", "missing"},
		{"disconnect reason a bool", `{"type":"disconnect","reason":true}`, "reason", "must be a string, got JSON bool"},
		{"nack missing reason", `{"type":"nack","message_id":"m"}`, "reason", "missing"},
		{"ack missing message_id", `{"type":"ack"}`, "message_id", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClientFrame([]byte(tt.input))
			if got != nil {
				t.Errorf("ParseClientFrame returned %#v with error %v, want nil", got, err)
			}
			expectDecodeErr(t, err, "relay frame", tt.field, tt.problem)
			if errors.Is(err, ErrUnknownFrameType) {
				t.Errorf("error %v wraps ErrUnknownFrameType", err)
			}
		})
	}
}

func TestParseServerFrameRejects(t *testing.T) {
	pending := func(msg string) string { return `{"type":"pending_messages","messages":[` + msg + `]}` }
	tests := []struct {
		name    string
		input   string
		field   string
		problem string
	}{
		{"connected missing count", `{"type":"connected","session_id":"u"}`, "pending_messages", "missing"},
		{"connected negative count", `{"type":"connected","session_id":"u","pending_messages":-1}`, "pending_messages", "must not be negative"},
		{"connected count overflow", `{"type":"connected","session_id":"u","pending_messages":1e400}`, "pending_messages", "got JSON number 1e400"},
		{"receive bad timestamp", `{"type":"receive","from":"` + amidA + `","encrypted_payload":"p","message_type":"message","timestamp":"2026-02-30T00:00:00Z"}`, "timestamp", "no such day"},
		{"receive bad from", `{"type":"receive","from":"` + amidA + `x","encrypted_payload":"p","message_type":"message","timestamp":"2026-02-01T00:00:00Z"}`, "from", "decodes to 21 bytes, want 20"},
		{"presence response bad last_seen", `{"type":"presence_response","amid":"` + amidA + `","status":"online","last_seen":"now"}`, "last_seen", "not an RFC 3339 date-time"},
		{"error missing message", `{"type":"error","code":"RATE_LIMITED"}`, "message", "missing"},
		{"error negative retry", `{"type":"error","code":"RATE_LIMITED","message":"m","retry_after_seconds":-5}`, "retry_after_seconds", "must not be negative"},
		{"error retry a float", `{"type":"error","code":"RATE_LIMITED","message":"m","retry_after_seconds":1.5}`, "retry_after_seconds", "must be an integer in range, got JSON number 1.5"},
		{"pending missing messages", `{"type":"pending_messages"}`, "messages", "missing"},
		{"pending missing timestamp", pending(`{"id":"1","from":"` + amidA + `","encrypted_payload":"p","message_type":"knock"}`), "messages[0].timestamp", "missing"},
		{"pending timestamp a string", pending(`{"id":"1","from":"` + amidA + `","encrypted_payload":"p","message_type":"knock","timestamp":"2026-02-01T00:00:00Z"}`), "messages.timestamp", "must be an integer in range, got JSON string"},
		{"pending bad message_type", pending(`{"id":"1","from":"` + amidA + `","encrypted_payload":"p","message_type":"x","timestamp":1}`), "messages[0].message_type", `"x" is not one of`},
		{"pong missing timestamp", `{"type":"pong"}`, "timestamp", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseServerFrame([]byte(tt.input))
			if got != nil {
				t.Errorf("ParseServerFrame returned %#v with error %v, want nil", got, err)
			}
			expectDecodeErr(t, err, "relay frame", tt.field, tt.problem)
		})
	}
}

func TestUnknownFrameType(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		parse  func([]byte) (Frame, error)
		direct string
	}{
		{"unknown to client parser", `{"type":"knock_with_message","to":"x"}`, parseClientAsFrame, "client"},
		{"server frame to client parser", `{"type":"receive","from":"x"}`, parseClientAsFrame, "client"},
		{"client frame to server parser", `{"type":"send","to":"x"}`, parseServerAsFrame, "server"},
		{"unknown to server parser", `{"type":"Connected"}`, parseServerAsFrame, "server"},
		{"empty type", `{"type":""}`, parseServerAsFrame, "server"},
		{"known type replaced by unknown", `{"type":"ping","timestamp":"2026-02-01T16:25:10Z","type":"pong"}`, parseClientAsFrame, "client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.parse([]byte(tt.input))
			if f != nil {
				t.Errorf("parse returned %#v, want nil", f)
			}
			if !errors.Is(err, ErrUnknownFrameType) {
				t.Fatalf("error = %v, want one wrapping ErrUnknownFrameType", err)
			}
			expectDecodeErr(t, err, "relay frame", "type", "is not a "+tt.direct+" frame type")
		})
	}
}

func parseClientAsFrame(b []byte) (Frame, error) {
	f, err := ParseClientFrame(b)
	if f == nil {
		return nil, err
	}
	return f, err
}

func parseServerAsFrame(b []byte) (Frame, error) {
	f, err := ParseServerFrame(b)
	if f == nil {
		return nil, err
	}
	return f, err
}

type foreignFrame struct{}

func (foreignFrame) FrameType() string { return "send" }

type foreignPointerFrame struct{}

func (*foreignPointerFrame) FrameType() string { return "send" }

func TestMarshalFrameRejects(t *testing.T) {
	tests := []struct {
		name    string
		frame   Frame
		problem string
	}{
		{"nil", nil, "nil frame"},
		{"nil pointer", (*Send)(nil), "nil *protocol.Send"},
		{"foreign type", foreignFrame{}, "unsupported frame type protocol.foreignFrame"},
		{"foreign pointer type", &foreignPointerFrame{}, "unsupported frame type *protocol.foreignPointerFrame"},
		{"bad AMID", Send{To: "nope", MessageType: MessageTypeMessage}, "to: AMID"},
		{"bad message type", Send{To: amidB, MessageType: "Message"}, `message_type: "Message" is not one of`},
		{"bad status", Presence{Status: "Online"}, "status"},
		{"bad timestamp", Ping{Timestamp: ""}, "timestamp"},
		{"negative pending", Connected{PendingMessages: -1}, "pending_messages: must not be negative"},
		{"negative retry", ErrorFrame{RetryAfterSeconds: ptr(-1)}, "retry_after_seconds"},
		{"negative index", ICEOffer{To: amidA, Candidates: []ICECandidate{{SDPMLineIndex: ptr(-2)}}}, "candidates[0].sdp_mline_index"},
		{"too large", Send{To: amidB, MessageType: MessageTypeMessage, EncryptedPayload: strings.Repeat("\x00", MaxFrameSize/6+1)}, "limit 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalFrame(tt.frame)
			if err == nil {
				t.Fatalf("MarshalFrame = %s, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("error = %q, want it to contain %q", err, tt.problem)
			}
		})
	}
}

func TestMarshalFramePointer(t *testing.T) {
	byValue, err := MarshalFrame(Pong{Timestamp: "2026-02-01T16:25:10Z"})
	if err != nil {
		t.Fatal(err)
	}
	byPointer, err := MarshalFrame(&Pong{Timestamp: "2026-02-01T16:25:10Z"})
	if err != nil {
		t.Fatal(err)
	}
	if string(byPointer) != string(byValue) {
		t.Errorf("MarshalFrame(&f) = %s, want %s", byPointer, byValue)
	}
}

func TestCodeSets(t *testing.T) {
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"message type knock", MessageTypeKnock.Valid(), true},
		{"message type optimistic", MessageType("optimistic_message").Valid(), true},
		{"message type case", MessageType("KNOCK").Valid(), false},
		{"message type empty", MessageType("").Valid(), false},
		{"presence dnd", PresenceDND.Valid(), true},
		{"presence busy", PresenceStatus("busy").Valid(), false},
		{"relay code", RelayUnauthorized.Known(), true},
		{"relay code lower case", RelayErrorCode("rate_limited").Known(), false},
		{"close session_killed", CloseReason("session_killed").Known(), true},
		{"close spec user_requested", CloseReason("user_requested").Known(), true},
		{"close free text", CloseReason("done for today").Known(), false},
		{"reject ttl_exceeded", RejectReason("ttl_exceeded").Known(), true},
		{"reject ts free text", RejectReason("AMID is blocked").Known(), false},
		{"payload type", PayloadCapabilityUpdate.Known(), true},
		{"payload type spec-only", PayloadType("capability_negotiation").Known(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func FuzzParseClientFrame(f *testing.F) {
	for _, fr := range []ClientFrame{
		Connect{Protocol: ProtocolVersion, AMID: amidA, PublicKey: "AAAA", Signature: "c2ln", Timestamp: "2026-02-01T16:25:10.555+00:00"},
		Send{To: amidB, EncryptedPayload: "x", MessageType: MessageTypeKnock, ICECandidates: testCandidates},
		ICEOffer{To: amidB, SDP: "v=0", Candidates: testCandidates},
		Nack{MessageID: "m", Reason: "r"},
		Presence{Status: PresenceAway},
	} {
		data, err := MarshalFrame(fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"type":"ping","timestamp":"2026-02-01T16:25:10Z","x":[{"y":null}]}`))
	f.Add([]byte(`{"type":"knock_with_message"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ParseClientFrame(data)
		if err != nil {
			if fr != nil {
				t.Fatalf("error %v with non-nil frame", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is %T, want *DecodeError", err, err)
			}
			return
		}
		out, err := MarshalFrame(fr)
		if err != nil {
			t.Fatalf("MarshalFrame(%#v): %v", fr, err)
		}
		back, err := ParseClientFrame(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if !reflect.DeepEqual(back, fr) {
			t.Fatalf("round trip changed the frame: %#v, want %#v", back, fr)
		}
	})
}

func FuzzParseServerFrame(f *testing.F) {
	for _, fr := range []ServerFrame{
		Connected{SessionID: "u", PendingMessages: 1},
		Receive{From: amidA, EncryptedPayload: "p", MessageType: MessageTypeMessage, Timestamp: "2026-02-01T16:25:10Z", ICECandidates: testCandidates},
		ErrorFrame{Code: RelayRateLimited, Message: "m", RetryAfterSeconds: ptr(3)},
		PresenceResponse{AMID: amidA, Status: PresenceOnline, LastSeen: "2026-02-01T16:25:10Z"},
		PendingMessages{Messages: []PendingMessage{{ID: "1", From: amidA, EncryptedPayload: "a", MessageType: MessageTypeKnock, Timestamp: 17}}},
	} {
		data, err := MarshalFrame(fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"type":"pong","timestamp":"2026-02-01T16:25:10.1+05:30"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ParseServerFrame(data)
		if err != nil {
			if fr != nil {
				t.Fatalf("error %v with non-nil frame", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is %T, want *DecodeError", err, err)
			}
			return
		}
		out, err := MarshalFrame(fr)
		if err != nil {
			t.Fatalf("MarshalFrame(%#v): %v", fr, err)
		}
		back, err := ParseServerFrame(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if !reflect.DeepEqual(back, fr) {
			t.Fatalf("round trip changed the frame: %#v, want %#v", back, fr)
		}
	})
}

func BenchmarkParseClientFrame(b *testing.B) {
	e := testEnvelope(b)
	e.Ciphertext = make([]byte, 1024)
	data, err := MarshalFrame(Send{To: amidB, EncryptedPayload: string(e.Marshal()), MessageType: MessageTypeMessage})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseClientFrame(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalFrame(b *testing.B) {
	e := testEnvelope(b)
	e.Ciphertext = make([]byte, 1024)
	f := Send{To: amidB, EncryptedPayload: string(e.Marshal()), MessageType: MessageTypeMessage}
	data, err := MarshalFrame(f)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalFrame(f); err != nil {
			b.Fatal(err)
		}
	}
}

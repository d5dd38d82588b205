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

// testAgent is a deterministic identity for handshake tests.
type testAgent struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	amid AMID
}

func newTestAgent(seed byte) testAgent {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	pub := priv.Public().(ed25519.PublicKey)
	return testAgent{priv, pub, DeriveAMID(pub)}
}

var knockTime = time.Date(2026, 2, 1, 16, 25, 10, 555_000_000, time.UTC)

func testKnock(t testing.TB, from, to testAgent) *Knock {
	t.Helper()
	prio := int64(5)
	k, err := NewKnock(from.amid, to.amid, KnockRequest{
		Type:     SessionOneShot,
		TTL:      3600,
		Intent:   Intent{Capability: "travel/flights/search", Action: "message"},
		Priority: &prio,
	}, knockTime, bytes.NewReader(bytes.Repeat([]byte{0xab}, 16)))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Sign(from.priv); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKnockSigningBytes(t *testing.T) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	k := testKnock(t, alice, bob)
	got, err := k.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	// JSON.stringify({version, from, to, request, timestamp, nonce}).
	want := `{"version":"agentmesh/0.2","from":"` + string(alice.amid) + `","to":"` + string(bob.amid) +
		`","request":{"type":"one-shot","ttl":3600,"intent":{"capability":"travel/flights/search","action":"message"},"priority":5},` +
		`"timestamp":1769963110555,"nonce":"abababababababababababababababab"}`
	if string(got) != want {
		t.Errorf("SigningBytes =\n%s\nwant\n%s", got, want)
	}
	if err := k.Verify(alice.pub); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestKnockRoundTrip(t *testing.T) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	k := testKnock(t, alice, bob)
	otpk := uint32(7)
	k.X3DH = &X3DHInit{SignedPrekeyID: 3, OneTimePrekeyID: &otpk}
	copy(k.X3DH.IdentityKey[:], bytes.Repeat([]byte{1}, 32))
	copy(k.X3DH.EphemeralKey[:], bytes.Repeat([]byte{2}, 32))
	if err := k.SignEphemeral(alice.priv); err != nil {
		t.Fatal(err)
	}
	k.OfferedCapabilities = []string{"json", "agentmesh/travel/flight-search/v1"}
	k.CertificateChain = []string{"AAEC"}
	data, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHandshake(data)
	if err != nil {
		t.Fatalf("ParseHandshake(%s): %v", data, err)
	}
	got, ok := h.(*Knock)
	if !ok {
		t.Fatalf("ParseHandshake returned %T, want *Knock", h)
	}
	if err := got.Verify(alice.pub); err != nil {
		t.Errorf("Verify after round trip: %v", err)
	}
	if err := got.VerifyEphemeral(alice.pub); err != nil {
		t.Errorf("VerifyEphemeral after round trip: %v", err)
	}
	if err := got.Verify(bob.pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify with another key = %v, want ErrBadSignature", err)
	}
	got.rawRequest, k.rawRequest = nil, nil
	if !reflect.DeepEqual(got, k) {
		t.Errorf("round trip changed the KNOCK:\ngot  %+v\nwant %+v", got, k)
	}
	again, err := got.Marshal()
	if err != nil || !bytes.Equal(again, data) {
		t.Errorf("re-marshal = %s, %v; want %s", again, err, data)
	}
}

// TestKnockVerifiesReceivedOrder checks that a KNOCK whose request members
// come in another order, with numbers written differently, verifies over the
// bytes its sender signed, as a TS receiver's JSON.parse/JSON.stringify would.
func TestKnockVerifiesReceivedOrder(t *testing.T) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	request := `{"intent":{"action":"message","capability":"*","params":{"b":1,"a":[true,null],"10":"x","2":"y"}},"ttl":3600,"type":"streaming","expectedMessages":4}`
	signed := `{"version":"agentmesh/0.2","from":"` + string(alice.amid) + `","to":"` + string(bob.amid) +
		`","request":{"intent":{"action":"message","capability":"*","params":{"2":"y","10":"x","b":1,"a":[true,null]}},"ttl":3600,"type":"streaming","expectedMessages":4},"timestamp":1769963110555,"nonce":"00112233445566778899aabbccddeeff"}`
	sig := B64.EncodeToString(ed25519.Sign(alice.priv, []byte(signed)))
	wire := `{"version":"agentmesh/0.2","from":"` + string(alice.amid) + `","to":"` + string(bob.amid) +
		`","request":` + strings.Replace(request, `"ttl":3600`, `"ttl":3600.0`, 1) +
		`,"timestamp":1769963110555,"nonce":"00112233445566778899aabbccddeeff","signature":"` + sig + `"}`
	k, err := ParseKnock([]byte(wire))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Verify(alice.pub); err != nil {
		t.Errorf("Verify = %v; signing bytes:\n%s", err, must(k.SigningBytes()))
	}
	if k.Request.Type != SessionStreaming || k.Request.TTL != 3600 || k.Request.ExpectedMessages != 4 || k.Request.Intent.Capability != "*" {
		t.Errorf("decoded request = %+v", k.Request)
	}
}

func must(b []byte, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

func TestKnockTamperFailsVerify(t *testing.T) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	data, err := testKnock(t, alice, bob).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	edits := map[string][2]string{
		"ttl":       {`"ttl":3600`, `"ttl":3601`},
		"priority":  {`"priority":5`, `"priority":6`},
		"timestamp": {`"timestamp":1769963110555`, `"timestamp":1769963110556`},
		"nonce":     {`"nonce":"abab`, `"nonce":"abac`},
		"version":   {`agentmesh/0.2`, `agentmesh/0.3`},
		"action":    {`"action":"message"`, `"action":"messages"`},
	}
	for name, e := range edits {
		t.Run(name, func(t *testing.T) {
			mod := bytes.Replace(data, []byte(e[0]), []byte(e[1]), 1)
			if bytes.Equal(mod, data) {
				t.Fatalf("edit %q not applied", e[0])
			}
			k, err := ParseKnock(mod)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.Verify(alice.pub); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify after editing %s = %v, want ErrBadSignature", name, err)
			}
		})
	}
}

func TestParseKnockRejects(t *testing.T) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	good, err := testKnock(t, alice, bob).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, from, to, field string
	}{
		{"version", `"version":"agentmesh/0.2"`, `"version":"mesh/0.2"`, "version"},
		{"version type", `"version":"agentmesh/0.2"`, `"version":2`, "version"},
		{"from", `"from":"` + string(alice.amid) + `"`, `"from":"0OIl"`, "from"},
		{"to missing", `"to":"` + string(bob.amid) + `",`, ``, "to"},
		{"request type", `"type":"one-shot"`, `"type":"forever"`, "request.type"},
		{"ttl zero", `"ttl":3600`, `"ttl":0`, "request.ttl"},
		{"ttl fraction", `"ttl":3600`, `"ttl":1.5`, "request.ttl"},
		{"ttl string", `"ttl":3600`, `"ttl":"3600"`, "request.ttl"},
		{"priority", `"priority":5`, `"priority":11`, "request.priority"},
		{"capability", `"capability":"travel/flights/search"`, `"capability":7`, "request.intent.capability"},
		{"intent", `"intent":{`, `"intent":[{`, "request.intent"},
		{"timestamp", `"timestamp":1769963110555`, `"timestamp":-1`, "timestamp"},
		{"nonce", `"nonce":"abab`, `"nonce":"ABAB`, "nonce"},
		{"duplicate member", `"nonce":`, `"to":"x","nonce":`, "to"},
		{"signature missing", `,"signature":"`, `,"sig":"`, "signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod := bytes.Replace(good, []byte(tt.from), []byte(tt.to), 1)
			if bytes.Equal(mod, good) {
				t.Fatalf("edit %q not applied", tt.from)
			}
			_, err := ParseKnock(mod)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("ParseKnock = %v, want a *DecodeError", err)
			}
			if de.Field != tt.field {
				t.Errorf("error %q names field %q, want %q", err, de.Field, tt.field)
			}
		})
	}
	for _, in := range []string{"", "null", "[]", `"knock"`, "{", `{"version":"agentmesh/0.2"}`, strings.Repeat("[", 10000)} {
		if _, err := ParseKnock([]byte(in)); err == nil {
			t.Errorf("ParseKnock(%.20q) succeeded", in)
		}
	}
	if _, err := ParseKnock(bytes.Repeat([]byte(" "), maxHandshakeSize+1)); err == nil {
		t.Error("ParseKnock accepted an oversize message")
	}
}

func TestAcceptReject(t *testing.T) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	k := testKnock(t, alice, bob)
	rk := [32]byte{1, 2, 3}
	a := &Accept{
		SessionID: "sess_0123456789abcdef0123456789abcdef", Timestamp: k.Timestamp + 10,
		From: bob.amid, To: alice.amid, KnockNonce: k.Nonce, RatchetKey: &rk,
		AcceptedCapabilities: []string{"json"}, RejectedCapabilities: []string{},
	}
	if err := a.Sign(bob.priv); err != nil {
		t.Fatal(err)
	}
	sb, _ := a.SigningBytes()
	wantSB := `{"type":"ACCEPT","sessionId":"sess_0123456789abcdef0123456789abcdef","timestamp":1769963110565,"from":"` +
		string(bob.amid) + `","to":"` + string(alice.amid) + `","knockNonce":"abababababababababababababababab"}`
	if string(sb) != wantSB {
		t.Errorf("ACCEPT signing bytes =\n%s\nwant\n%s", sb, wantSB)
	}
	data, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHandshake(data)
	if err != nil {
		t.Fatal(err)
	}
	gotA, ok := h.(*Accept)
	if !ok || !reflect.DeepEqual(gotA, a) {
		t.Errorf("ACCEPT round trip = %#v, want %#v", h, a)
	}
	if err := gotA.Verify(bob.pub); err != nil {
		t.Errorf("ACCEPT Verify: %v", err)
	}
	gotA.KnockNonce = strings.Repeat("0", 32)
	if err := gotA.Verify(bob.pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("ACCEPT for another KNOCK verified: %v", err)
	}

	j := &Reject{Reason: string(RejectReason("not_in_allowlist")), Timestamp: k.Timestamp, From: bob.amid, To: alice.amid, KnockNonce: k.Nonce}
	if err := j.Sign(bob.priv); err != nil {
		t.Fatal(err)
	}
	data, err = j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, err = ParseHandshake(data)
	if err != nil {
		t.Fatal(err)
	}
	gotJ, ok := h.(*Reject)
	if !ok || !reflect.DeepEqual(gotJ, j) {
		t.Errorf("REJECT round trip = %#v, want %#v", h, j)
	}
	if err := gotJ.Verify(bob.pub); err != nil {
		t.Errorf("REJECT Verify: %v", err)
	}
	gotJ.Reason = "blocked"
	if err := gotJ.Verify(bob.pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("REJECT with another reason verified: %v", err)
	}
}

func TestPythonFormat(t *testing.T) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	ts := "2026-02-01T16:25:10.555123+00:00"
	// A KNOCK as the Python client sends it (json.dumps, ", " and ": ").
	knock := `{"type": "knock", "protocol_version": "agentmesh/0.2", "from": {"amid": "` + string(alice.amid) +
		`", "tier": 2, "display_name": null, "reputation_score": 0.5}, "intent": {"category": "travel", "subcategory": "flights", "action": "search", "urgency": "normal"}, ` +
		`"session_request": {"type": "request_response", "expected_messages": null, "ttl_seconds": 300}, "timestamp": "` + ts + `", "signature": "SIG"}`
	// S10: json.dumps({"from", "to", "intent", "timestamp"}).
	wantSB := `{"from": "` + string(alice.amid) + `", "to": "` + string(bob.amid) +
		`", "intent": {"category": "travel", "subcategory": "flights", "action": "search", "urgency": "normal"}, "timestamp": "` + ts + `"}`
	sig := B64.EncodeToString(ed25519.Sign(alice.priv, []byte(wantSB)))
	h, err := ParseHandshake([]byte(strings.Replace(knock, "SIG", sig, 1)))
	if err != nil {
		t.Fatal(err)
	}
	k, ok := h.(*PyKnock)
	if !ok {
		t.Fatalf("ParseHandshake returned %T, want *PyKnock", h)
	}
	if got, _ := k.SigningBytes(bob.amid); string(got) != wantSB {
		t.Errorf("S10 bytes =\n%s\nwant\n%s", got, wantSB)
	}
	if err := k.Verify(alice.pub, bob.amid); err != nil {
		t.Errorf("PyKnock.Verify: %v", err)
	}
	if err := k.Verify(alice.pub, alice.amid); !errors.Is(err, ErrBadSignature) {
		t.Errorf("PyKnock addressed to someone else verified: %v", err)
	}
	if k.From.Tier != 2 || k.Intent.Subcategory != "flights" || k.SessionRequest.TTLSeconds != 300 {
		t.Errorf("decoded PyKnock = %+v", k)
	}

	acc := &PyAccept{SessionID: "6f1c2d4e-0000-4000-8000-000000000000", SessionKey: "c2VjcmV0", Timestamp: ts}
	if err := acc.Sign(bob.priv, bob.amid, alice.amid); err != nil {
		t.Fatal(err)
	}
	sb, _ := acc.SigningBytes(bob.amid, alice.amid)
	if want := `{"session_id": "6f1c2d4e-0000-4000-8000-000000000000", "from": "` + string(bob.amid) + `", "to": "` + string(alice.amid) + `", "timestamp": "` + ts + `"}`; string(sb) != want {
		t.Errorf("S11 bytes = %s, want %s", sb, want)
	}
	accWire := `{"type": "accept", "session_id": "6f1c2d4e-0000-4000-8000-000000000000", "session_key": "c2VjcmV0", "capabilities": ["json"], "constraints": {"max_message_size_bytes": 65536, "max_messages": 20, "ttl_seconds": 300}, "timestamp": "` + ts + `", "signature": "` + acc.Signature + `"}`
	h, err = ParseHandshake([]byte(accWire))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.(*PyAccept).Verify(bob.pub, bob.amid, alice.amid); err != nil {
		t.Errorf("PyAccept.Verify: %v", err)
	}

	rej := &PyReject{Reason: "low_reputation", Timestamp: ts}
	if err := rej.Sign(bob.priv, bob.amid, alice.amid); err != nil {
		t.Fatal(err)
	}
	h, err = ParseHandshake([]byte(`{"type": "reject", "reason": "low_reputation", "human_readable": "Connection rejected: low_reputation", "timestamp": "` + ts + `", "signature": "` + rej.Signature + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.(*PyReject).Verify(bob.pub, bob.amid, alice.amid); err != nil {
		t.Errorf("PyReject.Verify: %v", err)
	}
	h, err = ParseHandshake([]byte(`{"type": "reject", "reason": "paused", "human_readable": "Agent is not accepting new connections"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.(*PyReject).Verify(bob.pub, bob.amid, alice.amid); !errors.Is(err, ErrBadSignature) {
		t.Errorf("unsigned PyReject verified: %v", err)
	}
}

func BenchmarkKnockSign(b *testing.B) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	k := testKnock(b, alice, bob)
	b.ReportAllocs()
	for b.Loop() {
		if err := k.Sign(alice.priv); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKnockVerify(b *testing.B) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	data, err := testKnock(b, alice, bob).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		k, err := ParseKnock(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := k.Verify(alice.pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Floor measures Ed25519 alone over the bytes of a KNOCK, the
// floor under BenchmarkKnockSign and BenchmarkKnockVerify.
func BenchmarkEd25519Floor(b *testing.B) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	msg, err := testKnock(b, alice, bob).SigningBytes()
	if err != nil {
		b.Fatal(err)
	}
	sig := ed25519.Sign(alice.priv, msg)
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(alice.priv, msg)
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(alice.pub, msg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
}

func FuzzParseHandshake(f *testing.F) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	k := testKnock(f, alice, bob)
	data, _ := k.Marshal()
	f.Add(data)
	a := &Accept{SessionID: "sess_00", Timestamp: 1, From: bob.amid, To: alice.amid, KnockNonce: k.Nonce, Signature: "x"}
	data, _ = a.Marshal()
	f.Add(data)
	f.Add([]byte(`{"type":"REJECT","reason":"blocked","timestamp":1,"from":"` + string(bob.amid) + `","to":"` + string(alice.amid) + `","knockNonce":"00112233445566778899aabbccddeeff","signature":"x"}`))
	f.Add([]byte(`{"type": "reject", "reason": "paused"}`))
	f.Add([]byte(`{"type":"knock","protocol_version":"agentmesh/0.2","from":{"amid":"` + string(alice.amid) +
		`","tier":2,"display_name":null,"reputation_score":0.5},"intent":{"category":"travel","subcategory":"flights","urgency":"normal"},` +
		`"session_request":{"type":"request_response","expected_messages":null,"ttl_seconds":300},` +
		`"timestamp":"2026-11-28T04:00:00.123456+00:00","signature":"x","offered_capabilities":["json"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHandshake(data)
		if err != nil {
			if h != nil {
				t.Fatalf("error %v with a non-nil value", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			return
		}
		type marshaler interface{ Marshal() ([]byte, error) }
		m, ok := h.(marshaler)
		if !ok {
			return // Python-format ACCEPTs are parsed, never emitted.
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed %T does not marshal: %v", h, err)
		}
		h2, err := ParseHandshake(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		out2, err := h2.(marshaler).Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("marshal not stable:\n%s\n%s", out, out2)
		}
		if k, ok := h.(*Knock); ok {
			sb1, err1 := k.SigningBytes()
			sb2, err2 := h2.(*Knock).SigningBytes()
			if err1 != nil || err2 != nil || !bytes.Equal(sb1, sb2) {
				t.Fatalf("signing bytes changed across a round trip:\n%s\n%s", sb1, sb2)
			}
		}
	})
}

// TestHandshakeKeysWithPrefix checks that X25519 keys in the x3dh member and
// in ratchet_key are read with or without the "x25519:" prefix, as readers
// must accept both (PROTOCOL.md §0.2).
func TestHandshakeKeysWithPrefix(t *testing.T) {
	alice, bob := newTestAgent(1), newTestAgent(2)
	k := testKnock(t, alice, bob)
	k.X3DH = &X3DHInit{SignedPrekeyID: 3}
	copy(k.X3DH.IdentityKey[:], bytes.Repeat([]byte{1}, 32))
	copy(k.X3DH.EphemeralKey[:], bytes.Repeat([]byte{2}, 32))
	kdata, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rk := [32]byte{1, 2, 3}
	a := &Accept{
		SessionID: "sess_0123456789abcdef0123456789abcdef", Timestamp: k.Timestamp,
		From: bob.amid, To: alice.amid, KnockNonce: k.Nonce, RatchetKey: &rk,
	}
	adata, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	prefixed := func(data []byte, member string) []byte {
		return bytes.Replace(data, []byte(`"`+member+`":"`), []byte(`"`+member+`":"x25519:`), 1)
	}
	tests := []struct {
		name string
		in   []byte
		want Handshake
	}{
		{"identity_key", prefixed(kdata, "identity_key"), k},
		{"ephemeral_key", prefixed(kdata, "ephemeral_key"), k},
		{"ratchet_key", prefixed(adata, "ratchet_key"), a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHandshake(tt.in)
			if err != nil {
				t.Fatalf("ParseHandshake(%s): %v", tt.in, err)
			}
			switch got := h.(type) {
			case *Knock:
				if !reflect.DeepEqual(got.X3DH, k.X3DH) {
					t.Errorf("x3dh = %+v, want %+v", got.X3DH, k.X3DH)
				}
			case *Accept:
				if got.RatchetKey == nil || *got.RatchetKey != rk {
					t.Errorf("ratchet_key = %v, want %v", got.RatchetKey, rk)
				}
			default:
				t.Fatalf("ParseHandshake returned %T", h)
			}
		})
	}
}

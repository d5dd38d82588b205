package ratchet

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestTSStateRoundTrip(t *testing.T) {
	for name, s := range states(t) {
		t.Run(name, func(t *testing.T) {
			js, err := s.ExportTSState()
			if err != nil {
				t.Fatal(err)
			}
			initiator := strings.HasPrefix(name, "initiator")
			got, err := ImportTSState(js, initiator, nil)
			if err != nil {
				t.Fatalf("ImportTSState: %v", err)
			}
			if !bytes.Equal(snapshot(t, got), snapshot(t, s)) {
				t.Fatal("import of the export differs from the original")
			}
			again, _ := got.ExportTSState()
			if !bytes.Equal(again, js) {
				t.Fatalf("export is not stable:\n%s\n%s", again, js)
			}
		})
	}
}

// TestTSStateShape checks the member order and null members of the
// TypeScript SDK's serializeState (PROTOCOL.md §4.7).
func TestTSStateShape(t *testing.T) {
	fresh, _ := NewInitiator(testSecret(1), testRand(1))
	js, err := fresh.ExportTSState()
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	var names []string
	var nulls []string
	dec.Token() // {
	for dec.More() {
		tok, _ := dec.Token()
		name := tok.(string)
		names = append(names, name)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if string(v) == "null" {
			nulls = append(nulls, name)
		}
	}
	want := "dh_private dh_public peer_dh_public root_key send_chain_key recv_chain_key send_message_number recv_message_number previous_chain_length skipped_keys"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("members = %s, want %s", got, want)
	}
	if got := strings.Join(nulls, " "); got != "peer_dh_public send_chain_key recv_chain_key" {
		t.Errorf("null members = %s", got)
	}
	if !bytes.HasSuffix(js, []byte(`"skipped_keys":{}}`)) {
		t.Errorf("empty skipped keys not written as {}: %s", js)
	}
}

// TestTSStateContinues moves a responder to the TypeScript format and back
// in the middle of a conversation.
func TestTSStateContinues(t *testing.T) {
	alice, bob := newPair(t, 90)
	js, _ := bob.ExportTSState()
	bob2, err := ImportTSState(js, false, testRand(91))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob2.Encrypt(nil); !errors.Is(err, ErrCannotSendYet) {
		t.Fatalf("imported responder may send first: %v", err)
	}
	receive(t, bob2, send(t, alice, "hello"))
	receive(t, alice, send(t, bob2, "hi"))
}

func TestImportTSStateMalformed(t *testing.T) {
	_, bob := newPair(t, 92)
	alice, _ := newPair(t, 92)
	receive(t, bob, send(t, alice, "a"))
	send(t, alice, "lost")
	receive(t, bob, send(t, alice, "b"))
	good, _ := bob.ExportTSState()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(good, &fields); err != nil {
		t.Fatal(err)
	}
	var skipped map[string]string
	json.Unmarshal(fields["skipped_keys"], &skipped)
	var name, mk string
	for name, mk = range skipped {
	}
	dh, _, _ := strings.Cut(name, ":")
	with := func(member, value string) []byte {
		f := map[string]json.RawMessage{}
		for k, v := range fields {
			f[k] = v
		}
		if value == "" {
			delete(f, member)
		} else {
			f[member] = json.RawMessage(value)
		}
		b, _ := json.Marshal(f)
		return b
	}
	other, _ := GeneratePrivateKey(testRand(93))
	tests := []struct {
		name string
		in   []byte
	}{
		{"not JSON", []byte("{")},
		{"missing dh_private", with("dh_private", "")},
		{"missing root_key", with("root_key", "")},
		{"null root_key", with("root_key", "null")},
		{"missing counter", with("recv_message_number", "")},
		{"negative counter", with("send_message_number", "-1")},
		{"fractional counter", with("send_message_number", "1.5")},
		{"short key", with("root_key", `"AAAA"`)},
		{"dh_public does not match", with("dh_public", `"`+other.PublicKey().String()+`"`)},
		{"skipped_keys not an object", with("skipped_keys", `[]`)},
		{"skipped key without number", with("skipped_keys", `{"`+dh+`":"`+mk+`"}`)},
		{"skipped key number with sign", with("skipped_keys", `{"`+dh+`:+1":"`+mk+`"}`)},
		{"skipped key number with zero", with("skipped_keys", `{"`+dh+`:01":"`+mk+`"}`)},
		{"skipped key number too large", with("skipped_keys", `{"`+dh+`:4294967296":"`+mk+`"}`)},
		{"repeated skipped key", []byte(strings.Replace(string(good), `"skipped_keys":{`, `"skipped_keys":{"`+name+`":"`+mk+`",`, 1))},
		{"skipped key value not a key", with("skipped_keys", `{"`+name+`":"AAAA"}`)},
		{"skipped key value not a string", with("skipped_keys", `{"`+name+`":1}`)},
		{"receiving chain without peer", with("peer_dh_public", "null")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ImportTSState(tt.in, false, nil)
			if !errors.Is(err, ErrMalformedState) || s != nil {
				t.Fatalf("ImportTSState = %v, %v; want ErrMalformedState", s, err)
			}
		})
	}
	t.Run("more than 2000 skipped keys", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("{")
		for i := range 2001 {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"` + dh + `:` + strconv.Itoa(i) + `":"` + mk + `"`)
		}
		b.WriteString("}")
		if _, err := ImportTSState(with("skipped_keys", b.String()), false, nil); !errors.Is(err, ErrMalformedState) {
			t.Fatalf("ImportTSState = %v, want ErrMalformedState", err)
		}
	})
}

func TestImportTSStateErrorsHideSecrets(t *testing.T) {
	_, bob := newPair(t, 94)
	alice, _ := newPair(t, 94)
	receive(t, bob, send(t, alice, "a"))
	good, err := bob.ExportTSState()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]*string
	json.Unmarshal(good, &fields)
	for _, member := range []string{"dh_private", "root_key", "send_chain_key", "recv_chain_key"} {
		t.Run(member, func(t *testing.T) {
			secret := *fields[member]
			// The value's opening quote is lost, so the decoder meets the
			// key's first character where a value should start.
			in := strings.Replace(string(good), `"`+member+`":"`, `"`+member+`":`, 1)
			_, err := ImportTSState([]byte(in), false, nil)
			if !errors.Is(err, ErrMalformedState) {
				t.Fatalf("ImportTSState = %v, want ErrMalformedState", err)
			}
			got := err.Error()
			for _, c := range secret {
				if strings.Contains(got, "'"+string(c)+"'") {
					t.Fatalf("error %q quotes a character of the %s value", got, member)
				}
			}
		})
	}
}

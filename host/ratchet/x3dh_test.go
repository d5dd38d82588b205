package ratchet

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
)

// x3dhParties holds a responder's keys and a bundle for them.
type x3dhParties struct {
	alice   *PrivateKey
	bob     *PrivateKey
	signer  ed25519.PrivateKey
	spk     *SignedPrekey
	otpks   []*OneTimePrekey
	prekeys mapPrekeys
}

func newX3DHParties(t *testing.T, seed uint64) *x3dhParties {
	t.Helper()
	p := &x3dhParties{signer: testSigner(byte(seed))}
	var err error
	if p.alice, err = GeneratePrivateKey(testRand(seed)); err != nil {
		t.Fatal(err)
	}
	if p.bob, err = GeneratePrivateKey(testRand(seed + 1)); err != nil {
		t.Fatal(err)
	}
	if p.spk, err = GenerateSignedPrekey(testRand(seed+2), 1, p.signer); err != nil {
		t.Fatal(err)
	}
	if p.otpks, err = GenerateOneTimePrekeys(testRand(seed+3), 1, 3); err != nil {
		t.Fatal(err)
	}
	p.prekeys = mapPrekeys{signed: map[uint32]*PrivateKey{1: p.spk.PrivateKey()}, oneTime: map[uint32]*PrivateKey{}}
	for _, k := range p.otpks {
		p.prekeys.oneTime[k.ID] = k.PrivateKey()
	}
	return p
}

func (p *x3dhParties) signingKey() ed25519.PublicKey { return p.signer.Public().(ed25519.PublicKey) }

func TestX3DHConversation(t *testing.T) {
	for _, withOPK := range []bool{true, false} {
		name := map[bool]string{true: "with one-time prekey", false: "without one-time prekey"}[withOPK]
		t.Run(name, func(t *testing.T) {
			p := newX3DHParties(t, 40)
			var otpk *OneTimePrekey
			if withOPK {
				otpk = p.otpks[1]
			}
			bundle := NewBundle(p.bob.PublicKey(), p.spk, otpk)
			sk, msg, err := InitiateX3DH(testRand(41), p.alice, bundle, p.signingKey())
			if err != nil {
				t.Fatal(err)
			}
			wire, err := json.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			var got InitiatorMessage
			if err := json.Unmarshal(wire, &got); err != nil {
				t.Fatal(err)
			}
			resp, err := RespondX3DH(p.bob, p.alice.PublicKey(), &got, p.prekeys)
			if err != nil {
				t.Fatal(err)
			}
			if !resp.SharedSecret.Equal(sk) {
				t.Fatal("the two sides derived different secrets")
			}
			if withOPK != (resp.ConsumeOneTimePrekey != nil) || (withOPK && *resp.ConsumeOneTimePrekey != otpk.ID) {
				t.Fatalf("ConsumeOneTimePrekey = %v", resp.ConsumeOneTimePrekey)
			}

			alice, err := NewInitiator(sk, testRand(42))
			if err != nil {
				t.Fatal(err)
			}
			bob, err := NewResponder(resp.SharedSecret, got.EphemeralKey, testRand(43))
			if err != nil {
				t.Fatal(err)
			}
			sk.Wipe()
			resp.SharedSecret.Wipe()
			if err := alice.SetRemoteRatchetKey(bob.RatchetPublicKey()); err != nil {
				t.Fatal(err)
			}
			receive(t, bob, send(t, alice, "knock knock"))
			receive(t, alice, send(t, bob, "who's there"))
		})
	}
}

func TestInitiatorMessageJSON(t *testing.T) {
	ik, _ := GeneratePrivateKey(testRand(50))
	ek, _ := GeneratePrivateKey(testRand(51))
	ikB64, ekB64 := ik.PublicKey().String(), ek.PublicKey().String()
	id := uint32(17)
	tests := []struct {
		name string
		msg  InitiatorMessage
		want string
	}{
		{
			"without one-time prekey",
			InitiatorMessage{IdentityKey: ik.PublicKey(), EphemeralKey: ek.PublicKey(), SignedPrekeyID: 3},
			`{"identity_key":"` + ikB64 + `","ephemeral_key":"` + ekB64 + `","signed_prekey_id":3}`,
		},
		{
			"with one-time prekey",
			InitiatorMessage{IdentityKey: ik.PublicKey(), EphemeralKey: ek.PublicKey(), SignedPrekeyID: 4294967295, OneTimePrekeyID: &id},
			`{"identity_key":"` + ikB64 + `","ephemeral_key":"` + ekB64 + `","signed_prekey_id":4294967295,"one_time_prekey_id":17}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.msg.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("MarshalJSON =\n%s\nwant\n%s", got, tt.want)
			}
			// Inside encoding/json the bytes are unchanged.
			wrapped, err := json.Marshal(struct {
				X *InitiatorMessage `json:"x3dh"`
			}{&tt.msg})
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"x3dh":` + tt.want + `}`; string(wrapped) != want {
				t.Fatalf("json.Marshal = %s, want %s", wrapped, want)
			}
			var back InitiatorMessage
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			again, _ := back.MarshalJSON()
			if !bytes.Equal(again, got) {
				t.Fatalf("round trip = %s, want %s", again, got)
			}
		})
	}
	if _, err := (&InitiatorMessage{IdentityKey: ik.PublicKey()}).MarshalJSON(); err == nil {
		t.Error("MarshalJSON without an ephemeral key succeeded")
	}
}

func TestInitiatorMessageUnmarshal(t *testing.T) {
	ik, _ := GeneratePrivateKey(testRand(52))
	k := ik.PublicKey().String()
	tests := []struct {
		name   string
		in     string
		ok     bool
		hasOPK bool
	}{
		{"minimal", `{"identity_key":"` + k + `","ephemeral_key":"` + k + `","signed_prekey_id":1}`, true, false},
		{"prefixed keys", `{"identity_key":"x25519:` + k + `","ephemeral_key":"x25519:` + k + `","signed_prekey_id":1}`, true, false},
		{"null one-time prekey", `{"identity_key":"` + k + `","ephemeral_key":"` + k + `","signed_prekey_id":1,"one_time_prekey_id":null}`, true, false},
		{"one-time prekey zero", `{"identity_key":"` + k + `","ephemeral_key":"` + k + `","signed_prekey_id":1,"one_time_prekey_id":0}`, true, true},
		{"extra member", `{"identity_key":"` + k + `","ephemeral_key":"` + k + `","signed_prekey_id":1,"x":[1]}`, true, false},
		{"missing identity", `{"ephemeral_key":"` + k + `","signed_prekey_id":1}`, false, false},
		{"missing ephemeral", `{"identity_key":"` + k + `","signed_prekey_id":1}`, false, false},
		{"missing prekey id", `{"identity_key":"` + k + `","ephemeral_key":"` + k + `"}`, false, false},
		{"negative id", `{"identity_key":"` + k + `","ephemeral_key":"` + k + `","signed_prekey_id":-1}`, false, false},
		{"fractional id", `{"identity_key":"` + k + `","ephemeral_key":"` + k + `","signed_prekey_id":1.5}`, false, false},
		{"id too large", `{"identity_key":"` + k + `","ephemeral_key":"` + k + `","signed_prekey_id":4294967296}`, false, false},
		{"string id", `{"identity_key":"` + k + `","ephemeral_key":"` + k + `","signed_prekey_id":"1"}`, false, false},
		{"short key", `{"identity_key":"AAAA","ephemeral_key":"` + k + `","signed_prekey_id":1}`, false, false},
		{"not an object", `[]`, false, false},
		{"null", `null`, false, false},
		{"member names in upper case", `{"IDENTITY_KEY":"` + k + `","ephemeral_key":"` + k + `","signed_prekey_id":1}`, false, false},
		{"not JSON", `{`, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m InitiatorMessage
			err := json.Unmarshal([]byte(tt.in), &m)
			if (err == nil) != tt.ok {
				t.Fatalf("Unmarshal error = %v, want ok = %v", err, tt.ok)
			}
			if tt.ok && (m.OneTimePrekeyID != nil) != tt.hasOPK {
				t.Fatalf("OneTimePrekeyID = %v, want present = %v", m.OneTimePrekeyID, tt.hasOPK)
			}
		})
	}
}

func TestRespondX3DHFailures(t *testing.T) {
	p := newX3DHParties(t, 60)
	bundle := NewBundle(p.bob.PublicKey(), p.spk, p.otpks[0])
	_, msg, err := InitiateX3DH(testRand(61), p.alice, bundle, p.signingKey())
	if err != nil {
		t.Fatal(err)
	}
	lowOrder, _ := NewPublicKey(make([]byte, 32))
	stranger, _ := GeneratePrivateKey(testRand(62))
	tests := []struct {
		name      string
		edit      func(m *InitiatorMessage)
		initiator *PublicKey
		want      error
	}{
		{"unknown signed prekey", func(m *InitiatorMessage) { m.SignedPrekeyID = 99 }, p.alice.PublicKey(), ErrUnknownPrekey},
		{"unknown one-time prekey", func(m *InitiatorMessage) { id := uint32(99); m.OneTimePrekeyID = &id }, p.alice.PublicKey(), ErrUnknownPrekey},
		{"identity is not the registered one", func(*InitiatorMessage) {}, stranger.PublicKey(), ErrIdentityMismatch},
		{"no registered identity", func(*InitiatorMessage) {}, nil, ErrIdentityMismatch},
		{"low-order ephemeral", func(m *InitiatorMessage) { m.EphemeralKey = lowOrder }, p.alice.PublicKey(), ErrLowOrderPublicKey},
		{"low-order identity", func(m *InitiatorMessage) { m.IdentityKey = lowOrder }, lowOrder, ErrLowOrderPublicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := *msg
			tt.edit(&m)
			resp, err := RespondX3DH(p.bob, tt.initiator, &m, p.prekeys)
			if !errors.Is(err, tt.want) {
				t.Fatalf("RespondX3DH error = %v, want %v", err, tt.want)
			}
			if resp != nil {
				t.Fatal("a failed RespondX3DH returned a one-time prekey to consume")
			}
			if len(p.prekeys.oneTime) != len(p.otpks) {
				t.Fatal("a one-time prekey disappeared")
			}
		})
	}
	if _, err := RespondX3DH(p.bob, p.alice.PublicKey(), nil, p.prekeys); err == nil {
		t.Error("RespondX3DH without a message succeeded")
	}
	if _, err := RespondX3DH(nil, p.alice.PublicKey(), msg, p.prekeys); err == nil {
		t.Error("RespondX3DH without an identity succeeded")
	}
}

func TestInitiateX3DHFailures(t *testing.T) {
	p := newX3DHParties(t, 70)
	lowOrder, _ := NewPublicKey(make([]byte, 32))
	lowSig := ed25519.Sign(p.signer, lowOrder.Bytes())
	tests := []struct {
		name   string
		bundle *Bundle
		rand   *failingReader
		want   error
	}{
		{"low-order identity key", &Bundle{IdentityKey: lowOrder, SignedPrekey: p.spk.PublicKey(), SignedPrekeySignature: p.spk.Signature(), SignedPrekeyID: 1}, nil, ErrLowOrderPublicKey},
		{"low-order signed prekey", &Bundle{IdentityKey: p.bob.PublicKey(), SignedPrekey: lowOrder, SignedPrekeySignature: lowSig, SignedPrekeyID: 1}, nil, ErrLowOrderPublicKey},
		{"low-order one-time prekey", &Bundle{IdentityKey: p.bob.PublicKey(), SignedPrekey: p.spk.PublicKey(), SignedPrekeySignature: p.spk.Signature(), OneTimePrekey: &PublicPrekey{ID: 1, Key: lowOrder}}, nil, ErrLowOrderPublicKey},
		{"random source fails", NewBundle(p.bob.PublicKey(), p.spk, nil), &failingReader{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r = testRand(71)
			if tt.rand != nil {
				r = tt.rand
			}
			sk, msg, err := InitiateX3DH(r, p.alice, tt.bundle, p.signingKey())
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("InitiateX3DH error = %v, want %v", err, tt.want)
			}
			if sk != nil || msg != nil {
				t.Fatal("a failed InitiateX3DH returned a result")
			}
		})
	}
	if _, _, err := InitiateX3DH(nil, nil, NewBundle(p.bob.PublicKey(), p.spk, nil), p.signingKey()); err == nil {
		t.Error("InitiateX3DH without an identity succeeded")
	}
}

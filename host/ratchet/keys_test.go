package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestSecretsRedacted prints every type that holds a secret with every
// common verb, directly and inside other values, and looks for the secret
// in any encoding.
func TestSecretsRedacted(t *testing.T) {
	alice, bob := newPair(t, 20)
	receive(t, bob, send(t, alice, "x"))
	send(t, alice, "skipped")
	receive(t, bob, send(t, alice, "ahead")) // bob stores a skipped key
	priv, _ := GeneratePrivateKey(testRand(21))
	sk := testSecret(22)

	secrets := map[string][]byte{
		"private key":     priv.Bytes(),
		"shared secret":   sk.Bytes(),
		"root key":        bob.keys.rk[:],
		"receiving chain": bob.keys.ckr[:],
		"sending chain":   bob.keys.cks[:],
		"ratchet private": bob.dhs.Bytes(),
		"skipped message key": func() []byte {
			for _, e := range bob.skipped.m {
				return e.mk[:]
			}
			t.Fatal("no skipped key")
			return nil
		}(),
	}
	type holder struct {
		Key    *PrivateKey
		State  *State
		Secret *SharedSecret
		key    *PrivateKey
		state  *State
		secret *SharedSecret
	}
	values := map[string]any{
		"private key":   priv,
		"shared secret": sk,
		"state":         bob,
		// A copy made through reflect, which go vet does not see.
		"state value":           reflect.ValueOf(bob).Elem().Interface(),
		"exported fields":       holder{Key: priv, State: bob, Secret: sk},
		"unexported fields":     holder{key: priv, state: bob, secret: sk},
		"pointer to holder":     &holder{Key: priv, State: bob, key: priv, state: bob},
		"signed prekey":         &SignedPrekey{ID: 1, key: priv},
		"one-time prekey":       &OneTimePrekey{ID: 2, key: priv},
		"one-time prekey value": OneTimePrekey{ID: 2, key: priv},
	}
	for vname, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			out := fmt.Sprintf(verb, v)
			for sname, s := range secrets {
				for _, enc := range []string{
					hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)),
					base64.StdEncoding.EncodeToString(s), fmt.Sprint(s[:8]),
					strings.Trim(fmt.Sprint(s[:8]), "[]"), fmt.Sprintf("%#v", s[:4]),
				} {
					if strings.Contains(out, enc) {
						t.Errorf("%s printed with %s shows the %s: %s", vname, verb, sname, out)
					}
				}
			}
		}
	}
}

func TestCanonicalPublicKeys(t *testing.T) {
	p := func(first byte, middle byte, last byte) []byte {
		b := bytes.Repeat([]byte{middle}, 32)
		b[0], b[31] = first, last
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"zero", make([]byte, 32), nil},
		{"p-1", p(0xec, 0xff, 0x7f), nil},
		{"p", p(0xed, 0xff, 0x7f), ErrNonCanonicalKey},
		{"p+1", p(0xee, 0xff, 0x7f), ErrNonCanonicalKey},
		{"2^255-1", p(0xff, 0xff, 0x7f), ErrNonCanonicalKey},
		{"top bit", p(0x09, 0x00, 0x80), ErrNonCanonicalKey},
		{"below p in the middle", func() []byte { b := p(0xff, 0xff, 0x7f); b[15] = 0xfe; return b }(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPublicKey(tt.b)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("NewPublicKey = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	k, _ := GeneratePrivateKey(testRand(30))
	raw := k.PublicKey().String()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"raw", raw, true},
		{"prefixed", "x25519:" + raw, true},
		{"unpadded", strings.TrimRight(raw, "="), false},
		{"url alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(raw) + "", raw == strings.NewReplacer("+", "-", "/", "_").Replace(raw)},
		{"short", base64.StdEncoding.EncodeToString(make([]byte, 31)), false},
		{"long", base64.StdEncoding.EncodeToString(make([]byte, 33)), false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKey(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParsePublicKey(%q) error = %v, want ok = %v", tt.in, err, tt.ok)
			}
			if tt.ok && !got.Equal(k.PublicKey()) {
				t.Fatalf("ParsePublicKey(%q) = %v, want %v", tt.in, got, k.PublicKey())
			}
		})
	}
}

func TestKeyConstructors(t *testing.T) {
	for _, n := range []int{0, 31, 33} {
		if _, err := NewPrivateKey(make([]byte, n)); err == nil {
			t.Errorf("NewPrivateKey(%d bytes) succeeded", n)
		}
		if _, err := NewPublicKey(make([]byte, n)); err == nil {
			t.Errorf("NewPublicKey(%d bytes) succeeded", n)
		}
	}
	// A deterministic reader gives a deterministic key, unlike
	// crypto/ecdh's GenerateKey.
	a, _ := GeneratePrivateKey(testRand(31))
	b, _ := GeneratePrivateKey(testRand(31))
	if !a.Equal(b) {
		t.Error("same random stream, different keys")
	}
	if _, err := GeneratePrivateKey(failingReader{}); err == nil {
		t.Error("GeneratePrivateKey with a failing reader succeeded")
	}
	ek, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := PrivateKeyFromECDH(ek)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.PublicKey().Bytes(), ek.PublicKey().Bytes()) {
		t.Error("PrivateKeyFromECDH changed the public key")
	}
	p256, _ := ecdh.P256().GenerateKey(nil)
	if _, err := PrivateKeyFromECDH(p256); err == nil {
		t.Error("PrivateKeyFromECDH accepted a P-256 key")
	}
	if _, err := PublicKeyFromECDH(p256.PublicKey()); err == nil {
		t.Error("PublicKeyFromECDH accepted a P-256 key")
	}
	c, _ := NewPrivateKey(a.Bytes())
	if !c.Equal(a) || c.Equal(w) || a.Equal(nil) {
		t.Error("PrivateKey.Equal is wrong")
	}
	s1, s2 := testSecret(1), testSecret(1)
	if !s1.Equal(s2) || s1.Equal(testSecret(2)) {
		t.Error("SharedSecret.Equal is wrong")
	}
	s1.Wipe()
	if !bytes.Equal(s1.Bytes(), make([]byte, 32)) {
		t.Error("Wipe left the secret in place")
	}
}

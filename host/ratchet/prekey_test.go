package ratchet

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math"
	"testing"
)

func testSigner(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func TestGenerateSignedPrekey(t *testing.T) {
	signer := testSigner(1)
	spk, err := GenerateSignedPrekey(testRand(1), 3, signer)
	if err != nil {
		t.Fatal(err)
	}
	if spk.ID != 3 {
		t.Errorf("ID = %d, want 3", spk.ID)
	}
	pub := signer.Public().(ed25519.PublicKey)
	if !ed25519.Verify(pub, spk.PublicKey().Bytes(), spk.Signature()) {
		t.Fatal("signature is not S6 over the raw public key")
	}
	if !spk.PrivateKey().PublicKey().Equal(spk.PublicKey()) {
		t.Fatal("private and public keys do not match")
	}
	if err := VerifyBundle(NewBundle(spk.PublicKey(), spk, nil), pub); err != nil {
		t.Fatalf("VerifyBundle of a fresh bundle: %v", err)
	}

	// Reloading checks the signature.
	if _, err := NewSignedPrekey(3, spk.PrivateKey(), spk.Signature(), pub); err != nil {
		t.Fatalf("NewSignedPrekey: %v", err)
	}
	other, _ := GeneratePrivateKey(testRand(2))
	if _, err := NewSignedPrekey(3, other, spk.Signature(), pub); !errors.Is(err, ErrBadPrekeySignature) {
		t.Fatalf("NewSignedPrekey with another key = %v, want ErrBadPrekeySignature", err)
	}
	if _, err := NewSignedPrekey(3, spk.PrivateKey(), spk.Signature(), testSigner(2).Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadPrekeySignature) {
		t.Fatalf("NewSignedPrekey with another signer = %v, want ErrBadPrekeySignature", err)
	}
	if _, err := NewSignedPrekey(3, spk.PrivateKey(), spk.Signature(), pub[:31]); err == nil {
		t.Fatal("NewSignedPrekey with a short signing key succeeded")
	}
	if got := spk.String(); got != "SignedPrekey(3)" {
		t.Errorf("String = %q", got)
	}
}

func TestGenerateOneTimePrekeys(t *testing.T) {
	keys, err := GenerateOneTimePrekeys(testRand(3), 101, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 100 {
		t.Fatalf("got %d keys, want 100", len(keys))
	}
	seen := map[[32]byte]bool{}
	for i, k := range keys {
		if want := uint32(101 + i); k.ID != want {
			t.Fatalf("key %d has id %d, want %d", i, k.ID, want)
		}
		pub := k.PublicKey().Array()
		if seen[pub] {
			t.Fatalf("key %d repeats an earlier key", i)
		}
		seen[pub] = true
		if p := k.Public(); p.ID != k.ID || !p.Key.Equal(k.PublicKey()) {
			t.Fatalf("Public() of key %d is wrong", i)
		}
	}

	tests := []struct {
		name  string
		start uint32
		n     int
		ok    bool
	}{
		{"none", 1, 0, true},
		{"negative", 1, -1, false},
		{"last id", math.MaxUint32, 1, true},
		{"past the last id", math.MaxUint32, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GenerateOneTimePrekeys(testRand(4), tt.start, tt.n)
			if (err == nil) != tt.ok {
				t.Fatalf("error = %v, want ok = %v", err, tt.ok)
			}
			if tt.ok && len(got) != tt.n {
				t.Fatalf("got %d keys, want %d", len(got), tt.n)
			}
		})
	}
	if _, err := GenerateOneTimePrekeys(failingReader{}, 1, 3); err == nil {
		t.Fatal("a failing random source went unnoticed")
	}
}

func TestVerifyBundleIncomplete(t *testing.T) {
	signer := testSigner(5)
	pub := signer.Public().(ed25519.PublicKey)
	spk, _ := GenerateSignedPrekey(testRand(5), 1, signer)
	ik, _ := GeneratePrivateKey(testRand(6))
	tests := []struct {
		name string
		b    *Bundle
	}{
		{"nil", nil},
		{"no identity key", &Bundle{SignedPrekey: spk.PublicKey(), SignedPrekeySignature: spk.Signature()}},
		{"no signed prekey", &Bundle{IdentityKey: ik.PublicKey(), SignedPrekeySignature: spk.Signature()}},
		{"one-time prekey without key", &Bundle{IdentityKey: ik.PublicKey(), SignedPrekey: spk.PublicKey(), SignedPrekeySignature: spk.Signature(), OneTimePrekey: &PublicPrekey{ID: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyBundle(tt.b, pub); err == nil {
				t.Fatal("VerifyBundle succeeded")
			}
		})
	}
}

func TestEncodedBundle(t *testing.T) {
	signer := testSigner(7)
	spk, _ := GenerateSignedPrekey(testRand(7), 9, signer)
	ik, _ := GeneratePrivateKey(testRand(8))
	otpks, _ := GenerateOneTimePrekeys(testRand(9), 5, 1)
	for _, otpk := range []*OneTimePrekey{nil, otpks[0]} {
		b := NewBundle(ik.PublicKey(), spk, otpk)
		e, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if e.IdentityKey != ik.PublicKey().String() || e.SignedPrekeyID != 9 {
			t.Fatalf("Encode = %+v", e)
		}
		// Readers accept the prefixed form too.
		e.IdentityKey = "x25519:" + e.IdentityKey
		got, err := e.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyBundle(got, signer.Public().(ed25519.PublicKey)); err != nil {
			t.Fatalf("decoded bundle does not verify: %v", err)
		}
		if !got.IdentityKey.Equal(b.IdentityKey) || !got.SignedPrekey.Equal(b.SignedPrekey) ||
			(otpk == nil) != (got.OneTimePrekey == nil) ||
			(otpk != nil && (got.OneTimePrekey.ID != 5 || !got.OneTimePrekey.Key.Equal(otpk.PublicKey()))) {
			t.Fatalf("Decode(Encode(b)) differs from b")
		}
	}
	bad, _ := NewBundle(ik.PublicKey(), spk, otpks[0]).Encode()
	if _, err := (&Bundle{SignedPrekey: spk.PublicKey()}).Encode(); err == nil {
		t.Error("Encode of a bundle without identity key succeeded")
	}
	edits := map[string]func(e *EncodedBundle){
		"identity key":      func(e *EncodedBundle) { e.IdentityKey = "AAAA" },
		"signed prekey":     func(e *EncodedBundle) { e.SignedPrekey = "" },
		"signature":         func(e *EncodedBundle) { e.SignedPrekeySignature = e.SignedPrekeySignature[:40] },
		"one-time prekey":   func(e *EncodedBundle) { e.OneTimePrekey = &EncodedPrekey{ID: 1, Key: "!"} },
		"non-canonical key": func(e *EncodedBundle) { e.SignedPrekey = protocolB64(bytes.Repeat([]byte{0xff}, 32)) },
	}
	for name, edit := range edits {
		e := bad
		edit(&e)
		if _, err := e.Decode(); err == nil {
			t.Errorf("%s: Decode of a bad bundle succeeded", name)
		}
	}
}

package ratchet

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

// mapPrekeys is a PrekeySource over maps.
type mapPrekeys struct {
	signed  map[uint32]*PrivateKey
	oneTime map[uint32]*PrivateKey
}

func (m mapPrekeys) SignedPrekey(id uint32) (*PrivateKey, bool) {
	k, ok := m.signed[id]
	return k, ok
}

func (m mapPrekeys) OneTimePrekey(id uint32) (*PrivateKey, bool) {
	k, ok := m.oneTime[id]
	return k, ok
}

func mustPrivate(t *testing.T, s string) *PrivateKey {
	t.Helper()
	k, err := NewPrivateKey(b64(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPublic(t *testing.T, s string) *PublicKey {
	t.Helper()
	k, err := ParsePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCrossSDKX3DH reproduces the TypeScript SDK's X3DH vector from both
// sides, with the one-time prekey (4-DH, [VEC]) and without it (3-DH,
// PROTOCOL.md §3.2).
func TestCrossSDKX3DH(t *testing.T) {
	v := loadCrossSDKVectors(t).X3DH
	const spkID, opkID = 7, 42
	tests := []struct {
		name    string
		withOPK bool
		want    string
	}{
		{"four DH values", true, v.ExpectedSharedSecret},
		{"three DH values", false, "DMoJ1sczvq2uvZSn0Ym+g7GALUpJmFW002O1CUjp+LA="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aliceIK := mustPrivate(t, v.AliceIdentityPrivate)
			if got := aliceIK.PublicKey().String(); got != v.AliceIdentityPublic {
				t.Fatalf("Alice identity public = %s, want %s", got, v.AliceIdentityPublic)
			}
			bundle := &Bundle{
				IdentityKey:           mustPublic(t, v.BobIdentityPublic),
				SignedPrekey:          mustPublic(t, v.BobSignedPrekeyPublic),
				SignedPrekeySignature: b64(t, v.BobSignedPrekeySignature),
				SignedPrekeyID:        spkID,
			}
			if tt.withOPK {
				bundle.OneTimePrekey = &PublicPrekey{ID: opkID, Key: mustPublic(t, v.BobOneTimePrekeyPublic)}
			}
			signing := ed25519.PublicKey(b64(t, v.BobSigningPublicKey))

			// The ephemeral key is the first 32 bytes read from rand.
			sk, msg, err := InitiateX3DH(bytes.NewReader(b64(t, v.AliceEphemeralPrivate)), aliceIK, bundle, signing)
			if err != nil {
				t.Fatalf("InitiateX3DH: %v", err)
			}
			if got := protocolB64(sk.Bytes()); got != tt.want {
				t.Errorf("initiator SK = %s, want %s", got, tt.want)
			}
			if got := msg.EphemeralKey.String(); got != v.AliceEphemeralPublic {
				t.Errorf("ephemeral key = %s, want %s", got, v.AliceEphemeralPublic)
			}

			keys := mapPrekeys{
				signed:  map[uint32]*PrivateKey{spkID: mustPrivate(t, v.BobSignedPrekeyPrivate)},
				oneTime: map[uint32]*PrivateKey{opkID: mustPrivate(t, v.BobOneTimePrekeyPrivate)},
			}
			bobIK := mustPrivate(t, v.BobIdentityPrivate)
			resp, err := RespondX3DH(bobIK, aliceIK.PublicKey(), msg, keys)
			if err != nil {
				t.Fatalf("RespondX3DH: %v", err)
			}
			if got := protocolB64(resp.SharedSecret.Bytes()); got != tt.want {
				t.Errorf("responder SK = %s, want %s", got, tt.want)
			}
			if !resp.SharedSecret.Equal(sk) {
				t.Error("initiator and responder secrets differ")
			}
			gotConsume := resp.ConsumeOneTimePrekey != nil
			if gotConsume != tt.withOPK || (gotConsume && *resp.ConsumeOneTimePrekey != opkID) {
				t.Errorf("ConsumeOneTimePrekey = %v, want one-time prekey used: %v", resp.ConsumeOneTimePrekey, tt.withOPK)
			}
		})
	}
}

// TestCrossSDKPrekeySignature checks S6 over the vector's signed prekey,
// and that any change to it is refused.
func TestCrossSDKPrekeySignature(t *testing.T) {
	v := loadCrossSDKVectors(t).X3DH
	signing := ed25519.PublicKey(b64(t, v.BobSigningPublicKey))
	good := func() *Bundle {
		return &Bundle{
			IdentityKey:           mustPublic(t, v.BobIdentityPublic),
			SignedPrekey:          mustPublic(t, v.BobSignedPrekeyPublic),
			SignedPrekeySignature: b64(t, v.BobSignedPrekeySignature),
			SignedPrekeyID:        1,
		}
	}
	otherSigner := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	tests := []struct {
		name    string
		edit    func(b *Bundle)
		signing ed25519.PublicKey
		want    error
	}{
		{"valid", func(*Bundle) {}, signing, nil},
		{"flipped signature bit", func(b *Bundle) { b.SignedPrekeySignature[10] ^= 1 }, signing, ErrBadPrekeySignature},
		{"truncated signature", func(b *Bundle) { b.SignedPrekeySignature = b.SignedPrekeySignature[:63] }, signing, ErrBadPrekeySignature},
		{"other prekey", func(b *Bundle) { b.SignedPrekey = b.IdentityKey }, signing, ErrBadPrekeySignature},
		{"other signer", func(*Bundle) {}, otherSigner, ErrBadPrekeySignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := good()
			tt.edit(b)
			err := VerifyBundle(b, tt.signing)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyBundle = %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				return
			}
			aliceIK := mustPrivate(t, v.AliceIdentityPrivate)
			if _, _, err := InitiateX3DH(testRand(1), aliceIK, b, tt.signing); !errors.Is(err, tt.want) {
				t.Fatalf("InitiateX3DH with a bad bundle = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCrossSDKHKDF(t *testing.T) {
	v := loadCrossSDKVectors(t).HKDF
	got, err := hkdfSHA256(b64(t, v.IKM), b64(t, v.Salt), v.Info, v.Length)
	if err != nil {
		t.Fatal(err)
	}
	if protocolB64(got) != v.ExpectedOutput {
		t.Fatalf("HKDF = %s, want %s", protocolB64(got), v.ExpectedOutput)
	}
}

func TestCrossSDKChainKey(t *testing.T) {
	v := loadCrossSDKVectors(t).ChainKey
	mk, next := kdfCK(key32(t, v.ChainKey))
	if got := protocolB64(mk[:]); got != v.ExpectedMessageKey {
		t.Errorf("message key = %s, want %s", got, v.ExpectedMessageKey)
	}
	if got := protocolB64(next[:]); got != v.ExpectedNextChainKey {
		t.Errorf("next chain key = %s, want %s", got, v.ExpectedNextChainKey)
	}
}

func TestCrossSDKRootKey(t *testing.T) {
	v := loadCrossSDKVectors(t).RootKey
	rk, ck, err := kdfRK(key32(t, v.RootKey), key32(t, v.DHOutput))
	if err != nil {
		t.Fatal(err)
	}
	if got := protocolB64(rk[:]); got != v.ExpectedNewRoot {
		t.Errorf("root key = %s, want %s", got, v.ExpectedNewRoot)
	}
	if got := protocolB64(ck[:]); got != v.ExpectedChainKey {
		t.Errorf("chain key = %s, want %s", got, v.ExpectedChainKey)
	}
}

func TestCrossSDKSecretbox(t *testing.T) {
	v := loadCrossSDKVectors(t).Secretbox
	key := key32(t, v.Key)
	ct, err := seal(bytes.NewReader(b64(t, v.Nonce)), key, nil, []byte(v.Plaintext))
	if err != nil {
		t.Fatal(err)
	}
	if got := protocolB64(ct); got != v.ExpectedCiphertext {
		t.Errorf("seal = %s, want %s", got, v.ExpectedCiphertext)
	}
	pt, err := open(key, nil, b64(t, v.ExpectedCiphertext))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if string(pt) != v.Plaintext {
		t.Errorf("open = %q, want %q", pt, v.Plaintext)
	}
	bad := b64(t, v.ExpectedCiphertext)
	bad[len(bad)-1] ^= 1
	if _, err := open(key, nil, bad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("open of a tampered box = %v, want ErrDecrypt", err)
	}
}

package ratchet

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// SignedPrekey is the medium-term X25519 prekey of PROTOCOL.md §3.1, signed
// with the owner's Ed25519 identity key over its raw 32 public bytes (S6).
type SignedPrekey struct {
	// ID names the prekey in bundles and X3DH messages. It starts at 1
	// and grows by one on each rotation.
	ID uint32

	key       *PrivateKey
	signature [ed25519.SignatureSize]byte
}

// GenerateSignedPrekey creates a signed prekey with the given id, reading
// the key from rand (crypto/rand.Reader when nil) and signing its public
// bytes with signer, which must be an Ed25519 key (ed25519.PrivateKey or an
// equivalent crypto.Signer).
func GenerateSignedPrekey(rand io.Reader, id uint32, signer crypto.Signer) (*SignedPrekey, error) {
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("ratchet: signed prekey signer is not an Ed25519 key")
	}
	key, err := GeneratePrivateKey(rand)
	if err != nil {
		return nil, err
	}
	pubBytes := key.PublicKey().Bytes()
	sig, err := signer.Sign(randOrDefault(rand), pubBytes, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("ratchet: signing prekey %d: %w", id, err)
	}
	return NewSignedPrekey(id, key, sig, pub)
}

// NewSignedPrekey reassembles a stored signed prekey. It verifies the
// signature with the owner's signing key, so a corrupted or mismatched
// record is refused with ErrBadPrekeySignature.
func NewSignedPrekey(id uint32, key *PrivateKey, signature []byte, signingKey ed25519.PublicKey) (*SignedPrekey, error) {
	if key == nil {
		return nil, errors.New("ratchet: signed prekey has no key")
	}
	if err := verifyPrekey(signingKey, key.PublicKey(), signature); err != nil {
		return nil, fmt.Errorf("ratchet: signed prekey %d: %w", id, err)
	}
	p := &SignedPrekey{ID: id, key: key}
	copy(p.signature[:], signature)
	return p, nil
}

// PrivateKey returns the prekey's private key.
func (p *SignedPrekey) PrivateKey() *PrivateKey { return p.key }

// PublicKey returns the prekey's public key.
func (p *SignedPrekey) PublicKey() *PublicKey { return p.key.PublicKey() }

// Signature returns a copy of the Ed25519 signature S6.
func (p *SignedPrekey) Signature() []byte { return append([]byte(nil), p.signature[:]...) }

// String names the prekey by id; it never prints key material.
func (p *SignedPrekey) String() string { return fmt.Sprintf("SignedPrekey(%d)", p.ID) }

// OneTimePrekey is a single-use X25519 prekey (PROTOCOL.md §3.1).
type OneTimePrekey struct {
	// ID names the prekey; ids are never reused.
	ID uint32

	key *PrivateKey
}

// NewOneTimePrekey reassembles a stored one-time prekey.
func NewOneTimePrekey(id uint32, key *PrivateKey) (*OneTimePrekey, error) {
	if key == nil {
		return nil, errors.New("ratchet: one-time prekey has no key")
	}
	return &OneTimePrekey{ID: id, key: key}, nil
}

// GenerateOneTimePrekeys creates n one-time prekeys with the sequential ids
// startID, startID+1, …, reading keys from rand (crypto/rand.Reader when
// nil). The ids must not pass math.MaxUint32.
func GenerateOneTimePrekeys(rand io.Reader, startID uint32, n int) ([]*OneTimePrekey, error) {
	if n < 0 {
		return nil, fmt.Errorf("ratchet: cannot generate %d one-time prekeys", n)
	}
	if n > 0 && uint64(startID)+uint64(n)-1 > math.MaxUint32 {
		return nil, fmt.Errorf("ratchet: %d one-time prekeys from id %d overflow the id space", n, startID)
	}
	keys := make([]*OneTimePrekey, n)
	for i := range keys {
		k, err := GeneratePrivateKey(rand)
		if err != nil {
			return nil, err
		}
		keys[i] = &OneTimePrekey{ID: startID + uint32(i), key: k}
	}
	return keys, nil
}

// PrivateKey returns the prekey's private key.
func (p *OneTimePrekey) PrivateKey() *PrivateKey { return p.key }

// PublicKey returns the prekey's public key.
func (p *OneTimePrekey) PublicKey() *PublicKey { return p.key.PublicKey() }

// Public returns the id and public key, as a bundle carries them.
func (p *OneTimePrekey) Public() *PublicPrekey {
	return &PublicPrekey{ID: p.ID, Key: p.key.PublicKey()}
}

// String names the prekey by id; it never prints key material.
func (p *OneTimePrekey) String() string { return fmt.Sprintf("OneTimePrekey(%d)", p.ID) }

// PublicPrekey is a one-time prekey as published: its id and public key.
type PublicPrekey struct {
	ID  uint32
	Key *PublicKey
}

// Bundle is the prekey bundle an initiator runs X3DH against (PROTOCOL.md
// §3.1). The registry serves it as JSON (§8.6); EncodedBundle holds the
// base64 strings of that form.
type Bundle struct {
	// IdentityKey is the responder's X25519 identity key: its registered
	// exchange public key.
	IdentityKey *PublicKey
	// SignedPrekey is the responder's current signed prekey.
	SignedPrekey *PublicKey
	// SignedPrekeySignature is the Ed25519 signature S6 over the 32 raw
	// bytes of SignedPrekey.
	SignedPrekeySignature []byte
	// SignedPrekeyID names SignedPrekey.
	SignedPrekeyID uint32
	// OneTimePrekey is the one-time prekey the registry handed out, or
	// nil when none was left (X3DH then uses three DH values).
	OneTimePrekey *PublicPrekey
}

// NewBundle assembles the bundle that publishes identity, spk and,
// when not nil, otpk.
func NewBundle(identity *PublicKey, spk *SignedPrekey, otpk *OneTimePrekey) *Bundle {
	b := &Bundle{
		IdentityKey:           identity,
		SignedPrekey:          spk.PublicKey(),
		SignedPrekeySignature: spk.Signature(),
		SignedPrekeyID:        spk.ID,
	}
	if otpk != nil {
		b.OneTimePrekey = otpk.Public()
	}
	return b
}

// VerifyBundle checks that b is complete and that its signed-prekey
// signature verifies with signingKey, the responder's Ed25519 key from the
// registry. A signature that does not verify is ErrBadPrekeySignature.
func VerifyBundle(b *Bundle, signingKey ed25519.PublicKey) error {
	switch {
	case b == nil:
		return errors.New("ratchet: no prekey bundle")
	case b.IdentityKey == nil:
		return errors.New("ratchet: prekey bundle: no identity_key")
	case b.SignedPrekey == nil:
		return errors.New("ratchet: prekey bundle: no signed_prekey")
	case b.OneTimePrekey != nil && b.OneTimePrekey.Key == nil:
		return errors.New("ratchet: prekey bundle: one_time_prekey has no key")
	}
	if err := verifyPrekey(signingKey, b.SignedPrekey, b.SignedPrekeySignature); err != nil {
		return fmt.Errorf("ratchet: prekey bundle: %w", err)
	}
	return nil
}

func verifyPrekey(signingKey ed25519.PublicKey, spk *PublicKey, sig []byte) error {
	if len(signingKey) != ed25519.PublicKeySize {
		return fmt.Errorf("Ed25519 signing key is %d bytes, want %d", len(signingKey), ed25519.PublicKeySize)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(signingKey, spk.b[:], sig) {
		return ErrBadPrekeySignature
	}
	return nil
}

// EncodedBundle is a Bundle with its keys and signature as raw standard
// base64, the strings of the registry's JSON (PROTOCOL.md §8.6). The JSON
// itself belongs to the registry client.
type EncodedBundle struct {
	IdentityKey           string
	SignedPrekey          string
	SignedPrekeySignature string
	SignedPrekeyID        uint32
	OneTimePrekey         *EncodedPrekey
}

// EncodedPrekey is a PublicPrekey with its key as raw standard base64.
type EncodedPrekey struct {
	ID  uint32
	Key string
}

// Encode returns the base64 form of b, keys without prefix. It fails for
// a bundle without its keys.
func (b *Bundle) Encode() (EncodedBundle, error) {
	if b.IdentityKey == nil || b.SignedPrekey == nil || (b.OneTimePrekey != nil && b.OneTimePrekey.Key == nil) {
		return EncodedBundle{}, errors.New("ratchet: prekey bundle: missing key")
	}
	e := EncodedBundle{
		IdentityKey:           b.IdentityKey.String(),
		SignedPrekey:          b.SignedPrekey.String(),
		SignedPrekeySignature: protocol.B64.EncodeToString(b.SignedPrekeySignature),
		SignedPrekeyID:        b.SignedPrekeyID,
	}
	if p := b.OneTimePrekey; p != nil {
		e.OneTimePrekey = &EncodedPrekey{ID: p.ID, Key: p.Key.String()}
	}
	return e, nil
}

// Decode parses the base64 strings of e, accepting keys with or without the
// "x25519:" prefix. It does not verify the signature: call VerifyBundle.
func (e EncodedBundle) Decode() (*Bundle, error) {
	ik, err := parsePublicKey(e.IdentityKey)
	if err != nil {
		return nil, fmt.Errorf("ratchet: prekey bundle: identity_key: %w", err)
	}
	spk, err := parsePublicKey(e.SignedPrekey)
	if err != nil {
		return nil, fmt.Errorf("ratchet: prekey bundle: signed_prekey: %w", err)
	}
	sig, err := protocol.DecodeB64(e.SignedPrekeySignature, ed25519.SignatureSize)
	if err != nil {
		return nil, fmt.Errorf("ratchet: prekey bundle: signed_prekey_signature: %w", err)
	}
	b := &Bundle{IdentityKey: ik, SignedPrekey: spk, SignedPrekeySignature: sig, SignedPrekeyID: e.SignedPrekeyID}
	if p := e.OneTimePrekey; p != nil {
		k, err := parsePublicKey(p.Key)
		if err != nil {
			return nil, fmt.Errorf("ratchet: prekey bundle: one_time_prekey: %w", err)
		}
		b.OneTimePrekey = &PublicPrekey{ID: p.ID, Key: k}
	}
	return b, nil
}

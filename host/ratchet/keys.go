package ratchet

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// keySize is the size of every X25519 key, shared secret and symmetric key
// of the protocol.
const keySize = 32

// PrivateKey is an X25519 private key: an identity exchange key, a prekey,
// an X3DH ephemeral or a ratchet key. It is immutable and safe to share. It
// never prints its secret: every fmt verb writes a redacted placeholder.
type PrivateKey struct {
	k   *ecdh.PrivateKey
	pub *PublicKey
}

// GeneratePrivateKey reads 32 bytes from rand (crypto/rand.Reader when nil)
// and returns them as a private key. The reader is used as given: unlike
// crypto/ecdh.Curve.GenerateKey, a deterministic reader yields deterministic
// keys, which tests rely on.
func GeneratePrivateKey(rand io.Reader) (*PrivateKey, error) {
	var b [keySize]byte
	defer clear(b[:])
	if _, err := io.ReadFull(randOrDefault(rand), b[:]); err != nil {
		return nil, fmt.Errorf("ratchet: generating X25519 key: %w", err)
	}
	return NewPrivateKey(b[:])
}

// NewPrivateKey returns the private key with the given 32 raw bytes (the
// form of PROTOCOL.md §1.1). Every 32-byte string is a valid key; the
// scalar is clamped when used, as RFC 7748 specifies.
func NewPrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != keySize {
		return nil, fmt.Errorf("ratchet: X25519 private key is %d bytes, want %d", len(b), keySize)
	}
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("ratchet: X25519 private key: %w", err)
	}
	return privateFromECDH(k)
}

// PrivateKeyFromECDH wraps an X25519 key held as a crypto/ecdh key, such as
// the agent's identity exchange key.
func PrivateKeyFromECDH(k *ecdh.PrivateKey) (*PrivateKey, error) {
	if k == nil || k.Curve() != ecdh.X25519() {
		return nil, errors.New("ratchet: not an X25519 private key")
	}
	return privateFromECDH(k)
}

func privateFromECDH(k *ecdh.PrivateKey) (*PrivateKey, error) {
	pub, err := PublicKeyFromECDH(k.PublicKey())
	if err != nil {
		// Unreachable: scalar multiplication of the base point always
		// yields a canonical encoding.
		return nil, err
	}
	return &PrivateKey{k: k, pub: pub}, nil
}

// PublicKey returns the matching public key.
func (k *PrivateKey) PublicKey() *PublicKey { return k.pub }

// Bytes returns a copy of the 32 raw private key bytes, for storage. The
// caller owns the copy and should clear it after use.
func (k *PrivateKey) Bytes() []byte { return k.k.Bytes() }

// Equal reports whether k and x are the same key, in constant time.
func (k *PrivateKey) Equal(x *PrivateKey) bool {
	return x != nil && k.k.Equal(x.k)
}

// Format writes a placeholder for every verb, so that a private key never
// reaches a log.
func (k *PrivateKey) Format(f fmt.State, verb rune) {
	io.WriteString(f, k.String())
}

// String returns a placeholder naming the key type, never the key.
func (k *PrivateKey) String() string { return "ratchet.PrivateKey(REDACTED)" }

// dh computes X25519(k, pub). An all-zero result, which a low-order public
// key produces, is an error (DESIGN.md §9), so the output is always
// contributory.
func (k *PrivateKey) dh(pub *PublicKey) ([keySize]byte, error) {
	var out [keySize]byte
	s, err := k.k.ECDH(pub.k)
	if err != nil {
		return out, ErrLowOrderPublicKey
	}
	copy(out[:], s)
	clear(s)
	// crypto/ecdh already refuses an all-zero result; check again so the
	// guarantee does not rest on one line of another package.
	var zero [keySize]byte
	if subtle.ConstantTimeCompare(out[:], zero[:]) == 1 {
		return out, ErrLowOrderPublicKey
	}
	return out, nil
}

// PublicKey is an X25519 public key. It is immutable and safe to share.
// Only canonical encodings are accepted (see NewPublicKey).
type PublicKey struct {
	k *ecdh.PublicKey
	b [keySize]byte
}

// NewPublicKey returns the public key with the given 32 raw bytes. It
// refuses non-canonical encodings (the top bit set, or a u-coordinate of
// 2^255−19 or more), which no honest peer produces: RFC 7748 would reduce
// them to the same point as a canonical key, so accepting them would let
// anyone change a ratchet header's key bytes without changing the key it
// names (PROTOCOL.md W-14). Low-order keys are accepted here and refused by
// every key agreement that uses them.
func NewPublicKey(b []byte) (*PublicKey, error) {
	k, err := newPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("ratchet: %w", err)
	}
	return k, nil
}

// newPublicKey is NewPublicKey with errors that the caller prefixes.
func newPublicKey(b []byte) (*PublicKey, error) {
	if len(b) != keySize {
		return nil, fmt.Errorf("X25519 public key is %d bytes, want %d", len(b), keySize)
	}
	if !canonical((*[keySize]byte)(b)) {
		return nil, ErrNonCanonicalKey
	}
	k, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("X25519 public key: %w", err)
	}
	pk := &PublicKey{k: k}
	copy(pk.b[:], b)
	return pk, nil
}

// PublicKeyFromECDH wraps an X25519 public key held as a crypto/ecdh key.
func PublicKeyFromECDH(k *ecdh.PublicKey) (*PublicKey, error) {
	if k == nil || k.Curve() != ecdh.X25519() {
		return nil, errors.New("ratchet: not an X25519 public key")
	}
	return NewPublicKey(k.Bytes())
}

// ParsePublicKey reads a public key written as standard padded base64, with
// or without the "x25519:" prefix (PROTOCOL.md §0.2).
func ParsePublicKey(s string) (*PublicKey, error) {
	k, err := parsePublicKey(s)
	if err != nil {
		return nil, fmt.Errorf("ratchet: %w", err)
	}
	return k, nil
}

// parsePublicKey is ParsePublicKey with errors that the caller prefixes.
func parsePublicKey(s string) (*PublicKey, error) {
	body, _ := protocol.StripKeyPrefix(s)
	b, err := protocol.DecodeB64(body, keySize)
	if err != nil {
		return nil, fmt.Errorf("X25519 public key: %w", err)
	}
	return newPublicKey(b)
}

// Bytes returns a copy of the 32 raw bytes.
func (k *PublicKey) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// Array returns the 32 raw bytes as an array, the form of Header.DHPublicKey.
func (k *PublicKey) Array() [keySize]byte { return k.b }

// ECDH returns the key as a crypto/ecdh public key.
func (k *PublicKey) ECDH() *ecdh.PublicKey { return k.k }

// Equal reports whether k and x are the same key.
func (k *PublicKey) Equal(x *PublicKey) bool { return x != nil && k.b == x.b }

// String returns the key as raw (unprefixed) standard base64, the form of
// the X3DH message and the ratchet header (PROTOCOL.md §3.3, §4.6).
func (k *PublicKey) String() string { return protocol.B64.EncodeToString(k.b[:]) }

// canonical reports whether b is the canonical little-endian encoding of a
// field element: below 2^255−19, which also means the top bit is clear.
func canonical(b *[keySize]byte) bool {
	if b[31]&0x80 != 0 {
		return false
	}
	if b[31] != 0x7f || b[0] < 0xed {
		return true
	}
	for _, c := range b[1:31] {
		if c != 0xff {
			return true
		}
	}
	return false
}

// SharedSecret is the 32-byte X3DH output SK that seeds a Double Ratchet
// (PROTOCOL.md §3.2). Like PrivateKey it never prints its value. The zero
// SharedSecret holds no secret and seeds nothing.
type SharedSecret struct {
	b *[keySize]byte // behind a pointer so that fmt prints an address
}

// Bytes returns a copy of the secret. The caller owns the copy and should
// clear it after use.
func (s *SharedSecret) Bytes() []byte {
	if s.b == nil {
		return nil
	}
	return append([]byte(nil), s.b[:]...)
}

// Equal reports whether s and x hold the same secret, in constant time.
func (s *SharedSecret) Equal(x *SharedSecret) bool {
	return x != nil && s.b != nil && x.b != nil && subtle.ConstantTimeCompare(s.b[:], x.b[:]) == 1
}

// Wipe overwrites the secret with zeros. Call it once the ratchet state has
// been created from it.
func (s *SharedSecret) Wipe() {
	if s.b != nil {
		clear(s.b[:])
	}
}

// Format writes a placeholder for every verb.
func (s *SharedSecret) Format(f fmt.State, verb rune) { io.WriteString(f, s.String()) }

// String returns a placeholder, never the secret.
func (s *SharedSecret) String() string { return "ratchet.SharedSecret(REDACTED)" }

// randOrDefault returns r, or crypto/rand.Reader when r is nil.
func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

package ratchet

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/nacl/secretbox"
)

// Key derivation labels and sizes. Each cites the section of PROTOCOL.md
// that fixes it; none may change without breaking the TypeScript SDK.
const (
	// x3dhInfo is the HKDF info of the X3DH shared secret (§3.2). The salt
	// is 32 zero bytes and no 0xFF×32 prefix is prepended to the input.
	x3dhInfo = "X3DH"
	// rootInfo is the HKDF info of KDF_RK (§4.1).
	rootInfo = "agentmesh_rk"
	// messageKeyInput and chainKeyInput are the HMAC messages of KDF_CK
	// (§4.1): MK = HMAC(CK, 0x01), CK' = HMAC(CK, 0x02).
	messageKeyInput = 0x01
	chainKeyInput   = 0x02

	// nonceSize is the length of the random nonce prepended to every
	// ciphertext (§4.1, XSalsa20).
	nonceSize = 24
	// overhead is what ENCRYPT adds to a plaintext: the nonce and the
	// 16-byte Poly1305 tag.
	overhead = nonceSize + secretbox.Overhead
)

// hkdfSHA256 is HKDF-SHA256 (RFC 5869) in one call: extract with salt, then
// expand to n bytes with info.
func hkdfSHA256(secret, salt []byte, info string, n int) ([]byte, error) {
	out, err := hkdf.Key(sha256.New, secret, salt, info, n)
	if err != nil {
		return nil, fmt.Errorf("ratchet: HKDF-SHA256: %w", err)
	}
	return out, nil
}

// hmacSHA256Pair computes HMAC-SHA256(key, a) and HMAC-SHA256(key, b)
// (RFC 2104). KDF_CK needs exactly that, two MACs under one key, for every
// message, so this function hashes each padded key block once for both
// MACs and allocates nothing, where crypto/hmac would allocate a dozen
// times and hash the key blocks twice. Wycheproof's HMAC-SHA256 vectors
// check it.
func hmacSHA256Pair(key, a, b []byte) (macA, macB [sha256.Size]byte) {
	var pad [sha256.BlockSize]byte
	if len(key) > len(pad) {
		k := sha256.Sum256(key)
		copy(pad[:], k[:])
		clear(k[:])
	} else {
		copy(pad[:], key)
	}
	for i := range pad {
		pad[i] ^= 0x36
	}
	var innerA, innerB [sha256.Size]byte
	hashPair(pad[:], a, b, &innerA, &innerB)
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	hashPair(pad[:], innerA[:], innerB[:], &macA, &macB)
	clear(pad[:])
	clear(innerA[:])
	clear(innerB[:])
	return macA, macB
}

// hashPair sets outA = SHA-256(prefix ‖ a) and outB = SHA-256(prefix ‖ b),
// hashing prefix once: the hash state after it is saved and restored, as
// crypto/sha256 documents it can be. Should that ever fail, prefix is
// simply hashed again.
func hashPair(prefix, a, b []byte, outA, outB *[sha256.Size]byte) {
	h := sha256.New()
	h.Write(prefix)
	var buf [128]byte // a saved SHA-256 state takes 108 bytes
	var saved []byte
	m, canSave := h.(encoding.BinaryAppender)
	u, canRestore := h.(encoding.BinaryUnmarshaler)
	if canSave && canRestore {
		saved, _ = m.AppendBinary(buf[:0])
	}
	h.Write(a)
	h.Sum(outA[:0])
	if saved == nil || u.UnmarshalBinary(saved) != nil {
		h.Reset()
		h.Write(prefix)
	}
	h.Write(b)
	h.Sum(outB[:0])
	h.Reset()
	clear(buf[:])
}

// kdfCK is the symmetric ratchet step KDF_CK of PROTOCOL.md §4.1: the
// message key and the next chain key.
func kdfCK(ck *[keySize]byte) (mk, next [keySize]byte) {
	return hmacSHA256Pair(ck[:], []byte{messageKeyInput}, []byte{chainKeyInput})
}

// kdfRK is the root ratchet step KDF_RK of PROTOCOL.md §4.1:
// HKDF-SHA256(salt = RK, IKM = dh, info = "agentmesh_rk", L = 64), split
// into the next root key and a chain key.
func kdfRK(rk, dh *[keySize]byte) (nextRK, ck [keySize]byte, err error) {
	out, err := hkdfSHA256(dh[:], rk[:], rootInfo, 2*keySize)
	if err != nil {
		return nextRK, ck, err
	}
	copy(nextRK[:], out[:keySize])
	copy(ck[:], out[keySize:])
	clear(out)
	return nextRK, ck, nil
}

// x3dhKDF derives SK from DH1‖DH2‖DH3[‖DH4] (PROTOCOL.md §3.2).
func x3dhKDF(ikm []byte) (*SharedSecret, error) {
	var salt [keySize]byte
	out, err := hkdfSHA256(ikm, salt[:], x3dhInfo, keySize)
	if err != nil {
		return nil, err
	}
	sk := &SharedSecret{b: new([keySize]byte)}
	copy(sk.b[:], out)
	clear(out)
	return sk, nil
}

// seal is ENCRYPT of PROTOCOL.md §4.1: it reads a 24-byte nonce from rand
// and appends nonce ‖ secretbox(plaintext), with no associated data, to
// dst.
func seal(rand io.Reader, mk *[keySize]byte, dst, plaintext []byte) ([]byte, error) {
	out := slices.Grow(dst, overhead+len(plaintext))
	nonce := out[len(dst) : len(dst)+nonceSize]
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("ratchet: reading nonce: %w", err)
	}
	return secretbox.Seal(out[:len(dst)+nonceSize], plaintext, (*[nonceSize]byte)(nonce), mk), nil
}

// open reverses seal, appending the plaintext to dst. Any failure is
// ErrDecrypt.
func open(mk *[keySize]byte, dst, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < overhead {
		return nil, ErrDecrypt
	}
	pt, ok := secretbox.Open(dst, ciphertext[nonceSize:], (*[nonceSize]byte)(ciphertext), mk)
	if !ok {
		return nil, ErrDecrypt
	}
	return pt, nil
}

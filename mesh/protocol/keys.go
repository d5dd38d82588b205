package protocol

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Key type prefixes (PROTOCOL.md §0.2). Writers always add them; readers
// accept keys with or without.
const (
	SigningKeyPrefix  = "ed25519:"
	ExchangeKeyPrefix = "x25519:"
)

// B64 is the only base64 of the protocol: the standard alphabet with padding
// (PROTOCOL.md §0.2). Unpadded or URL-safe input is rejected.
var B64 = base64.StdEncoding.Strict()

// DecodeB64 decodes standard padded base64 and, when want > 0, checks the
// decoded length. Errors never echo the input, which may be a secret.
func DecodeB64(s string, want int) ([]byte, error) {
	// Even the strict decoder skips CR and LF. A JSON escape can put them
	// in a string, and the protocol allows neither: accepting them would
	// give one value many spellings.
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("not standard padded base64")
	}
	b, err := B64.DecodeString(s)
	if err != nil {
		return nil, errors.New("not standard padded base64")
	}
	if want > 0 && len(b) != want {
		n := len(b)
		clear(b) // it may be most of a private key
		return nil, fmt.Errorf("decodes to %d bytes, want %d", n, want)
	}
	return b, nil
}

// StripKeyPrefix removes a leading "ed25519:" or "x25519:" and reports
// whether one was present. This is the rule of the relay and registry; it
// accepts either prefix for either key type, as they do.
func StripKeyPrefix(s string) (body string, prefixed bool) {
	if b, ok := strings.CutPrefix(s, SigningKeyPrefix); ok {
		return b, true
	}
	if b, ok := strings.CutPrefix(s, ExchangeKeyPrefix); ok {
		return b, true
	}
	return s, false
}

// ParseSigningPublicKey reads an Ed25519 public key written as base64, with or
// without the "ed25519:" prefix.
func ParseSigningPublicKey(s string) (ed25519.PublicKey, error) {
	body, _ := StripKeyPrefix(s)
	b, err := DecodeB64(body, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("signing public key: %w", err)
	}
	return ed25519.PublicKey(b), nil
}

// ParseExchangePublicKey reads an X25519 public key written as base64, with or
// without the "x25519:" prefix.
func ParseExchangePublicKey(s string) (*ecdh.PublicKey, error) {
	body, _ := StripKeyPrefix(s)
	b, err := DecodeB64(body, 32)
	if err != nil {
		return nil, fmt.Errorf("exchange public key: %w", err)
	}
	k, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("exchange public key: %w", err)
	}
	return k, nil
}

// EncodeSigningPublicKey writes an Ed25519 public key in its prefixed form.
func EncodeSigningPublicKey(k ed25519.PublicKey) string {
	return SigningKeyPrefix + B64.EncodeToString(k)
}

// EncodeExchangePublicKey writes an X25519 public key in its prefixed form.
func EncodeExchangePublicKey(k *ecdh.PublicKey) string {
	return ExchangeKeyPrefix + B64.EncodeToString(k.Bytes())
}

// AMID is an agent's address: base58 of the first 20 bytes of the SHA-256 of
// its raw Ed25519 public key (PROTOCOL.md §1.2).
type AMID string

// amidHashLen is the number of SHA-256 bytes an AMID encodes.
const amidHashLen = 20

// DeriveAMID computes the AMID of an Ed25519 public key.
func DeriveAMID(pub ed25519.PublicKey) AMID {
	sum := sha256.Sum256(pub)
	return AMID(EncodeBase58(sum[:amidHashLen]))
}

// ParseAMID checks that s is a well-formed AMID: base58 that decodes to
// exactly 20 bytes, in canonical form.
func ParseAMID(s string) (AMID, error) {
	if s == "" {
		return "", errors.New("empty AMID")
	}
	if len(s) > 40 {
		return "", fmt.Errorf("AMID is %d characters, too long", len(s))
	}
	b, err := DecodeBase58(s)
	if err != nil {
		return "", fmt.Errorf("AMID: %w", err)
	}
	if len(b) != amidHashLen {
		return "", fmt.Errorf("AMID decodes to %d bytes, want %d", len(b), amidHashLen)
	}
	return AMID(s), nil
}

// Matches reports whether a is the AMID of pub.
func (a AMID) Matches(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && DeriveAMID(pub) == a
}

// DID returns the agent's decentralised identifier, did:agentmesh:<AMID>.
func (a AMID) DID() string { return "did:agentmesh:" + string(a) }

// Short returns the first eight characters of the AMID, for logs.
func (a AMID) Short() string {
	if len(a) <= 8 {
		return string(a)
	}
	return string(a[:8]) + "…"
}

package protocol

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// The timestamp-only signatures S1–S5 (PROTOCOL.md §2.2) and the signed
// prekey signature S6 (§3.1). The handshake signatures S7–S12 are methods of
// the handshake types.

// SignTimestamp signs the UTF-8 bytes of a timestamp string, as an agent
// does for relay CONNECT (S1) and the registry's register (S2), mutation
// (S3) and organisation (S5) requests. Pass FormatSigningTimestamp(now) and
// send the same string.
func SignTimestamp(priv ed25519.PrivateKey, timestamp string) string {
	return signB64(priv, []byte(timestamp))
}

// VerifyTimestamp checks a timestamp signature the way our relay and
// registry do: over the string exactly as received and, failing that, over
// its T-RFC re-rendering (what the Rust servers verify), so every client
// they accept is accepted too. It also checks the freshness window against
// now. Replay protection (remembering the signature) is the caller's.
func VerifyTimestamp(pub ed25519.PublicKey, timestamp, signature string, now time.Time) error {
	t, err := ParseTimestamp(timestamp)
	if err != nil {
		return err
	}
	if err := CheckFreshness(t, now); err != nil {
		return err
	}
	if verifyB64(pub, []byte(timestamp), signature) == nil {
		return nil
	}
	if rfc := FormatRFCTimestamp(t); rfc != timestamp {
		return verifyB64(pub, []byte(rfc), signature)
	}
	return ErrBadSignature
}

// VerifyConnect checks a relay CONNECT's credentials (S1): the public key
// matches the claimed AMID and the timestamp signature verifies and is
// fresh. It returns the parsed public key.
func VerifyConnect(amid AMID, publicKey, timestamp, signature string, now time.Time) (ed25519.PublicKey, error) {
	pub, err := ParseSigningPublicKey(publicKey)
	if err != nil {
		return nil, err
	}
	if !amid.Matches(pub) {
		return nil, errors.New("public key does not match the AMID")
	}
	if err := VerifyTimestamp(pub, timestamp, signature, now); err != nil {
		return nil, err
	}
	return pub, nil
}

// VerifyOrgRegistration checks an organisation registration (S5): the
// admin's key must derive the claimed admin AMID and sign the timestamp.
func VerifyOrgRegistration(adminAMID AMID, adminPublicKey, timestamp, signature string, now time.Time) error {
	_, err := VerifyConnect(adminAMID, adminPublicKey, timestamp, signature, now)
	if err != nil {
		return fmt.Errorf("organisation admin: %w", err)
	}
	return nil
}

// SignPrekey signs a signed prekey (S6): the signature covers the raw 32
// public-key bytes, no prefix and no encoding.
func SignPrekey(priv ed25519.PrivateKey, prekeyPublic []byte) string {
	return signB64(priv, prekeyPublic)
}

// VerifyPrekey checks a signed prekey's signature S6 with the owner's
// signing key. Initiators must call it before using a bundle.
func VerifyPrekey(pub ed25519.PublicKey, prekeyPublic []byte, signature string) error {
	if len(prekeyPublic) != 32 {
		return ErrBadSignature
	}
	return verifyB64(pub, prekeyPublic, signature)
}

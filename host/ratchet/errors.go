package ratchet

import "errors"

// Errors of the package. Test for them with errors.Is: most are returned
// wrapped with detail (a prekey id, a message number), never with secret
// material.
var (
	// ErrLowOrderPublicKey is returned when an X25519 agreement produces
	// the all-zero shared secret, which happens exactly when the public key
	// has low order. No honest peer sends such a key.
	ErrLowOrderPublicKey = errors.New("X25519 shared secret is all zeros (low-order public key)")

	// ErrNonCanonicalKey is returned for an X25519 public key whose
	// encoding is not canonical (see NewPublicKey).
	ErrNonCanonicalKey = errors.New("X25519 public key is not canonically encoded")

	// ErrBadPrekeySignature is returned when a bundle's signed-prekey
	// signature (S6) does not verify with the owner's signing key. An
	// initiator must abort the session (PROTOCOL.md §3.1).
	ErrBadPrekeySignature = errors.New("signed prekey signature does not verify")

	// ErrUnknownPrekey is returned by RespondX3DH when the X3DH message
	// names a signed or one-time prekey the responder does not hold.
	ErrUnknownPrekey = errors.New("unknown prekey")

	// ErrIdentityMismatch is returned by RespondX3DH when the identity key
	// in the X3DH message is not the initiator's registered exchange key
	// (PROTOCOL.md W-9).
	ErrIdentityMismatch = errors.New("X3DH identity key is not the initiator's registered exchange key")

	// ErrCannotSendYet is returned by Encrypt before the state may start a
	// sending chain: an initiator that has not learnt the responder's
	// ratchet key, or a responder that has not yet decrypted a message
	// (the ordering rule of PROTOCOL.md §4.5).
	ErrCannotSendYet = errors.New("cannot send yet: an initiator needs the peer's ratchet key, a responder must receive first")

	// ErrDecrypt is the single error for every message that fails
	// authentication, whatever the cause (wrong key, tampered header or
	// ciphertext, garbage), so that failures reveal nothing (no oracle).
	ErrDecrypt = errors.New("message authentication failed")

	// ErrReplay is returned for a message on the current receiving chain
	// whose number was already passed and whose key is not among the
	// stored skipped keys: it was decrypted before, or its skipped key was
	// discarded (PROTOCOL.md W-15). The state is unchanged.
	ErrReplay = errors.New("message already received or its key discarded")

	// ErrExcessiveSkip is returned when decrypting a message would require
	// deriving more than MaxSkip skipped message keys. The state is
	// unchanged; the session layer closes the session with the reason
	// excessive_skip.
	ErrExcessiveSkip = errors.New("too many skipped messages")

	// ErrMalformedState is wrapped by UnmarshalState and ImportTSState for
	// input that is not a valid serialized state.
	ErrMalformedState = errors.New("malformed state")

	// errUnusable is returned by a State that was never initialised or has
	// been wiped.
	errUnusable = errors.New("state is not initialised or has been wiped")
)

// Package ratchet implements the end-to-end encryption of AgentMesh
// sessions: X3DH key agreement over prekey bundles and the Double Ratchet
// that encrypts every message (PROTOCOL.md §3, §4).
//
// The package owns the cryptography and its state, nothing else. It does
// no I/O and reads no clock: randomness comes from an io.Reader the caller
// passes (nil means crypto/rand.Reader), and a State is persisted by the
// caller through MarshalBinary and UnmarshalState. Wire formats beyond the
// X3DH message, and the session handshake that carries them, belong to
// mesh/protocol and host/session.
//
// # Using it
//
// The initiator fetches the responder's Bundle, calls InitiateX3DH (which
// verifies the signed prekey with VerifyBundle), sends the InitiatorMessage
// in its KNOCK, and starts its ratchet with NewInitiator. The responder
// calls RespondX3DH and NewResponder, and puts State.RatchetPublicKey in its
// ACCEPT; the initiator passes that key to State.SetRemoteRatchetKey. From
// then on both sides call State.Encrypt and State.Decrypt, or
// State.AppendEncrypt and State.AppendDecrypt to reuse their own buffers.
// Header has the fields of the envelope's header type in mesh/protocol and
// converts to it directly.
//
// The responder cannot send first: its first sending chain comes from the
// DH ratchet step that the initiator's first message triggers (PROTOCOL.md
// §4.5). Encrypt returns ErrCannotSendYet until then, and an initiator
// without the responder's ratchet key gets the same error.
//
// # Compatibility
//
// Every byte other peers see is the TypeScript SDK's: X3DH with the DH order
// DH1..DH4 and HKDF-SHA256 (salt 32 zero bytes, info "X3DH"), KDF_RK with
// info "agentmesh_rk", KDF_CK as HMAC-SHA256 with 0x01 and 0x02, and
// messages as a random 24-byte nonce followed by a NaCl secretbox
// (XSalsa20-Poly1305) with no associated data; headers carry the sender's
// ratchet key, PN and N. The published cross-SDK vectors pin these
// primitives, and the ratchet's state machine follows §4.3–§4.5, which was
// checked against the TypeScript SDK in both roles. ImportTSState and
// State.ExportTSState read and write the TypeScript SDK's persisted state.
//
// # Hardening
//
// Within those bytes the package is stricter than the TypeScript SDK
// (PROTOCOL.md W-14..W-17, DESIGN.md §4.4):
//
//   - Decrypt stages every change and commits only after the message
//     authenticates, so a forged, tampered or replayed message leaves the
//     state exactly as it was. All authentication failures are one error,
//     ErrDecrypt.
//   - A message on the current receiving chain whose number was already
//     passed, and whose key is not stored, is refused with ErrReplay
//     instead of rewinding the chain.
//   - On a new remote ratchet key the previous chain's keys are skipped
//     only up to min(PN, Nr+MaxSkip), not always to Nr+MaxSkip; for an
//     honest peer the result is the same. A message needing more than
//     MaxSkip skipped keys is refused with ErrExcessiveSkip, and at most
//     2000 skipped keys are kept (the oldest go first, down to 1000, as in
//     the TypeScript SDK).
//   - The ordering rule is enforced (ErrCannotSendYet), low-order and
//     non-canonical X25519 public keys are refused, and the X3DH responder
//     checks the initiator's identity key against the registered one.
//   - Message keys are overwritten after use and chain keys as they
//     advance. Key types and State never print secrets with fmt.
//
// Headers are still not authenticated (that would change the bytes): a
// relay that rewrites PN can make the receiver keep fewer or more of the
// previous chain's keys, bounded by MaxSkip, but it cannot make a message
// decrypt to anything its sender did not encrypt.
package ratchet

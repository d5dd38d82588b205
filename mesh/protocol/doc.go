// Package protocol holds the wire rules of agentmesh/0.2 that every other part
// of AgentMesh shares: AMIDs and key encodings, timestamps, the signed-JSON
// encoders, relay frames, the KNOCK handshake messages, the encrypted envelope
// and the payload types that travel inside it.
//
// The package does no I/O and reads no clock: callers pass the current time
// where freshness matters. Every decoder returns a *DecodeError naming the
// field and the problem for bad input, and never panics.
//
// # Compatibility
//
// Bytes on the wire are those of the original TypeScript SDK (PROTOCOL.md
// §1–§7): keys are standard padded base64, written with their "ed25519:" or
// "x25519:" prefix and read with or without it; signed objects are serialised
// with [MarshalJS] (JavaScript's JSON.stringify) or [MarshalPY] (Python's
// json.dumps), never with encoding/json, whose output differs in escaping,
// number formatting and key order.
//
// # Signatures
//
// Every signed object of PROTOCOL.md §2.1 has a sign and a verify function in
// this package: [SignTimestamp] and [VerifyTimestamp] for S1–S5,
// [SignPrekey] and [VerifyPrekey] for S6, and Sign/Verify methods on [Knock],
// [Accept], [Reject] (S7–S9) and on the Python-format messages (S10–S12).
package protocol

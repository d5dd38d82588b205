// Package identity holds the agent's own long-term keys (PROTOCOL.md §1): an
// Ed25519 signing key, whose public half names the agent through its AMID,
// and an independent X25519 exchange key, the agent's X3DH identity key. It
// keeps them on disk, builds the agent's W3C DID document and rotates the
// exchange key.
//
// Use [Generate] for a new agent and [Identity.Save] to store it; use
// [LoadDefault] to find it again at start-up. An [Identity] never hands out
// its private key bytes: signing goes through [Identity.Sign], X3DH through
// [Identity.ExchangeKey] (an opaque *ecdh.PrivateKey), and keys for files at
// rest through [Identity.DeriveKey]. Printing an Identity shows only its AMID.
//
// # Files
//
// The identity is a JSON object with the members of PROTOCOL.md §1.3, in
// that order and written as the TypeScript SDK writes it (JSON.stringify with
// a 2-space indent, no final newline), so either SDK can load the other's
// file. Two members follow the eight of the original format and are ignored
// by its readers: "did_version", the versionId of the DID document, and
// "did_updated", when the keys last changed. Keeping them in the same file
// lets a key rotation commit the new key and the new version in one atomic
// write.
//
// The Go host stores the file at <home>/identity/identity.json ([DefaultPath]),
// where home is $AGENTMESH_HOME or ~/.agentmesh ([Home]). [LoadDefault] also
// finds the file where the TypeScript SDK keeps it (its storage key
// identity/identity, <home>/identity/identity) and where the Python client
// keeps it (<home>/keys/identity.json); saving always writes the Go location.
// Files are written atomically with mode 0600 in a 0700 directory; loading a
// file that others can read tightens it to 0600 and says so in a warning.
//
// # Compatibility
//
// Loading follows the original loaders and is stricter where they were
// careless: keys are read with their "ed25519:"/"x25519:" prefix, without
// one (deprecated, with a warning) or with another prefix (a warning; what
// follows the first ':' is used). Both public keys and the AMID are
// recomputed from the private keys, and a file whose stored values disagree
// is rejected, naming the member. Files written by the Python client, which
// lack "framework" and "framework_version", get its values "openclaw" and
// "0.4.2".
package identity

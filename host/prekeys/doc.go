// Package prekeys keeps the agent's own X3DH prekeys (PROTOCOL.md §3.1): the
// private halves on disk, the public halves on the registry (§8.6).
//
// A [Store] holds one signed prekey, the previous signed prekey while it is
// still honoured, and a set of one-time prekeys. The session layer hands the
// Store to ratchet.RespondX3DH as its ratchet.PrekeySource when it answers a
// KNOCK, and calls [Store.Consume] once it accepts the session, never before:
// a KNOCK that is rejected or dropped leaves the one-time prekey in place
// (DESIGN.md §9).
//
// # Using it
//
// [Open] loads the file, or creates it with signed prekey 1 and a batch of
// one-time prekeys. [Store.Publish] uploads what the registry does not have
// yet. [Store.Maintain] is the one step of upkeep that a background loop
// runs, at start and every few hours: it rotates the signed prekey when it
// is due, adds one-time prekeys when the registry holds fewer than
// registry.LowPrekeyThreshold, and publishes. The loop itself, with its
// timer and retries, belongs to the host.
//
// # Rotation
//
// A signed prekey is replaced once it is older than
// Options.SignedPrekeyLifetime; the new one takes the next id. The previous
// key keeps answering X3DH messages that name it until Options.Grace after
// its successor reached the registry: until then the registry still hands
// out the previous key, so its grace does not start at the rotation itself.
// A successor that never reached the registry is replaced at the next
// rotation without becoming the previous key, as no peer can know it.
//
// # One-time prekeys
//
// Ids grow from 1 and are never reused. The registry hands out the lowest
// unconsumed id first and never says which keys it handed out, so the Store
// keeps every one-time prekey until a session consumes it, up to
// [MaxOneTimePrekeys]; beyond that it forgets the lowest published ids,
// those handed out longest ago. It never generates more than the registry
// may hold (registry.MaxUnconsumedPrekeys) and uploads at most
// registry.MaxPrekeysPerUpload keys per request.
//
// # Files
//
// The file is JSON with a "version" member (currently 1), private keys as
// standard padded base64 of their 32 raw bytes. It is written atomically
// with mode 0600 in a 0700 directory (internal/safefile) after every change,
// before the change is visible to callers. Loading checks every member and
// every signed-prekey signature against the identity, and a file that fails
// is reported as a [*FileError] naming the file and the member: it is never
// replaced, because new keys would orphan the ones already published. The
// format is this package's own; the TypeScript and Python SDKs' prekey files
// (PROTOCOL.md §10) are not read.
//
// Nothing here logs or prints key material: private keys live inside
// ratchet types that redact themselves, and errors name ids and members,
// never keys.
package prekeys

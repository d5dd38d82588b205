// Package prekeys keeps the agent's own X3DH prekeys (PROTOCOL.md §3.1): the
// private halves on disk, the public halves on the registry (§8.6), and the
// loop that keeps the registry supplied.
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
// one-time prekeys. [Store.Run] then keeps the registry supplied until its
// context ends: it runs [Store.Maintain], one round of upkeep, at start-up
// and every six hours ([DefaultCheckInterval]), and at once when
// [Store.Notify] is handed a registry response's low_prekeys notification
// (or [Store.Refill] is called). A round rotates the signed prekey when it
// is due, asks the registry how many one-time prekeys it holds, refills
// when that count is below [RefillBelow] (20) by generating [Target] (100)
// minus the count, and uploads what the registry lacks. A failed round is
// retried after 1, 2, 4, 8 … seconds, at most a minute apart
// ([FirstRetryDelay], [MaxRetryDelay]), with a warning each time.
// [Store.Publish] uploads without the rest, for a caller that runs no loop.
//
// # Rotation
//
// A signed prekey is replaced once it is older than
// Options.SignedPrekeyLifetime (7 days); a store whose key became overdue
// while the host was down rotates in Run's first round. The new key takes
// the next id. The previous key keeps answering X3DH messages that name it
// until Options.Grace (24 hours) after its successor reached the registry:
// until then the registry still hands out the previous key, so its grace
// does not start at the rotation itself. A successor that never reached the
// registry is replaced at the next rotation without becoming the previous
// key, as no peer can know it.
//
// # One-time prekeys
//
// Ids are never reused. The id the next one-time prekey gets is kept in a
// counter file of its own (<home>/prekey_counter, [DefaultCounterPath]),
// which moves past new ids before any other file holds them, so that ids
// continue even after the prekey file was lost or restored from a backup.
//
// The registry hands out the lowest unconsumed id first and reports only
// how many it still holds, never which (§3.5). Each round therefore marks
// consumed, of the keys it stored, the lowest beyond that count: those went
// to initiators whose KNOCK may still come. The Store keeps every one-time
// prekey until a session consumes it, up to [MaxOneTimePrekeys]; beyond
// that it forgets the lowest published ids, those handed out longest ago.
// It never generates more than the registry may hold
// (registry.MaxUnconsumedPrekeys) and uploads at most
// registry.MaxPrekeysPerUpload keys per request.
//
// # Files
//
// The prekey file (<home>/prekeys/prekeys.json, [DefaultPath]) is JSON with
// a "version" member, currently 2: private keys as standard padded base64
// of their 32 raw bytes, and for each one-time prekey its id, created_at,
// uploaded_at and whether the registry consumed it. A version 1 file is
// read too, with the time it is read standing in for the times it never
// kept, and becomes version 2 at its first change. The counter file holds
// the next id as a decimal number and a newline. Both are written
// atomically with mode 0600 in 0700 directories (internal/safefile) after
// every change, before the change is visible to callers. Loading checks
// every member and every signed-prekey signature against the identity, and
// a file that fails is reported as a [*FileError] naming the file and the
// member: it is never replaced, because new keys would orphan the ones
// already published. The format is this package's own; the TypeScript and
// Python SDKs' prekey files (PROTOCOL.md §10) are not read.
//
// Nothing here logs or prints key material: private keys live inside
// ratchet types that redact themselves, and errors and log lines name ids,
// files and the registry, never keys.
package prekeys

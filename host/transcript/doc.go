// Package transcript keeps the encrypted record of what was said in each
// session, so that the agent's owner can read, search, export and delete it
// while nothing readable sits on disk (DESIGN.md §4 item 8, PROTOCOL.md
// §10.3).
//
// # Using it
//
// [Open] a [Store] over the agent's home directory with its identity. The
// session layer calls [Store.Append] for every message it sends or
// receives; the owner's tools call [Store.List], [Store.Read],
// [Store.Search], [Store.Export] and [Store.Delete]. [Store.ExportSessionKey]
// hands one session's key to an auditor and [Store.Reencrypt] follows a
// rotation of the signing key. A Store is safe for concurrent use; it must be
// the only writer of its directory.
//
// # Files
//
// Transcripts live in <home>/transcripts (mode 0700), one file per session
// (mode 0600) named after the session id with the extension ".jsonl". An id
// made only of lower-case letters, digits, '_' and '-' is used as it is;
// any other id is written as '+' followed by its unpadded lower-case base32,
// so that ids that differ only in case stay apart on case-insensitive
// filesystems and no id can name a path outside the directory. Files whose
// names follow neither form, such as audit.log, are not transcripts.
//
// A file holds one record per line, each the JSON object
//
//	{"ciphertext":"<base64>","nonce":"<base64>","version":1}
//
// with standard padded base64. The plaintext of a record is one [Entry] as
// the JSON object {"direction","peer_amid","session_id","message_type",
// "message","timestamp"} (the timestamp in RFC 3339 with nanoseconds, UTC),
// which is also the shape [Store.Export] writes.
//
// Appending writes one whole line at the end of the file and never rewrites
// earlier records. A crash in the middle of an append leaves a torn last line
// without its newline that is not valid JSON; readers ignore it and the next
// append cuts it off before writing. Any other line that cannot be read is an
// error naming the file and the line ([FileError]). Files are read whole and
// are bounded by [Options.MaxFileSize]: an append that would pass it fails
// with [ErrFull].
//
// # Keys
//
// Records are sealed with XChaCha20-Poly1305 under a random 24-byte nonce
// and no additional data. Each session has its own 32-byte key:
//
//	secret = identity.DeriveKey("transcript", 32)
//	       = HKDF-SHA256(Ed25519 seed, salt "agentmesh-at-rest-v1", info "transcript")
//	key    = HKDF-SHA256(secret, salt "agentmesh_transcript_key", info session id)
//
// The second step is the derivation PROTOCOL.md §10.3 describes, taken over
// a secret the identity derives for transcripts alone, because the identity
// never hands out its seed. A record therefore opens with its session key,
// nonce and ciphertext only, which is what [Store.ExportSessionKey] gives an
// auditor; every such export is written to <home>/transcripts/audit.log (the
// time and the session id, never the key). A record moved into another
// session's file does not open there. Keys are never logged and appear in no
// error.
//
// [Store.Reencrypt] moves every transcript to the key of a new identity,
// one atomic rewrite per file, after checking that the old key opens all of
// it; a file that fails is reported in a [*ReencryptError] and left as it
// was. Files already under the new key are skipped, so an interrupted
// re-encryption can be run again.
//
// # Plaintext from older versions
//
// A line that is a JSON object without a "ciphertext" member is a plaintext
// entry written before transcripts were encrypted. [Store.Read],
// [Store.Search], [Store.Export] and [Store.Reencrypt] migrate such a file
// the first time they read it, and [Store.Append] one that starts with
// plaintext, as every file of an older version does. Every plaintext line is
// sealed byte for byte as it stands (members this version does not know
// survive inside the record), records already sealed keep their nonce and
// ciphertext, a torn last line is dropped, and the file is replaced
// atomically. Nothing is rewritten unless every line of the file can be
// read, with this store's key for the records, and a failed migration leaves
// the original untouched. After the replacement the old file's blocks are
// overwritten with zeros, as [Store.Delete] does. [Store.List] only reports
// such files, with Info.Encrypted false.
//
// Overwriting is best effort: on SSDs, copy-on-write filesystems and in
// backups the old blocks may survive (see internal/safefile). Full-disk
// encryption is the defence against forensic recovery.
package transcript

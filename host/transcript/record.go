package transcript

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// RecordVersion is the version of the record format this package writes
// and reads.
const RecordVersion = 1

// Key derivation (see the package documentation, "Keys").
const (
	// secretInfo is the info under which the identity derives the secret
	// that all session keys come from.
	secretInfo = "transcript"
	// keySalt is the HKDF salt of a session key (PROTOCOL.md §10.3).
	keySalt = "agentmesh_transcript_key"
	// keySize is the length of the secret and of every session key.
	keySize = chacha20poly1305.KeySize
)

// The canonical record line is recordHead ciphertext recordMid nonce
// recordTail, with both fields in standard padded base64.
const (
	recordHead = `{"ciphertext":"`
	recordMid  = `","nonce":"`
	recordTail = `","version":1}`
)

// sessionKey derives the key of session id's transcript from the secret.
// The caller clears it.
func sessionKey(secret []byte, id string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, []byte(keySalt), id, keySize)
	if err != nil {
		return nil, fmt.Errorf("transcript: deriving the key of session %q: %w", id, err)
	}
	return k, nil
}

// sessionAEAD returns the cipher of session id's transcript.
func sessionAEAD(secret []byte, id string) (cipher.AEAD, error) {
	k, err := sessionKey(secret, id)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return chacha20poly1305.NewX(k)
}

// record is one sealed entry.
type record struct {
	nonce      []byte
	ciphertext []byte
}

// item is one complete line of a transcript file: a record, or a plaintext
// entry of an older version.
type item struct {
	// line is the line's 1-based number.
	line int
	rec  record
	// plain holds the line of a plaintext entry; nil for a record.
	plain []byte
}

// encodedLen is the length of a record's line for a plaintext of n bytes,
// without the newline.
func encodedLen(n int) int {
	return len(recordHead) + protocol.B64.EncodedLen(n+chacha20poly1305.Overhead) +
		len(recordMid) + protocol.B64.EncodedLen(chacha20poly1305.NonceSizeX) + len(recordTail)
}

// appendRecord appends the canonical line of r, without a newline.
func appendRecord(dst []byte, r record) []byte {
	dst = append(dst, recordHead...)
	dst = protocol.B64.AppendEncode(dst, r.ciphertext)
	dst = append(dst, recordMid...)
	dst = protocol.B64.AppendEncode(dst, r.nonce)
	return append(dst, recordTail...)
}

// sealLine seals plain under aead with a fresh nonce and returns the
// record's line with its newline. When plain has room for the tag it is
// sealed in place, so that the plaintext does not outlive the call.
func sealLine(aead cipher.AEAD, plain []byte) []byte {
	var nonce [chacha20poly1305.NonceSizeX]byte
	rand.Read(nonce[:])
	ct := aead.Seal(plain[:0], nonce[:], plain, nil)
	line := make([]byte, 0, encodedLen(len(plain))+1)
	line = appendRecord(line, record{nonce: nonce[:], ciphertext: ct})
	return append(line, '\n')
}

// openRecord returns the plaintext of r, or ErrDecrypt.
func openRecord(aead cipher.AEAD, r record) ([]byte, error) {
	plain, err := aead.Open(nil, r.nonce, r.ciphertext, nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// parseLine reads one complete, non-blank line of a transcript file. The
// returned item refers to line's memory.
func parseLine(line []byte) (item, error) {
	if r, ok, err := parseCanonical(line); ok || err != nil {
		return item{rec: r}, err
	}
	// Anything else must be a JSON object: a record written with other
	// spacing or member order, or a plaintext entry.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(line, &members); err != nil || members == nil {
		return item{}, errors.New("not a JSON object")
	}
	if _, ok := members["ciphertext"]; !ok {
		return item{plain: line}, nil
	}
	r, err := parseRecordMembers(members)
	return item{rec: r}, err
}

// parseCanonical reads a line in the form appendRecord writes. ok is false
// when line has another form; err reports a line of that form whose fields
// are bad.
func parseCanonical(line []byte) (r record, ok bool, err error) {
	rest, found := bytes.CutPrefix(line, []byte(recordHead))
	if !found {
		return record{}, false, nil
	}
	ct, rest, found := bytes.Cut(rest, []byte(recordMid))
	if !found {
		return record{}, false, nil
	}
	nonce, found := bytes.CutSuffix(rest, []byte(recordTail))
	if !found || bytes.IndexByte(nonce, '"') >= 0 || bytes.IndexByte(ct, '"') >= 0 {
		return record{}, false, nil
	}
	r, err = decodeFields(ct, nonce)
	return r, true, err
}

// parseRecordMembers reads a record from its decoded members, which must
// be exactly ciphertext, nonce and version.
func parseRecordMembers(m map[string]json.RawMessage) (record, error) {
	// The version comes first, so that a record of a later version is
	// reported as such rather than as one with unknown members.
	v, ok := m["version"]
	if !ok {
		return record{}, errors.New("record: member version is missing")
	}
	var version json.Number
	if err := json.Unmarshal(v, &version); err != nil || version.String() != "1" {
		return record{}, fmt.Errorf("record: version is not %d, the only version this host reads", RecordVersion)
	}
	for k := range m {
		if k != "ciphertext" && k != "nonce" && k != "version" {
			return record{}, fmt.Errorf("record: unknown member %q", k)
		}
	}
	var ct, nonce string
	if err := json.Unmarshal(m["ciphertext"], &ct); err != nil {
		return record{}, errors.New("record: member ciphertext is not a string")
	}
	n, ok := m["nonce"]
	if !ok {
		return record{}, errors.New("record: member nonce is missing")
	}
	if err := json.Unmarshal(n, &nonce); err != nil {
		return record{}, errors.New("record: member nonce is not a string")
	}
	return decodeFields([]byte(ct), []byte(nonce))
}

// decodeFields decodes a record's base64 fields.
func decodeFields(ct, nonce []byte) (record, error) {
	var r record
	var err error
	if r.nonce, err = protocol.B64.AppendDecode(nil, nonce); err != nil || len(r.nonce) != chacha20poly1305.NonceSizeX {
		return record{}, fmt.Errorf("record: member nonce is not %d bytes in standard padded base64", chacha20poly1305.NonceSizeX)
	}
	if r.ciphertext, err = protocol.B64.AppendDecode(nil, ct); err != nil || len(r.ciphertext) < chacha20poly1305.Overhead {
		return record{}, fmt.Errorf("record: member ciphertext is not standard padded base64 of at least %d bytes", chacha20poly1305.Overhead)
	}
	return r, nil
}

// content is a transcript file split into lines.
type content struct {
	items []item
	// end is the offset just past the last complete line: where a torn
	// tail begins, or the size of the file.
	end int64
	// torn says that a torn line follows end.
	torn bool
	// unterminated says that the last line is complete but has no
	// newline.
	unterminated bool
	// plain counts the plaintext entries.
	plain int
}

// parseFile splits a transcript file into its lines. Blank lines are
// skipped; a last line without a newline that is not valid JSON is the torn
// remains of an interrupted append and is left out. Any other bad line is
// a *FileError naming it, without a path.
func parseFile(data []byte) (*content, error) {
	c := new(content)
	for off, n := 0, 1; off < len(data); n++ {
		text, next, terminated := data[off:], len(data), false
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			text, next, terminated = text[:i], off+i+1, true
		}
		if !terminated && (blank(text) || !json.Valid(text)) {
			c.torn = true
			break
		}
		if !blank(text) {
			it, err := parseLine(text)
			if err != nil {
				return nil, &FileError{Line: n, Err: err}
			}
			it.line = n
			if it.plain != nil {
				c.plain++
			}
			c.items = append(c.items, it)
			c.unterminated = !terminated
		}
		off = next
		c.end = int64(next)
	}
	return c, nil
}

// blank reports whether a line holds only JSON whitespace.
func blank(line []byte) bool {
	return len(bytes.Trim(line, " \t\r")) == 0
}

// encode returns the file's content with every plaintext entry sealed
// under aead, records as they were, every line ending in a newline and no
// torn tail.
func (c *content) encode(aead cipher.AEAD) []byte {
	var out []byte
	for _, it := range c.items {
		if it.plain == nil {
			out = appendRecord(out, it.rec)
			out = append(out, '\n')
			continue
		}
		plain := make([]byte, len(it.plain), len(it.plain)+chacha20poly1305.Overhead)
		copy(plain, it.plain)
		out = append(out, sealLine(aead, plain)...)
	}
	return out
}

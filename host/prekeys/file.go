package prekeys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/agentmesh/agentmesh-go/host/ratchet"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// FileVersion is the version of the prekey file this package writes. It
// also reads version 1, which kept no times for one-time prekeys and no
// consumed marks; such a file is written as version 2 at its first change.
const FileVersion = 2

// MaxFileSize is the largest prekey file Open reads. A file at
// MaxOneTimePrekeys is about 450 KiB.
const MaxFileSize = 1 << 20

// maxID is the largest prekey id: the registry's ids are 32-bit signed
// integers (PROTOCOL.md §8.6).
const maxID = math.MaxInt32

// timeFormat writes every time in the file, always in UTC.
const timeFormat = time.RFC3339Nano

// FileError reports a prekey file or counter file that cannot be used. It
// names the file and, when the fault lies in one member, that member as a
// path such as one_time_prekeys[3].private_key. It never quotes key
// material.
type FileError struct {
	// Path is the file.
	Path string
	// Member is the offending member; empty when the problem is with the
	// file as a whole.
	Member string
	// Problem says what is wrong, in lower case without a final period.
	Problem string
	// Err is the underlying error, if any.
	Err error
}

// Error names the file, the member and the problem.
func (e *FileError) Error() string {
	if e.Member == "" {
		return fmt.Sprintf("prekeys: file %s: %s", e.Path, e.Problem)
	}
	return fmt.Sprintf("prekeys: file %s: member %s: %s", e.Path, e.Member, e.Problem)
}

// Unwrap returns the underlying error.
func (e *FileError) Unwrap() error { return e.Err }

// prekeyFileJSON is the file's JSON in every version: the versions differ
// only in what they record of each key, the signed prekey (C), the
// previous signed prekey (P) and the one-time prekeys (O). Each type has
// exactly the members it may hold, and the decoder refuses any other.
type prekeyFileJSON[C, P, O any] struct {
	Version              int    `json:"version"`
	AMID                 string `json:"amid"`
	SignedPrekey         *C     `json:"signed_prekey"`
	PreviousSignedPrekey *P     `json:"previous_signed_prekey,omitempty"`
	OneTimePrekeys       []O    `json:"one_time_prekeys"`
	NextPrekeyID         uint32 `json:"next_prekey_id"`
}

// The file's JSON, version 2.
type fileJSON prekeyFileJSON[currentJSON, previousJSON, oneTimeJSON]

type currentJSON struct {
	ID         uint32 `json:"id"`
	PrivateKey string `json:"private_key"`
	Signature  string `json:"signature"`
	CreatedAt  string `json:"created_at"`
	// UploadedAt is when the registry stored this signed prekey; empty
	// until then.
	UploadedAt string `json:"uploaded_at,omitempty"`
}

type previousJSON struct {
	ID         uint32 `json:"id"`
	PrivateKey string `json:"private_key"`
	Signature  string `json:"signature"`
	CreatedAt  string `json:"created_at"`
	// Expires is when the key stops answering; empty while its successor
	// has not reached the registry.
	Expires string `json:"expires,omitempty"`
}

type oneTimeJSON struct {
	ID         uint32 `json:"id"`
	PrivateKey string `json:"private_key"`
	CreatedAt  string `json:"created_at"`
	// UploadedAt is when the registry stored the key; empty until then.
	UploadedAt string `json:"uploaded_at,omitempty"`
	// Consumed is set once the registry's count shows that it handed the
	// key out to an initiator.
	Consumed bool `json:"consumed"`
}

// The file's JSON, version 1.
type fileV1JSON prekeyFileJSON[currentV1JSON, previousV1JSON, oneTimeV1JSON]

type currentV1JSON struct {
	ID         uint32 `json:"id"`
	PrivateKey string `json:"private_key"`
	Signature  string `json:"signature"`
	Created    string `json:"created"`
	Published  bool   `json:"published"`
}

type previousV1JSON struct {
	ID         uint32 `json:"id"`
	PrivateKey string `json:"private_key"`
	Signature  string `json:"signature"`
	Created    string `json:"created"`
	Expires    string `json:"expires,omitempty"`
}

type oneTimeV1JSON struct {
	ID         uint32 `json:"id"`
	PrivateKey string `json:"private_key"`
	Published  bool   `json:"published"`
}

// upgrade turns a version 1 file into version 2. Version 1 kept no upload
// times, nor creation times of one-time prekeys: they become read, the
// time the file is read.
func (f *fileV1JSON) upgrade(read time.Time) *fileJSON {
	readS := formatTime(read)
	uploaded := func(published bool) string {
		if published {
			return readS
		}
		return ""
	}
	out := &fileJSON{
		Version:        FileVersion,
		AMID:           f.AMID,
		OneTimePrekeys: make([]oneTimeJSON, len(f.OneTimePrekeys)),
		NextPrekeyID:   f.NextPrekeyID,
	}
	if c := f.SignedPrekey; c != nil {
		out.SignedPrekey = &currentJSON{ID: c.ID, PrivateKey: c.PrivateKey, Signature: c.Signature,
			CreatedAt: c.Created, UploadedAt: uploaded(c.Published)}
	}
	if p := f.PreviousSignedPrekey; p != nil {
		out.PreviousSignedPrekey = &previousJSON{ID: p.ID, PrivateKey: p.PrivateKey, Signature: p.Signature,
			CreatedAt: p.Created, Expires: p.Expires}
	}
	for i, k := range f.OneTimePrekeys {
		out.OneTimePrekeys[i] = oneTimeJSON{ID: k.ID, PrivateKey: k.PrivateKey, CreatedAt: readS, UploadedAt: uploaded(k.Published)}
	}
	return out
}

// encodeState returns the file's bytes for st. The caller clears them
// after writing: they hold private keys.
func encodeState(st *state, amid protocol.AMID) ([]byte, error) {
	f := fileJSON{
		Version: FileVersion,
		AMID:    string(amid),
		SignedPrekey: &currentJSON{
			ID:         st.current.key.ID,
			PrivateKey: encodePrivate(st.current.key.PrivateKey()),
			Signature:  protocol.B64.EncodeToString(st.current.key.Signature()),
			CreatedAt:  formatTime(st.current.created),
			UploadedAt: formatOptionalTime(st.current.uploaded),
		},
		OneTimePrekeys: make([]oneTimeJSON, 0, len(st.oneTime)),
		NextPrekeyID:   st.nextID,
	}
	if p := st.previous; p != nil {
		f.PreviousSignedPrekey = &previousJSON{
			ID:         p.key.ID,
			PrivateKey: encodePrivate(p.key.PrivateKey()),
			Signature:  protocol.B64.EncodeToString(p.key.Signature()),
			CreatedAt:  formatTime(p.created),
			Expires:    formatOptionalTime(p.expires),
		}
	}
	for _, id := range st.sortedIDs() {
		e := st.oneTime[id]
		f.OneTimePrekeys = append(f.OneTimePrekeys, oneTimeJSON{
			ID:         id,
			PrivateKey: encodePrivate(e.key.PrivateKey()),
			CreatedAt:  formatTime(e.created),
			UploadedAt: formatOptionalTime(e.uploaded),
			Consumed:   e.consumed,
		})
	}
	data, err := json.MarshalIndent(&f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("prekeys: encoding the prekey file: %w", err)
	}
	return append(data, '\n'), nil
}

func encodePrivate(k *ratchet.PrivateKey) string {
	b := k.Bytes()
	defer clear(b)
	return protocol.B64.EncodeToString(b)
}

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// formatOptionalTime writes the zero time as the empty string.
func formatOptionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

// parseState reads a prekey file written for the agent amid, whose
// signing key is signingKey. A version 1 file is read as of the time read
// (see fileV1JSON.upgrade). Every error is a *FileError without Path.
func parseState(data []byte, amid protocol.AMID, signingKey ed25519.PublicKey, read time.Time) (*state, error) {
	// The version comes first, so that a newer file is reported as such
	// rather than as one with unknown members.
	var head struct {
		Version json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, jsonErr(data, err)
	}
	if head.Version == nil {
		return nil, fileErr("version", "is missing")
	}
	var version int
	if err := json.Unmarshal(head.Version, &version); err != nil || (version != 1 && version != FileVersion) {
		return nil, fileErr("version", "is not 1 or %d, the versions this host reads", FileVersion)
	}
	if version == 1 {
		var f fileV1JSON
		if err := decodeStrict(data, &f); err != nil {
			return nil, err
		}
		return buildState(f.upgrade(read), amid, signingKey, "created")
	}
	var f fileJSON
	if err := decodeStrict(data, &f); err != nil {
		return nil, err
	}
	return buildState(&f, amid, signingKey, "created_at")
}

// decodeStrict decodes one JSON object into v, refusing unknown members and
// anything after the object.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonErr(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fileErr("", "data after the JSON object")
	}
	return nil
}

// buildState checks a decoded file and returns its state. created names
// the signed prekeys' creation member in the file's version.
func buildState(f *fileJSON, amid protocol.AMID, signingKey ed25519.PublicKey, created string) (*state, error) {
	if f.AMID != string(amid) {
		return nil, fileErr("amid", "names another agent, not %s", amid)
	}
	if f.NextPrekeyID < 1 || f.NextPrekeyID > maxID+1 {
		return nil, fileErr("next_prekey_id", "must be between 1 and %d", uint64(maxID)+1)
	}
	st := &state{nextID: f.NextPrekeyID, oneTime: make(map[uint32]oneTimeEntry, len(f.OneTimePrekeys))}

	if f.SignedPrekey == nil {
		return nil, fileErr("signed_prekey", "is missing")
	}
	cur := f.SignedPrekey
	key, err := parseSigned("signed_prekey", cur.ID, cur.PrivateKey, cur.Signature, signingKey)
	if err != nil {
		return nil, err
	}
	st.current = signedEntry{key: key}
	if st.current.created, err = parseTime("signed_prekey."+created, cur.CreatedAt); err != nil {
		return nil, err
	}
	if st.current.uploaded, err = parseOptionalTime("signed_prekey.uploaded_at", cur.UploadedAt); err != nil {
		return nil, err
	}

	if prev := f.PreviousSignedPrekey; prev != nil {
		const member = "previous_signed_prekey"
		if prev.ID >= cur.ID {
			return nil, fileErr(member+".id", "%d is not below signed_prekey.id %d", prev.ID, cur.ID)
		}
		key, err := parseSigned(member, prev.ID, prev.PrivateKey, prev.Signature, signingKey)
		if err != nil {
			return nil, err
		}
		p := &signedEntry{key: key}
		if p.created, err = parseTime(member+"."+created, prev.CreatedAt); err != nil {
			return nil, err
		}
		if p.expires, err = parseOptionalTime(member+".expires", prev.Expires); err != nil {
			return nil, err
		}
		st.previous = p
	}

	if len(f.OneTimePrekeys) > MaxOneTimePrekeys {
		return nil, fileErr("one_time_prekeys", "holds %d keys, at most %d are kept", len(f.OneTimePrekeys), MaxOneTimePrekeys)
	}
	index := make(map[uint32]int, len(f.OneTimePrekeys))
	for i, k := range f.OneTimePrekeys {
		member := fmt.Sprintf("one_time_prekeys[%d]", i)
		if k.ID < 1 || k.ID >= st.nextID {
			return nil, fileErr(member+".id", "%d is not between 1 and next_prekey_id %d", k.ID, st.nextID)
		}
		if j, dup := index[k.ID]; dup {
			return nil, fileErr(member+".id", "%d is also the id of one_time_prekeys[%d]", k.ID, j)
		}
		index[k.ID] = i
		priv, err := parsePrivate(member+".private_key", k.PrivateKey)
		if err != nil {
			return nil, err
		}
		otpk, err := ratchet.NewOneTimePrekey(k.ID, priv)
		if err != nil {
			return nil, fileErr(member, "%v", err)
		}
		e := oneTimeEntry{key: otpk, consumed: k.Consumed}
		if e.created, err = parseTime(member+".created_at", k.CreatedAt); err != nil {
			return nil, err
		}
		if e.uploaded, err = parseOptionalTime(member+".uploaded_at", k.UploadedAt); err != nil {
			return nil, err
		}
		if e.consumed && e.uploaded.IsZero() {
			return nil, fileErr(member+".consumed", "is set for a key without uploaded_at: the registry cannot hand out a key it never had")
		}
		st.oneTime[k.ID] = e
	}
	return st, nil
}

// parseSigned reads the members of a signed prekey and checks its
// signature with the agent's signing key.
func parseSigned(member string, id uint32, privB64, sigB64 string, signingKey ed25519.PublicKey) (*ratchet.SignedPrekey, error) {
	if id < 1 || id > maxID {
		return nil, fileErr(member+".id", "must be between 1 and %d", maxID)
	}
	priv, err := parsePrivate(member+".private_key", privB64)
	if err != nil {
		return nil, err
	}
	sig, err := protocol.DecodeB64(sigB64, ed25519.SignatureSize)
	if err != nil {
		return nil, fileErr(member+".signature", "%v", err)
	}
	key, err := ratchet.NewSignedPrekey(id, priv, sig, signingKey)
	if err != nil {
		return nil, &FileError{Member: member + ".signature",
			Problem: "does not verify with the agent's signing key over the prekey's public key", Err: err}
	}
	return key, nil
}

func parsePrivate(member, s string) (*ratchet.PrivateKey, error) {
	b, err := protocol.DecodeB64(s, 32)
	if err != nil {
		return nil, fileErr(member, "%v", err)
	}
	defer clear(b)
	k, err := ratchet.NewPrivateKey(b)
	if err != nil {
		return nil, &FileError{Member: member, Problem: "not an X25519 private key", Err: err}
	}
	return k, nil
}

func parseTime(member, s string) (time.Time, error) {
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		// The parser's message quotes the input: say only what is wrong.
		return time.Time{}, fileErr(member, "is not an RFC 3339 time")
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, fileErr(member, "year %d is out of range", y)
	}
	return t, nil
}

// parseOptionalTime reads a time that may be absent (the empty string),
// giving the zero time.
func parseOptionalTime(member, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return parseTime(member, s)
}

func fileErr(member, format string, args ...any) *FileError {
	return &FileError{Member: member, Problem: fmt.Sprintf(format, args...)}
}

// jsonErr reports a decoding failure by position, member and type only:
// the decoder's own messages may quote part of a private key.
func jsonErr(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se) && se.Offset >= int64(len(data)), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &FileError{Problem: "truncated or empty JSON", Err: err}
	case errors.As(err, &se):
		return &FileError{Problem: fmt.Sprintf("malformed JSON near byte %d", se.Offset), Err: err}
	case errors.As(err, &te):
		member := te.Field
		if member == "" {
			return &FileError{Problem: fmt.Sprintf("is a JSON %s, want an object", te.Value), Err: err}
		}
		return &FileError{Member: member, Problem: fmt.Sprintf("is a JSON %s, want %s", te.Value, jsonKind(te.Type.Kind().String())), Err: err}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if len(name) > 66 {
			name = name[:64] + `…"`
		}
		return &FileError{Problem: fmt.Sprintf("unknown member %s", name), Err: err}
	}
	return &FileError{Problem: "not a prekey file", Err: err}
}

// jsonKind names a Go kind the way a JSON reader thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "uint32", "int", "int32":
		return "an integer in range"
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "ptr", "struct":
		return "an object"
	}
	return kind
}

// sortedIDs returns the ids of st's one-time prekeys in ascending order.
func (st *state) sortedIDs() []uint32 {
	ids := make([]uint32, 0, len(st.oneTime))
	for id := range st.oneTime {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// MaxFileSize is the largest identity file Load reads. A real file is about
// 500 bytes.
const MaxFileSize = 64 << 10

// Member names of the identity file, in the order they are written
// (PROTOCOL.md §1.3, then this package's two additions).
const (
	fieldAMID             = "amid"
	fieldSigningPrivate   = "signing_private_key"
	fieldSigningPublic    = "signing_public_key"
	fieldExchangePrivate  = "exchange_private_key"
	fieldExchangePublic   = "exchange_public_key"
	fieldCreatedAt        = "created_at"
	fieldFramework        = "framework"
	fieldFrameworkVersion = "framework_version"
	fieldDIDVersion       = "did_version"
	fieldDIDUpdated       = "did_updated"
)

// decodeWhat names the identity file in a *protocol.DecodeError.
const decodeWhat = "identity file"

// fileKeySize is the length of every key in the file: the Ed25519 seed and
// public key and the X25519 private and public keys.
const fileKeySize = 32

// marshal renders the identity file exactly as JSON.stringify(data, null, 2)
// renders the TypeScript SDK's object: members in order, two spaces of
// indent, ": " after names, no final newline. It is written by hand rather
// than with encoding/json, whose string escaping differs from JavaScript's
// (it always escapes U+2028 and U+2029), because the framework strings of a
// loaded file are written back as they came. The result holds private keys;
// callers clear it after use.
func (id *Identity) marshal() []byte {
	seed := id.keys.seed()
	defer clear(seed)
	xpriv := id.keys.exchange.Bytes()
	defer clear(xpriv)

	b := make([]byte, 0, 640)
	b = append(b, '{')
	str := func(name, value string) {
		b = append(b, "\n  \""...)
		b = append(b, name...)
		b = append(b, "\": "...)
		b = protocol.AppendJSString(b, value)
		b = append(b, ',')
	}
	str(fieldAMID, string(id.amid))
	str(fieldSigningPrivate, protocol.SigningKeyPrefix+protocol.B64.EncodeToString(seed))
	str(fieldSigningPublic, protocol.EncodeSigningPublicKey(id.SigningPublicKey()))
	str(fieldExchangePrivate, protocol.ExchangeKeyPrefix+protocol.B64.EncodeToString(xpriv))
	str(fieldExchangePublic, protocol.EncodeExchangePublicKey(id.ExchangePublicKey()))
	str(fieldCreatedAt, protocol.FormatJSTimestamp(id.createdAt))
	str(fieldFramework, id.framework)
	str(fieldFrameworkVersion, id.frameworkVersion)
	b = append(b, "\n  \""+fieldDIDVersion+"\": "...)
	b = strconv.AppendInt(b, int64(id.didVersion), 10)
	b = append(b, ',')
	str(fieldDIDUpdated, protocol.FormatJSTimestamp(id.didUpdated))
	b = b[:len(b)-1] // the last member has no comma
	return append(b, "\n}"...)
}

// rawFile holds the members of an identity file before their types are
// checked. A nil member was absent.
type rawFile struct {
	amid, signingPrivate, signingPublic, exchangePrivate, exchangePublic json.RawMessage
	createdAt, framework, frameworkVersion, didVersion, didUpdated       json.RawMessage
}

// member returns where the raw value of a known member goes, or nil for a
// member this package does not read (ignored, as the original loaders do).
func (f *rawFile) member(name string) *json.RawMessage {
	switch name {
	case fieldAMID:
		return &f.amid
	case fieldSigningPrivate:
		return &f.signingPrivate
	case fieldSigningPublic:
		return &f.signingPublic
	case fieldExchangePrivate:
		return &f.exchangePrivate
	case fieldExchangePublic:
		return &f.exchangePublic
	case fieldCreatedAt:
		return &f.createdAt
	case fieldFramework:
		return &f.framework
	case fieldFrameworkVersion:
		return &f.frameworkVersion
	case fieldDIDVersion:
		return &f.didVersion
	case fieldDIDUpdated:
		return &f.didUpdated
	}
	return nil
}

func decodeErr(field, format string, args ...any) *protocol.DecodeError {
	return &protocol.DecodeError{What: decodeWhat, Field: field, Problem: fmt.Sprintf(format, args...)}
}

// syntaxErr reports malformed JSON by position only: the decoder's own
// message may quote a character of a private key.
func syntaxErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &protocol.DecodeError{What: decodeWhat, Problem: fmt.Sprintf("malformed JSON near byte %d", se.Offset), Err: err}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &protocol.DecodeError{What: decodeWhat, Problem: "truncated JSON", Err: err}
	}
	return &protocol.DecodeError{What: decodeWhat, Problem: "malformed JSON", Err: err}
}

// splitFile reads the top-level object of an identity file into its members.
// It refuses anything but a single object and duplicate known members.
func splitFile(data []byte) (*rawFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxErr(err)
	}
	if tok != json.Delim('{') {
		return nil, decodeErr("", "want a JSON object, got %s", jsonKindOfToken(tok))
	}
	var f rawFile
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxErr(err)
		}
		name, _ := tok.(string) // inside an object the decoder yields only string keys
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxErr(err)
		}
		dst := f.member(name)
		if dst == nil {
			continue
		}
		if *dst != nil {
			return nil, decodeErr(name, "appears more than once")
		}
		*dst = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, syntaxErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, decodeErr("", "data after the JSON object")
	}
	return &f, nil
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func jsonKindOfToken(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "number"
}

// stringMember decodes a string member; required members must be present.
func stringMember(field string, raw json.RawMessage, required bool) (s string, present bool, err error) {
	if raw == nil {
		if required {
			return "", false, decodeErr(field, "missing")
		}
		return "", false, nil
	}
	if jsonKind(raw) != "string" {
		return "", false, decodeErr(field, "want a string, got %s", jsonKind(raw))
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, &protocol.DecodeError{What: decodeWhat, Field: field, Problem: "malformed string", Err: err}
	}
	return s, true, nil
}

// parser collects the warnings of one parse.
type parser struct {
	warnings []string
}

// keyBytes decodes a 32-byte key member following the original loaders'
// prefix rule (PROTOCOL.md §0.2): the expected prefix is stripped; failing
// that, what follows the first ':' is used (a warning); a key without any
// prefix is used as is (a deprecation warning). Errors and warnings never
// quote the value, which may be a private key.
func (p *parser) keyBytes(field, value, prefix string) ([]byte, error) {
	body, ok := strings.CutPrefix(value, prefix)
	if !ok {
		if _, after, found := strings.Cut(value, ":"); found {
			p.warnings = append(p.warnings, fmt.Sprintf("%s: prefix is not %q; using the text after the first ':'", field, prefix))
			body = after
		} else {
			p.warnings = append(p.warnings, fmt.Sprintf("%s: no %q prefix; unprefixed keys are deprecated", field, prefix))
			body = value
		}
	}
	b, err := protocol.DecodeB64(body, fileKeySize)
	if err != nil {
		return nil, &protocol.DecodeError{What: decodeWhat, Field: field, Problem: err.Error(), Err: err}
	}
	return b, nil
}

// timeMember parses a timestamp member written in any of the protocol's
// forms (T-JS by the TypeScript SDK, T-PY by the Python client).
func timeMember(field string, s string) (time.Time, error) {
	t, err := protocol.ParseTimestamp(s)
	if err != nil {
		return time.Time{}, &protocol.DecodeError{What: decodeWhat, Field: field, Problem: err.Error(), Err: err}
	}
	if t, err = fileTime(t); err != nil {
		return time.Time{}, decodeErr(field, "%v", err)
	}
	return t, nil
}

// parse decodes an identity file and checks it against itself: both public
// keys and the AMID must be those of the private keys. It returns the
// warnings of the lenient parts of the format.
func parse(data []byte) (*Identity, []string, error) {
	f, err := splitFile(data)
	if err != nil {
		return nil, nil, err
	}
	var p parser

	amid, _, err := stringMember(fieldAMID, f.amid, true)
	if err != nil {
		return nil, nil, err
	}
	keyMember := func(field string, raw json.RawMessage, prefix string) ([]byte, error) {
		s, _, err := stringMember(field, raw, true)
		if err != nil {
			return nil, err
		}
		return p.keyBytes(field, s, prefix)
	}
	seed, err := keyMember(fieldSigningPrivate, f.signingPrivate, protocol.SigningKeyPrefix)
	if err != nil {
		return nil, nil, err
	}
	defer clear(seed)
	signingPub, err := keyMember(fieldSigningPublic, f.signingPublic, protocol.SigningKeyPrefix)
	if err != nil {
		return nil, nil, err
	}
	xpriv, err := keyMember(fieldExchangePrivate, f.exchangePrivate, protocol.ExchangeKeyPrefix)
	if err != nil {
		return nil, nil, err
	}
	defer clear(xpriv)
	xpub, err := keyMember(fieldExchangePublic, f.exchangePublic, protocol.ExchangeKeyPrefix)
	if err != nil {
		return nil, nil, err
	}

	created, _, err := stringMember(fieldCreatedAt, f.createdAt, true)
	if err != nil {
		return nil, nil, err
	}
	createdAt, err := timeMember(fieldCreatedAt, created)
	if err != nil {
		return nil, nil, err
	}
	framework, ok, err := stringMember(fieldFramework, f.framework, false)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		framework = legacyFrameworkName
	}
	frameworkVersion, ok, err := stringMember(fieldFrameworkVersion, f.frameworkVersion, false)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		frameworkVersion = legacyFrameworkVersion
	}
	didVersion := 1
	if f.didVersion != nil {
		v, err := strconv.ParseInt(string(f.didVersion), 10, 64)
		if err != nil || v < 1 || v > maxDIDVersion {
			return nil, nil, decodeErr(fieldDIDVersion, "want an integer from 1 to %d, got %s", maxDIDVersion, jsonKindOrValue(f.didVersion))
		}
		didVersion = int(v)
	}
	didUpdated := createdAt
	if s, ok, err := stringMember(fieldDIDUpdated, f.didUpdated, false); err != nil {
		return nil, nil, err
	} else if ok {
		if didUpdated, err = timeMember(fieldDIDUpdated, s); err != nil {
			return nil, nil, err
		}
	}

	keys, err := newPrivateKeys(seed, xpriv)
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(signingPub, keys.signingPublic()) {
		return nil, nil, decodeErr(fieldSigningPublic, "does not match %s", fieldSigningPrivate)
	}
	if !bytes.Equal(xpub, keys.exchange.PublicKey().Bytes()) {
		return nil, nil, decodeErr(fieldExchangePublic, "does not match %s", fieldExchangePrivate)
	}
	if want := protocol.DeriveAMID(ed25519.PublicKey(signingPub)); protocol.AMID(amid) != want {
		return nil, nil, decodeErr(fieldAMID, "does not match %s (want %s)", fieldSigningPublic, want)
	}
	return &Identity{
		keys:             keys,
		amid:             protocol.AMID(amid),
		createdAt:        createdAt,
		framework:        framework,
		frameworkVersion: frameworkVersion,
		didVersion:       didVersion,
		didUpdated:       didUpdated,
	}, p.warnings, nil
}

// jsonKindOrValue shows a short number as itself and anything else by kind.
func jsonKindOrValue(raw json.RawMessage) string {
	if k := jsonKind(raw); k != "number" || len(raw) > 20 {
		return k
	}
	return string(raw)
}

package protocol

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"time"
)

// ProtocolVersion is the protocol string of CONNECT and KNOCK.
const ProtocolVersion = "agentmesh/0.2"

// SessionType is the kind of session a TS-format KNOCK asks for.
type SessionType string

// Session types of the TS format (PROTOCOL.md §6.1).
const (
	SessionOneShot    SessionType = "one-shot"
	SessionStreaming  SessionType = "streaming"
	SessionPersistent SessionType = "persistent"
)

// Valid reports whether t is one of the three TS session types.
func (t SessionType) Valid() bool {
	return t == SessionOneShot || t == SessionStreaming || t == SessionPersistent
}

// Intent is what a KNOCK asks the receiver to do: a capability (an intent
// path such as "travel/flights/search", or "*") and an action.
type Intent struct {
	Capability string
	Action     string
	// Params are optional parameters, kept in the order the sender wrote
	// them because they are covered by the signature.
	Params Object
}

// KnockRequest is the "request" member of a TS-format KNOCK.
type KnockRequest struct {
	Type SessionType
	// TTL is the requested session lifetime in seconds, at least 1.
	TTL int64
	// ExpectedMessages is the number of messages the initiator expects to
	// send; zero means the member is absent.
	ExpectedMessages int64
	Intent           Intent
	// Priority is 0–10, or nil when absent.
	Priority *int64
}

// X3DHInit is the [PROPOSED] "x3dh" member of a KNOCK (PROTOCOL.md §6.3): the
// initiator's X3DH message, placed outside the signed bytes, plus the
// initiator's signature over its ephemeral key (see EphemeralSigningBytes).
type X3DHInit struct {
	IdentityKey     [32]byte
	EphemeralKey    [32]byte
	SignedPrekeyID  uint32
	OneTimePrekeyID *uint32
	// EphemeralSignature links the ephemeral key to the sender's signing
	// key: the "session" link of the certificate chain (DESIGN.md §4.5).
	EphemeralSignature []byte
}

// Knock opens a session, in the TS format (PROTOCOL.md §6.1) with the
// extensions of §6.3 and DESIGN.md §4.2. Build one with NewKnock, sign it
// with Sign, send the bytes of Marshal; read one with ParseHandshake or
// ParseKnock and check it with Verify.
type Knock struct {
	Version   string
	From, To  AMID
	Request   KnockRequest
	Timestamp UnixMillis
	// Nonce is 32 lowercase hex digits (16 random bytes).
	Nonce string
	// Signature is base64 of the Ed25519 signature S7.
	Signature string
	// CertificateChain holds base64 DER certificates, leaf first; nil
	// when absent. It is not covered by the signature.
	CertificateChain []string
	// X3DH is the initiator's key agreement message; nil when absent.
	X3DH *X3DHInit
	// OfferedCapabilities lists the capabilities the initiator offers.
	OfferedCapabilities []string

	// rawRequest is the request member exactly as received (ordered), so
	// that verification covers the bytes the sender signed even when its
	// member order differs from ours.
	rawRequest any
}

// NewKnock builds an unsigned KNOCK with a fresh nonce read from rand.
func NewKnock(from, to AMID, req KnockRequest, now time.Time, rand io.Reader) (*Knock, error) {
	var n [16]byte
	if _, err := io.ReadFull(rand, n[:]); err != nil {
		return nil, fmt.Errorf("reading KNOCK nonce: %w", err)
	}
	k := &Knock{
		Version:   ProtocolVersion,
		From:      from,
		To:        to,
		Request:   req,
		Timestamp: MillisOf(now),
		Nonce:     hex.EncodeToString(n[:]),
	}
	if err := k.Request.validate("KNOCK", "request"); err != nil {
		return nil, err
	}
	return k, nil
}

func (q *KnockRequest) validate(what, path string) error {
	switch {
	case !q.Type.Valid():
		return fieldErr(what, path+".type", "must be one-shot, streaming or persistent, got %q", truncateForError(string(q.Type)))
	case q.TTL < 1:
		return fieldErr(what, path+".ttl", "must be an integer of at least 1")
	case q.ExpectedMessages < 0:
		return fieldErr(what, path+".expectedMessages", "must be at least 1")
	case q.Intent.Capability == "":
		return fieldErr(what, path+".intent.capability", "must not be empty")
	case q.Intent.Action == "":
		return fieldErr(what, path+".intent.action", "must not be empty")
	case q.Priority != nil && (*q.Priority < 0 || *q.Priority > 10):
		return fieldErr(what, path+".priority", "must be between 0 and 10")
	}
	return nil
}

// requestValue is the request member in ordered form: the received one when
// the KNOCK was parsed, otherwise built in the order the TS client uses.
func (k *Knock) requestValue() any {
	if k.rawRequest != nil {
		return k.rawRequest
	}
	q := &k.Request
	intent := Object{{"capability", q.Intent.Capability}, {"action", q.Intent.Action}}
	if q.Intent.Params != nil {
		intent = append(intent, Member{"params", q.Intent.Params})
	}
	req := Object{{"type", string(q.Type)}, {"ttl", q.TTL}}
	if q.ExpectedMessages > 0 {
		req = append(req, Member{"expectedMessages", q.ExpectedMessages})
	}
	req = append(req, Member{"intent", intent})
	if q.Priority != nil {
		req = append(req, Member{"priority", *q.Priority})
	}
	return req
}

// SigningBytes returns the bytes S7 covers: JSON.stringify of
// {version, from, to, request, timestamp, nonce} in that order.
func (k *Knock) SigningBytes() ([]byte, error) {
	return MarshalJS(Object{
		{"version", k.Version},
		{"from", string(k.From)},
		{"to", string(k.To)},
		{"request", k.requestValue()},
		{"timestamp", int64(k.Timestamp)},
		{"nonce", k.Nonce},
	})
}

// Sign sets k.Signature to the signature S7 by priv.
func (k *Knock) Sign(priv ed25519.PrivateKey) (err error) {
	k.Signature, err = signMessage("KNOCK", k, priv)
	return err
}

// Verify checks the signature S7 with the sender's signing key, which the
// caller looked up in the registry. It does not check freshness, nonce or
// recipient: see CheckKnockFreshness.
func (k *Knock) Verify(pub ed25519.PublicKey) error {
	return verifyMessage(k, pub, k.Signature)
}

// Marshal returns the KNOCK as JSON.stringify would write it, extensions
// after the signature.
func (k *Knock) Marshal() ([]byte, error) {
	obj := Object{
		{"version", k.Version},
		{"from", string(k.From)},
		{"to", string(k.To)},
		{"request", k.requestValue()},
		{"timestamp", int64(k.Timestamp)},
		{"nonce", k.Nonce},
		{"signature", k.Signature},
	}
	if k.CertificateChain != nil {
		obj = append(obj, Member{"certificateChain", k.CertificateChain})
	}
	if x := k.X3DH; x != nil {
		xo := Object{
			{"identity_key", B64.EncodeToString(x.IdentityKey[:])},
			{"ephemeral_key", B64.EncodeToString(x.EphemeralKey[:])},
			{"signed_prekey_id", x.SignedPrekeyID},
		}
		if x.OneTimePrekeyID != nil {
			xo = append(xo, Member{"one_time_prekey_id", *x.OneTimePrekeyID})
		}
		if x.EphemeralSignature != nil {
			xo = append(xo, Member{"ephemeral_signature", B64.EncodeToString(x.EphemeralSignature)})
		}
		obj = append(obj, Member{"x3dh", xo})
	}
	if k.OfferedCapabilities != nil {
		obj = append(obj, Member{"offered_capabilities", k.OfferedCapabilities})
	}
	return MarshalJS(obj)
}

var (
	versionRE = regexp.MustCompile(`^agentmesh/[0-9]+\.[0-9]+$`)
	nonceRE   = regexp.MustCompile(`^[0-9a-f]{16,128}$`)
)

// Limits on members no honest peer comes near; they bound the work a
// hostile KNOCK can cause.
const (
	maxCertificates  = 8
	maxCapabilities  = 256
	maxSessionIDLen  = 128
	maxReasonLen     = 1024
	maxHandshakeSize = 64 << 10
)

// ParseKnock decodes a TS-format KNOCK. It checks the shape of every member
// but not the signature (Verify) or freshness (CheckKnockFreshness).
func ParseKnock(data []byte) (*Knock, error) {
	v, err := parseHandshakeJSON("KNOCK", data)
	if err != nil {
		return nil, err
	}
	return decodeKnock(v)
}

func decodeKnock(v any) (*Knock, error) {
	const what = "KNOCK"
	r := newObjReader(what, "", v)
	k := &Knock{}
	k.Version = r.str("version", true)
	if r.err == nil && !versionRE.MatchString(k.Version) {
		r.fail("version", "must look like agentmesh/<major>.<minor>")
	}
	k.From = r.amid("from", true)
	k.To = r.amid("to", true)
	if req := r.object("request", true); req != nil {
		k.rawRequest = req.obj
		decodeKnockRequest(req, &k.Request)
		r.adopt(req)
	}
	ts, _ := r.integer("timestamp", true, 0, 1<<53)
	k.Timestamp = UnixMillis(ts)
	k.Nonce = r.str("nonce", true)
	if r.err == nil && !nonceRE.MatchString(k.Nonce) {
		r.fail("nonce", "must be 16 to 128 lowercase hex digits")
	}
	k.Signature = r.str("signature", true)
	k.CertificateChain = r.strings("certificateChain", false, maxCertificates)
	if x := r.object("x3dh", false); x != nil {
		k.X3DH = decodeX3DHInit(x)
		r.adopt(x)
	}
	k.OfferedCapabilities = r.strings("offered_capabilities", false, maxCapabilities)
	if r.err != nil {
		return nil, r.err
	}
	return k, nil
}

func decodeKnockRequest(r *objReader, q *KnockRequest) {
	q.Type = SessionType(r.str("type", true))
	if r.err == nil && !q.Type.Valid() {
		r.fail("type", "must be one-shot, streaming or persistent, got %q", truncateForError(string(q.Type)))
	}
	q.TTL, _ = r.integer("ttl", true, 1, 1<<53)
	q.ExpectedMessages, _ = r.integer("expectedMessages", false, 1, 1<<53)
	if in := r.object("intent", true); in != nil {
		q.Intent.Capability = in.str("capability", true)
		q.Intent.Action = in.str("action", true)
		if p := in.object("params", false); p != nil {
			q.Intent.Params = p.obj
		}
		r.adopt(in)
	}
	if p, ok := r.integer("priority", false, 0, 10); ok {
		q.Priority = &p
	}
}

func decodeX3DHInit(r *objReader) *X3DHInit {
	x := &X3DHInit{}
	if k := r.x25519Key("identity_key", true); k != nil {
		x.IdentityKey = *k
	}
	if k := r.x25519Key("ephemeral_key", true); k != nil {
		x.EphemeralKey = *k
	}
	spk, _ := r.integer("signed_prekey_id", true, 0, 1<<32-1)
	x.SignedPrekeyID = uint32(spk)
	if otpk, ok := r.integer("one_time_prekey_id", false, 0, 1<<32-1); ok {
		id := uint32(otpk)
		x.OneTimePrekeyID = &id
	}
	x.EphemeralSignature = r.b64("ephemeral_signature", false, ed25519.SignatureSize)
	return x
}

// EphemeralSigningBytes returns what X3DHInit.EphemeralSignature signs: a
// domain-separation label, the two AMIDs and the raw ephemeral key, so the
// signature can serve no other purpose (it differs from the signed-prekey
// signature S6, which covers the bare key).
func EphemeralSigningBytes(from, to AMID, ephemeral [32]byte) []byte {
	const label = "agentmesh/0.2 x3dh ephemeral"
	b := make([]byte, 0, len(label)+len(from)+len(to)+3+32)
	b = append(b, label...)
	b = append(b, 0)
	b = append(b, from...)
	b = append(b, 0)
	b = append(b, to...)
	b = append(b, 0)
	return append(b, ephemeral[:]...)
}

// SignEphemeral sets k.X3DH.EphemeralSignature.
func (k *Knock) SignEphemeral(priv ed25519.PrivateKey) error {
	if k.X3DH == nil {
		return fmt.Errorf("signing KNOCK ephemeral key: KNOCK has no x3dh member")
	}
	k.X3DH.EphemeralSignature = ed25519.Sign(priv, EphemeralSigningBytes(k.From, k.To, k.X3DH.EphemeralKey))
	return nil
}

// VerifyEphemeral checks k.X3DH.EphemeralSignature with the sender's key.
func (k *Knock) VerifyEphemeral(pub ed25519.PublicKey) error {
	if k.X3DH == nil || len(k.X3DH.EphemeralSignature) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize {
		return ErrBadSignature
	}
	if !ed25519.Verify(pub, EphemeralSigningBytes(k.From, k.To, k.X3DH.EphemeralKey), k.X3DH.EphemeralSignature) {
		return ErrBadSignature
	}
	return nil
}

package ratchet

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// InitiatorMessage is what the X3DH initiator sends the responder
// (PROTOCOL.md §3.3): its identity key, its ephemeral key and the ids of the
// prekeys it used. The session layer carries it in the KNOCK (§6.3).
type InitiatorMessage struct {
	// IdentityKey is the initiator's X25519 identity (exchange) key.
	IdentityKey *PublicKey
	// EphemeralKey is the initiator's fresh X3DH key EK_A. The responder's
	// ratchet starts with it as the remote key, and the initiator signs it
	// for the certificate chain (DESIGN.md §4.2).
	EphemeralKey *PublicKey
	// SignedPrekeyID names the responder's signed prekey that was used.
	SignedPrekeyID uint32
	// OneTimePrekeyID names the responder's one-time prekey that was used;
	// nil when none was (three-DH agreement).
	OneTimePrekeyID *uint32
}

// MarshalJSON writes the message as the TypeScript SDK does
// (serializeX3DHMessage, JS-compact JSON): members identity_key,
// ephemeral_key, signed_prekey_id and, only when a one-time prekey was
// used, one_time_prekey_id, in that order, keys as raw base64.
func (m *InitiatorMessage) MarshalJSON() ([]byte, error) {
	if m.IdentityKey == nil || m.EphemeralKey == nil {
		return nil, errors.New("ratchet: X3DH message is missing a key")
	}
	b := make([]byte, 0, 160)
	b = append(b, `{"identity_key":"`...)
	b = protocol.B64.AppendEncode(b, m.IdentityKey.b[:])
	b = append(b, `","ephemeral_key":"`...)
	b = protocol.B64.AppendEncode(b, m.EphemeralKey.b[:])
	b = append(b, `","signed_prekey_id":`...)
	b = strconv.AppendUint(b, uint64(m.SignedPrekeyID), 10)
	if m.OneTimePrekeyID != nil {
		b = append(b, `,"one_time_prekey_id":`...)
		b = strconv.AppendUint(b, uint64(*m.OneTimePrekeyID), 10)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads the JSON of MarshalJSON. Keys may carry the "x25519:"
// prefix; identity_key, ephemeral_key and signed_prekey_id are required;
// a null one_time_prekey_id counts as absent; other members are ignored.
func (m *InitiatorMessage) UnmarshalJSON(data []byte) error {
	var raw struct {
		IdentityKey     *string
		EphemeralKey    *string
		SignedPrekeyID  *uint32
		OneTimePrekeyID *uint32
	}
	// Members are matched exactly, not with encoding/json's
	// case-insensitive struct matching; unknown ones are ignored.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("ratchet: X3DH message: %w", err)
	}
	if obj == nil {
		return errors.New("ratchet: X3DH message: not a JSON object")
	}
	for name, v := range obj {
		var err error
		switch name {
		case "identity_key":
			err = json.Unmarshal(v, &raw.IdentityKey)
		case "ephemeral_key":
			err = json.Unmarshal(v, &raw.EphemeralKey)
		case "signed_prekey_id":
			err = json.Unmarshal(v, &raw.SignedPrekeyID)
		case "one_time_prekey_id":
			err = json.Unmarshal(v, &raw.OneTimePrekeyID)
		}
		if err != nil {
			return fmt.Errorf("ratchet: X3DH message: %s: %w", name, err)
		}
	}
	switch {
	case raw.IdentityKey == nil:
		return errors.New("ratchet: X3DH message: missing identity_key")
	case raw.EphemeralKey == nil:
		return errors.New("ratchet: X3DH message: missing ephemeral_key")
	case raw.SignedPrekeyID == nil:
		return errors.New("ratchet: X3DH message: missing signed_prekey_id")
	}
	ik, err := parsePublicKey(*raw.IdentityKey)
	if err != nil {
		return fmt.Errorf("ratchet: X3DH message: identity_key: %w", err)
	}
	ek, err := parsePublicKey(*raw.EphemeralKey)
	if err != nil {
		return fmt.Errorf("ratchet: X3DH message: ephemeral_key: %w", err)
	}
	*m = InitiatorMessage{
		IdentityKey:     ik,
		EphemeralKey:    ek,
		SignedPrekeyID:  *raw.SignedPrekeyID,
		OneTimePrekeyID: raw.OneTimePrekeyID,
	}
	return nil
}

// InitiateX3DH runs the initiator side of X3DH (PROTOCOL.md §3.2) against a
// bundle fetched from the registry. It first verifies the bundle's
// signed-prekey signature with signingKey, the responder's registered
// Ed25519 key, and refuses the bundle with ErrBadPrekeySignature when it
// fails. The ephemeral key is read from rand (crypto/rand.Reader when nil).
//
// It returns SK, which seeds NewInitiator, and the message for the
// responder. Wipe SK once the ratchet state exists.
func InitiateX3DH(rand io.Reader, identity *PrivateKey, bundle *Bundle, signingKey ed25519.PublicKey) (*SharedSecret, *InitiatorMessage, error) {
	if identity == nil {
		return nil, nil, errors.New("ratchet: X3DH: no identity key")
	}
	if err := VerifyBundle(bundle, signingKey); err != nil {
		return nil, nil, err
	}
	ek, err := GeneratePrivateKey(rand)
	if err != nil {
		return nil, nil, err
	}
	var opk *PublicKey
	if bundle.OneTimePrekey != nil {
		opk = bundle.OneTimePrekey.Key
	}
	sk, err := agree([4]dhPair{
		{identity, bundle.SignedPrekey, "DH1 (signed prekey)"},
		{ek, bundle.IdentityKey, "DH2 (identity key)"},
		{ek, bundle.SignedPrekey, "DH3 (signed prekey)"},
		{ek, opk, "DH4 (one-time prekey)"},
	})
	if err != nil {
		return nil, nil, err
	}
	msg := &InitiatorMessage{
		IdentityKey:    identity.PublicKey(),
		EphemeralKey:   ek.PublicKey(),
		SignedPrekeyID: bundle.SignedPrekeyID,
	}
	if bundle.OneTimePrekey != nil {
		id := bundle.OneTimePrekey.ID
		msg.OneTimePrekeyID = &id
	}
	return sk, msg, nil
}

// PrekeySource gives RespondX3DH the responder's private prekeys by id.
// host/prekeys implements it over the local prekey state.
type PrekeySource interface {
	// SignedPrekey returns the private key of the signed prekey with the
	// given id: the current one, or the previous one during its grace
	// period (PROTOCOL.md §3.1).
	SignedPrekey(id uint32) (*PrivateKey, bool)
	// OneTimePrekey returns the private key of an unconsumed one-time
	// prekey. It must not consume it.
	OneTimePrekey(id uint32) (*PrivateKey, bool)
}

// Response is the responder's result of a successful X3DH.
type Response struct {
	// SharedSecret is SK, which seeds NewResponder.
	SharedSecret *SharedSecret
	// ConsumeOneTimePrekey is the id of the one-time prekey the initiator
	// used, nil when none. The caller deletes that prekey's private key
	// once it accepts the session, and not before: a KNOCK that is
	// rejected or dropped must leave it in place (DESIGN.md §9).
	ConsumeOneTimePrekey *uint32
}

// RespondX3DH runs the responder side of X3DH (PROTOCOL.md §3.2, §3.3).
// initiator is the initiator's registered exchange key from the registry:
// the message's identity key must equal it (PROTOCOL.md W-9), or the result
// is ErrIdentityMismatch. A prekey id that keys does not know is
// ErrUnknownPrekey. Nothing is consumed: on success the Response names the
// one-time prekey to delete.
func RespondX3DH(identity *PrivateKey, initiator *PublicKey, msg *InitiatorMessage, keys PrekeySource) (*Response, error) {
	switch {
	case identity == nil:
		return nil, errors.New("ratchet: X3DH: no identity key")
	case msg == nil || msg.IdentityKey == nil || msg.EphemeralKey == nil:
		return nil, errors.New("ratchet: X3DH: incomplete initiator message")
	case initiator == nil || !msg.IdentityKey.Equal(initiator):
		return nil, ErrIdentityMismatch
	}
	spk, ok := keys.SignedPrekey(msg.SignedPrekeyID)
	if !ok || spk == nil {
		return nil, fmt.Errorf("ratchet: X3DH: signed prekey %d: %w", msg.SignedPrekeyID, ErrUnknownPrekey)
	}
	var opk *PrivateKey
	if msg.OneTimePrekeyID != nil {
		opk, ok = keys.OneTimePrekey(*msg.OneTimePrekeyID)
		if !ok || opk == nil {
			return nil, fmt.Errorf("ratchet: X3DH: one-time prekey %d: %w", *msg.OneTimePrekeyID, ErrUnknownPrekey)
		}
	}
	sk, err := agree([4]dhPair{
		{spk, msg.IdentityKey, "DH1 (identity key)"},
		{identity, msg.EphemeralKey, "DH2 (ephemeral key)"},
		{spk, msg.EphemeralKey, "DH3 (ephemeral key)"},
		{opk, msg.EphemeralKey, "DH4 (ephemeral key)"},
	})
	if err != nil {
		return nil, err
	}
	r := &Response{SharedSecret: sk}
	if msg.OneTimePrekeyID != nil {
		id := *msg.OneTimePrekeyID
		r.ConsumeOneTimePrekey = &id
	}
	return r, nil
}

// dhPair is one of the X3DH agreements; a nil key in the fourth one means
// no one-time prekey.
type dhPair struct {
	priv *PrivateKey
	pub  *PublicKey
	name string
}

// agree computes the DH values in order, concatenates them and derives SK.
func agree(pairs [4]dhPair) (*SharedSecret, error) {
	var ikm [4 * keySize]byte
	defer clear(ikm[:])
	n := 0
	for i, p := range pairs {
		if p.priv == nil || p.pub == nil {
			if i < 3 {
				return nil, fmt.Errorf("ratchet: X3DH: %s: missing key", p.name)
			}
			break
		}
		out, err := p.priv.dh(p.pub)
		if err != nil {
			return nil, fmt.Errorf("ratchet: X3DH: %s: %w", p.name, err)
		}
		n += copy(ikm[n:], out[:])
		clear(out[:])
	}
	return x3dhKDF(ikm[:n])
}

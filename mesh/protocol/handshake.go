package protocol

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// Handshake is one of the session-opening messages that travel unencrypted
// as a relay payload with message_type knock, accept or reject: *Knock,
// *Accept, *Reject in the TS format, and *PyKnock, *PyAccept, *PyReject in
// the Python format. Consume it with a type switch.
type Handshake interface {
	handshake()
}

func (*Knock) handshake()    {}
func (*Accept) handshake()   {}
func (*Reject) handshake()   {}
func (*PyKnock) handshake()  {}
func (*PyAccept) handshake() {}
func (*PyReject) handshake() {}

var (
	_ Handshake = (*Knock)(nil)
	_ Handshake = (*PyReject)(nil)
)

// ParseHandshake decodes a KNOCK, ACCEPT or REJECT in either format,
// telling them apart by their members: a TS KNOCK has "version" and
// "request"; TS ACCEPT/REJECT have type "ACCEPT"/"REJECT"; Python messages
// have type "knock", "accept" or "reject".
func ParseHandshake(data []byte) (Handshake, error) {
	v, err := parseHandshakeJSON("handshake message", data)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(Object)
	if !ok {
		return nil, fieldErr("handshake message", "", "must be a JSON object, got %s", jsonKind(v))
	}
	h, err := decodeHandshake(obj)
	if err != nil {
		// Never return a typed nil inside a non-nil interface.
		return nil, err
	}
	return h, nil
}

func decodeHandshake(obj Object) (Handshake, error) {
	typ, _ := obj.Get("type")
	switch typ {
	case "ACCEPT":
		return decodeAccept(newObjReader("ACCEPT", "", obj))
	case "REJECT":
		return decodeReject(newObjReader("REJECT", "", obj))
	case "knock":
		return decodePyKnock(obj)
	case "accept":
		return decodePyAccept(obj)
	case "reject":
		return decodePyReject(obj)
	case nil:
		if _, ok := obj.Get("request"); ok {
			return decodeKnock(obj)
		}
		return nil, fieldErr("handshake message", "type", "missing, and no KNOCK request member")
	default:
		s, _ := typ.(string)
		return nil, fieldErr("handshake message", "type", "unknown type %q", truncateForError(s))
	}
}

func parseHandshakeJSON(what string, data []byte) (any, error) {
	if len(data) > maxHandshakeSize {
		return nil, fieldErr(what, "", "%d bytes, larger than %d", len(data), maxHandshakeSize)
	}
	v, err := ParseOrdered(data)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			return nil, &DecodeError{What: what, Field: de.Field, Problem: de.Problem, Err: err}
		}
		return nil, &DecodeError{What: what, Problem: err.Error(), Err: err}
	}
	return v, nil
}

// verifyB64 checks a base64 Ed25519 signature. Every failure is
// ErrBadSignature, whatever its cause.
func verifyB64(pub ed25519.PublicKey, msg []byte, sigB64 string) error {
	if len(pub) != ed25519.PublicKeySize {
		return ErrBadSignature
	}
	sig, err := DecodeB64(sigB64, ed25519.SignatureSize)
	if err != nil || !ed25519.Verify(pub, msg, sig) {
		return ErrBadSignature
	}
	return nil
}

// signedMessage is a TS-format handshake message: its signed bytes do not
// depend on the signature itself.
type signedMessage interface {
	SigningBytes() ([]byte, error)
}

// signMessage signs m's signing bytes and returns the base64 signature.
func signMessage(what string, m signedMessage, priv ed25519.PrivateKey) (string, error) {
	msg, err := m.SigningBytes()
	if err != nil {
		return "", fmt.Errorf("signing %s: %w", what, err)
	}
	return signB64(priv, msg), nil
}

// verifyMessage checks sig over m's signing bytes; every failure is
// ErrBadSignature.
func verifyMessage(m signedMessage, pub ed25519.PublicKey, sig string) error {
	msg, err := m.SigningBytes()
	if err != nil {
		return ErrBadSignature
	}
	return verifyB64(pub, msg, sig)
}

// signB64 signs msg and returns the signature in base64.
func signB64(priv ed25519.PrivateKey, msg []byte) string {
	return B64.EncodeToString(ed25519.Sign(priv, msg))
}

// errNoSignature is reported (wrapped in ErrBadSignature) for Python-format
// messages sent without a signature.
var errNoSignature = fmt.Errorf("%w: message is unsigned", ErrBadSignature)

package protocol

import "crypto/ed25519"

// Accept is the responder's yes, in the TS format (PROTOCOL.md §6.1) with
// the extensions of §6.3 and DESIGN.md §4.2.
type Accept struct {
	// SessionID is the id the responder assigns, "sess_" + 32 hex digits
	// when we create it.
	SessionID  string
	Timestamp  UnixMillis
	From, To   AMID // From is the responder, To the initiator.
	KnockNonce string
	// Signature is base64 of the Ed25519 signature S8.
	Signature string
	// RatchetKey is the responder's initial Double Ratchet public key
	// (the [PROPOSED] "ratchet_key" member); nil when absent.
	RatchetKey *[32]byte
	// AcceptedCapabilities and RejectedCapabilities answer the KNOCK's
	// offered capabilities; nil when absent.
	AcceptedCapabilities []string
	RejectedCapabilities []string
}

// SigningBytes returns the bytes S8 covers: JSON.stringify of
// {type:"ACCEPT", sessionId, timestamp, from, to, knockNonce}.
func (a *Accept) SigningBytes() ([]byte, error) {
	return MarshalJS(Object{
		{"type", "ACCEPT"},
		{"sessionId", a.SessionID},
		{"timestamp", int64(a.Timestamp)},
		{"from", string(a.From)},
		{"to", string(a.To)},
		{"knockNonce", a.KnockNonce},
	})
}

// Sign sets a.Signature to the signature S8 by priv.
func (a *Accept) Sign(priv ed25519.PrivateKey) (err error) {
	a.Signature, err = signMessage("ACCEPT", a, priv)
	return err
}

// Verify checks the signature S8 with the responder's signing key.
func (a *Accept) Verify(pub ed25519.PublicKey) error {
	return verifyMessage(a, pub, a.Signature)
}

// Marshal returns the ACCEPT as JSON.stringify would write it.
func (a *Accept) Marshal() ([]byte, error) {
	obj := Object{
		{"type", "ACCEPT"},
		{"sessionId", a.SessionID},
		{"timestamp", int64(a.Timestamp)},
		{"from", string(a.From)},
		{"to", string(a.To)},
		{"knockNonce", a.KnockNonce},
		{"signature", a.Signature},
	}
	if a.RatchetKey != nil {
		obj = append(obj, Member{"ratchet_key", B64.EncodeToString(a.RatchetKey[:])})
	}
	if a.AcceptedCapabilities != nil {
		obj = append(obj, Member{"accepted_capabilities", a.AcceptedCapabilities})
	}
	if a.RejectedCapabilities != nil {
		obj = append(obj, Member{"rejected_capabilities", a.RejectedCapabilities})
	}
	return MarshalJS(obj)
}

// Reject is the responder's no, in the TS format (PROTOCOL.md §6.1). Reason
// is free text for TS peers; we send a RejectReason code.
type Reject struct {
	Reason     string
	Timestamp  UnixMillis
	From, To   AMID // From is the responder, To the initiator.
	KnockNonce string
	// Signature is base64 of the Ed25519 signature S9.
	Signature string
}

// SigningBytes returns the bytes S9 covers: JSON.stringify of
// {type:"REJECT", reason, timestamp, from, to, knockNonce}.
func (j *Reject) SigningBytes() ([]byte, error) {
	return MarshalJS(Object{
		{"type", "REJECT"},
		{"reason", j.Reason},
		{"timestamp", int64(j.Timestamp)},
		{"from", string(j.From)},
		{"to", string(j.To)},
		{"knockNonce", j.KnockNonce},
	})
}

// Sign sets j.Signature to the signature S9 by priv.
func (j *Reject) Sign(priv ed25519.PrivateKey) (err error) {
	j.Signature, err = signMessage("REJECT", j, priv)
	return err
}

// Verify checks the signature S9 with the responder's signing key.
func (j *Reject) Verify(pub ed25519.PublicKey) error {
	return verifyMessage(j, pub, j.Signature)
}

// Marshal returns the REJECT as JSON.stringify would write it.
func (j *Reject) Marshal() ([]byte, error) {
	return MarshalJS(Object{
		{"type", "REJECT"},
		{"reason", j.Reason},
		{"timestamp", int64(j.Timestamp)},
		{"from", string(j.From)},
		{"to", string(j.To)},
		{"knockNonce", j.KnockNonce},
		{"signature", j.Signature},
	})
}

func decodeAccept(r *objReader) (*Accept, error) {
	a := &Accept{}
	a.SessionID = r.str("sessionId", true)
	checkSessionID(r, "sessionId", a.SessionID)
	ts, _ := r.integer("timestamp", true, 0, 1<<53)
	a.Timestamp = UnixMillis(ts)
	a.From = r.amid("from", true)
	a.To = r.amid("to", true)
	a.KnockNonce = r.str("knockNonce", true)
	if r.err == nil && !nonceRE.MatchString(a.KnockNonce) {
		r.fail("knockNonce", "must be 16 to 128 lowercase hex digits")
	}
	a.Signature = r.str("signature", true)
	a.RatchetKey = r.x25519Key("ratchet_key", false)
	a.AcceptedCapabilities = r.strings("accepted_capabilities", false, maxCapabilities)
	a.RejectedCapabilities = r.strings("rejected_capabilities", false, maxCapabilities)
	if r.err != nil {
		return nil, r.err
	}
	return a, nil
}

func decodeReject(r *objReader) (*Reject, error) {
	j := &Reject{}
	j.Reason = r.str("reason", true)
	if r.err == nil && len(j.Reason) > maxReasonLen {
		r.fail("reason", "longer than %d bytes", maxReasonLen)
	}
	ts, _ := r.integer("timestamp", true, 0, 1<<53)
	j.Timestamp = UnixMillis(ts)
	j.From = r.amid("from", true)
	j.To = r.amid("to", true)
	j.KnockNonce = r.str("knockNonce", true)
	if r.err == nil && !nonceRE.MatchString(j.KnockNonce) {
		r.fail("knockNonce", "must be 16 to 128 lowercase hex digits")
	}
	j.Signature = r.str("signature", true)
	if r.err != nil {
		return nil, r.err
	}
	return j, nil
}

// checkSessionID requires a non-empty, bounded, printable-ASCII id.
func checkSessionID(r *objReader, key, id string) {
	if r.err != nil {
		return
	}
	if id == "" || len(id) > maxSessionIDLen {
		r.fail(key, "must be 1 to %d characters", maxSessionIDLen)
		return
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			r.fail(key, "must be printable ASCII without spaces")
			return
		}
	}
}

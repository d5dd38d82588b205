package protocol

import (
	"crypto/ed25519"
	"fmt"
)

// The Python client's handshake format (PROTOCOL.md §6.2). We parse it and
// can verify its signatures (S10–S12); we never emit it to peers, but the
// Sign methods exist so that tests and tools can build such messages.

// PyAgent is the "from" member of a Python-format KNOCK. Tier and
// reputation are self-asserted by the sender: policy must never trust them
// (PROTOCOL.md W-8).
type PyAgent struct {
	AMID            AMID
	Tier            float64
	DisplayName     string
	ReputationScore float64
}

// PyIntent is the Python intent: category[/subcategory[/action]] plus urgency.
type PyIntent struct {
	Category, Subcategory, Action string
	Urgency                       string
}

// PySessionRequest is the "session_request" member.
type PySessionRequest struct {
	// Type is request_response, conversation or stream.
	Type string
	// ExpectedMessages is 0 when null or absent.
	ExpectedMessages int64
	TTLSeconds       int64
}

// PyKnock is a Python-format KNOCK.
type PyKnock struct {
	ProtocolVersion     string
	From                PyAgent
	Intent              PyIntent
	SessionRequest      PySessionRequest
	Timestamp           string // T-PY, signed as received
	Signature           string
	CertificateChain    []string // PEM
	OfferedCapabilities []string

	rawIntent any // the intent member as received: S10 covers it verbatim
}

func (k *PyKnock) intentValue() any {
	if k.rawIntent != nil {
		return k.rawIntent
	}
	in := Object{{"category", k.Intent.Category}}
	if k.Intent.Subcategory != "" {
		in = append(in, Member{"subcategory", k.Intent.Subcategory})
	}
	if k.Intent.Action != "" {
		in = append(in, Member{"action", k.Intent.Action})
	}
	urgency := k.Intent.Urgency
	if urgency == "" {
		urgency = "normal"
	}
	return append(in, Member{"urgency", urgency})
}

// SigningBytes returns the bytes S10 covers: json.dumps of
// {from, to, intent, timestamp}. The recipient's AMID is not in the message;
// the verifier supplies its own.
func (k *PyKnock) SigningBytes(to AMID) ([]byte, error) {
	return MarshalPY(Object{
		{"from", string(k.From.AMID)},
		{"to", string(to)},
		{"intent", k.intentValue()},
		{"timestamp", k.Timestamp},
	})
}

// Sign sets k.Signature to the signature S10 by priv, addressed to to.
func (k *PyKnock) Sign(priv ed25519.PrivateKey, to AMID) error {
	msg, err := k.SigningBytes(to)
	if err != nil {
		return fmt.Errorf("signing KNOCK: %w", err)
	}
	k.Signature = signB64(priv, msg)
	return nil
}

// Verify checks the signature S10 for a KNOCK addressed to us.
func (k *PyKnock) Verify(pub ed25519.PublicKey, us AMID) error {
	if k.Signature == "" {
		return errNoSignature
	}
	msg, err := k.SigningBytes(us)
	if err != nil {
		return ErrBadSignature
	}
	return verifyB64(pub, msg, k.Signature)
}

func decodePyKnock(obj Object) (*PyKnock, error) {
	const what = "KNOCK"
	r := newObjReader(what, "", obj)
	k := &PyKnock{}
	k.ProtocolVersion = r.str("protocol_version", true)
	if r.err == nil && !versionRE.MatchString(k.ProtocolVersion) {
		r.fail("protocol_version", "must look like agentmesh/<major>.<minor>")
	}
	if from := r.object("from", true); from != nil {
		k.From.AMID = from.amid("amid", true)
		k.From.Tier, _ = from.number("tier", false)
		k.From.DisplayName = from.str("display_name", false)
		k.From.ReputationScore, _ = from.number("reputation_score", false)
		r.adopt(from)
	}
	if in := r.object("intent", true); in != nil {
		k.rawIntent = in.obj
		k.Intent.Category = in.str("category", true)
		k.Intent.Subcategory = in.str("subcategory", false)
		k.Intent.Action = in.str("action", false)
		k.Intent.Urgency = in.str("urgency", false)
		if in.err == nil && k.Intent.Category == "" {
			in.fail("category", "must not be empty")
		}
		if u := k.Intent.Urgency; in.err == nil && u != "" && u != "low" && u != "normal" && u != "high" && u != "critical" {
			in.fail("urgency", "must be low, normal, high or critical")
		}
		r.adopt(in)
	}
	if sr := r.object("session_request", false); sr != nil {
		k.SessionRequest.Type = sr.str("type", false)
		switch k.SessionRequest.Type {
		case "", "request_response", "conversation", "stream":
		default:
			sr.fail("type", "must be request_response, conversation or stream")
		}
		k.SessionRequest.ExpectedMessages, _ = sr.integer("expected_messages", false, 1, 1<<53)
		k.SessionRequest.TTLSeconds, _ = sr.integer("ttl_seconds", false, 1, 1<<53)
		r.adopt(sr)
	}
	k.Timestamp = r.str("timestamp", true)
	if r.err == nil {
		if _, err := ParseTimestamp(k.Timestamp); err != nil {
			r.fail("timestamp", "%v", err)
		}
	}
	k.Signature = r.str("signature", false)
	k.CertificateChain = r.strings("certificate_chain", false, maxCertificates)
	k.OfferedCapabilities = r.strings("offered_capabilities", false, maxCapabilities)
	if r.err != nil {
		return nil, r.err
	}
	return k, nil
}

// PyAccept is a Python-format ACCEPT as the Python client sends it. Its
// SessionKey is random bytes sent in clear: never treat it as a secret
// (PROTOCOL.md W-13).
type PyAccept struct {
	SessionID    string
	SessionKey   string
	Capabilities []string
	// Constraints are kept as received, e.g. max_message_size_bytes.
	Constraints Object
	Timestamp   string
	Signature   string
}

// SigningBytes returns the bytes S11 covers: json.dumps of
// {session_id, from, to, timestamp} where from is the responder and to the
// initiator; neither is in the message, so the verifier supplies them.
func (a *PyAccept) SigningBytes(from, to AMID) ([]byte, error) {
	return MarshalPY(Object{
		{"session_id", a.SessionID},
		{"from", string(from)},
		{"to", string(to)},
		{"timestamp", a.Timestamp},
	})
}

// Sign sets a.Signature to the signature S11 by the responder.
func (a *PyAccept) Sign(priv ed25519.PrivateKey, from, to AMID) error {
	msg, err := a.SigningBytes(from, to)
	if err != nil {
		return fmt.Errorf("signing ACCEPT: %w", err)
	}
	a.Signature = signB64(priv, msg)
	return nil
}

// Verify checks S11 with the responder's key; from is the responder (the
// KNOCK's recipient) and to the initiator (us).
func (a *PyAccept) Verify(pub ed25519.PublicKey, from, to AMID) error {
	if a.Signature == "" {
		return errNoSignature
	}
	msg, err := a.SigningBytes(from, to)
	if err != nil {
		return ErrBadSignature
	}
	return verifyB64(pub, msg, a.Signature)
}

func decodePyAccept(obj Object) (*PyAccept, error) {
	r := newObjReader("ACCEPT", "", obj)
	a := &PyAccept{}
	a.SessionID = r.str("session_id", true)
	checkSessionID(r, "session_id", a.SessionID)
	a.SessionKey = r.str("session_key", false)
	a.Capabilities = r.strings("capabilities", false, maxCapabilities)
	if c := r.object("constraints", false); c != nil {
		a.Constraints = c.obj
	}
	a.Timestamp = r.str("timestamp", true)
	if r.err == nil {
		if _, err := ParseTimestamp(a.Timestamp); err != nil {
			r.fail("timestamp", "%v", err)
		}
	}
	a.Signature = r.str("signature", false)
	if r.err != nil {
		return nil, r.err
	}
	return a, nil
}

// PyReject is a Python-format REJECT. The Python client sends some REJECTs
// unsigned (no timestamp, no signature); they parse, but never verify.
type PyReject struct {
	Reason        string
	HumanReadable string
	Timestamp     string
	Signature     string
}

// SigningBytes returns the bytes S12 covers: json.dumps of
// {reason, from, to, timestamp}; from is the responder, to the initiator.
func (j *PyReject) SigningBytes(from, to AMID) ([]byte, error) {
	return MarshalPY(Object{
		{"reason", j.Reason},
		{"from", string(from)},
		{"to", string(to)},
		{"timestamp", j.Timestamp},
	})
}

// Sign sets j.Signature to the signature S12 by the responder.
func (j *PyReject) Sign(priv ed25519.PrivateKey, from, to AMID) error {
	msg, err := j.SigningBytes(from, to)
	if err != nil {
		return fmt.Errorf("signing REJECT: %w", err)
	}
	j.Signature = signB64(priv, msg)
	return nil
}

// Verify checks S12. An unsigned REJECT fails with an error wrapping
// ErrBadSignature: the relay could have forged it.
func (j *PyReject) Verify(pub ed25519.PublicKey, from, to AMID) error {
	if j.Signature == "" || j.Timestamp == "" {
		return errNoSignature
	}
	msg, err := j.SigningBytes(from, to)
	if err != nil {
		return ErrBadSignature
	}
	return verifyB64(pub, msg, j.Signature)
}

func decodePyReject(obj Object) (*PyReject, error) {
	r := newObjReader("REJECT", "", obj)
	j := &PyReject{}
	j.Reason = r.str("reason", true)
	if r.err == nil && len(j.Reason) > maxReasonLen {
		r.fail("reason", "longer than %d bytes", maxReasonLen)
	}
	j.HumanReadable = r.str("human_readable", false)
	j.Timestamp = r.str("timestamp", false)
	if r.err == nil && j.Timestamp != "" {
		if _, err := ParseTimestamp(j.Timestamp); err != nil {
			r.fail("timestamp", "%v", err)
		}
	}
	j.Signature = r.str("signature", false)
	if r.err != nil {
		return nil, r.err
	}
	return j, nil
}

// Marshal returns the KNOCK as the Python client writes it (PROTOCOL.md
// §6.2): json.dumps with its member order, optional members omitted when
// empty.
func (k *PyKnock) Marshal() ([]byte, error) {
	from := Object{{"amid", string(k.From.AMID)}, {"tier", k.From.Tier}}
	if k.From.DisplayName != "" {
		from = append(from, Member{"display_name", k.From.DisplayName})
	} else {
		from = append(from, Member{"display_name", nil})
	}
	from = append(from, Member{"reputation_score", k.From.ReputationScore})
	var sr Object
	if k.SessionRequest != (PySessionRequest{}) {
		sr = Object{{"type", k.SessionRequest.Type}}
		if k.SessionRequest.ExpectedMessages > 0 {
			sr = append(sr, Member{"expected_messages", k.SessionRequest.ExpectedMessages})
		} else {
			sr = append(sr, Member{"expected_messages", nil})
		}
		if k.SessionRequest.TTLSeconds > 0 {
			sr = append(sr, Member{"ttl_seconds", k.SessionRequest.TTLSeconds})
		}
	}
	o := Object{
		{"type", "knock"},
		{"protocol_version", k.ProtocolVersion},
		{"from", from},
		{"intent", k.intentValue()},
	}
	if sr != nil {
		o = append(o, Member{"session_request", sr})
	}
	o = append(o, Member{"timestamp", k.Timestamp}, Member{"signature", k.Signature})
	if k.CertificateChain != nil {
		o = append(o, Member{"certificate_chain", stringList(k.CertificateChain)})
	}
	if k.OfferedCapabilities != nil {
		o = append(o, Member{"offered_capabilities", stringList(k.OfferedCapabilities)})
	}
	return MarshalPY(o)
}

// Marshal returns the REJECT as the Python client writes a signed one.
func (j *PyReject) Marshal() ([]byte, error) {
	human := j.HumanReadable
	if human == "" {
		human = "Connection rejected: " + j.Reason
	}
	return MarshalPY(Object{
		{"type", "reject"},
		{"reason", j.Reason},
		{"human_readable", human},
		{"timestamp", j.Timestamp},
		{"signature", j.Signature},
	})
}

func stringList(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

package ratchet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// tsState is the TypeScript SDK's serializeState object (PROTOCOL.md §4.7).
type tsState struct {
	DHPrivate    *string         `json:"dh_private"`
	DHPublic     *string         `json:"dh_public"`
	PeerDHPublic *string         `json:"peer_dh_public"`
	RootKey      *string         `json:"root_key"`
	SendChainKey *string         `json:"send_chain_key"`
	RecvChainKey *string         `json:"recv_chain_key"`
	Ns           *uint32         `json:"send_message_number"`
	Nr           *uint32         `json:"recv_message_number"`
	PN           *uint32         `json:"previous_chain_length"`
	SkippedKeys  json.RawMessage `json:"skipped_keys"`
}

// ImportTSState reads a ratchet state in the TypeScript SDK's
// serializeState JSON (PROTOCOL.md §4.7), as found in its session files.
// That format does not record the role, so the caller says whether the
// state is the initiator's: a responder that has not yet received keeps
// the ordering rule. Later ratchet steps read from rand
// (crypto/rand.Reader when nil). Errors wrap ErrMalformedState.
func ImportTSState(data []byte, initiator bool, rand io.Reader) (*State, error) {
	s, err := importTS(data, initiator)
	if err != nil {
		return nil, fmt.Errorf("ratchet: TypeScript state: %w: %w", ErrMalformedState, err)
	}
	s.rand = randOrDefault(rand)
	return s, nil
}

func importTS(data []byte, initiator bool) (*State, error) {
	var t tsState
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, jsonErr(err)
	}
	switch {
	case t.DHPrivate == nil, t.DHPublic == nil, t.RootKey == nil:
		return nil, errors.New("dh_private, dh_public and root_key are required")
	case t.Ns == nil, t.Nr == nil, t.PN == nil:
		return nil, errors.New("message counters are required")
	}
	s := &State{keys: newChainKeys(), skipped: newSkippedKeys(), ns: *t.Ns, nr: *t.Nr, pn: *t.PN}
	ok := false
	defer func() {
		if !ok {
			s.Wipe()
		}
	}()
	priv, err := protocol.DecodeB64(*t.DHPrivate, keySize)
	if err != nil {
		return nil, fmt.Errorf("dh_private: %w", err)
	}
	s.dhs, err = NewPrivateKey(priv)
	clear(priv)
	if err != nil {
		return nil, err
	}
	pub, err := parsePublicKey(*t.DHPublic)
	if err != nil {
		return nil, fmt.Errorf("dh_public: %w", err)
	}
	if !pub.Equal(s.dhs.PublicKey()) {
		return nil, errors.New("dh_public does not match dh_private")
	}
	if t.PeerDHPublic != nil {
		if s.dhr, err = parsePublicKey(*t.PeerDHPublic); err != nil {
			return nil, fmt.Errorf("peer_dh_public: %w", err)
		}
	}
	if err := decodeKey(s.keys.rk, *t.RootKey, "root_key"); err != nil {
		return nil, err
	}
	if t.SendChainKey != nil {
		s.hasCKs = true
		if err := decodeKey(s.keys.cks, *t.SendChainKey, "send_chain_key"); err != nil {
			return nil, err
		}
	}
	if t.RecvChainKey != nil {
		s.hasCKr = true
		if err := decodeKey(s.keys.ckr, *t.RecvChainKey, "recv_chain_key"); err != nil {
			return nil, err
		}
	}
	s.mustReceiveFirst = !initiator && !s.hasCKs && !s.hasCKr
	if err := importTSSkipped(s.skipped, t.SkippedKeys); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// importTSSkipped reads the skipped_keys object in member order, which is
// the TypeScript SDK's insertion order.
func importTSSkipped(into *skippedKeys, raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("skipped_keys is not an object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("skipped_keys: %w", jsonErr(err))
		}
		name, _ := tok.(string)
		var value string
		if err := dec.Decode(&value); err != nil {
			return fmt.Errorf("skipped_keys: %w", jsonErr(err))
		}
		if into.len() == maxStoredSkipped {
			return fmt.Errorf("skipped_keys: more than %d entries", maxStoredSkipped)
		}
		id, err := parseTSSkippedID(name)
		if err != nil {
			return err
		}
		if _, dup := into.m[id]; dup {
			return fmt.Errorf("skipped_keys: repeated entry for message %d", id.n)
		}
		var mk [keySize]byte
		if err := decodeKey(&mk, value, "skipped_keys value"); err != nil {
			return err
		}
		into.add(id.dh, id.n, [][keySize]byte{mk})
		clear(mk[:])
	}
	return nil
}

// jsonErr replaces an encoding/json syntax error, whose message quotes the
// offending character (possibly one of a key), with its offset alone.
// Type errors name the member and the JSON kind, never the value, and are
// kept.
func jsonErr(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("malformed JSON near byte %d", syn.Offset)
	}
	return err
}

// parseTSSkippedID reads a skipped_keys member name, b64(dh) + ":" + n.
func parseTSSkippedID(name string) (skippedID, error) {
	var id skippedID
	dh, n, ok := strings.Cut(name, ":")
	if !ok {
		return id, errors.New("skipped_keys: member name is not <key>:<number>")
	}
	k, err := protocol.DecodeB64(dh, keySize)
	if err != nil {
		return id, fmt.Errorf("skipped_keys: ratchet key: %w", err)
	}
	v, err := strconv.ParseUint(n, 10, 32)
	if err != nil || strconv.FormatUint(v, 10) != n {
		return id, errors.New("skipped_keys: message number is not a canonical integer")
	}
	copy(id.dh[:], k)
	id.n = uint32(v)
	return id, nil
}

func decodeKey(dst *[keySize]byte, s, what string) error {
	b, err := protocol.DecodeB64(s, keySize)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	copy(dst[:], b)
	clear(b)
	return nil
}

// ExportTSState writes the state in the TypeScript SDK's serializeState
// JSON (PROTOCOL.md §4.7), members in its order, skipped keys oldest
// first. Like MarshalBinary, the output holds every secret of the session.
func (s *State) ExportTSState() ([]byte, error) {
	if s.keys == nil {
		return nil, errUnusable
	}
	b := make([]byte, 0, 512+s.skipped.len()*112)
	str := func(name string, v []byte, present bool) {
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		if !present {
			b = append(b, "null"...)
			return
		}
		b = append(b, '"')
		b = protocol.B64.AppendEncode(b, v)
		b = append(b, '"')
	}
	num := func(name string, v uint32) {
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	priv := s.dhs.Bytes()
	b = append(b, '{')
	str("dh_private", priv, true)
	clear(priv)
	b = append(b, ',')
	str("dh_public", s.dhs.pub.b[:], true)
	b = append(b, ',')
	var peer []byte
	if s.dhr != nil {
		peer = s.dhr.b[:]
	}
	str("peer_dh_public", peer, s.dhr != nil)
	b = append(b, ',')
	str("root_key", s.keys.rk[:], true)
	b = append(b, ',')
	str("send_chain_key", s.keys.cks[:], s.hasCKs)
	b = append(b, ',')
	str("recv_chain_key", s.keys.ckr[:], s.hasCKr)
	b = append(b, ',')
	num("send_message_number", s.ns)
	b = append(b, ',')
	num("recv_message_number", s.nr)
	b = append(b, ',')
	num("previous_chain_length", s.pn)
	b = append(b, `,"skipped_keys":{`...)
	for i, id := range s.skipped.ordered() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = protocol.B64.AppendEncode(b, id.dh[:])
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(id.n), 10)
		b = append(b, `":"`...)
		b = protocol.B64.AppendEncode(b, s.skipped.m[id].mk[:])
		b = append(b, '"')
	}
	return append(b, "}}"...), nil
}

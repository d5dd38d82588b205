package ratchet

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Serialised state, version 1. All integers are big-endian.
//
//	offset  size  field
//	0       1     version = 0x01
//	1       1     flags: 0x01 remote ratchet key present, 0x02 sending chain
//	              present, 0x04 receiving chain present, 0x08 must receive
//	              before sending; other bits zero
//	2       32    DHs private key
//	        32    DHr public key (if 0x01)
//	        32    RK
//	        32    CKs (if 0x02)
//	        32    CKr (if 0x04)
//	        4     Ns
//	        4     Nr
//	        4     PN
//	        2     count of skipped keys (at most 2000)
//	        68×   skipped keys, oldest first: remote ratchet key (32),
//	              message number (4), message key (32)
//
// Nothing may follow. A later version gets a new version byte and a new
// reader; UnmarshalState keeps reading version 1 for as long as states of
// that version may exist on disk.
const (
	stateV1 = 0x01

	flagRemoteKey   = 0x01
	flagSendChain   = 0x02
	flagRecvChain   = 0x04
	flagMustReceive = 0x08 // must receive before sending
	knownFlags      = flagRemoteKey | flagSendChain | flagRecvChain | flagMustReceive

	skippedEntrySize = keySize + 4 + keySize
)

// MarshalBinary serialises the state in the current format (version 1).
// The output holds every secret of the session: store it encrypted
// (DESIGN.md §4.8) and clear it after use.
func (s *State) MarshalBinary() ([]byte, error) {
	if s.keys == nil {
		return nil, errUnusable
	}
	var flags byte
	if s.dhr != nil {
		flags |= flagRemoteKey
	}
	if s.hasCKs {
		flags |= flagSendChain
	}
	if s.hasCKr {
		flags |= flagRecvChain
	}
	if s.mustReceiveFirst {
		flags |= flagMustReceive
	}
	b := make([]byte, 0, 2+6*keySize+12+2+s.skipped.len()*skippedEntrySize)
	b = append(b, stateV1, flags)
	priv := s.dhs.Bytes()
	b = append(b, priv...)
	clear(priv)
	if s.dhr != nil {
		b = append(b, s.dhr.b[:]...)
	}
	b = append(b, s.keys.rk[:]...)
	if s.hasCKs {
		b = append(b, s.keys.cks[:]...)
	}
	if s.hasCKr {
		b = append(b, s.keys.ckr[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, s.ns)
	b = binary.BigEndian.AppendUint32(b, s.nr)
	b = binary.BigEndian.AppendUint32(b, s.pn)
	b = binary.BigEndian.AppendUint16(b, uint16(s.skipped.len()))
	for _, id := range s.skipped.ordered() {
		b = append(b, id.dh[:]...)
		b = binary.BigEndian.AppendUint32(b, id.n)
		b = append(b, s.skipped.m[id].mk[:]...)
	}
	return b, nil
}

// UnmarshalState restores a state serialised by MarshalBinary. Later
// ratchet steps read from rand (crypto/rand.Reader when nil). Input that is
// truncated, has trailing bytes, an unknown version or flag, or describes
// an impossible state is refused with an error wrapping ErrMalformedState.
func UnmarshalState(b []byte, rand io.Reader) (*State, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("ratchet: %w: empty input", ErrMalformedState)
	}
	if b[0] != stateV1 {
		return nil, fmt.Errorf("ratchet: %w: unsupported version %d", ErrMalformedState, b[0])
	}
	s, err := unmarshalV1(&reader{b: b[1:]})
	if err != nil {
		return nil, fmt.Errorf("ratchet: %w: %w", ErrMalformedState, err)
	}
	s.rand = randOrDefault(rand)
	return s, nil
}

func unmarshalV1(r *reader) (*State, error) {
	flags := r.byte("flags")
	if r.err == nil && flags&^knownFlags != 0 {
		return nil, fmt.Errorf("unknown flags %#02x", flags&^knownFlags)
	}
	s := &State{keys: newChainKeys(), skipped: newSkippedKeys()}
	priv := r.key("ratchet private key")
	if r.err == nil {
		k, err := NewPrivateKey(priv[:])
		clear(priv[:])
		if err != nil {
			return nil, err
		}
		s.dhs = k
	}
	if flags&flagRemoteKey != 0 {
		pub := r.key("remote ratchet key")
		if r.err == nil {
			k, err := newPublicKey(pub[:])
			if err != nil {
				return nil, fmt.Errorf("remote ratchet key: %w", err)
			}
			s.dhr = k
		}
	}
	*s.keys.rk = r.key("root key")
	s.hasCKs = flags&flagSendChain != 0
	if s.hasCKs {
		*s.keys.cks = r.key("sending chain key")
	}
	s.hasCKr = flags&flagRecvChain != 0
	if s.hasCKr {
		*s.keys.ckr = r.key("receiving chain key")
	}
	s.mustReceiveFirst = flags&flagMustReceive != 0
	s.ns = r.uint32("Ns")
	s.nr = r.uint32("Nr")
	s.pn = r.uint32("PN")
	count := int(r.uint16("skipped key count"))
	if r.err != nil {
		s.Wipe()
		return nil, r.err
	}
	if count > maxStoredSkipped {
		s.Wipe()
		return nil, fmt.Errorf("%d skipped keys, more than %d", count, maxStoredSkipped)
	}
	for i := range count {
		var id skippedID
		id.dh = r.key("skipped key ratchet key")
		id.n = r.uint32("skipped key number")
		mk := r.key("skipped message key")
		if r.err != nil {
			break
		}
		if _, dup := s.skipped.m[id]; dup {
			s.Wipe()
			return nil, fmt.Errorf("skipped key %d repeats an earlier one", i)
		}
		s.skipped.add(id.dh, id.n, [][keySize]byte{mk})
		clear(mk[:])
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err == nil {
		r.err = s.check()
	}
	if r.err != nil {
		s.Wipe()
		return nil, r.err
	}
	return s, nil
}

// check refuses combinations no sequence of operations produces, so that
// the ratchet never runs from a state its code does not expect.
func (s *State) check() error {
	switch {
	case (s.hasCKs || s.hasCKr || s.mustReceiveFirst) && s.dhr == nil:
		return fmt.Errorf("chain or ordering flag without a remote ratchet key")
	case s.mustReceiveFirst && (s.hasCKs || s.hasCKr):
		return fmt.Errorf("must-receive flag on a state that has a chain")
	case !s.hasCKs && (s.ns != 0 || s.pn != 0):
		return fmt.Errorf("message counters without a sending chain")
	case !s.hasCKr && s.nr != 0:
		return fmt.Errorf("receive counter without a receiving chain")
	}
	return nil
}

// reader consumes fields from a byte slice, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("truncated at %s", what)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte(what string) byte {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) key(what string) (k [keySize]byte) {
	if b := r.take(keySize, what); b != nil {
		copy(k[:], b)
	}
	return k
}

func (r *reader) uint16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) uint32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

package ratchet

import (
	"errors"
	"fmt"
	"math"
)

// Encrypt encrypts plaintext as the next message of the sending chain
// (PROTOCOL.md §4.4) and returns its header and nonce ‖ secretbox
// ciphertext. An initiator's first Encrypt derives its first sending chain
// from the responder's ratchet key; later chains come from Decrypt's DH
// ratchet steps.
//
// Encrypt returns ErrCannotSendYet before the state may send (see
// CanSend). On any error the state is unchanged.
func (s *State) Encrypt(plaintext []byte) (Header, []byte, error) {
	return s.AppendEncrypt(nil, plaintext)
}

// AppendEncrypt is Encrypt appending the ciphertext to dst and returning
// the extended slice, so that a caller can reuse one buffer for every
// message. dst must not overlap plaintext.
func (s *State) AppendEncrypt(dst, plaintext []byte) (Header, []byte, error) {
	if s.keys == nil {
		return Header{}, nil, errUnusable
	}
	if s.ns == math.MaxUint32 {
		return Header{}, nil, errors.New("ratchet: sending chain exhausted")
	}
	k := s.keys
	cks := *k.cks
	defer clear(cks[:])
	var rk *[keySize]byte // the new root key, when this call starts the chain
	if !s.hasCKs {
		if s.dhr == nil || s.mustReceiveFirst {
			return Header{}, nil, ErrCannotSendYet
		}
		dh, err := s.dhs.dh(s.dhr)
		if err != nil {
			return Header{}, nil, fmt.Errorf("ratchet: starting sending chain: %w", err)
		}
		nextRK, ck, err := kdfRK(k.rk, &dh)
		clear(dh[:])
		defer clear(nextRK[:])
		if err != nil {
			return Header{}, nil, err
		}
		rk, cks = &nextRK, ck
		clear(ck[:])
	}
	mk, next := kdfCK(&cks)
	defer clear(next[:])
	ct, err := seal(s.rand, &mk, dst, plaintext)
	clear(mk[:])
	if err != nil {
		return Header{}, nil, err
	}
	h := Header{DHPublicKey: s.dhs.pub.b, PN: s.pn, N: s.ns}
	if rk != nil {
		*k.rk = *rk
	}
	*k.cks = next
	s.hasCKs = true
	s.ns++
	return h, ct, nil
}

// Decrypt authenticates and decrypts one message (PROTOCOL.md §4.5) and
// returns its plaintext.
//
// Every state change is staged and committed only after the message
// authenticates (PROTOCOL.md W-14): on any error the state is exactly as it
// was. Messages that fail authentication, for any reason, return ErrDecrypt.
// A message on the current receiving chain that was already decrypted, or
// whose skipped key was discarded, returns ErrReplay (W-15). A message that
// would need more than MaxSkip skipped keys returns ErrExcessiveSkip.
//
// When the header names a new remote ratchet key, the keys of the previous
// receiving chain are kept only up to min(PN, Nr+MaxSkip) (W-16), and
// Decrypt completes the DH ratchet step, reading a new ratchet key pair from
// the state's random source.
func (s *State) Decrypt(h Header, ciphertext []byte) ([]byte, error) {
	return s.AppendDecrypt(nil, h, ciphertext)
}

// AppendDecrypt is Decrypt appending the plaintext to dst and returning the
// extended slice, so that a caller can reuse one buffer for every message.
// dst must not overlap ciphertext. On error dst is left untouched.
func (s *State) AppendDecrypt(dst []byte, h Header, ciphertext []byte) ([]byte, error) {
	if s.keys == nil {
		return nil, errUnusable
	}
	// Cheap checks first: none of these can be a genuine message. N is
	// bounded so that N+1 cannot wrap.
	if len(ciphertext) < overhead || !canonical(&h.DHPublicKey) || h.N == math.MaxUint32 {
		return nil, ErrDecrypt
	}
	id := skippedID{h.DHPublicKey, h.N}
	if mk, ok := s.skipped.get(id); ok {
		pt, err := open(&mk, dst, ciphertext)
		clear(mk[:])
		if err != nil {
			return nil, err
		}
		s.skipped.remove(id)
		return pt, nil
	}
	if s.dhr != nil && h.DHPublicKey == s.dhr.b {
		if s.hasCKr {
			return s.decryptInChain(dst, h, ciphertext)
		}
		return s.decryptFirstOnKnownKey(dst, h, ciphertext)
	}
	return s.decryptNewChain(dst, h, ciphertext)
}

// decryptInChain handles a message on the current receiving chain.
func (s *State) decryptInChain(dst []byte, h Header, ciphertext []byte) ([]byte, error) {
	if h.N < s.nr {
		return nil, ErrReplay
	}
	if err := checkSkip(s.nr, h.N); err != nil {
		return nil, err
	}
	ck := *s.keys.ckr
	defer clear(ck[:])
	staged := deriveSkipped(&ck, h.N-s.nr)
	defer wipeKeys(staged)
	mk, next := kdfCK(&ck)
	defer clear(next[:])
	pt, err := open(&mk, dst, ciphertext)
	clear(mk[:])
	if err != nil {
		return nil, err
	}
	s.skipped.add(s.dhr.b, s.nr, staged)
	*s.keys.ckr = next
	s.nr = h.N + 1
	return pt, nil
}

// decryptFirstOnKnownKey handles the first message received on the remote
// key the state already holds: RK, CKr = KDF_RK(RK, DH(DHs, DHr)). No
// honest peer produces it under the ordering rule, but §4.5 defines it and
// it is kept for fidelity; it changes nothing unless the message
// authenticates.
func (s *State) decryptFirstOnKnownKey(dst []byte, h Header, ciphertext []byte) ([]byte, error) {
	if err := checkSkip(0, h.N); err != nil {
		return nil, err
	}
	dh, err := s.dhs.dh(s.dhr)
	defer clear(dh[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	rk, ck, err := kdfRK(s.keys.rk, &dh)
	defer clear(rk[:])
	defer clear(ck[:])
	if err != nil {
		return nil, err
	}
	staged := deriveSkipped(&ck, h.N)
	defer wipeKeys(staged)
	mk, next := kdfCK(&ck)
	defer clear(next[:])
	pt, err := open(&mk, dst, ciphertext)
	clear(mk[:])
	if err != nil {
		return nil, err
	}
	s.skipped.add(s.dhr.b, 0, staged)
	*s.keys.rk, *s.keys.ckr = rk, next
	s.hasCKr = true
	s.nr = h.N + 1
	return pt, nil
}

// decryptNewChain handles a message under a new remote ratchet key: the DH
// ratchet step. Only the receiving half (one X25519, the chain up to N) is
// computed before authentication; the previous chain's skipped keys, the
// new key pair and the sending half follow once the message is genuine, so
// a forged header costs little and changes nothing.
func (s *State) decryptNewChain(dst []byte, h Header, ciphertext []byte) ([]byte, error) {
	if err := checkSkip(0, h.N); err != nil {
		return nil, err
	}
	dhr, err := newPublicKey(h.DHPublicKey[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	dh, err := s.dhs.dh(dhr)
	defer clear(dh[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	rk1, ck, err := kdfRK(s.keys.rk, &dh)
	defer clear(rk1[:])
	defer clear(ck[:])
	if err != nil {
		return nil, err
	}
	staged := deriveSkipped(&ck, h.N)
	defer wipeKeys(staged)
	mk, ckr := kdfCK(&ck)
	defer clear(ckr[:])
	pt, err := open(&mk, dst, ciphertext)
	clear(mk[:])
	if err != nil {
		return nil, err
	}

	// The message is genuine. Finish the step on the side, still without
	// touching the state, so a failure here also leaves it unchanged.
	dhs, err := GeneratePrivateKey(s.rand)
	if err != nil {
		return nil, fmt.Errorf("ratchet: new ratchet key: %w", err)
	}
	dh2, err := dhs.dh(dhr)
	defer clear(dh2[:])
	if err != nil {
		return nil, fmt.Errorf("ratchet: new sending chain: %w", err)
	}
	rk2, cks, err := kdfRK(&rk1, &dh2)
	defer clear(rk2[:])
	defer clear(cks[:])
	if err != nil {
		return nil, err
	}
	var old [][keySize]byte
	if s.hasCKr {
		// PROTOCOL.md W-16: the TypeScript SDK skips to Nr+MaxSkip; for an
		// honest peer PN is where its chain ended, so min gives the same
		// keys without deriving (and storing) a thousand useless ones.
		until := min(uint64(h.PN), uint64(s.nr)+MaxSkip)
		if until > uint64(s.nr) {
			oldCK := *s.keys.ckr
			old = deriveSkipped(&oldCK, uint32(until-uint64(s.nr)))
			clear(oldCK[:])
			defer wipeKeys(old)
		}
	}

	// Commit, in the TypeScript SDK's order: the previous chain's skipped
	// keys, then the new chain's.
	if len(old) > 0 { // only with a receiving chain, so s.dhr is set
		s.skipped.add(s.dhr.b, s.nr, old)
	}
	s.skipped.add(dhr.b, 0, staged)
	s.dhr, s.dhs = dhr, dhs
	*s.keys.rk, *s.keys.ckr, *s.keys.cks = rk2, ckr, cks
	s.hasCKr, s.hasCKs = true, true
	s.mustReceiveFirst = false
	s.pn, s.ns, s.nr = s.ns, 0, h.N+1
	return pt, nil
}

// checkSkip refuses a message number more than MaxSkip past next.
func checkSkip(next, n uint32) error {
	if n > next && n-next > MaxSkip {
		return fmt.Errorf("ratchet: message %d is %d past the next expected one: %w", n, n-next, ErrExcessiveSkip)
	}
	return nil
}

// deriveSkipped advances ck by count steps and returns the message keys
// passed over, oldest first.
func deriveSkipped(ck *[keySize]byte, count uint32) [][keySize]byte {
	if count == 0 {
		return nil
	}
	mks := make([][keySize]byte, count)
	for i := range mks {
		var next [keySize]byte
		mks[i], next = kdfCK(ck)
		*ck = next
		clear(next[:])
	}
	return mks
}

// wipeKeys overwrites staged message keys.
func wipeKeys(mks [][keySize]byte) {
	for i := range mks {
		clear(mks[i][:])
	}
}

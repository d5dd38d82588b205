package ratchet

import (
	"errors"
	"fmt"
	"io"
)

// Limits on skipped message keys (PROTOCOL.md §0.5, §4.5).
const (
	// MaxSkip is the most message keys one Decrypt may skip within a
	// chain. A message further ahead is refused with ErrExcessiveSkip.
	MaxSkip = 1000
	// maxStoredSkipped is the most skipped keys a state holds: once more
	// are stored, the oldest are deleted until trimmedSkipped remain (the
	// TypeScript SDK's rule).
	maxStoredSkipped = 2000
	trimmedSkipped   = 1000
)

// Header is the Double Ratchet header sent in clear with every message
// (PROTOCOL.md §4.4, §4.6). It has the fields of protocol.RatchetHeader, in
// the same order, so either converts to the other.
type Header struct {
	// DHPublicKey is the sender's current ratchet public key.
	DHPublicKey [32]byte
	// PN is the number of messages in the sender's previous sending chain.
	PN uint32
	// N is the message's number in the sender's current sending chain.
	N uint32
}

// State is one side of a Double Ratchet session (PROTOCOL.md §4.2): the
// TypeScript SDK's algorithm with the hardening described in the package
// documentation. Create it with NewInitiator or NewResponder, persist it
// with MarshalBinary and restore it with UnmarshalState.
//
// A State is not safe for concurrent use and must not be copied (go vet's
// copylocks check reports copies): copies would share chain keys but not
// counters. Its secret material sits two pointers deep, so no fmt verb
// prints it, whether the State is printed directly or as part of another
// value.
type State struct {
	_    noCopy
	rand io.Reader

	dhs *PrivateKey // own ratchet key pair DHs
	dhr *PublicKey  // remote ratchet key DHr; nil until known

	keys           *chainKeys
	hasCKs, hasCKr bool
	ns, nr, pn     uint32

	// mustReceiveFirst marks a responder that has not yet performed a DH
	// ratchet step: a sending chain it derived now could not be
	// reproduced by the initiator (the ordering rule of §4.5).
	mustReceiveFirst bool

	skipped *skippedKeys
}

// chainKeys holds the root key RK and the chain keys CKs and CKr. The
// arrays sit behind their own pointers: fmt, which dereferences one level
// of pointer when it reports a bad verb, then prints only addresses.
type chainKeys struct {
	rk, cks, ckr *[keySize]byte
}

func newChainKeys() *chainKeys {
	return &chainKeys{rk: new([keySize]byte), cks: new([keySize]byte), ckr: new([keySize]byte)}
}

// noCopy makes go vet's copylocks check report copies of a State.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// NewInitiator starts the initiator's ratchet from the X3DH secret sk
// (PROTOCOL.md §4.3): RK = SK and a fresh ratchet key pair read from rand
// (crypto/rand.Reader when nil, here and in every later ratchet step). The
// state cannot encrypt until SetRemoteRatchetKey supplies the responder's
// ratchet key from its ACCEPT.
func NewInitiator(sk *SharedSecret, rand io.Reader) (*State, error) {
	return newState(sk, nil, rand)
}

// NewResponder starts the responder's ratchet from the X3DH secret sk and
// the initiator's ephemeral key from the X3DH message, which stands in as
// the remote ratchet key until the initiator's first message arrives
// (PROTOCOL.md §4.3). Send RatchetPublicKey in the ACCEPT. The state
// refuses to encrypt with ErrCannotSendYet until it has decrypted a
// message.
func NewResponder(sk *SharedSecret, initiatorEphemeral *PublicKey, rand io.Reader) (*State, error) {
	if initiatorEphemeral == nil {
		return nil, errors.New("ratchet: responder needs the initiator's ephemeral key")
	}
	return newState(sk, initiatorEphemeral, rand)
}

func newState(sk *SharedSecret, dhr *PublicKey, rand io.Reader) (*State, error) {
	if sk == nil || sk.b == nil {
		return nil, errors.New("ratchet: no shared secret")
	}
	rand = randOrDefault(rand)
	dhs, err := GeneratePrivateKey(rand)
	if err != nil {
		return nil, err
	}
	s := &State{
		rand:             rand,
		dhs:              dhs,
		dhr:              dhr,
		keys:             newChainKeys(),
		mustReceiveFirst: dhr != nil,
		skipped:          newSkippedKeys(),
	}
	*s.keys.rk = *sk.b
	return s, nil
}

// SetRemoteRatchetKey gives an initiator the responder's initial ratchet
// public key, carried in the ACCEPT's ratchet_key (PROTOCOL.md §3.4). It
// may be called once, and only on an initiator's state; a low-order key is
// refused with ErrLowOrderPublicKey.
func (s *State) SetRemoteRatchetKey(pub *PublicKey) error {
	if s.keys == nil {
		return errUnusable
	}
	if pub == nil {
		return errors.New("ratchet: no remote ratchet key")
	}
	if s.dhr != nil {
		return errors.New("ratchet: remote ratchet key is already set")
	}
	// Trial agreement, so a bad key fails here rather than at the first
	// Encrypt.
	out, err := s.dhs.dh(pub)
	clear(out[:])
	if err != nil {
		return fmt.Errorf("ratchet: remote ratchet key: %w", err)
	}
	s.dhr = pub
	return nil
}

// RatchetPublicKey returns the state's current ratchet public key. The
// responder sends it in its ACCEPT as ratchet_key.
func (s *State) RatchetPublicKey() *PublicKey {
	if s.dhs == nil {
		return nil
	}
	return s.dhs.PublicKey()
}

// CanSend reports whether Encrypt may be called: false for an initiator
// before SetRemoteRatchetKey and for a responder before its first
// successful Decrypt.
func (s *State) CanSend() bool {
	return s.keys != nil && (s.hasCKs || (s.dhr != nil && !s.mustReceiveFirst))
}

// Wipe overwrites the state's root, chain and skipped message keys with
// zeros and makes the state unusable. The ratchet private key is held by
// crypto/ecdh and cannot be overwritten; it becomes garbage.
func (s *State) Wipe() {
	if s.keys != nil {
		clear(s.keys.rk[:])
		clear(s.keys.cks[:])
		clear(s.keys.ckr[:])
		s.keys = nil
	}
	if s.skipped != nil {
		s.skipped.wipe()
	}
	s.dhs, s.dhr = nil, nil
}

// Format prints the public counters of the state, never key material.
func (s *State) Format(f fmt.State, verb rune) {
	if s.keys == nil {
		io.WriteString(f, "ratchet.State(unusable)")
		return
	}
	fmt.Fprintf(f, "ratchet.State(ns=%d nr=%d pn=%d skipped=%d)", s.ns, s.nr, s.pn, s.skipped.len())
}

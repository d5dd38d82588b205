package ratchet

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// party is one side of a simulated conversation.
type party struct {
	name      string
	s         *State
	inbox     []message // in flight to this party, in any order
	delivered []message // already decrypted by this party
}

// TestRandomConversations runs two parties through random sends in both
// directions, reordering, drops, replays and tampering, and checks that
// every genuine message decrypts exactly once to what was sent, and that
// everything else fails without changing the receiver.
func TestRandomConversations(t *testing.T) {
	const seeds, steps = 24, 300
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 0x5eed))
			alice, bob := newPair(t, 100+seed)
			a := &party{name: "alice", s: alice}
			b := &party{name: "bob", s: bob}
			counter := 0
			sendFrom := func(from, to *party) {
				if !from.s.CanSend() {
					return
				}
				counter++
				to.inbox = append(to.inbox, send(t, from.s, fmt.Sprintf("%s #%d", from.name, counter)))
			}
			pick := func() *party {
				if r.IntN(2) == 0 {
					return a
				}
				return b
			}
			for range steps {
				switch op := r.IntN(100); {
				case op < 30:
					sendFrom(a, b)
				case op < 60:
					sendFrom(b, a)
				case op < 88: // deliver any in-flight message
					p := pick()
					if len(p.inbox) == 0 {
						continue
					}
					i := r.IntN(len(p.inbox))
					m := p.inbox[i]
					p.inbox = append(p.inbox[:i], p.inbox[i+1:]...)
					receive(t, p.s, m)
					p.delivered = append(p.delivered, m)
				case op < 91: // drop
					p := pick()
					if len(p.inbox) > 0 {
						i := r.IntN(len(p.inbox))
						p.inbox = append(p.inbox[:i], p.inbox[i+1:]...)
					}
				case op < 96: // replay
					p := pick()
					if len(p.delivered) == 0 {
						continue
					}
					m := p.delivered[r.IntN(len(p.delivered))]
					var want error
					if p.s.dhr != nil && m.h.DHPublicKey == p.s.dhr.b {
						want = ErrReplay
					}
					mustFailUnchanged(t, p.s, m.h, m.ct, want)
				default: // tamper with a copy of an in-flight message
					p := pick()
					if len(p.inbox) == 0 {
						continue
					}
					m := p.inbox[r.IntN(len(p.inbox))]
					h, ct := flipRandomBit(r, m.h, m.ct)
					mustFailUnchanged(t, p.s, h, ct, nil)
				}
			}
			// Everything still in flight arrives, in random order.
			for _, p := range []*party{a, b} {
				r.Shuffle(len(p.inbox), func(i, j int) { p.inbox[i], p.inbox[j] = p.inbox[j], p.inbox[i] })
				for _, m := range p.inbox {
					receive(t, p.s, m)
				}
				p.inbox = nil
			}
			// A gap of more than MaxSkip is refused without a change, on the
			// current chain and on a new one.
			for _, p := range []*party{a, b} {
				if p.s.hasCKr {
					h := Header{DHPublicKey: p.s.dhr.b, N: p.s.nr + MaxSkip + 1 + uint32(r.IntN(50))}
					mustFailUnchanged(t, p.s, h, make([]byte, 60), ErrExcessiveSkip)
				}
				k, _ := GeneratePrivateKey(testRand(r.Uint64()))
				h := Header{DHPublicKey: k.PublicKey().Array(), N: MaxSkip + 1 + uint32(r.IntN(50))}
				mustFailUnchanged(t, p.s, h, make([]byte, 60), ErrExcessiveSkip)
			}
			// Both sides can still talk.
			receive(t, b.s, send(t, a.s, "final from alice"))
			receive(t, a.s, send(t, b.s, "final from bob"))
		})
	}
}

// flipRandomBit flips one bit of the header's key or message number, or of
// the ciphertext. PN is left alone: it is not authenticated and not part of
// any key (see TestEverySingleBitFlip).
func flipRandomBit(r *rand.Rand, h Header, ct []byte) (Header, []byte) {
	ct = bytes.Clone(ct)
	switch r.IntN(3) {
	case 0:
		i := r.IntN(256)
		h.DHPublicKey[i/8] ^= 1 << (i % 8)
	case 1:
		h.N ^= 1 << r.IntN(32)
	default:
		i := r.IntN(8 * len(ct))
		ct[i/8] ^= 1 << (i % 8)
	}
	return h, ct
}

// TestEverySingleBitFlip flips, one at a time, every bit of the header key,
// N and the ciphertext of messages of each kind, and checks that each fails
// and leaves the receiver byte-identical. Flips of PN must decrypt to the
// same plaintext: PN is neither authenticated nor keyed (PROTOCOL.md W-14),
// only the number of the previous chain's keys kept depends on it.
func TestEverySingleBitFlip(t *testing.T) {
	alice, bob := newPair(t, 200)
	type kind struct {
		receiver []byte // serialised receiver state
		m        message
	}
	kinds := map[string]kind{}

	first := send(t, alice, "first")
	kinds["first message of the session"] = kind{snapshot(t, bob), first}
	receive(t, bob, first)
	next := send(t, alice, "next")
	kinds["next in chain"] = kind{snapshot(t, bob), next}
	skippedMsg := send(t, alice, "skipped")
	ahead := send(t, alice, "ahead")
	kinds["ahead in chain"] = kind{snapshot(t, bob), ahead}
	receive(t, bob, next)
	receive(t, bob, ahead)
	kinds["from a skipped key"] = kind{snapshot(t, bob), skippedMsg}
	receive(t, alice, send(t, bob, "reply"))
	newChain := send(t, alice, "new chain")
	kinds["first of a new chain"] = kind{snapshot(t, bob), newChain}

	for name, k := range kinds {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, m := restore(t, k.receiver, 4), k.m
			var edits []func(h *Header, ct []byte)
			for i := range 256 {
				edits = append(edits, func(h *Header, _ []byte) { h.DHPublicKey[i/8] ^= 1 << (i % 8) })
			}
			for i := range 32 {
				edits = append(edits, func(h *Header, _ []byte) { h.N ^= 1 << i })
			}
			for i := range 8 * len(m.ct) {
				edits = append(edits, func(_ *Header, ct []byte) { ct[i/8] ^= 1 << (i % 8) })
			}
			for _, edit := range edits {
				h, ct := m.h, bytes.Clone(m.ct)
				edit(&h, ct)
				mustFailUnchanged(t, s, h, ct, nil)
			}
			state := snapshot(t, s)
			for i := range 32 {
				c := restore(t, state, 3)
				h := m.h
				h.PN ^= 1 << i
				receive(t, c, message{h: h, ct: m.ct, plain: m.plain})
			}
			receive(t, s, m)
		})
	}
}

// TestSnapshotRestore restores an older snapshot of one side and continues.
// What the protocol allows:
//
//   - A receiver rolled back to before it decrypted some messages can
//     decrypt them again and carry on.
//   - A sender rolled back after sending messages that were lost carries on;
//     its new messages reuse the lost ones' numbers and keys.
//   - A sender rolled back after its messages were delivered has its
//     repeated numbers refused as replays (ErrReplay) until it passes the
//     numbers it had used; then the conversation carries on.
//   - A side rolled back to before a DH ratchet step whose result the peer
//     has seen (a reply under a ratchet key the snapshot does not hold) has
//     lost that key for good: both directions fail with ErrDecrypt, and the
//     session must be established again.
func TestSnapshotRestore(t *testing.T) {
	t.Run("receiver before receiving", func(t *testing.T) {
		alice, bob := newPair(t, 300)
		receive(t, bob, send(t, alice, "warm up"))
		receive(t, alice, send(t, bob, "turn"))
		saved := snapshot(t, bob)
		msgs := []message{send(t, alice, "1"), send(t, alice, "2"), send(t, alice, "3")}
		for _, m := range msgs {
			receive(t, bob, m)
		}
		bob = restore(t, saved, 301)
		for i := len(msgs) - 1; i >= 0; i-- {
			receive(t, bob, msgs[i])
		}
		receive(t, alice, send(t, bob, "carry on"))
		receive(t, bob, send(t, alice, "carrying on"))
	})
	t.Run("sender whose messages were lost", func(t *testing.T) {
		alice, bob := newPair(t, 302)
		receive(t, bob, send(t, alice, "warm up"))
		saved := snapshot(t, alice)
		send(t, alice, "lost 1")
		send(t, alice, "lost 2")
		alice = restore(t, saved, 303)
		receive(t, bob, send(t, alice, "again 1"))
		receive(t, bob, send(t, alice, "again 2"))
		receive(t, alice, send(t, bob, "carry on"))
	})
	t.Run("sender whose messages were delivered", func(t *testing.T) {
		alice, bob := newPair(t, 304)
		receive(t, bob, send(t, alice, "warm up"))
		saved := snapshot(t, alice)
		receive(t, bob, send(t, alice, "1"))
		receive(t, bob, send(t, alice, "2"))
		alice = restore(t, saved, 305)
		for range 2 {
			m := send(t, alice, "repeat")
			mustFailUnchanged(t, bob, m.h, m.ct, ErrReplay)
		}
		receive(t, bob, send(t, alice, "3"))
		receive(t, alice, send(t, bob, "carry on"))
	})
	t.Run("side that lost a ratchet step the peer saw", func(t *testing.T) {
		alice, bob := newPair(t, 306)
		receive(t, bob, send(t, alice, "warm up"))
		receive(t, alice, send(t, bob, "turn"))
		m := send(t, alice, "new chain")
		saved := snapshot(t, bob)
		receive(t, bob, m) // a DH ratchet step: bob makes a new key
		receive(t, alice, send(t, bob, "reply under the new key"))
		bob = restore(t, saved, 307)
		receive(t, bob, m) // the step again, with another new key
		later := send(t, alice, "under the key bob lost")
		mustFailUnchanged(t, bob, later.h, later.ct, ErrDecrypt)
		r := send(t, bob, "reply under the other key")
		mustFailUnchanged(t, alice, r.h, r.ct, ErrDecrypt)
	})
}

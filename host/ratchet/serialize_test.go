package ratchet

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/state_v1.txt and the seed files under testdata/fuzz")

// states returns states at every stage of a conversation.
func states(t testing.TB) map[string]*State {
	t.Helper()
	out := map[string]*State{}
	fresh, err := NewInitiator(testSecret(1), testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	out["initiator before ACCEPT"] = fresh
	alice, bob := newPair(t, 80)
	out["initiator after ACCEPT"] = restore(t, snapshot(t, alice), 1)
	out["responder before receiving"] = restore(t, snapshot(t, bob), 1)
	receive(t, bob, send(t, alice, "a"))
	send(t, alice, "lost")
	receive(t, bob, send(t, alice, "b"))
	receive(t, alice, send(t, bob, "c"))
	out["initiator mid-conversation"] = alice
	out["responder with a skipped key"] = bob
	return out
}

func TestMarshalRoundTrip(t *testing.T) {
	for name, s := range states(t) {
		t.Run(name, func(t *testing.T) {
			b := snapshot(t, s)
			if b[0] != 1 {
				t.Fatalf("version byte = %d, want 1", b[0])
			}
			got := restore(t, b, 1)
			if again := snapshot(t, got); !bytes.Equal(again, b) {
				t.Fatalf("round trip changed the encoding:\n%x\n%x", again, b)
			}
			if got.CanSend() != s.CanSend() || !got.RatchetPublicKey().Equal(s.RatchetPublicKey()) {
				t.Fatal("restored state behaves differently")
			}
		})
	}
}

// TestRestoredStateContinues checks that a restored state does exactly what
// the original does.
func TestRestoredStateContinues(t *testing.T) {
	alice, bob := newPair(t, 81)
	receive(t, bob, send(t, alice, "one"))
	m := send(t, bob, "two")
	clone := restore(t, snapshot(t, alice), 99)
	alice.rand = testRand(99)
	receive(t, alice, m)
	receive(t, clone, m)
	if !bytes.Equal(snapshot(t, alice), snapshot(t, clone)) {
		t.Fatal("restored state diverged from the original")
	}
	receive(t, bob, send(t, clone, "three"))
}

func TestUnmarshalStateMalformed(t *testing.T) {
	_, bob := newPair(t, 82)
	alice, _ := newPair(t, 82)
	receive(t, bob, send(t, alice, "a"))
	send(t, alice, "lost")
	receive(t, bob, send(t, alice, "b"))
	good := snapshot(t, bob) // flags 0x07, one skipped key
	if good[1] != flagRemoteKey|flagSendChain|flagRecvChain {
		t.Fatalf("unexpected flags %#x", good[1])
	}
	countAt := 2 + 5*32 + 12
	set := func(edit func(b []byte) []byte) []byte { return edit(bytes.Clone(good)) }
	initiator := snapshot(t, alice) // has a sending chain, no receiving chain

	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"version 0", set(func(b []byte) []byte { b[0] = 0; return b })},
		{"version 2", set(func(b []byte) []byte { b[0] = 2; return b })},
		{"unknown flag", set(func(b []byte) []byte { b[1] |= 0x10; return b })},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"count too high", set(func(b []byte) []byte { binary.BigEndian.PutUint16(b[countAt:], 2); return b })},
		{"count too low", set(func(b []byte) []byte { binary.BigEndian.PutUint16(b[countAt:], 0); return b })},
		{"more than 2000 skipped keys", set(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[countAt:], 2001)
			return append(b, make([]byte, 2000*skippedEntrySize)...)
		})},
		{"repeated skipped key", set(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[countAt:], 2)
			return append(b, b[countAt+2:]...)
		})},
		{"non-canonical remote key", set(func(b []byte) []byte { b[2+32+31] |= 0x80; return b })},
		{"chains without a remote key", set(func(b []byte) []byte {
			b[1] &^= flagRemoteKey
			return append(b[:34], b[66:]...)
		})},
		{"must-receive flag with chains", set(func(b []byte) []byte { b[1] |= flagMustReceive; return b })},
		{"Nr without a receiving chain", func() []byte {
			b := bytes.Clone(initiator)
			at := 2 + 4*32 + 4 // version, flags, DHs, DHr, RK, CKs, Ns
			binary.BigEndian.PutUint32(b[at:], 1)
			return b
		}()},
		{"Ns without a sending chain", func() []byte {
			b := bytes.Clone(initiator)
			b[1] &^= flagSendChain
			b = append(b[:2+3*32], b[2+4*32:]...) // drop CKs
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := UnmarshalState(tt.in, nil)
			if !errors.Is(err, ErrMalformedState) || s != nil {
				t.Fatalf("UnmarshalState = %v, %v; want ErrMalformedState", s, err)
			}
		})
	}
	for n := range len(good) {
		if _, err := UnmarshalState(good[:n], nil); !errors.Is(err, ErrMalformedState) {
			t.Fatalf("UnmarshalState of the first %d bytes = %v, want ErrMalformedState", n, err)
		}
	}
}

// TestGoldenStateV1 keeps version 1 readable and pins the receiver's
// behaviour: testdata/state_v1.txt holds a state written by this version
// and messages with the outcome each must have, genuine ones and our own
// negative vectors (bad MAC, replay, skips past MaxSkip).
func TestGoldenStateV1(t *testing.T) {
	const path = "testdata/state_v1.txt"
	if *updateGolden {
		writeFuzzSeeds(t)
		writeGoldenV1(t, path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var state []byte
	cases := 0
	for i, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		hexField := func(s string) []byte {
			b, err := hex.DecodeString(s)
			if err != nil {
				t.Fatalf("line %d: %v", i+1, err)
			}
			return b
		}
		if f[0] == "state" && len(f) == 2 {
			state = hexField(f[1])
			if again := snapshot(t, restore(t, state, 1)); !bytes.Equal(again, state) {
				t.Fatal("the golden state does not re-encode to itself")
			}
			continue
		}
		if f[0] != "case" || len(f) < 7 || state == nil {
			t.Fatalf("line %d: malformed", i+1)
		}
		cases++
		t.Run(f[1], func(t *testing.T) {
			var h Header
			copy(h.DHPublicKey[:], hexField(f[2]))
			pn, err1 := strconv.ParseUint(f[3], 10, 32)
			n, err2 := strconv.ParseUint(f[4], 10, 32)
			if err1 != nil || err2 != nil {
				t.Fatalf("line %d: bad number", i+1)
			}
			h.PN, h.N = uint32(pn), uint32(n)
			ct := hexField(f[5])
			s := restore(t, state, 1)
			switch f[6] {
			case "success":
				if len(f) != 8 {
					t.Fatalf("line %d: no plaintext", i+1)
				}
				receive(t, s, message{h: h, ct: ct, plain: hexField(f[7])})
			case "decrypt":
				mustFailUnchanged(t, s, h, ct, ErrDecrypt)
			case "replay":
				mustFailUnchanged(t, s, h, ct, ErrReplay)
			case "excessive_skip":
				mustFailUnchanged(t, s, h, ct, ErrExcessiveSkip)
			default:
				t.Fatalf("line %d: unknown outcome %q", i+1, f[6])
			}
		})
	}
	if cases == 0 {
		t.Fatal("no cases")
	}
}

// writeGoldenV1 regenerates the golden file with -update.
func writeGoldenV1(t *testing.T, path string) {
	alice, bob := newPair(t, 83)
	first := send(t, alice, "first")
	receive(t, bob, first)
	skipped := send(t, alice, "skipped")
	third := send(t, alice, "third")
	receive(t, bob, third)
	receive(t, alice, send(t, bob, "reply"))
	state := snapshot(t, bob)
	golden := send(t, alice, "golden message")

	var b strings.Builder
	b.WriteString("# A version 1 ratchet state (a responder that holds one skipped key) and\n")
	b.WriteString("# messages for it: case <name> <header key> <PN> <N> <ciphertext> <outcome> [<plaintext>].\n")
	fmt.Fprintf(&b, "state %x\n", state)
	add := func(name string, h Header, ct []byte, outcome string, plain []byte) {
		fmt.Fprintf(&b, "case %s %x %d %d %x %s", name, h.DHPublicKey, h.PN, h.N, ct, outcome)
		if plain != nil {
			fmt.Fprintf(&b, " %x", plain)
		}
		b.WriteString("\n")
	}
	add("new-chain", golden.h, golden.ct, "success", golden.plain)
	add("skipped-key", skipped.h, skipped.ct, "success", skipped.plain)
	badMAC := bytes.Clone(golden.ct)
	badMAC[30] ^= 1
	add("bad-mac", golden.h, badMAC, "decrypt", nil)
	badSkipped := bytes.Clone(skipped.ct)
	badSkipped[len(badSkipped)-1] ^= 0x80
	add("bad-mac-skipped-key", skipped.h, badSkipped, "decrypt", nil)
	add("replay", first.h, first.ct, "replay", nil)
	add("replay-after-skip", third.h, third.ct, "replay", nil)
	far := third.h
	far.N = 3 + MaxSkip + 1
	add("skip-past-limit", far, third.ct, "excessive_skip", nil)
	farNew := golden.h
	farNew.N = MaxSkip + 1
	add("skip-past-limit-new-chain", farNew, golden.ct, "excessive_skip", nil)
	add("low-order-key", Header{}, golden.ct, "decrypt", nil)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

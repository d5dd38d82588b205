package ratchet

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestSpecSequence follows the worked sequence of PROTOCOL.md §4.5 and
// checks every root and chain key against the formulas, computed here from
// the primitives, and every message against its message key.
func TestSpecSequence(t *testing.T) {
	sk := testSecret(9)
	alice, bob := newPair(t, 9)
	a0, b0 := alice.dhs, bob.dhs
	dh := func(priv *PrivateKey, pub *PublicKey) *[keySize]byte {
		out, err := priv.dh(pub)
		if err != nil {
			t.Fatal(err)
		}
		return &out
	}
	rkStep := func(rk *[keySize]byte, d *[keySize]byte) (r, c [keySize]byte) {
		r, c, err := kdfRK(rk, d)
		if err != nil {
			t.Fatal(err)
		}
		return r, c
	}
	opens := func(ck [keySize]byte, m message) {
		t.Helper()
		mk, _ := kdfCK(&ck)
		if pt, err := open(&mk, nil, m.ct); err != nil || !bytes.Equal(pt, m.plain) {
			t.Fatalf("message n=%d does not open with the specified message key", m.h.N)
		}
	}

	// A: RK1, CKs_A = KDF_RK(SK, DH(a0, B0)); header (A0, 0, 0).
	m1 := send(t, alice, "hello")
	rk1, cksA := rkStep(sk.b, dh(a0, b0.PublicKey()))
	if m1.h != (Header{DHPublicKey: a0.pub.b, PN: 0, N: 0}) {
		t.Fatalf("first header = %+v", m1.h)
	}
	opens(cksA, m1)
	if _, next := kdfCK(&cksA); *alice.keys.rk != rk1 || *alice.keys.cks != next {
		t.Fatal("initiator keys after the first send differ from §4.5")
	}

	// B: RK1, CKr = KDF_RK(SK, DH(b0, A0)); new b1;
	// RK2, CKs_B = KDF_RK(RK1, DH(b1, A0)); replies (B1, 0, 0).
	receive(t, bob, m1)
	b1 := bob.dhs
	if b1.Equal(b0) {
		t.Fatal("responder did not make a new ratchet key")
	}
	rk1b, ckrB := rkStep(sk.b, dh(b0, a0.PublicKey()))
	rk2, cksB := rkStep(&rk1b, dh(b1, a0.PublicKey()))
	if rk1b != rk1 {
		t.Fatal("responder's RK1 differs from the initiator's")
	}
	if _, next := kdfCK(&ckrB); *bob.keys.ckr != next || *bob.keys.rk != rk2 || *bob.keys.cks != cksB {
		t.Fatal("responder keys after the first receive differ from §4.5")
	}
	m2 := send(t, bob, "hi")
	if m2.h != (Header{DHPublicKey: b1.pub.b, PN: 0, N: 0}) {
		t.Fatalf("reply header = %+v", m2.h)
	}
	opens(cksB, m2)

	// A: RK2, CKr = KDF_RK(RK1, DH(a0, B1)); new a1;
	// RK3, CKs = KDF_RK(RK2, DH(a1, B1)); its next header is (A1, 1, 0).
	receive(t, alice, m2)
	a1 := alice.dhs
	rk2a, ckrA := rkStep(&rk1, dh(a0, b1.PublicKey()))
	rk3, cksA2 := rkStep(&rk2a, dh(a1, b1.PublicKey()))
	if rk2a != rk2 {
		t.Fatal("initiator's RK2 differs from the responder's")
	}
	if _, next := kdfCK(&ckrA); *alice.keys.ckr != next || *alice.keys.rk != rk3 || *alice.keys.cks != cksA2 {
		t.Fatal("initiator keys after the first receive differ from §4.5")
	}
	m3 := send(t, alice, "again")
	if m3.h != (Header{DHPublicKey: a1.pub.b, PN: 1, N: 0}) {
		t.Fatalf("third header = %+v", m3.h)
	}
	opens(cksA2, m3)
	receive(t, bob, m3)
}

// TestCiphertextLayout checks the size of ENCRYPT's output: nonce, tag,
// then the plaintext's length (PROTOCOL.md §4.1).
func TestCiphertextLayout(t *testing.T) {
	alice, _ := newPair(t, 1)
	for _, n := range []int{0, 1, 13, 1024} {
		_, ct, err := alice.Encrypt(make([]byte, n))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(ct), 24+16+n; got != want {
			t.Errorf("ciphertext of %d bytes is %d bytes, want %d", n, got, want)
		}
	}
}

func TestOrderingRule(t *testing.T) {
	sk := testSecret(3)
	alice, err := NewInitiator(sk, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := GeneratePrivateKey(testRand(2))
	bob, err := NewResponder(sk, ek.PublicKey(), testRand(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    *State
	}{{"initiator without the responder's key", alice}, {"responder before receiving", bob}} {
		before := snapshot(t, tc.s)
		if tc.s.CanSend() {
			t.Errorf("%s: CanSend = true", tc.name)
		}
		if _, _, err := tc.s.Encrypt([]byte("x")); !errors.Is(err, ErrCannotSendYet) {
			t.Errorf("%s: Encrypt = %v, want ErrCannotSendYet", tc.name, err)
		}
		if !bytes.Equal(snapshot(t, tc.s), before) {
			t.Errorf("%s: refused Encrypt changed the state", tc.name)
		}
	}
	if err := alice.SetRemoteRatchetKey(bob.RatchetPublicKey()); err != nil {
		t.Fatal(err)
	}
	if !alice.CanSend() {
		t.Fatal("initiator cannot send after SetRemoteRatchetKey")
	}
	receive(t, bob, send(t, alice, "first"))
	if !bob.CanSend() {
		t.Fatal("responder cannot send after receiving")
	}
	receive(t, alice, send(t, bob, "reply"))
}

func TestSetRemoteRatchetKey(t *testing.T) {
	alice, bob := newPair(t, 4)
	if err := alice.SetRemoteRatchetKey(bob.RatchetPublicKey()); err == nil {
		t.Error("second SetRemoteRatchetKey succeeded")
	}
	if err := bob.SetRemoteRatchetKey(alice.RatchetPublicKey()); err == nil {
		t.Error("SetRemoteRatchetKey on a responder succeeded")
	}
	fresh, err := NewInitiator(testSecret(4), testRand(5))
	if err != nil {
		t.Fatal(err)
	}
	lowOrder, err := NewPublicKey(make([]byte, 32)) // u = 0, a point of order 2
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.SetRemoteRatchetKey(lowOrder); !errors.Is(err, ErrLowOrderPublicKey) {
		t.Errorf("SetRemoteRatchetKey(low order) = %v, want ErrLowOrderPublicKey", err)
	}
	if fresh.CanSend() {
		t.Error("refused key was kept")
	}
}

func TestReplay(t *testing.T) {
	alice, bob := newPair(t, 5)
	m0 := send(t, alice, "m0")
	m1 := send(t, alice, "m1")
	m2 := send(t, alice, "m2")
	receive(t, bob, m0)
	receive(t, bob, m2) // m1's key is now skipped
	receive(t, bob, m1) // and used

	for _, m := range []message{m0, m1, m2} {
		t.Run(fmt.Sprintf("current chain n=%d", m.h.N), func(t *testing.T) {
			mustFailUnchanged(t, bob, m.h, m.ct, ErrReplay)
		})
	}
	// After a DH turn the old chain is no longer current: its messages
	// fail authentication under the ratchet step they would trigger.
	receive(t, alice, send(t, bob, "turn"))
	receive(t, bob, send(t, alice, "next chain"))
	t.Run("previous chain", func(t *testing.T) {
		mustFailUnchanged(t, bob, m1.h, m1.ct, ErrDecrypt)
	})
}

func TestExcessiveSkip(t *testing.T) {
	alice, bob := newPair(t, 6)
	var msgs []message
	for i := range MaxSkip + 2 {
		msgs = append(msgs, send(t, alice, fmt.Sprint("m", i)))
	}
	t.Run("new chain", func(t *testing.T) {
		mustFailUnchanged(t, bob, msgs[MaxSkip+1].h, msgs[MaxSkip+1].ct, ErrExcessiveSkip)
	})
	t.Run("exactly MaxSkip on a new chain", func(t *testing.T) {
		b := restore(t, snapshot(t, bob), 1)
		receive(t, b, msgs[MaxSkip])
		if got := b.skipped.len(); got != MaxSkip {
			t.Fatalf("stored %d skipped keys, want %d", got, MaxSkip)
		}
	})
	receive(t, bob, msgs[0])
	t.Run("current chain", func(t *testing.T) {
		h := msgs[0].h
		h.N = 1 + MaxSkip + 1
		mustFailUnchanged(t, bob, h, msgs[0].ct, ErrExcessiveSkip)
	})
	t.Run("exactly MaxSkip on the current chain", func(t *testing.T) {
		receive(t, bob, msgs[MaxSkip+1])
		receive(t, bob, msgs[1])
	})
}

// TestSkipToPN checks W-16: on a new remote key only the previous chain's
// keys up to PN are kept, and late messages of that chain still decrypt.
func TestSkipToPN(t *testing.T) {
	alice, bob := newPair(t, 7)
	var late []message
	receive(t, bob, send(t, alice, "a0"))
	for i := range 4 {
		late = append(late, send(t, alice, fmt.Sprint("late", i)))
	}
	receive(t, alice, send(t, bob, "b0"))
	m := send(t, alice, "new chain")
	if m.h.PN != 5 {
		t.Fatalf("PN = %d, want 5", m.h.PN)
	}
	receive(t, bob, m)
	if got := bob.skipped.len(); got != len(late) {
		t.Fatalf("stored %d skipped keys, want %d (up to PN)", got, len(late))
	}
	for i := len(late) - 1; i >= 0; i-- {
		receive(t, bob, late[i])
	}
	if got := bob.skipped.len(); got != 0 {
		t.Fatalf("%d skipped keys left", got)
	}
}

// TestSkipCapOnOldChain checks that an inflated PN makes the receiver keep
// at most MaxSkip keys of the previous chain.
func TestSkipCapOnOldChain(t *testing.T) {
	alice, bob := newPair(t, 8)
	receive(t, bob, send(t, alice, "a0"))
	receive(t, alice, send(t, bob, "b0"))
	m := send(t, alice, "new chain")
	m.h.PN = 5000 // the header is not authenticated (W-14)
	receive(t, bob, m)
	if got := bob.skipped.len(); got != MaxSkip {
		t.Fatalf("stored %d skipped keys, want %d", got, MaxSkip)
	}
}

// TestSkippedKeysTrimmed checks the TypeScript SDK's bound: more than 2000
// stored keys are trimmed to the newest 1000.
func TestSkippedKeysTrimmed(t *testing.T) {
	alice, bob := newPair(t, 9)
	var chains [][]message
	for c := range 3 {
		var msgs []message
		for i := range MaxSkip + 1 {
			msgs = append(msgs, send(t, alice, fmt.Sprint(c, "/", i)))
		}
		receive(t, bob, msgs[MaxSkip]) // skips the 1000 before it
		receive(t, alice, send(t, bob, "turn"))
		chains = append(chains, msgs)
		want := min((c+1)*MaxSkip, maxStoredSkipped)
		if c == 2 {
			want = trimmedSkipped
		}
		if got := bob.skipped.len(); got != want {
			t.Fatalf("after chain %d: %d skipped keys, want %d", c, got, want)
		}
	}
	// The survivors are the newest: chain 2's.
	receive(t, bob, chains[2][0])
	receive(t, bob, chains[2][MaxSkip-1])
	mustFailUnchanged(t, bob, chains[0][5].h, chains[0][5].ct, nil)
	mustFailUnchanged(t, bob, chains[1][5].h, chains[1][5].ct, nil)
}

// TestForwardSecrecy checks that a state captured after messages 0..k
// holds nothing that decrypts messages 0..k-1: they are not among the
// skipped keys, and no key derivable forward from the captured chain
// opens them.
func TestForwardSecrecy(t *testing.T) {
	alice, bob := newPair(t, 10)
	const k = 6
	var msgs []message
	var mks [][keySize]byte
	for i := range k + 1 {
		m := send(t, alice, fmt.Sprint("secret ", i))
		if i > 0 { // bob.keys.ckr holds the chain key for message i
			mk, _ := kdfCK(bob.keys.ckr)
			mks = append(mks, mk)
		}
		receive(t, bob, m)
		msgs = append(msgs, m)
	}
	captured := snapshot(t, bob)
	for i, mk := range mks {
		if bytes.Contains(captured, mk[:]) {
			t.Fatalf("captured state contains the key of message %d", i+1)
		}
	}
	s := restore(t, captured, 1)
	for _, m := range msgs[:k] {
		mustFailUnchanged(t, s, m.h, m.ct, ErrReplay)
	}
	// Walk the captured receiving chain far forward: no key opens an old
	// message.
	ck := *s.keys.ckr
	for range 2 * MaxSkip {
		mk, next := kdfCK(&ck)
		for _, m := range msgs[:k] {
			if _, err := open(&mk, nil, m.ct); err == nil {
				t.Fatalf("a key derived from the captured state opens message %d", m.h.N)
			}
		}
		ck = next
	}
}

// TestTamperedMessages flips parts of genuine messages of every kind and
// checks that each fails and leaves the receiver unchanged, and that the
// genuine message still decrypts afterwards.
func TestTamperedMessages(t *testing.T) {
	alice, bob := newPair(t, 11)
	first := send(t, alice, "first of a new chain")
	skippedMsg := send(t, alice, "will be skipped")
	ahead := send(t, alice, "ahead")
	tests := []struct {
		name string
		m    message
		edit func(h *Header, ct []byte) []byte
		want error
	}{
		{"ciphertext bit", first, func(_ *Header, ct []byte) []byte { ct[len(ct)-1] ^= 0x10; return ct }, ErrDecrypt},
		{"tag bit", first, func(_ *Header, ct []byte) []byte { ct[24] ^= 1; return ct }, ErrDecrypt},
		{"nonce bit", first, func(_ *Header, ct []byte) []byte { ct[0] ^= 0x80; return ct }, ErrDecrypt},
		{"truncated", first, func(_ *Header, ct []byte) []byte { return ct[:len(ct)-1] }, ErrDecrypt},
		{"too short", first, func(_ *Header, ct []byte) []byte { return ct[:39] }, ErrDecrypt},
		{"empty", first, func(_ *Header, _ []byte) []byte { return nil }, ErrDecrypt},
		{"extended", first, func(_ *Header, ct []byte) []byte { return append(ct, 0) }, ErrDecrypt},
		{"dh byte", first, func(h *Header, ct []byte) []byte { h.DHPublicKey[3] ^= 4; return ct }, ErrDecrypt},
		{"dh top bit", first, func(h *Header, ct []byte) []byte { h.DHPublicKey[31] ^= 0x80; return ct }, ErrDecrypt},
		{"n plus one", first, func(h *Header, ct []byte) []byte { h.N++; return ct }, ErrDecrypt},
		{"n max", first, func(h *Header, ct []byte) []byte { h.N = 1<<32 - 1; return ct }, ErrDecrypt},
		{"low-order dh", first, func(h *Header, ct []byte) []byte { h.DHPublicKey = [32]byte{}; return ct }, ErrDecrypt},
		{"ahead, wrong body", ahead, func(_ *Header, ct []byte) []byte { ct[30] ^= 1; return ct }, ErrDecrypt},
	}
	run := func(t *testing.T, receiver *State) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := tt.m.h
				ct := tt.edit(&h, bytes.Clone(tt.m.ct))
				mustFailUnchanged(t, receiver, h, ct, tt.want)
			})
		}
	}
	t.Run("new chain", func(t *testing.T) { run(t, bob) })
	receive(t, bob, first)
	receive(t, bob, ahead) // skippedMsg's key is stored now
	tests = []struct {
		name string
		m    message
		edit func(h *Header, ct []byte) []byte
		want error
	}{
		{"skipped key, ciphertext bit", skippedMsg, func(_ *Header, ct []byte) []byte { ct[40] ^= 2; return ct }, ErrDecrypt},
		{"skipped key, n changed", skippedMsg, func(h *Header, ct []byte) []byte { h.N = 5; return ct }, ErrDecrypt},
		{"replay with another body", first, func(_ *Header, ct []byte) []byte { ct[41] ^= 2; return ct }, ErrReplay},
	}
	t.Run("current chain", func(t *testing.T) { run(t, bob) })
	receive(t, bob, skippedMsg)
}

// TestHeaderPNNotAuthenticated documents W-14: PN is neither
// authenticated nor part of any key, so a changed PN still decrypts.
func TestHeaderPNNotAuthenticated(t *testing.T) {
	alice, bob := newPair(t, 12)
	m := send(t, alice, "hello")
	m.h.PN ^= 0x40
	receive(t, bob, m)
}

// TestRandomSourceFailure checks that a failing random source leaves the
// state unchanged, for Encrypt's nonce and for Decrypt's new ratchet key.
func TestRandomSourceFailure(t *testing.T) {
	alice, bob := newPair(t, 13)
	m := send(t, alice, "hello")

	alice.rand = failingReader{}
	before := snapshot(t, alice)
	if _, _, err := alice.Encrypt([]byte("x")); err == nil {
		t.Fatal("Encrypt with a failing random source succeeded")
	}
	if !bytes.Equal(snapshot(t, alice), before) {
		t.Fatal("failed Encrypt changed the state")
	}

	good := bob.rand
	bob.rand = failingReader{}
	mustFailUnchanged(t, bob, m.h, m.ct, nil)
	bob.rand = good
	receive(t, bob, m)
}

func TestUnusableState(t *testing.T) {
	alice, _ := newPair(t, 14)
	alice.Wipe()
	for name, s := range map[string]*State{"zero": new(State), "wiped": alice} {
		if _, _, err := s.Encrypt(nil); err == nil {
			t.Errorf("%s: Encrypt succeeded", name)
		}
		if _, err := s.Decrypt(Header{}, make([]byte, 64)); err == nil {
			t.Errorf("%s: Decrypt succeeded", name)
		}
		if _, err := s.MarshalBinary(); err == nil {
			t.Errorf("%s: MarshalBinary succeeded", name)
		}
		if _, err := s.ExportTSState(); err == nil {
			t.Errorf("%s: ExportTSState succeeded", name)
		}
		if err := s.SetRemoteRatchetKey(nil); err == nil {
			t.Errorf("%s: SetRemoteRatchetKey succeeded", name)
		}
		if s.CanSend() {
			t.Errorf("%s: CanSend", name)
		}
		if got := fmt.Sprint(s); got != "ratchet.State(unusable)" {
			t.Errorf("%s: prints as %q", name, got)
		}
	}
}

// TestDecryptBeforeRemoteKey follows §4.5's "DHr unset" branch: an
// initiator that has not yet learnt the responder's key treats any header
// key as new. Only a sender holding SK and the initiator's ratchet public
// key could produce such a message; the test plays that sender.
func TestDecryptBeforeRemoteKey(t *testing.T) {
	sk := testSecret(15)
	alice, err := NewInitiator(sk, testRand(15))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := GeneratePrivateKey(testRand(16))
	dh, err := x.dh(alice.RatchetPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	_, ck, err := kdfRK(sk.b, &dh)
	if err != nil {
		t.Fatal(err)
	}
	var m message
	for n := range uint32(3) { // the message numbered 2; 0 and 1 are skipped
		mk, next := kdfCK(&ck)
		ck = next
		if n < 2 {
			continue
		}
		ct, err := seal(testRand(17), &mk, nil, []byte("early"))
		if err != nil {
			t.Fatal(err)
		}
		m = message{h: Header{DHPublicKey: x.PublicKey().Array(), N: n}, ct: ct, plain: []byte("early")}
	}
	receive(t, alice, m)
	if got := alice.skipped.len(); got != 2 {
		t.Fatalf("stored %d skipped keys, want 2", got)
	}
	if !alice.CanSend() {
		t.Fatal("no sending chain after the ratchet step")
	}
	if err := alice.SetRemoteRatchetKey(x.PublicKey()); err == nil {
		t.Fatal("SetRemoteRatchetKey after a ratchet step succeeded")
	}
}

// TestAppendVariants checks that AppendEncrypt and AppendDecrypt append to
// what dst holds, and that a failed AppendDecrypt returns nothing and
// leaves dst alone.
func TestAppendVariants(t *testing.T) {
	alice, bob := newPair(t, 16)
	prefix := []byte("prefix:")
	dst := append(make([]byte, 0, 128), prefix...)
	h, out, err := alice.AppendEncrypt(dst, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, prefix) || len(out) != len(prefix)+overhead+5 {
		t.Fatalf("AppendEncrypt = %q", out)
	}
	ct := bytes.Clone(out[len(prefix):])

	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	ptBuf := append(make([]byte, 0, 64), prefix...)
	before := bytes.Clone(ptBuf[:cap(ptBuf)])
	if got, err := bob.AppendDecrypt(ptBuf, h, bad); err == nil || got != nil {
		t.Fatalf("AppendDecrypt of a tampered message = %q, %v", got, err)
	}
	if !bytes.Equal(ptBuf[:cap(ptBuf)], before) {
		t.Fatal("failed AppendDecrypt wrote into dst")
	}
	got, err := bob.AppendDecrypt(ptBuf, h, ct)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "prefix:hello" {
		t.Fatalf("AppendDecrypt = %q", got)
	}
}

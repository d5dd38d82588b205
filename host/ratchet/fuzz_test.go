package ratchet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzFixture is a receiver mid-conversation and the genuine messages it
// has not yet received: one under a stored skipped key and two on a chain
// it has not seen (the second needs a skip).
type fuzzFixture struct {
	receiver []byte
	genuine  []message
}

func newFuzzFixture(t testing.TB) *fuzzFixture {
	alice, bob := newPair(t, 400)
	receive(t, bob, send(t, alice, "m0"))
	skippedMsg := send(t, alice, "m1")
	receive(t, bob, send(t, alice, "m2"))
	receive(t, alice, send(t, bob, "r0"))
	m3 := send(t, alice, "m3")
	m4 := send(t, alice, "m4")
	return &fuzzFixture{receiver: snapshot(t, bob), genuine: []message{skippedMsg, m3, m4}}
}

// FuzzDecrypt decrypts arbitrary headers and ciphertexts with a live
// receiver. It must never panic; a failure must leave the state
// byte-identical and be one of the package's three decrypt errors; a
// success must be a genuine message (PN aside, which is not authenticated)
// and yield its plaintext.
func FuzzDecrypt(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, m := range fx.genuine {
		f.Add(m.h.DHPublicKey[:], m.h.PN, m.h.N, m.ct)
		f.Add(m.h.DHPublicKey[:], m.h.PN+1, m.h.N+1, m.ct)
	}
	f.Add(make([]byte, 32), uint32(0), uint32(0), make([]byte, 40))
	f.Add([]byte{1}, uint32(7), uint32(1<<32-1), []byte("short"))
	f.Fuzz(func(t *testing.T, dh []byte, pn, n uint32, ct []byte) {
		s := restore(t, fx.receiver, 1)
		h := Header{PN: pn, N: n}
		copy(h.DHPublicKey[:], dh)
		pt, err := s.Decrypt(h, ct)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrReplay) && !errors.Is(err, ErrExcessiveSkip) {
				t.Fatalf("unexpected error: %v", err)
			}
			if !bytes.Equal(snapshot(t, s), fx.receiver) {
				t.Fatalf("failed Decrypt changed the state (%v)", err)
			}
			return
		}
		for _, m := range fx.genuine {
			if h.DHPublicKey == m.h.DHPublicKey && h.N == m.h.N && bytes.Equal(ct, m.ct) {
				if !bytes.Equal(pt, m.plain) {
					t.Fatalf("genuine message decrypted to %q, want %q", pt, m.plain)
				}
				return
			}
		}
		t.Fatalf("a message that was never sent decrypted to %q", pt)
	})
}

// FuzzUnmarshalState reads arbitrary bytes as a state. It must never
// panic; whatever it accepts must re-encode to the identical bytes, survive
// the TypeScript format both ways, and be safe to use.
func FuzzUnmarshalState(f *testing.F) {
	for _, s := range states(f) {
		f.Add(snapshot(f, s))
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalState(b, testRand(1))
		if err != nil {
			if s != nil || !errors.Is(err, ErrMalformedState) {
				t.Fatalf("UnmarshalState = %v, %v", s, err)
			}
			return
		}
		if again := snapshot(t, s); !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the encoding:\n%x\n%x", again, b)
		}
		js, err := s.ExportTSState()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ImportTSState(js, !s.mustReceiveFirst, testRand(1))
		if err != nil {
			t.Fatalf("ImportTSState of an export: %v", err)
		}
		if !bytes.Equal(snapshot(t, back), b) {
			t.Fatal("the TypeScript form does not round-trip")
		}
		// Using the state must not panic.
		var h Header
		copy(h.DHPublicKey[:], b)
		s.Decrypt(h, bytes.Repeat([]byte{1}, 50))
		s.Encrypt([]byte("x"))
	})
}

// writeFuzzSeeds stores seed files in Go's corpus format under
// testdata/fuzz; TestGoldenStateV1 calls it with -update.
func writeFuzzSeeds(t *testing.T) {
	write := func(target, name string, values ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, v := range values {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case uint32:
				fmt.Fprintf(&b, "uint32(%d)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%t)\n", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fx := newFuzzFixture(t)
	for i, m := range fx.genuine {
		write("FuzzDecrypt", fmt.Sprint("genuine-", i), m.h.DHPublicKey[:], m.h.PN, m.h.N, m.ct)
		bad := bytes.Clone(m.ct)
		bad[len(bad)-1] ^= 1
		write("FuzzDecrypt", fmt.Sprint("tampered-", i), m.h.DHPublicKey[:], m.h.PN, m.h.N, bad)
	}
	write("FuzzDecrypt", "excessive-skip", fx.genuine[1].h.DHPublicKey[:], uint32(0), uint32(MaxSkip+1), fx.genuine[1].ct)
	names := map[string]string{
		"initiator before ACCEPT":      "initiator-fresh",
		"initiator after ACCEPT":       "initiator-accepted",
		"responder before receiving":   "responder-fresh",
		"initiator mid-conversation":   "initiator-mid",
		"responder with a skipped key": "responder-skipped",
	}
	for name, s := range states(t) {
		write("FuzzUnmarshalState", names[name], snapshot(t, s))
	}
	write("FuzzUnmarshalState", "unknown-version", []byte{2, 0})
	for name, s := range states(t) {
		js, err := s.ExportTSState()
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzImportTSState", names[name], js, !s.mustReceiveFirst)
	}
	write("FuzzImportTSState", "unquoted-key", []byte(`{"dh_private":AAAA}`), false)
}

// FuzzImportTSState reads arbitrary bytes as a TypeScript SDK state. It
// must never panic; a refusal must wrap ErrMalformedState and quote no
// character of the input; whatever it accepts must export to JSON that
// imports to the same state, and be safe to use.
func FuzzImportTSState(f *testing.F) {
	for _, s := range states(f) {
		js, err := s.ExportTSState()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js, !s.mustReceiveFirst)
	}
	f.Add([]byte(`{}`), true)
	f.Add([]byte(`{"dh_private":AAAA}`), false)
	f.Add([]byte(`{"skipped_keys":{"a:1":"b"}}`), true)
	f.Fuzz(func(t *testing.T, b []byte, initiator bool) {
		s, err := ImportTSState(b, initiator, testRand(1))
		if err != nil {
			if s != nil || !errors.Is(err, ErrMalformedState) {
				t.Fatalf("ImportTSState = %v, %v", s, err)
			}
			if strings.Contains(err.Error(), "invalid character") {
				t.Fatalf("error quotes the input: %v", err)
			}
			return
		}
		js, err := s.ExportTSState()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ImportTSState(js, initiator, testRand(1))
		if err != nil {
			t.Fatalf("ImportTSState of an export: %v", err)
		}
		if !bytes.Equal(snapshot(t, back), snapshot(t, s)) {
			t.Fatal("the TypeScript form does not round-trip")
		}
		var h Header
		copy(h.DHPublicKey[:], b)
		s.Decrypt(h, bytes.Repeat([]byte{1}, 50))
		s.Encrypt([]byte("x"))
	})
}

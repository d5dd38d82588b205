package ratchet

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/crypto/nacl/secretbox"
)

const benchSize = 1024

// raceEnabled is set by race_test.go when the race detector is on.
var raceEnabled bool

// BenchmarkPrimitiveFloor is the least any ratchet can spend per message:
// one KDF_CK and a secretbox seal and open of 1 KiB, with no allocation.
func BenchmarkPrimitiveFloor(b *testing.B) {
	var ck [keySize]byte
	var nonce [nonceSize]byte
	pt := make([]byte, benchSize)
	box := make([]byte, 0, benchSize+secretbox.Overhead)
	out := make([]byte, 0, benchSize)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		mk, next := kdfCK(&ck)
		ck = next
		box = secretbox.Seal(box[:0], pt, &nonce, &mk)
		var ok bool
		if out, ok = secretbox.Open(out[:0], box, &nonce, &mk); !ok {
			b.Fatal("open failed")
		}
	}
}

// BenchmarkEncryptDecrypt1KiB encrypts and decrypts 1 KiB messages on one
// chain, the steady state of a conversation, with the production random
// source: into reused buffers (AppendEncrypt, AppendDecrypt) and into new
// ones (Encrypt, Decrypt).
func BenchmarkEncryptDecrypt1KiB(b *testing.B) {
	for _, reuse := range []bool{true, false} {
		name := map[bool]string{true: "reused buffers", false: "new buffers"}[reuse]
		b.Run(name, func(b *testing.B) {
			alice, bob := newPair(b, 1)
			receive(b, bob, send(b, alice, "warm up"))
			alice.rand, bob.rand = rand.Reader, rand.Reader
			pt := make([]byte, benchSize)
			ctBuf := make([]byte, 0, benchSize+overhead)
			ptBuf := make([]byte, 0, benchSize)
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				var h Header
				var ct []byte
				var err error
				if reuse {
					h, ct, err = alice.AppendEncrypt(ctBuf[:0], pt)
				} else {
					h, ct, err = alice.Encrypt(pt)
				}
				if err != nil {
					b.Fatal(err)
				}
				if reuse {
					_, err = bob.AppendDecrypt(ptBuf[:0], h, ct)
				} else {
					_, err = bob.Decrypt(h, ct)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDHRatchetStep measures a message whose receiver performs a DH
// ratchet step: the two sides take turns, one message each.
func BenchmarkDHRatchetStep(b *testing.B) {
	alice, bob := newPair(b, 2)
	pt := make([]byte, 64)
	from, to := alice, bob
	b.ReportAllocs()
	for b.Loop() {
		h, ct, err := from.Encrypt(pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := to.Decrypt(h, ct); err != nil {
			b.Fatal(err)
		}
		from, to = to, from
	}
}

func benchX3DH(b *testing.B) (*PrivateKey, *PrivateKey, *Bundle, ed25519.PublicKey, mapPrekeys) {
	signer := testSigner(9)
	alice, _ := GeneratePrivateKey(testRand(1))
	bob, _ := GeneratePrivateKey(testRand(2))
	spk, err := GenerateSignedPrekey(testRand(3), 1, signer)
	if err != nil {
		b.Fatal(err)
	}
	otpks, _ := GenerateOneTimePrekeys(testRand(4), 1, 1)
	keys := mapPrekeys{
		signed:  map[uint32]*PrivateKey{1: spk.PrivateKey()},
		oneTime: map[uint32]*PrivateKey{1: otpks[0].PrivateKey()},
	}
	return alice, bob, NewBundle(bob.PublicKey(), spk, otpks[0]), signer.Public().(ed25519.PublicKey), keys
}

// BenchmarkX3DHInitiator runs the initiator side with a one-time prekey:
// signature check, ephemeral key and four X25519.
func BenchmarkX3DHInitiator(b *testing.B) {
	alice, _, bundle, signing, _ := benchX3DH(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := InitiateX3DH(nil, alice, bundle, signing); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkX3DHResponder runs the responder side with a one-time prekey.
func BenchmarkX3DHResponder(b *testing.B) {
	alice, bob, bundle, signing, keys := benchX3DH(b)
	_, msg, err := InitiateX3DH(nil, alice, bundle, signing)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RespondX3DH(bob, alice.PublicKey(), msg, keys); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSteadyStateAllocs pins the allocations of a message on an
// established chain: Encrypt and Decrypt allocate their result and nothing
// else; with reused buffers nothing is allocated.
//
// The race detector changes escape analysis, so under -race the test runs
// itself again in a build without it rather than count the wrong thing.
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		cmd := exec.CommandContext(t.Context(), "go", "test", "-count=1", "-run=^TestSteadyStateAllocs$", ".")
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("allocation test without the race detector: %v\n%s", err, out)
		}
		return
	}
	alice, bob := newPair(t, 3)
	receive(t, bob, send(t, alice, "warm up"))
	pt := make([]byte, benchSize)
	ctBuf := make([]byte, 0, benchSize+overhead)
	ptBuf := make([]byte, 0, benchSize)
	const runs = 50
	for _, tc := range []struct {
		name string
		want float64
		enc  func() (Header, []byte, error)
		dec  func(h Header, ct []byte) ([]byte, error)
	}{
		{"new buffers", 1,
			func() (Header, []byte, error) { return alice.Encrypt(pt) },
			func(h Header, ct []byte) ([]byte, error) { return bob.Decrypt(h, ct) }},
		{"reused buffers", 0,
			func() (Header, []byte, error) { return alice.AppendEncrypt(ctBuf[:0], pt) },
			func(h Header, ct []byte) ([]byte, error) { return bob.AppendDecrypt(ptBuf[:0], h, ct) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []message
			for range runs + 1 { // AllocsPerRun makes one extra, unmeasured call
				h, ct, err := alice.Encrypt(pt)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, message{h: h, ct: ct})
			}
			if got := testing.AllocsPerRun(runs, func() {
				if _, _, err := tc.enc(); err != nil {
					t.Fatal(err)
				}
			}); got != tc.want {
				t.Errorf("encrypting allocates %v times, want %v", got, tc.want)
			}
			i := 0
			if got := testing.AllocsPerRun(runs, func() {
				if _, err := tc.dec(msgs[i].h, msgs[i].ct); err != nil {
					t.Fatal(err)
				}
				i++
			}); got != tc.want {
				t.Errorf("decrypting allocates %v times, want %v", got, tc.want)
			}
			// Skip the messages encrypted while measuring.
			receive(t, bob, send(t, alice, "sync"))
		})
	}
	if got := testing.AllocsPerRun(runs, func() { kdfCK(&[keySize]byte{}) }); got != 0 {
		t.Errorf("kdfCK allocates %v times, want 0", got)
	}
}

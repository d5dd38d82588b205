package ratchet

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// interopDir holds the shared interop vectors, beside the repository root.
const interopDir = "../../../shared/interop"

// readInterop returns the contents of a file under interopDir. When the
// folder is absent the test is skipped, except under CI=true, where it
// fails.
func readInterop(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(interopDir, name))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop vectors are required in CI: %v", err)
		}
		t.Skipf("interop vectors not available: %v", err)
	}
	return b
}

// crossSDKVectors is the part of the TypeScript SDK's cross-SDK fixtures
// that this package proves.
type crossSDKVectors struct {
	X3DH struct {
		AliceIdentityPrivate     string `json:"aliceIdentityPrivate"`
		AliceIdentityPublic      string `json:"aliceIdentityPublic"`
		AliceEphemeralPrivate    string `json:"aliceEphemeralPrivate"`
		AliceEphemeralPublic     string `json:"aliceEphemeralPublic"`
		BobIdentityPrivate       string `json:"bobIdentityPrivate"`
		BobIdentityPublic        string `json:"bobIdentityPublic"`
		BobSignedPrekeyPrivate   string `json:"bobSignedPrekeyPrivate"`
		BobSignedPrekeyPublic    string `json:"bobSignedPrekeyPublic"`
		BobSignedPrekeySignature string `json:"bobSignedPrekeySignature"`
		BobSigningPublicKey      string `json:"bobSigningPublicKey"`
		BobOneTimePrekeyPrivate  string `json:"bobOneTimePrekeyPrivate"`
		BobOneTimePrekeyPublic   string `json:"bobOneTimePrekeyPublic"`
		ExpectedSharedSecret     string `json:"expectedSharedSecret"`
	} `json:"x3dh"`
	HKDF struct {
		IKM            string `json:"ikm"`
		Salt           string `json:"salt"`
		Info           string `json:"info"`
		Length         int    `json:"length"`
		ExpectedOutput string `json:"expectedOutput"`
	} `json:"hkdf"`
	ChainKey struct {
		ChainKey             string `json:"chainKey"`
		ExpectedMessageKey   string `json:"expectedMessageKey"`
		ExpectedNextChainKey string `json:"expectedNextChainKey"`
	} `json:"chainKeyDerivation"`
	RootKey struct {
		RootKey          string `json:"rootKey"`
		DHOutput         string `json:"dhOutput"`
		ExpectedNewRoot  string `json:"expectedNewRoot"`
		ExpectedChainKey string `json:"expectedChainKey"`
	} `json:"rootKeyDerivation"`
	Secretbox struct {
		Key                string `json:"key"`
		Nonce              string `json:"nonce"`
		Plaintext          string `json:"plaintext"`
		ExpectedCiphertext string `json:"expectedCiphertext"`
	} `json:"secretbox"`
}

func loadCrossSDKVectors(t *testing.T) *crossSDKVectors {
	t.Helper()
	var v crossSDKVectors
	if err := json.Unmarshal(readInterop(t, "agentmesh-js-cross-sdk-vectors.json"), &v); err != nil {
		t.Fatalf("parsing cross-SDK vectors: %v", err)
	}
	return &v
}

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad base64 in test data %q: %v", s, err)
	}
	return b
}

func key32(t testing.TB, s string) *[keySize]byte {
	t.Helper()
	b := b64(t, s)
	if len(b) != keySize {
		t.Fatalf("test key is %d bytes", len(b))
	}
	return (*[keySize]byte)(b)
}

// testRand returns a deterministic random source for the given seed.
func testRand(seed uint64) io.Reader {
	return rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 1})
}

// failingReader fails every read.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// testSecret builds a shared secret directly.
func testSecret(seed byte) *SharedSecret {
	sk := &SharedSecret{b: new([keySize]byte)}
	for i := range sk.b {
		sk.b[i] = seed + byte(i)
	}
	return sk
}

// newPair returns an initiator and a responder sharing a secret, with the
// initiator holding the responder's ratchet key: the state after KNOCK and
// ACCEPT. Randomness is deterministic per seed.
func newPair(t testing.TB, seed uint64) (alice, bob *State) {
	t.Helper()
	sk := testSecret(byte(seed))
	alice, err := NewInitiator(sk, testRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	ek, err := GeneratePrivateKey(testRand(seed + 1000))
	if err != nil {
		t.Fatal(err)
	}
	bob, err = NewResponder(sk, ek.PublicKey(), testRand(seed+2000))
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.SetRemoteRatchetKey(bob.RatchetPublicKey()); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

// snapshot serialises s, failing the test on error.
func snapshot(t testing.TB, s *State) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return b
}

// restore reverses snapshot.
func restore(t testing.TB, b []byte, seed uint64) *State {
	t.Helper()
	s, err := UnmarshalState(b, testRand(seed))
	if err != nil {
		t.Fatalf("UnmarshalState: %v", err)
	}
	return s
}

// message is one encrypted message in flight.
type message struct {
	h         Header
	ct, plain []byte
}

func send(t testing.TB, s *State, text string) message {
	t.Helper()
	h, ct, err := s.Encrypt([]byte(text))
	if err != nil {
		t.Fatalf("Encrypt(%q): %v", text, err)
	}
	return message{h: h, ct: ct, plain: []byte(text)}
}

func receive(t testing.TB, s *State, m message) {
	t.Helper()
	got, err := s.Decrypt(m.h, m.ct)
	if err != nil {
		t.Fatalf("Decrypt(n=%d pn=%d): %v", m.h.N, m.h.PN, err)
	}
	if !bytes.Equal(got, m.plain) {
		t.Fatalf("Decrypt(n=%d) = %q, want %q", m.h.N, got, m.plain)
	}
}

// mustFailUnchanged decrypts m, expects an error matching want (nil means
// any error) and checks that the state did not change.
func mustFailUnchanged(t testing.TB, s *State, h Header, ct []byte, want error) error {
	t.Helper()
	before := snapshot(t, s)
	got, err := s.Decrypt(h, ct)
	if err == nil {
		t.Fatalf("Decrypt(n=%d pn=%d) = %q, want an error", h.N, h.PN, got)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("Decrypt(n=%d pn=%d) error = %v, want %v", h.N, h.PN, err, want)
	}
	if after := snapshot(t, s); !bytes.Equal(after, before) {
		t.Fatalf("failed Decrypt(n=%d pn=%d) changed the state", h.N, h.PN)
	}
	return err
}

func protocolB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// The session layer converts between Header and the envelope's header
// type; this stops compiling if their fields drift apart.
var _ = protocol.RatchetHeader(Header{})

package ratchet

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// wycheproofFile is the common shape of the Wycheproof files used here;
// each test keeps the members of its schema.
type wycheproofFile[T any] struct {
	Algorithm  string `json:"algorithm"`
	TestGroups []struct {
		TagSize int `json:"tagSize"`
		Tests   []T `json:"tests"`
	} `json:"testGroups"`
}

func loadWycheproof[T any](t *testing.T, name string) *wycheproofFile[T] {
	t.Helper()
	var f wycheproofFile[T]
	if err := json.Unmarshal(readInterop(t, "wycheproof/"+name), &f); err != nil {
		t.Fatalf("parsing %s: %v", name, err)
	}
	if len(f.TestGroups) == 0 {
		t.Fatalf("%s has no test groups", name)
	}
	return &f
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

// TestWycheproofX25519 runs the X25519 wrapper over every Wycheproof case.
// Valid cases must agree. Of the "acceptable" ones, a non-canonical public
// key must be refused by NewPublicKey, an all-zero shared secret by the
// agreement, and the rest must agree.
func TestWycheproofX25519(t *testing.T) {
	f := loadWycheproof[struct {
		TCID    int      `json:"tcId"`
		Comment string   `json:"comment"`
		Flags   []string `json:"flags"`
		Public  hexBytes `json:"public"`
		Private hexBytes `json:"private"`
		Shared  hexBytes `json:"shared"`
		Result  string   `json:"result"`
	}](t, "x25519_test.json")
	var zero [keySize]byte
	count := 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			count++
			t.Run(fmt.Sprintf("tcId %d", tc.TCID), func(t *testing.T) {
				t.Parallel()
				nonCanonical := slices.Contains(tc.Flags, "NonCanonicalPublic") ||
					(len(tc.Public) == keySize && !canonical((*[keySize]byte)(tc.Public)))
				zeroShared := bytes.Equal(tc.Shared, zero[:])
				if tc.Result == "valid" && (nonCanonical || zeroShared) {
					t.Fatalf("%s: a valid case this wrapper would refuse", tc.Comment)
				}
				priv, err := NewPrivateKey(tc.Private)
				if err != nil {
					t.Fatalf("%s: NewPrivateKey: %v", tc.Comment, err)
				}
				pub, err := NewPublicKey(tc.Public)
				if nonCanonical {
					if !errors.Is(err, ErrNonCanonicalKey) {
						t.Fatalf("%s: NewPublicKey = %v, want ErrNonCanonicalKey", tc.Comment, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s: NewPublicKey: %v", tc.Comment, err)
				}
				got, err := priv.dh(pub)
				switch {
				case zeroShared || tc.Result == "invalid":
					if !errors.Is(err, ErrLowOrderPublicKey) {
						t.Fatalf("%s: dh = %x, %v; want ErrLowOrderPublicKey", tc.Comment, got, err)
					}
				case err != nil:
					t.Fatalf("%s: dh: %v", tc.Comment, err)
				case !bytes.Equal(got[:], tc.Shared):
					t.Fatalf("%s: dh = %x, want %x", tc.Comment, got, tc.Shared)
				}
			})
		}
	}
	if count < 500 {
		t.Fatalf("ran %d X25519 cases, the file has more than 500", count)
	}
}

// TestWycheproofHKDF runs hkdfSHA256, which KDF_RK and the X3DH KDF use,
// over every Wycheproof HKDF-SHA256 case.
func TestWycheproofHKDF(t *testing.T) {
	f := loadWycheproof[struct {
		TCID   int      `json:"tcId"`
		IKM    hexBytes `json:"ikm"`
		Salt   hexBytes `json:"salt"`
		Info   hexBytes `json:"info"`
		Size   int      `json:"size"`
		OKM    hexBytes `json:"okm"`
		Result string   `json:"result"`
	}](t, "hkdf_sha256_test.json")
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			t.Run(fmt.Sprintf("tcId %d", tc.TCID), func(t *testing.T) {
				got, err := hkdfSHA256(tc.IKM, tc.Salt, string(tc.Info), tc.Size)
				if tc.Result == "invalid" {
					if err == nil {
						t.Fatalf("hkdfSHA256(size %d) succeeded, want an error", tc.Size)
					}
					return
				}
				if err != nil {
					t.Fatalf("hkdfSHA256: %v", err)
				}
				if !bytes.Equal(got, tc.OKM) {
					t.Fatalf("hkdfSHA256 = %x, want %x", got, tc.OKM)
				}
			})
		}
	}
}

// TestWycheproofHMAC runs hmacSHA256Pair, which KDF_CK uses, over every
// Wycheproof HMAC-SHA256 case, truncating to the group's tag size. Each
// case is run as both MACs of the pair, beside a second message.
func TestWycheproofHMAC(t *testing.T) {
	f := loadWycheproof[struct {
		TCID   int      `json:"tcId"`
		Key    hexBytes `json:"key"`
		Msg    hexBytes `json:"msg"`
		Tag    hexBytes `json:"tag"`
		Result string   `json:"result"`
	}](t, "hmac_sha256_test.json")
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			t.Run(fmt.Sprintf("tcId %d tag %d", tc.TCID, g.TagSize), func(t *testing.T) {
				other := append(bytes.Clone(tc.Msg), 0x55)
				first, _ := hmacSHA256Pair(tc.Key, tc.Msg, other)
				_, second := hmacSHA256Pair(tc.Key, other, tc.Msg)
				for _, mac := range [][32]byte{first, second} {
					got := mac[:g.TagSize/8]
					if match := hmac.Equal(got, tc.Tag); match != (tc.Result == "valid") {
						t.Fatalf("hmacSHA256Pair = %x, tag %x, result %s", got, tc.Tag, tc.Result)
					}
				}
			})
		}
	}
}

// TestHMACMatchesStdlib compares hmacSHA256Pair with crypto/hmac on random
// keys of every length around the block size and random message pairs.
func TestHMACMatchesStdlib(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for keyLen := 0; keyLen <= 130; keyLen++ {
		random := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		}
		key, a, b := random(keyLen), random(r.IntN(200)), random(r.IntN(200))
		want := func(msg []byte) []byte {
			h := hmac.New(sha256.New, key)
			h.Write(msg)
			return h.Sum(nil)
		}
		gotA, gotB := hmacSHA256Pair(key, a, b)
		if !bytes.Equal(gotA[:], want(a)) || !bytes.Equal(gotB[:], want(b)) {
			t.Fatalf("key length %d, messages of %d and %d bytes: got %x, %x", keyLen, len(a), len(b), gotA, gotB)
		}
	}
}

package identity

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// goldenTime is the creation time of the golden identity.
var goldenTime = time.Date(2026, 2, 1, 16, 25, 10, 555_000_000, time.UTC)

// seq returns n bytes counting up from start.
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// goldenIdentity is the identity of testdata/identity.golden.json: signing
// seed 00..1f, exchange key 20..3f.
func goldenIdentity(t testing.TB) *Identity {
	t.Helper()
	id, err := FromKeys(seq(0x00, 32), seq(0x20, 32), goldenTime)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

const goldenAMID = "2CiZ88hVF4JuQim8nnSuyeiV2HF2"

// vectorsPath leads from this package to the cross-SDK vectors beside the
// repository.
const vectorsPath = "../../../shared/interop/agentmesh-js-cross-sdk-vectors.json"

type crossSDKVectors struct {
	AMID struct {
		SigningPrivateKey  string `json:"signingPrivateKey"`
		SigningPublicKey   string `json:"signingPublicKey"`
		ExchangePrivateKey string `json:"exchangePrivateKey"`
		ExchangePublicKey  string `json:"exchangePublicKey"`
		ExpectedAMID       string `json:"expectedAmid"`
	} `json:"amid"`
	Signature struct {
		PrivateKey        string `json:"privateKey"`
		PublicKey         string `json:"publicKey"`
		Message           string `json:"message"`
		ExpectedSignature string `json:"expectedSignature"`
	} `json:"signature"`
}

func readVectors(t *testing.T) crossSDKVectors {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if errors.Is(err, fs.ErrNotExist) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cross-SDK vectors missing at %s", vectorsPath)
		}
		t.Skipf("cross-SDK vectors not found at %s", vectorsPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	var v crossSDKVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("parsing %s: %v", vectorsPath, err)
	}
	return v
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("decoding vector %q: %v", s, err)
	}
	return b
}

func TestCrossSDKVectors(t *testing.T) {
	v := readVectors(t)
	t.Run("amid", func(t *testing.T) {
		a := v.AMID
		id, err := FromKeys(b64(t, a.SigningPrivateKey), b64(t, a.ExchangePrivateKey), goldenTime)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(id.SigningPublicKey()); got != a.SigningPublicKey {
			t.Errorf("signing public key = %s, want %s", got, a.SigningPublicKey)
		}
		if got := base64.StdEncoding.EncodeToString(id.ExchangePublicKey().Bytes()); got != a.ExchangePublicKey {
			t.Errorf("exchange public key = %s, want %s", got, a.ExchangePublicKey)
		}
		if got := string(id.AMID()); got != a.ExpectedAMID {
			t.Errorf("AMID = %s, want %s", got, a.ExpectedAMID)
		}
	})
	t.Run("signature", func(t *testing.T) {
		s := v.Signature
		id, err := FromKeys(b64(t, s.PrivateKey), seq(0, 32), goldenTime)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(id.SigningPublicKey()); got != s.PublicKey {
			t.Errorf("public key = %s, want %s", got, s.PublicKey)
		}
		if got := base64.StdEncoding.EncodeToString(id.Sign([]byte(s.Message))); got != s.ExpectedSignature {
			t.Errorf("signature = %s, want %s", got, s.ExpectedSignature)
		}
	})
}

func TestGenerate(t *testing.T) {
	t.Run("deterministic", func(t *testing.T) {
		// The first 32 bytes are the seed, the next 32 the exchange key: the
		// golden identity.
		id, err := Generate(bytes.NewReader(seq(0, 64)), goldenTime)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := id.marshal(), goldenIdentity(t).marshal(); !bytes.Equal(got, want) {
			t.Errorf("Generate from fixed bytes =\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("short randomness", func(t *testing.T) {
		_, err := Generate(bytes.NewReader(seq(0, 63)), goldenTime)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Generate with 63 random bytes: %v, want %v", err, io.ErrUnexpectedEOF)
		}
	})
	t.Run("system randomness", func(t *testing.T) {
		a, err := Generate(nil, goldenTime)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Generate(nil, goldenTime)
		if err != nil {
			t.Fatal(err)
		}
		if a.AMID() == b.AMID() || a.ExchangeKey().Equal(b.ExchangeKey()) {
			t.Error("two generated identities share keys")
		}
	})
	t.Run("time precision", func(t *testing.T) {
		now := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("", 2*3600))
		id, err := Generate(bytes.NewReader(seq(0, 64)), now)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Date(2026, 3, 4, 3, 6, 7, 891_000_000, time.UTC)
		if got := id.CreatedAt(); !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want %v", got, want)
		}
		if got := id.DIDUpdated(); !got.Equal(want) {
			t.Errorf("DIDUpdated = %v, want %v", got, want)
		}
	})
}

func TestFromKeysRejects(t *testing.T) {
	tests := []struct {
		name     string
		seed     []byte
		exchange []byte
		created  time.Time
		want     string
	}{
		{"short seed", seq(0, 31), seq(0, 32), goldenTime, "signing seed is 31 bytes"},
		{"long seed", seq(0, 64), seq(0, 32), goldenTime, "signing seed is 64 bytes"},
		{"short exchange key", seq(0, 32), seq(0, 16), goldenTime, "exchange private key is 16 bytes"},
		{"year 10000", seq(0, 32), seq(0, 32), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "year 10000"},
		{"negative year", seq(0, 32), seq(0, 32), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), "year -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := FromKeys(tt.seed, tt.exchange, tt.created)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("FromKeys error = %v, want one containing %q", err, tt.want)
			}
			if id != nil {
				t.Error("FromKeys returned an identity with an error")
			}
		})
	}
}

func TestFromKeysCopiesInput(t *testing.T) {
	seed, xpriv := seq(0, 32), seq(0x20, 32)
	id, err := FromKeys(seed, xpriv, goldenTime)
	if err != nil {
		t.Fatal(err)
	}
	clear(seed)
	clear(xpriv)
	if got := string(id.AMID()); got != goldenAMID {
		t.Errorf("AMID after the caller cleared its buffers = %s, want %s", got, goldenAMID)
	}
	if got, want := id.marshal(), goldenIdentity(t).marshal(); !bytes.Equal(got, want) {
		t.Error("identity changed when the caller cleared its buffers")
	}
}

func TestAccessors(t *testing.T) {
	id := goldenIdentity(t)
	if got := string(id.AMID()); got != goldenAMID {
		t.Errorf("AMID = %s, want %s", got, goldenAMID)
	}
	if got, want := id.DID(), "did:agentmesh:"+goldenAMID; got != want {
		t.Errorf("DID = %s, want %s", got, want)
	}
	if got, want := id.Framework(), FrameworkName; got != want {
		t.Errorf("Framework = %q, want %q", got, want)
	}
	if got, want := id.FrameworkVersion(), FrameworkVersion; got != want {
		t.Errorf("FrameworkVersion = %q, want %q", got, want)
	}
	if got := id.DIDVersion(); got != 1 {
		t.Errorf("DIDVersion = %d, want 1", got)
	}
	msg := []byte("agentmesh")
	if !ed25519.Verify(id.SigningPublicKey(), msg, id.Sign(msg)) {
		t.Error("Sign produced a signature SigningPublicKey does not verify")
	}
	if !id.ExchangeKey().PublicKey().Equal(id.ExchangePublicKey()) {
		t.Error("ExchangeKey and ExchangePublicKey disagree")
	}
	pub := id.SigningPublicKey()
	clear(pub)
	if bytes.Equal(id.SigningPublicKey(), pub) {
		t.Error("SigningPublicKey returned the identity's own slice")
	}
}

func TestDeriveKey(t *testing.T) {
	id := goldenIdentity(t)
	// HKDF-SHA256(IKM = seed 00..1f, salt "agentmesh-at-rest-v1", info, L),
	// computed with an independent HKDF implementation.
	tests := []struct {
		info string
		n    int
		want string
	}{
		{"session", 32, "dee8a5f5168e12f2d5218d897354a24e66df3e9f57efcc5d29e23464a758cddd"},
		{"transcript", 32, "d3468b22d2e39018412ff7633d2455058fe6e2faf9909aed0461457f2d485f3d"},
		{"session", 16, "dee8a5f5168e12f2d5218d897354a24e"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.info, tt.n), func(t *testing.T) {
			got, err := id.DeriveKey(tt.info, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != tt.want {
				t.Errorf("DeriveKey = %x, want %s", got, tt.want)
			}
		})
	}

	bad := []struct {
		name string
		info string
		n    int
	}{
		{"empty info", "", 32},
		{"zero length", "session", 0},
		{"negative length", "session", -1},
		{"too long", "session", 255*32 + 1},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if k, err := id.DeriveKey(tt.info, tt.n); err == nil {
				t.Errorf("DeriveKey(%q, %d) = %x, want an error", tt.info, tt.n, k)
			}
		})
	}
}

func TestRotateExchangeKey(t *testing.T) {
	id := goldenIdentity(t)
	later := goldenTime.Add(30 * 24 * time.Hour)
	rotated, err := id.RotateExchangeKey(bytes.NewReader(seq(0x90, 32)), later)
	if err != nil {
		t.Fatal(err)
	}

	if got := rotated.AMID(); got != id.AMID() {
		t.Errorf("AMID after rotation = %s, want %s", got, id.AMID())
	}
	if !bytes.Equal(rotated.SigningPublicKey(), id.SigningPublicKey()) {
		t.Error("signing key changed on rotation")
	}
	// X25519 public key of 90..af, computed with an independent implementation.
	const wantExchange = "n9etbc/0KY3T+W1bGyr5EKBTWxSI1/j6uzSamCiAthU="
	if got := base64.StdEncoding.EncodeToString(rotated.ExchangePublicKey().Bytes()); got != wantExchange {
		t.Errorf("rotated exchange public key = %s, want %s", got, wantExchange)
	}
	if got := rotated.DIDVersion(); got != 2 {
		t.Errorf("DIDVersion after rotation = %d, want 2", got)
	}
	if got := rotated.DIDUpdated(); !got.Equal(later) {
		t.Errorf("DIDUpdated after rotation = %v, want %v", got, later)
	}
	if got := rotated.CreatedAt(); !got.Equal(goldenTime) {
		t.Errorf("CreatedAt after rotation = %v, want %v", got, goldenTime)
	}

	// The original is untouched.
	if got, want := id.marshal(), goldenIdentity(t).marshal(); !bytes.Equal(got, want) {
		t.Error("RotateExchangeKey modified its receiver")
	}

	// The rotation survives a save and load.
	path := DefaultPath(t.TempDir())
	if err := rotated.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, warnings, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings loading a rotated identity: %q", warnings)
	}
	if !loaded.ExchangeKey().Equal(rotated.ExchangeKey()) || loaded.DIDVersion() != 2 || !loaded.DIDUpdated().Equal(later) {
		t.Errorf("loaded rotated identity: version %d, updated %v; want the rotated key, 2, %v",
			loaded.DIDVersion(), loaded.DIDUpdated(), later)
	}

	t.Run("short randomness", func(t *testing.T) {
		if _, err := id.RotateExchangeKey(bytes.NewReader(seq(0, 31)), later); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("RotateExchangeKey with 31 random bytes: %v, want %v", err, io.ErrUnexpectedEOF)
		}
	})
	t.Run("version exhausted", func(t *testing.T) {
		last := *id
		last.didVersion = maxDIDVersion
		if _, err := last.RotateExchangeKey(bytes.NewReader(seq(0, 32)), later); err == nil {
			t.Error("rotation past the largest DID version succeeded")
		}
	})
}

func TestFormatRedacts(t *testing.T) {
	id, err := Generate(nil, goldenTime)
	if err != nil {
		t.Fatal(err)
	}
	seed := id.keys.seed()
	xpriv := id.ExchangeKey().Bytes()
	var secrets []string
	for _, k := range [][]byte{seed, xpriv, *id.keys.signing} {
		secrets = append(secrets,
			base64.StdEncoding.EncodeToString(k),
			base64.RawURLEncoding.EncodeToString(k),
			hex.EncodeToString(k),
			strings.ToUpper(hex.EncodeToString(k)),
			fmt.Sprint(k[:8])[1:len(fmt.Sprint(k[:8]))-1],                                     // "12 34 56 …"
			strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%#v", k[:4]), "[]byte{"), "}"), // "0x12, 0x34, …"
			string(k[:8]),
		)
	}

	type exported struct{ ID *Identity }
	type byValue struct{ ID Identity }
	type unexported struct{ id Identity }
	values := []struct {
		name string
		v    any
	}{
		{"pointer", id},
		{"value", *id},
		{"pointer field", exported{id}},
		{"value field", byValue{*id}},
		{"unexported value field", unexported{*id}},
		{"slice", []*Identity{id}},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"}
	for _, v := range values {
		for _, verb := range verbs {
			got := fmt.Sprintf(verb, v.v)
			for _, s := range secrets {
				if strings.Contains(got, s) {
					t.Errorf("%s printed with %s leaks key material: %s", v.name, verb, got)
					break
				}
			}
		}
	}
	if got, want := fmt.Sprintf("%v", id), "Identity("+string(id.AMID())+")"; got != want {
		t.Errorf("%%v = %q, want %q", got, want)
	}
	if got, want := fmt.Sprintf("%#v", *id), "Identity("+string(id.AMID())+")"; got != want {
		t.Errorf("%%#v = %q, want %q", got, want)
	}
	if got, err := json.Marshal(id); err != nil || string(got) != "{}" {
		t.Errorf("json.Marshal = %s, %v; want {}", got, err)
	}
}

func TestSignerSignsAsIdentity(t *testing.T) {
	id, err := Generate(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := id.Signer()
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || !pub.Equal(id.SigningPublicKey()) {
		t.Fatalf("Public() = %v, want the identity's signing key", s.Public())
	}
	msg := []byte("2026-11-28T03:00:00.000Z")
	sig, err := s.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		t.Fatal("signature does not verify")
	}
	if _, err := s.Sign(nil, msg, crypto.SHA256); err == nil {
		t.Fatal("signing a digest succeeded")
	}
}

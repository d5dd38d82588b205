package identity

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// Multibase forms of the golden identity's public keys, computed with an
// independent base58 implementation.
const (
	goldenSigningMultibase   = "z6MkehRgf7yJbgaGfYsdoAsKdBPE3dj2CYhowQdcjqSJgvVd"
	goldenAgreementMultibase = "z6LSfH2NctubtGHX8UYQYCH9SgSGusR9xQQQato6VRn2JqHV"
	rotatedAgreementMB       = "z6LSnS8jbPpAC3GXaSwrAvatYZHQ7jCzDsUvfkgbGC3TUrpt" // exchange key 90..af
)

func TestDIDDocumentJSON(t *testing.T) {
	did := "did:agentmesh:" + goldenAMID
	want := `{"@context":["https://www.w3.org/ns/did/v1","https://w3id.org/security/suites/ed25519-2020/v1","https://w3id.org/security/suites/x25519-2020/v1"],` +
		`"id":"` + did + `","controller":"` + did + `",` +
		`"verificationMethod":[` +
		`{"id":"` + did + `#signing-key","type":"Ed25519VerificationKey2020","controller":"` + did + `","publicKeyMultibase":"` + goldenSigningMultibase + `"},` +
		`{"id":"` + did + `#key-agreement-key","type":"X25519KeyAgreementKey2020","controller":"` + did + `","publicKeyMultibase":"` + goldenAgreementMultibase + `"}],` +
		`"authentication":["` + did + `#signing-key"],"assertionMethod":["` + did + `#signing-key"],"keyAgreement":["` + did + `#key-agreement-key"],` +
		`"service":[{"id":"` + did + `#relay","type":"AgentMeshRelay","serviceEndpoint":"wss://relay.example/v1/connect"}],` +
		`"created":"2026-02-01T16:25:10Z","updated":"2026-02-01T16:25:10Z","versionId":"1"}`

	got, err := json.Marshal(goldenIdentity(t).DIDDocument("wss://relay.example/v1/connect"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("DID document =\n%s\nwant\n%s", got, want)
	}
}

func TestDIDDocumentWithoutRelay(t *testing.T) {
	got, err := json.Marshal(goldenIdentity(t).DIDDocument(""))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte(`"service"`)) {
		t.Errorf("DID document without a relay has a service member: %s", got)
	}
}

func TestDIDDocumentAfterRotation(t *testing.T) {
	id := goldenIdentity(t)
	later := time.Date(2026, 3, 3, 9, 0, 0, 999_000_000, time.UTC)
	rotated, err := id.RotateExchangeKey(bytes.NewReader(seq(0x90, 32)), later)
	if err != nil {
		t.Fatal(err)
	}
	twice, err := rotated.RotateExchangeKey(bytes.NewReader(seq(0x10, 32)), later.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		id            *Identity
		wantAgreement string
		wantVersion   string
		wantUpdated   string
	}{
		{"original", id, goldenAgreementMultibase, "1", "2026-02-01T16:25:10Z"},
		{"rotated", rotated, rotatedAgreementMB, "2", "2026-03-03T09:00:00Z"},
		{"rotated twice", twice, "", "3", "2026-03-03T10:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.id.DIDDocument("")
			signing, agreement := doc.VerificationMethod[0], doc.VerificationMethod[1]
			if signing.PublicKeyMultibase != goldenSigningMultibase {
				t.Errorf("signing key = %s, want it unchanged: %s", signing.PublicKeyMultibase, goldenSigningMultibase)
			}
			if tt.wantAgreement != "" && agreement.PublicKeyMultibase != tt.wantAgreement {
				t.Errorf("key agreement key = %s, want %s", agreement.PublicKeyMultibase, tt.wantAgreement)
			}
			_, key, err := ParseMultibaseKey(agreement.PublicKeyMultibase)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(key, tt.id.ExchangePublicKey().Bytes()) {
				t.Error("key agreement key is not the identity's exchange key")
			}
			if doc.VersionID != tt.wantVersion {
				t.Errorf("versionId = %s, want %s", doc.VersionID, tt.wantVersion)
			}
			if doc.Updated != tt.wantUpdated {
				t.Errorf("updated = %s, want %s", doc.Updated, tt.wantUpdated)
			}
			if doc.Created != "2026-02-01T16:25:10Z" {
				t.Errorf("created = %s, want the creation time", doc.Created)
			}
		})
	}
}

func TestMultibaseKeyRoundTrip(t *testing.T) {
	for i := range 20 {
		id, err := Generate(nil, goldenTime)
		if err != nil {
			t.Fatal(err)
		}
		doc := id.DIDDocument("")
		tests := []struct {
			name      string
			value     string
			prefix    string
			wantCodec uint64
			wantKey   []byte
		}{
			{"signing", doc.VerificationMethod[0].PublicKeyMultibase, "z6Mk", MulticodecEd25519Pub, id.SigningPublicKey()},
			{"key agreement", doc.VerificationMethod[1].PublicKeyMultibase, "z6LS", MulticodecX25519Pub, id.ExchangePublicKey().Bytes()},
		}
		for _, tt := range tests {
			if !strings.HasPrefix(tt.value, tt.prefix) {
				t.Errorf("identity %d: %s key %s does not start with %s", i, tt.name, tt.value, tt.prefix)
			}
			codec, key, err := ParseMultibaseKey(tt.value)
			if err != nil {
				t.Fatalf("identity %d: ParseMultibaseKey(%s): %v", i, tt.value, err)
			}
			if codec != tt.wantCodec || !bytes.Equal(key, tt.wantKey) {
				t.Errorf("identity %d: %s key parses to codec 0x%x %x, want 0x%x %x", i, tt.name, codec, key, tt.wantCodec, tt.wantKey)
			}
		}
	}
}

func TestParseMultibaseKeyRejects(t *testing.T) {
	key := seq(1, 32)
	tests := []struct {
		name  string
		value string
		want  string
	}{
		{"empty", "", "does not start with \"z\""},
		{"only z", "z", "empty base58"},
		{"base16", "fed01" + strings.Repeat("00", 32), "does not start with \"z\""},
		{"registry form", "zed25519:" + goldenSigningPub, "invalid base58 character ':'"},
		{"bad base58", "z0OIl", "invalid base58 character '0'"},
		{"unknown codec", MultibaseKey(0x12, key), "unsupported multicodec 0x12"},
		{"short key", MultibaseKey(MulticodecEd25519Pub, key[:31]), "31 key bytes after multicodec 0xed"},
		{"long key", MultibaseKey(MulticodecX25519Pub, append(key, 0)), "33 key bytes after multicodec 0xec"},
		{"non-minimal varint", "z" + protocol.EncodeBase58(append([]byte{0xed, 0x81, 0x00}, key...)), "not minimally encoded"},
		{"truncated varint", "z" + protocol.EncodeBase58([]byte{0xed}), "malformed multicodec prefix"},
		{"too long", "z" + strings.Repeat("2", maxMultibaseLen), "characters, limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codec, got, err := ParseMultibaseKey(tt.value)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseMultibaseKey error = %v, want one containing %q", err, tt.want)
			}
			if codec != 0 || got != nil {
				t.Errorf("ParseMultibaseKey returned 0x%x %x with an error", codec, got)
			}
		})
	}
}

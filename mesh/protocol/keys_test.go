package protocol

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
)

func TestBase58(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, ""},
		{"one zero", []byte{0}, "1"},
		{"leading zeros", []byte{0, 0, 0, 1, 2, 3, 4, 5}, "1117bWpTW"},
		{"one", []byte{1}, "2"},
		{"57", []byte{57}, "z"},
		{"58", []byte{58}, "21"},
		{"all ones", bytes.Repeat([]byte{0xff}, 4), "7YXq9G"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EncodeBase58(tt.in); got != tt.want {
				t.Errorf("EncodeBase58(%x) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.want == "" {
				return
			}
			back, err := DecodeBase58(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, tt.in) {
				t.Errorf("DecodeBase58(%q) = %x, want %x", tt.want, back, tt.in)
			}
		})
	}
}

func TestDecodeBase58Rejects(t *testing.T) {
	for _, s := range []string{"", "0", "O", "I", "l", "abc+", "jZ6CK1dpcZD4oPYScUJvifP7BtJ\x00"} {
		if _, err := DecodeBase58(s); err == nil {
			t.Errorf("DecodeBase58(%q) succeeded, want error", s)
		}
	}
}

func TestBase58RoundTrip(t *testing.T) {
	for n := 0; n < 64; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + n)
		}
		if n > 2 {
			b[0], b[1] = 0, 0
		}
		back, err := DecodeBase58(EncodeBase58(b))
		if n == 0 {
			continue
		}
		if err != nil || !bytes.Equal(back, b) {
			t.Errorf("round trip of %x = %x, %v", b, back, err)
		}
	}
}

func TestParseAMID(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	good := DeriveAMID(pub)
	if _, err := ParseAMID(string(good)); err != nil {
		t.Fatalf("ParseAMID(%s): %v", good, err)
	}
	tests := []struct{ name, in, wantErr string }{
		{"empty", "", "empty"},
		{"bad alphabet", "0OIl" + string(good[4:]), "invalid base58"},
		{"too short", string(good[:10]), "bytes, want 20"},
		{"too long", strings.Repeat("z", 41), "too long"},
		{"21 bytes", EncodeBase58(make([]byte, 21)), "want 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAMID(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseAMID(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
	if good.Matches(pub[:31]) {
		t.Error("Matches accepted a short key")
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)).Public().(ed25519.PublicKey)
	if good.Matches(other) {
		t.Error("Matches accepted another agent's key")
	}
	if got, want := good.DID(), "did:agentmesh:"+string(good); got != want {
		t.Errorf("DID = %q, want %q", got, want)
	}
}

func TestKeyEncodings(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	raw := B64.EncodeToString(pub)
	enc := EncodeSigningPublicKey(pub)
	if enc != "ed25519:"+raw {
		t.Errorf("EncodeSigningPublicKey = %q, want prefixed %q", enc, "ed25519:"+raw)
	}
	for _, in := range []string{enc, raw, "x25519:" + raw} {
		got, err := ParseSigningPublicKey(in)
		if err != nil || !got.Equal(pub) {
			t.Errorf("ParseSigningPublicKey(%q) = %x, %v", in, got, err)
		}
	}
	bad := []struct{ name, in, wantErr string }{
		{"unpadded", strings.TrimRight(raw, "="), "padded base64"},
		{"url alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(B64.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))), "padded base64"},
		{"short", B64.EncodeToString(pub[:31]), "31 bytes, want 32"},
		{"unknown prefix kept", "rsa:" + raw, "padded base64"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSigningPublicKey(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSigningPublicKey(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), raw) {
				t.Errorf("error %q echoes the key", err)
			}
		})
	}
	xpub, err := ParseExchangePublicKey("x25519:" + B64.EncodeToString(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	if got := EncodeExchangePublicKey(xpub); !strings.HasPrefix(got, "x25519:") {
		t.Errorf("EncodeExchangePublicKey = %q, want x25519: prefix", got)
	}
	if _, err := ParseExchangePublicKey(B64.EncodeToString(make([]byte, 33))); err == nil {
		t.Error("ParseExchangePublicKey accepted 33 bytes")
	}
}

func BenchmarkDeriveAMID(b *testing.B) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		_ = DeriveAMID(pub)
	}
}

func TestDecodeB64Strict(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{"padded", "AAECAw==", 4, false},
		{"unpadded", "AAECAw", 4, true},
		{"URL alphabet", "-_-_", 0, true},
		{"line feed", "AAEC\nAw==", 4, true},
		{"carriage return", "AAEC\rAw==", 4, true},
		{"trailing line feed", "AAECAw==\n", 4, true},
		{"wrong length", "AAECAw==", 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeB64(tt.in, tt.want)
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodeB64(%q) = %x, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
		})
	}
}

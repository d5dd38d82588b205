package certs

import (
	"bytes"
	"encoding/pem"
	"testing"
)

func TestDecodeChain(t *testing.T) {
	p := newPKI(t, "pem", defaultTimes)
	chain := ders(p.orgLeaf, p.org.Cert)
	b64 := EncodeChain(chain)
	pemText := string(EncodePEM(chain))
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}))

	tests := []struct {
		name    string
		in      []string
		want    [][]byte
		wantErr bool
	}{
		{name: "base64 DER", in: b64, want: chain},
		{name: "one PEM text", in: []string{pemText}, want: chain},
		{name: "PEM per entry", in: []string{string(EncodePEM(chain[:1])), string(EncodePEM(chain[1:]))}, want: chain},
		{name: "mixed", in: []string{b64[0], string(EncodePEM(chain[1:]))}, want: chain},
		{name: "empty", in: nil, wantErr: true},
		{name: "empty entry", in: []string{""}, wantErr: true},
		{name: "unpadded base64", in: []string{"AAA"}, wantErr: true},
		{name: "not a certificate block", in: []string{keyPEM}, wantErr: true},
		{name: "trailing text after PEM", in: []string{pemText + "junk"}, wantErr: true},
		{name: "empty PEM block", in: []string{"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"}, wantErr: true},
		{name: "broken PEM", in: []string{"-----BEGIN CERTIFICATE-----\nAAAA"}, wantErr: true},
		{name: "too many", in: []string{pemText, pemText}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeChain(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodeChain error = %v, want error %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("DecodeChain returned %d certificates, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("certificate %d differs", i)
				}
			}
		})
	}
}

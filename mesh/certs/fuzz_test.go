package certs

import (
	"crypto/ed25519"
	"crypto/x509"
	"math/big"
	"testing"
	"time"
)

// fuzzPKI is built once: its root is the trust anchor of every input.
func fuzzPKI(f *testing.F) (*testPKI, *RevocationCache) {
	p := newPKI(f, "fuzz", defaultTimes)
	return p, crlCache(f, t0.Add(day), map[*Issuer][]int64{p.root: {11}, p.org: {31}})
}

// FuzzVerifyChain feeds arbitrary DER as the leaf and the intermediate. It
// checks that VerifyChain never panics, that every error is of exactly one
// kind, and that an accepted chain's AMID is its leaf's.
func FuzzVerifyChain(f *testing.F) {
	p, rc := fuzzPKI(f)
	f.Add(p.verifiedLeaf.Raw, []byte(nil))
	f.Add(p.orgLeaf.Raw, p.org.Cert.Raw)
	f.Add(p.org.Cert.Raw, p.root.Cert.Raw)
	f.Add([]byte{0x30, 0x00}, []byte{})
	roots := []*x509.Certificate{p.root.Cert}
	now := t0.Add(day)
	f.Fuzz(func(t *testing.T, leaf, inter []byte) {
		chain := [][]byte{leaf}
		if len(inter) > 0 {
			chain = append(chain, inter)
		}
		v, err := VerifyChain(chain, roots, now, rc)
		if err != nil {
			if n := countKinds(err); n != 1 {
				t.Fatalf("error %v matches %d kinds, want 1", err, n)
			}
			if RejectReason(err) == "" {
				t.Fatalf("error %v has no reject reason", err)
			}
			return
		}
		pub, ok := v.Leaf.PublicKey.(ed25519.PublicKey)
		if !ok || !v.AMID.Matches(pub) {
			t.Fatalf("accepted chain whose AMID %s is not its leaf's", v.AMID)
		}
	})
}

// FuzzParseCRL feeds arbitrary DER as a CRL of the fuzz organization. It
// checks that ParseCRL never panics and that an accepted list is complete
// and fresh.
func FuzzParseCRL(f *testing.F) {
	p, _ := fuzzPKI(f)
	now := t0.Add(day)
	good, err := IssueCRL(p.org, []Revoked{{Serial: big.NewInt(31), RevokedAt: now, Reason: 1}}, big.NewInt(3), now, now.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		crl, err := ParseCRL(der, p.org.Cert, now)
		if err != nil {
			return
		}
		if crl.Number == nil || crl.fresh(now) != nil {
			t.Fatalf("accepted a CRL without a number or not fresh")
		}
	})
}

// FuzzDecodeChain feeds arbitrary text as a two-entry KNOCK certificate
// chain. It checks that DecodeChain never panics and returns between one
// and MaxChainLength non-empty certificates or an error.
func FuzzDecodeChain(f *testing.F) {
	p, _ := fuzzPKI(f)
	b64 := EncodeChain(ders(p.orgLeaf, p.org.Cert))
	f.Add(b64[0], b64[1])
	f.Add(string(EncodePEM(ders(p.orgLeaf, p.org.Cert))), "")
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "AAAA")
	f.Fuzz(func(t *testing.T, a, b string) {
		in := []string{a}
		if b != "" {
			in = append(in, b)
		}
		out, err := DecodeChain(in)
		if err != nil {
			return
		}
		if len(out) == 0 || len(out) > MaxChainLength {
			t.Fatalf("DecodeChain returned %d certificates", len(out))
		}
		for i, der := range out {
			if len(der) == 0 {
				t.Fatalf("certificate %d is empty", i)
			}
		}
	})
}

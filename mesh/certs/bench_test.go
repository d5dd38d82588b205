package certs

import (
	"crypto/x509"
	"testing"
)

// BenchmarkVerifyChain verifies a root → organization → agent chain, the
// root included, with revocation checked against a CRL of each issuer.
func BenchmarkVerifyChain(b *testing.B) {
	p := newPKI(b, "bench", defaultTimes)
	now := t0.Add(day)
	rc := crlCache(b, now, map[*Issuer][]int64{p.root: {11}, p.org: {31}})
	chain := ders(p.orgLeaf, p.org.Cert, p.root.Cert)
	roots := []*x509.Certificate{p.root.Cert}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyChain(chain, roots, now, rc); err != nil {
			b.Fatal(err)
		}
	}
}

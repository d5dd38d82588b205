package certs

import (
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"
)

func TestParseCRL(t *testing.T) {
	p := newPKI(t, "crl", defaultTimes)
	at := t0.Add(day)
	entries := []Revoked{{Serial: big.NewInt(30), RevokedAt: at.Add(-time.Minute), Reason: 1}}
	good, err := IssueCRL(p.org, entries, big.NewInt(7), at, at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	long, err := IssueCRL(p.org, entries, big.NewInt(7), at, at.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-1] ^= 1

	tests := []struct {
		name      string
		der       []byte
		issuer    *x509.Certificate
		now       time.Time
		wantErr   bool
		wantStale bool
	}{
		{name: "fresh", der: good, issuer: p.org.Cert, now: at.Add(30 * time.Minute)},
		{name: "bad signature", der: tampered, issuer: p.org.Cert, now: at, wantErr: true},
		{name: "other issuer", der: good, issuer: p.root.Cert, now: at, wantErr: true},
		{name: "next update passed", der: good, issuer: p.org.Cert, now: at.Add(61 * time.Minute), wantErr: true, wantStale: true},
		{name: "older than an hour", der: long, issuer: p.org.Cert, now: at.Add(2 * time.Hour), wantErr: true, wantStale: true},
		{name: "from the future", der: good, issuer: p.org.Cert, now: at.Add(-10 * time.Minute), wantErr: true, wantStale: true},
		{name: "garbage", der: []byte{0x30, 0x03, 1, 2, 3}, issuer: p.org.Cert, now: at, wantErr: true},
		{name: "no issuer", der: good, issuer: nil, now: at, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crl, err := ParseCRL(tt.der, tt.issuer, tt.now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseCRL error = %v, want error %v", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrStaleCRL); got != tt.wantStale {
				t.Errorf("ParseCRL error %v: is ErrStaleCRL %v, want %v", err, got, tt.wantStale)
			}
			if err != nil {
				return
			}
			if crl.Number.Int64() != 7 {
				t.Errorf("Number = %v, want 7", crl.Number)
			}
			r, ok := crl.Lookup(big.NewInt(30))
			if !ok || r.Reason != 1 || !r.RevokedAt.Equal(at.Add(-time.Minute)) {
				t.Errorf("Lookup(30) = %+v, %v, want the entry", r, ok)
			}
			if _, ok := crl.Lookup(big.NewInt(31)); ok {
				t.Errorf("Lookup(31) found an entry, want none")
			}
		})
	}
}

func TestRevocationCache(t *testing.T) {
	p := newPKI(t, "cache", defaultTimes)
	at := t0.Add(day)
	parse := func(number int64, thisUpdate time.Time, serials ...int64) *CRL {
		t.Helper()
		var entries []Revoked
		for _, s := range serials {
			entries = append(entries, Revoked{Serial: big.NewInt(s), RevokedAt: thisUpdate})
		}
		der, err := IssueCRL(p.org, entries, big.NewInt(number), thisUpdate, thisUpdate.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		crl, err := ParseCRL(der, p.org.Cert, thisUpdate)
		if err != nil {
			t.Fatal(err)
		}
		return crl
	}
	newer := parse(2, at, 30)
	older := parse(1, at.Add(-30*time.Minute))

	tests := []struct {
		name    string
		add     []*CRL
		now     time.Time
		wantErr error
	}{
		{name: "empty cache", now: at, wantErr: ErrStaleCRL},
		{name: "revoked", add: []*CRL{newer}, now: at, wantErr: ErrCertificateRevoked},
		{name: "not revoked in older list", add: []*CRL{older}, now: at},
		{name: "older list does not replace newer", add: []*CRL{newer, older}, now: at, wantErr: ErrCertificateRevoked},
		{name: "newer list replaces older", add: []*CRL{older, newer}, now: at, wantErr: ErrCertificateRevoked},
		{name: "held list older than an hour", add: []*CRL{older}, now: at.Add(31 * time.Minute), wantErr: ErrStaleCRL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rc RevocationCache
			for _, c := range tt.add {
				if err := rc.Add(c); err != nil {
					t.Fatal(err)
				}
			}
			err := rc.CheckRevocation(p.orgLeaf, p.org.Cert, tt.now)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("CheckRevocation error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestIssueCRLRefuses(t *testing.T) {
	p := newPKI(t, "crl refuse", defaultTimes)
	leafIssuer := &Issuer{Cert: p.verifiedLeaf, Signer: p.agent}
	tests := []struct {
		name    string
		issuer  *Issuer
		entries []Revoked
		number  *big.Int
		next    time.Time
	}{
		{name: "leaf issuer", issuer: leafIssuer, number: big.NewInt(1), next: t0.Add(time.Hour)},
		{name: "no number", issuer: p.root, number: nil, next: t0.Add(time.Hour)},
		{name: "next before this", issuer: p.root, number: big.NewInt(1), next: t0},
		{name: "bad serial", issuer: p.root, entries: []Revoked{{Serial: big.NewInt(-1)}}, number: big.NewInt(1), next: t0.Add(time.Hour)},
		{name: "bad reason", issuer: p.root, entries: []Revoked{{Serial: big.NewInt(1), Reason: 7}}, number: big.NewInt(1), next: t0.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := IssueCRL(tt.issuer, tt.entries, tt.number, t0, tt.next); err == nil {
				t.Errorf("IssueCRL succeeded, want an error")
			}
		})
	}
}

func TestRevocationCacheConcurrent(t *testing.T) {
	p := newPKI(t, "concurrent", defaultTimes)
	at := t0.Add(day)
	var crls []*CRL
	for n := int64(1); n <= 4; n++ {
		der, err := IssueCRL(p.org, nil, big.NewInt(n), at, at.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCRL(der, p.org.Cert, at)
		if err != nil {
			t.Fatal(err)
		}
		crls = append(crls, c)
	}
	var rc RevocationCache
	done := make(chan error, len(crls))
	for _, c := range crls {
		go func() {
			if err := rc.Add(c); err != nil {
				done <- err
				return
			}
			err := rc.CheckRevocation(p.orgLeaf, p.org.Cert, at)
			done <- err
		}()
	}
	for range crls {
		if err := <-done; err != nil {
			t.Errorf("CheckRevocation: %v", err)
		}
	}
	rc.mu.RLock()
	got := rc.crls[string(p.org.Cert.RawSubjectPublicKeyInfo)].Number.Int64()
	rc.mu.RUnlock()
	if got != 4 {
		t.Errorf("held CRL number = %d, want 4", got)
	}
}

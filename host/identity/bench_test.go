package identity

import (
	"path/filepath"
	"testing"
	"time"
)

func BenchmarkGenerate(b *testing.B) {
	now := time.Now()
	for b.Loop() {
		if _, err := Generate(nil, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	path := filepath.Join(b.TempDir(), "identity.json")
	if err := goldenIdentity(b).Save(path); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	data := readTestdata(b, goldenFile)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

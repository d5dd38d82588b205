package session

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzLoadPolicy feeds arbitrary files to LoadPolicy: it must never panic,
// and a policy it returns must be valid and survive the encoding SavePolicy
// writes unchanged. (SavePolicy itself syncs to disk, too slow to fuzz;
// TestSavePolicyRoundTripAndMode covers it.)
func FuzzLoadPolicy(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"min_reputation": 0.5, "accept_tiers": ["verified"]}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "policy.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := LoadPolicy(path)
		if err != nil {
			if p != nil {
				t.Fatalf("LoadPolicy returned a policy with error %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("LoadPolicy returned an invalid policy: %v", err)
		}
		saved, err := encodePolicy(p)
		if err != nil {
			t.Fatalf("encoding a loaded policy: %v", err)
		}
		again, err := decodePolicy(saved)
		if err != nil {
			t.Fatalf("reloading a saved policy: %v", err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip changed the policy:\n%+v\n%+v", p, again)
		}
	})
}

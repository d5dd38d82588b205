package identity

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// FuzzLoadIdentity feeds arbitrary bytes to the identity file decoder. A
// failure must be a *protocol.DecodeError with no values; a success must
// save to a file that loads again, with the same AMID, into the same bytes.
func FuzzLoadIdentity(f *testing.F) {
	for _, name := range []string{goldenFile, tsFile, pyFile} {
		f.Add(readTestdata(f, name))
	}
	f.Add(editGolden(f, `"ed25519:`+goldenSeedB64, `"`+goldenSeedB64))
	f.Add(editGolden(f, `"x25519:`+goldenExchangePub, `"curve25519:`+goldenExchangePub))
	f.Add(editGolden(f, `"agentmesh-go"`, `"a\u2028\"\\\u0001é"`))
	f.Add(editGolden(f, `"did_version": 1`, `"did_version": 7, "extra": {"nested": [1, 2, null]}`))
	f.Add(editGolden(f, goldenAMID, tsAMID))
	f.Add([]byte(`{"amid": 1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		id, warnings, err := parse(data)
		if err != nil {
			var de *protocol.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *protocol.DecodeError", err, err)
			}
			if id != nil || warnings != nil {
				t.Fatal("parse returned values with an error")
			}
			return
		}
		saved := id.marshal()
		again, warnings, err := parse(saved)
		if err != nil {
			t.Fatalf("saved form does not load: %v\n%s", err, saved)
		}
		if len(warnings) != 0 {
			t.Errorf("saved form loads with warnings %q", warnings)
		}
		if again.AMID() != id.AMID() {
			t.Fatalf("AMID %s after a round trip, want %s", again.AMID(), id.AMID())
		}
		if resaved := again.marshal(); !bytes.Equal(resaved, saved) {
			t.Fatalf("saving is not stable:\n%s\nthen\n%s", saved, resaved)
		}
	})
}

// TestFuzzSeedsSaveAndLoad runs the fuzz property once through real files.
func TestFuzzSeedsSaveAndLoad(t *testing.T) {
	for _, name := range []string{goldenFile, tsFile, pyFile} {
		id, _, err := parse(readTestdata(t, name))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "identity.json")
		if err := id.Save(path); err != nil {
			t.Fatal(err)
		}
		loaded, _, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if loaded.AMID() != id.AMID() {
			t.Errorf("%s: AMID %s after Save and Load, want %s", name, loaded.AMID(), id.AMID())
		}
	}
}

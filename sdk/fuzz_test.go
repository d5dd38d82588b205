package sdk_test

import (
	"errors"
	"testing"

	"github.com/agentmesh/agentmesh-go/sdk"
)

// FuzzParseManifest checks that any input either parses into a manifest
// that keeps the promises of its type, or fails with a *ManifestError and
// no manifest; and that New panics exactly when ParseManifest fails.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(validManifest))
	f.Add([]byte(`{"name":"ab","version":"0.0.1","description":"d","protocol":"agentmesh/0.2","binary":"b","capabilities":[{"intent":"a/b"}],"permissions":{}}`))
	f.Add([]byte(`{"name":"ab","version":"1.0.0","description":"d","protocol":"agentmesh/0.2","binary":"b","capabilities":[{"intent":"a"}],"permissions":{"network":true},"config":{"n":{"type":"integer","default":1e2,"minimum":-1}}}`))
	f.Add([]byte(`{"config":{"x":{"type":"boolean","default":null}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := sdk.ParseManifest(data)
		if err != nil {
			var me *sdk.ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("error %T %v is not a *ManifestError", err, err)
			}
			if m != nil {
				t.Fatal("manifest returned with an error")
			}
			mustPanic(t, data)
			return
		}
		if m.Name == "" || m.Version == "" || m.Description == "" || m.Binary == "" || len(m.Capabilities) == 0 {
			t.Fatalf("accepted a manifest missing a required member: %+v", m)
		}
		for _, c := range m.Capabilities {
			if got, ok := m.Capability(c.Intent); !ok || got.Intent != c.Intent {
				t.Fatalf("capability %q not found by its intent", c.Intent)
			}
		}
		s := sdk.New(data) // must not panic
		for name, o := range m.Config {
			// Reading every option with its own type must not panic.
			switch o.Type {
			case sdk.OptionString:
				s.Config().String(name)
			case sdk.OptionInteger:
				s.Config().Int(name)
			case sdk.OptionNumber:
				s.Config().Float(name)
			case sdk.OptionBoolean:
				s.Config().Bool(name)
			default:
				t.Fatalf("option %q has type %q", name, o.Type)
			}
		}
	})
}

func mustPanic(t *testing.T, data []byte) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a manifest ParseManifest rejects")
		}
	}()
	sdk.New(data)
}

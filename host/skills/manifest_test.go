package skills

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

const validManifest = `{
  "name": "flight-search",
  "version": "1.2.0",
  "description": "Searches flights.",
  "protocol": "agentmesh/0.2",
  "binary": "bin/flight-search",
  "capabilities": [
    {
      "intent": "travel/flights/search",
      "schema": "agentmesh/travel/flight-search/v1",
      "response_schema": "agentmesh/travel/flight-search/v1",
      "description": "One-way and return flights.",
      "examples": [{"name": "lis-jfk", "request": {"origin": "LIS"}, "response": {"results": []}}]
    }
  ],
  "permissions": {"network": ["api.example.com:443"], "filesystem": [{"path": "~/data", "access": "read"}], "host_api": ["status"]},
  "config": {
    "max_results": {"type": "integer", "default": 10, "minimum": 1, "maximum": 50},
    "currency": {"type": "string", "default": "EUR", "enum": ["EUR", "USD"]},
    "verbose": {"type": "boolean"}
  },
  "author": "Ada",
  "homepage": "https://example.com/flight-search",
  "license": "MIT",
  "tags": ["travel"]
}`

// edit returns validManifest with one member replaced (or removed when
// value is empty), given as a top-level member name and its JSON.
func edit(t testing.TB, member, value string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(validManifest), &m); err != nil {
		t.Fatal(err)
	}
	if value == "" {
		delete(m, member)
	} else {
		m[member] = json.RawMessage(value)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest([]byte(validManifest))
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	if m.Name != "flight-search" || m.Version != "1.2.0" || m.Binary != "bin/flight-search" {
		t.Errorf("identity = %s %s %s", m.Name, m.Version, m.Binary)
	}
	c := m.Capability("travel/flights/search")
	if c == nil || c.Schema != "agentmesh/travel/flight-search/v1" || len(c.Examples) != 1 || c.Examples[0].Name != "lis-jfk" {
		t.Fatalf("capability = %+v", c)
	}
	if got := m.Permissions.Network; got.All || !slices.Equal(got.Hosts, []string{"api.example.com:443"}) {
		t.Errorf("network = %+v", got)
	}
	if got := m.Permissions.HostAPI; !slices.Equal(got, []string{"status"}) {
		t.Errorf("host_api = %v", got)
	}
	if opt := m.Config["max_results"]; opt.Type != OptionInteger || string(opt.Default) != "10" || *opt.Maximum != 50 {
		t.Errorf("max_results = %+v", opt)
	}
	if got := m.Schemas(); !slices.Equal(got, []string{"agentmesh/travel/flight-search/v1"}) {
		t.Errorf("Schemas() = %v", got)
	}
}

func TestParseManifestNetwork(t *testing.T) {
	tests := []struct {
		name    string
		network string
		want    NetworkPermission
	}{
		{"any host", `true`, NetworkPermission{All: true}},
		{"none", `false`, NetworkPermission{}},
		{"hosts", `["a.example", "*.b.example"]`, NetworkPermission{Hosts: []string{"a.example", "*.b.example"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest(edit(t, "permissions", `{"network": `+tt.network+`}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Permissions.Network; got.All != tt.want.All || !slices.Equal(got.Hosts, tt.want.Hosts) {
				t.Errorf("network = %+v, want %+v", got, tt.want)
			}
			out, err := json.Marshal(m.Permissions.Network)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out); strings.ReplaceAll(tt.network, " ", "") != got {
				t.Errorf("network marshals to %s, want %s", got, tt.network)
			}
		})
	}
}

func TestParseManifestErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		// want lists the paths that must be reported.
		want []string
	}{
		{"not JSON", []byte(`{"name":`), []string{""}},
		{"missing name", edit(t, "name", ""), []string{"/name"}},
		{"unknown member", edit(t, "extra", `1`), []string{"/extra"}},
		{"bad name", edit(t, "name", `"Flight Search"`), []string{"/name"}},
		{"bad version", edit(t, "version", `"1.2"`), []string{"/version"}},
		{"binary escapes", edit(t, "binary", `"../bin"`), []string{"/binary"}},
		{"unsupported protocol", edit(t, "protocol", `"agentmesh/0.3"`), []string{"/protocol"}},
		{"every error at once", edit(t, "capabilities", `[{"intent": "Bad Intent", "schema": "UPPER"}, {"x": 1}]`),
			[]string{"/capabilities/0/intent", "/capabilities/0/schema", "/capabilities/1/intent", "/capabilities/1/x"}},
		{"no capabilities", edit(t, "capabilities", `[]`), []string{"/capabilities"}},
		{"duplicate intent", edit(t, "capabilities", `[{"intent": "a/b"}, {"intent": "a/b"}]`), []string{"/capabilities/1/intent"}},
		{"unknown host service", edit(t, "permissions", `{"host_api": ["status", "sessions"]}`), []string{"/permissions/host_api/1"}},
		{"default outside enum", edit(t, "config", `{"c": {"type": "string", "default": "GBP", "enum": ["EUR"]}}`), []string{"/config/c/default"}},
		{"default below minimum", edit(t, "config", `{"n": {"type": "number", "default": 0.5, "minimum": 1}}`), []string{"/config/n/default"}},
		{"minimum above maximum", edit(t, "config", `{"n": {"type": "integer", "minimum": 5, "maximum": 1}}`), []string{"/config/n/minimum"}},
		{"default of the wrong type", edit(t, "config", `{"n": {"type": "integer", "default": "ten"}}`), []string{"/config/n/default"}},
		{"bad option name", edit(t, "config", `{"Max": {"type": "integer"}}`), []string{"/config/Max"}},
		{"too large", bytes.Repeat([]byte(" "), maxManifestSize+1), []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest(tt.data)
			if err == nil {
				t.Fatalf("ParseManifest = %+v, want an error", m)
			}
			var merr *ManifestError
			if !errors.As(err, &merr) {
				t.Fatalf("error = %v (%T), want a *ManifestError", err, err)
			}
			var got []string
			for _, p := range merr.Problems {
				got = append(got, p.Path)
			}
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("problems %q do not name %q", merr.Problems, w)
				}
			}
		})
	}
}

func TestResolveConfig(t *testing.T) {
	m, err := ParseManifest([]byte(validManifest))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		user    map[string]json.RawMessage
		want    string
		wantErr string
	}{
		{"defaults only", nil, `{"currency":"EUR","max_results":10}`, ""},
		{"user values win", map[string]json.RawMessage{"max_results": json.RawMessage("3"), "verbose": json.RawMessage("true")},
			`{"currency":"EUR","max_results":3,"verbose":true}`, ""},
		{"unknown option", map[string]json.RawMessage{"colour": json.RawMessage(`"red"`)}, "", `"colour"`},
		{"above maximum", map[string]json.RawMessage{"max_results": json.RawMessage("51")}, "", "above the maximum 50"},
		{"not an integer", map[string]json.RawMessage{"max_results": json.RawMessage("2.5")}, "", "not an integer"},
		{"outside enum", map[string]json.RawMessage{"currency": json.RawMessage(`"GBP"`)}, "", "enum"},
		{"wrong type", map[string]json.RawMessage{"verbose": json.RawMessage(`"yes"`)}, "", "boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveConfig(m, tt.user)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolveConfig error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("resolveConfig = %s, want %s", got, tt.want)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(validManifest))
	f.Add(edit(f, "capabilities", `[{"intent": "a/b"}, {"intent": "a/b"}]`))
	f.Add(edit(f, "config", `{"n": {"type": "integer", "default": 3, "enum": [1, 3]}}`))
	f.Add([]byte(`{"name":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			var merr *ManifestError
			if !errors.As(err, &merr) || len(merr.Problems) == 0 {
				t.Fatalf("error %v is not a *ManifestError with problems", err)
			}
			if m != nil {
				t.Fatal("ParseManifest returned a manifest with an error")
			}
			for _, p := range merr.Problems {
				if p.Path != "" && !strings.HasPrefix(p.Path, "/") {
					t.Errorf("problem path %q is not a JSON pointer", p.Path)
				}
			}
			return
		}
		// A manifest that parses encodes to one that parses to the same.
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		m2, err := ParseManifest(enc)
		if err != nil {
			t.Fatalf("re-encoded manifest %s does not parse: %v", enc, err)
		}
		enc2, err := json.Marshal(m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Errorf("round trip changed the manifest:\n%s\n%s", enc, enc2)
		}
	})
}

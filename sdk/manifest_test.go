package sdk_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/sdk"
)

const validManifest = `{
  "name": "weather",
  "version": "1.2.3-beta.1+build.5",
  "description": "Forecasts.",
  "protocol": "agentmesh/0.2",
  "binary": "bin/weather",
  "capabilities": [
    {
      "intent": "weather/forecast",
      "schema": "x-acme/forecast/v1",
      "response_schema": "x-acme/forecast-result/v1",
      "description": "Daily forecast.",
      "examples": [{"name": "paris", "request": {"city": "Paris"}, "response": {"city": "Paris"}}]
    },
    {"intent": "weather/alerts"}
  ],
  "permissions": {
    "network": ["api.example.com:443", "*.example.org"],
    "filesystem": [{"path": "~/.cache/weather", "access": "write"}],
    "host_api": ["status"]
  },
  "config": {
    "units": {"type": "string", "default": "metric", "enum": ["metric", "imperial"], "description": "Units."},
    "days": {"type": "integer", "default": 3, "minimum": 1, "maximum": 14},
    "threshold": {"type": "number", "default": 0.5},
    "alerts": {"type": "boolean", "default": true},
    "api_key": {"type": "string"}
  },
  "author": "Acme",
  "homepage": "https://example.com/weather",
  "license": "MIT",
  "tags": ["weather", "forecast"]
}`

func TestParseManifest(t *testing.T) {
	m, err := sdk.ParseManifest([]byte(validManifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "weather" || m.Version != "1.2.3-beta.1+build.5" || m.Binary != "bin/weather" {
		t.Errorf("got name %q version %q binary %q", m.Name, m.Version, m.Binary)
	}
	if got := len(m.Capabilities); got != 2 {
		t.Fatalf("got %d capabilities, want 2", got)
	}
	c, ok := m.Capability("weather/forecast")
	if !ok || c.Schema != "x-acme/forecast/v1" || c.ResponseSchema != "x-acme/forecast-result/v1" || len(c.Examples) != 1 {
		t.Errorf("got capability %+v", c)
	}
	if got := string(c.Examples[0].Request); got != `{"city": "Paris"}` {
		t.Errorf("got example request %s", got)
	}
	if _, ok := m.Capability("weather/nope"); ok {
		t.Error("found an undeclared capability")
	}
	p := m.Permissions
	if p.Network.Any || len(p.Network.Hosts) != 2 || len(p.Filesystem) != 1 || p.Filesystem[0].Access != "write" || len(p.HostAPI) != 1 {
		t.Errorf("got permissions %+v", p)
	}
	days := m.Config["days"]
	if days.Type != sdk.OptionInteger || string(days.Default) != "3" || days.Minimum == nil || *days.Minimum != 1 || days.Maximum == nil || *days.Maximum != 14 {
		t.Errorf("got option days %+v", days)
	}
	if len(m.Config) != 5 || m.Config["api_key"].Default != nil {
		t.Errorf("got config %+v", m.Config)
	}
}

func TestParseManifestNetworkBool(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		want bool
	}{{"true", true}, {"false", false}} {
		m, err := sdk.ParseManifest([]byte(mutate(t, validManifest, func(m map[string]any) {
			m["permissions"].(map[string]any)["network"] = json.RawMessage(tt.raw)
		})))
		if err != nil {
			t.Fatalf("network %s: %v", tt.raw, err)
		}
		if m.Permissions.Network.Any != tt.want || m.Permissions.Network.Hosts != nil {
			t.Errorf("network %s: got %+v", tt.raw, m.Permissions.Network)
		}
	}
}

// mutate applies f to the decoded manifest and re-encodes it.
func mutate(t *testing.T, manifest string, f func(map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(manifest), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseManifestErrors(t *testing.T) {
	set := func(path string, v any) func(map[string]any) {
		return func(m map[string]any) {
			keys := strings.Split(path, ".")
			var cur any = m
			for _, k := range keys[:len(keys)-1] {
				switch c := cur.(type) {
				case map[string]any:
					cur = c[k]
				case []any:
					cur = c[k[0]-'0']
				}
			}
			last := keys[len(keys)-1]
			if v == nil {
				delete(cur.(map[string]any), last)
				return
			}
			cur.(map[string]any)[last] = v
		}
	}
	tests := []struct {
		name      string
		manifest  string
		mutate    func(map[string]any)
		wantField string
	}{
		{name: "truncated JSON", manifest: `{"name":`, wantField: "name"},
		{name: "not an object", manifest: `[]`, wantField: ""},
		{name: "trailing data", manifest: validManifest + `{}`, wantField: ""},
		{name: "unknown member", mutate: set("colour", "red"), wantField: "colour"},
		{name: "missing name", mutate: set("name", nil), wantField: "name"},
		{name: "bad name", mutate: set("name", "Weather"), wantField: "name"},
		{name: "name of wrong type", mutate: set("name", 7), wantField: "name"},
		{name: "bad version", mutate: set("version", "1.2"), wantField: "version"},
		{name: "empty description", mutate: set("description", ""), wantField: "description"},
		{name: "bad protocol", mutate: set("protocol", "mesh/1"), wantField: "protocol"},
		{name: "binary escapes", mutate: set("binary", "../weather"), wantField: "binary"},
		{name: "binary dot element", mutate: set("binary", "bin/./weather"), wantField: "binary"},
		{name: "bad homepage", mutate: set("homepage", "example.com"), wantField: "homepage"},
		{name: "duplicate tag", mutate: set("tags", []string{"a", "a"}), wantField: "tags[1]"},
		{name: "no capabilities", mutate: set("capabilities", []any{}), wantField: "capabilities"},
		{name: "missing capabilities", mutate: set("capabilities", nil), wantField: "capabilities"},
		{name: "bad intent", mutate: set("capabilities.1.intent", "Weather Alerts"), wantField: "capabilities[1].intent"},
		{name: "duplicate intent", mutate: set("capabilities.1.intent", "weather/forecast"), wantField: "capabilities[1].intent"},
		{name: "capability unknown member", mutate: set("capabilities.1.handler", "x"), wantField: "capabilities[1].handler"},
		{name: "bad schema id", mutate: set("capabilities.0.schema", "forecast"), wantField: "capabilities[0].schema"},
		{name: "example without request", mutate: set("capabilities.0.examples", []any{map[string]any{"name": "x"}}), wantField: "capabilities[0].examples[0].request"},
		{name: "example request not object", mutate: set("capabilities.0.examples", []any{map[string]any{"request": 1}}), wantField: "capabilities[0].examples[0].request"},
		{name: "missing permissions", mutate: set("permissions", nil), wantField: "permissions"},
		{name: "network of wrong type", mutate: set("permissions.network", "yes"), wantField: "permissions.network"},
		{name: "bad network host", mutate: set("permissions.network", []string{"http://x"}), wantField: "permissions.network[0]"},
		{name: "bad filesystem access", mutate: set("permissions.filesystem", []any{map[string]any{"path": "/x", "access": "exec"}}), wantField: "permissions.filesystem[0].access"},
		{name: "bad host_api", mutate: set("permissions.host_api", []string{"Status"}), wantField: "permissions.host_api[0]"},
		{name: "bad option name", mutate: set("config.Units", map[string]any{"type": "string"}), wantField: "config.Units"},
		{name: "bad option type", mutate: set("config.units.type", "text"), wantField: "config.units.type"},
		{name: "default of wrong type", mutate: set("config.days.default", "3"), wantField: "config.days.default"},
		{name: "default not an integer", mutate: set("config.days.default", 2.5), wantField: "config.days.default"},
		{name: "default out of bounds", mutate: set("config.days.default", 20), wantField: "config.days.default"},
		{name: "default not in enum", mutate: set("config.units.default", "kelvin"), wantField: "config.units.default"},
		{name: "enum of wrong type", mutate: set("config.units.enum", []any{"metric", 1}), wantField: "config.units.enum[1]"},
		{name: "bounds on a string", mutate: set("config.units.minimum", 1), wantField: "config.units.minimum"},
		{name: "minimum above maximum", mutate: set("config.days.minimum", 20), wantField: "config.days.minimum"},
		{name: "boolean null default", mutate: set("config.alerts.default", json.RawMessage("null")), wantField: "config.alerts.default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			manifest := tt.manifest
			if tt.mutate != nil {
				manifest = mutate(t, validManifest, tt.mutate)
			}
			m, err := sdk.ParseManifest([]byte(manifest))
			if err == nil {
				t.Fatalf("got manifest %+v, want an error", m)
			}
			if m != nil {
				t.Errorf("got a manifest with the error %v", err)
			}
			var me *sdk.ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("got %T %v, want *sdk.ManifestError", err, err)
			}
			if me.Field != tt.wantField {
				t.Errorf("got field %q (%v), want %q", me.Field, err, tt.wantField)
			}
			if !strings.HasPrefix(err.Error(), "skill.json: ") {
				t.Errorf("error %q does not say it is about skill.json", err)
			}
		})
	}
}

func TestNewPanicsOnInvalidManifest(t *testing.T) {
	defer func() {
		v := recover()
		msg, _ := v.(string)
		if !strings.Contains(msg, "capabilities") {
			t.Fatalf("got panic %v, want one naming the capabilities field", v)
		}
	}()
	sdk.New([]byte(`{"name":"x1","version":"1.0.0","description":"d","protocol":"agentmesh/0.2","binary":"x","capabilities":[],"permissions":{}}`))
}

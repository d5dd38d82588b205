package sdk

import (
	"bytes"
	"strings"
	"testing"
)

const configManifest = `{
  "name": "conf", "version": "1.0.0", "description": "d", "protocol": "agentmesh/0.2", "binary": "conf",
  "capabilities": [{"intent": "conf/x"}], "permissions": {},
  "config": {
    "name": {"type": "string", "default": "a"},
    "count": {"type": "integer", "default": 2, "minimum": 0},
    "rate": {"type": "number", "maximum": 1},
    "on": {"type": "boolean", "default": true}
  }
}`

func TestConfigAccessors(t *testing.T) {
	var logs bytes.Buffer
	s := New([]byte(configManifest))
	s.logOut.set(&logs)
	c := s.Config()
	type values struct {
		name  string
		count int64
		rate  float64
		on    bool
		set   bool
	}
	read := func() values {
		return values{c.String("name"), c.Int("count"), c.Float("rate"), c.Bool("on"), c.IsSet("rate")}
	}
	if got, want := read(), (values{"a", 2, 0, true, false}); got != want {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}
	if err := c.set([]byte(`{"rate": 0.25, "on": false, "count": 7}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), (values{"a", 7, 0.25, false, true}); got != want {
		t.Errorf("host values: got %+v, want %+v", got, want)
	}
	if got := c.Float("count"); got != 7 {
		t.Errorf("Float of an integer option: got %v, want 7", got)
	}
	// A bad set changes nothing.
	if err := c.set([]byte(`{"rate": 0.5, "count": -1}`)); err == nil || !strings.Contains(err.Error(), "config.count") {
		t.Errorf("got %v, want an error naming config.count", err)
	}
	if got := c.Float("rate"); got != 0.25 {
		t.Errorf("after a bad set: got rate %v, want 0.25", got)
	}
	if err := c.set(nil); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), (values{"a", 2, 0, true, false}); got != want {
		t.Errorf("after an empty set: got %+v, want %+v", got, want)
	}

	logs.Reset()
	if got := c.String("count"); got != "" {
		t.Errorf("String of an integer option: got %q", got)
	}
	if got := c.Bool("missing"); got {
		t.Error("Bool of an undeclared option is true")
	}
	for _, want := range []string{"wrong type", "not declared"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line about %q in %s", want, logs.String())
		}
	}
}

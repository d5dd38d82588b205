package schema_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentmesh/agentmesh-go/host/schema"
)

// FuzzRegister registers arbitrary documents under an arbitrary id and
// under a fixed valid one. Register must never panic; when it succeeds the
// schema must be known, saved as given under the directory, and usable on
// any value; when it fails, nothing may appear outside the directory.
func FuzzRegister(f *testing.F) {
	f.Add("x-acme/thing/v2", []byte(`{"type":"object","properties":{"name":{"type":"string","maxLength":3}}}`))
	f.Add("agentmesh/travel/hotel-search/v1", []byte(`{"$schema":"http://json-schema.org/draft-07/schema#","required":["city"]}`))
	f.Add("x-acme/ref/v1", []byte(`{"allOf":[{"$ref":"https://schemas.agentmesh.invalid/agentmesh/travel/flight-search/v1"}]}`))
	f.Add("x-acme/cycle/v1", []byte(`{"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},"$ref":"#/definitions/a"}`))
	f.Add("x-acme/names/v1", []byte(`{"propertyNames":{"pattern":"^[a-z]+$"},"additionalProperties":false,"dependencies":{"a":["b"]}}`))
	f.Add("x-acme/thing/v1", []byte(`true`))
	f.Add("../x-acme/thing/v1", []byte(`{}`))
	f.Add("agentmesh/travel/flight-search/v1", []byte(`false`))

	root := f.TempDir()
	dir := filepath.Join(root, "schemas")
	c, err := schema.New(schema.Options{Dir: dir, Mode: schema.ModeStrict})
	if err != nil {
		f.Fatal(err)
	}
	var values []any
	for _, text := range []string{`{"a":[1,"x",null,{"b":true}],"name":"abcd","origin":"jfk"}`, `[]`, `"s"`, `12.5`, `null`, `{}`} {
		v, err := schema.DecodeJSON([]byte(text))
		if err != nil {
			f.Fatal(err)
		}
		values = append(values, v)
	}

	check := func(t *testing.T, id string, doc []byte) {
		err := c.Register(id, doc)
		if err != nil {
			entries, rerr := os.ReadDir(root)
			if rerr != nil {
				t.Fatal(rerr)
			}
			for _, e := range entries {
				if e.Name() != "schemas" {
					t.Fatalf("refused Register(%q) left %s in %s", id, e.Name(), root)
				}
			}
			return
		}
		if !c.Has(id) {
			t.Fatalf("Register(%q) succeeded but Has is false", id)
		}
		saved, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(id)+".json"))
		if err != nil {
			t.Fatalf("Register(%q) succeeded but: %v", id, err)
		}
		if !bytes.Equal(saved, doc) {
			t.Fatalf("Register(%q) saved %q, want %q", id, saved, doc)
		}
		for _, v := range values {
			res, err := c.Validate(ctx, id, v)
			if err != nil && !errors.As(err, new(*schema.ValidationError)) {
				t.Fatalf("Validate against %s: %v", id, err)
			}
			if res.Skipped() {
				t.Fatalf("Validate against the registered %s was skipped: %s", id, res.Skip)
			}
			if (err == nil) != res.Valid || (err == nil) != (len(res.Errors) == 0) {
				t.Fatalf("Validate against %s = %+v, %v: inconsistent", id, res, err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, id string, doc []byte) {
		const fixed = "x-fuzz/doc/v1"
		check(t, fixed, doc)
		if id != fixed {
			check(t, id, doc)
		}
	})
}

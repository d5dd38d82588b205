package skilltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk"
)

// ReplayExamples runs every example of the skill's manifest (as Describe
// returns it) as a subtest named after the intent and the example's name
// (or index). Each must get a RESPONSE, not an ERROR; when the example
// has a "response", the results must contain it: objects must have every
// expected member with a matching value, arrays the expected elements at
// the same indexes, and numbers must be equal.
func ReplayExamples(t *testing.T, h *Harness) {
	t.Helper()
	d, err := h.Describe(t.Context())
	if err != nil {
		t.Fatalf("skilltest: %v", err)
	}
	m, err := sdk.ParseManifest(d.Manifest)
	if err != nil {
		t.Fatalf("skilltest: %v", err)
	}
	n := 0
	for _, c := range m.Capabilities {
		for i, ex := range c.Examples {
			n++
			name := ex.Name
			if name == "" {
				name = strconv.Itoa(i)
			}
			t.Run(c.Intent+"/"+name, func(t *testing.T) {
				res, err := h.Handle(t.Context(), c.Intent, json.RawMessage(ex.Request))
				if err != nil {
					t.Fatalf("handle: %v", err)
				}
				if res.Error != nil {
					t.Fatalf("got ERROR %s: %s, want a RESPONSE", res.Error.Code, res.Error.Message)
				}
				if st := res.Response.Status; st != protocol.ResponseSuccess && st != protocol.ResponsePartialSuccess {
					t.Errorf("got RESPONSE status %q, want success or partial_success", st)
				}
				if ex.Response == nil {
					return
				}
				if err := Contains(res.Response.Results, ex.Response); err != nil {
					t.Errorf("results %s\ndo not match the example's response: %v", res.Response.Results, err)
				}
			})
		}
	}
	if n == 0 {
		t.Logf("skilltest: skill %s has no examples to replay", m.Name)
	}
}

// Contains reports, as an error naming the first difference by its JSON
// path, whether the JSON value got contains want: objects must have every
// member of want with a value that contains want's, arrays must have
// want's elements at the same indexes, and other values must be equal
// (numbers as numbers).
func Contains(got, want []byte) error {
	var g, w any
	if err := decodeJSON(got, &g); err != nil {
		return fmt.Errorf("got: %w", err)
	}
	if err := decodeJSON(want, &w); err != nil {
		return fmt.Errorf("want: %w", err)
	}
	return contains("$", g, w)
}

func decodeJSON(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func contains(path string, got, want any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: got %s, want an object", path, kind(got))
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s.%s: missing", path, k)
			}
			if err := contains(path+"."+k, gv, wv); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Errorf("%s: got %s, want an array", path, kind(got))
		}
		if len(g) < len(w) {
			return fmt.Errorf("%s: got %d elements, want at least %d", path, len(g), len(w))
		}
		for i, wv := range w {
			if err := contains(fmt.Sprintf("%s[%d]", path, i), g[i], wv); err != nil {
				return err
			}
		}
		return nil
	case json.Number:
		g, ok := got.(json.Number)
		if !ok {
			return fmt.Errorf("%s: got %s, want the number %s", path, kind(got), w)
		}
		gf, gerr := g.Float64()
		wf, werr := w.Float64()
		if gerr != nil || werr != nil || gf != wf {
			return fmt.Errorf("%s: got %s, want %s", path, g, w)
		}
		return nil
	default:
		if got != want {
			return fmt.Errorf("%s: got %s, want %s", path, show(got), show(want))
		}
		return nil
	}
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/agentmesh/agentmesh-go/schemas"
)

const draft07 = "http://json-schema.org/draft-07/schema#"

var payloadTypes = []string{
	"request", "response", "status", "error", "close",
	"capability_request", "capability_response", "capability_update",
}

// wantIDs is every schema the package must ship.
func wantIDs() []string {
	ids := []string{
		schemas.FlightSearch, schemas.ProductSearch, schemas.SkillBid,
		schemas.Message, schemas.SkillManifest, schemas.AgentSkill,
	}
	for _, typ := range payloadTypes {
		ids = append(ids, schemas.Payload(typ))
	}
	slices.Sort(ids)
	return ids
}

// compileAll loads every schema of schemas.FS into one draft-07 compiler
// that asserts formats, each under its $id, and compiles each one by id.
func compileAll(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	for _, id := range schemas.IDs() {
		b, err := schemas.Open(id)
		if err != nil {
			t.Fatalf("Open(%q): %v", id, err)
		}
		var h header
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("decoding %s: %v", id, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("decoding %s: %v", id, err)
		}
		if err := c.AddResource(h.ID, doc); err != nil {
			t.Fatalf("AddResource(%q): %v", h.ID, err)
		}
	}
	compiled := make(map[string]*jsonschema.Schema)
	for _, id := range schemas.IDs() {
		sch, err := c.Compile(id)
		if err != nil {
			t.Fatalf("Compile(%q): %v", id, err)
		}
		compiled[id] = sch
	}
	return compiled
}

func TestIDs(t *testing.T) {
	got := schemas.IDs()
	if want := wantIDs(); !slices.Equal(got, want) {
		t.Errorf("IDs() = %q, want %q", got, want)
	}
	got[0] = "changed"
	if schemas.IDs()[0] == "changed" {
		t.Error("IDs() returns a slice shared between calls")
	}
}

func TestCompile(t *testing.T) {
	compiled := compileAll(t)
	if got, want := len(compiled), len(wantIDs()); got != want {
		t.Errorf("compiled %d schemas, want %d", got, want)
	}
}

// header holds the members every schema file must carry.
type header struct {
	Schema string `json:"$schema"`
	ID     string `json:"$id"`
	Title  string `json:"title"`
	Type   string `json:"type"`
}

func TestHeaders(t *testing.T) {
	for _, id := range schemas.IDs() {
		t.Run(id, func(t *testing.T) {
			b, err := schemas.Open(id)
			if err != nil {
				t.Fatal(err)
			}
			var h header
			if err := json.Unmarshal(b, &h); err != nil {
				t.Fatal(err)
			}
			if h.Schema != draft07 {
				t.Errorf("$schema = %q, want %q", h.Schema, draft07)
			}
			if h.ID != id {
				t.Errorf("$id = %q, want %q", h.ID, id)
			}
			if h.Title == "" {
				t.Error("title is empty")
			}
			if h.Type != "object" {
				t.Errorf("type = %q, want object", h.Type)
			}
		})
	}
}

// decode parses the document of id into generic JSON values.
func decode(t *testing.T, id string) map[string]any {
	t.Helper()
	b, err := schemas.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("decoding %s: %v", id, err)
	}
	return doc
}

// keywords records every keyword used in the schema v and its
// subschemas. Property names are not keywords.
func keywords(v any, seen map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			seen[k] = true
			if props, ok := e.(map[string]any); ok && k == "properties" {
				for _, sub := range props {
					keywords(sub, seen)
				}
				continue
			}
			keywords(e, seen)
		}
	case []any:
		for _, e := range v {
			keywords(e, seen)
		}
	}
}

// propertyNames returns the keys of the "properties" member of schema.
func propertyNames(schema map[string]any) []string {
	props, _ := schema["properties"].(map[string]any)
	var names []string
	for name := range props {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func TestStandardAsPublished(t *testing.T) {
	tests := []struct {
		id    string
		title string
		props []string
	}{
		{
			id:    schemas.FlightSearch,
			title: "Flight Search Request/Response",
			props: []string{"action", "origin", "destination", "departure_date", "return_date", "passengers", "cabin_class", "results"},
		},
		{
			id:    schemas.ProductSearch,
			title: "Product Search Request/Response",
			props: []string{"action", "query", "category", "min_price", "max_price", "currency", "results"},
		},
		{
			id:    schemas.SkillBid,
			title: "Skill Marketplace Bid",
			props: []string{"action", "task_id", "skill_required", "description", "budget", "deadline", "bid_amount", "estimated_completion", "bidder_reputation"},
		},
	}
	var ids []string
	for _, tt := range tests {
		ids = append(ids, tt.id)
		t.Run(tt.id, func(t *testing.T) {
			doc := decode(t, tt.id)
			if got := doc["title"]; got != tt.title {
				t.Errorf("title = %q, want %q", got, tt.title)
			}
			want := slices.Sorted(slices.Values(tt.props))
			if got := propertyNames(doc); !slices.Equal(got, want) {
				t.Errorf("properties = %q, want %q", got, want)
			}
			seen := make(map[string]bool)
			keywords(doc, seen)
			for _, kw := range []string{"required", "additionalProperties", "definitions", "$ref", "description"} {
				if seen[kw] {
					t.Errorf("uses %q, which the published schema does not", kw)
				}
			}
		})
	}
	if got := schemas.Standard(); !slices.Equal(got, ids) {
		t.Errorf("Standard() = %q, want %q", got, ids)
	}
}

func TestPayloadSchemas(t *testing.T) {
	for _, typ := range payloadTypes {
		t.Run(typ, func(t *testing.T) {
			doc := decode(t, schemas.Payload(typ))
			props, _ := doc["properties"].(map[string]any)
			typeProp, _ := props["type"].(map[string]any)
			if got := typeProp["const"]; got != typ {
				t.Errorf("properties.type.const = %v, want %q", got, typ)
			}
			if got := doc["additionalProperties"]; got != true {
				t.Errorf("additionalProperties = %v, want true", got)
			}
		})
	}
	if got := decode(t, schemas.Message)["additionalProperties"]; got != true {
		t.Errorf("message additionalProperties = %v, want true", got)
	}
}

func TestConfigShapeShared(t *testing.T) {
	manifest, _ := decode(t, schemas.SkillManifest)["definitions"].(map[string]any)
	agent, _ := decode(t, schemas.AgentSkill)["definitions"].(map[string]any)
	for _, def := range []string{"config", "option", "name", "version"} {
		if manifest[def] == nil {
			t.Errorf("%s has no definition %q", schemas.SkillManifest, def)
		}
		if !reflect.DeepEqual(manifest[def], agent[def]) {
			t.Errorf("definition %q differs between %s and %s", def, schemas.SkillManifest, schemas.AgentSkill)
		}
	}
}

// badExample is the file format of testdata/examples/<id>/bad/*.json: an
// instance the schema must reject, and where.
type badExample struct {
	// At is the JSON pointer of the rejected value.
	At string `json:"at"`
	// Keyword is the failing keyword, as keyword() names it.
	Keyword string `json:"keyword"`
	// Mentions, if set, must appear in the message of that failure.
	Mentions string          `json:"mentions"`
	Instance json.RawMessage `json:"instance"`
}

// pointer formats an instance location as a JSON pointer (RFC 6901).
func pointer(tokens []string) string {
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteByte('/')
		tok = strings.ReplaceAll(tok, "~", "~0")
		b.WriteString(strings.ReplaceAll(tok, "/", "~1"))
	}
	return b.String()
}

// keyword names the keyword that failed in a leaf error: the last element
// of its keyword path, or "not" and "false" for the kinds that have none.
func keyword(e *jsonschema.ValidationError) string {
	switch e.ErrorKind.(type) {
	case *kind.Not:
		return "not"
	case *kind.FalseSchema:
		return "false"
	}
	kw := e.ErrorKind.KeywordPath()
	if len(kw) == 0 {
		return ""
	}
	return kw[len(kw)-1]
}

// leaves returns the innermost causes of a validation error.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

func describe(ls []*jsonschema.ValidationError) string {
	var lines []string
	for _, l := range ls {
		lines = append(lines, l.Error()+" (keyword "+keyword(l)+")")
	}
	return strings.Join(lines, "\n")
}

func readInstance(t *testing.T, b []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func exampleFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestExamples(t *testing.T) {
	compiled := compileAll(t)
	const root = "testdata/examples"
	for _, id := range schemas.IDs() {
		t.Run(id, func(t *testing.T) {
			sch := compiled[id]
			dir := filepath.Join(root, filepath.FromSlash(id))
			good := exampleFiles(t, filepath.Join(dir, "good"))
			bad := exampleFiles(t, filepath.Join(dir, "bad"))
			if len(good) == 0 || len(bad) == 0 {
				t.Fatalf("%s needs good and bad examples, has %d and %d", dir, len(good), len(bad))
			}
			for _, file := range good {
				t.Run("good/"+filepath.Base(file), func(t *testing.T) {
					b, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					if err := sch.Validate(readInstance(t, b)); err != nil {
						t.Errorf("rejected: %v", err)
					}
				})
			}
			for _, file := range bad {
				t.Run("bad/"+filepath.Base(file), func(t *testing.T) {
					b, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					var ex badExample
					dec := json.NewDecoder(bytes.NewReader(b))
					dec.DisallowUnknownFields()
					if err := dec.Decode(&ex); err != nil {
						t.Fatalf("decoding example: %v", err)
					}
					if ex.Keyword == "" || ex.Instance == nil {
						t.Fatal("example lacks keyword or instance")
					}
					err = sch.Validate(readInstance(t, ex.Instance))
					if err == nil {
						t.Fatalf("accepted, want rejection at %q by %s", ex.At, ex.Keyword)
					}
					var ve *jsonschema.ValidationError
					if !errors.As(err, &ve) {
						t.Fatalf("error %T %v, want *jsonschema.ValidationError", err, err)
					}
					if want := "at '" + ex.At + "'"; !strings.Contains(err.Error(), want) {
						t.Errorf("error does not mention %s:\n%v", want, err)
					}
					ls := leaves(ve)
					found := slices.ContainsFunc(ls, func(l *jsonschema.ValidationError) bool {
						return pointer(l.InstanceLocation) == ex.At &&
							keyword(l) == ex.Keyword &&
							strings.Contains(l.Error(), ex.Mentions)
					})
					if !found {
						t.Errorf("no failure at %q by %s mentioning %q; got:\n%s", ex.At, ex.Keyword, ex.Mentions, describe(ls))
					}
				})
			}
		})
	}
}

func TestExampleDirsNameSchemas(t *testing.T) {
	const root = "testdata/examples"
	ids := schemas.IDs()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || filepath.Ext(p) != ".json" {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		kindDir := path.Dir(filepath.ToSlash(rel))
		id, kind := path.Split(kindDir)
		id = strings.TrimSuffix(id, "/")
		if (kind != "good" && kind != "bad") || !slices.Contains(ids, id) {
			t.Errorf("%s: not under <schema id>/good or <schema id>/bad", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFile(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want string
	}{
		{"standard", schemas.FlightSearch, "agentmesh/travel/flight-search/v1.json"},
		{"payload", schemas.Payload("capability_update"), "agentmesh/payload/capability_update/v1.json"},
		{"custom", "x-acme/invoice/v1", "x-acme/invoice/v1.json"},
		{"manifest alias", "skill-manifest", "agentmesh/skill-manifest/v1.json"},
		{"agent skill alias", "agent-skill", "agentmesh/agent-skill/v1.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := schemas.File(tt.id)
			if err != nil {
				t.Fatalf("File(%q): %v", tt.id, err)
			}
			if got != tt.want {
				t.Errorf("File(%q) = %q, want %q", tt.id, got, tt.want)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	manifest, err := schemas.Open(schemas.SkillManifest)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		id      string
		want    []byte // nil: only check that the document is JSON
		wantErr error
	}{
		{name: "standard", id: schemas.SkillBid},
		{name: "message", id: schemas.Message},
		{name: "manifest alias", id: "skill-manifest", want: manifest},
		{name: "unknown", id: "agentmesh/travel/hotel-search/v1", wantErr: fs.ErrNotExist},
		{name: "directory", id: "agentmesh/payload", wantErr: fs.ErrNotExist},
		{name: "file name", id: "agentmesh/message/v1.json", wantErr: fs.ErrNotExist},
		{name: "empty", id: "", wantErr: fs.ErrInvalid},
		{name: "dot", id: ".", wantErr: fs.ErrInvalid},
		{name: "absolute", id: "/agentmesh/message/v1", wantErr: fs.ErrInvalid},
		{name: "parent", id: "../schemas/agentmesh/message/v1", wantErr: fs.ErrInvalid},
		{name: "parent inside", id: "agentmesh/../agentmesh/message/v1", wantErr: fs.ErrInvalid},
		{name: "empty element", id: "agentmesh//message/v1", wantErr: fs.ErrInvalid},
		{name: "trailing slash", id: "agentmesh/message/v1/", wantErr: fs.ErrInvalid},
		{name: "backslash", id: `agentmesh\message\v1`, wantErr: fs.ErrInvalid},
		{name: "drive", id: "c:/agentmesh/message/v1", wantErr: fs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := schemas.Open(tt.id)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Open(%q) error = %v, want %v", tt.id, err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("Open(%q) returned a document with its error", tt.id)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.id, err)
			}
			if !json.Valid(got) {
				t.Errorf("Open(%q) is not JSON", tt.id)
			}
			if tt.want != nil && !bytes.Equal(got, tt.want) {
				t.Errorf("Open(%q) differs from the document it names", tt.id)
			}
		})
	}
}

func TestStandardFresh(t *testing.T) {
	got := schemas.Standard()
	got[0] = "changed"
	if schemas.Standard()[0] != schemas.FlightSearch {
		t.Error("Standard() returns a slice shared between calls")
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/schemas"
	"github.com/agentmesh/agentmesh-go/sdk"
	"github.com/agentmesh/agentmesh-go/sdk/skilltest"
)

func TestMain(m *testing.M) { skilltest.Main(m) }

// compileSchema compiles the schema id of package schemas, asserting
// formats such as date and date-time.
func compileSchema(t *testing.T, id string) *jsonschema.Schema {
	t.Helper()
	b, err := schemas.Open(id)
	if err != nil {
		t.Fatalf("schemas.Open(%q): %v", id, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("schema %s: %v", id, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(id, doc); err != nil {
		t.Fatalf("AddResource(%q): %v", id, err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatalf("Compile(%q): %v", id, err)
	}
	return sch
}

// validate checks the JSON document b against sch.
func validate(t *testing.T, sch *jsonschema.Schema, what string, b []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not JSON: %v", what, err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("%s does not satisfy its schema: %v", what, err)
	}
}

func TestManifest(t *testing.T) {
	validate(t, compileSchema(t, schemas.SkillManifest), "skill.json", manifest)

	m, err := sdk.ParseManifest(manifest)
	if err != nil {
		t.Fatalf("ParseManifest: %v", err)
	}
	if m.Name != "product-search" || m.Version != "0.2.0" || m.Protocol != "agentmesh/0.2" || m.Binary != "product-search" {
		t.Errorf("manifest names %s %s %s %s", m.Name, m.Version, m.Protocol, m.Binary)
	}
	if m.Permissions.Network.Any || len(m.Permissions.Network.Hosts) > 0 || len(m.Permissions.Filesystem) > 0 || len(m.Permissions.HostAPI) > 0 {
		t.Errorf("permissions = %+v, want none", m.Permissions)
	}
	c, ok := m.Capability(intent)
	if !ok || len(m.Capabilities) != 1 {
		t.Fatalf("capabilities = %+v, want %s only", m.Capabilities, intent)
	}
	if c.Schema != schemas.ProductSearch || c.ResponseSchema != schemas.ProductSearch {
		t.Errorf("schema %q, response_schema %q; want %s for both", c.Schema, c.ResponseSchema, schemas.ProductSearch)
	}
	if n := len(c.Examples); n < 2 || n > 4 {
		t.Errorf("%d examples, want 2 to 4", n)
	}
	// Examples are valid requests, so that a host in strict mode lets them
	// through, and their responses are valid results.
	sch := compileSchema(t, schemas.ProductSearch)
	for _, ex := range c.Examples {
		validate(t, sch, "example "+ex.Name+" request", ex.Request)
		if ex.Response != nil {
			validate(t, sch, "example "+ex.Name+" response", ex.Response)
		}
	}

	maxOpt := m.Config["max_results"]
	if maxOpt.Type != sdk.OptionInteger || string(maxOpt.Default) != "20" || maxOpt.Minimum == nil || *maxOpt.Minimum != 1 ||
		maxOpt.Maximum == nil || *maxOpt.Maximum != maxMaxResults {
		t.Errorf("max_results option = %+v", maxOpt)
	}
	// The currency option offers exactly the currencies of the catalogue.
	cat, err := embeddedCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	cur := m.Config["currency"]
	var enum []string
	for _, v := range cur.Enum {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			t.Fatalf("currency enum value %s: %v", v, err)
		}
		enum = append(enum, s)
	}
	slices.Sort(enum)
	if cur.Type != sdk.OptionString || string(cur.Default) != `"USD"` || !slices.Equal(enum, cat.currencyCodes()) {
		t.Errorf("currency option = %+v with enum %v; want default USD and enum %v", cur, enum, cat.currencyCodes())
	}
}

func TestClampMaxResults(t *testing.T) {
	tests := []struct {
		in   int64
		want int
	}{{-1, 20}, {0, 20}, {1, 1}, {42, 42}, {100, 100}, {101, 100}}
	for _, tt := range tests {
		if got := clampMaxResults(tt.in); got != tt.want {
			t.Errorf("clampMaxResults(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestExamplesInProcess(t *testing.T) {
	skilltest.ReplayExamples(t, skilltest.Run(t, newSkill()))
}

// checkResult checks the outcome of a REQUEST through a harness.
func checkResult(t *testing.T, res *skilltest.Result, wantCode protocol.ErrorCode, wantField string) {
	t.Helper()
	if wantCode != "" {
		if res.Error == nil {
			t.Fatalf("got RESPONSE %s, want ERROR %s", res.Response.Results, wantCode)
		}
		if res.Error.Code != wantCode {
			t.Errorf("ERROR %s %q, want %s", res.Error.Code, res.Error.Message, wantCode)
		}
		if wantField != "" {
			var d fieldDetails
			if err := json.Unmarshal(res.Error.Details, &d); err != nil || d.Field != wantField {
				t.Errorf("ERROR details %s, want field %q", res.Error.Details, wantField)
			}
		}
		return
	}
	if res.Error != nil {
		t.Fatalf("got ERROR %s %q, want a RESPONSE", res.Error.Code, res.Error.Message)
	}
	if res.Response.Status != protocol.ResponseSuccess || res.Response.Schema != schemas.ProductSearch {
		t.Errorf("RESPONSE status %q schema %q", res.Response.Status, res.Response.Schema)
	}
	validate(t, compileSchema(t, schemas.ProductSearch), "results", res.Response.Results)
	var fractions []float64
	for _, st := range res.Statuses {
		fractions = append(fractions, st.Progress)
	}
	if len(fractions) < 2 || fractions[0] != 0.1 || !slices.IsSorted(fractions) {
		t.Errorf("STATUS progress %v, want it to start at 0.1 and grow", fractions)
	}
}

func TestHandle(t *testing.T) {
	h := skilltest.Run(t, newSkill())
	tests := []struct {
		name      string
		params    any
		wantCode  protocol.ErrorCode
		wantField string
		want      string // a JSON subset of the results
	}{
		{"search", map[string]any{"query": "espresso"}, "", "",
			`{"total": 2, "results": [{"product_id": "hk-4001", "relevance": 1}, {"product_id": "hk-4002"}]}`},
		{"category", map[string]any{"category": "Books", "max_price": 15}, "", "",
			`{"category": "books", "total": 1, "results": [{"product_id": "bk-5010", "price": 14.99}]}`},
		{"no parameters", nil, "", "", `{"action": "search", "total": 120}`},
		{"details by query", map[string]any{"action": "details", "query": "bk-5002"}, "", "",
			`{"results": [{"product_id": "bk-5002", "stock": 18, "tags": ["programming", "golang", "paperback"]}]}`},
		{"purchase", map[string]any{"action": "purchase", "product_id": "el-1001"},
			protocol.CodeUnsupportedOperation, "action", ""},
		{"unknown category", map[string]any{"category": "garden"},
			protocol.CodeInvalidParameter, "category", ""},
		{"min above max", map[string]any{"min_price": 10, "max_price": 5},
			protocol.CodeInvalidParameter, "min_price", ""},
		{"unknown currency", map[string]any{"currency": "XAU"},
			protocol.CodeInvalidParameter, "currency", ""},
		{"unknown product", map[string]any{"action": "details", "product_id": "el-9999"},
			protocol.CodeNotFound, "product_id", ""},
		// The SDK rejects a value that does not decode.
		{"price as text", map[string]any{"max_price": "cheap"},
			protocol.CodeInvalidParameter, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := h.Handle(t.Context(), intent, tt.params)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			checkResult(t, res, tt.wantCode, tt.wantField)
			if tt.want != "" && res.Response != nil {
				if err := skilltest.Contains(res.Response.Results, []byte(tt.want)); err != nil {
					t.Errorf("results %s: %v", res.Response.Results, err)
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	h := skilltest.RunWithOptions(t, newSkill(), skilltest.Options{
		Config: map[string]any{"max_results": 2, "currency": "JPY"},
	})
	params := map[string]any{"category": "books"}
	res, err := h.Handle(t.Context(), intent, params)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	checkResult(t, res, "", "")
	// 14.99 × 150 = 2248.5, rounded to 2249 yen; 18.99 × 150 = 2848.5.
	want := `{"currency": "JPY", "total": 12, "results": [
		{"product_id": "bk-5010", "price": 2249, "currency": "JPY"},
		{"product_id": "bk-5008", "price": 2849, "currency": "JPY"}]}`
	if err := skilltest.Contains(res.Response.Results, []byte(want)); err != nil {
		t.Errorf("results %s: %v", res.Response.Results, err)
	}
	var got searchResponse
	if err := json.Unmarshal(res.Response.Results, &got); err != nil || len(got.Results) != 2 {
		t.Errorf("results %s: want 2 products (%v)", res.Response.Results, err)
	}

	// A request's own currency wins over the configured one.
	params["currency"] = "USD"
	res, err = h.Handle(t.Context(), intent, params)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if err := skilltest.Contains(res.Response.Results, []byte(`{"currency": "USD", "results": [{"price": 14.99}]}`)); err != nil {
		t.Errorf("results %s: %v", res.Response.Results, err)
	}
}

func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the skill binary")
	}
	h := skilltest.Start(t, skilltest.Build(t, "."))
	if h.PID() <= 0 {
		t.Errorf("PID = %d, want the plugin's process id", h.PID())
	}
	d, err := h.Describe(t.Context())
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if !bytes.Equal(d.Manifest, manifest) {
		t.Error("the binary describes another skill.json")
	}
	skilltest.ReplayExamples(t, h)

	res, err := h.Handle(t.Context(), intent, map[string]any{"action": "purchase"})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	checkResult(t, res, protocol.CodeUnsupportedOperation, "action")
}

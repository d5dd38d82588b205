package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/schemas"
	"github.com/agentmesh/agentmesh-go/sdk"
	"github.com/agentmesh/agentmesh-go/sdk/skilltest"
)

func TestMain(m *testing.M) { skilltest.Main(m) }

// fixedNow is the clock of the skills these tests serve in-process.
func fixedNow() time.Time { return time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC) }

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
	if m.Name != "flight-search" || m.Version != "0.2.0" || m.Protocol != "agentmesh/0.2" || m.Binary != "flight-search" {
		t.Errorf("manifest names %s %s %s %s", m.Name, m.Version, m.Protocol, m.Binary)
	}
	if m.Permissions.Network.Any || len(m.Permissions.Network.Hosts) > 0 || len(m.Permissions.Filesystem) > 0 || len(m.Permissions.HostAPI) > 0 {
		t.Errorf("permissions = %+v, want none", m.Permissions)
	}
	c, ok := m.Capability(intent)
	if !ok || len(m.Capabilities) != 1 {
		t.Fatalf("capabilities = %+v, want %s only", m.Capabilities, intent)
	}
	if c.Schema != schemas.FlightSearch || c.ResponseSchema != schemas.FlightSearch {
		t.Errorf("schema %q, response_schema %q; want %s for both", c.Schema, c.ResponseSchema, schemas.FlightSearch)
	}
	if n := len(c.Examples); n < 2 || n > 4 {
		t.Errorf("%d examples, want 2 to 4", n)
	}
	// Examples are valid requests, so that a host in strict mode lets them
	// through, and their responses are valid results.
	sch := compileSchema(t, schemas.FlightSearch)
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
	skilltest.ReplayExamples(t, skilltest.Run(t, newSkill(fixedNow)))
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
	if res.Response.Status != protocol.ResponseSuccess || res.Response.Schema != schemas.FlightSearch {
		t.Errorf("RESPONSE status %q schema %q", res.Response.Status, res.Response.Schema)
	}
	validate(t, compileSchema(t, schemas.FlightSearch), "results", res.Response.Results)
	var fractions []float64
	for _, st := range res.Statuses {
		fractions = append(fractions, st.Progress)
	}
	if want := []float64{0.1, 0.5, 0.9}; !slices.Equal(fractions, want) {
		t.Errorf("STATUS progress %v, want %v", fractions, want)
	}
}

func TestHandle(t *testing.T) {
	h := skilltest.Run(t, newSkill(fixedNow))
	tests := []struct {
		name      string
		params    any
		wantCode  protocol.ErrorCode
		wantField string
		want      string // a JSON subset of the results
	}{
		{"search", map[string]any{"origin": "LHR", "destination": "JFK", "departure_date": "2030-06-17"}, "", "",
			`{"currency": "USD", "results": [{"flight_number": "BA113", "price": 538}, {"flight_number": "DL4"}]}`},
		{"no route", map[string]any{"origin": "AKL", "destination": "CAI", "departure_date": "2030-06-17"}, "", "",
			`{"origin": "AKL", "destination": "CAI"}`},
		{"book", map[string]any{"action": "book", "origin": "LHR", "destination": "JFK", "departure_date": "2030-06-17"},
			protocol.CodeUnsupportedOperation, "action", ""},
		{"unknown airport", map[string]any{"origin": "QQQ", "destination": "JFK", "departure_date": "2030-06-17"},
			protocol.CodeInvalidParameter, "origin", ""},
		{"past", map[string]any{"origin": "LHR", "destination": "JFK", "departure_date": "2029-12-31"},
			protocol.CodeInvalidParameter, "departure_date", ""},
		{"missing date", map[string]any{"origin": "LHR", "destination": "JFK"},
			protocol.CodeMissingParameter, "departure_date", ""},
		// The SDK rejects a value that does not decode.
		{"passengers as text", map[string]any{"origin": "LHR", "destination": "JFK", "departure_date": "2030-06-17", "passengers": "two"},
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
				var got searchResponse
				if err := json.Unmarshal(res.Response.Results, &got); err != nil || got.Results == nil {
					t.Errorf("results %s have no results list (%v)", res.Response.Results, err)
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	h := skilltest.RunWithOptions(t, newSkill(fixedNow), skilltest.Options{
		Config: map[string]any{"max_results": 1, "currency": "GBP"},
	})
	params := map[string]any{"origin": "LHR", "destination": "JFK", "departure_date": "2030-06-17", "return_date": "2030-06-24"}
	res, err := h.Handle(t.Context(), intent, params)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	checkResult(t, res, "", "")
	// 538 × 0.79 = 425.02 and 521 × 0.79 = 411.59: one flight each way.
	want := `{"currency": "GBP", "results": [
		{"flight_number": "BA113", "price": 425.02, "currency": "GBP", "direction": "outbound"},
		{"flight_number": "DL1", "price": 411.59, "currency": "GBP", "direction": "return"}]}`
	if err := skilltest.Contains(res.Response.Results, []byte(want)); err != nil {
		t.Errorf("results %s: %v", res.Response.Results, err)
	}
	var got searchResponse
	if err := json.Unmarshal(res.Response.Results, &got); err != nil || len(got.Results) != 2 {
		t.Errorf("results %s: want 2 flights (%v)", res.Response.Results, err)
	}

	// A request's own currency wins over the configured one.
	params["currency"] = "USD"
	res, err = h.Handle(t.Context(), intent, params)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if err := skilltest.Contains(res.Response.Results, []byte(`{"currency": "USD", "results": [{"price": 538}]}`)); err != nil {
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

	res, err := h.Handle(t.Context(), intent, map[string]any{"action": "cancel"})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	checkResult(t, res, protocol.CodeUnsupportedOperation, "action")
}

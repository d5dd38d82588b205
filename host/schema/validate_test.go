package schema_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/schemas"
)

// badFlight fails flight-search twice: passengers below 1 and a lower-case
// origin.
const badFlight = `{"action":"search","origin":"jfk","destination":"LHR","passengers":0}`

var badFlightErrors = []schema.FieldError{
	{
		Path:            "/origin",
		Message:         `does not match pattern "^[A-Z]{3}$"`,
		Schema:          schemas.FlightSearch,
		KeywordLocation: "/properties/origin/pattern",
	},
	{
		Path:            "/passengers",
		Message:         "must be >= 1",
		Schema:          schemas.FlightSearch,
		KeywordLocation: "/properties/passengers/minimum",
	},
}

func TestStandardSchemasLoaded(t *testing.T) {
	c, _ := newCatalogue(t, "", schema.ModeStrict)
	for _, id := range schemas.IDs() {
		if !c.Has(id) {
			t.Errorf("Has(%q) = false, want true", id)
		}
	}
	if got, want := c.IDs(), schemas.IDs(); !slices.Equal(got, want) {
		t.Errorf("IDs() = %q, want %q", got, want)
	}
	for _, id := range []string{"agentmesh/travel/hotel-search/v1", "skill-manifest", "", "../schemas/agentmesh/message/v1"} {
		if c.Has(id) {
			t.Errorf("Has(%q) = true, want false", id)
		}
	}
}

func TestValidateModes(t *testing.T) {
	const good = `{"action":"search","origin":"JFK","destination":"LHR","departure_date":"2026-03-14","passengers":2,"cabin_class":"economy"}`
	tests := []struct {
		name       string
		mode       schema.Mode
		value      string
		wantValid  bool
		wantSkip   schema.SkipReason
		wantErrors []schema.FieldError
		wantErr    bool   // a *ValidationError
		wantLog    string // a line holding this, or no line at all if empty
	}{
		{name: "warning valid", mode: schema.ModeWarning, value: good, wantValid: true},
		{name: "warning invalid", mode: schema.ModeWarning, value: badFlight, wantErrors: badFlightErrors, wantLog: "[WARN]  payload does not match its schema; processing it anyway"},
		{name: "strict valid", mode: schema.ModeStrict, value: good, wantValid: true},
		{name: "strict invalid", mode: schema.ModeStrict, value: badFlight, wantErrors: badFlightErrors, wantErr: true, wantLog: "[INFO]  payload rejected"},
		{name: "silent valid", mode: schema.ModeSilent, value: good, wantSkip: schema.SkipSilent},
		{name: "silent invalid", mode: schema.ModeSilent, value: badFlight, wantSkip: schema.SkipSilent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, logs := newCatalogue(t, t.TempDir(), tt.mode)
			res, err := c.Validate(ctx, schemas.FlightSearch, decode(t, tt.value))
			var verr *schema.ValidationError
			if got := errors.As(err, &verr); got != tt.wantErr {
				t.Fatalf("Validate error = %v, want a *ValidationError: %v", err, tt.wantErr)
			}
			if !tt.wantErr && err != nil {
				t.Fatalf("Validate error = %v, want nil", err)
			}
			if res.Valid != tt.wantValid || res.Skip != tt.wantSkip || res.Schema != schemas.FlightSearch {
				t.Errorf("Result = {Schema %q Valid %v Skip %q}, want {Schema %q Valid %v Skip %q}",
					res.Schema, res.Valid, res.Skip, schemas.FlightSearch, tt.wantValid, tt.wantSkip)
			}
			if !reflect.DeepEqual(res.Errors, tt.wantErrors) {
				t.Errorf("Result.Errors = %#v, want %#v", res.Errors, tt.wantErrors)
			}
			if verr != nil && !reflect.DeepEqual(verr.Errors, tt.wantErrors) {
				t.Errorf("ValidationError.Errors = %#v, want %#v", verr.Errors, tt.wantErrors)
			}
			if tt.wantLog == "" {
				if got := logs.String(); got != "" {
					t.Errorf("logged %q, want nothing", got)
				}
				return
			}
			lines := logs.Lines(tt.wantLog, "schema="+schemas.FlightSearch, "/passengers: must be >= 1", "/origin: does not match pattern", "count=2")
			if len(lines) != 1 {
				t.Errorf("log = %q, want one line with %q, the schema and both errors", logs.String(), tt.wantLog)
			}
		})
	}
}

func TestValidationErrorPayload(t *testing.T) {
	c, _ := newCatalogue(t, "", schema.ModeStrict)
	_, err := c.Validate(ctx, schemas.FlightSearch, decode(t, badFlight))
	var verr *schema.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Validate error = %v, want a *ValidationError", err)
	}
	p := verr.Payload()
	if err := p.Validate(); err != nil {
		t.Errorf("Payload().Validate() = %v", err)
	}
	if p.Code != protocol.CodeSchemaValidationFailed {
		t.Errorf("Payload().Code = %q, want %q", p.Code, protocol.CodeSchemaValidationFailed)
	}
	if want := "payload does not match schema " + schemas.FlightSearch + ": 2 errors"; p.Message != want {
		t.Errorf("Payload().Message = %q, want %q", p.Message, want)
	}
	var d schema.Details
	if err := json.Unmarshal(p.Details, &d); err != nil {
		t.Fatalf("decoding details %s: %v", p.Details, err)
	}
	if want := (schema.Details{Schema: schemas.FlightSearch, Errors: badFlightErrors}); !reflect.DeepEqual(d, want) {
		t.Errorf("details = %#v, want %#v", d, want)
	}
	// The details are written as peers read them: member names as
	// documented, comparisons not HTML-escaped.
	for _, s := range []string{`"path":"/passengers"`, `"message":"must be >= 1"`, `"keyword_location":"/properties/passengers/minimum"`, `"schema":"` + schemas.FlightSearch + `"`} {
		if !strings.Contains(string(p.Details), s) {
			t.Errorf("details %s do not contain %s", p.Details, s)
		}
	}
	want := "schema: value does not match " + schemas.FlightSearch + `: /origin: does not match pattern "^[A-Z]{3}$"; /passengers: must be >= 1`
	if got := verr.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestValidationErrorTextIsBounded(t *testing.T) {
	var errs []schema.FieldError
	for range 25 {
		errs = append(errs, schema.FieldError{Path: "/x", Message: "is wrong"})
	}
	e := &schema.ValidationError{Schema: "x-a/b/v1", Errors: errs}
	if got := strings.Count(e.Error(), "is wrong"); got != 10 {
		t.Errorf("Error() spells out %d errors, want 10", got)
	}
	if !strings.HasSuffix(e.Error(), "; and 15 more") {
		t.Errorf("Error() = %q, want it to end with the number left out", e.Error())
	}
	var d schema.Details
	if err := json.Unmarshal(e.Payload().Details, &d); err != nil {
		t.Fatal(err)
	}
	if got := len(d.Errors); got != 25 {
		t.Errorf("Payload details hold %d errors, want all 25", got)
	}
}

// TestEveryErrorListed checks paths into arrays and nested objects, and
// errors of every kind the standard schemas can raise.
func TestEveryErrorListed(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		value  string
		want   []schema.FieldError
	}{
		{
			name:   "flight search request",
			schema: schemas.FlightSearch,
			value:  string(readTestdata(t, "flight-request-invalid.json")),
			want: []schema.FieldError{
				{Path: "/cabin_class", Message: `must be one of "economy", "business", "first"`, Schema: schemas.FlightSearch, KeywordLocation: "/properties/cabin_class/enum"},
				{Path: "/origin", Message: `does not match pattern "^[A-Z]{3}$"`, Schema: schemas.FlightSearch, KeywordLocation: "/properties/origin/pattern"},
				{Path: "/passengers", Message: "must be >= 1", Schema: schemas.FlightSearch, KeywordLocation: "/properties/passengers/minimum"},
				{Path: "/results/1/price", Message: "must be number, not string", Schema: schemas.FlightSearch, KeywordLocation: "/properties/results/items/properties/price/type"},
				{Path: "/return_date", Message: "is not a valid date", Schema: schemas.FlightSearch, KeywordLocation: "/properties/return_date/format"},
			},
		},
		{
			name:   "product search",
			schema: schemas.ProductSearch,
			value:  `{"action":"buy","min_price":-1,"max_price":-0.5,"currency":"usd","results":[{"in_stock":"yes"},{"name":7}]}`,
			want: []schema.FieldError{
				{Path: "/action", Message: `must be one of "search", "details", "purchase"`, Schema: schemas.ProductSearch, KeywordLocation: "/properties/action/enum"},
				{Path: "/currency", Message: `does not match pattern "^[A-Z]{3}$"`, Schema: schemas.ProductSearch, KeywordLocation: "/properties/currency/pattern"},
				{Path: "/max_price", Message: "must be >= 0", Schema: schemas.ProductSearch, KeywordLocation: "/properties/max_price/minimum"},
				{Path: "/min_price", Message: "must be >= 0", Schema: schemas.ProductSearch, KeywordLocation: "/properties/min_price/minimum"},
				{Path: "/results/0/in_stock", Message: "must be boolean, not string", Schema: schemas.ProductSearch, KeywordLocation: "/properties/results/items/properties/in_stock/type"},
				{Path: "/results/1/name", Message: "must be string, not number", Schema: schemas.ProductSearch, KeywordLocation: "/properties/results/items/properties/name/type"},
			},
		},
		{
			name:   "skill bid",
			schema: schemas.SkillBid,
			value:  `{"budget":{"amount":-3},"deadline":"tomorrow","bidder_reputation":1.5}`,
			want: []schema.FieldError{
				{Path: "/bidder_reputation", Message: "must be <= 1", Schema: schemas.SkillBid, KeywordLocation: "/properties/bidder_reputation/maximum"},
				{Path: "/budget/amount", Message: "must be >= 0", Schema: schemas.SkillBid, KeywordLocation: "/properties/budget/properties/amount/minimum"},
				{Path: "/deadline", Message: "is not a valid date-time", Schema: schemas.SkillBid, KeywordLocation: "/properties/deadline/format"},
			},
		},
		{
			name:   "not an object",
			schema: schemas.FlightSearch,
			value:  `["JFK"]`,
			want: []schema.FieldError{
				{Path: "", Message: "must be object, not array", Schema: schemas.FlightSearch, KeywordLocation: "/type"},
			},
		},
	}
	c, _ := newCatalogue(t, "", schema.ModeStrict)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Validate(ctx, tt.schema, decode(t, tt.value))
			var verr *schema.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate error = %v, want a *ValidationError", err)
			}
			if !reflect.DeepEqual(verr.Errors, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", describe(verr.Errors), describe(tt.want))
			}
			if !reflect.DeepEqual(res.Errors, verr.Errors) {
				t.Errorf("Result.Errors = %v, want the ValidationError's %v", res.Errors, verr.Errors)
			}
		})
	}
}

func describe(errs []schema.FieldError) string {
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.String()+" ["+e.Schema+"#"+e.KeywordLocation+"]")
	}
	return strings.Join(lines, "\n")
}

// TestCustomSchemaErrors covers the keywords whose errors the library
// reports in a shape of its own: a "$ref" into a standard schema, a
// member name refused by "propertyNames" (reported at the object), and
// "required" and "additionalProperties" naming several members at once.
func TestCustomSchemaErrors(t *testing.T) {
	const id = "x-acme/trip/v1"
	doc := `{
		"$schema": "http://json-schema.org/draft-07/schema#",
		"type": "object",
		"properties": {
			"flight": {"$ref": "https://schemas.agentmesh.invalid/agentmesh/travel/flight-search/v1"},
			"nights": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 1},
			"rooms": {"type": "array", "maxItems": 2, "uniqueItems": true},
			"tier": {"const": "gold"},
			"code": {"not": {"type": "string"}},
			"never": false,
			"a b": {"maxLength": 2}
		},
		"propertyNames": {"pattern": "^[a-z ]+$"},
		"required": ["flight", "guest", "hotel"],
		"additionalProperties": false
	}`
	value := `{"flight":{"passengers":10},"nights":0,"rooms":[1,1,2],"tier":"silver","code":"x","never":1,"a b":"long","Extra/~":1}`
	want := []schema.FieldError{
		{Path: "/Extra~1~0", Message: "member is not allowed", Schema: id, KeywordLocation: "/additionalProperties"},
		{Path: "/Extra~1~0", Message: `member name does not match pattern "^[a-z ]+$"`, Schema: id, KeywordLocation: "/propertyNames/pattern"},
		{Path: "/a b", Message: "must be at most 2 characters long", Schema: id, KeywordLocation: "/properties/a b/maxLength"},
		{Path: "/code", Message: `must not match the "not" schema`, Schema: id, KeywordLocation: "/properties/code/not"},
		{Path: "/flight/passengers", Message: "must be <= 9", Schema: schemas.FlightSearch, KeywordLocation: "/properties/passengers/maximum"},
		{Path: "/guest", Message: "required member is missing", Schema: id, KeywordLocation: "/required"},
		{Path: "/hotel", Message: "required member is missing", Schema: id, KeywordLocation: "/required"},
		{Path: "/never", Message: "is not allowed here", Schema: id, KeywordLocation: "/properties/never"},
		{Path: "/nights", Message: "must be > 0", Schema: id, KeywordLocation: "/properties/nights/exclusiveMinimum"},
		{Path: "/rooms", Message: "must have at most 2 items", Schema: id, KeywordLocation: "/properties/rooms/maxItems"},
		{Path: "/rooms", Message: "items 0 and 1 are equal; items must be unique", Schema: id, KeywordLocation: "/properties/rooms/uniqueItems"},
		{Path: "/tier", Message: `must be "gold"`, Schema: id, KeywordLocation: "/properties/tier/const"},
	}
	c, _ := newCatalogue(t, t.TempDir(), schema.ModeStrict)
	if err := c.Register(id, []byte(doc)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	_, err := c.Validate(ctx, id, decode(t, value))
	var verr *schema.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Validate error = %v, want a *ValidationError", err)
	}
	if !reflect.DeepEqual(verr.Errors, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", describe(verr.Errors), describe(want))
	}
}

func TestNoSchemaNotValidated(t *testing.T) {
	for _, mode := range []schema.Mode{schema.ModeWarning, schema.ModeStrict, schema.ModeSilent} {
		t.Run(mode.String(), func(t *testing.T) {
			c, logs := newCatalogue(t, t.TempDir(), mode)
			want := schema.SkipNoSchema
			if mode == schema.ModeSilent {
				want = schema.SkipSilent
			}
			// Not even a value the validator cannot read is looked at.
			res, err := c.Validate(ctx, "", struct{}{})
			if err != nil {
				t.Fatalf("Validate error = %v, want nil", err)
			}
			if res.Skip != want || !res.Skipped() || res.Valid || res.Errors != nil {
				t.Errorf("Result = %+v, want skipped for %q", res, want)
			}
			res, err = c.ValidateJSON(ctx, "", []byte("not JSON"))
			if err != nil || res.Skip != want {
				t.Errorf("ValidateJSON = %+v, %v; want skipped for %q", res, err, want)
			}
			if got := logs.String(); got != "" {
				t.Errorf("logged %q, want nothing", got)
			}
		})
	}
}

func TestUnknownSchemaSkipped(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want string // in the log line
	}{
		{name: "standard-looking", id: "agentmesh/travel/hotel-search/v1", want: "schema=agentmesh/travel/hotel-search/v1"},
		{name: "custom", id: "x-acme/thing/v9", want: "schema=x-acme/thing/v9"},
		{name: "not an id", id: "../../etc/passwd", want: "schema=../../etc/passwd"},
		{name: "long", id: strings.Repeat("a", 1000), want: "schema=" + strings.Repeat("a", 400) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, logs := newCatalogue(t, t.TempDir(), schema.ModeStrict)
			res, err := c.Validate(ctx, tt.id, decode(t, badFlight))
			if err != nil {
				t.Fatalf("Validate error = %v, want nil", err)
			}
			if res.Skip != schema.SkipUnknownSchema || res.Valid || res.Errors != nil {
				t.Errorf("Result = %+v, want skipped as unknown", res)
			}
			lines := logs.Lines("[WARN]", "unknown schema; payload not validated", tt.want)
			if len(lines) != 1 {
				t.Errorf("log = %q, want one warning naming %q", logs.String(), tt.want)
			}
			if strings.Contains(logs.String(), strings.Repeat("a", 401)) {
				t.Error("log holds the whole of a long schema id")
			}
		})
	}
}

// TestValuesNotLogged checks that neither logs nor errors quote the values
// of a payload, only where they are and what is wrong.
func TestValuesNotLogged(t *testing.T) {
	const secret = "s3cr3t"
	value := `{"origin":"` + secret + `","cabin_class":"` + secret + `","departure_date":"` + secret + `","passengers":"` + secret + `","results":[{"price":"` + secret + `"}]}`
	for _, mode := range []schema.Mode{schema.ModeWarning, schema.ModeStrict} {
		t.Run(mode.String(), func(t *testing.T) {
			c, logs := newCatalogue(t, "", mode)
			res, err := c.Validate(ctx, schemas.FlightSearch, decode(t, value))
			if got := len(res.Errors); got != 5 {
				t.Fatalf("got %d errors, want 5: %v", got, res.Errors)
			}
			if !strings.Contains(logs.String(), "/results/0/price") {
				t.Errorf("log %q does not name the paths", logs.String())
			}
			texts := []string{logs.String(), describe(res.Errors)}
			if err != nil {
				var verr *schema.ValidationError
				if !errors.As(err, &verr) {
					t.Fatalf("Validate error = %v", err)
				}
				texts = append(texts, err.Error(), string(verr.Payload().Details), verr.Payload().Message)
			}
			for _, text := range texts {
				if strings.Contains(text, secret) {
					t.Errorf("%q quotes a payload value", text)
				}
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	tests := []struct {
		name      string
		mode      schema.Mode
		data      string
		wantValid bool
		wantSkip  schema.SkipReason
		wantErr   bool
	}{
		{name: "valid", mode: schema.ModeStrict, data: string(readTestdata(t, "flight-request.json")), wantValid: true},
		{name: "invalid strict", mode: schema.ModeStrict, data: badFlight, wantErr: true},
		{name: "invalid warning", mode: schema.ModeWarning, data: badFlight},
		{name: "not JSON", mode: schema.ModeWarning, data: `{"origin":`, wantErr: true},
		{name: "trailing data", mode: schema.ModeWarning, data: `{} {}`, wantErr: true},
		{name: "not JSON silent", mode: schema.ModeSilent, data: `{"origin":`, wantSkip: schema.SkipSilent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCatalogue(t, "", tt.mode)
			res, err := c.ValidateJSON(ctx, schemas.FlightSearch, []byte(tt.data))
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ValidateJSON error = %v, want error: %v", err, tt.wantErr)
			}
			if res.Valid != tt.wantValid || res.Skip != tt.wantSkip {
				t.Errorf("Result = %+v, want Valid %v Skip %q", res, tt.wantValid, tt.wantSkip)
			}
		})
	}
}

func TestValidateInvalidGoValue(t *testing.T) {
	c, _ := newCatalogue(t, "", schema.ModeWarning)
	_, err := c.Validate(ctx, schemas.FlightSearch, map[string]any{"results": []any{map[string]any{"price": struct{}{}}}})
	var ierr *schema.InvalidValueError
	if !errors.As(err, &ierr) {
		t.Fatalf("Validate error = %v, want an *InvalidValueError", err)
	}
	if ierr.Path != "/results/0/price" || ierr.Type != "struct {}" {
		t.Errorf("InvalidValueError = %+v, want path /results/0/price, type struct {}", ierr)
	}
}

func TestValidateCancelled(t *testing.T) {
	c, _ := newCatalogue(t, "", schema.ModeStrict)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Validate(cctx, schemas.FlightSearch, decode(t, badFlight)); !errors.Is(err, context.Canceled) {
		t.Errorf("Validate error = %v, want context.Canceled", err)
	}
	if _, err := c.ValidateJSON(cctx, schemas.FlightSearch, []byte(badFlight)); !errors.Is(err, context.Canceled) {
		t.Errorf("ValidateJSON error = %v, want context.Canceled", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	v, err := schema.DecodeJSON([]byte(`{"n":9007199254740993,"f":1.5,"a":[true,null,"s"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"n": json.Number("9007199254740993"),
		"f": json.Number("1.5"),
		"a": []any{true, nil, "s"},
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("DecodeJSON = %#v, want %#v", v, want)
	}
	for _, bad := range []string{``, `{`, `{} x`, `[1,]`, "\"\xff\"x"} {
		if _, err := schema.DecodeJSON([]byte(bad)); err == nil {
			t.Errorf("DecodeJSON(%q) succeeded", bad)
		}
	}
}

// TestNumbersKeepPrecision shows why values are decoded with json.Number:
// 2^53+1 is above a maximum of 2^53 only if it is not rounded to a float.
func TestNumbersKeepPrecision(t *testing.T) {
	c, _ := newCatalogue(t, t.TempDir(), schema.ModeStrict)
	if err := c.Register("x-acme/counter/v1", []byte(`{"type":"integer","maximum":9007199254740992}`)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Validate(ctx, "x-acme/counter/v1", decode(t, "9007199254740993"))
	var verr *schema.ValidationError
	if !errors.As(err, &verr) || verr.Errors[0].Message != "must be <= 9007199254740992" {
		t.Errorf("Validate error = %v, want the maximum exceeded", err)
	}
}

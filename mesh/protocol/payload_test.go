package protocol

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

var testPayloads = []struct {
	name    string
	payload Payload
	golden  string
}{
	{
		"request",
		&Request{
			Intent:         "travel/flights/search",
			Parameters:     json.RawMessage(`{"origin":"TLV","destination":"<LHR>&"}`),
			Priority:       PriorityUrgent,
			Budget:         &Budget{Amount: 500, Currency: "EUR", MaxCost: ptr(450.5)},
			ResponseFormat: &ResponseFormat{Type: "json", Schema: "agentmesh/travel/flight-search/v1"},
		},
		`{"type":"request","intent":"travel/flights/search","parameters":{"origin":"TLV","destination":"<LHR>&"},` +
			`"priority":"urgent","budget":{"amount":500,"currency":"EUR","max_cost":450.5},` +
			`"response_format":{"type":"json","schema":"agentmesh/travel/flight-search/v1"}}`,
	},
	{
		"minimal request",
		&Request{Intent: "x", Priority: PriorityNormal},
		`{"type":"request","intent":"x","priority":"normal"}`,
	},
	{
		"response",
		&Response{
			Status:           ResponsePartialSuccess,
			Results:          json.RawMessage(`[{"flight_number":"LY315","price":1e-7}]`),
			ProcessingTimeMS: 1234,
			CompletedAt:      time.Date(2026, 2, 1, 16, 25, 10, 555123000, time.UTC),
			Schema:           "agentmesh/travel/flight-search/v1",
		},
		`{"type":"response","status":"partial_success","results":[{"flight_number":"LY315","price":1e-7}],` +
			`"processing_time_ms":1234,"completed_at":"2026-02-01T16:25:10.555123+00:00","schema":"agentmesh/travel/flight-search/v1"}`,
	},
	{
		"pending response",
		&Response{Status: ResponsePending},
		`{"type":"response","status":"pending","processing_time_ms":0}`,
	},
	{
		"status",
		&Status{Progress: 0.25, Message: "searching", Phase: "query", EstimatedCompletionSeconds: ptr(1.5)},
		`{"type":"status","progress":0.25,"message":"searching","phase":"query","estimated_completion_seconds":1.5}`,
	},
	{
		"status complete",
		&Status{Progress: 1},
		`{"type":"status","progress":1}`,
	},
	{
		"error",
		&ErrorPayload{
			Code: CodeRateLimited, Message: "slow down", RetryAfterSeconds: ptr(30),
			FallbackAMID: amidC, Details: json.RawMessage(`{"limit":100}`),
		},
		`{"type":"error","code":"rate_limited","message":"slow down","retry_after_seconds":30,"fallback_amid":"` + amidC + `","details":{"limit":100}}`,
	},
	{
		"error with unknown code",
		&ErrorPayload{Code: "CAPABILITY_UNAVAILABLE", Message: "no"},
		`{"type":"error","code":"CAPABILITY_UNAVAILABLE","message":"no"}`,
	},
	{
		"close with score",
		&Close{Reason: CloseCompleted, Summary: "done", ReputationFeedback: &Feedback{Score: 0.9}, SessionID: "sess_1"},
		`{"type":"close","reason":"completed","summary":"done","reputation_feedback":0.9,"session_id":"sess_1"}`,
	},
	{
		"close with tags",
		&Close{Reason: "session_killed", ReputationFeedback: &Feedback{Score: 0, Tags: []string{"fast_response", "accurate"}}},
		`{"type":"close","reason":"session_killed","reputation_feedback":{"score":0,"tags":["fast_response","accurate"]}}`,
	},
	{
		"capability request",
		&CapabilityRequest{OfferedSchemas: []string{"agentmesh/commerce/product-search/v1"}, OfferedCapabilities: []string{"text", "json"}, ProtocolVersion: ProtocolVersion},
		`{"type":"capability_request","offered_schemas":["agentmesh/commerce/product-search/v1"],"offered_capabilities":["text","json"],"protocol_version":"agentmesh/0.2"}`,
	},
	{
		"empty capability request",
		&CapabilityRequest{},
		`{"type":"capability_request","offered_schemas":[],"offered_capabilities":[]}`,
	},
	{
		"capability response",
		&CapabilityResponse{AcceptedCapabilities: []string{"text"}, RejectedCapabilities: []string{"binary"}, ProtocolVersion: ProtocolVersion},
		`{"type":"capability_response","accepted_schemas":[],"accepted_capabilities":["text"],"rejected_schemas":[],"rejected_capabilities":["binary"],"protocol_version":"agentmesh/0.2"}`,
	},
	{
		"capability update",
		&CapabilityUpdate{AddedCapabilities: []string{"x"}, RemovedSchemas: []string{"y"}, Reason: "upgrade"},
		`{"type":"capability_update","added_capabilities":["x"],"removed_capabilities":[],"added_schemas":[],"removed_schemas":["y"],"reason":"upgrade"}`,
	},
	{
		"generic",
		&Generic{Type: "x-acme/bid", Raw: json.RawMessage(`{"type":"x-acme/bid","amount":3}`)},
		`{"type":"x-acme/bid","amount":3}`,
	},
}

func TestPayloadGolden(t *testing.T) {
	for _, tt := range testPayloads {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.payload.(json.Marshaler).MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.golden {
				t.Errorf("MarshalJSON =\n%s\nwant\n%s", got, tt.golden)
			}
		})
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, tt := range testPayloads {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.payload.(json.Marshaler).MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParsePayload(tt.payload.PayloadType(), data)
			if err != nil {
				t.Fatalf("ParsePayload(%s): %v", data, err)
			}
			if !reflect.DeepEqual(got, tt.payload) {
				t.Errorf("round trip = %#v, want %#v", got, tt.payload)
			}
		})
	}
}

func TestParsePayloadDefaults(t *testing.T) {
	tests := []struct {
		name string
		typ  PayloadType
		raw  string
		want Payload
	}{
		{
			"priority and currency default",
			PayloadRequest,
			`{"intent":"i","budget":{"amount":10}}`,
			&Request{Intent: "i", Priority: PriorityNormal, Budget: &Budget{Amount: 10, Currency: DefaultCurrency}},
		},
		{
			"null members are absent",
			PayloadRequest,
			`{"type":"request","intent":"i","parameters":null,"budget":null,"priority":"low"}`,
			&Request{Intent: "i", Priority: PriorityLow},
		},
		{
			"unknown members ignored",
			PayloadStatus,
			`{"progress":0,"status":"processing","content":{"x":1}}`,
			&Status{},
		},
		{
			"feedback object without tags",
			PayloadClose,
			`{"reason":"anything at all","reputation_feedback":{"score":0.5,"tags":[]}}`,
			&Close{Reason: "anything at all", ReputationFeedback: &Feedback{Score: 0.5}},
		},
		{
			"empty lists are nil",
			PayloadCapabilityResponse,
			`{"accepted_schemas":[],"accepted_capabilities":null}`,
			&CapabilityResponse{},
		},
		{
			"response timestamp in another zone",
			PayloadResponse,
			`{"status":"success","completed_at":"2026-02-01T18:25:10.5+02:00","results":null}`,
			&Response{Status: ResponseSuccess, CompletedAt: time.Date(2026, 2, 1, 16, 25, 10, 5e8, time.UTC)},
		},
		{
			"unknown type",
			"x-acme/bid",
			`{"amount":1}`,
			&Generic{Type: "x-acme/bid", Raw: json.RawMessage(`{"amount":1}`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePayload(tt.typ, json.RawMessage(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePayload = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParsePayloadRejects(t *testing.T) {
	tests := []struct {
		name    string
		typ     PayloadType
		raw     string
		field   string
		problem string
	}{
		{"null", PayloadStatus, `null`, "payload", "must be a JSON object, got null"},
		{"array", PayloadStatus, `[]`, "payload", "must be a JSON object, got JSON array"},
		{"array for unknown type", "x", `[1]`, "payload", "must be a JSON object"},
		{"malformed", PayloadStatus, `{"progress":}`, "payload", "malformed JSON"},
		{"type mismatch", PayloadStatus, `{"type":"response","progress":0}`, "payload.type", `"response" does not match the message type "status"`},
		{"type not a string", PayloadStatus, `{"type":1,"progress":0}`, "payload.type", "must be a string, got JSON number"},

		{"request missing intent", PayloadRequest, `{}`, "payload.intent", "missing"},
		{"request empty intent", PayloadRequest, `{"intent":""}`, "payload.intent", "empty"},
		{"request intent an object", PayloadRequest, `{"intent":{"category":"travel"}}`, "payload.intent", "must be a string, got JSON object"},
		{"request parameters an array", PayloadRequest, `{"intent":"i","parameters":[1]}`, "payload.parameters", "must be a JSON object"},
		{"request bad priority", PayloadRequest, `{"intent":"i","priority":"asap"}`, "payload.priority", `"asap" is not one of "low", "normal", "high" or "urgent"`},
		{"request budget missing amount", PayloadRequest, `{"intent":"i","budget":{"currency":"USD"}}`, "payload.budget.amount", "missing"},
		{"request budget negative", PayloadRequest, `{"intent":"i","budget":{"amount":-1}}`, "payload.budget.amount", "must be at least 0, got -1"},
		{"request budget overflow", PayloadRequest, `{"intent":"i","budget":{"amount":1e400}}`, "payload.budget.amount", "must be a finite number, got JSON number 1e400"},
		{"request currency lower case", PayloadRequest, `{"intent":"i","budget":{"amount":1,"currency":"usd"}}`, "payload.budget.currency", `"usd" is not three capital letters`},
		{"request currency too long", PayloadRequest, `{"intent":"i","budget":{"amount":1,"currency":"USDT"}}`, "payload.budget.currency", "three capital letters"},
		{"request max_cost over amount", PayloadRequest, `{"intent":"i","budget":{"amount":10,"max_cost":11}}`, "payload.budget.max_cost", "must be at most 10, got 11"},
		{"request max_cost negative", PayloadRequest, `{"intent":"i","budget":{"amount":10,"max_cost":-0.5}}`, "payload.budget.max_cost", "must be at least 0"},
		{"request max_cost boolean", PayloadRequest, `{"intent":"i","budget":{"amount":10,"max_cost":true}}`, "payload.budget.max_cost", "must be a finite number, got JSON bool"},
		{"request response_format missing type", PayloadRequest, `{"intent":"i","response_format":{"schema":"s"}}`, "payload.response_format.type", "missing"},

		{"response missing status", PayloadResponse, `{}`, "payload.status", "missing"},
		{"response bad status", PayloadResponse, `{"status":"ok"}`, "payload.status", `"ok" is not one of "success", "partial_success", "error" or "pending"`},
		{"response negative time", PayloadResponse, `{"status":"success","processing_time_ms":-1}`, "payload.processing_time_ms", "must not be negative"},
		{"response fractional time", PayloadResponse, `{"status":"success","processing_time_ms":2.5}`, "payload.processing_time_ms", "got JSON number 2.5"},
		{"response bad completed_at", PayloadResponse, `{"status":"success","completed_at":"1769963110555"}`, "payload.completed_at", "not an RFC 3339 date-time"},
		{"response completed_at out of range", PayloadResponse, `{"status":"success","completed_at":"9999-12-31T23:59:59-23:59"}`, "payload.completed_at", "year 10000 in UTC is out of range"},

		{"status missing progress", PayloadStatus, `{}`, "payload.progress", "missing"},
		{"status progress over 1", PayloadStatus, `{"progress":1.2}`, "payload.progress", "must be at most 1, got 1.2"},
		{"status progress negative", PayloadStatus, `{"progress":-0.1}`, "payload.progress", "must be at least 0, got -0.1"},
		{"status progress overflow", PayloadStatus, `{"progress":1e400}`, "payload.progress", "got JSON number 1e400"},
		{"status progress a string", PayloadStatus, `{"progress":"50%"}`, "payload.progress", "must be a finite number, got JSON string"},
		{"status negative estimate", PayloadStatus, `{"progress":0.5,"estimated_completion_seconds":-3}`, "payload.estimated_completion_seconds", "must be at least 0"},

		{"error missing code", PayloadError, `{"message":"m"}`, "payload.code", "missing"},
		{"error empty code", PayloadError, `{"code":"","message":"m"}`, "payload.code", "empty"},
		{"error empty message", PayloadError, `{"code":"timeout","message":""}`, "payload.message", "empty"},
		{"error negative retry", PayloadError, `{"code":"timeout","message":"m","retry_after_seconds":-1}`, "payload.retry_after_seconds", "must not be negative"},
		{"error bad fallback", PayloadError, `{"code":"timeout","message":"m","fallback_amid":"not-an-amid"}`, "payload.fallback_amid", "invalid base58 character"},
		{"error details an array", PayloadError, `{"code":"timeout","message":"m","details":[]}`, "payload.details", "must be a JSON object"},
		{"error details a string", PayloadError, `{"code":"timeout","message":"m","details":"x"}`, "payload.details", "must be a JSON object"},

		{"close missing reason", PayloadClose, `{}`, "payload.reason", "missing"},
		{"close feedback over 1", PayloadClose, `{"reason":"completed","reputation_feedback":1.5}`, "payload.reputation_feedback.score", "must be at most 1, got 1.5"},
		{"close feedback object over 1", PayloadClose, `{"reason":"completed","reputation_feedback":{"score":2}}`, "payload.reputation_feedback.score", "must be at most 1"},
		{"close feedback missing score", PayloadClose, `{"reason":"completed","reputation_feedback":{"tags":["x"]}}`, "payload.reputation_feedback.score", "missing"},
		{"close feedback a string", PayloadClose, `{"reason":"completed","reputation_feedback":"good"}`, "payload.reputation_feedback", "must be a number or an object"},
		{"close feedback overflow", PayloadClose, `{"reason":"completed","reputation_feedback":1e400}`, "payload.reputation_feedback", "must be a finite number, got JSON number 1e400"},
		{"close tags not strings", PayloadClose, `{"reason":"completed","reputation_feedback":{"score":1,"tags":[1]}}`, "payload.reputation_feedback.tags", "must be a string, got JSON number"},

		{"capability request schemas a string", PayloadCapabilityRequest, `{"offered_schemas":"s"}`, "payload.offered_schemas", "must be an array, got JSON string"},
		{"capability response entries not strings", PayloadCapabilityResponse, `{"accepted_capabilities":[true]}`, "payload.accepted_capabilities", "must be a string, got JSON bool"},
		{"capability update reason a number", PayloadCapabilityUpdate, `{"reason":1}`, "payload.reason", "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePayload(tt.typ, json.RawMessage(tt.raw))
			if got != nil {
				t.Errorf("ParsePayload returned %#v with error %v, want nil", got, err)
			}
			expectDecodeErr(t, err, "message", tt.field, tt.problem)
		})
	}
}

// TestPayloadValidate covers values JSON cannot carry but Go code can build.
func TestPayloadValidate(t *testing.T) {
	tests := []struct {
		name    string
		payload Payload
		field   string
		problem string
	}{
		{"NaN progress", &Status{Progress: math.NaN()}, "payload.progress", "must be a finite number"},
		{"infinite estimate", &Status{EstimatedCompletionSeconds: ptr(math.Inf(1))}, "payload.estimated_completion_seconds", "must be a finite number"},
		{"infinite budget", &Request{Intent: "i", Budget: &Budget{Amount: math.Inf(1)}}, "payload.budget.amount", "must be a finite number"},
		{"invalid parameters", &Request{Intent: "i", Parameters: json.RawMessage(`{"a":}`)}, "payload.parameters", "not valid JSON"},
		{"invalid results", &Response{Status: ResponseSuccess, Results: json.RawMessage(`[`)}, "payload.results", "not valid JSON"},
		{"feedback below 0", &Close{ReputationFeedback: &Feedback{Score: -0.1}}, "payload.reputation_feedback.score", "must be at least 0"},
		{"generic without raw", &Generic{Type: "x"}, "payload", "missing"},
		{"generic not an object", &Generic{Type: "x", Raw: json.RawMessage(`[]`)}, "payload", "must be a JSON object"},
		{"generic type mismatch", &Generic{Type: "x", Raw: json.RawMessage(`{"type":"y"}`)}, "payload.type", `"y" does not match "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectDecodeErr(t, tt.payload.Validate(), "message", tt.field, tt.problem)
		})
	}
	for _, tt := range testPayloads {
		if err := tt.payload.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	tests := []struct {
		in   string
		want ErrorCode
	}{
		{"timeout", CodeTimeout},
		{"network_error", CodeNetworkError},                      // Python only
		{"schema_validation_failed", CodeSchemaValidationFailed}, // [SPEC] only
		{"excessive_skip", CodeExcessiveSkip},
		{"CAPABILITY_UNAVAILABLE", CodeUnknownError},
		{"Timeout", CodeUnknownError},
		{"", CodeUnknownError},
	}
	for _, tt := range tests {
		if got := NormalizeErrorCode(tt.in); got != tt.want {
			t.Errorf("NormalizeErrorCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	var err error = fmtWrap(&Error{Code: CodeExcessiveSkip, Message: "skipped 1001 keys"})
	if !errors.Is(err, &Error{Code: CodeExcessiveSkip}) {
		t.Errorf("errors.Is(%v, excessive_skip) = false, want true", err)
	}
	if errors.Is(err, &Error{Code: CodeTimeout}) {
		t.Errorf("errors.Is(%v, timeout) = true, want false", err)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeExcessiveSkip {
		t.Fatalf("errors.As(%v) = %v, want the *Error", err, pe)
	}
	if got, want := pe.Error(), "agentmesh: excessive_skip: skipped 1001 keys"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&Error{Code: CodeTimeout}).Error(), "agentmesh: timeout"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	p := (&Error{Code: CodeTimeout}).Payload()
	if err := p.Validate(); err != nil {
		t.Errorf("Payload() of an error without message: %v", err)
	}
	if got := p.Err(); got.Code != CodeTimeout || got.Message != "timeout" {
		t.Errorf("Payload().Err() = %+v", got)
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("session closed"), err) }

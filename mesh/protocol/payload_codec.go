package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
)

// Decoding, validation and encoding of each payload type. Decoding goes
// through a wire struct per type so that every problem names its field.

// REQUEST.

type requestWire struct {
	Intent         *string         `json:"intent"`
	Parameters     json.RawMessage `json:"parameters"`
	Priority       *string         `json:"priority"`
	Budget         *budgetWire     `json:"budget"`
	ResponseFormat *struct {
		Type   *string `json:"type"`
		Schema *string `json:"schema"`
	} `json:"response_format"`
}

type budgetWire struct {
	Amount   *float64 `json:"amount"`
	Currency *string  `json:"currency"`
	MaxCost  *float64 `json:"max_cost"`
}

func requestFromWire(w *requestWire, r *fieldReader) *Request {
	p := &Request{
		Intent:     r.str("payload.intent", w.Intent),
		Parameters: rawValue(w.Parameters),
		Priority:   PriorityNormal,
	}
	if w.Priority != nil {
		p.Priority = Priority(*w.Priority)
	}
	if b := w.Budget; b != nil {
		p.Budget = &Budget{Currency: DefaultCurrency, MaxCost: b.MaxCost}
		if b.Amount == nil {
			r.missing("payload.budget.amount")
		} else {
			p.Budget.Amount = *b.Amount
		}
		if b.Currency != nil {
			p.Budget.Currency = *b.Currency
		}
	}
	if f := w.ResponseFormat; f != nil {
		p.ResponseFormat = &ResponseFormat{Type: r.str("payload.response_format.type", f.Type)}
		if f.Schema != nil {
			p.ResponseFormat.Schema = *f.Schema
		}
	}
	return p
}

// Validate checks the request: a non-empty intent, parameters that are a
// JSON object, a known priority and a consistent budget.
func (p *Request) Validate() error {
	if p.Intent == "" {
		return payloadErr("intent", "empty")
	}
	if err := checkRawObject("parameters", p.Parameters); err != nil {
		return err
	}
	if p.Priority != "" && !codeInSet(p.Priority, priorities) {
		return payloadErr("priority", "%q is not one of %s", truncateForError(string(p.Priority)), quoteSet(priorities))
	}
	if b := p.Budget; b != nil {
		if err := checkNumber("budget.amount", b.Amount, 0, math.MaxFloat64); err != nil {
			return err
		}
		if b.Currency != "" && !isCurrency(b.Currency) {
			return payloadErr("budget.currency", "%q is not three capital letters", truncateForError(b.Currency))
		}
		if b.MaxCost != nil {
			if err := checkNumber("budget.max_cost", *b.MaxCost, 0, b.Amount); err != nil {
				return err
			}
		}
	}
	if f := p.ResponseFormat; f != nil && f.Type == "" {
		return payloadErr("response_format.type", "empty")
	}
	return nil
}

// MarshalJSON writes the request with "type" first and the defaults of
// Priority and Budget.Currency filled in.
func (p *Request) MarshalJSON() ([]byte, error) {
	type budgetOut struct {
		Amount   float64  `json:"amount"`
		Currency string   `json:"currency"`
		MaxCost  *float64 `json:"max_cost,omitempty"`
	}
	type formatOut struct {
		Type   string `json:"type"`
		Schema string `json:"schema,omitempty"`
	}
	out := struct {
		Type           PayloadType     `json:"type"`
		Intent         string          `json:"intent"`
		Parameters     json.RawMessage `json:"parameters,omitempty"`
		Priority       Priority        `json:"priority"`
		Budget         *budgetOut      `json:"budget,omitempty"`
		ResponseFormat *formatOut      `json:"response_format,omitempty"`
	}{Type: PayloadRequest, Intent: p.Intent, Parameters: p.Parameters, Priority: p.Priority}
	if out.Priority == "" {
		out.Priority = PriorityNormal
	}
	if b := p.Budget; b != nil {
		out.Budget = &budgetOut{Amount: b.Amount, Currency: b.Currency, MaxCost: b.MaxCost}
		if out.Budget.Currency == "" {
			out.Budget.Currency = DefaultCurrency
		}
	}
	if f := p.ResponseFormat; f != nil {
		out.ResponseFormat = &formatOut{Type: f.Type, Schema: f.Schema}
	}
	return marshalNoEscape(out)
}

// RESPONSE.

type responseWire struct {
	Status           *string         `json:"status"`
	Results          json.RawMessage `json:"results"`
	ProcessingTimeMS *int64          `json:"processing_time_ms"`
	CompletedAt      *string         `json:"completed_at"`
	Schema           *string         `json:"schema"`
}

func responseFromWire(w *responseWire, r *fieldReader) *Response {
	p := &Response{
		Status:  ResponseStatus(r.str("payload.status", w.Status)),
		Results: rawValue(w.Results),
	}
	if w.ProcessingTimeMS != nil {
		p.ProcessingTimeMS = *w.ProcessingTimeMS
	}
	if w.CompletedAt != nil {
		t, err := parseMessageTime("payload.completed_at", *w.CompletedAt)
		if err != nil && r.err == nil {
			r.err = err
		}
		p.CompletedAt = t
	}
	if w.Schema != nil {
		p.Schema = *w.Schema
	}
	return p
}

// Validate checks the response: a known status, valid results and a
// non-negative processing time.
func (p *Response) Validate() error {
	if !codeInSet(p.Status, responseStatuses) {
		return payloadErr("status", "%q is not one of %s", truncateForError(string(p.Status)), quoteSet(responseStatuses))
	}
	if p.Results != nil && !json.Valid(p.Results) {
		return payloadErr("results", "not valid JSON")
	}
	if p.ProcessingTimeMS < 0 {
		return payloadErr("processing_time_ms", "must not be negative")
	}
	return nil
}

// MarshalJSON writes the response with "type" first; completed_at is
// written with microsecond precision, and left out when zero.
func (p *Response) MarshalJSON() ([]byte, error) {
	out := struct {
		Type             PayloadType     `json:"type"`
		Status           ResponseStatus  `json:"status"`
		Results          json.RawMessage `json:"results,omitempty"`
		ProcessingTimeMS int64           `json:"processing_time_ms"`
		CompletedAt      string          `json:"completed_at,omitempty"`
		Schema           string          `json:"schema,omitempty"`
	}{Type: PayloadResponse, Status: p.Status, Results: p.Results, ProcessingTimeMS: p.ProcessingTimeMS, Schema: p.Schema}
	if !p.CompletedAt.IsZero() {
		out.CompletedAt = FormatPYTimestamp(p.CompletedAt)
	}
	return marshalNoEscape(out)
}

// STATUS.

type statusWire struct {
	Progress                   *float64 `json:"progress"`
	Message                    *string  `json:"message"`
	Phase                      *string  `json:"phase"`
	EstimatedCompletionSeconds *float64 `json:"estimated_completion_seconds"`
}

func statusFromWire(w *statusWire, r *fieldReader) *Status {
	p := &Status{EstimatedCompletionSeconds: w.EstimatedCompletionSeconds}
	if w.Progress == nil {
		r.missing("payload.progress")
	} else {
		p.Progress = *w.Progress
	}
	if w.Message != nil {
		p.Message = *w.Message
	}
	if w.Phase != nil {
		p.Phase = *w.Phase
	}
	return p
}

// Validate checks that progress is within [0, 1] and the estimate is not
// negative.
func (p *Status) Validate() error {
	if err := checkNumber("progress", p.Progress, 0, 1); err != nil {
		return err
	}
	if e := p.EstimatedCompletionSeconds; e != nil {
		return checkNumber("estimated_completion_seconds", *e, 0, math.MaxFloat64)
	}
	return nil
}

// MarshalJSON writes the status with "type" first.
func (p *Status) MarshalJSON() ([]byte, error) {
	return marshalNoEscape(struct {
		Type                       PayloadType `json:"type"`
		Progress                   float64     `json:"progress"`
		Message                    string      `json:"message,omitempty"`
		Phase                      string      `json:"phase,omitempty"`
		EstimatedCompletionSeconds *float64    `json:"estimated_completion_seconds,omitempty"`
	}{PayloadStatus, p.Progress, p.Message, p.Phase, p.EstimatedCompletionSeconds})
}

// ERROR.

type errorWire struct {
	Code              *string         `json:"code"`
	Message           *string         `json:"message"`
	RetryAfterSeconds *int            `json:"retry_after_seconds"`
	FallbackAMID      *string         `json:"fallback_amid"`
	Details           json.RawMessage `json:"details"`
}

func errorFromWire(w *errorWire, r *fieldReader) *ErrorPayload {
	p := &ErrorPayload{
		Code:              ErrorCode(r.str("payload.code", w.Code)),
		Message:           r.str("payload.message", w.Message),
		RetryAfterSeconds: w.RetryAfterSeconds,
		Details:           rawValue(w.Details),
	}
	if w.FallbackAMID != nil {
		p.FallbackAMID = AMID(*w.FallbackAMID)
	}
	return p
}

// Validate checks the error: a code and a message, a non-negative retry
// delay, a well-formed fallback AMID and details that are a JSON object.
func (p *ErrorPayload) Validate() error {
	if p.Code == "" {
		return payloadErr("code", "empty")
	}
	if p.Message == "" {
		return payloadErr("message", "empty")
	}
	if p.RetryAfterSeconds != nil && *p.RetryAfterSeconds < 0 {
		return payloadErr("retry_after_seconds", "must not be negative")
	}
	if p.FallbackAMID != "" {
		if _, err := ParseAMID(string(p.FallbackAMID)); err != nil {
			return payloadErr("fallback_amid", "%v", err)
		}
	}
	return checkRawObject("details", p.Details)
}

// MarshalJSON writes the error with "type" first.
func (p *ErrorPayload) MarshalJSON() ([]byte, error) {
	return marshalNoEscape(struct {
		Type              PayloadType     `json:"type"`
		Code              ErrorCode       `json:"code"`
		Message           string          `json:"message"`
		RetryAfterSeconds *int            `json:"retry_after_seconds,omitempty"`
		FallbackAMID      AMID            `json:"fallback_amid,omitempty"`
		Details           json.RawMessage `json:"details,omitempty"`
	}{PayloadError, p.Code, p.Message, p.RetryAfterSeconds, p.FallbackAMID, p.Details})
}

// CLOSE.

type closeWire struct {
	Reason             *string         `json:"reason"`
	Summary            *string         `json:"summary"`
	ReputationFeedback json.RawMessage `json:"reputation_feedback"`
	SessionID          *string         `json:"session_id"`
}

func closeFromWire(w *closeWire, r *fieldReader) *Close {
	p := &Close{Reason: CloseReason(r.str("payload.reason", w.Reason))}
	if w.Summary != nil {
		p.Summary = *w.Summary
	}
	if w.SessionID != nil {
		p.SessionID = *w.SessionID
	}
	if raw := rawValue(w.ReputationFeedback); raw != nil && r.err == nil {
		fb, err := decodeFeedback(raw)
		if err != nil {
			r.err = err
		}
		p.ReputationFeedback = fb
	}
	return p
}

func decodeFeedback(raw json.RawMessage) (*Feedback, *DecodeError) {
	const field = "payload.reputation_feedback"
	if !isJSONObject(raw) {
		var score float64
		if err := json.Unmarshal(raw, &score); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && strings.HasPrefix(te.Value, "number") {
				return nil, jsonDecodeErr(msgWhat, field, err) // out of range
			}
			return nil, fieldErr(msgWhat, field, "must be a number or an object")
		}
		return &Feedback{Score: score}, nil
	}
	var w struct {
		Score *float64 `json:"score"`
		Tags  []string `json:"tags"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, jsonDecodeErr(msgWhat, field, err)
	}
	if w.Score == nil {
		return nil, fieldErr(msgWhat, field+".score", "missing")
	}
	return &Feedback{Score: *w.Score, Tags: nonEmpty(w.Tags)}, nil
}

// Validate checks that the feedback score, if any, is within [0, 1].
func (p *Close) Validate() error {
	if f := p.ReputationFeedback; f != nil {
		return checkNumber("reputation_feedback.score", f.Score, 0, 1)
	}
	return nil
}

// MarshalJSON writes the close with "type" first.
func (p *Close) MarshalJSON() ([]byte, error) {
	return marshalNoEscape(struct {
		Type               PayloadType `json:"type"`
		Reason             CloseReason `json:"reason"`
		Summary            string      `json:"summary,omitempty"`
		ReputationFeedback *Feedback   `json:"reputation_feedback,omitempty"`
		SessionID          string      `json:"session_id,omitempty"`
	}{PayloadClose, p.Reason, p.Summary, p.ReputationFeedback, p.SessionID})
}

// MarshalJSON writes the feedback as a bare score when it has no tags and
// as {"score":…,"tags":[…]} otherwise.
func (f *Feedback) MarshalJSON() ([]byte, error) {
	if len(f.Tags) == 0 {
		return json.Marshal(f.Score)
	}
	return marshalNoEscape(struct {
		Score float64  `json:"score"`
		Tags  []string `json:"tags"`
	}{f.Score, f.Tags})
}

// Capability negotiation.

type capRequestWire struct {
	OfferedSchemas      []string `json:"offered_schemas"`
	OfferedCapabilities []string `json:"offered_capabilities"`
	ProtocolVersion     *string  `json:"protocol_version"`
}

func capRequestFromWire(w *capRequestWire, _ *fieldReader) *CapabilityRequest {
	p := &CapabilityRequest{
		OfferedSchemas:      nonEmpty(w.OfferedSchemas),
		OfferedCapabilities: nonEmpty(w.OfferedCapabilities),
	}
	if w.ProtocolVersion != nil {
		p.ProtocolVersion = *w.ProtocolVersion
	}
	return p
}

// Validate has nothing to check: every list and version decodes.
func (p *CapabilityRequest) Validate() error { return nil }

// MarshalJSON writes the request with "type" first and every list as an
// array, empty when nil.
func (p *CapabilityRequest) MarshalJSON() ([]byte, error) {
	return marshalNoEscape(struct {
		Type                PayloadType `json:"type"`
		OfferedSchemas      []string    `json:"offered_schemas"`
		OfferedCapabilities []string    `json:"offered_capabilities"`
		ProtocolVersion     string      `json:"protocol_version,omitempty"`
	}{PayloadCapabilityRequest, orEmpty(p.OfferedSchemas), orEmpty(p.OfferedCapabilities), p.ProtocolVersion})
}

type capResponseWire struct {
	AcceptedSchemas      []string `json:"accepted_schemas"`
	AcceptedCapabilities []string `json:"accepted_capabilities"`
	RejectedSchemas      []string `json:"rejected_schemas"`
	RejectedCapabilities []string `json:"rejected_capabilities"`
	ProtocolVersion      *string  `json:"protocol_version"`
}

func capResponseFromWire(w *capResponseWire, _ *fieldReader) *CapabilityResponse {
	p := &CapabilityResponse{
		AcceptedSchemas:      nonEmpty(w.AcceptedSchemas),
		AcceptedCapabilities: nonEmpty(w.AcceptedCapabilities),
		RejectedSchemas:      nonEmpty(w.RejectedSchemas),
		RejectedCapabilities: nonEmpty(w.RejectedCapabilities),
	}
	if w.ProtocolVersion != nil {
		p.ProtocolVersion = *w.ProtocolVersion
	}
	return p
}

// Validate has nothing to check: every list and version decodes.
func (p *CapabilityResponse) Validate() error { return nil }

// MarshalJSON writes the response with "type" first and every list as an
// array, empty when nil.
func (p *CapabilityResponse) MarshalJSON() ([]byte, error) {
	return marshalNoEscape(struct {
		Type                 PayloadType `json:"type"`
		AcceptedSchemas      []string    `json:"accepted_schemas"`
		AcceptedCapabilities []string    `json:"accepted_capabilities"`
		RejectedSchemas      []string    `json:"rejected_schemas"`
		RejectedCapabilities []string    `json:"rejected_capabilities"`
		ProtocolVersion      string      `json:"protocol_version,omitempty"`
	}{PayloadCapabilityResponse, orEmpty(p.AcceptedSchemas), orEmpty(p.AcceptedCapabilities),
		orEmpty(p.RejectedSchemas), orEmpty(p.RejectedCapabilities), p.ProtocolVersion})
}

type capUpdateWire struct {
	AddedCapabilities   []string `json:"added_capabilities"`
	RemovedCapabilities []string `json:"removed_capabilities"`
	AddedSchemas        []string `json:"added_schemas"`
	RemovedSchemas      []string `json:"removed_schemas"`
	Reason              *string  `json:"reason"`
}

func capUpdateFromWire(w *capUpdateWire, _ *fieldReader) *CapabilityUpdate {
	p := &CapabilityUpdate{
		AddedCapabilities:   nonEmpty(w.AddedCapabilities),
		RemovedCapabilities: nonEmpty(w.RemovedCapabilities),
		AddedSchemas:        nonEmpty(w.AddedSchemas),
		RemovedSchemas:      nonEmpty(w.RemovedSchemas),
	}
	if w.Reason != nil {
		p.Reason = *w.Reason
	}
	return p
}

// Validate has nothing to check: every list and reason decodes.
func (p *CapabilityUpdate) Validate() error { return nil }

// MarshalJSON writes the update with "type" first and every list as an
// array, empty when nil.
func (p *CapabilityUpdate) MarshalJSON() ([]byte, error) {
	return marshalNoEscape(struct {
		Type                PayloadType `json:"type"`
		AddedCapabilities   []string    `json:"added_capabilities"`
		RemovedCapabilities []string    `json:"removed_capabilities"`
		AddedSchemas        []string    `json:"added_schemas"`
		RemovedSchemas      []string    `json:"removed_schemas"`
		Reason              string      `json:"reason,omitempty"`
	}{PayloadCapabilityUpdate, orEmpty(p.AddedCapabilities), orEmpty(p.RemovedCapabilities),
		orEmpty(p.AddedSchemas), orEmpty(p.RemovedSchemas), p.Reason})
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Generic.

// Validate checks that Raw is a JSON object whose "type" member, if any,
// equals Type.
func (g *Generic) Validate() error {
	if g.Raw == nil {
		return fieldErr(msgWhat, "payload", "missing")
	}
	if !json.Valid(g.Raw) {
		return fieldErr(msgWhat, "payload", "not valid JSON")
	}
	if !isJSONObject(g.Raw) {
		return fieldErr(msgWhat, "payload", "must be a JSON object")
	}
	if g.Type == "" {
		return nil
	}
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(g.Raw, &head); err != nil {
		return jsonDecodeErr(msgWhat, "payload", err)
	}
	if head.Type != nil && *head.Type != g.Type {
		return payloadErr("type", "%q does not match %q", truncateForError(*head.Type), truncateForError(g.Type))
	}
	return nil
}

// MarshalJSON writes Raw.
func (g *Generic) MarshalJSON() ([]byte, error) {
	if g.Raw == nil {
		return []byte("{}"), nil
	}
	return g.Raw, nil
}

// marshalNoEscape is json.Marshal without HTML escaping: payloads carry
// '<', '>' and '&' literally, as JSON.stringify writes them.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

package protocol

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// PayloadType is the type of a payload inside the ratchet (PROTOCOL.md
// §7.3, §6.7).
type PayloadType string

// Payload types. The capability types are the [PROPOSED] binding of
// PROTOCOL.md §6.7.
const (
	PayloadRequest            PayloadType = "request"
	PayloadResponse           PayloadType = "response"
	PayloadStatus             PayloadType = "status"
	PayloadError              PayloadType = "error"
	PayloadClose              PayloadType = "close"
	PayloadCapabilityRequest  PayloadType = "capability_request"
	PayloadCapabilityResponse PayloadType = "capability_response"
	PayloadCapabilityUpdate   PayloadType = "capability_update"
)

var payloadTypes = []PayloadType{
	PayloadRequest, PayloadResponse, PayloadStatus, PayloadError, PayloadClose,
	PayloadCapabilityRequest, PayloadCapabilityResponse, PayloadCapabilityUpdate,
}

// Known reports whether t is one of the payload types above. Payloads of
// other types decode as *Generic.
func (t PayloadType) Known() bool { return codeInSet(t, payloadTypes) }

// Payload is the body of a Message: *Request, *Response, *Status,
// *ErrorPayload, *Close, *CapabilityRequest, *CapabilityResponse,
// *CapabilityUpdate, or *Generic for any other type. Consume it with a type
// switch.
//
// Every payload is written as a JSON object whose first member is "type",
// repeating the envelope's type, as the [TECH] and [RELAY] shapes do; when
// reading, a payload's own "type" is optional but must match.
type Payload interface {
	PayloadType() PayloadType
	// Validate reports the first value that the wire rules forbid, as a
	// *DecodeError naming it.
	Validate() error
}

var (
	_ Payload = (*Request)(nil)
	_ Payload = (*Response)(nil)
	_ Payload = (*Status)(nil)
	_ Payload = (*ErrorPayload)(nil)
	_ Payload = (*Close)(nil)
	_ Payload = (*CapabilityRequest)(nil)
	_ Payload = (*CapabilityResponse)(nil)
	_ Payload = (*CapabilityUpdate)(nil)
	_ Payload = (*Generic)(nil)
)

// PayloadType returns PayloadRequest.
func (*Request) PayloadType() PayloadType { return PayloadRequest }

// PayloadType returns PayloadResponse.
func (*Response) PayloadType() PayloadType { return PayloadResponse }

// PayloadType returns PayloadStatus.
func (*Status) PayloadType() PayloadType { return PayloadStatus }

// PayloadType returns PayloadError.
func (*ErrorPayload) PayloadType() PayloadType { return PayloadError }

// PayloadType returns PayloadClose.
func (*Close) PayloadType() PayloadType { return PayloadClose }

// PayloadType returns PayloadCapabilityRequest.
func (*CapabilityRequest) PayloadType() PayloadType { return PayloadCapabilityRequest }

// PayloadType returns PayloadCapabilityResponse.
func (*CapabilityResponse) PayloadType() PayloadType { return PayloadCapabilityResponse }

// PayloadType returns PayloadCapabilityUpdate.
func (*CapabilityUpdate) PayloadType() PayloadType { return PayloadCapabilityUpdate }

// PayloadType returns the type the payload arrived with.
func (g *Generic) PayloadType() PayloadType { return PayloadType(g.Type) }

// Priority is the urgency of a REQUEST.
type Priority string

// Priorities; the empty Priority means PriorityNormal.
const (
	PriorityLow    Priority = "low"
	PriorityNormal Priority = "normal"
	PriorityHigh   Priority = "high"
	PriorityUrgent Priority = "urgent"
)

var priorities = []Priority{PriorityLow, PriorityNormal, PriorityHigh, PriorityUrgent}

// ResponseStatus is the outcome a RESPONSE reports.
type ResponseStatus string

// Response statuses ([TECH]/[RELAY]).
const (
	ResponseSuccess        ResponseStatus = "success"
	ResponsePartialSuccess ResponseStatus = "partial_success"
	ResponseError          ResponseStatus = "error"
	ResponsePending        ResponseStatus = "pending"
)

var responseStatuses = []ResponseStatus{ResponseSuccess, ResponsePartialSuccess, ResponseError, ResponsePending}

// DefaultCurrency is the budget currency when none is given.
const DefaultCurrency = "USD"

// Request asks the peer to act on an intent (DESIGN.md §4.7).
type Request struct {
	// Intent names what is asked, for example "travel/flights/search".
	Intent string
	// Parameters is a JSON object validated against the intent's schema;
	// nil when absent.
	Parameters json.RawMessage
	// Priority is PriorityNormal when absent; the empty value means the same.
	Priority Priority
	// Budget is nil when absent.
	Budget *Budget
	// ResponseFormat is nil when absent.
	ResponseFormat *ResponseFormat
}

// Budget bounds what a REQUEST may cost.
type Budget struct {
	// Amount is at least 0.
	Amount float64
	// Currency is an ISO 4217 code of three capital letters; empty means
	// DefaultCurrency.
	Currency string
	// MaxCost, when set, is between 0 and Amount.
	MaxCost *float64
}

// ResponseFormat asks for a shape of RESPONSE.
type ResponseFormat struct {
	// Type names the format, for example "json"; it is required.
	Type string
	// Schema is the id of a schema the results should follow.
	Schema string
}

// Response answers a Request (DESIGN.md §4.7).
type Response struct {
	// Status is the outcome.
	Status ResponseStatus
	// Results is any JSON value; nil when absent.
	Results json.RawMessage
	// ProcessingTimeMS is at least 0; 0 when absent.
	ProcessingTimeMS int64
	// CompletedAt is the zero time when absent.
	CompletedAt time.Time
	// Schema is the id of the schema Results follow, if any.
	Schema string
}

// Status reports progress on a Request.
type Status struct {
	// Progress is between 0 and 1.
	Progress float64
	// Message is a human-readable note.
	Message string
	// Phase names the current step.
	Phase string
	// EstimatedCompletionSeconds is at least 0; nil when absent.
	EstimatedCompletionSeconds *float64
}

// ErrorPayload is an ERROR payload. Code keeps the value received, known or
// not; NormalizeErrorCode maps unknown codes to CodeUnknownError.
type ErrorPayload struct {
	// Code is required.
	Code ErrorCode
	// Message is never empty.
	Message string
	// RetryAfterSeconds is at least 0; nil when absent.
	RetryAfterSeconds *int
	// FallbackAMID is another agent to try; empty when absent.
	FallbackAMID AMID
	// Details is a JSON object; nil when absent.
	Details json.RawMessage
}

// Err returns the payload as an *Error.
func (p *ErrorPayload) Err() *Error { return &Error{Code: p.Code, Message: p.Message} }

// Close ends a session. Reason may be any string; CloseReason lists those
// we emit.
type Close struct {
	// Reason is required.
	Reason CloseReason
	// Summary is a human-readable account of the session.
	Summary string
	// ReputationFeedback is nil when absent.
	ReputationFeedback *Feedback
	// SessionID is set when CLOSE travels outside the ratchet.
	SessionID string
}

// Feedback rates the peer at the end of a session. It is read from either
// wire form, a bare number ([PY]) or {"score":…,"tags":[…]} ([TECH],
// [SPEC]); it is written as a bare number when there are no tags and as the
// object otherwise.
type Feedback struct {
	// Score is between 0 and 1.
	Score float64
	// Tags are words such as "fast_response" or "accurate".
	Tags []string
}

// CapabilityRequest offers schemas and capabilities (PROTOCOL.md §6.7).
type CapabilityRequest struct {
	// OfferedSchemas are schema ids the sender can use.
	OfferedSchemas []string
	// OfferedCapabilities are capabilities such as "text", "json" or an
	// intent schema with a /v<N> suffix.
	OfferedCapabilities []string
	// ProtocolVersion is the sender's protocol string.
	ProtocolVersion string
}

// CapabilityResponse answers a CapabilityRequest (PROTOCOL.md §6.7).
type CapabilityResponse struct {
	// AcceptedSchemas and AcceptedCapabilities are the offers taken.
	AcceptedSchemas      []string
	AcceptedCapabilities []string
	// RejectedSchemas and RejectedCapabilities are the offers refused.
	RejectedSchemas      []string
	RejectedCapabilities []string
	// ProtocolVersion is the version agreed.
	ProtocolVersion string
}

// CapabilityUpdate announces a change of capabilities during a session.
type CapabilityUpdate struct {
	// AddedCapabilities and RemovedCapabilities change the capability set.
	AddedCapabilities   []string
	RemovedCapabilities []string
	// AddedSchemas and RemovedSchemas change the schema set.
	AddedSchemas   []string
	RemovedSchemas []string
	// Reason is free text.
	Reason string
}

// Generic is a payload of a type this package does not know, kept as
// received so that it can be logged or forwarded.
type Generic struct {
	// Type is the payload's type, or empty for an opaque application
	// message (see ParseMessage).
	Type string
	// Raw is the payload's JSON object.
	Raw json.RawMessage
}

const msgWhat = "message"

func payloadErr(field, format string, args ...any) error {
	return fieldErr(msgWhat, "payload."+field, format, args...)
}

// ParsePayload decodes the JSON object raw as a payload of type typ. If the
// object has its own "type" member, it must equal typ. Unknown members are
// ignored; a member of the wrong JSON type, a missing required member or a
// value out of range is a *DecodeError naming "payload.<member>". An
// unknown typ yields a *Generic holding a copy of raw.
func ParsePayload(typ PayloadType, raw json.RawMessage) (Payload, error) {
	return decodePayload(raw, typ)
}

func decodePayload(raw json.RawMessage, typ PayloadType) (Payload, error) {
	if len(raw) > MaxFrameSize {
		return nil, fieldErr(msgWhat, "payload", "%d bytes, limit %d", len(raw), MaxFrameSize)
	}
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, jsonDecodeErr(msgWhat, "payload", err)
	}
	if !isJSONObject(raw) { // json.Unmarshal accepts null for a struct
		return nil, fieldErr(msgWhat, "payload", "must be a JSON object, got null")
	}
	if head.Type != nil && *head.Type != string(typ) {
		return nil, payloadErr("type", "%q does not match the message type %q",
			truncateForError(*head.Type), truncateForError(string(typ)))
	}
	switch typ {
	case PayloadRequest:
		return decodeInto(raw, requestFromWire)
	case PayloadResponse:
		return decodeInto(raw, responseFromWire)
	case PayloadStatus:
		return decodeInto(raw, statusFromWire)
	case PayloadError:
		return decodeInto(raw, errorFromWire)
	case PayloadClose:
		return decodeInto(raw, closeFromWire)
	case PayloadCapabilityRequest:
		return decodeInto(raw, capRequestFromWire)
	case PayloadCapabilityResponse:
		return decodeInto(raw, capResponseFromWire)
	case PayloadCapabilityUpdate:
		return decodeInto(raw, capUpdateFromWire)
	}
	return &Generic{Type: string(typ), Raw: bytes.Clone(raw)}, nil
}

// decodeInto decodes raw into the wire form W, converts it and validates
// the result.
func decodeInto[W any, P Payload](raw []byte, convert func(*W, *fieldReader) P) (Payload, error) {
	var w W
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, jsonDecodeErr(msgWhat, "payload", err)
	}
	r := fieldReader{what: msgWhat}
	p := convert(&w, &r)
	if r.err != nil {
		return nil, r.err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// rawValue returns a copy of a decoded raw member, nil for absent or null.
func rawValue(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return bytes.Clone(m)
}

// isJSONObject reports whether raw is a JSON object (it is known to be
// valid JSON).
func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// checkNumber checks that v is finite and within [lo, hi].
func checkNumber(field string, v, lo, hi float64) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return payloadErr(field, "must be a finite number")
	case v < lo:
		return payloadErr(field, "must be at least %s, got %s", fmtFloat(lo), fmtFloat(v))
	case v > hi:
		return payloadErr(field, "must be at most %s, got %s", fmtFloat(hi), fmtFloat(v))
	}
	return nil
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// checkRawObject checks that raw, if present, is a valid JSON object.
func checkRawObject(field string, raw json.RawMessage) error {
	if raw == nil {
		return nil
	}
	if !json.Valid(raw) {
		return payloadErr(field, "not valid JSON")
	}
	if !isJSONObject(raw) {
		return payloadErr(field, "must be a JSON object")
	}
	return nil
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

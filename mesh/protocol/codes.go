package protocol

import "fmt"

// MessageType is the message_type of a relay send or receive frame
// (PROTOCOL.md §5.3). It tells the receiver how to read encrypted_payload:
// knock, accept, reject and close payloads travel in the clear, message
// payloads are an [EncryptedEnvelope].
type MessageType string

// Message types of PROTOCOL.md §5.3. The relay drops a frame carrying any
// other value.
const (
	MessageTypeKnock      MessageType = "knock"
	MessageTypeAccept     MessageType = "accept"
	MessageTypeReject     MessageType = "reject"
	MessageTypeMessage    MessageType = "message"
	MessageTypeClose      MessageType = "close"
	MessageTypeStatus     MessageType = "status"
	MessageTypeOptimistic MessageType = "optimistic_message"
)

var messageTypes = []MessageType{
	MessageTypeKnock, MessageTypeAccept, MessageTypeReject, MessageTypeMessage,
	MessageTypeClose, MessageTypeStatus, MessageTypeOptimistic,
}

// Valid reports whether t is one of the seven message types.
func (t MessageType) Valid() bool { return codeInSet(t, messageTypes) }

// PresenceStatus is an agent's presence as the relay reports it (PROTOCOL.md
// §5.3).
type PresenceStatus string

// Presence statuses of PROTOCOL.md §5.3.
const (
	PresenceOnline  PresenceStatus = "online"
	PresenceAway    PresenceStatus = "away"
	PresenceOffline PresenceStatus = "offline"
	PresenceDND     PresenceStatus = "dnd"
)

var presenceStatuses = []PresenceStatus{PresenceOnline, PresenceAway, PresenceOffline, PresenceDND}

// Valid reports whether s is one of the four presence statuses.
func (s PresenceStatus) Valid() bool { return codeInSet(s, presenceStatuses) }

// RelayErrorCode is the code of a relay error frame (PROTOCOL.md §5.4).
type RelayErrorCode string

// Relay error codes of PROTOCOL.md §5.4. Only RelayRateLimited and
// RelayRecipientOffline are sent after authentication by the original relay.
const (
	RelayInvalidSignature RelayErrorCode = "INVALID_SIGNATURE"
	RelayUnknownRecipient RelayErrorCode = "UNKNOWN_RECIPIENT"
	RelayRecipientOffline RelayErrorCode = "RECIPIENT_OFFLINE"
	RelayRateLimited      RelayErrorCode = "RATE_LIMITED"
	RelayMessageTooLarge  RelayErrorCode = "MESSAGE_TOO_LARGE"
	RelayInvalidMessage   RelayErrorCode = "INVALID_MESSAGE"
	RelayInternalError    RelayErrorCode = "INTERNAL_ERROR"
	RelayProtocolMismatch RelayErrorCode = "PROTOCOL_MISMATCH"
	RelayUnauthorized     RelayErrorCode = "UNAUTHORIZED"
)

// Authentication error codes the specification names beside those of the
// original relay (PROTOCOL.md §5.2): a Go relay sends them for the failures
// they describe, and clients must accept them as error frames.
const (
	RelayTimestampExpired        RelayErrorCode = "timestamp_expired"
	RelayAMIDMismatch            RelayErrorCode = "amid_mismatch"
	RelayProtocolUpgradeRequired RelayErrorCode = "protocol_upgrade_required"
)

var relayErrorCodes = []RelayErrorCode{
	RelayInvalidSignature, RelayUnknownRecipient, RelayRecipientOffline,
	RelayRateLimited, RelayMessageTooLarge, RelayInvalidMessage,
	RelayInternalError, RelayProtocolMismatch, RelayUnauthorized,
}

// Known reports whether c is one of the nine codes of PROTOCOL.md §5.4.
// Error frames with other codes still decode, so that a newer relay's codes
// reach the caller.
func (c RelayErrorCode) Known() bool { return codeInSet(c, relayErrorCodes) }

// ErrorCode is the code of an ERROR payload (PROTOCOL.md §7.3) and of
// [Error].
type ErrorCode string

// Error codes. The set is the union of the Python client's enum and the
// [SPEC] list of PROTOCOL.md §7.3, plus CodeExcessiveSkip (DESIGN.md §4.4).
const (
	// In both the Python enum and the [SPEC] list.
	CodeInvalidRequest ErrorCode = "invalid_request"
	CodeUnauthorized   ErrorCode = "unauthorized"
	CodeForbidden      ErrorCode = "forbidden"
	CodeNotFound       ErrorCode = "not_found"
	CodeRateLimited    ErrorCode = "rate_limited"
	CodeTimeout        ErrorCode = "timeout"
	CodeInternalError  ErrorCode = "internal_error"
	CodeSessionExpired ErrorCode = "session_expired"

	// Only in the Python enum.
	CodeUnknownError           ErrorCode = "unknown_error"
	CodeCancelled              ErrorCode = "cancelled"
	CodeMissingParameter       ErrorCode = "missing_parameter"
	CodeInvalidParameter       ErrorCode = "invalid_parameter"
	CodeUnsupportedOperation   ErrorCode = "unsupported_operation"
	CodeQuotaExceeded          ErrorCode = "quota_exceeded"
	CodeResourceExhausted      ErrorCode = "resource_exhausted"
	CodeUnavailable            ErrorCode = "unavailable"
	CodeSessionNotFound        ErrorCode = "session_not_found"
	CodeCapabilityNotSupported ErrorCode = "capability_not_supported"
	CodeExternalServiceError   ErrorCode = "external_service_error"
	CodeNetworkError           ErrorCode = "network_error"

	// Only in the [SPEC] list.
	CodeServiceUnavailable     ErrorCode = "service_unavailable"
	CodeCapabilityMismatch     ErrorCode = "capability_mismatch"
	CodeSchemaValidationFailed ErrorCode = "schema_validation_failed"

	// CodeExcessiveSkip reports a peer that made us skip more than 1000
	// message keys (DESIGN.md §4.4).
	CodeExcessiveSkip ErrorCode = "excessive_skip"
)

var errorCodes = []ErrorCode{
	CodeInvalidRequest, CodeUnauthorized, CodeForbidden, CodeNotFound,
	CodeRateLimited, CodeTimeout, CodeInternalError, CodeSessionExpired,
	CodeUnknownError, CodeCancelled, CodeMissingParameter, CodeInvalidParameter,
	CodeUnsupportedOperation, CodeQuotaExceeded, CodeResourceExhausted,
	CodeUnavailable, CodeSessionNotFound, CodeCapabilityNotSupported,
	CodeExternalServiceError, CodeNetworkError, CodeServiceUnavailable,
	CodeCapabilityMismatch, CodeSchemaValidationFailed, CodeExcessiveSkip,
}

// Known reports whether c is one of the codes above.
func (c ErrorCode) Known() bool { return codeInSet(c, errorCodes) }

// NormalizeErrorCode returns s as an ErrorCode when it is known and
// CodeUnknownError otherwise, as the Python client does.
func NormalizeErrorCode(s string) ErrorCode {
	if c := ErrorCode(s); c.Known() {
		return c
	}
	return CodeUnknownError
}

// CloseReason is the reason of a CLOSE payload (PROTOCOL.md §7.3). Any
// string is accepted when reading; we emit the values below.
type CloseReason string

// Close reasons: the Python set, the [SPEC] extras, the reason the TS SDK's
// killSession sends, and excessive_skip (DESIGN.md §4.4).
const (
	// The Python set.
	CloseCompleted            CloseReason = "completed"
	CloseCancelledByInitiator CloseReason = "cancelled_by_initiator"
	CloseCancelledByReceiver  CloseReason = "cancelled_by_receiver"
	CloseTimeout              CloseReason = "timeout"
	CloseError                CloseReason = "error"
	CloseSessionExpired       CloseReason = "session_expired"
	CloseBudgetExceeded       CloseReason = "budget_exceeded"
	CloseCapacityExceeded     CloseReason = "capacity_exceeded"
	ClosePolicyViolation      CloseReason = "policy_violation"
	CloseMaintenance          CloseReason = "maintenance"

	// Only in the [SPEC] list.
	CloseCancelled     CloseReason = "cancelled"
	CloseRateLimited   CloseReason = "rate_limited"
	CloseUserRequested CloseReason = "user_requested"

	// CloseSessionKilled is what the TS SDK's killSession sends.
	CloseSessionKilled CloseReason = "session_killed"
	// CloseExcessiveSkip closes a session whose peer made us skip more than
	// 1000 message keys.
	CloseExcessiveSkip CloseReason = "excessive_skip"
)

var closeReasons = []CloseReason{
	CloseCompleted, CloseCancelledByInitiator, CloseCancelledByReceiver,
	CloseTimeout, CloseError, CloseSessionExpired, CloseBudgetExceeded,
	CloseCapacityExceeded, ClosePolicyViolation, CloseMaintenance,
	CloseCancelled, CloseRateLimited, CloseUserRequested, CloseSessionKilled,
	CloseExcessiveSkip,
}

// Known reports whether r is one of the reasons above.
func (r CloseReason) Known() bool { return codeInSet(r, closeReasons) }

// RejectReason is the reason Go peers put in a REJECT (PROTOCOL.md §6.4
// [PROPOSED], DESIGN.md §4.5). TS peers treat the reason as free text, so
// any string is accepted when reading.
type RejectReason string

// Reject reasons.
const (
	RejectBlocked                RejectReason = "blocked"
	RejectNotInAllowlist         RejectReason = "not_in_allowlist"
	RejectInsufficientTrust      RejectReason = "insufficient_trust"
	RejectLowReputation          RejectReason = "low_reputation"
	RejectIntentNotAccepted      RejectReason = "intent_not_accepted"
	RejectAtCapacity             RejectReason = "at_capacity"
	RejectRateLimited            RejectReason = "rate_limited"
	RejectPaused                 RejectReason = "paused"
	RejectInvalidCertificate     RejectReason = "invalid_certificate"
	RejectCertificateExpired     RejectReason = "certificate_expired"
	RejectCertificateRevoked     RejectReason = "certificate_revoked"
	RejectTTLExceeded            RejectReason = "ttl_exceeded"
	RejectCapabilityNotSupported RejectReason = "capability_not_supported"
)

var rejectReasons = []RejectReason{
	RejectBlocked, RejectNotInAllowlist, RejectInsufficientTrust,
	RejectLowReputation, RejectIntentNotAccepted, RejectAtCapacity,
	RejectRateLimited, RejectPaused, RejectInvalidCertificate,
	RejectCertificateExpired, RejectCertificateRevoked, RejectTTLExceeded,
	RejectCapabilityNotSupported,
}

// Known reports whether r is one of the reasons above.
func (r RejectReason) Known() bool { return codeInSet(r, rejectReasons) }

// Error is a protocol-level failure that carries a code of PROTOCOL.md §7.3,
// the value an ERROR payload puts on the wire. Test for a code with
// errors.Is and an *Error holding only that code, or with errors.As.
type Error struct {
	// Code is the machine-readable code.
	Code ErrorCode
	// Message is a human-readable explanation; it never holds secrets.
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "agentmesh: " + string(e.Code)
	}
	return fmt.Sprintf("agentmesh: %s: %s", e.Code, e.Message)
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &Error{Code: CodeTimeout}) matches any timeout.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Payload returns the ERROR payload that reports e to a peer. An empty
// Message is replaced by the code, since ERROR requires a message.
func (e *Error) Payload() *ErrorPayload {
	msg := e.Message
	if msg == "" {
		msg = string(e.Code)
	}
	return &ErrorPayload{Code: e.Code, Message: msg}
}

func codeInSet[T ~string](v T, set []T) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// quoteSet lists a set for error messages: "a", "b" or "c".
func quoteSet[T ~string](set []T) string {
	b := make([]byte, 0, 16*len(set))
	for i, s := range set {
		switch {
		case i == 0:
		case i == len(set)-1:
			b = append(b, " or "...)
		default:
			b = append(b, ", "...)
		}
		b = append(b, '"')
		b = append(b, s...)
		b = append(b, '"')
	}
	return string(b)
}

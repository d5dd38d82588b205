package main

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/sdk"
)

// fieldDetails is the details object of an ERROR about one request
// parameter: {"field": "origin"}.
type fieldDetails struct {
	Field string `json:"field"`
}

// paramError reports a request parameter the skill cannot serve. The
// message starts with the field's name.
func paramError(code protocol.ErrorCode, field, format string, args ...any) error {
	return &sdk.Error{
		Code:    code,
		Message: field + ": " + fmt.Sprintf(format, args...),
		Details: fieldDetails{Field: field},
	}
}

// invalidParam reports a parameter the skill cannot accept.
func invalidParam(field, format string, args ...any) error {
	return paramError(protocol.CodeInvalidParameter, field, format, args...)
}

// missingParam reports a parameter a search needs.
func missingParam(field string) error {
	return paramError(protocol.CodeMissingParameter, field, "required for a search")
}

// configError reports a configuration the skill cannot work with: the
// request may be fine, but the skill cannot serve it until the host
// configures it anew.
func configError(option, format string, args ...any) error {
	return &sdk.Error{
		Code:    protocol.CodeUnavailable,
		Message: "config option " + option + ": " + fmt.Sprintf(format, args...),
	}
}

// maxQuoted is the most characters of a request value that an error
// message repeats.
const maxQuoted = 40

// quote quotes a request value for an error message, shortened when long.
func quote(v string) string {
	if utf8.RuneCountInString(v) > maxQuoted {
		v = string([]rune(v)[:maxQuoted]) + "…"
	}
	return strconv.Quote(v)
}

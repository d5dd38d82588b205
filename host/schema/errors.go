package schema

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// FieldError is one constraint a value failed.
//
// Messages name the constraint, never the offending value: they may be
// logged and sent to peers, and the payload is not theirs to see.
type FieldError struct {
	// Path is the JSON pointer (RFC 6901) of the failing value inside
	// the validated value; "" is the value itself. For a missing required
	// member, a member not allowed by "additionalProperties" and a member
	// name refused by "propertyNames", it points at that member.
	Path string `json:"path"`
	// Message says what is wrong, such as `must be >= 1`.
	Message string `json:"message"`
	// Schema is the id of the schema holding the failed keyword; it differs
	// from the schema asked for when a "$ref" leads into another one.
	Schema string `json:"schema"`
	// KeywordLocation is the JSON pointer of the failed keyword inside
	// that schema's document, such as "/properties/passengers/minimum".
	KeywordLocation string `json:"keyword_location"`
}

// String returns "<path>: <message>", with "(root)" for the empty path.
func (fe FieldError) String() string {
	p := fe.Path
	if p == "" {
		p = "(root)"
	}
	return p + ": " + fe.Message
}

// ValidationError reports a value that does not match its schema in
// [ModeStrict]. It lists every failed constraint, not just the first.
type ValidationError struct {
	// Schema is the id of the schema the value was validated against.
	Schema string
	// Errors holds at least one entry, sorted by Path and then by
	// KeywordLocation.
	Errors []FieldError
}

// maxErrorsInText bounds how many entries Error spells out; Payload
// carries all of them.
const maxErrorsInText = 10

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "schema: value does not match %s: ", e.Schema)
	for i, fe := range e.Errors {
		if i == maxErrorsInText {
			fmt.Fprintf(&b, "; and %d more", len(e.Errors)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.String())
	}
	return b.String()
}

// Details is the "details" object of the ERROR payload that
// [ValidationError.Payload] builds.
type Details struct {
	Schema string       `json:"schema"`
	Errors []FieldError `json:"errors"`
}

// Payload returns the ERROR payload that answers the rejected message:
// code schema_validation_failed, a message naming the schema and the
// number of errors, and [Details] listing every error.
func (e *ValidationError) Payload() *protocol.ErrorPayload {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Messages hold comparisons such as ">= 1"; keep them readable.
	enc.SetEscapeHTML(false)
	// Encoding strings into a buffer cannot fail.
	_ = enc.Encode(Details{Schema: e.Schema, Errors: e.Errors})
	noun := "errors"
	if len(e.Errors) == 1 {
		noun = "error"
	}
	return &protocol.ErrorPayload{
		Code:    protocol.CodeSchemaValidationFailed,
		Message: fmt.Sprintf("payload does not match schema %s: %d %s", e.Schema, len(e.Errors), noun),
		Details: json.RawMessage(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))),
	}
}

// InvalidValueError reports a value handed to [Catalogue.Validate] that
// holds a Go type the validator does not know: a programming error of the
// caller, who should pass what [DecodeJSON] returns.
type InvalidValueError struct {
	// Path is the JSON pointer of the offending value.
	Path string
	// Type is its Go type.
	Type string
}

func (e *InvalidValueError) Error() string {
	return fmt.Sprintf("schema: value at %q has Go type %s, not a decoded JSON value (use DecodeJSON)", e.Path, e.Type)
}

// fieldErrors flattens the library's tree of errors into its leaves, one
// FieldError each, sorted. A value of a type the validator does not know
// gives an *InvalidValueError instead.
func fieldErrors(verr *jsonschema.ValidationError) ([]FieldError, error) {
	var out []FieldError
	if err := collect(verr, &out); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b FieldError) int {
		return cmp.Or(
			strings.Compare(a.Path, b.Path),
			strings.Compare(a.KeywordLocation, b.KeywordLocation),
			strings.Compare(a.Message, b.Message),
		)
	})
	return slices.Compact(out), nil
}

func collect(e *jsonschema.ValidationError, out *[]FieldError) error {
	switch k := e.ErrorKind.(type) {
	case *kind.InvalidJsonValue:
		return &InvalidValueError{Path: pointer(e.InstanceLocation), Type: fmt.Sprintf("%T", k.Value)}
	case *kind.PropertyNames:
		// The library reports the object's location, and locates the causes
		// relative to the member name it validated as a value of its own.
		member := pointer(append(slices.Clip(e.InstanceLocation), k.Property))
		ls := leaves(e)
		if len(ls) == 1 && ls[0] == e {
			*out = append(*out, newFieldError(e, member, "member name is not allowed"))
			return nil
		}
		for _, l := range ls {
			*out = append(*out, newFieldError(l, member, "member name "+message(l.ErrorKind)))
		}
		return nil
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			member := pointer(append(slices.Clip(e.InstanceLocation), p))
			*out = append(*out, newFieldError(e, member, "member is not allowed"))
		}
		return nil
	case *kind.Required:
		for _, p := range k.Missing {
			member := pointer(append(slices.Clip(e.InstanceLocation), p))
			*out = append(*out, newFieldError(e, member, "required member is missing"))
		}
		return nil
	}
	if len(e.Causes) == 0 {
		*out = append(*out, newFieldError(e, pointer(e.InstanceLocation), message(e.ErrorKind)))
		return nil
	}
	for _, c := range e.Causes {
		if err := collect(c, out); err != nil {
			return err
		}
	}
	return nil
}

// newFieldError builds the entry for the leaf e at path.
func newFieldError(e *jsonschema.ValidationError, path, msg string) FieldError {
	u, frag, _ := strings.Cut(e.SchemaURL, "#")
	kw := unescapeFragment(frag)
	switch e.ErrorKind.(type) {
	case *kind.Not:
		kw += "/not"
	default:
		kw += pointer(e.ErrorKind.KeywordPath())
	}
	return FieldError{Path: path, Message: msg, Schema: idFromURL(u), KeywordLocation: kw}
}

// leaves returns the innermost errors under e, or e itself.
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

// pointer returns the JSON pointer of tokens.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

// unescapeFragment undoes the percent-encoding the library applies to each
// token of a location's fragment, leaving a JSON pointer.
func unescapeFragment(frag string) string {
	if !strings.Contains(frag, "%") {
		return frag
	}
	toks := strings.Split(frag, "/")
	for i, t := range toks {
		if u, err := url.PathUnescape(t); err == nil {
			toks[i] = u
		}
	}
	return strings.Join(toks, "/")
}

// message describes the failed keyword of a leaf error without quoting the
// value that failed it. Only what the schema itself says (bounds, patterns,
// allowed values, member names) is quoted.
func message(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return fmt.Sprintf("must be %s, not %s", strings.Join(k.Want, " or "), k.Got)
	case *kind.Enum:
		return "must be one of " + schemaValues(k.Want)
	case *kind.Const:
		return "must be " + schemaValues([]any{k.Want})
	case *kind.Format:
		return fmt.Sprintf("is not a valid %s", k.Want)
	case *kind.Pattern:
		return fmt.Sprintf("does not match pattern %q", k.Want)
	case *kind.Minimum:
		return "must be >= " + ratString(k.Want)
	case *kind.Maximum:
		return "must be <= " + ratString(k.Want)
	case *kind.ExclusiveMinimum:
		return "must be > " + ratString(k.Want)
	case *kind.ExclusiveMaximum:
		return "must be < " + ratString(k.Want)
	case *kind.MultipleOf:
		return "must be a multiple of " + ratString(k.Want)
	case *kind.MinLength:
		return fmt.Sprintf("must be at least %d characters long", k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %d characters long", k.Want)
	case *kind.MinItems:
		return fmt.Sprintf("must have at least %d items", k.Want)
	case *kind.MaxItems:
		return fmt.Sprintf("must have at most %d items", k.Want)
	case *kind.MinProperties:
		return fmt.Sprintf("must have at least %d members", k.Want)
	case *kind.MaxProperties:
		return fmt.Sprintf("must have at most %d members", k.Want)
	case *kind.UniqueItems:
		return fmt.Sprintf("items %d and %d are equal; items must be unique", k.Duplicates[0], k.Duplicates[1])
	case *kind.AdditionalItems:
		return fmt.Sprintf("the last %d items are not allowed", k.Count)
	case *kind.Contains:
		return "no item matches the \"contains\" schema"
	case *kind.Dependency:
		return fmt.Sprintf("members %s are required when %q is present", quoteAll(k.Missing), k.Prop)
	case *kind.DependentRequired:
		return fmt.Sprintf("members %s are required when %q is present", quoteAll(k.Missing), k.Prop)
	case *kind.OneOf:
		if len(k.Subschemas) >= 2 {
			return fmt.Sprintf("matches more than one \"oneOf\" schema (%d and %d)", k.Subschemas[0], k.Subschemas[1])
		}
		return "matches no \"oneOf\" schema"
	case *kind.AnyOf:
		return "matches no \"anyOf\" schema"
	case *kind.Not:
		return "must not match the \"not\" schema"
	case *kind.FalseSchema:
		return "is not allowed here"
	case *kind.RefCycle:
		return "the schema's references form a cycle"
	}
	if kw := k.KeywordPath(); len(kw) > 0 {
		return fmt.Sprintf("fails %q", kw[0])
	}
	return "is invalid"
}

// ratString prints a bound from a schema as a decimal number.
func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// schemaValues prints values taken from a schema, JSON-encoded and
// separated by commas.
func schemaValues(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte("?")
		}
		parts[i] = string(b)
	}
	return strings.Join(parts, ", ")
}

func quoteAll(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = strconv.Quote(s)
	}
	return strings.Join(parts, ", ")
}

package schema

import (
	"bytes"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// DecodeJSON decodes one JSON value into the form [Catalogue.Validate]
// takes: nil, bool, string, json.Number, []any and map[string]any. Numbers
// stay json.Number, so that an integer such as 9007199254740993 keeps its
// precision for "minimum", "maximum" and "integer" checks (this is the
// library's own decoding, jsonschema.UnmarshalJSON: encoding/json with
// UseNumber). Anything after the value is an error.
//
// On the path of a REQUEST the parameters are decoded once, here, and the
// decoded value is what is validated; [Catalogue.ValidateJSON] does both
// and decodes nothing when no schema applies.
func DecodeJSON(data []byte) (any, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("schema: decoding JSON: %w", err)
	}
	return v, nil
}

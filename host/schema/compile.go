package schema

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentmesh/agentmesh-go/schemas"
)

// newCompiler returns a draft-07 compiler that asserts formats and loads
// nothing from files or the network: only the documents added to it, the
// draft metaschemas the library embeds, and the standard schemas through
// [embeddedLoader].
func newCompiler() *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	c.UseLoader(embeddedLoader{})
	return c
}

// embeddedLoader serves the schemas of [schemas.FS] at their [BaseURL]
// address and refuses every other URL. The library's default loader would
// read any file:// URL a custom schema names.
type embeddedLoader struct{}

func (embeddedLoader) Load(url string) (any, error) {
	id, ok := strings.CutPrefix(url, BaseURL)
	if !ok || !standardIDs[id] {
		return nil, fmt.Errorf("only the schema itself and the standard schemas under %s may be referenced", BaseURL)
	}
	b, err := schemas.Open(id)
	if err != nil {
		return nil, err
	}
	return decodeSchema(id, b)
}

// decodeSchema decodes the schema document of id, checks that it is
// draft-07, and sets its root "$id" to the id's [BaseURL] address, so that
// every schema is known by one absolute URL whatever "$id" its file holds
// (the standard files hold the bare id, which the library would resolve
// against the working directory).
func decodeSchema(id string, data []byte) (any, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		// A boolean is a valid draft-07 schema; the metaschema refuses
		// anything else when the document is compiled.
		return doc, nil
	}
	if v, ok := obj["$schema"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, errors.New(`"$schema" is not a string`)
		}
		if !isDraft07(s) {
			return nil, fmt.Errorf(`"$schema" is %q: only draft-07 (http://json-schema.org/draft-07/schema#) is supported`, s)
		}
	}
	obj["$id"] = BaseURL + id
	return obj, nil
}

// isDraft07 reports whether s names the draft-07 metaschema.
func isDraft07(s string) bool {
	s = strings.TrimSuffix(s, "#")
	s, ok := strings.CutPrefix(s, "http://")
	if !ok {
		s, ok = strings.CutPrefix(s, "https://")
	}
	return ok && s == "json-schema.org/draft-07/schema"
}

// compileStandard compiles every schema of [schemas.FS] with one compiler.
func compileStandard() (map[string]*jsonschema.Schema, error) {
	c := newCompiler()
	out := make(map[string]*jsonschema.Schema, len(standardIDs))
	for id := range standardIDs {
		sch, err := c.Compile(BaseURL + id)
		if err != nil {
			return nil, fmt.Errorf("schema: compiling standard schema %s: %w", id, err)
		}
		out[id] = sch
	}
	return out, nil
}

// compileCustom compiles the document data as the custom schema id, with
// a compiler of its own so that a later version can be compiled afresh.
func compileCustom(id string, data []byte) (sch *jsonschema.Schema, err error) {
	if len(data) > MaxSchemaSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxSchemaSize)
	}
	doc, err := decodeSchema(id, data)
	if err != nil {
		return nil, err
	}
	c := newCompiler()
	url := BaseURL + id
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	sch, err = c.Compile(url)
	if err != nil {
		return nil, compileError(err)
	}
	return sch, nil
}

// compileError rewrites the library's metaschema failure, a multi-line
// tree, as one line listing each leaf: "at '/type': ...". The
// values quoted come from the schema document, not from any payload.
func compileError(err error) error {
	var sve *jsonschema.SchemaValidationError
	if !errors.As(err, &sve) {
		return err
	}
	var verr *jsonschema.ValidationError
	if !errors.As(sve.Err, &verr) {
		return err
	}
	var parts []string
	for _, l := range leaves(verr) {
		// A leaf prints as "at '<pointer>': <message>".
		parts = append(parts, l.Error())
	}
	return fmt.Errorf("not a valid draft-07 schema: %s", strings.Join(parts, "; "))
}

package skills

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/schemas"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
)

// ManifestFile is the name of a skill's manifest in its directory.
const ManifestFile = "skill.json"

// Protocol is the protocol a skill must declare in its manifest.
const Protocol = "agentmesh/0.2"

// maxManifestSize bounds a skill.json.
const maxManifestSize = 1 << 20

// Manifest is a skill's skill.json (DESIGN.md §5), as validated against the
// skill-manifest schema and decoded by [ParseManifest].
type Manifest struct {
	// Name is lower-case letters, digits and hyphens, starting with a
	// letter; it names the skill's directory.
	Name string `json:"name"`
	// Version is a semantic version.
	Version     string `json:"version"`
	Description string `json:"description"`
	// Protocol is always [Protocol].
	Protocol string `json:"protocol"`
	// Binary is the plugin executable, relative to the skill directory.
	Binary       string       `json:"binary"`
	Capabilities []Capability `json:"capabilities"`
	Permissions  Permissions  `json:"permissions"`
	// Config lists the options a user may set, by name.
	Config   map[string]ConfigOption `json:"config,omitempty"`
	Author   string                  `json:"author,omitempty"`
	Homepage string                  `json:"homepage,omitempty"`
	License  string                  `json:"license,omitempty"`
	Tags     []string                `json:"tags,omitempty"`
}

// Capability is one intent a skill handles.
type Capability struct {
	Intent string `json:"intent"`
	// Schema is the schema id REQUEST parameters must satisfy; empty for
	// none.
	Schema string `json:"schema,omitempty"`
	// ResponseSchema is the schema id RESPONSE results must satisfy; empty
	// for none.
	ResponseSchema string    `json:"response_schema,omitempty"`
	Description    string    `json:"description,omitempty"`
	Examples       []Example `json:"examples,omitempty"`
}

// Example is a sample request of a capability, with the response expected.
type Example struct {
	Name string `json:"name,omitempty"`
	// Request is a JSON object of REQUEST parameters.
	Request json.RawMessage `json:"request"`
	// Response is a JSON object of RESPONSE results; nil when absent.
	Response json.RawMessage `json:"response,omitempty"`
}

// Permissions is what a skill may reach. Anything not granted is denied.
type Permissions struct {
	Network    NetworkPermission `json:"network,omitzero"`
	Filesystem []FilesystemGrant `json:"filesystem,omitempty"`
	// HostAPI lists the host services the skill may call, such as
	// "status".
	HostAPI []string `json:"host_api,omitempty"`
}

// NetworkPermission is the "network" permission: true for any host (All),
// false or absent for none, or a list of hosts.
type NetworkPermission struct {
	All   bool
	Hosts []string
}

// UnmarshalJSON reads a boolean or an array of host names.
func (n *NetworkPermission) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		*n = NetworkPermission{}
		return json.Unmarshal(data, &n.Hosts)
	}
	var all bool
	if err := json.Unmarshal(data, &all); err != nil {
		return errors.New("must be a boolean or an array of hosts")
	}
	*n = NetworkPermission{All: all}
	return nil
}

// MarshalJSON writes the list of hosts when there is one, and a boolean
// otherwise.
func (n NetworkPermission) MarshalJSON() ([]byte, error) {
	if n.Hosts != nil {
		return json.Marshal(n.Hosts)
	}
	return json.Marshal(n.All)
}

// IsZero reports whether n grants nothing, so that it is left out of JSON.
func (n NetworkPermission) IsZero() bool { return !n.All && n.Hosts == nil }

// FilesystemGrant gives access to one path.
type FilesystemGrant struct {
	Path string `json:"path"`
	// Access is "read" or "write".
	Access string `json:"access"`
}

// OptionType is the type of a configuration option's values.
type OptionType string

// Option types.
const (
	OptionString  OptionType = "string"
	OptionInteger OptionType = "integer"
	OptionNumber  OptionType = "number"
	OptionBoolean OptionType = "boolean"
)

// ConfigOption is one typed configuration option.
type ConfigOption struct {
	Type OptionType `json:"type"`
	// Default is the value used when the user sets none; nil when the
	// option has no default.
	Default     json.RawMessage `json:"default,omitempty"`
	Description string          `json:"description,omitempty"`
	// Enum, when not empty, lists the only values allowed.
	Enum []json.RawMessage `json:"enum,omitempty"`
	// Minimum and Maximum bound integer and number options.
	Minimum *float64 `json:"minimum,omitempty"`
	Maximum *float64 `json:"maximum,omitempty"`
}

// Capability returns the capability of intent, or nil.
func (m *Manifest) Capability(intent string) *Capability {
	for i := range m.Capabilities {
		if m.Capabilities[i].Intent == intent {
			return &m.Capabilities[i]
		}
	}
	return nil
}

// Schemas returns the schema ids the capabilities name, sorted, each once.
func (m *Manifest) Schemas() []string {
	var ids []string
	for _, c := range m.Capabilities {
		for _, id := range []string{c.Schema, c.ResponseSchema} {
			if id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// Problem is one thing wrong with a manifest.
type Problem struct {
	// Path is the JSON pointer of the member at fault ("" for the whole
	// document), for example "/capabilities/0/intent".
	Path string
	// Message says what is wrong.
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ManifestError reports a skill.json that is not a valid manifest, with
// every problem found.
type ManifestError struct {
	// Problems is never empty.
	Problems []Problem
}

func (e *ManifestError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid " + ManifestFile + ": " + strings.Join(parts, "; ")
}

// ParseManifest validates data against the skill-manifest schema, always
// strictly, then decodes it, rejecting
// unknown members, and checks what the schema cannot: one capability per
// intent, the protocol version, host services the host offers, and
// configuration defaults that fit their enum and bounds. Problems are
// reported in a *ManifestError naming each one's JSON path.
//
// It does not check that the schemas the capabilities name exist: that
// depends on what the skill ships, which Install checks.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > maxManifestSize {
		return nil, &ManifestError{[]Problem{{"", fmt.Sprintf("%d bytes, limit %d", len(data), maxManifestSize)}}}
	}
	if problems, err := validateManifestSchema(data); err != nil {
		return nil, err
	} else if len(problems) > 0 {
		return nil, &ManifestError{problems}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, &ManifestError{[]Problem{jsonProblem(err)}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &ManifestError{[]Problem{{"", "data after the top-level object"}}}
	}
	if problems := m.check(); len(problems) > 0 {
		return nil, &ManifestError{problems}
	}
	return &m, nil
}

// check finds what the schema cannot express.
func (m *Manifest) check() []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{path, fmt.Sprintf(format, args...)})
	}
	if m.Protocol != Protocol {
		add("/protocol", "%q is not supported; this host speaks %s", m.Protocol, Protocol)
	}
	first := make(map[string]int, len(m.Capabilities))
	for i, c := range m.Capabilities {
		if j, dup := first[c.Intent]; dup {
			add(fmt.Sprintf("/capabilities/%d/intent", i), "intent %q is already declared by /capabilities/%d", c.Intent, j)
			continue
		}
		first[c.Intent] = i
	}
	offered := skillrpc.HostAPIs()
	for i, name := range m.Permissions.HostAPI {
		if !slices.Contains(offered, name) {
			add(fmt.Sprintf("/permissions/host_api/%d", i), "host service %q is not offered by this host (offered: %s)", name, strings.Join(offered, ", "))
		}
	}
	for _, name := range sortedKeys(m.Config) {
		opt := m.Config[name]
		base := "/config/" + name
		if opt.Minimum != nil && opt.Maximum != nil && *opt.Minimum > *opt.Maximum {
			add(base+"/minimum", "%s is above the maximum %s", fmtNum(*opt.Minimum), fmtNum(*opt.Maximum))
		}
		if opt.Default != nil {
			if err := opt.check(opt.Default); err != nil {
				add(base+"/default", "%v", err)
			}
		}
	}
	return ps
}

// check reports whether raw is a valid value of the option: of its type,
// in its enum and within its bounds.
func (o *ConfigOption) check(raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return errors.New("not valid JSON")
	}
	switch o.Type {
	case OptionString:
		if _, ok := v.(string); !ok {
			return errors.New("must be a string")
		}
	case OptionBoolean:
		if _, ok := v.(bool); !ok {
			return errors.New("must be a boolean")
		}
	case OptionInteger, OptionNumber:
		f, ok := v.(float64)
		if !ok {
			return errors.New("must be a number")
		}
		if o.Type == OptionInteger && (f != math.Trunc(f) || math.Abs(f) > 1<<53) {
			return fmt.Errorf("%s is not an integer", fmtNum(f))
		}
		if o.Minimum != nil && f < *o.Minimum {
			return fmt.Errorf("%s is below the minimum %s", fmtNum(f), fmtNum(*o.Minimum))
		}
		if o.Maximum != nil && f > *o.Maximum {
			return fmt.Errorf("%s is above the maximum %s", fmtNum(f), fmtNum(*o.Maximum))
		}
	default:
		return fmt.Errorf("unknown option type %q", o.Type)
	}
	if len(o.Enum) > 0 && !slices.ContainsFunc(o.Enum, func(e json.RawMessage) bool { return jsonEqual(e, raw) }) {
		return errors.New("not one of the enum values")
	}
	return nil
}

// jsonEqual reports whether two JSON scalars are the same value.
func jsonEqual(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return va == vb
}

// resolveConfig returns the configuration a plugin is started with: a JSON
// object holding, for every option, the user's value or else the default.
// Options with neither are left out. A user value for an unknown option or
// of the wrong kind is an error naming the option.
func resolveConfig(m *Manifest, user map[string]json.RawMessage) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(m.Config))
	for _, name := range sortedKeys(user) {
		opt, ok := m.Config[name]
		if !ok {
			return nil, fmt.Errorf("config option %q: skill %s has no such option", truncate(name), m.Name)
		}
		if err := opt.check(user[name]); err != nil {
			return nil, fmt.Errorf("config option %q: %w", name, err)
		}
		out[name] = user[name]
	}
	for name, opt := range m.Config {
		if _, set := out[name]; !set && opt.Default != nil {
			out[name] = opt.Default
		}
	}
	// encoding/json writes map keys sorted, so equal configurations encode
	// to equal bytes.
	return json.Marshal(out)
}

// strictCatalogue validates manifests: strictly, whatever mode the host's
// catalogue is in, and against the built-in skill-manifest schema only.
var strictCatalogue = sync.OnceValues(func() (*schema.Catalogue, error) {
	return schema.New(schema.Options{Mode: schema.ModeStrict})
})

// validateManifestSchema validates data against the skill-manifest schema
// and returns every error as a Problem.
func validateManifestSchema(data []byte) ([]Problem, error) {
	cat, err := strictCatalogue()
	if err != nil {
		return nil, fmt.Errorf("loading the skill-manifest schema: %w", err)
	}
	v, err := schema.DecodeJSON(data)
	if err != nil {
		return []Problem{{"", "not valid JSON: " + strings.TrimPrefix(err.Error(), "schema: decoding JSON: ")}}, nil
	}
	res, err := cat.Validate(context.Background(), schemas.SkillManifest, v)
	var verr *schema.ValidationError
	switch {
	case errors.As(err, &verr):
		problems := make([]Problem, len(verr.Errors))
		for i, fe := range verr.Errors {
			problems[i] = Problem{fe.Path, fe.Message}
		}
		return problems, nil
	case err != nil:
		return nil, fmt.Errorf("validating %s: %w", ManifestFile, err)
	case !res.Valid:
		// A strict catalogue that knows the schema validates or fails.
		return nil, fmt.Errorf("validating %s: not validated (%s)", ManifestFile, res.Skip)
	}
	return nil, nil
}

// jsonProblem turns an encoding/json error into a Problem naming the
// member, as far as the error says.
func jsonProblem(err error) Problem {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := ""
		if te.Field != "" {
			path = "/" + strings.ReplaceAll(te.Field, ".", "/")
		}
		return Problem{path, fmt.Sprintf("cannot hold a JSON %s (offset %d)", te.Value, te.Offset)}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return Problem{"", fmt.Sprintf("%v (offset %d)", se, se.Offset)}
	}
	return Problem{"", strings.TrimPrefix(err.Error(), "json: ")}
}

// jsonError turns an encoding/json error into an error naming the member.
func jsonError(err error) error {
	return errors.New(jsonProblem(err).String())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

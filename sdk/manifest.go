package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Manifest is a parsed skill.json (DESIGN.md §5). The host validates the
// same file against the skill-manifest schema; ParseManifest checks the
// rules a skill needs to serve correctly, with the same strictness.
type Manifest struct {
	// Name is lower-case letters, digits and hyphens, starting with a letter.
	Name string
	// Version is a Semantic Versioning 2.0.0 version.
	Version string
	// Description says what the skill does; never empty.
	Description string
	// Protocol is the protocol the skill speaks, for example agentmesh/0.2.
	Protocol string
	// Binary is the plugin executable, relative to the skill directory.
	Binary string
	// Capabilities lists the intents the skill handles; at least one, each
	// intent once.
	Capabilities []Capability
	// Permissions is what the skill may reach.
	Permissions Permissions
	// Config declares the options the user may set, by name; nil when the
	// skill has none.
	Config map[string]Option
	// Author, Homepage and License are informational; empty when absent.
	Author   string
	Homepage string
	License  string
	// Tags are informational keywords; nil when absent.
	Tags []string
}

// Capability is one intent a skill handles.
type Capability struct {
	// Intent is the REQUEST intent, for example travel/flights/search.
	Intent string
	// Schema is the schema id the REQUEST parameters satisfy; empty when
	// the capability declares none.
	Schema string
	// ResponseSchema is the schema id of the RESPONSE results; empty when
	// the capability declares none. The SDK puts it in every RESPONSE.
	ResponseSchema string
	// Description is informational; empty when absent.
	Description string
	// Examples are sample requests, replayed by skilltest.ReplayExamples.
	Examples []Example
}

// Example is a sample REQUEST of a capability, with the results it should
// produce.
type Example struct {
	// Name is empty when absent.
	Name string
	// Request is the REQUEST parameters, a JSON object.
	Request json.RawMessage
	// Response is a JSON object the RESPONSE results must contain; nil when
	// absent.
	Response json.RawMessage
}

// Permissions is what a skill may reach; anything not granted is denied.
type Permissions struct {
	// Network is the network access the skill needs.
	Network Network
	// Filesystem lists the paths the skill needs; nil for none.
	Filesystem []FilesystemAccess
	// HostAPI lists the host services the skill may call, for example
	// "status"; nil for none.
	HostAPI []string
}

// Network is the network permission: any host, or a list of hosts. It is
// written in skill.json as true, false, or an array of host names.
type Network struct {
	// Any is true when the skill may connect anywhere.
	Any bool
	// Hosts lists the hosts ("*."-prefixed for subdomains, with an
	// optional port) the skill may connect to when Any is false.
	Hosts []string
}

// FilesystemAccess is one filesystem permission.
type FilesystemAccess struct {
	// Path is the path the skill needs; never empty.
	Path string
	// Access is "read" or "write".
	Access string
}

// OptionType is the type of a configuration option.
type OptionType string

// Option types.
const (
	OptionString  OptionType = "string"
	OptionInteger OptionType = "integer"
	OptionNumber  OptionType = "number"
	OptionBoolean OptionType = "boolean"
)

// Option is a typed configuration option.
type Option struct {
	// Type is the type of the option's values.
	Type OptionType
	// Default is the value used when the host supplies none, as JSON of the
	// option's type; nil when the option has no default.
	Default json.RawMessage
	// Description is informational; empty when absent.
	Description string
	// Enum, when not nil, lists the values allowed, as JSON.
	Enum []json.RawMessage
	// Minimum and Maximum bound integer and number options; nil when
	// absent.
	Minimum *float64
	Maximum *float64
}

// Capability returns the capability declaring intent.
func (m *Manifest) Capability(intent string) (Capability, bool) {
	for _, c := range m.Capabilities {
		if c.Intent == intent {
			return c, true
		}
	}
	return Capability{}, false
}

// ManifestError reports a skill.json that is not valid. It names the field
// as a path such as "capabilities[0].intent"; Field is empty when the
// problem is with the file as a whole.
type ManifestError struct {
	Field   string
	Problem string
}

func (e *ManifestError) Error() string {
	if e.Field == "" {
		return "skill.json: " + e.Problem
	}
	return "skill.json: " + e.Field + ": " + e.Problem
}

func manifestErr(field, format string, args ...any) error {
	return &ManifestError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// The patterns of schemas/agentmesh/skill-manifest/v1.json.
var (
	namePattern     = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)
	versionPattern  = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?(\+([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?$`)
	protocolPattern = regexp.MustCompile(`^agentmesh/[0-9]+\.[0-9]+$`)
	binaryPattern   = regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)
	intentPattern   = regexp.MustCompile(`^[a-z0-9_-]+(/[a-z0-9_-]+)*$`)
	schemaIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)+$`)
	hostAPIPattern  = regexp.MustCompile(`^[a-z_]+$`)
	hostPattern     = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)
	optionPattern   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// ParseManifest parses and checks skill.json. Unknown members are
// rejected, as the host's schema does; the error is a *ManifestError
// naming the first bad field.
func ParseManifest(b []byte) (*Manifest, error) {
	obj, err := object("", b)
	if err != nil {
		return nil, err
	}
	if err := obj.only("name", "version", "description", "protocol", "binary",
		"capabilities", "permissions", "config", "author", "homepage", "license", "tags"); err != nil {
		return nil, err
	}
	m := new(Manifest)
	fields := []struct {
		name    string
		dst     *string
		pattern *regexp.Regexp
	}{
		{"name", &m.Name, namePattern},
		{"version", &m.Version, versionPattern},
		{"description", &m.Description, nil},
		{"protocol", &m.Protocol, protocolPattern},
		{"binary", &m.Binary, binaryPattern},
	}
	for _, f := range fields {
		if *f.dst, err = obj.requiredString(f.name, f.pattern); err != nil {
			return nil, err
		}
	}
	if m.Description == "" {
		return nil, manifestErr("description", "empty")
	}
	for elem := range strings.SplitSeq(m.Binary, "/") {
		if elem == "." || elem == ".." {
			return nil, manifestErr("binary", "%q has a %q element", m.Binary, elem)
		}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"author", &m.Author}, {"homepage", &m.Homepage}, {"license", &m.License}} {
		if *f.dst, err = obj.optionalString(f.name, nil); err != nil {
			return nil, err
		}
	}
	if m.Homepage != "" {
		if u, err := url.Parse(m.Homepage); err != nil || u.Scheme == "" {
			return nil, manifestErr("homepage", "%q is not an absolute URI", m.Homepage)
		}
	}
	if m.Tags, err = obj.stringList("tags", nil, true); err != nil {
		return nil, err
	}
	for i, tag := range m.Tags {
		if tag == "" {
			return nil, manifestErr(fmt.Sprintf("tags[%d]", i), "empty")
		}
	}
	if m.Capabilities, err = parseCapabilities(obj); err != nil {
		return nil, err
	}
	if m.Permissions, err = parsePermissions(obj); err != nil {
		return nil, err
	}
	if m.Config, err = parseConfig(obj); err != nil {
		return nil, err
	}
	return m, nil
}

func parseCapabilities(obj jsonObject) ([]Capability, error) {
	raw, ok := obj.members["capabilities"]
	if !ok {
		return nil, manifestErr("capabilities", "missing")
	}
	items, err := array("capabilities", raw)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, manifestErr("capabilities", "must declare at least one capability")
	}
	caps := make([]Capability, 0, len(items))
	for i, item := range items {
		path := fmt.Sprintf("capabilities[%d]", i)
		c, err := object(path, item)
		if err != nil {
			return nil, err
		}
		if err := c.only("intent", "schema", "response_schema", "description", "examples"); err != nil {
			return nil, err
		}
		var cp Capability
		if cp.Intent, err = c.requiredString("intent", intentPattern); err != nil {
			return nil, err
		}
		if cp.Schema, err = c.optionalString("schema", schemaIDPattern); err != nil {
			return nil, err
		}
		if cp.ResponseSchema, err = c.optionalString("response_schema", schemaIDPattern); err != nil {
			return nil, err
		}
		if cp.Description, err = c.optionalString("description", nil); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(caps, func(o Capability) bool { return o.Intent == cp.Intent }) {
			return nil, manifestErr(path+".intent", "%q is declared twice", cp.Intent)
		}
		if cp.Examples, err = parseExamples(c); err != nil {
			return nil, err
		}
		caps = append(caps, cp)
	}
	return caps, nil
}

func parseExamples(c jsonObject) ([]Example, error) {
	raw, ok := c.members["examples"]
	if !ok {
		return nil, nil
	}
	items, err := array(c.path+".examples", raw)
	if err != nil {
		return nil, err
	}
	var out []Example
	for i, item := range items {
		e, err := object(fmt.Sprintf("%s.examples[%d]", c.path, i), item)
		if err != nil {
			return nil, err
		}
		if err := e.only("name", "request", "response"); err != nil {
			return nil, err
		}
		var ex Example
		if ex.Name, err = e.optionalString("name", nil); err != nil {
			return nil, err
		}
		req, ok := e.members["request"]
		if !ok {
			return nil, manifestErr(e.path+".request", "missing")
		}
		if _, err := object(e.path+".request", req); err != nil {
			return nil, err
		}
		ex.Request = bytes.Clone(req)
		if resp, ok := e.members["response"]; ok {
			if _, err := object(e.path+".response", resp); err != nil {
				return nil, err
			}
			ex.Response = bytes.Clone(resp)
		}
		out = append(out, ex)
	}
	return out, nil
}

func parsePermissions(obj jsonObject) (Permissions, error) {
	var p Permissions
	raw, ok := obj.members["permissions"]
	if !ok {
		return p, manifestErr("permissions", "missing")
	}
	po, err := object("permissions", raw)
	if err != nil {
		return p, err
	}
	if err := po.only("network", "filesystem", "host_api"); err != nil {
		return p, err
	}
	if raw, ok := po.members["network"]; ok {
		switch t := string(bytes.TrimSpace(raw)); {
		case t == "true":
			p.Network.Any = true
		case t == "false":
		case strings.HasPrefix(t, "["):
			if p.Network.Hosts, err = po.stringList("network", hostPattern, true); err != nil {
				return p, err
			}
		default:
			return p, manifestErr("permissions.network", "must be true, false or an array of host names")
		}
	}
	if raw, ok := po.members["filesystem"]; ok {
		items, err := array("permissions.filesystem", raw)
		if err != nil {
			return p, err
		}
		for i, item := range items {
			fo, err := object(fmt.Sprintf("permissions.filesystem[%d]", i), item)
			if err != nil {
				return p, err
			}
			if err := fo.only("path", "access"); err != nil {
				return p, err
			}
			var fa FilesystemAccess
			if fa.Path, err = fo.requiredString("path", nil); err != nil {
				return p, err
			}
			if fa.Path == "" {
				return p, manifestErr(fo.path+".path", "empty")
			}
			if fa.Access, err = fo.requiredString("access", nil); err != nil {
				return p, err
			}
			if fa.Access != "read" && fa.Access != "write" {
				return p, manifestErr(fo.path+".access", "%q is not \"read\" or \"write\"", fa.Access)
			}
			p.Filesystem = append(p.Filesystem, fa)
		}
	}
	if p.HostAPI, err = po.stringList("host_api", hostAPIPattern, true); err != nil {
		return p, err
	}
	return p, nil
}

func parseConfig(obj jsonObject) (map[string]Option, error) {
	raw, ok := obj.members["config"]
	if !ok {
		return nil, nil
	}
	co, err := object("config", raw)
	if err != nil {
		return nil, err
	}
	opts := make(map[string]Option, len(co.members))
	for _, name := range co.order {
		path := "config." + name
		if !optionPattern.MatchString(name) {
			return nil, manifestErr(path, "option names are lower-case letters, digits and '_', starting with a letter")
		}
		oo, err := object(path, co.members[name])
		if err != nil {
			return nil, err
		}
		if err := oo.only("type", "default", "description", "enum", "minimum", "maximum"); err != nil {
			return nil, err
		}
		var o Option
		typ, err := oo.requiredString("type", nil)
		if err != nil {
			return nil, err
		}
		o.Type = OptionType(typ)
		switch o.Type {
		case OptionString, OptionInteger, OptionNumber, OptionBoolean:
		default:
			return nil, manifestErr(path+".type", "%q is not string, integer, number or boolean", typ)
		}
		if o.Description, err = oo.optionalString("description", nil); err != nil {
			return nil, err
		}
		for _, bound := range []struct {
			name string
			dst  **float64
		}{{"minimum", &o.Minimum}, {"maximum", &o.Maximum}} {
			raw, ok := oo.members[bound.name]
			if !ok {
				continue
			}
			if o.Type != OptionInteger && o.Type != OptionNumber {
				return nil, manifestErr(path+"."+bound.name, "only integer and number options have bounds")
			}
			var v float64
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, manifestErr(path+"."+bound.name, "must be a number")
			}
			*bound.dst = &v
		}
		if o.Minimum != nil && o.Maximum != nil && *o.Minimum > *o.Maximum {
			return nil, manifestErr(path+".minimum", "greater than maximum")
		}
		if raw, ok := oo.members["enum"]; ok {
			items, err := array(path+".enum", raw)
			if err != nil {
				return nil, err
			}
			if len(items) == 0 {
				return nil, manifestErr(path+".enum", "empty")
			}
			for i, item := range items {
				if _, err := o.decode(item); err != nil {
					return nil, manifestErr(fmt.Sprintf("%s.enum[%d]", path, i), "%v", err)
				}
				o.Enum = append(o.Enum, bytes.Clone(item))
			}
		}
		if raw, ok := oo.members["default"]; ok {
			// The default must pass the same checks as a value the host
			// sends, or a skill would run with a value it cannot be given.
			if _, err := o.check(raw); err != nil {
				return nil, manifestErr(path+".default", "%v", err)
			}
			o.Default = bytes.Clone(raw)
		}
		opts[name] = o
	}
	return opts, nil
}

// optionValue is a decoded configuration value.
type optionValue struct {
	s string
	f float64
	b bool
}

// decode decodes raw as a value of the option's type.
func (o *Option) decode(raw json.RawMessage) (optionValue, error) {
	var v optionValue
	raw = bytes.TrimSpace(raw)
	wrongType := fmt.Errorf("want a value of type %s", o.Type)
	switch o.Type {
	case OptionString:
		if !isJSONString(raw) || json.Unmarshal(raw, &v.s) != nil {
			return v, wrongType
		}
	case OptionBoolean:
		switch string(raw) {
		case "true":
			v.b = true
		case "false":
		default:
			return v, wrongType
		}
	case OptionInteger, OptionNumber:
		if !isJSONNumber(raw) || json.Unmarshal(raw, &v.f) != nil {
			return v, wrongType
		}
		if o.Type == OptionInteger && (v.f != math.Trunc(v.f) || math.Abs(v.f) > 1<<53) {
			return v, fmt.Errorf("%s is not an integer", raw)
		}
	}
	return v, nil
}

// check decodes raw and checks it against the option's enum and bounds.
func (o *Option) check(raw json.RawMessage) (optionValue, error) {
	v, err := o.decode(raw)
	if err != nil {
		return v, err
	}
	if o.Minimum != nil && v.f < *o.Minimum {
		return v, fmt.Errorf("%s is below the minimum %g", bytes.TrimSpace(raw), *o.Minimum)
	}
	if o.Maximum != nil && v.f > *o.Maximum {
		return v, fmt.Errorf("%s is above the maximum %g", bytes.TrimSpace(raw), *o.Maximum)
	}
	if o.Enum != nil {
		found := false
		for _, e := range o.Enum {
			ev, _ := o.decode(e)
			if ev == v {
				found = true
				break
			}
		}
		if !found {
			return v, fmt.Errorf("not one of the enum values")
		}
	}
	return v, nil
}

func isJSONString(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '"'
}

func isJSONNumber(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

// jsonObject is one JSON object of skill.json, with its path and the order
// of its members (for stable error messages).
type jsonObject struct {
	path    string
	members map[string]json.RawMessage
	order   []string
}

// object decodes raw as a JSON object at path.
func object(path string, raw []byte) (jsonObject, error) {
	o := jsonObject{path: path}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return o, manifestErr(path, "not valid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return o, manifestErr(path, "must be a JSON object")
	}
	o.members = make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return o, manifestErr(path, "not valid JSON: %v", err)
		}
		key := tok.(string) // object keys are always strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return o, manifestErr(o.child(key), "not valid JSON: %v", err)
		}
		if _, dup := o.members[key]; dup {
			return o, manifestErr(o.child(key), "appears twice")
		}
		o.members[key] = v
		o.order = append(o.order, key)
	}
	if _, err := dec.Token(); err != nil {
		return o, manifestErr(path, "not valid JSON: %v", err)
	}
	if path == "" {
		if _, err := dec.Token(); err == nil {
			return o, manifestErr("", "data after the JSON object")
		}
	}
	return o, nil
}

func (o jsonObject) child(name string) string {
	if o.path == "" {
		return name
	}
	return o.path + "." + name
}

// only rejects members not in allowed.
func (o jsonObject) only(allowed ...string) error {
	for _, k := range o.order {
		if !slices.Contains(allowed, k) {
			return manifestErr(o.child(k), "unknown member")
		}
	}
	return nil
}

func (o jsonObject) requiredString(name string, pattern *regexp.Regexp) (string, error) {
	if _, ok := o.members[name]; !ok {
		return "", manifestErr(o.child(name), "missing")
	}
	return o.optionalString(name, pattern)
}

func (o jsonObject) optionalString(name string, pattern *regexp.Regexp) (string, error) {
	raw, ok := o.members[name]
	if !ok {
		return "", nil
	}
	var s string
	if !isJSONString(raw) || json.Unmarshal(raw, &s) != nil {
		return "", manifestErr(o.child(name), "must be a string")
	}
	if pattern != nil && !pattern.MatchString(s) {
		return "", manifestErr(o.child(name), "%q does not match %s", s, pattern)
	}
	return s, nil
}

// stringList decodes an optional array of strings.
func (o jsonObject) stringList(name string, pattern *regexp.Regexp, unique bool) ([]string, error) {
	raw, ok := o.members[name]
	if !ok {
		return nil, nil
	}
	items, err := array(o.child(name), raw)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, item := range items {
		path := fmt.Sprintf("%s[%d]", o.child(name), i)
		var s string
		if !isJSONString(item) || json.Unmarshal(item, &s) != nil {
			return nil, manifestErr(path, "must be a string")
		}
		if pattern != nil && !pattern.MatchString(s) {
			return nil, manifestErr(path, "%q does not match %s", s, pattern)
		}
		if unique && slices.Contains(out, s) {
			return nil, manifestErr(path, "%q appears twice", s)
		}
		out = append(out, s)
	}
	return out, nil
}

func array(path string, raw []byte) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, manifestErr(path, "must be an array")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, manifestErr(path, "not valid JSON: %v", err)
	}
	return items, nil
}

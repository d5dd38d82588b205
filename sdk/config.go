package sdk

import (
	"bytes"
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Config is a skill's configuration: the values the host sent for the
// options skill.json declares, and the manifest's defaults for the rest.
// It is safe for concurrent use; the host may send new values while
// requests are served, and each accessor sees either the old or the new
// set.
type Config struct {
	options map[string]Option
	log     hclog.Logger
	values  atomic.Pointer[map[string]optionValue] // values the host set
	dflts   map[string]optionValue
}

func newConfig(options map[string]Option, log hclog.Logger) *Config {
	c := &Config{options: options, log: log, dflts: make(map[string]optionValue)}
	for name, o := range options {
		if o.Default != nil {
			// ParseManifest checked every default.
			v, _ := o.check(o.Default)
			c.dflts[name] = v
		}
	}
	empty := map[string]optionValue{}
	c.values.Store(&empty)
	return c
}

// set replaces the host's values with those in raw, a JSON object of
// option name to value. Nothing changes when any value is bad; the error
// names the option.
func (c *Config) set(raw []byte) error {
	vals := make(map[string]optionValue)
	if len(bytes.TrimSpace(raw)) > 0 {
		obj, err := object("config", raw)
		if err != nil {
			return err
		}
		for _, name := range obj.order {
			o, ok := c.options[name]
			if !ok {
				return manifestErr("config."+name, "not an option declared in skill.json")
			}
			if string(bytes.TrimSpace(obj.members[name])) == "null" {
				continue // null: use the default
			}
			v, err := o.check(obj.members[name])
			if err != nil {
				return manifestErr("config."+name, "%v", err)
			}
			vals[name] = v
		}
	}
	c.values.Store(&vals)
	return nil
}

// lookup returns the value of the option name, checking that it is
// declared with type want.
func (c *Config) lookup(name string, want ...OptionType) (optionValue, bool) {
	o, ok := c.options[name]
	if !ok {
		c.log.Error("config option is not declared in skill.json", "option", name)
		return optionValue{}, false
	}
	typeOK := false
	for _, w := range want {
		typeOK = typeOK || o.Type == w
	}
	if !typeOK {
		c.log.Error("config option read with the wrong type", "option", name, "type", string(o.Type), "want", fmt.Sprint(want))
		return optionValue{}, false
	}
	if v, ok := (*c.values.Load())[name]; ok {
		return v, true
	}
	v, ok := c.dflts[name]
	return v, ok
}

// IsSet reports whether the host supplied a value for the option name, as
// opposed to the default applying.
func (c *Config) IsSet(name string) bool {
	_, ok := (*c.values.Load())[name]
	return ok
}

// String returns the value of the string option name: the host's value,
// else the default, else "". Reading an option skill.json does not declare
// as a string returns "" and logs an error.
func (c *Config) String(name string) string {
	v, _ := c.lookup(name, OptionString)
	return v.s
}

// Int returns the value of the integer option name: the host's value, else
// the default, else 0. Reading an option skill.json does not declare as an
// integer returns 0 and logs an error.
func (c *Config) Int(name string) int64 {
	v, _ := c.lookup(name, OptionInteger)
	return int64(v.f)
}

// Float returns the value of the number (or integer) option name: the
// host's value, else the default, else 0. Reading an option skill.json
// does not declare as a number returns 0 and logs an error.
func (c *Config) Float(name string) float64 {
	v, _ := c.lookup(name, OptionNumber, OptionInteger)
	return v.f
}

// Bool returns the value of the boolean option name: the host's value,
// else the default, else false. Reading an option skill.json does not
// declare as a boolean returns false and logs an error.
func (c *Config) Bool(name string) bool {
	v, _ := c.lookup(name, OptionBoolean)
	return v.b
}

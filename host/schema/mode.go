package schema

import "fmt"

// Mode says what the catalogue does with a payload that fails its schema
// (PROTOCOL.md §7.4). The zero Mode is [ModeWarning].
type Mode int

// Validation modes.
const (
	// ModeWarning logs every error and lets the payload through.
	ModeWarning Mode = iota
	// ModeStrict rejects the payload with a [*ValidationError].
	ModeStrict
	// ModeSilent does not validate at all.
	ModeSilent
)

var modeNames = [...]string{
	ModeWarning: "warning",
	ModeStrict:  "strict",
	ModeSilent:  "silent",
}

// String returns "warning", "strict" or "silent".
func (m Mode) String() string {
	if m < 0 || int(m) >= len(modeNames) {
		return fmt.Sprintf("Mode(%d)", int(m))
	}
	return modeNames[m]
}

// ParseMode parses "warning", "strict" or "silent". The empty string is
// the default, [ModeWarning].
func ParseMode(s string) (Mode, error) {
	if s == "" {
		return ModeWarning, nil
	}
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("schema: unknown validation mode %q: want warning, strict or silent", s)
}

// MarshalText implements [encoding.TextMarshaler].
func (m Mode) MarshalText() ([]byte, error) {
	if m < 0 || int(m) >= len(modeNames) {
		return nil, fmt.Errorf("schema: unknown validation mode %d", int(m))
	}
	return []byte(modeNames[m]), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with [ParseMode].
func (m *Mode) UnmarshalText(text []byte) error {
	v, err := ParseMode(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

package schema_test

import (
	"testing"

	"github.com/agentmesh/agentmesh-go/host/schema"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    schema.Mode
		wantErr bool
	}{
		{in: "", want: schema.ModeWarning},
		{in: "warning", want: schema.ModeWarning},
		{in: "strict", want: schema.ModeStrict},
		{in: "silent", want: schema.ModeSilent},
		{in: "Strict", wantErr: true},
		{in: "warn", wantErr: true},
		{in: "loud", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := schema.ParseMode(tt.in)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ParseMode(%q) error = %v, want error: %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseMode(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestModeText(t *testing.T) {
	for _, m := range []schema.Mode{schema.ModeWarning, schema.ModeStrict, schema.ModeSilent} {
		t.Run(m.String(), func(t *testing.T) {
			text, err := m.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var got schema.Mode
			if err := got.UnmarshalText(text); err != nil {
				t.Fatal(err)
			}
			if got != m {
				t.Errorf("round trip of %v through %q gave %v", m, text, got)
			}
		})
	}
	if _, err := schema.Mode(7).MarshalText(); err == nil {
		t.Error("MarshalText of Mode(7) succeeded")
	}
	if got, want := schema.Mode(7).String(), "Mode(7)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := schema.New(schema.Options{Mode: 7}); err == nil {
		t.Error("New with Mode(7) succeeded")
	}
}

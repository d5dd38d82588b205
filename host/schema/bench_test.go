package schema_test

import (
	"errors"
	"testing"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/schemas"
)

// The benchmarks use a 1 KiB flight-search REQUEST parameters object: a
// booking with both flights, and members the schema does not describe.
// The invalid one breaks five constraints.

func BenchmarkDecodeJSON(b *testing.B) {
	data := readTestdata(b, "flight-request.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := schema.DecodeJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	tests := []struct {
		name    string
		file    string
		mode    schema.Mode
		wantErr bool
	}{
		{name: "valid", file: "flight-request.json", mode: schema.ModeStrict},
		{name: "invalid-strict", file: "flight-request-invalid.json", mode: schema.ModeStrict, wantErr: true},
		{name: "invalid-warning", file: "flight-request-invalid.json", mode: schema.ModeWarning},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			c, err := schema.New(schema.Options{Mode: tt.mode})
			if err != nil {
				b.Fatal(err)
			}
			data := readTestdata(b, tt.file)
			v, err := schema.DecodeJSON(data)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				_, err := c.Validate(ctx, schemas.FlightSearch, v)
				if got := errors.As(err, new(*schema.ValidationError)); got != tt.wantErr {
					b.Fatalf("Validate error = %v", err)
				}
			}
		})
	}
}

// BenchmarkValidateJSON is the whole hot path: decode once, validate.
func BenchmarkValidateJSON(b *testing.B) {
	for _, file := range []string{"flight-request.json", "flight-request-invalid.json"} {
		b.Run(file, func(b *testing.B) {
			c, err := schema.New(schema.Options{Mode: schema.ModeStrict})
			if err != nil {
				b.Fatal(err)
			}
			data := readTestdata(b, file)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				_, err := c.ValidateJSON(ctx, schemas.FlightSearch, data)
				if err != nil && !errors.As(err, new(*schema.ValidationError)) {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidateCustom measures a custom schema, which costs an lstat of
// its file on every use.
func BenchmarkValidateCustom(b *testing.B) {
	c, err := schema.New(schema.Options{Dir: b.TempDir(), Mode: schema.ModeStrict})
	if err != nil {
		b.Fatal(err)
	}
	doc, err := schemas.Open(schemas.FlightSearch)
	if err != nil {
		b.Fatal(err)
	}
	const id = "x-acme/flight-search/v1"
	if err := c.Register(id, doc); err != nil {
		b.Fatal(err)
	}
	data := readTestdata(b, "flight-request.json")
	v, err := schema.DecodeJSON(data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if res, err := c.Validate(ctx, id, v); err != nil || !res.Valid {
			b.Fatalf("Validate = %+v, %v", res, err)
		}
	}
}

// BenchmarkSkip is the cost of a payload that names no schema, or one the
// catalogue does not know.
func BenchmarkSkip(b *testing.B) {
	c, err := schema.New(schema.Options{Mode: schema.ModeStrict})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := c.ValidateJSON(ctx, "", nil); res.Skip != schema.SkipNoSchema {
			b.Fatal(res)
		}
	}
}

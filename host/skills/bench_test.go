package skills

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

var benchRequest = request("test/echo", `{"text":"hello","n":3}`)

// BenchmarkDispatch is one REQUEST through a warm plugin: validation of
// the parameters, the gRPC round trip to the skill process, the SDK's
// decoding and encoding, and validation of the results.
func BenchmarkDispatch(b *testing.B) {
	home := b.TempDir()
	cat, err := schema.New(schema.Options{Dir: filepath.Join(home, "schemas"), Mode: schema.ModeStrict})
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(Options{Home: home, Schemas: cat, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if _, err := m.Install(ctx, stageSkill(b, "testskill")); err != nil {
		b.Fatal(err)
	}
	if err := m.Start(ctx, "testskill"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := m.Dispatch(ctx, benchRequest, DispatchMeta{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := p.(*protocol.Response); !ok {
			b.Fatalf("got %+v", p)
		}
	}
}

// BenchmarkDispatchInProcess is the same work without the plugin: the echo
// handler of testskill called directly, with the same validation of the
// parameters and results and the same RESPONSE built.
func BenchmarkDispatchInProcess(b *testing.B) {
	cat, err := schema.New(schema.Options{Dir: b.TempDir(), Mode: schema.ModeStrict})
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range []string{"x-test/echo/v1", "x-test/echo-result/v1"} {
		doc, err := os.ReadFile(filepath.Join("testdata", "skills", "testskill", "schemas", filepath.FromSlash(id)+".json"))
		if err != nil {
			b.Fatal(err)
		}
		if err := cat.Register(id, doc); err != nil {
			b.Fatal(err)
		}
	}
	// The handler of testskill's test/echo, decoding and encoding as the
	// SDK does.
	handle := func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
		var p struct {
			Text     string `json:"text"`
			N        int    `json:"n"`
			Progress bool   `json:"progress"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		return json.Marshal(struct {
			Text string `json:"text"`
		}{p.Text})
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := cat.ValidateJSON(ctx, "x-test/echo/v1", benchRequest.Parameters); err != nil {
			b.Fatal(err)
		}
		results, err := handle(ctx, benchRequest.Parameters)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cat.ValidateJSON(ctx, "x-test/echo-result/v1", results); err != nil {
			b.Fatal(err)
		}
		resp := &protocol.Response{
			Status:           protocol.ResponseSuccess,
			Results:          results,
			ProcessingTimeMS: time.Since(start).Milliseconds(),
			CompletedAt:      time.Now().UTC(),
			Schema:           "x-test/echo-result/v1",
		}
		if err := resp.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

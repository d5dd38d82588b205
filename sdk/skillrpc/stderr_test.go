package skillrpc_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/sdk/skillrpc"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// stderrLines is what the plugin of TestSkillStderr writes before its
// handshake: hclog JSON, JSON that go-plugin's own parser panics on, and
// plain text.
var stderrLines = []string{
	`{"@level":"warn","@message":"low fuel","@timestamp":"2026-01-02T03:04:05.000000Z","litres":3}`,
	`{"@message":1,"@level":"error"}`,
	`{"@level":["x"],"@message":"odd level"}`,
	`[ERROR] prefixed line`,
	`just text`,
	`panic: something broke`,
	`goroutine 1 [running]:`,
}

func TestMain(m *testing.M) {
	if os.Getenv(skillrpc.Handshake.MagicCookieKey) == skillrpc.Handshake.MagicCookieValue {
		// Started by TestSkillStderr as a plugin.
		for _, l := range stderrLines {
			fmt.Fprintln(os.Stderr, l)
		}
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  skillrpc.Handshake,
			VersionedPlugins: skillrpc.ServePluginSet(&skillrpc.SkillGRPCPlugin{Impl: &scriptedSkill{}}),
			GRPCServer:       plugin.DefaultGRPCServer,
			Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Off}),
		})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSkillStderr checks that whatever a skill writes on stderr reaches
// the host's logger, at the level of hclog JSON lines, and that no line
// can crash the host.
func TestSkillStderr(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	var out logtest.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Trace, Output: &out, JSONFormat: true})
	pc := plugin.NewClient(skillrpc.ClientConfig(exec.Command(self), sum[:], logger))
	rpc, err := pc.Client()
	if err != nil {
		pc.Kill()
		t.Fatal(err)
	}
	if _, err := skillrpc.Dispense(rpc); err != nil {
		t.Fatal(err)
	}
	pc.Kill() // returns once the host has read all of the plugin's stderr

	want := []struct {
		level, message string
		field          string
		value          any
	}{
		{"warn", "low fuel", "litres", 3.0},
		{"debug", `{"@message":1,"@level":"error"}`, "", nil},
		{"debug", `{"@level":["x"],"@message":"odd level"}`, "", nil},
		{"error", "[ERROR] prefixed line", "", nil},
		{"debug", "just text", "", nil},
		{"error", "panic: something broke", "", nil},
		{"error", "goroutine 1 [running]:", "", nil},
	}
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("host log line %q: %v", line, err)
		}
		if m["@module"] == "host."+baseName(self) {
			got = append(got, m)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d skill lines in the host log, want %d:\n%s", len(got), len(want), out.String())
	}
	for i, w := range want {
		g := got[i]
		if g["@level"] != w.level || g["@message"] != w.message {
			t.Errorf("line %d: got %v %q, want %s %q", i, g["@level"], g["@message"], w.level, w.message)
		}
		if w.field != "" && g[w.field] != w.value {
			t.Errorf("line %d: got %s=%v, want %v", i, w.field, g[w.field], w.value)
		}
	}
}

func baseName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

package schemas_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentmesh/agentmesh-go/schemas"
)

// TestRepositoryManifests validates the manifests the repository ships: the
// AgentMesh skill itself (skill.json at the root) against agent-skill, and
// every bundled plugin's skill.json against skill-manifest.
func TestRepositoryManifests(t *testing.T) {
	compiled := compileAll(t)
	files := []struct{ path, schema string }{{filepath.Join("..", "skill.json"), schemas.AgentSkill}}
	plugins, err := filepath.Glob(filepath.Join("..", "plugins", "*", "skill.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plugins {
		files = append(files, struct{ path, schema string }{p, schemas.SkillManifest})
	}
	for _, f := range files {
		t.Run(f.path, func(t *testing.T) {
			b, err := os.ReadFile(f.path)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s is not JSON: %v", f.path, err)
			}
			if err := compiled[f.schema].Validate(inst); err != nil {
				t.Errorf("%s does not satisfy %s: %v", f.path, f.schema, err)
			}
		})
	}
}

// TestAgentSkillManifest pins what the AgentMesh skill must say about
// itself: its version, the E2EE and KNOCK story, the mesh_* commands and the
// dashboard port.
func TestAgentSkillManifest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "skill.json"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	m := inst.(map[string]any)
	if got := m["version"]; got != "0.2.0" {
		t.Errorf("version = %v, want 0.2.0", got)
	}
	desc, _ := m["description"].(string)
	for _, word := range []string{"E2EE", "KNOCK"} {
		if !bytes.Contains([]byte(desc), []byte(word)) {
			t.Errorf("description does not mention %s", word)
		}
	}
	if m["homepage"] == nil {
		t.Error("no homepage")
	}
	have := map[string]bool{}
	for _, c := range m["commands"].([]any) {
		have[c.(map[string]any)["name"].(string)] = true
	}
	for _, want := range []string{"mesh_send", "mesh_search", "mesh_status", "mesh_policy", "mesh_dashboard",
		"mesh_connect", "mesh_disconnect", "mesh_skill_install", "mesh_skill_list", "mesh_skill_remove"} {
		if !have[want] {
			t.Errorf("command %s missing", want)
		}
	}
	port := m["config"].(map[string]any)["dashboard_port"].(map[string]any)
	if def := port["default"]; def == nil || def.(interface{ String() string }).String() != "7777" {
		t.Errorf("dashboard_port default = %v, want 7777", def)
	}
	if _, ok := m["install"].(map[string]any)["go"].(string); !ok {
		t.Error("install.go missing")
	}
}

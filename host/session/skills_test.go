package session_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	hostpkg "github.com/agentmesh/agentmesh-go/host"
	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/host/session"
	"github.com/agentmesh/agentmesh-go/host/skills"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// stagedSkills holds, per bundled skill, a directory ready to install: its
// skill.json and its binary, built once per test run.
var stagedSkills sync.Map // name → func() (string, error)

// stageSkill builds plugins/<name> once and returns the staged directory.
func stageSkill(t testing.TB, name string) string {
	t.Helper()
	f, _ := stagedSkills.LoadOrStore(name, sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "session-test-skill-")
		if err != nil {
			return "", err
		}
		src := filepath.Join("..", "..", "plugins", name)
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, name), ".")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
		manifest, err := os.ReadFile(filepath.Join(src, "skill.json"))
		if err != nil {
			return "", err
		}
		return dir, os.WriteFile(filepath.Join(dir, "skill.json"), manifest, 0o600)
	}))
	dir, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMain(m *testing.M) {
	if home := os.Getenv(envChildHome); home != "" {
		os.Exit(runChildHost(home))
	}
	code := m.Run()
	stagedSkills.Range(func(_, f any) bool {
		if dir, err := f.(func() (string, error))(); err == nil {
			os.RemoveAll(dir)
		}
		return true
	})
	os.Exit(code)
}

// newSkills returns a skill runtime over a new home with the named bundled
// skills installed, closed when the test ends.
func newSkills(t testing.TB, names ...string) *skills.Manager {
	t.Helper()
	home := t.TempDir()
	cat, err := schema.New(schema.Options{Dir: filepath.Join(home, "schemas")})
	if err != nil {
		t.Fatal(err)
	}
	m, err := skills.New(skills.Options{Home: home, Schemas: cat})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for _, n := range names {
		install(t, m, n)
	}
	return m
}

func install(t testing.TB, m *skills.Manager, name string) {
	t.Helper()
	if _, err := m.Install(context.Background(), stageSkill(t, name)); err != nil {
		t.Fatalf("installing %s: %v", name, err)
	}
}

// skillHandler serves REQUESTs with the skill runtime, as the host does.
func skillHandler(m *skills.Manager) session.Handler { return hostpkg.SkillHandler{Skills: m} }

// echoHandler answers the intent "test/echo" with its parameters and
// declares the capability "x-test/echo/v1".
type echoHandler struct{}

func (echoHandler) Capabilities() []string { return []string{"x-test/echo/v1"} }

func (echoHandler) Route(intent string) (string, bool) {
	if intent == "test/echo" {
		return "x-test/echo/v1", true
	}
	return "", false
}

func (echoHandler) Intents() []string { return []string{"test/echo"} }

func (echoHandler) HandleRequest(_ context.Context, req *protocol.Request, _ session.RequestMeta, onStatus func(*protocol.Status)) protocol.Payload {
	onStatus(&protocol.Status{Progress: 0.5, Message: "echoing"})
	return &protocol.Response{Status: protocol.ResponseSuccess, Results: req.Parameters, CompletedAt: time.Now()}
}

// flightRequest is a valid flight search.
func flightRequest() *protocol.Request {
	return &protocol.Request{
		Intent: "travel/flights/search",
		Parameters: json.RawMessage(`{"action":"search","origin":"LHR","destination":"JFK",` +
			`"departure_date":"2033-06-13","passengers":1,"cabin_class":"economy"}`),
	}
}

// productRequest is a valid product search.
func productRequest() *protocol.Request {
	return &protocol.Request{
		Intent:     "commerce/products/search",
		Parameters: json.RawMessage(`{"action":"search","query":"headphones"}`),
	}
}

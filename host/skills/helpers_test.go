package skills

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
)

// envTestHost makes the test binary run as a host process (see
// runTestHost) instead of running tests.
const envTestHost = "AGENTMESH_SKILLS_TEST_HOST_HOME"

// buildDir holds the test skills built by this run of the package's tests.
var buildDir string

func TestMain(m *testing.M) {
	if home := os.Getenv(envTestHost); home != "" {
		os.Exit(runTestHost(home))
	}
	dir, err := os.MkdirTemp("", "skills-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	plugin.CleanupClients()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runTestHost is a host that starts the installed skill testskill, prints
// its plugin's pid and then waits to be killed.
func runTestHost(home string) int {
	cat, err := schema.New(schema.Options{Dir: filepath.Join(home, "schemas")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m, err := New(Options{Home: home, Schemas: cat})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	if err := m.Start(ctx, "testskill"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	info, err := m.Info("testskill")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("pid %d\n", info.PID)
	select {}
}

// builds caches one build per test skill for the whole run.
var builds sync.Map // name → func() (string, error)

// buildTestSkill builds testdata/skills/<name> once per test run and
// returns the binary.
func buildTestSkill(t testing.TB, name string) string {
	t.Helper()
	f, _ := builds.LoadOrStore(name, sync.OnceValues(func() (string, error) {
		out := filepath.Join(buildDir, name, name)
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testdata/skills/"+name)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", name, err, msg)
		}
		return out, nil
	}))
	bin, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// stageSkill returns a new directory holding the test skill name ready to
// install: its skill.json, shipped schemas and prebuilt binary.
func stageSkill(t testing.TB, name string) string {
	t.Helper()
	bin := buildTestSkill(t, name)
	dst := t.TempDir()
	src := filepath.Join("testdata", "skills", name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if strings.HasSuffix(rel, ".go") {
			return nil
		}
		return copyFile(p, filepath.Join(dst, rel), 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := copyFile(bin, filepath.Join(dst, name), 0o700); err != nil {
		t.Fatal(err)
	}
	return dst
}

func copyFile(src, dst string, perm fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, perm)
}

// testLogger returns a logger writing to t.Log and to the returned buffer.
func testLogger(t testing.TB) (hclog.Logger, *logtest.Buffer) {
	// Made first, so that its cleanup runs last: after the Manager has
	// closed.
	tw := logtest.Writer(t)
	buf := new(logtest.Buffer)
	return hclog.New(&hclog.LoggerOptions{
		Name:   "host",
		Level:  hclog.Debug,
		Output: io.MultiWriter(buf, tw),
	}), buf
}

// testHost is a Manager in a temporary home.
type testHost struct {
	*Manager
	home string
	cat  *schema.Catalogue
	logs *logtest.Buffer
}

type hostOption func(*Options, *schema.Options)

func withMode(mode schema.Mode) hostOption {
	return func(_ *Options, so *schema.Options) { so.Mode = mode }
}

func withOptions(f func(*Options)) hostOption {
	return func(o *Options, _ *schema.Options) { f(o) }
}

// newTestHost returns a Manager over a new home, closed when the test
// ends. Crashed plugins restart after a millisecond.
func newTestHost(t testing.TB, opts ...hostOption) *testHost {
	t.Helper()
	return newTestHostAt(t, t.TempDir(), opts...)
}

func newTestHostAt(t testing.TB, home string, opts ...hostOption) *testHost {
	t.Helper()
	log, logs := testLogger(t)
	so := schema.Options{Dir: filepath.Join(home, "schemas"), Logger: log.Named("schema")}
	o := Options{
		Home:        home,
		Logger:      log,
		HostVersion: "0.2.0-test",
		AMID:        func() string { return "test-amid" },
		Restart:     RestartPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
	}
	for _, f := range opts {
		f(&o, &so)
	}
	cat, err := schema.New(so)
	if err != nil {
		t.Fatal(err)
	}
	o.Schemas = cat
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &testHost{Manager: m, home: home, cat: cat, logs: logs}
}

// install installs the test skill name from a prebuilt directory.
func (h *testHost) install(t testing.TB, name string) SkillInfo {
	t.Helper()
	info, err := h.Install(t.Context(), stageSkill(t, name))
	if err != nil {
		t.Fatalf("installing %s: %v", name, err)
	}
	return info
}

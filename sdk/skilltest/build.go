package skilltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// builds caches one build per skill directory for the life of the test
// binary: directory → func() (binary path, error).
var builds sync.Map

// buildRoot is this test binary's directory of built skills, under
// os.TempDir; see Main.
var buildRoot = sync.OnceValues(func() (string, error) {
	sweepBuildRoots()
	return os.MkdirTemp("", buildRootPrefix+strconv.Itoa(os.Getpid())+"-")
})

const buildRootPrefix = "agentmesh-skilltest-"

// Build builds the skill (a main package) in dir with go build and returns
// the binary's path. Each directory is built once per test binary;
// later calls return the same binary. A failed build fails the test with
// the compiler's output.
//
// The binaries live in a directory under os.TempDir that Main removes; a
// test binary that does not use Main leaves it behind, and the next test
// binary that builds removes it.
func Build(t testing.TB, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("skilltest: build %s: %v", dir, err)
	}
	f, _ := builds.LoadOrStore(abs, sync.OnceValues(func() (string, error) { return build(abs) }))
	bin, err := f.(func() (string, error))()
	if err != nil {
		t.Fatalf("skilltest: %v", err)
	}
	return bin
}

func build(dir string) (string, error) {
	root, err := buildRoot()
	if err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	out, err := os.MkdirTemp(root, filepath.Base(dir)+"-")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	bin := filepath.Join(out, filepath.Base(dir))
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.Command(goTool(), "build", "-o", bin, ".")
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in %s: %v\n%s", dir, err, msg)
	}
	return bin, nil
}

// goTool returns the go command that runs the tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Main runs the tests of m and then removes the skills Build built. Use it
// from TestMain:
//
//	func TestMain(m *testing.M) { skilltest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	RemoveBuilds()
	os.Exit(code)
}

// RemoveBuilds removes the skills Build built; a later Build fails. Main
// calls it.
func RemoveBuilds() {
	builds.Range(func(k, _ any) bool {
		builds.Store(k, func() (string, error) { return "", fmt.Errorf("build %s: builds were removed", k) })
		return true
	})
	if root, err := buildRoot(); err == nil {
		os.RemoveAll(root)
	}
}

// sweepBuildRoots removes the build directories of test binaries that are
// no longer running.
func sweepBuildRoots() {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), buildRootPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
	}
}

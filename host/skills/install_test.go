package skills

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

func TestInstallLayoutAndLifecycle(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	info := h.install(t, "testskill")
	if info.Name != "testskill" || info.Version != "1.0.0" || !info.Enabled || info.State != StateStopped || info.PID != 0 {
		t.Errorf("installed = %+v, want testskill 1.0.0 enabled and stopped", info)
	}
	dir := filepath.Join(h.home, "skills", "testskill", "1.0.0")
	if info.Dir != dir {
		t.Errorf("dir = %s, want %s", info.Dir, dir)
	}
	if permsEnforced {
		for path, want := range map[string]fs.FileMode{
			filepath.Join(h.home, "skills"):              0o700,
			filepath.Join(h.home, "skills", "testskill"): 0o700,
			dir:                              0o700,
			filepath.Join(dir, "testskill"):  0o700,
			filepath.Join(dir, "skill.json"): 0o600,
			filepath.Join(dir, "schemas", "x-test", "echo", "v1.json"): 0o600,
			filepath.Join(h.home, "skills", "skills.lock"):             0o600,
		} {
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s: mode %04o, want %04o", path, got, want)
			}
		}
	}
	sum, err := hashFile(filepath.Join(dir, "testskill"))
	if err != nil {
		t.Fatal(err)
	}
	lf, err := readLock(filepath.Join(h.home, "skills"))
	if err != nil {
		t.Fatal(err)
	}
	if len(lf.Skills) != 1 || lf.Skills[0].SHA256 != info.SHA256 || info.SHA256 != hex.EncodeToString(sum) {
		t.Errorf("lock = %+v, want the binary's SHA-256 %x", lf.Skills, sum)
	}
	if !strings.HasPrefix(lf.Skills[0].Source, "/") || lf.Skills[0].InstalledAt.IsZero() {
		t.Errorf("lock entry = %+v, want an absolute source and an install time", lf.Skills[0])
	}
	if !h.cat.Has("x-test/echo/v1") || !h.cat.Has("x-test/echo-result/v1") {
		t.Error("the shipped schemas were not registered")
	}

	if _, err := h.Install(t.Context(), stageSkill(t, "testskill")); !errors.Is(err, ErrAlreadyInstalled) {
		t.Errorf("second install: %v, want ErrAlreadyInstalled", err)
	}

	// Disable, enable, configure.
	ctx := t.Context()
	if err := h.Disable(ctx, "testskill"); err != nil {
		t.Fatal(err)
	}
	wantError(t, dispatch(t, h, request("test/echo", `{"text":"x"}`), nil), protocol.CodeCapabilityNotSupported)
	if got, _ := h.Info("testskill"); got.State != StateDisabled || got.Enabled {
		t.Errorf("disabled skill = %s enabled=%v", got.State, got.Enabled)
	}
	if err := h.Enable(ctx, "testskill"); err != nil {
		t.Fatal(err)
	}
	wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"x"}`), nil))
	running, _ := h.Info("testskill")
	if err := h.SetConfig(ctx, "testskill", map[string]json.RawMessage{"greeting": json.RawMessage(`"hey "`)}); err != nil {
		t.Fatal(err)
	}
	if got := resultText(t, wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"you"}`), nil))); got != "hey you" {
		t.Errorf("after SetConfig: %q, want %q", got, "hey you")
	}
	if again, _ := h.Info("testskill"); again.PID == running.PID {
		t.Error("the plugin was not restarted with its new configuration")
	}
	if err := h.SetConfig(ctx, "testskill", map[string]json.RawMessage{"colour": json.RawMessage(`"red"`)}); err == nil {
		t.Error("SetConfig accepted an unknown option")
	}
	if err := h.SetConfig(ctx, "nope", nil); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("SetConfig of a skill not installed: %v", err)
	}

	// A new Manager on the same home sees the skill and its settings.
	h2 := newTestHostAt(t, h.home)
	if got, err := h2.Info("testskill"); err != nil || got.SHA256 != info.SHA256 || string(got.Config["greeting"]) != `"hey "` {
		t.Errorf("reloaded: %+v, %v", got, err)
	}
	h2.Close()

	if err := h.Remove(ctx, "testskill"); err != nil {
		t.Fatal(err)
	}
	wantError(t, dispatch(t, h, request("test/echo", `{"text":"x"}`), nil), protocol.CodeCapabilityNotSupported)
	if _, err := os.Stat(filepath.Join(h.home, "skills", "testskill")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the skill's directory survived Remove: %v", err)
	}
	if got := h.List(); len(got) != 0 {
		t.Errorf("List after Remove = %+v", got)
	}
	if err := h.Remove(ctx, "testskill"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("second Remove: %v, want ErrNotInstalled", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(h.home, "skills")); len(entries) != 1 {
		t.Errorf("skills directory holds %v, want only the lock", entries)
	}
}

func TestInstallIntentConflict(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	h.install(t, "testskill")
	dir := stageSkill(t, "testskill")
	manifest := filepath.Join(dir, "skill.json")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"name": "testskill"`), []byte(`"name": "copycat"`), 1)
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = h.Install(t.Context(), dir)
	if !errors.Is(err, ErrIntentConflict) || !strings.Contains(err.Error(), "testskill") {
		t.Errorf("install of a second skill for test/echo: %v, want ErrIntentConflict naming testskill", err)
	}
}

func TestInstallRefusesBinaryBuiltWithOtherManifest(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	dir := stageSkill(t, "testskill")
	manifest := filepath.Join(dir, "skill.json")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("for the tests"), []byte("FOR THE TESTS"), 1)
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = h.Install(t.Context(), dir)
	if !errors.Is(err, ErrChecksumMismatch) || !strings.Contains(err.Error(), "built with a skill.json") {
		t.Errorf("Install: %v, want ErrChecksumMismatch for the manifest", err)
	}
	if got := h.List(); len(got) != 0 {
		t.Errorf("a refused skill was installed: %+v", got)
	}
}

func TestInstallRefusesUnknownSchema(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	dir := stageSkill(t, "testskill")
	if err := os.RemoveAll(filepath.Join(dir, "schemas", "x-test", "echo")); err != nil {
		t.Fatal(err)
	}
	_, err := h.Install(t.Context(), dir)
	var merr *ManifestError
	if !errors.As(err, &merr) || merr.Problems[0].Path != "/capabilities/0/schema" || !strings.Contains(err.Error(), "x-test/echo/v1") {
		t.Errorf("Install: %v, want a ManifestError at /capabilities/0/schema", err)
	}
}

func TestInstallRefusesInvalidExample(t *testing.T) {
	t.Parallel()
	h := newTestHost(t, withMode(schema.ModeStrict))
	dir := stageSkill(t, "testskill")
	manifest := filepath.Join(dir, "skill.json")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte(`"request": {"text": "hello"}`), []byte(`"request": {"text": 5}`), 1)
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = h.Install(t.Context(), dir)
	var merr *ManifestError
	if !errors.As(err, &merr) || merr.Problems[0].Path != "/capabilities/0/examples/0/request/text" {
		t.Errorf("Install: %v, want a ManifestError at the example's text", err)
	}
}

// tarGz archives the directory dir under the top-level directory top.
func tarGz(t testing.TB, dir, top string) []byte {
	t.Helper()
	var entries []tarEntry
	entries = append(entries, dirEntry(top+"/"))
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := top + "/" + filepath.ToSlash(rel)
		if d.IsDir() {
			entries = append(entries, dirEntry(name+"/"))
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		entries = append(entries, file(name, string(data)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Stored blocks: compressing a plugin binary takes long under the
	// race detector and tests nothing more.
	return gzipLevel(t, tarBytes(t, entries), gzip.NoCompression)
}

func TestInstallFromArchive(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	archive := filepath.Join(t.TempDir(), "testskill-1.0.0.tar.gz")
	if err := os.WriteFile(archive, tarGz(t, stageSkill(t, "testskill"), "testskill-1.0.0"), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := h.Install(t.Context(), archive)
	if err != nil {
		t.Fatal(err)
	}
	if info.Source != archive {
		t.Errorf("source = %q, want %q", info.Source, archive)
	}
	if got := resultText(t, wantResponse(t, dispatch(t, h, request("test/echo", `{"text":"tgz"}`), nil))); got != "tgz" {
		t.Errorf("echo = %q", got)
	}
}

func TestInstallRefusesUnsafeArchive(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	good := []tarEntry{dirEntry("skill/"), file("skill/skill.json", "{}")}
	tests := []struct {
		name  string
		evil  tarEntry
		entry string
	}{
		{"dot-dot", file("skill/../../escaped", "x"), "skill/../../escaped"},
		{"absolute", file("/tmp/escaped", "x"), "/tmp/escaped"},
		{"symlink", tarEntry{hdr: tar.Header{Name: "skill/bin", Typeflag: tar.TypeSymlink, Linkname: "/bin/sh"}}, "skill/bin"},
		{"hard link", tarEntry{hdr: tar.Header{Name: "skill/passwd", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, "skill/passwd"},
		{"device", tarEntry{hdr: tar.Header{Name: "skill/null", Typeflag: tar.TypeChar}}, "skill/null"},
		{"oversize", tarEntry{hdr: tar.Header{Name: "skill/big", Typeflag: tar.TypeReg, Size: MaxArchiveEntrySize + 1}}, "skill/big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), "evil.tar.gz")
			data := gzipBytes(t, tarBytes(t, append(good[:len(good):len(good)], tt.evil)))
			if err := os.WriteFile(archive, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := h.Install(t.Context(), archive)
			var ae *ArchiveEntryError
			if !errors.As(err, &ae) || ae.Entry != tt.entry || !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("Install: %v, want the entry %q refused", err, tt.entry)
			}
			entries, err := os.ReadDir(filepath.Join(h.home, "skills"))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("the refused archive left %v in the skills directory", entries)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(h.home, "escaped")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an archive wrote outside its directory: %v", err)
	}
}

func TestNewRefusesInsecureSkillsDir(t *testing.T) {
	if !permsEnforced {
		if os.Getenv("CI") != "" { // CI must run every test
			t.Fatal("no Unix permissions on this platform")
		}
		t.Skip("no Unix permissions on this platform")
	}
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, skills string)
		want  string
	}{
		{"world-writable", func(t *testing.T, skills string) { mkdirMode(t, skills, 0o777) }, "group or others write"},
		{"group-writable", func(t *testing.T, skills string) { mkdirMode(t, skills, 0o770) }, "group or others write"},
		{"symbolic link", func(t *testing.T, skills string) {
			target := t.TempDir()
			if err := os.Symlink(target, skills); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"not a directory", func(t *testing.T, skills string) {
			if err := os.WriteFile(skills, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a directory"},
		{"owned by another user", func(t *testing.T, skills string) {
			if os.Geteuid() != 0 {
				if os.Getenv("CI") != "" { // CI must run every test
					t.Fatal("changing a directory's owner needs root")
				}
				t.Skip("changing a directory's owner needs root")
			}
			mkdirMode(t, skills, 0o700)
			if err := os.Chown(skills, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "owned by another user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			tt.setup(t, filepath.Join(home, "skills"))
			cat, err := schema.New(schema.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(Options{Home: home, Schemas: cat})
			if !errors.Is(err, ErrInsecurePath) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want ErrInsecurePath saying %q", err, tt.want)
			}
		})
	}
	t.Run("readable by others is tightened", func(t *testing.T) {
		home := t.TempDir()
		skills := filepath.Join(home, "skills")
		mkdirMode(t, skills, 0o755)
		newTestHostAt(t, home)
		fi, err := os.Stat(skills)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o700 {
			t.Errorf("mode = %04o, want 0700", got)
		}
	})
}

func mkdirMode(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedBinaryRefused(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	info := h.install(t, "testskill")
	bin := filepath.Join(info.Dir, "testskill")
	f, err := os.OpenFile(bin, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("tampered")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum, err := hashFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	err = h.Start(t.Context(), "testskill")
	if !errors.Is(err, ErrChecksumMismatch) || !errors.Is(err, ErrQuarantined) {
		t.Fatalf("Start: %v, want ErrChecksumMismatch and ErrQuarantined", err)
	}
	for _, want := range []string{"testskill", info.SHA256[:12], hex.EncodeToString(sum)[:12]} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	got, _ := h.Info("testskill")
	if got.State != StateQuarantined || !strings.Contains(got.Reason, info.SHA256[:12]) {
		t.Errorf("skill = %s (%s), want quarantined with the hashes", got.State, got.Reason)
	}
	e := wantError(t, dispatch(t, h, request("test/echo", `{"text":"x"}`), nil), protocol.CodeServiceUnavailable)
	if !strings.Contains(e.Message, "does not match") || strings.Contains(e.Message, h.home) {
		t.Errorf("peer message = %q, want the reason without local paths", e.Message)
	}
}

func TestSymlinkedBinaryRefused(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	info := h.install(t, "testskill")
	bin := filepath.Join(info.Dir, "testskill")
	// The link's target has the right hash: only the link is wrong.
	elsewhere := filepath.Join(t.TempDir(), "testskill")
	if err := os.Rename(bin, elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, bin); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(t.Context(), "testskill"); !errors.Is(err, ErrInsecurePath) {
		t.Errorf("Start: %v, want ErrInsecurePath", err)
	}
}

func TestStartRefusesSkillsDirMadeInsecure(t *testing.T) {
	if !permsEnforced {
		if os.Getenv("CI") != "" { // CI must run every test
			t.Fatal("no Unix permissions on this platform")
		}
		t.Skip("no Unix permissions on this platform")
	}
	t.Parallel()
	h := newTestHost(t)
	h.install(t, "testskill")
	// Checked when the Manager was created, the directory is opened to
	// others afterwards: the next start must notice.
	skills := filepath.Join(h.home, "skills")
	if err := os.Chmod(skills, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(skills, 0o700) })
	err := h.Start(t.Context(), "testskill")
	if !errors.Is(err, ErrInsecurePath) || !strings.Contains(err.Error(), "group or others write") {
		t.Errorf("Start: %v, want ErrInsecurePath about the skills directory", err)
	}
}

func TestBrokenSkillAndCorruptLock(t *testing.T) {
	t.Parallel()
	h := newTestHost(t)
	info := h.install(t, "testskill")
	h.Close()
	manifest := filepath.Join(info.Dir, "skill.json")
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, append(data, ' '), 0o600); err != nil {
		t.Fatal(err)
	}
	h2 := newTestHostAt(t, h.home)
	got, err := h2.Info("testskill")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateBroken || !strings.Contains(got.Reason, "skill.json has SHA-256") {
		t.Errorf("skill with an edited skill.json: %s (%s), want broken", got.State, got.Reason)
	}
	wantError(t, dispatch(t, h2, request("test/echo", `{"text":"x"}`), nil), protocol.CodeCapabilityNotSupported)
	h2.Close()

	lock := filepath.Join(h.home, "skills", "skills.lock")
	if err := os.WriteFile(lock, []byte(`{"version":1,"skills":[{"name":"x"}],"extra":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cat, err := schema.New(schema.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Home: h.home, Schemas: cat}); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("New with a corrupt lock: %v, want an error naming the member", err)
	}
}

func TestReloadSeesOtherProcesses(t *testing.T) {
	t.Parallel()
	a := newTestHost(t)
	b := newTestHostAt(t, a.home)
	a.install(t, "testskill")
	if err := b.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantResponse(t, dispatch(t, b, request("test/echo", `{"text":"x"}`), nil))
	if err := a.Disable(t.Context(), "testskill"); err != nil {
		t.Fatal(err)
	}
	// Dispatch looks at the lock once its check interval has passed.
	b.mu.Lock()
	b.lastCheck = time.Time{}
	b.mu.Unlock()
	wantError(t, dispatch(t, b, request("test/echo", `{"text":"x"}`), nil), protocol.CodeCapabilityNotSupported)
	if got, _ := b.Info("testskill"); got.State != StateDisabled || got.PID != 0 {
		t.Errorf("after another process disabled it: %s pid %d", got.State, got.PID)
	}
	if err := a.Remove(t.Context(), "testskill"); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := b.List(); len(got) != 0 {
		t.Errorf("after another process removed it: %+v", got)
	}
}

// writeGreeter writes, in dir, a brand-new skill using only the SDK's
// public API, as a skill author would.
func writeGreeter(t testing.TB, dir, version, word string) {
	t.Helper()
	files := map[string]string{
		"skill.json": `{
  "name": "greeter",
  "version": "` + version + `",
  "description": "Greets people by name.",
  "protocol": "agentmesh/0.2",
  "binary": "greeter",
  "capabilities": [{
    "intent": "social/greet",
    "schema": "x-greeter/greet/v1",
    "examples": [{"name": "ada", "request": {"name": "Ada"}, "response": {"greeting": "` + word + `, Ada!"}}]
  }],
  "permissions": {},
  "config": {"punctuation": {"type": "string", "default": "!", "enum": ["!", "."]}}
}
`,
		"schemas/x-greeter/greet/v1.json": `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["name"],
  "properties": {"name": {"type": "string", "minLength": 1}}
}
`,
		"main.go": `package main

import (
	"context"
	_ "embed"
	"os"

	"github.com/agentmesh/agentmesh-go/sdk"
)

//go:embed skill.json
var manifest []byte

type greetParams struct {
	Name string ` + "`json:\"name\"`" + `
}

type greeting struct {
	Greeting string ` + "`json:\"greeting\"`" + `
}

func main() {
	s := sdk.New(manifest)
	sdk.Handle(s, "social/greet", func(ctx context.Context, req *sdk.Request[greetParams]) (greeting, error) {
		req.Progress(0.5, "thinking of a greeting")
		return greeting{Greeting: "` + word + `, " + req.Params.Name + s.Config().String("punctuation")}, nil
	})
	os.Exit(s.Main())
}
`,
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// repoRoot returns the module root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no module root at %s: %v", root, err)
	}
	return root
}

func TestNewSkillFromSource(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	src := t.TempDir()
	writeGreeter(t, src, "1.0.0", "Hello")
	gomod := "module example.com/greeter\n\ngo 1.26.0\n\nrequire github.com/agentmesh/agentmesh-go v0.0.0\n\nreplace github.com/agentmesh/agentmesh-go => " + root + "\n"
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(root, "go.sum"), filepath.Join(src, "go.sum"), 0o600); err != nil {
		t.Fatal(err)
	}
	tidy := exec.Command("go", "mod", "tidy")
	tidy.Dir = src
	tidy.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := tidy.CombinedOutput(); err != nil {
		t.Fatalf("go mod tidy: %v\n%s", err, out)
	}

	h := newTestHost(t)
	info, err := h.Install(t.Context(), src)
	if err != nil {
		t.Fatalf("Install from source: %v", err)
	}
	if info.Name != "greeter" || info.Version != "1.0.0" {
		t.Errorf("installed %s %s", info.Name, info.Version)
	}
	var statuses statusLog
	resp := wantResponse(t, dispatch(t, h, request("social/greet", `{"name":"Ada"}`), statuses.add))
	if string(resp.Results) != `{"greeting":"Hello, Ada!"}` || len(statuses.get()) != 1 {
		t.Errorf("results = %s with %d statuses", resp.Results, len(statuses.get()))
	}
	old, _ := h.Info("greeter")

	// Upgrade the running skill from new source.
	writeGreeter(t, src, "1.1.0", "Hi")
	if _, err := h.Upgrade(t.Context(), src); err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	if got, _ := h.Info("greeter"); got.Version != "1.1.0" || got.State != StateRunning || got.PID == old.PID {
		t.Errorf("after Upgrade: %s %s pid %d, want 1.1.0 running in a new process", got.Version, got.State, got.PID)
	}
	resp = wantResponse(t, dispatch(t, h, request("social/greet", `{"name":"Ada"}`), nil))
	if string(resp.Results) != `{"greeting":"Hi, Ada!"}` {
		t.Errorf("after Upgrade: %s", resp.Results)
	}
	if _, err := os.Stat(old.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the old version's directory survived the upgrade: %v", err)
	}
	if _, err := h.Upgrade(t.Context(), src); !errors.Is(err, ErrNotNewer) {
		t.Errorf("Upgrade to the same version: %v, want ErrNotNewer", err)
	}
}

func TestInstallBuildFailureReported(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeGreeter(t, src, "1.0.0", "Hello")
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { undefined() }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newTestHost(t)
	_, err := h.Install(t.Context(), src)
	if err == nil || !strings.Contains(err.Error(), "go build") {
		t.Errorf("Install of broken source: %v, want the go build failure", err)
	}
}

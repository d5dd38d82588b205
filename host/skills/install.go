package skills

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

// buildEnv lists the variables of the host's environment that `go build`
// sees when a skill is installed from source; nothing else of the
// environment reaches the build. They locate the toolchain, its caches and
// the module proxy, and let a C toolchain be chosen for cgo; GOOS and
// GOARCH are left out so that the binary always suits this machine.
var buildEnv = []string{
	"PATH", "HOME", "TMPDIR", "USERPROFILE", "LOCALAPPDATA", "APPDATA", "SYSTEMROOT",
	"XDG_CACHE_HOME", "XDG_CONFIG_HOME",
	"GOROOT", "GOPATH", "GOCACHE", "GOMODCACHE", "GOENV", "GOTMPDIR", "GOTOOLCHAIN",
	"GOFLAGS", "GOEXPERIMENT", "GOPROXY", "GONOPROXY", "GOPRIVATE", "GOSUMDB", "GONOSUMDB",
	"GOINSECURE", "CGO_ENABLED", "CC", "CXX",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
}

// maxShippedSchemas bounds the schemas one skill may ship.
const maxShippedSchemas = 256

// maxBuildOutput bounds how much of the go command's output an error
// quotes.
const maxBuildOutput = 8 << 10

// Install installs the skill at source, enabled, and returns its
// description. source is either
//
//   - a directory holding skill.json and either Go source (a go.mod or
//     .go files), which is built with `go build -trimpath`, or, when there
//     is no Go source, the prebuilt binary the manifest names; or
//   - a .tar.gz archive of such a directory, at the archive's root or
//     inside its only top-level directory. The archive is extracted under
//     the skills directory through an os.Root: absolute names, "..",
//     links, devices, entries over MaxArchiveEntrySize, more than
//     MaxArchiveSize bytes and more than MaxArchiveEntries entries are
//     refused with an *ArchiveEntryError naming the entry.
//
// The manifest is validated (a *ManifestError lists every problem), every
// schema its capabilities name must be known to the host or shipped by
// the skill as schemas/<id>.json (those are registered with the
// catalogue; a schema id the catalogue already knows is left as it is),
// and the examples must satisfy their schemas in the catalogue's mode. The
// plugin is started once to check that it answers the handshake and was
// built with this skill.json, then stopped. Only then is the skill moved
// into Home/skills/<name>/<version> and recorded in skills.lock with the
// SHA-256 of its binary.
//
// Installing a skill that is installed already is an ErrAlreadyInstalled;
// one declaring an intent that another enabled skill handles is an
// ErrIntentConflict.
//
// The build sees only the variables of the host's environment that
// locate the Go toolchain, its caches and the module proxy (PATH, HOME,
// GOPATH, GOCACHE, GOMODCACHE, GOFLAGS, GOPROXY, GOSUMDB, GONOSUMDB,
// GOPRIVATE, GOTOOLCHAIN, the proxy variables and a few more), never GOOS
// or GOARCH.
func (m *Manager) Install(ctx context.Context, source string) (SkillInfo, error) {
	return m.install(ctx, source, false)
}

// Upgrade installs a newer version of an installed skill from source, as
// Install does, then switches skills.lock to it, keeping its enabled state
// and the configuration values the new version still accepts, stops the
// old version's plugin (letting requests in flight finish until ctx ends)
// and removes the old version. A plugin that was running is started again
// at once. A version that is not newer is an ErrNotNewer.
func (m *Manager) Upgrade(ctx context.Context, source string) (SkillInfo, error) {
	return m.install(ctx, source, true)
}

func (m *Manager) install(ctx context.Context, source string, upgrade bool) (SkillInfo, error) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if m.isClosed() {
		return SkillInfo{}, ErrClosed
	}
	unlock, err := lockDir(m.dir)
	if err != nil {
		return SkillInfo{}, fmt.Errorf("skills: %w", err)
	}
	defer unlock()
	if err := m.reloadLocked(ctx); err != nil {
		return SkillInfo{}, err
	}
	info, err := m.installLocked(ctx, source, upgrade)
	if err != nil {
		return SkillInfo{}, fmt.Errorf("skills: installing %s: %w", source, err)
	}
	return info, nil
}

func (m *Manager) installLocked(ctx context.Context, source string, upgrade bool) (SkillInfo, error) {
	abs, err := filepath.Abs(source)
	if err != nil {
		return SkillInfo{}, err
	}
	staging, err := os.MkdirTemp(m.dir, ".staging-")
	if err != nil {
		return SkillInfo{}, err
	}
	defer os.RemoveAll(staging)

	src, err := prepareSource(abs, filepath.Join(staging, "src"))
	if err != nil {
		return SkillInfo{}, err
	}
	manData, err := safefile.ReadFile(filepath.Join(src, ManifestFile), maxManifestSize)
	if err != nil {
		return SkillInfo{}, err
	}
	man, err := ParseManifest(manData)
	if err != nil {
		return SkillInfo{}, err
	}

	lf, _, err := m.readLock()
	if err != nil {
		return SkillInfo{}, err
	}
	entry := lockEntry{
		Name:           man.Name,
		Version:        man.Version,
		Source:         abs,
		ManifestSHA256: sha256Hex(manData),
		Enabled:        true,
	}
	i := lf.find(man.Name)
	var old *lockEntry
	switch {
	case !upgrade && i >= 0:
		return SkillInfo{}, fmt.Errorf("%s %s: %w (version %s; upgrade it instead)", man.Name, man.Version, ErrAlreadyInstalled, lf.Skills[i].Version)
	case upgrade && i < 0:
		return SkillInfo{}, fmt.Errorf("%s: %w", man.Name, ErrNotInstalled)
	case upgrade:
		old = &lf.Skills[i]
		if compareVersions(man.Version, old.Version) <= 0 {
			return SkillInfo{}, fmt.Errorf("%s %s: %w (%s)", man.Name, man.Version, ErrNotNewer, old.Version)
		}
		entry.Enabled = old.Enabled
		entry.Config = m.keptConfig(man, old.Config)
	}
	if entry.Enabled {
		if err := m.checkIntents(man); err != nil {
			return SkillInfo{}, err
		}
	}

	shipped, err := readShippedSchemas(src)
	if err != nil {
		return SkillInfo{}, err
	}
	if problems := m.missingSchemas(man, shipped); len(problems) > 0 {
		return SkillInfo{}, &ManifestError{problems}
	}

	out := filepath.Join(staging, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		return SkillInfo{}, err
	}
	sum, err := m.provideBinary(ctx, src, out, man.Binary)
	if err != nil {
		return SkillInfo{}, err
	}
	entry.SHA256 = hex.EncodeToString(sum)
	if err := writeNew(filepath.Join(out, ManifestFile), manData, 0o600); err != nil {
		return SkillInfo{}, err
	}
	for _, id := range slices.Sorted(maps.Keys(shipped)) {
		if err := writeShippedSchema(out, id, shipped[id]); err != nil {
			return SkillInfo{}, err
		}
	}
	if err := m.registerSchemas(shipped); err != nil {
		return SkillInfo{}, err
	}
	if problems, err := m.checkExamples(ctx, man); err != nil {
		return SkillInfo{}, err
	} else if len(problems) > 0 {
		return SkillInfo{}, &ManifestError{problems}
	}
	if err := m.verifyPlugin(ctx, out, man, sum, entry.ManifestSHA256); err != nil {
		return SkillInfo{}, err
	}

	// Move the staged skill into place and record it.
	skillDir := filepath.Join(m.dir, man.Name)
	if err := os.Mkdir(skillDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return SkillInfo{}, err
	}
	if err := checkTree(m.dir, man.Name, false); err != nil {
		return SkillInfo{}, err
	}
	dest := filepath.Join(skillDir, man.Version)
	// A directory of this version that the lock does not record is left
	// over from an interrupted operation.
	if err := os.RemoveAll(dest); err != nil {
		return SkillInfo{}, err
	}
	if err := os.Rename(out, dest); err != nil {
		return SkillInfo{}, err
	}
	entry.InstalledAt = time.Now().UTC().Truncate(time.Second)
	nl := lf.clone()
	if i >= 0 {
		nl.Skills[i] = entry
	} else {
		nl.Skills = append(nl.Skills, entry)
	}
	if err := m.commit(ctx, nl); err != nil {
		os.RemoveAll(dest)
		return SkillInfo{}, err
	}
	if old != nil {
		if err := os.RemoveAll(filepath.Join(skillDir, old.Version)); err != nil {
			m.log.Warn("removing the old version of an upgraded skill", "skill", man.Name, "version", old.Version, "error", err)
		}
	}
	m.log.Info("skill installed", "skill", man.Name, "version", man.Version, "sha256", entry.SHA256[:12])
	return m.Info(man.Name)
}

// commit writes lf as the new lock and applies it. m.opMu and the
// directory lock must be held.
func (m *Manager) commit(ctx context.Context, lf *lockFile) error {
	if err := writeLock(m.dir, lf); err != nil {
		return err
	}
	info, err := os.Lstat(filepath.Join(m.dir, lockName))
	if err != nil {
		return err
	}
	m.apply(ctx, lf, info)
	return nil
}

// prepareSource returns the directory holding the skill's files: source
// itself when it is a directory, or where its archive was extracted, under
// dst.
func prepareSource(source, dst string) (string, error) {
	fi, err := os.Stat(source)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return source, nil
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: neither a directory nor an archive", source)
	}
	f, err := os.Open(source)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := os.Mkdir(dst, 0o700); err != nil {
		return "", err
	}
	if err := extractArchive(f, dst, defaultLimits); err != nil {
		return "", err
	}
	// Archives usually wrap the skill in one top-level directory.
	if _, err := os.Lstat(filepath.Join(dst, ManifestFile)); err == nil {
		return dst, nil
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		return "", err
	}
	if len(entries) == 1 && entries[0].IsDir() {
		return filepath.Join(dst, entries[0].Name()), nil
	}
	return "", fmt.Errorf("the archive has no %s at its root or in its only top-level directory", ManifestFile)
}

// readShippedSchemas reads the schemas a skill ships: every
// schemas/<id>.json file under src, by id.
func readShippedSchemas(src string) (map[string][]byte, error) {
	root := filepath.Join(src, "schemas")
	fi, err := os.Lstat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", root)
	}
	out := map[string][]byte{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		id, ok := strings.CutSuffix(filepath.ToSlash(rel), ".json")
		if !ok {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("shipped schema %s: not a regular file", p)
		}
		if len(out) == maxShippedSchemas {
			return fmt.Errorf("more than %d shipped schemas", maxShippedSchemas)
		}
		data, err := safefile.ReadFile(p, schema.MaxSchemaSize)
		if err != nil {
			return fmt.Errorf("shipped schema: %w", err)
		}
		out[id] = data
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// missingSchemas lists, as Problems, the schemas the capabilities name
// that the catalogue does not know and the skill does not ship.
func (m *Manager) missingSchemas(man *Manifest, shipped map[string][]byte) []Problem {
	var ps []Problem
	for i, c := range man.Capabilities {
		for _, f := range []struct{ member, id string }{{"schema", c.Schema}, {"response_schema", c.ResponseSchema}} {
			if f.id == "" || shipped[f.id] != nil || m.cat.Has(f.id) {
				continue
			}
			ps = append(ps, Problem{
				Path:    fmt.Sprintf("/capabilities/%d/%s", i, f.member),
				Message: fmt.Sprintf("unknown schema %q: the host does not know it and the skill does not ship schemas/%s.json", f.id, f.id),
			})
		}
	}
	return ps
}

// registerSchemas registers with the catalogue the shipped schemas it does
// not know yet. A known id keeps its document: a skill cannot replace
// another's schema, so a changed schema needs a new id (its v<n>).
func (m *Manager) registerSchemas(shipped map[string][]byte) error {
	for _, id := range slices.Sorted(maps.Keys(shipped)) {
		if m.cat.Has(id) {
			m.log.Debug("shipped schema already known; keeping the known one", "schema", id)
			continue
		}
		if err := m.cat.Register(id, shipped[id]); err != nil {
			return fmt.Errorf("shipped schema %s: %w", id, err)
		}
	}
	return nil
}

// checkExamples validates every example of the manifest against its
// capability's schemas, in the catalogue's mode: in strict mode each
// error is a Problem naming the example's member; in warning mode the
// catalogue logs them.
func (m *Manager) checkExamples(ctx context.Context, man *Manifest) ([]Problem, error) {
	var ps []Problem
	check := func(id string, raw json.RawMessage, path string) error {
		if id == "" || raw == nil {
			return nil
		}
		_, err := m.cat.ValidateJSON(ctx, id, raw)
		var verr *schema.ValidationError
		switch {
		case errors.As(err, &verr):
			for _, fe := range verr.Errors {
				ps = append(ps, Problem{path + fe.Path, fmt.Sprintf("%s (schema %s)", fe.Message, id)})
			}
		case err != nil:
			return err
		}
		return nil
	}
	for i, c := range man.Capabilities {
		for j, ex := range c.Examples {
			base := fmt.Sprintf("/capabilities/%d/examples/%d/", i, j)
			if err := check(c.Schema, ex.Request, base+"request"); err != nil {
				return nil, err
			}
			if err := check(c.ResponseSchema, ex.Response, base+"response"); err != nil {
				return nil, err
			}
		}
	}
	return ps, nil
}

// checkIntents reports an ErrIntentConflict if an enabled skill other than
// man's declares one of man's intents.
func (m *Manager) checkIntents(man *Manifest) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, c := range man.Capabilities {
		if r, ok := m.routes[c.Intent]; ok && r.sk.name != man.Name {
			return fmt.Errorf("intent %q: %w: %s", c.Intent, ErrIntentConflict, r.sk.name)
		}
	}
	return nil
}

// keptConfig returns the values of cfg that man still accepts.
func (m *Manager) keptConfig(man *Manifest, cfg map[string]json.RawMessage) map[string]json.RawMessage {
	var kept map[string]json.RawMessage
	for name, v := range cfg {
		opt, ok := man.Config[name]
		if !ok || opt.check(v) != nil {
			m.log.Warn("dropping a configuration value the new version does not accept", "skill", man.Name, "option", name)
			continue
		}
		if kept == nil {
			kept = map[string]json.RawMessage{}
		}
		kept[name] = v
	}
	return kept
}

// provideBinary puts the skill's binary at out/<binary> with mode 0700 and
// returns its SHA-256: built from the Go source in src, or copied from
// src/<binary> when src has no Go source.
func (m *Manager) provideBinary(ctx context.Context, src, out, binary string) ([]byte, error) {
	dest := filepath.Join(out, filepath.FromSlash(binary))
	if dir := path.Dir(binary); dir != "." {
		if err := os.MkdirAll(filepath.Join(out, filepath.FromSlash(dir)), 0o700); err != nil {
			return nil, err
		}
	}
	hasSource, err := hasGoSource(src)
	if err != nil {
		return nil, err
	}
	if hasSource {
		if err := m.build(ctx, src, dest); err != nil {
			return nil, err
		}
		if err := os.Chmod(dest, 0o700); err != nil {
			return nil, err
		}
		return hashFile(dest)
	}
	return copyBinary(filepath.Join(src, filepath.FromSlash(binary)), dest)
}

// hasGoSource reports whether dir holds a go.mod or a .go file.
func hasGoSource(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && (n == "go.mod" || strings.HasSuffix(n, ".go")) {
			return true, nil
		}
	}
	return false, nil
}

// build runs `go build -trimpath -o dest .` in src with the scrubbed
// environment of buildEnv.
func (m *Manager) build(ctx context.Context, src, dest string) error {
	cmd := exec.CommandContext(ctx, m.opts.GoBinary, "build", "-trimpath", "-o", dest, ".")
	cmd.Dir = src
	cmd.Env = filterEnv(os.Environ(), buildEnv)
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	m.log.Info("building skill from source", "dir", src)
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(output.Bytes())
		if len(msg) > maxBuildOutput {
			msg = append(slices.Clip(msg[:maxBuildOutput]), "…"...)
		}
		return fmt.Errorf("go build: %w\n%s", err, msg)
	}
	return nil
}

// filterEnv returns the entries of environ whose name is in names.
func filterEnv(environ, names []string) []string {
	var out []string
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok && slices.Contains(names, k) {
			out = append(out, kv)
		}
	}
	return out
}

// copyBinary copies the regular file src to the new file dest with mode
// 0700 and returns the SHA-256 of what was written.
func copyBinary(src, dest string) ([]byte, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("no Go source and no binary: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", src)
	}
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("copying the binary: %w", err)
	}
	return h.Sum(nil), nil
}

// writeNew writes data to the new file path with mode perm.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeShippedSchema keeps a shipped schema with the installed skill, at
// out/schemas/<id>.json.
func writeShippedSchema(out, id string, data []byte) error {
	rel := filepath.FromSlash("schemas/" + id + ".json")
	if !filepath.IsLocal(rel) {
		return fmt.Errorf("shipped schema %q: not a local path", id)
	}
	p := filepath.Join(out, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return writeNew(p, data, 0o600)
}

// verifyPlugin starts the staged binary once: it must complete the
// handshake, pass the hash check and report the digest of this
// skill.json. The process is then stopped.
func (m *Manager) verifyPlugin(ctx context.Context, out string, man *Manifest, sum []byte, manifestSHA string) error {
	bin := filepath.Join(out, filepath.FromSlash(man.Binary))
	p, err := m.launch(ctx, bin, out, sum, man.Name)
	if err != nil {
		return err
	}
	defer p.kill()
	return checkDescribe(ctx, p.rpc, man.Name, manifestSHA)
}

package skills

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

// lockName is the file, inside the skills directory, that records the
// installed skills.
const lockName = "skills.lock"

// lockFormat is the version of the lock file's layout.
const lockFormat = 1

// maxLockSize bounds the lock file a Manager reads.
const maxLockSize = 4 << 20

// Patterns of skill names and versions: those of the skill-manifest
// schema. They also keep both safe to use as directory names.
var (
	namePattern    = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)
	versionPattern = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?(\+([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?$`)
)

// lockFile is the content of skills.lock:
//
//	{"version": 1, "skills": [{"name": …, "version": …, "source": …,
//	  "sha256": …, "manifest_sha256": …, "enabled": true,
//	  "installed_at": "2025-01-02T15:04:05Z", "config": {…}}, …]}
type lockFile struct {
	Version int         `json:"version"`
	Skills  []lockEntry `json:"skills"`
}

// lockEntry records one installed skill.
type lockEntry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Source is where the skill was installed from, as the caller named
	// it (a directory or an archive).
	Source string `json:"source"`
	// SHA256 is the hex SHA-256 of the plugin binary.
	SHA256 string `json:"sha256"`
	// ManifestSHA256 is the hex SHA-256 of the installed skill.json.
	ManifestSHA256 string    `json:"manifest_sha256"`
	Enabled        bool      `json:"enabled"`
	InstalledAt    time.Time `json:"installed_at"`
	// Config holds the values the user set, by option name; the
	// manifest's defaults fill in the rest when the plugin starts.
	Config map[string]json.RawMessage `json:"config,omitempty"`
}

// find returns the index of the entry named name, or -1.
func (l *lockFile) find(name string) int {
	return slices.IndexFunc(l.Skills, func(e lockEntry) bool { return e.Name == name })
}

// clone returns a deep copy of l, which callers modify and then write.
func (l *lockFile) clone() *lockFile {
	c := &lockFile{Version: l.Version, Skills: slices.Clone(l.Skills)}
	for i := range c.Skills {
		if cfg := c.Skills[i].Config; cfg != nil {
			c.Skills[i].Config = make(map[string]json.RawMessage, len(cfg))
			for k, v := range cfg {
				c.Skills[i].Config[k] = bytes.Clone(v)
			}
		}
	}
	return c
}

// readLock reads the lock file in dir. A missing file is an empty lock.
func readLock(dir string) (*lockFile, error) {
	path := filepath.Join(dir, lockName)
	data, err := safefile.ReadFile(path, maxLockSize)
	if errors.Is(err, fs.ErrNotExist) {
		return &lockFile{Version: lockFormat}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the skills lock: %w", err)
	}
	l, err := decodeLock(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// decodeLock strictly decodes and checks a lock file: unknown members,
// trailing data, a wrong format version and malformed or duplicate entries
// are errors naming the member.
func decodeLock(data []byte) (*lockFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var l lockFile
	if err := dec.Decode(&l); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the top-level object")
	}
	if l.Version != lockFormat {
		return nil, fmt.Errorf("version: %d is not the supported lock format %d", l.Version, lockFormat)
	}
	seen := make(map[string]bool, len(l.Skills))
	for i := range l.Skills {
		e := &l.Skills[i]
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("skills[%d].%w", i, err)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("skills[%d].name: %q is listed twice", i, e.Name)
		}
		seen[e.Name] = true
	}
	return &l, nil
}

// check reports the first malformed member of e, as "member: problem".
func (e *lockEntry) check() error {
	switch {
	case !namePattern.MatchString(e.Name):
		return fmt.Errorf("name: %q is not a skill name", truncate(e.Name))
	case !versionPattern.MatchString(e.Version):
		return fmt.Errorf("version: %q is not a semantic version", truncate(e.Version))
	case !isSHA256Hex(e.SHA256):
		return errors.New("sha256: not 64 lower-case hex digits")
	case !isSHA256Hex(e.ManifestSHA256):
		return errors.New("manifest_sha256: not 64 lower-case hex digits")
	case e.InstalledAt.IsZero():
		return errors.New("installed_at: missing")
	}
	for k, v := range e.Config {
		if !json.Valid(v) {
			return fmt.Errorf("config.%s: not valid JSON", truncate(k))
		}
	}
	return nil
}

// encode returns the lock file as indented JSON, skills sorted by name.
func (l *lockFile) encode() ([]byte, error) {
	out := l.clone()
	out.Version = lockFormat
	slices.SortFunc(out.Skills, func(a, b lockEntry) int { return strings.Compare(a.Name, b.Name) })
	if out.Skills == nil {
		out.Skills = []lockEntry{}
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the skills lock: %w", err)
	}
	return append(data, '\n'), nil
}

// writeLock atomically replaces the lock file in dir.
func writeLock(dir string, l *lockFile) error {
	data, err := l.encode()
	if err != nil {
		return err
	}
	if err := safefile.WriteFile(filepath.Join(dir, lockName), data); err != nil {
		return fmt.Errorf("writing the skills lock: %w", err)
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// truncate shortens a value quoted in an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
)

// HomeEnv names the environment variable that overrides the AgentMesh home
// directory (DESIGN.md §7).
const HomeEnv = "AGENTMESH_HOME"

// ErrNotFound is returned by [Find] and [LoadDefault] when no identity file
// exists in any of the known locations.
var ErrNotFound = errors.New("no identity file")

// Home returns the AgentMesh state directory: $AGENTMESH_HOME made absolute
// when set and not empty, otherwise ~/.agentmesh.
func Home() (string, error) {
	if h := os.Getenv(HomeEnv); h != "" {
		abs, err := filepath.Abs(h)
		if err != nil {
			return "", fmt.Errorf("resolving %s: %w", HomeEnv, err)
		}
		return abs, nil
	}
	user, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home directory (set %s instead): %w", HomeEnv, err)
	}
	return filepath.Join(user, ".agentmesh"), nil
}

// DefaultPath returns where the Go host keeps the identity under home:
// home/identity/identity.json.
func DefaultPath(home string) string {
	return filepath.Join(home, "identity", "identity.json")
}

// location is a place an identity file may be found under the home directory.
type location struct {
	rel   string // relative to home, slash-separated
	owner string // which implementation writes it there
}

// locations are searched in order: the Go file wins over files the other
// SDKs left behind.
var locations = []location{
	{"identity/identity.json", ""},
	{"identity/identity", "TypeScript SDK"}, // FileStorage key identity/identity (PROTOCOL.md §10.1)
	{"keys/identity.json", "Python client"}, // PROTOCOL.md §10.2
}

// Find returns the path of the identity file under home: [DefaultPath] if it
// exists, else the TypeScript SDK's file, else the Python client's. It
// returns an error wrapping [ErrNotFound] if there is none.
func Find(home string) (string, error) {
	path, _, err := find(home)
	return path, err
}

func find(home string) (path string, owner string, err error) {
	for _, loc := range locations {
		path := filepath.Join(home, filepath.FromSlash(loc.rel))
		// Lstat, so that a symbolic link is found here and refused by Load
		// rather than silently skipped.
		_, err := os.Lstat(path)
		if err == nil {
			return path, loc.owner, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("looking for the identity: %w", err)
		}
	}
	return "", "", fmt.Errorf("%w under %s", ErrNotFound, home)
}

// LoadDefault finds the identity under home (see [Find]) and loads it. When
// the file is one another SDK wrote, a warning says so; saving the identity
// writes [DefaultPath], which is found first from then on.
func LoadDefault(home string) (*Identity, []string, error) {
	path, owner, err := find(home)
	if err != nil {
		return nil, nil, err
	}
	id, warnings, err := Load(path)
	if err != nil {
		return nil, nil, err
	}
	if owner != "" {
		warnings = append(warnings, fmt.Sprintf("using the identity the %s stored at %s; it will be saved to %s", owner, path, DefaultPath(home)))
	}
	return id, warnings, nil
}

// Load reads the identity file at path, checks it (see the package
// documentation) and returns the identity with warnings about the parts of
// the file that were accepted with leniency. A file that group or others can
// read is tightened to mode 0600, with a warning. Load refuses a symbolic
// link and a file larger than [MaxFileSize]. Decoding errors are a
// *protocol.DecodeError naming the member at fault; no error or warning
// quotes key material.
func Load(path string) (*Identity, []string, error) {
	data, err := safefile.ReadFile(path, MaxFileSize)
	if err != nil {
		return nil, nil, fmt.Errorf("loading identity: %w", err)
	}
	defer clear(data)

	var warnings []string
	var modeErr *safefile.ModeError
	if err := safefile.CheckPrivate(path); errors.As(err, &modeErr) {
		if err := safefile.MakePrivate(path); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s has mode %04o, readable by others, and could not be tightened: %v",
				path, uint32(modeErr.Mode.Perm()), err))
		} else {
			warnings = append(warnings, fmt.Sprintf("%s had mode %04o, readable by others; tightened to %04o",
				path, uint32(modeErr.Mode.Perm()), uint32(modeErr.Mode.Perm()&^0o077)))
		}
	} else if err != nil {
		return nil, nil, fmt.Errorf("loading identity: %w", err)
	}

	id, parseWarnings, err := parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("loading identity from %s: %w", path, err)
	}
	return id, append(warnings, parseWarnings...), nil
}

// Save writes the identity to path atomically with mode 0600, creating its
// directory with mode 0700 (and tightening that directory if group or
// others can enter it).
func (id *Identity) Save(path string) error {
	if err := safefile.MkdirAll(filepath.Dir(path)); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	data := id.marshal()
	defer clear(data)
	if err := safefile.WriteFile(path, data); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	return nil
}

//go:build unix

package identity

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestSaveModes(t *testing.T) {
	// A permissive umask leaves the modes to the code under test.
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	tests := []struct {
		name   string
		setup  func(t *testing.T, home string)
		oldDir fs.FileMode // 0: the directory did not exist
	}{
		{"new home", func(t *testing.T, home string) {}, 0},
		{"open identity directory", func(t *testing.T, home string) {
			dir := filepath.Join(home, "identity")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}, 0o755},
		{"open file replaced", func(t *testing.T, home string) {
			path := DefaultPath(home)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 0o700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			tt.setup(t, home)
			path := DefaultPath(home)
			if err := goldenIdentity(t).Save(path); err != nil {
				t.Fatal(err)
			}
			if got := fileMode(t, path); got != 0o600 {
				t.Errorf("file mode = %04o, want 0600", got)
			}
			if got := fileMode(t, filepath.Dir(path)); got != 0o700 {
				t.Errorf("identity directory mode = %04o, want 0700", got)
			}
			if tt.oldDir == 0 {
				if got := fileMode(t, home); got != 0o700 {
					t.Errorf("created home directory mode = %04o, want 0700", got)
				}
			}
		})
	}
}

func TestLoadTightensMode(t *testing.T) {
	tests := []struct {
		name        string
		mode        fs.FileMode
		wantMode    fs.FileMode
		wantWarning string // "" for none
	}{
		{"private", 0o600, 0o600, ""},
		{"world readable", 0o644, 0o600, "mode 0644"},
		{"group readable", 0o640, 0o600, "mode 0640"},
		{"everyone everything", 0o666, 0o600, "mode 0666"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity.json")
			writePrivate(t, path, readTestdata(t, goldenFile))
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			id, warnings, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if id.AMID() != goldenAMID {
				t.Errorf("AMID = %s, want %s", id.AMID(), goldenAMID)
			}
			if got := fileMode(t, path); got != tt.wantMode {
				t.Errorf("mode after Load = %04o, want %04o", got, tt.wantMode)
			}
			switch {
			case tt.wantWarning == "" && len(warnings) != 0:
				t.Errorf("warnings = %q, want none", warnings)
			case tt.wantWarning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tt.wantWarning) || !strings.Contains(warnings[0], "tightened to 0600")):
				t.Errorf("warnings = %q, want one about %q tightened to 0600", warnings, tt.wantWarning)
			}
		})
	}
}

//go:build unix

package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// permissiveUmask clears the umask for the test, so that only the code under
// test decides the modes of what it creates.
func permissiveUmask(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
}

func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestWriteFileMode(t *testing.T) {
	permissiveUmask(t)
	tests := []struct {
		name    string
		oldMode fs.FileMode // 0: no file before
	}{
		{"new file", 0},
		{"replace world-readable file", 0o644},
		{"replace private file", 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if tt.oldMode != 0 {
				if err := os.WriteFile(path, []byte("old"), tt.oldMode); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(path, []byte("new")); err != nil {
				t.Fatal(err)
			}
			if got := perm(t, path); got != FileMode {
				t.Errorf("mode = %04o, want %04o", got, FileMode)
			}
		})
	}
}

func TestMkdirAll(t *testing.T) {
	permissiveUmask(t)
	tests := []struct {
		name     string
		setup    func(t *testing.T, path string)
		wantMode fs.FileMode
		wantErr  error
	}{
		{
			name:     "creates",
			setup:    func(t *testing.T, path string) {},
			wantMode: DirMode,
		},
		{
			name: "tightens world-readable",
			setup: func(t *testing.T, path string) {
				mkdir(t, path, 0o755)
			},
			wantMode: DirMode,
		},
		{
			name: "tightens group-writable",
			setup: func(t *testing.T, path string) {
				mkdir(t, path, 0o770)
			},
			wantMode: DirMode,
		},
		{
			name: "keeps owner bits",
			setup: func(t *testing.T, path string) {
				mkdir(t, path, 0o511)
			},
			wantMode: 0o500,
		},
		{
			name: "refuses symlink",
			setup: func(t *testing.T, path string) {
				real := filepath.Join(filepath.Dir(path), "real")
				mkdir(t, real, 0o755)
				if err := os.Symlink(real, path); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrSymlink,
		},
		{
			name: "refuses other owner",
			setup: func(t *testing.T, path string) {
				if os.Geteuid() != 0 {
					if os.Getenv("CI") != "" { // CI must run every test
						t.Fatal("changing a directory's owner needs root")
					}
					t.Skip("changing a directory's owner needs root")
				}
				mkdir(t, path, 0o700)
				if err := os.Chown(path, 4242, 4242); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotOwned,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a", "b")
			mkdir(t, filepath.Dir(path), 0o755)
			tt.setup(t, path)
			err := MkdirAll(path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("MkdirAll error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("MkdirAll: %v", err)
			}
			if got := perm(t, path); got != tt.wantMode {
				t.Errorf("mode = %04o, want %04o", got, tt.wantMode)
			}
			if got := perm(t, filepath.Dir(path)); got != 0o755 {
				t.Errorf("existing parent mode = %04o, want it left at 0755", got)
			}
		})
	}
}

func TestMkdirAllCreatesParentsPrivate(t *testing.T) {
	permissiveUmask(t)
	root := t.TempDir()
	path := filepath.Join(root, "x", "y", "z")
	if err := MkdirAll(path); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"x", "x/y", "x/y/z"} {
		if got := perm(t, filepath.Join(root, p)); got != DirMode {
			t.Errorf("%s mode = %04o, want %04o", p, got, DirMode)
		}
	}
}

func TestMkdirAllRefusesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	mustWrite(t, path, nil)
	if err := MkdirAll(path); err == nil {
		t.Fatal("MkdirAll over a regular file succeeded")
	}
}

func mkdir(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	// Mkdir is subject to the umask; Chmod is not.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestCheckAndMakePrivate(t *testing.T) {
	permissiveUmask(t)
	tests := []struct {
		name      string
		mode      fs.FileMode
		wantCheck bool // CheckPrivate reports a *ModeError
		wantAfter fs.FileMode
	}{
		{"private", 0o600, false, 0o600},
		{"owner read only", 0o400, false, 0o400},
		{"world readable", 0o644, true, 0o600},
		{"group writable", 0o660, true, 0o600},
		{"world everything", 0o777, true, 0o700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, []byte("x"), tt.mode); err != nil {
				t.Fatal(err)
			}
			err := CheckPrivate(path)
			var me *ModeError
			if got := errors.As(err, &me); got != tt.wantCheck {
				t.Fatalf("CheckPrivate = %v, want ModeError %v", err, tt.wantCheck)
			}
			if me != nil && me.Mode.Perm() != tt.mode {
				t.Errorf("ModeError.Mode = %04o, want %04o", me.Mode.Perm(), tt.mode)
			}
			if err := MakePrivate(path); err != nil {
				t.Fatalf("MakePrivate: %v", err)
			}
			if got := perm(t, path); got != tt.wantAfter {
				t.Errorf("mode after MakePrivate = %04o, want %04o", got, tt.wantAfter)
			}
			if err := CheckPrivate(path); err != nil {
				t.Errorf("CheckPrivate after MakePrivate: %v", err)
			}
		})
	}
}

func TestPrivateRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(link); !errors.Is(err, ErrSymlink) {
		t.Errorf("CheckPrivate(link) = %v, want %v", err, ErrSymlink)
	}
	if err := MakePrivate(link); !errors.Is(err, ErrSymlink) {
		t.Errorf("MakePrivate(link) = %v, want %v", err, ErrSymlink)
	}
	if got := perm(t, target); got != 0o644 {
		t.Errorf("link target mode = %04o, want it untouched", got)
	}
}

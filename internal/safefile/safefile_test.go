package safefile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name string
		old  []byte // nil: no file before
		data []byte
	}{
		{"new file", nil, []byte("hello")},
		{"replace", []byte("old content that is longer"), []byte("new")},
		{"empty data", []byte("old"), []byte{}},
	}
	for _, write := range []struct {
		name string
		f    func(string, []byte) error
	}{{"WriteFile", WriteFile}, {"ReplaceFile", ReplaceFile}} {
		for _, tt := range tests {
			t.Run(write.name+"/"+tt.name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "f.json")
				if tt.old != nil {
					mustWrite(t, path, tt.old)
				}
				if err := write.f(path, tt.data); err != nil {
					t.Fatalf("%s: %v", write.name, err)
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.data) {
					t.Errorf("content = %q, want %q", got, tt.data)
				}
				if names := dirNames(t, dir); !slices.Equal(names, []string{"f.json"}) {
					t.Errorf("directory holds %q, want only the file", names)
				}
				if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != FileMode {
					t.Errorf("mode %v (%v), want %v", fi.Mode().Perm(), err, FileMode)
				}
			})
		}
	}
}

func TestWriteFileFailureKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	mustWrite(t, path, []byte("old"))

	injected := errors.New("injected failure")
	var sawTemp bool
	beforeRenameForTest = func(tmp string) error {
		got, err := os.ReadFile(tmp)
		sawTemp = err == nil && string(got) == "new"
		return injected
	}
	t.Cleanup(func() { beforeRenameForTest = nil })

	err := WriteFile(path, []byte("new"))
	if !errors.Is(err, injected) {
		t.Fatalf("WriteFile error = %v, want the injected failure", err)
	}
	if !sawTemp {
		t.Error("the temporary file did not hold the new content before the rename")
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "old" {
		t.Errorf("content after failed write = %q, want %q", got, "old")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"f.json"}) {
		t.Errorf("directory holds %q after a failed write, want the temporary file gone", names)
	}
}

func TestWriteFileParentIsFile(t *testing.T) {
	dir := t.TempDir()
	parent := filepath.Join(dir, "file")
	mustWrite(t, parent, []byte("x"))
	if err := WriteFile(filepath.Join(parent, "f.json"), []byte("data")); err == nil {
		t.Fatal("WriteFile under a regular file succeeded")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"file"}) {
		t.Errorf("directory holds %q, want nothing new", names)
	}
}

func TestWriteFileReplacesLinkNotTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link")
	mustWrite(t, target, []byte("target"))
	if err := os.Symlink(target, link); err != nil {
		if os.Getenv("CI") != "" { // CI must run every test
			t.Fatalf("cannot create symbolic links: %v", err)
		}
		t.Skipf("cannot create symbolic links: %v", err)
	}
	if err := WriteFile(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "target" {
		t.Errorf("link target = %q, want it untouched", got)
	}
	fi, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("path mode = %v, want a regular file in place of the link", fi.Mode())
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	mustWrite(t, small, []byte("0123456789"))
	link := filepath.Join(dir, "link")
	if err := os.Symlink(small, link); err != nil {
		if os.Getenv("CI") != "" { // CI must run every test
			t.Fatalf("cannot create symbolic links: %v", err)
		}
		t.Skipf("cannot create symbolic links: %v", err)
	}

	tests := []struct {
		name    string
		path    string
		max     int64
		want    string
		wantErr error
	}{
		{"under limit", small, 100, "0123456789", nil},
		{"at limit", small, 10, "0123456789", nil},
		{"over limit", small, 9, "", ErrTooLarge},
		{"symlink", link, 100, "", ErrSymlink},
		{"directory", dir, 100, "", ErrNotRegular},
		{"missing", filepath.Join(dir, "missing"), 100, "", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadFile(tt.path, tt.max)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ReadFile error = %v, want %v", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("ReadFile returned %q with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadFile: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("ReadFile = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRemoveOverwrites(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"small", 37},
		{"several chunks", 3*zeroChunk + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			data := bytes.Repeat([]byte{0xA5}, tt.size)
			mustWrite(t, path, data)

			// An open descriptor still reaches the inode after the unlink.
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()

			if err := Remove(path); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Lstat after Remove: %v, want not exist", err)
			}
			got := make([]byte, tt.size+1)
			n, _ := f.ReadAt(got, 0)
			if n != tt.size {
				t.Fatalf("read %d bytes through the old descriptor, want %d", n, tt.size)
			}
			if !bytes.Equal(got[:n], make([]byte, tt.size)) {
				t.Error("old content still readable after Remove, want zeros")
			}
		})
	}
}

func TestRemoveRefuses(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	mustWrite(t, target, []byte("keep me"))
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		if os.Getenv("CI") != "" { // CI must run every test
			t.Fatalf("cannot create symbolic links: %v", err)
		}
		t.Skipf("cannot create symbolic links: %v", err)
	}

	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{"symlink", link, ErrSymlink},
		{"missing", filepath.Join(dir, "missing"), fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Remove(tt.path); !errors.Is(err, tt.wantErr) {
				t.Errorf("Remove error = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if got, _ := os.ReadFile(target); string(got) != "keep me" {
		t.Errorf("link target = %q after Remove of the link, want it untouched", got)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("link gone after a refused Remove: %v", err)
	}
}

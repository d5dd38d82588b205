package servercmd

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHome(t *testing.T) {
	env := map[string]string{"AGENTMESH_HOME": "rel/home"}
	got, err := Home(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if want := filepath.Join(wd, "rel", "home"); got != want {
		t.Errorf("Home with AGENTMESH_HOME = %q, want %q", got, want)
	}
	got, err = Home(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(got) != ".agentmesh" || !filepath.IsAbs(got) {
		t.Errorf("default Home = %q, want an absolute path ending in .agentmesh", got)
	}
}

func TestPrepareSQLite(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	if err := PrepareSQLite("sqlite://" + filepath.Join(dir, "x.db")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", fi.Mode().Perm())
	}
	// An existing directory is left as the operator made it.
	open := filepath.Join(root, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := PrepareSQLite("sqlite://" + filepath.Join(open, "x.db")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o755 {
		t.Errorf("existing directory mode changed to %v", fi.Mode().Perm())
	}
	// Other databases are not touched.
	if err := PrepareSQLite("postgres://localhost/db"); err != nil {
		t.Fatal(err)
	}
}

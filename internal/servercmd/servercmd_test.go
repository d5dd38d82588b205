package servercmd

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
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

func TestCheckArgsAndParseLevel(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		cert, key string
		ok        bool
		want      string
	}{
		{nil, "", "", true, ""},
		{nil, "c.pem", "k.pem", true, ""},
		{[]string{"extra"}, "", "", false, "Error: unexpected argument \"extra\"\nHint: cmd --help\n"},
		{nil, "c.pem", "", false, "Error: --tls-cert and --tls-key go together\nHint: cmd --tls-cert cert.pem --tls-key key.pem\n"},
	} {
		fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if ok := CheckArgs(&out, "cmd", fs, tc.cert, tc.key); ok != tc.ok || out.String() != tc.want {
			t.Errorf("CheckArgs(%v, %q, %q) = %v, %q; want %v, %q", tc.args, tc.cert, tc.key, ok, out.String(), tc.ok, tc.want)
		}
	}

	var out strings.Builder
	if level, ok := ParseLevel(&out, "cmd", "warn"); !ok || level != hclog.Warn || out.Len() != 0 {
		t.Errorf("ParseLevel(warn) = %v, %v, %q", level, ok, out.String())
	}
	if _, ok := ParseLevel(&out, "cmd", "loud"); ok || out.String() != "Error: unknown log level \"loud\"\nHint: cmd --log-level info\n" {
		t.Errorf("ParseLevel(loud) = %v, %q", ok, out.String())
	}
}

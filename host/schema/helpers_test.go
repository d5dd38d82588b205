package schema_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/internal/logtest"
)

// newCatalogue returns a catalogue over dir in mode whose log output is
// returned as well.
func newCatalogue(t testing.TB, dir string, mode schema.Mode) (*schema.Catalogue, *logtest.Buffer) {
	t.Helper()
	logs := new(logtest.Buffer)
	c, err := schema.New(schema.Options{
		Dir:    dir,
		Mode:   mode,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace}),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, logs
}

// decode decodes JSON text for a test, failing it on error.
func decode(t testing.TB, text string) any {
	t.Helper()
	v, err := schema.DecodeJSON([]byte(text))
	if err != nil {
		t.Fatalf("DecodeJSON(%s): %v", text, err)
	}
	return v
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replaceFile gives path new content through a new inode, as an editor or
// another catalogue would.
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

var ctx = context.Background()

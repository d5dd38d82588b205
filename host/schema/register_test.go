package schema_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agentmesh/agentmesh-go/host/schema"
	"github.com/agentmesh/agentmesh-go/schemas"
)

// nameSchema accepts objects whose "name" is a string of at most max
// characters.
func nameSchema(max int) []byte {
	return fmt.Appendf(nil, `{"$schema":"http://json-schema.org/draft-07/schema#","$id":"x-acme/thing/v2","type":"object","properties":{"name":{"type":"string","maxLength":%d}}}`, max)
}

// valid validates v against id in c and reports whether it matched,
// failing the test if it was not validated.
func valid(t *testing.T, c *schema.Catalogue, id string, v any) bool {
	t.Helper()
	res, err := c.Validate(ctx, id, v)
	if res.Skipped() {
		t.Fatalf("Validate(%q) skipped: %s", id, res.Skip)
	}
	if err != nil && !errors.As(err, new(*schema.ValidationError)) {
		t.Fatalf("Validate(%q): %v", id, err)
	}
	return res.Valid
}

func TestRegisterSavesAndReloads(t *testing.T) {
	const id = "x-acme/thing/v2"
	dir := filepath.Join(t.TempDir(), "schemas")
	c, logs := newCatalogue(t, dir, schema.ModeStrict)
	if c.Has(id) {
		t.Fatalf("Has(%q) before Register", id)
	}
	doc := nameSchema(3)
	if err := c.Register(id, doc); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if !c.Has(id) || !slices.Contains(c.IDs(), id) {
		t.Errorf("after Register, Has = %v and IDs = %q", c.Has(id), c.IDs())
	}
	if len(logs.Lines("custom schema registered", "schema="+id)) != 1 {
		t.Errorf("log = %q, want a line for the registration", logs.String())
	}

	path := filepath.Join(dir, "x-acme", "thing", "v2.json")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the saved schema: %v", err)
	}
	if !bytes.Equal(got, doc) {
		t.Errorf("saved %s, want %s", got, doc)
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]fs.FileMode{
			dir:                                   0o700,
			filepath.Join(dir, "x-acme"):          0o700,
			filepath.Join(dir, "x-acme", "thing"): 0o700,
			path:                                  0o600,
		} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s has mode %04o, want %04o", p, got, want)
			}
		}
	}

	fresh, _ := newCatalogue(t, dir, schema.ModeStrict)
	if !slices.Contains(fresh.IDs(), id) {
		t.Fatalf("a new catalogue over the directory lists %q, not %q", fresh.IDs(), id)
	}
	if !valid(t, fresh, id, decode(t, `{"name":"abc"}`)) {
		t.Error("the reloaded schema refuses a valid value")
	}
	if valid(t, fresh, id, decode(t, `{"name":"abcd"}`)) {
		t.Error("the reloaded schema accepts an invalid value")
	}
}

func TestRegisterTightensDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		if os.Getenv("CI") != "" { // CI must run every test
			t.Fatal("no Unix permissions")
		}
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c, _ := newCatalogue(t, dir, schema.ModeStrict)
	if err := c.Register("x-acme/thing/v2", nameSchema(3)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("schema directory has mode %04o after Register, want 0700", got)
	}
}

func TestRegisterIDs(t *testing.T) {
	tests := []struct {
		id      string
		wantErr error
	}{
		{id: "x-acme/thing/v2"},
		{id: "x-acme/thing/v0"},
		{id: "x-acme_labs/invoice-line/v12"},
		{id: "agentmesh/travel/hotel-search/v1"},
		{id: "agentmesh/custom"},
		{id: "../x-acme/thing/v1", wantErr: schema.ErrInvalidID},
		{id: "x-acme/../v1", wantErr: schema.ErrInvalidID},
		{id: "x-acme/./v1", wantErr: schema.ErrInvalidID},
		{id: "x-acme/thing/../../../../etc/passwd", wantErr: schema.ErrInvalidID},
		{id: "/x-acme/thing/v1", wantErr: schema.ErrInvalidID},
		{id: "x-acme//v1", wantErr: schema.ErrInvalidID},
		{id: "x-acme/thing/v1/", wantErr: schema.ErrInvalidID},
		{id: `x-acme\thing\v1`, wantErr: schema.ErrInvalidID},
		{id: "x-acme/thing/v1.json", wantErr: schema.ErrInvalidID},
		{id: "x-acme/thing", wantErr: schema.ErrInvalidID},
		{id: "x-acme/thing/v1/more", wantErr: schema.ErrInvalidID},
		{id: "x-acme/thing/1", wantErr: schema.ErrInvalidID},
		{id: "x-acme/thing/v01", wantErr: schema.ErrInvalidID},
		{id: "x-acme/thing/v", wantErr: schema.ErrInvalidID},
		{id: "x-/thing/v1", wantErr: schema.ErrInvalidID},
		{id: "X-Acme/thing/v1", wantErr: schema.ErrInvalidID},
		{id: "acme/thing/v1", wantErr: schema.ErrInvalidID},
		{id: "x-acme/-thing/v1", wantErr: schema.ErrInvalidID},
		{id: "agentmesh", wantErr: schema.ErrInvalidID},
		{id: "", wantErr: schema.ErrInvalidID},
		{id: "x-acme/" + strings.Repeat("t", 200) + "/v1", wantErr: schema.ErrInvalidID},
		{id: schemas.FlightSearch, wantErr: schema.ErrReserved},
	}
	for _, id := range schemas.IDs() {
		tests = append(tests, struct {
			id      string
			wantErr error
		}{id: id, wantErr: schema.ErrReserved})
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "schemas")
			c, _ := newCatalogue(t, dir, schema.ModeStrict)
			err := c.Register(tt.id, nameSchema(3))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Register(%q) = %v, want %v", tt.id, err, tt.wantErr)
			}
			if err != nil {
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a refused Register created %s (stat: %v)", dir, err)
				}
				if errors.Is(err, schema.ErrReserved) && !c.Has(tt.id) {
					t.Errorf("the standard schema %s is gone after a refused Register", tt.id)
				}
				return
			}
			if !c.Has(tt.id) {
				t.Errorf("Has(%q) = false after Register", tt.id)
			}
		})
	}
}

func TestRegisterRefusesBadSchema(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr error
		want    string // in the error message
	}{
		{name: "not JSON", doc: `{"type":`, want: "not JSON"},
		{name: "two values", doc: `{} {}`, want: "not JSON"},
		{name: "unknown type", doc: `{"type":"strin"}`, want: "at '/type'"},
		{name: "minimum not a number", doc: `{"properties":{"n":{"minimum":"one"}}}`, want: "at '/properties/n/minimum': got string, want number"},
		{name: "array", doc: `[]`, want: "got array, want boolean or object"},
		{name: "bad regex", doc: `{"pattern":"(?=x)"}`, want: "is not valid regex"},
		{name: "file reference", doc: `{"$ref":"file:///etc/passwd"}`, want: "may be referenced"},
		{name: "network reference", doc: `{"$ref":"https://example.com/schema.json"}`, want: "may be referenced"},
		{name: "other custom schema", doc: `{"$ref":"https://schemas.agentmesh.invalid/x-acme/other/v1"}`, want: "may be referenced"},
		{name: "missing definition", doc: `{"$ref":"#/definitions/nope"}`, want: "definitions/nope"},
		{name: "draft 2020-12", doc: `{"$schema":"https://json-schema.org/draft/2020-12/schema"}`, want: `only draft-07`},
		{name: "draft 4", doc: `{"$schema":"http://json-schema.org/draft-04/schema#"}`, want: `only draft-07`},
		{name: "schema not a string", doc: `{"$schema":7}`, want: `"$schema" is not a string`},
		{name: "too large", doc: `{"description":"` + strings.Repeat("x", schema.MaxSchemaSize) + `"}`, wantErr: schema.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const id = "x-acme/thing/v2"
			dir := t.TempDir()
			c, _ := newCatalogue(t, dir, schema.ModeStrict)
			err := c.Register(id, []byte(tt.doc))
			if err == nil {
				t.Fatal("Register succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Register error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), id) {
				t.Errorf("Register error = %q, want it to name %s and say %q", err, id, tt.want)
			}
			if c.Has(id) {
				t.Error("Has is true after a refused Register")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("refused Register wrote %v", entries)
			}
		})
	}
}

func TestRegisterAcceptsDraft07Forms(t *testing.T) {
	docs := []string{
		`true`,
		`false`,
		`{}`,
		`{"$schema":"http://json-schema.org/draft-07/schema"}`,
		`{"$schema":"https://json-schema.org/draft-07/schema#"}`,
		`{"$id":"https://example.com/anything","definitions":{"a":{"type":"string"}},"properties":{"a":{"$ref":"#/definitions/a"}}}`,
		`{"allOf":[{"$ref":"https://schemas.agentmesh.invalid/agentmesh/travel/flight-search/v1"}],"required":["origin"]}`,
		`{"format":"no-such-format"}`,
	}
	c, _ := newCatalogue(t, t.TempDir(), schema.ModeStrict)
	for i, doc := range docs {
		id := fmt.Sprintf("x-acme/form/v%d", i)
		if err := c.Register(id, []byte(doc)); err != nil {
			t.Errorf("Register(%s): %v", doc, err)
		}
	}
	// The schema that extends flight-search applies both.
	if valid(t, c, "x-acme/form/v6", decode(t, `{"origin":"jfk"}`)) || valid(t, c, "x-acme/form/v6", decode(t, `{"destination":"JFK"}`)) {
		t.Error("a schema built on flight-search accepted an invalid value")
	}
	if !valid(t, c, "x-acme/form/v6", decode(t, `{"origin":"JFK"}`)) {
		t.Error("a schema built on flight-search refused a valid value")
	}
	if valid(t, c, "x-acme/form/v1", decode(t, `{}`)) {
		t.Error("the false schema accepted a value")
	}
}

func TestRegisterWithoutDir(t *testing.T) {
	c, _ := newCatalogue(t, "", schema.ModeStrict)
	if err := c.Register("x-acme/thing/v2", nameSchema(3)); !errors.Is(err, schema.ErrNoDir) {
		t.Errorf("Register = %v, want ErrNoDir", err)
	}
	if c.Has("x-acme/thing/v2") {
		t.Error("Has is true without a directory")
	}
}

func TestRegisterReplaces(t *testing.T) {
	const id = "x-acme/thing/v2"
	c, _ := newCatalogue(t, t.TempDir(), schema.ModeStrict)
	v := decode(t, `{"name":"abcd"}`)
	if err := c.Register(id, nameSchema(3)); err != nil {
		t.Fatal(err)
	}
	if valid(t, c, id, v) {
		t.Fatal("first version accepted a 4-character name")
	}
	if err := c.Register(id, nameSchema(4)); err != nil {
		t.Fatal(err)
	}
	if !valid(t, c, id, v) {
		t.Error("second version refused a 4-character name")
	}
	// A refused replacement keeps the version in force.
	if err := c.Register(id, []byte(`{"type":7}`)); err == nil {
		t.Fatal("Register of a bad schema succeeded")
	}
	if !valid(t, c, id, v) {
		t.Error("a refused Register changed the schema in force")
	}
}

func TestCustomSchemaFileChanged(t *testing.T) {
	const id = "x-acme/thing/v2"
	dir := t.TempDir()
	path := filepath.Join(dir, "x-acme", "thing", "v2.json")
	c, logs := newCatalogue(t, dir, schema.ModeStrict)
	if err := c.Register(id, nameSchema(3)); err != nil {
		t.Fatal(err)
	}
	v := decode(t, `{"name":"abcdef"}`)
	if valid(t, c, id, v) {
		t.Fatal("maxLength 3 accepted 6 characters")
	}

	// Replaced through a new file.
	replaceFile(t, path, nameSchema(10))
	if !valid(t, c, id, v) {
		t.Error("after the file was replaced, the old schema is still in force")
	}
	if len(logs.Lines("custom schema changed on disk; compiled again", "schema="+id)) != 1 {
		t.Errorf("log = %q, want one line about the recompilation", logs.String())
	}

	// Rewritten in place, with another size.
	if err := os.WriteFile(path, nameSchema(5), 0o600); err != nil {
		t.Fatal(err)
	}
	if valid(t, c, id, v) {
		t.Error("after the file was rewritten in place, the old schema is still in force")
	}

	// A broken file keeps the last good version, and is reported once.
	replaceFile(t, path, []byte(`{"type":"strin"}`))
	for range 3 {
		if valid(t, c, id, v) {
			t.Error("after the file broke, the last good version is no longer in force")
		}
	}
	if n := len(logs.Lines("[WARN]", "does not compile; keeping the version loaded before", "schema="+id)); n != 1 {
		t.Errorf("log = %q, want one warning about the broken file, got %d", logs.String(), n)
	}

	// A removed file removes the schema.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	res, err := c.Validate(ctx, id, v)
	if err != nil || res.Skip != schema.SkipUnknownSchema {
		t.Errorf("after the file was removed, Validate = %+v, %v; want skipped as unknown", res, err)
	}
	if c.Has(id) || slices.Contains(c.IDs(), id) {
		t.Error("the removed schema is still listed")
	}

	// And a new file brings it back.
	replaceFile(t, path, nameSchema(3))
	if valid(t, c, id, v) {
		t.Error("the schema written again is not in force")
	}
}

// TestCustomSchemaFromAnotherCatalogue checks that a schema registered by
// one process is found by another that shares the directory.
func TestCustomSchemaFromAnotherCatalogue(t *testing.T) {
	const id = "x-acme/thing/v2"
	dir := t.TempDir()
	daemon, _ := newCatalogue(t, dir, schema.ModeStrict)
	cli, _ := newCatalogue(t, dir, schema.ModeStrict)
	if daemon.Has(id) {
		t.Fatal("Has before anyone registered")
	}
	if err := cli.Register(id, nameSchema(3)); err != nil {
		t.Fatal(err)
	}
	if valid(t, daemon, id, decode(t, `{"name":"abcd"}`)) {
		t.Error("the schema registered elsewhere was not applied")
	}
	if !slices.Contains(daemon.IDs(), id) {
		t.Errorf("IDs() = %q after use, want it to list %s", daemon.IDs(), id)
	}
}

func TestNewSkipsBadFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"x-acme/good/v1.json":                    string(nameSchema(3)),
		"x-acme/broken/v1.json":                  `{"type":`,
		"x-acme/wrong/v1.json":                   `{"type":"strin"}`,
		"notanid.json":                           `{}`,
		"x-acme/Upper/v1.json":                   `{}`,
		"agentmesh/travel/flight-search/v1.json": `false`,
		"x-acme/good/README.txt":                 `not a schema`,
		"x-acme/good/.v2.json.tmp123":            `{}`,
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
	if runtime.GOOS != "windows" {
		if err := os.Symlink(filepath.Join(dir, "x-acme/good/v1.json"), filepath.Join(dir, "x-acme/good/v3.json")); err != nil {
			t.Fatal(err)
		}
	}
	c, logs := newCatalogue(t, dir, schema.ModeStrict)
	var custom []string
	for _, id := range c.IDs() {
		if !slices.Contains(schemas.IDs(), id) {
			custom = append(custom, id)
		}
	}
	if want := []string{"x-acme/good/v1"}; !slices.Equal(custom, want) {
		t.Errorf("custom schemas loaded = %q, want %q", custom, want)
	}
	// The file named like a standard schema did not replace it.
	if !valid(t, c, schemas.FlightSearch, decode(t, `{"origin":"JFK"}`)) {
		t.Error("a file in the directory replaced the standard flight-search schema")
	}
	for _, want := range []string{"x-acme/broken/v1", "x-acme/wrong/v1", "notanid.json", "x-acme/Upper/v1.json", "would replace a standard schema"} {
		if len(logs.Lines("[WARN]", want)) != 1 {
			t.Errorf("log = %q, want one warning about %s", logs.String(), want)
		}
	}
	if runtime.GOOS != "windows" && c.Has("x-acme/good/v3") {
		t.Error("a symbolic link was followed")
	}
}

func TestNewDirNotDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "schemas")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.New(schema.Options{Dir: file}); err == nil {
		t.Error("New over a file succeeded")
	}
	if _, err := schema.New(schema.Options{Dir: filepath.Join(t.TempDir(), "not", "yet")}); err != nil {
		t.Errorf("New over a directory that does not exist yet: %v", err)
	}
}

// TestConcurrentUse validates against standard and custom schemas while
// custom schemas are registered and replaced; run it with -race.
func TestConcurrentUse(t *testing.T) {
	const id = "x-acme/thing/v2"
	dir := t.TempDir()
	c, _ := newCatalogue(t, dir, schema.ModeWarning)
	if err := c.Register(id, nameSchema(3)); err != nil {
		t.Fatal(err)
	}
	short, long := decode(t, `{"name":"ab"}`), decode(t, `{"name":"abcdefghijkl"}`)
	flight := decode(t, string(readTestdata(t, "flight-request.json")))

	var wg sync.WaitGroup
	errs := make(chan error, 8*50*3+4*20*2+20)
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				res, err := c.Validate(ctx, id, short)
				if err != nil || !res.Valid {
					errs <- fmt.Errorf("short name: %+v, %v", res, err)
				}
				res, err = c.Validate(ctx, id, long)
				if err != nil || res.Skipped() {
					errs <- fmt.Errorf("long name: %+v, %v", res, err)
				}
				res, err = c.Validate(ctx, schemas.FlightSearch, flight)
				if err != nil || !res.Valid {
					errs <- fmt.Errorf("flight: %+v, %v", res, err)
				}
				_ = c.Has(fmt.Sprintf("x-w%d/thing/v%d", w, i))
				_ = c.IDs()
			}
		})
	}
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				if err := c.Register(id, nameSchema(3+i%2*10)); err != nil {
					errs <- err
				}
				if err := c.Register(fmt.Sprintf("x-w%d/thing/v%d", w, i), nameSchema(i+1)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		// Another process replacing the file behind the catalogue's back.
		path := filepath.Join(dir, "x-acme", "thing", "v2.json")
		for i := range 20 {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, nameSchema(3+i%2*10), 0o600); err != nil {
				errs <- err
			} else if err := os.Rename(tmp, path); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range 4 {
		for i := range 20 {
			if id := fmt.Sprintf("x-w%d/thing/v%d", w, i); !c.Has(id) {
				t.Errorf("Has(%q) = false after concurrent Register", id)
			}
		}
	}
}

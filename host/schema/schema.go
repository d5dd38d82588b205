// Package schema is the host's schema catalogue: it validates payloads
// against JSON Schema draft-07 documents before the host hands them to a
// skill, and after a skill answers (DESIGN.md §3, §5; PROTOCOL.md §7.4).
//
// A [Catalogue] starts with every schema of package schemas compiled: the
// standard schemas, the payload and message schemas and the skill
// manifest. Custom schemas live in a directory chosen by the caller, one
// file per id (<dir>/<id>.json, files 0600, directories 0700); they are
// loaded by [New], added at run time by [Catalogue.Register], and picked
// up when another process writes them. Custom ids are "agentmesh/..." (the
// ids of package schemas are reserved) or "x-<namespace>/<name>/v<n>".
//
// # Modes
//
// [Catalogue.Validate] follows the catalogue's [Mode]: [ModeWarning] (the
// default) logs every error and lets the payload through, [ModeStrict]
// rejects it with a [*ValidationError] that lists every error and turns
// into the ERROR payload schema_validation_failed, and [ModeSilent] does
// not look. In every mode a payload that names no schema is not validated,
// and one that names a schema the catalogue does not know is let through
// with a warning. Logs carry schema ids, JSON pointers and messages, never
// the values of a payload.
//
// # The hot path
//
// A payload is decoded once: [DecodeJSON] turns bytes into the form the
// validator reads (numbers as json.Number), and that value is validated.
// [Catalogue.ValidateJSON] does both, and decodes nothing when no schema
// applies. Schemas are compiled once and shared; validating takes no lock
// but a read lock, and a custom schema costs one lstat(2) more, to notice
// that its file changed.
//
// # Custom schemas on disk
//
// A custom schema whose file has changed (another inode, size or
// modification time) is read and compiled again on its next use. A file
// that can no longer be read or compiled leaves the last good version in
// force, with a warning; a removed file removes the schema. A file
// rewritten in place within one tick of the file system's clock with the
// same size is not noticed: replace files (write and rename), as
// [Catalogue.Register] does.
//
// Every schema is compiled under an absolute URL, [BaseURL] followed by its
// id, whatever "$id" its document holds. A schema may refer ("$ref") to
// itself and to the schemas of package schemas by that URL; the catalogue
// never reads a file or the network to resolve a reference.
package schema

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/schemas"
)

// Options configure a [Catalogue]. The zero value is a catalogue of the
// built-in schemas in [ModeWarning] that logs nothing.
type Options struct {
	// Dir holds the custom schemas, normally <AGENTMESH_HOME>/schemas;
	// the package reads no environment. It need not exist yet. Empty means
	// no custom schemas: Register fails with ErrNoDir.
	Dir string
	// Mode is the validation mode.
	Mode Mode
	// Logger receives warnings and notices; nil discards them.
	Logger hclog.Logger
}

// Catalogue holds compiled schemas by id and validates values against
// them. It is safe for concurrent use.
type Catalogue struct {
	dir      string
	mode     Mode
	log      hclog.Logger
	standard map[string]*jsonschema.Schema // shared, never modified

	// loadMu serialises Register and every read of a custom schema file,
	// so that an entry always describes the file it was read from.
	loadMu sync.Mutex

	mu     sync.RWMutex // guards custom
	custom map[string]*customSchema
}

// customSchema is what the catalogue knows of one custom schema file. It is
// never modified; a new file gives a new customSchema.
type customSchema struct {
	path string
	// schema is the last version that compiled; nil if none did.
	schema *jsonschema.Schema
	// file describes the file as last examined, whether or not it
	// compiled; sum is the SHA-256 of the document schema came from.
	file fs.FileInfo
	sum  [sha256.Size]byte
}

// standardSchemas compiles the schemas of package schemas once per process;
// compiled schemas are immutable, so every catalogue shares them.
var standardSchemas = sync.OnceValues(compileStandard)

// New returns a catalogue holding the schemas of package schemas and the
// custom schemas under opts.Dir. A custom schema file that cannot be read,
// has a file name that is not a custom id, or does not compile is skipped
// with a warning; a Dir that exists but cannot be listed is an error.
func New(opts Options) (*Catalogue, error) {
	if opts.Mode < ModeWarning || opts.Mode > ModeSilent {
		return nil, fmt.Errorf("schema: unknown validation mode %d", int(opts.Mode))
	}
	std, err := standardSchemas()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	c := &Catalogue{
		dir:      opts.Dir,
		mode:     opts.Mode,
		log:      log,
		standard: std,
		custom:   make(map[string]*customSchema),
	}
	if c.dir != "" {
		if err := c.scan(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Mode returns the catalogue's validation mode.
func (c *Catalogue) Mode() Mode { return c.mode }

// scan loads every custom schema file under the directory.
func (c *Catalogue) scan() error {
	fi, err := os.Lstat(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("schema: reading schema directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("schema: schema directory %s is not a directory (symbolic links are not followed)", c.dir)
	}
	return filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == c.dir {
				return fmt.Errorf("schema: reading schema directory: %w", err)
			}
			c.log.Warn("cannot read the schema directory; skipping part of it", "path", path, "error", err)
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".json") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(c.dir, path)
		if err != nil {
			return nil
		}
		id := strings.TrimSuffix(filepath.ToSlash(rel), ".json")
		if err := checkCustomID(id); err != nil {
			c.log.Warn("ignoring a schema file whose name is not a schema id", "path", path, "error", err)
			return nil
		}
		if standardIDs[id] {
			c.log.Warn("ignoring a schema file that would replace a standard schema", "path", path, "schema", id)
			return nil
		}
		c.refresh(id)
		return nil
	})
}

// Has reports whether the catalogue knows the schema id, reading its file
// if it is a custom schema not seen yet.
func (c *Catalogue) Has(id string) bool {
	return c.lookup(id) != nil
}

// IDs returns the ids of the schemas the catalogue knows, sorted: those of
// package schemas and every custom schema loaded, registered or used so
// far.
func (c *Catalogue) IDs() []string {
	ids := schemas.IDs()
	c.mu.RLock()
	for id, e := range c.custom {
		if e.schema != nil {
			ids = append(ids, id)
		}
	}
	c.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// Register compiles schema as the custom schema id and saves it to
// <Dir>/<id>.json, replacing any earlier version. The id must be
// "agentmesh/..." other than the ids of package schemas, or
// "x-<namespace>/<name>/v<n>"; the document must be at most
// [MaxSchemaSize] bytes of draft-07 JSON Schema (a "$schema" member, if
// any, must name draft-07) that compiles. Nothing is saved unless it
// compiles.
func (c *Catalogue) Register(id string, schema []byte) error {
	if err := checkCustomID(id); err != nil {
		return fmt.Errorf("schema: registering: %w", err)
	}
	if standardIDs[id] {
		return fmt.Errorf("schema: registering %s: %w", id, ErrReserved)
	}
	if c.dir == "" {
		return fmt.Errorf("schema: registering %s: %w", id, ErrNoDir)
	}
	path, err := customPath(c.dir, id)
	if err != nil {
		return fmt.Errorf("schema: registering: %w", err)
	}
	sch, err := compileCustom(id, schema)
	if err != nil {
		return fmt.Errorf("schema: registering %s: %w", id, err)
	}

	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	if err := c.mkdirs(path); err != nil {
		return fmt.Errorf("schema: registering %s: %w", id, err)
	}
	if err := safefile.WriteFile(path, schema); err != nil {
		return fmt.Errorf("schema: registering %s: saving: %w", id, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("schema: registering %s: saved, but: %w", id, err)
	}
	c.store(id, &customSchema{path: path, schema: sch, file: fi, sum: sha256.Sum256(schema)})
	c.log.Info("custom schema registered", "schema", id, "path", path)
	return nil
}

// mkdirs creates, with mode 0700, the directory and each directory between
// it and the file at path.
func (c *Catalogue) mkdirs(path string) error {
	if err := safefile.MkdirAll(c.dir); err != nil {
		return err
	}
	rel, err := filepath.Rel(c.dir, filepath.Dir(path))
	if err != nil {
		return err
	}
	dir := c.dir
	for _, elem := range strings.Split(rel, string(filepath.Separator)) {
		if elem == "." {
			continue
		}
		dir = filepath.Join(dir, elem)
		if err := safefile.MkdirAll(dir); err != nil {
			return err
		}
	}
	return nil
}

// SkipReason says why a value was not validated.
type SkipReason string

// Reasons for not validating a value.
const (
	// NotSkipped: the value was validated.
	NotSkipped SkipReason = ""
	// SkipNoSchema: the message names no schema.
	SkipNoSchema SkipReason = "no schema"
	// SkipSilent: the catalogue is in ModeSilent.
	SkipSilent SkipReason = "silent mode"
	// SkipUnknownSchema: the catalogue does not know the schema named.
	SkipUnknownSchema SkipReason = "unknown schema"
)

// Result is the outcome of validating one value.
type Result struct {
	// Schema is the schema id asked for.
	Schema string
	// Valid reports that the value was validated and matches the schema.
	// It is false both for a value that fails (see Errors) and for one
	// that was not validated (see Skip).
	Valid bool
	// Skip says why the value was not validated; NotSkipped if it was.
	Skip SkipReason
	// Errors lists every failed constraint, sorted as in ValidationError.
	Errors []FieldError
}

// Skipped reports whether the value was not validated.
func (r Result) Skipped() bool { return r.Skip != NotSkipped }

// maxErrorsLogged bounds the errors spelled out in one log line.
const maxErrorsLogged = 100

// maxIDLogged bounds how much of a schema id from a peer is logged.
const maxIDLogged = 2 * maxIDLen

// Validate validates v, a value as [DecodeJSON] returns it, against the
// schema schemaID, following the catalogue's mode:
//
//   - ModeSilent, or an empty schemaID: nothing is checked; Result.Skip
//     says why.
//   - A schema the catalogue does not know: a warning is logged and
//     Result.Skip is SkipUnknownSchema, in every mode.
//   - A value that matches: Result.Valid is true.
//   - A value that does not match: Result.Errors lists every error. In
//     ModeStrict the error is a *ValidationError listing them too; in
//     ModeWarning they are logged and the error is nil.
//
// Validation itself is not interruptible; ctx is checked before it starts.
// A v holding Go types other than those of DecodeJSON gives an
// *InvalidValueError.
func (c *Catalogue) Validate(ctx context.Context, schemaID string, v any) (Result, error) {
	res, sch := c.prepare(schemaID)
	if sch == nil {
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return c.validate(res, sch, v)
}

// ValidateJSON is [Catalogue.Validate] for a value given as JSON. It
// decodes data once with [DecodeJSON], and not at all when nothing is to
// be checked. Data that is not one JSON value is an error in every mode
// that validates.
func (c *Catalogue) ValidateJSON(ctx context.Context, schemaID string, data []byte) (Result, error) {
	res, sch := c.prepare(schemaID)
	if sch == nil {
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	v, err := DecodeJSON(data)
	if err != nil {
		return res, err
	}
	return c.validate(res, sch, v)
}

// prepare finds the schema to validate against, or returns a nil schema
// and a Result saying why there is none.
func (c *Catalogue) prepare(schemaID string) (Result, *jsonschema.Schema) {
	res := Result{Schema: schemaID}
	switch {
	case c.mode == ModeSilent:
		res.Skip = SkipSilent
		return res, nil
	case schemaID == "":
		res.Skip = SkipNoSchema
		return res, nil
	}
	sch := c.lookup(schemaID)
	if sch == nil {
		res.Skip = SkipUnknownSchema
		logged := schemaID
		if len(logged) > maxIDLogged {
			logged = strings.ToValidUTF8(logged[:maxIDLogged], "") + "..."
		}
		c.log.Warn("unknown schema; payload not validated", "schema", logged)
	}
	return res, sch
}

func (c *Catalogue) validate(res Result, sch *jsonschema.Schema, v any) (Result, error) {
	err := sch.Validate(v)
	if err == nil {
		res.Valid = true
		return res, nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return res, fmt.Errorf("schema: validating against %s: %w", res.Schema, err)
	}
	errs, err := fieldErrors(verr)
	if err != nil {
		return res, err
	}
	res.Errors = errs
	if c.mode == ModeStrict {
		c.log.Info("payload rejected: it does not match its schema", "schema", res.Schema, "count", len(errs), "errors", summary(errs))
		return res, &ValidationError{Schema: res.Schema, Errors: errs}
	}
	c.log.Warn("payload does not match its schema; processing it anyway", "schema", res.Schema, "count", len(errs), "errors", summary(errs))
	return res, nil
}

// summary joins the first maxErrorsLogged errors for a log line.
func summary(errs []FieldError) string {
	var b strings.Builder
	for i, fe := range errs {
		if i == maxErrorsLogged {
			fmt.Fprintf(&b, "; and %d more", len(errs)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.String())
		b.WriteString(" [")
		b.WriteString(fe.Schema)
		b.WriteString("#")
		b.WriteString(fe.KeywordLocation)
		b.WriteString("]")
	}
	return b.String()
}

// lookup returns the compiled schema id, or nil if there is none. A custom
// schema's file is checked on every lookup and read again if it changed.
func (c *Catalogue) lookup(id string) *jsonschema.Schema {
	if sch := c.standard[id]; sch != nil {
		return sch
	}
	if c.dir == "" {
		return nil
	}
	c.mu.RLock()
	e := c.custom[id]
	c.mu.RUnlock()
	var path string
	if e != nil {
		path = e.path
	} else {
		if standardIDs[id] || checkCustomID(id) != nil {
			return nil
		}
		var err error
		if path, err = customPath(c.dir, id); err != nil {
			return nil
		}
	}
	fi, err := os.Lstat(path)
	switch {
	case e == nil && errors.Is(err, fs.ErrNotExist):
		return nil
	case e != nil && err == nil && sameFile(e.file, fi):
		return e.schema
	}
	return c.refresh(id)
}

// refresh reads and compiles the custom schema file of id if it changed
// since it was last read, and returns the schema in force.
func (c *Catalogue) refresh(id string) *jsonschema.Schema {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	c.mu.RLock()
	old := c.custom[id]
	c.mu.RUnlock()
	path, err := customPath(c.dir, id)
	if err != nil {
		return nil
	}
	var prev *customSchema
	if old != nil {
		prev = old
	} else {
		prev = &customSchema{path: path}
	}

	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if old != nil {
			c.store(id, nil)
			c.log.Warn("custom schema file removed; the schema is no longer known", "schema", id, "path", path)
		}
		return nil
	case err != nil:
		c.log.Warn("cannot read custom schema file; keeping the version loaded before", "schema", id, "error", err)
		return prev.schema
	case old != nil && sameFile(old.file, fi):
		return old.schema // another caller got here first
	}

	// From here on the file is examined: record fi, whatever the outcome,
	// so that a bad file is reported once and not on every lookup.
	data, err := safefile.ReadFile(path, MaxSchemaSize)
	if err != nil {
		c.store(id, &customSchema{path: path, schema: prev.schema, file: fi, sum: prev.sum})
		c.log.Warn("cannot read custom schema file; keeping the version loaded before", "schema", id, "error", err)
		return prev.schema
	}
	sum := sha256.Sum256(data)
	if prev.schema != nil && sum == prev.sum {
		c.store(id, &customSchema{path: path, schema: prev.schema, file: fi, sum: sum})
		return prev.schema
	}
	sch, err := compileCustom(id, data)
	if err != nil {
		c.store(id, &customSchema{path: path, schema: prev.schema, file: fi, sum: prev.sum})
		if prev.schema != nil {
			c.log.Warn("custom schema file does not compile; keeping the version loaded before", "schema", id, "path", path, "error", err)
		} else {
			c.log.Warn("custom schema file does not compile; the schema is not known", "schema", id, "path", path, "error", err)
		}
		return prev.schema
	}
	c.store(id, &customSchema{path: path, schema: sch, file: fi, sum: sum})
	if prev.schema != nil {
		c.log.Info("custom schema changed on disk; compiled again", "schema", id)
	} else {
		c.log.Debug("custom schema loaded", "schema", id, "path", path)
	}
	return sch
}

// store sets or, for a nil e, removes the entry of id.
func (c *Catalogue) store(id string, e *customSchema) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e == nil {
		delete(c.custom, id)
		return
	}
	c.custom[id] = e
}

// sameFile reports whether a and b describe the same version of a file.
func sameFile(a, b fs.FileInfo) bool {
	return a != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

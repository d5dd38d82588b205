package schema

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/agentmesh/agentmesh-go/schemas"
)

// BaseURL is the absolute URL under which every schema is compiled: the
// schema id "agentmesh/travel/flight-search/v1" becomes
// "https://schemas.agentmesh.invalid/agentmesh/travel/flight-search/v1".
// The ".invalid" top-level domain (RFC 2606) never resolves, and the
// catalogue never fetches anything: a "$ref" may name this URL of a
// standard schema, and nothing else outside its own document.
const BaseURL = "https://schemas.agentmesh.invalid/"

// Limits on what a custom schema may be.
const (
	// MaxSchemaSize is the largest schema document, in bytes, that
	// [Catalogue.Register] accepts and that is read from disk.
	MaxSchemaSize = 1 << 20
	// maxIDLen bounds a schema id.
	maxIDLen = 200
)

// Errors wrapped by [Catalogue.Register]; test for them with errors.Is.
var (
	// ErrInvalidID reports a schema id that is not "agentmesh/..." or
	// "x-<namespace>/<name>/v<n>".
	ErrInvalidID = errors.New("invalid schema id")
	// ErrReserved reports an attempt to replace a standard schema.
	ErrReserved = errors.New("schema id is reserved for a standard schema")
	// ErrNoDir reports a catalogue created without a schema directory.
	ErrNoDir = errors.New("no schema directory configured")
	// ErrTooLarge reports a schema document over [MaxSchemaSize].
	ErrTooLarge = errors.New("schema document too large")
)

// standardIDs holds every id of [schemas.FS]; these are reserved.
var standardIDs = func() map[string]bool {
	m := make(map[string]bool)
	for _, id := range schemas.IDs() {
		m[id] = true
	}
	return m
}()

// checkCustomID reports whether id may name a custom schema: two or more
// slash-separated elements of lower-case letters, digits, '_' and '-',
// each starting with a letter or digit (the schemaId rule of the skill
// manifest), where either the first element is "agentmesh", or there are
// exactly three elements "x-<namespace>/<name>/v<n>". It does not refuse
// the standard ids; see [standardIDs].
func checkCustomID(id string) error {
	if len(id) > maxIDLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidID, maxIDLen)
	}
	elems := strings.Split(id, "/")
	if len(elems) < 2 {
		return fmt.Errorf("%w %q: want agentmesh/... or x-<namespace>/<name>/v<n>", ErrInvalidID, id)
	}
	for i, e := range elems {
		if !validElem(e) {
			return fmt.Errorf("%w %q: element %d must be lower-case letters, digits, '_' and '-', starting with a letter or digit", ErrInvalidID, id, i+1)
		}
	}
	switch {
	case elems[0] == "agentmesh":
		return nil
	case strings.HasPrefix(elems[0], "x-"):
		if len(elems) != 3 || len(elems[0]) == len("x-") || !validVersion(elems[2]) {
			return fmt.Errorf("%w %q: want x-<namespace>/<name>/v<n>", ErrInvalidID, id)
		}
		return nil
	default:
		return fmt.Errorf("%w %q: custom ids start with x-<namespace>/", ErrInvalidID, id)
	}
}

// validElem reports whether e matches [a-z0-9][a-z0-9_-]*.
func validElem(e string) bool {
	if e == "" {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// validVersion reports whether e is "v" followed by a decimal number
// without leading zeros.
func validVersion(e string) bool {
	n, ok := strings.CutPrefix(e, "v")
	if !ok || n == "" || len(n) > 9 || (n[0] == '0' && len(n) > 1) {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// customPath returns the file of the custom schema id under dir:
// <dir>/<id>.json. id must have passed [checkCustomID], whose grammar
// leaves no "." or ".." element and no separator but "/".
func customPath(dir, id string) (string, error) {
	rel := filepath.FromSlash(id) + ".json"
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w %q: not a local path", ErrInvalidID, id)
	}
	return filepath.Join(dir, rel), nil
}

// idFromURL maps a schema location of the validator back to a schema id:
// the part of u before any fragment, less [BaseURL]. A location outside
// BaseURL (a nested "$id") is returned whole.
func idFromURL(u string) string {
	u, _, _ = strings.Cut(u, "#")
	if id, ok := strings.CutPrefix(u, BaseURL); ok {
		return id
	}
	return u
}

// Package deptest keeps the import arrows of the module true. Its test
// lists every package with `go list` and checks each one's imports against
// the table of DESIGN.md §2: which packages of this module it may import,
// and which outside packages it must never link.
//
// A package that is not in the table fails the test: adding a package means
// deciding where it sits.
package deptest

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Module is this module's path.
const Module = "github.com/agentmesh/agentmesh-go"

// Package is what `go list -json` says of one package.
type Package struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
}

// Rel returns the import path relative to the module root ("" for the root).
func (p *Package) Rel() string { return Rel(p.ImportPath) }

// Rel strips the module prefix from an import path.
func Rel(path string) string {
	if path == Module {
		return ""
	}
	return strings.TrimPrefix(path, Module+"/")
}

// IsLocal reports whether path is inside this module.
func IsLocal(path string) bool {
	return path == Module || strings.HasPrefix(path, Module+"/")
}

// List runs `go list -json` on the patterns in dir and decodes its stream of
// package objects.
func List(dir string, patterns ...string) ([]Package, error) {
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Imports,Deps,Standard"}, patterns...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("go list: %w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []Package
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p Package
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

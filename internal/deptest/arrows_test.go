package deptest

import (
	"slices"
	"strings"
	"testing"
)

func TestImportArrows(t *testing.T) {
	pkgs, err := List("../..", "./...")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 3 {
		t.Fatalf("go list found %d packages, want the whole module", len(pkgs))
	}
	for _, p := range pkgs {
		rel := p.Rel()
		key, allowed, ok := RuleFor(rel)
		if !ok {
			t.Errorf("%s: not in the import table of internal/deptest (DESIGN.md §2); add it there", rel)
			continue
		}
		closure := Closure(allowed)
		for _, imp := range p.Imports {
			if !IsLocal(imp) {
				continue
			}
			irel := Rel(imp)
			if !slices.ContainsFunc(closure, func(pat string) bool { return Matches(pat, irel) }) {
				t.Errorf("%s imports %s, but %q may only import %v", rel, irel, key, allowed)
			}
		}
		for _, imp := range p.Imports {
			if imp == "testing" && !MayImportTesting(rel) {
				t.Errorf("%s imports testing; only test kits (…test packages) may", rel)
			}
		}
		for root, banned := range NeverLinked {
			if !Matches(root+"/...", rel) {
				continue
			}
			for _, dep := range p.Deps {
				d := dep
				if IsLocal(dep) {
					d = Rel(dep)
				}
				for b, why := range banned {
					if d == b || (strings.HasSuffix(b, "/") && strings.HasPrefix(d, b)) {
						t.Errorf("%s links %s: %s", rel, dep, why)
					}
				}
			}
		}
		for _, std := range NoIO[rel] {
			for _, imp := range p.Imports {
				if imp == std || strings.HasPrefix(imp, std+"/") {
					t.Errorf("%s imports %s; it must do no I/O", rel, imp)
				}
			}
		}
	}
}

// TestRulesBite proves the checks above are not vacuous: each rule rejects
// an import that breaks it.
func TestRulesBite(t *testing.T) {
	tests := []struct {
		name, pkg, imp string
		want           bool
	}{
		{"protocol may not import host", "mesh/protocol", "host/identity", false},
		{"plugins may not import host", "plugins/flight-search", "host/skills", false},
		{"plugins may import sdk", "plugins/flight-search", "sdk", true},
		{"plugins may use protocol through sdk", "plugins/flight-search", "mesh/protocol", true},
		{"sdk may not import host", "sdk", "host/skills", false},
		{"host may import its parts", "host", "host/session", true},
		{"cmd may import servers", "cmd/agentmesh", "mesh/relay/relayserver", true},
		{"ratchet may not import transport", "host/ratchet", "host/transport", false},
		{"e2e may import anything", "e2e", "host/session", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, allowed, ok := RuleFor(tt.pkg)
			if !ok {
				t.Fatalf("no rule for %s", tt.pkg)
			}
			got := slices.ContainsFunc(Closure(allowed), func(p string) bool { return Matches(p, tt.imp) })
			if got != tt.want {
				t.Errorf("%s importing %s allowed = %v, want %v", tt.pkg, tt.imp, got, tt.want)
			}
		})
	}
	if MayImportTesting("host/session") {
		t.Error("host/session may import testing, want not")
	}
	if !MayImportTesting("sdk/skilltest") {
		t.Error("sdk/skilltest may not import testing, want may")
	}
}

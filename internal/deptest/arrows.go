package deptest

import "strings"

// Allowed maps a package of the module (or a prefix ending in "/...") to the
// module packages it may import directly. A package may also import
// whatever its allowed packages may import (the closure), which is how
// DESIGN.md §2 reads: "sdk → mesh/protocol" lets sdk use protocol's own
// dependencies' types too. "..." alone allows everything in the module.
var Allowed = map[string][]string{
	"mesh/protocol":                    {},
	"mesh/certs":                       {"mesh/protocol"},
	"mesh/registry":                    {"mesh/protocol", "mesh/certs"},
	"mesh/registry/registryserver":     {"mesh/registry", "internal/safefile"},
	"mesh/relay":                       {"mesh/protocol"},
	"mesh/relay/relayserver":           {"mesh/relay"},
	"internal/safefile":                {},
	"internal/deptest":                 {},
	"internal/dnstest":                 {},
	"internal/logtest":                 {},
	"internal/meshtest":                {"mesh/registry", "mesh/registry/registryserver", "mesh/relay/relayserver", "internal/dnstest"},
	"internal/servercmd":               {"internal/safefile"},
	"internal/servercmd/servercmdtest": {},
	"host/identity":                    {"mesh/protocol", "internal/safefile"},
	"host/ratchet":                     {"mesh/protocol"},
	"host/prekeys":                     {"host/identity", "host/ratchet", "mesh/registry", "internal/safefile"},
	"host/transport":                   {"mesh/protocol", "mesh/relay"},
	"host/session":                     {"host/ratchet", "host/transport", "mesh/certs", "mesh/registry", "host/identity", "internal/safefile"},
	"host/schema":                      {"schemas", "internal/safefile", "mesh/protocol"},
	"host/skills":                      {"sdk/skillrpc", "host/schema", "mesh/protocol", "internal/safefile"},
	"host/transcript":                  {"host/identity", "internal/safefile"},
	"host":                             {"host/..."},
	"sdk":                              {"sdk/skillrpc", "mesh/protocol"},
	"sdk/skillrpc":                     {"sdk/skillrpc/skillpb"},
	"sdk/skillrpc/skillpb":             {},
	"sdk/skilltest":                    {"sdk"},
	"plugins/...":                      {"sdk"},
	"schemas":                          {},
	"cmd/agentmesh":                    {"host", "mesh/...", "internal/..."},
	"cmd/agentmesh-registry":           {"mesh/registry/registryserver", "internal/..."},
	"cmd/agentmesh-relay":              {"mesh/relay/relayserver", "internal/..."},
	"e2e":                              {"..."},
}

// NeverLinked lists, per prefix of the module, outside or module packages
// that must not appear anywhere in its dependency graph, with the reason.
var NeverLinked = map[string]map[string]string{
	"host": {
		"mesh/registry/registryserver": "hosts talk to the registry as clients; only cmd/agentmesh embeds the server",
		"mesh/relay/relayserver":       "hosts talk to the relay as clients; only cmd/agentmesh embeds the server",
		"github.com/nats-io/":          "NATS is the relay cluster's business, not the host's",
	},
	"mesh": {
		"host/":    "mesh is below host",
		"sdk":      "mesh is below sdk",
		"plugins/": "mesh is below plugins",
	},
	"plugins": {
		"host/":         "skills reach the host only through the plugin broker",
		"host":          "skills reach the host only through the plugin broker",
		"mesh/relay":    "skills do not talk to the relay",
		"mesh/registry": "skills do not talk to the registry",
	},
	"sdk": {
		"host/": "the SDK must not drag the host into every skill binary",
	},
}

// NoIO lists packages that must do no I/O: they may not import these
// standard packages directly (the caller does all I/O).
var NoIO = map[string][]string{
	"mesh/protocol": {"net", "os", "database/sql", "syscall", "io/fs"},
	"host/ratchet":  {"net", "os", "database/sql", "syscall", "io/fs", "time"},
}

// MayImportTesting reports whether a production package may import
// "testing": only the test kits, whose names end in "test".
func MayImportTesting(rel string) bool {
	last := rel[strings.LastIndex(rel, "/")+1:]
	return strings.HasSuffix(last, "test")
}

// RuleFor returns the allowed-imports entry that governs rel: an exact
// entry, or the longest "prefix/..." entry that contains it.
func RuleFor(rel string) (key string, allowed []string, ok bool) {
	if a, ok := Allowed[rel]; ok {
		return rel, a, true
	}
	best := ""
	for k := range Allowed {
		p, isPrefix := strings.CutSuffix(k, "/...")
		if isPrefix && strings.HasPrefix(rel, p+"/") && len(p) > len(best) {
			best = k
		}
	}
	if best == "" {
		return "", nil, false
	}
	return best, Allowed[best], true
}

// Matches reports whether rel is covered by pattern (exact, "x/..." or "...").
func Matches(pattern, rel string) bool {
	if pattern == "..." {
		return true
	}
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == p || strings.HasPrefix(rel, p+"/")
	}
	return rel == pattern
}

// Closure expands allowed into every pattern reachable through the table.
func Closure(allowed []string) []string {
	seen := map[string]bool{}
	var out []string
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		out = append(out, p)
		for k, next := range Allowed {
			if Matches(p, k) || k == p {
				for _, n := range next {
					visit(n)
				}
			}
		}
	}
	for _, p := range allowed {
		visit(p)
	}
	return out
}

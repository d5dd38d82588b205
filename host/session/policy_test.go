package session

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// testAMID returns a well-formed AMID distinct for each i.
func testAMID(i byte) protocol.AMID {
	seed := bytes.Repeat([]byte{i}, ed25519.SeedSize)
	return protocol.DeriveAMID(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
}

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultPolicy().Validate() = %v", err)
	}
	want := &Policy{
		AcceptTiers:     []registry.Tier{registry.TierAnonymous, registry.TierVerified, registry.TierOrganization},
		MinReputation:   0.3,
		AcceptedIntents: []string{"travel", "commerce", "productivity", "research", "development", "communication", "creative", "marketplace"},
		MaxSessionTTL:   300, MaxConcurrentSessions: 10, KnocksPerMinute: 30,
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("DefaultPolicy() = %+v, want %+v", p, want)
	}
	// Each call returns its own lists.
	p.AcceptedIntents[0] = "changed"
	if DefaultPolicy().AcceptedIntents[0] != "travel" {
		t.Error("DefaultPolicy shares its lists between calls")
	}
}

func TestPresets(t *testing.T) {
	tests := []struct {
		name    string
		p       *Policy
		tiers   []registry.Tier
		minRep  float64
		intents bool // whether intents are restricted
	}{
		{"Permissive", Permissive(), []registry.Tier{registry.TierAnonymous, registry.TierVerified, registry.TierOrganization}, 0, false},
		{"VerifiedOnly", VerifiedOnly(), []registry.Tier{registry.TierVerified, registry.TierOrganization}, 0.5, true},
		{"OrganizationOnly", OrganizationOnly(), []registry.Tier{registry.TierOrganization}, 0.7, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if !reflect.DeepEqual(tt.p.AcceptTiers, tt.tiers) {
				t.Errorf("AcceptTiers = %v, want %v", tt.p.AcceptTiers, tt.tiers)
			}
			if tt.p.MinReputation != tt.minRep {
				t.Errorf("MinReputation = %v, want %v", tt.p.MinReputation, tt.minRep)
			}
			if got := len(tt.p.AcceptedIntents) > 0; got != tt.intents {
				t.Errorf("intents restricted = %v, want %v", got, tt.intents)
			}
		})
	}
}

// TestPresetsDecide checks the presets through an Evaluator: who they let
// in, by registry tier and reputation.
func TestPresetsDecide(t *testing.T) {
	tests := []struct {
		name   string
		p      *Policy
		tier   registry.Tier
		rep    float64
		intent string
		want   protocol.RejectReason // "" for accept
	}{
		{"permissive anonymous low reputation any intent", Permissive(), registry.TierAnonymous, 0, "weird/x", ""},
		{"permissive ttl hour", Permissive(), registry.TierAnonymous, 0, "*", ""},
		{"verified refuses anonymous", VerifiedOnly(), registry.TierAnonymous, 0.9, "travel", protocol.RejectInsufficientTrust},
		{"verified accepts verified 0.5", VerifiedOnly(), registry.TierVerified, 0.5, "travel", ""},
		{"verified refuses 0.49", VerifiedOnly(), registry.TierVerified, 0.49, "travel", protocol.RejectLowReputation},
		{"organization refuses verified", OrganizationOnly(), registry.TierVerified, 1, "travel", protocol.RejectInsufficientTrust},
		{"organization refuses 0.69", OrganizationOnly(), registry.TierOrganization, 0.69, "travel", protocol.RejectLowReputation},
		{"organization accepts 0.7", OrganizationOnly(), registry.TierOrganization, 0.7, "travel", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEvaluator(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			d := e.Evaluate(KnockFacts{From: testAMID(1), Intent: tt.intent, TTL: 300,
				Sender: RegistryFacts{Tier: tt.tier, Reputation: tt.rep}}, testNow)
			if d.Reason != tt.want || d.Accept != (tt.want == "") {
				t.Errorf("Evaluate = %+v, want reason %q", d, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Policy)
		member string // "" for valid
	}{
		{"default", func(*Policy) {}, ""},
		{"bad blocklist AMID", func(p *Policy) { p.Blocklist = []protocol.AMID{testAMID(1), "nope"} }, "blocklist[1]"},
		{"bad allowlist AMID", func(p *Policy) { p.Allowlist = []protocol.AMID{"0OIl"} }, "allowlist[0]"},
		{"strict without allowlist", func(p *Policy) { p.StrictMode = true }, "strict_mode"},
		{"strict with allowlist", func(p *Policy) { p.StrictMode = true; p.Allowlist = []protocol.AMID{testAMID(2)} }, ""},
		{"no tiers", func(p *Policy) { p.AcceptTiers = nil }, "accept_tiers"},
		{"unknown tier", func(p *Policy) { p.AcceptTiers = []registry.Tier{"verified", "gold"} }, "accept_tiers[1]"},
		{"numeric tier", func(p *Policy) { p.AcceptTiers = []registry.Tier{"1"} }, "accept_tiers[0]"},
		{"reputation negative", func(p *Policy) { p.MinReputation = -0.1 }, "min_reputation"},
		{"reputation above one", func(p *Policy) { p.MinReputation = 1.01 }, "min_reputation"},
		{"reputation one", func(p *Policy) { p.MinReputation = 1 }, ""},
		{"intent with slash", func(p *Policy) { p.AcceptedIntents = []string{"travel/flights"} }, "accepted_intents[0]"},
		{"intent with dot", func(p *Policy) { p.RejectedIntents = []string{"a.b"} }, "rejected_intents[0]"},
		{"empty intent", func(p *Policy) { p.RejectedIntents = []string{""} }, "rejected_intents[0]"},
		{"intent in both", func(p *Policy) { p.RejectedIntents = []string{"Travel"} }, "rejected_intents[0]"},
		{"ttl zero", func(p *Policy) { p.MaxSessionTTL = 0 }, "max_session_ttl"},
		{"capacity zero", func(p *Policy) { p.MaxConcurrentSessions = 0 }, "max_concurrent_sessions"},
		{"knocks zero", func(p *Policy) { p.KnocksPerMinute = 0 }, "knocks_per_minute"},
		{"knocks huge", func(p *Policy) { p.KnocksPerMinute = MaxKnocksPerMinute + 1 }, "knocks_per_minute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			tt.edit(p)
			err := p.Validate()
			if tt.member == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.member+":") {
				t.Fatalf("Validate() = %v, want an error starting with %q", err, tt.member+":")
			}
		})
	}
}

func TestIntentCategory(t *testing.T) {
	tests := map[string]string{
		"travel/flights/search": "travel",
		"travel.flights":        "travel",
		"Travel":                "travel",
		"*":                     "*",
		"":                      "",
		"/x":                    "",
		"a.b/c":                 "a",
	}
	for in, want := range tests {
		if got := IntentCategory(in); got != want {
			t.Errorf("IntentCategory(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadPolicyMissingFileGivesDefaults(t *testing.T) {
	p, err := LoadPolicy(filepath.Join(t.TempDir(), "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, DefaultPolicy()) {
		t.Errorf("LoadPolicy(missing) = %+v, want the defaults", p)
	}
}

func TestLoadPolicyPartialKeepsDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	blocked := testAMID(7)
	writeFile(t, path, `{"min_reputation": 0.6, "blocklist": ["`+string(blocked)+`"], "accepted_intents": []}`)
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultPolicy()
	want.MinReputation = 0.6
	want.Blocklist = []protocol.AMID{blocked}
	want.AcceptedIntents = nil
	if !reflect.DeepEqual(p, want) {
		t.Errorf("LoadPolicy = %+v, want %+v", p, want)
	}
}

func TestLoadPolicyErrorsNameTheMember(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"unknown member", `{"min_reputaton": 0.5}`, "min_reputaton: unknown member"},
		{"wrong type", `{"max_session_ttl": "300"}`, "max_session_ttl: got JSON string, want an integer"},
		{"fraction for integer", `{"knocks_per_minute": 1.5}`, "knocks_per_minute:"},
		{"wrong list type", `{"accept_tiers": "verified"}`, "accept_tiers: got JSON string, want an array"},
		{"invalid value", `{"min_reputation": 2}`, "min_reputation: 2 is outside 0 to 1"},
		{"invalid tier", `{"accept_tiers": ["verified", "platinum"]}`, "accept_tiers[1]:"},
		{"bad AMID", `{"allowlist": ["x"], "strict_mode": true}`, "allowlist[0]:"},
		{"null tiers", `{"accept_tiers": null}`, "accept_tiers: must name"},
		{"syntax", `{"min_reputation": }`, "invalid JSON at byte"},
		{"truncated", `{"min_reputation": 0.5`, "unexpected end"},
		{"empty", ``, "empty file"},
		{"not object", `[1]`, "policy: got JSON array, want an object"},
		{"trailing", `{} {}`, "data after the top-level object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.json")
			writeFile(t, path, tt.json)
			p, err := LoadPolicy(path)
			if err == nil {
				t.Fatalf("LoadPolicy(%s) = %+v, nil; want an error", tt.json, p)
			}
			if p != nil {
				t.Errorf("LoadPolicy returned a policy with its error: %+v", p)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadPolicy(%s) error = %q, want it to contain %q", tt.json, err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestSavePolicyRoundTripAndMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home", "agentmesh")
	path := filepath.Join(dir, "policy.json")
	p := VerifiedOnly()
	p.Blocklist = []protocol.AMID{testAMID(3)}
	p.RejectedIntents = []string{"gambling"}
	if err := SavePolicy(path, p); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("round trip = %+v, want %+v", got, p)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"allowlist": []`)) || !bytes.Contains(data, []byte(`"max_session_ttl": 300`)) {
		t.Errorf("saved policy lacks snake_case members or writes null lists:\n%s", data)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for path, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
}

func TestSavePolicyRefusesInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	p := DefaultPolicy()
	p.KnocksPerMinute = -1
	if err := SavePolicy(path, p); err == nil || !strings.Contains(err.Error(), "knocks_per_minute") {
		t.Fatalf("SavePolicy(invalid) = %v, want an error naming knocks_per_minute", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("SavePolicy(invalid) wrote the file (stat: %v)", err)
	}
}

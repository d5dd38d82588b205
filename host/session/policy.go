// Package session is the host's session layer (PROTOCOL.md §6–§7,
// DESIGN.md §4): the KNOCK handshake, the receiver's policy and certificate
// checks, capability negotiation, and the encrypted sessions that follow.
//
// A [Manager] opens sessions ([Manager.Open]) and answers KNOCKs, moving
// every session's messages between a transport and a [Handler] (the skill
// runtime). Every peer's keys, tier and reputation come from the registry
// ([Directory]), never from the peer: a KNOCK whose signatures do not
// verify against the sender's registered keys, or whose nonce was seen
// before ([NonceStore], on disk), is dropped without an answer.
//
// The policy is a JSON file the owner edits ([LoadPolicy], [SavePolicy]); an
// [Evaluator] applies it to each verified KNOCK in the [PROPOSED] Go order of
// PROTOCOL.md §6.4 and answers with a REJECT reason. Certificate chains of
// verified and organization agents are checked by a [CertChecker].
package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/agentmesh/agentmesh-go/internal/safefile"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Policy decides which KNOCKs the host accepts. It is stored as JSON with
// the snake_case member names below; a member the file omits keeps its value
// from [DefaultPolicy].
type Policy struct {
	// Blocklist lists senders whose KNOCKs are always refused
	// (RejectBlocked).
	Blocklist []protocol.AMID `json:"blocklist"`
	// Allowlist lists the senders accepted in strict mode. It has no
	// effect unless StrictMode is set.
	Allowlist []protocol.AMID `json:"allowlist"`
	// StrictMode refuses every sender not on Allowlist
	// (RejectNotInAllowlist). It requires a non-empty Allowlist: use
	// Evaluator.Pause to refuse everyone.
	StrictMode bool `json:"strict_mode"`
	// AcceptTiers lists the registry tiers accepted (RejectInsufficientTrust
	// otherwise). It must name at least one tier.
	AcceptTiers []registry.Tier `json:"accept_tiers"`
	// MinReputation is the lowest registry reputation accepted, from 0 to 1
	// (RejectLowReputation below it).
	MinReputation float64 `json:"min_reputation"`
	// AcceptedIntents lists the intent categories accepted; empty accepts
	// every category not in RejectedIntents. A category is the part of an
	// intent before its first "/" or "." (see IntentCategory), compared
	// without regard to case.
	AcceptedIntents []string `json:"accepted_intents"`
	// RejectedIntents lists intent categories always refused
	// (RejectIntentNotAccepted, as is a category missing from a non-empty
	// AcceptedIntents).
	RejectedIntents []string `json:"rejected_intents"`
	// MaxSessionTTL is the longest session lifetime a KNOCK may request, in
	// seconds (RejectTTLExceeded above it).
	MaxSessionTTL int64 `json:"max_session_ttl"`
	// MaxConcurrentSessions is the number of active sessions at which new
	// KNOCKs are refused (RejectAtCapacity).
	MaxConcurrentSessions int `json:"max_concurrent_sessions"`
	// KnocksPerMinute is how many KNOCKs one sender may send in any 60
	// seconds (RejectRateLimited beyond it).
	KnocksPerMinute int `json:"knocks_per_minute"`
}

// Limits of the policy's numeric members and lists.
const (
	// MaxKnocksPerMinute bounds KnocksPerMinute, and so the memory the rate
	// limiter keeps per sender.
	MaxKnocksPerMinute = 10000
	// maxListLen bounds each list of the policy file.
	maxListLen = 100000
	// maxPolicyFileSize bounds the policy file LoadPolicy reads.
	maxPolicyFileSize = 4 << 20
)

// defaultIntents are the accepted intent categories of the Python client's
// DEFAULT_POLICY (PROTOCOL.md §6.4).
var defaultIntents = []string{
	"travel", "commerce", "productivity", "research",
	"development", "communication", "creative", "marketplace",
}

// DefaultPolicy returns the policy of PROTOCOL.md §6.4 [PY] DEFAULT_POLICY:
// all three tiers, reputation at least 0.3, the eight default intent
// categories, 10 concurrent sessions, 30 KNOCKs per minute per sender, and
// sessions of at most 300 seconds.
func DefaultPolicy() *Policy {
	return &Policy{
		AcceptTiers:           []registry.Tier{registry.TierAnonymous, registry.TierVerified, registry.TierOrganization},
		MinReputation:         0.3,
		AcceptedIntents:       slices.Clone(defaultIntents),
		MaxSessionTTL:         300,
		MaxConcurrentSessions: 10,
		KnocksPerMinute:       30,
	}
}

// Permissive returns a policy that accepts any sender the registry knows,
// with any reputation and intent, and sessions of up to an hour (the TS
// client's default TTL). Capacity and rate limits stay at their defaults.
func Permissive() *Policy {
	p := DefaultPolicy()
	p.MinReputation = 0
	p.AcceptedIntents = nil
	p.MaxSessionTTL = 3600
	return p
}

// VerifiedOnly returns the default policy restricted to verified and
// organization agents with a reputation of at least 0.5.
func VerifiedOnly() *Policy {
	p := DefaultPolicy()
	p.AcceptTiers = []registry.Tier{registry.TierVerified, registry.TierOrganization}
	p.MinReputation = 0.5
	return p
}

// OrganizationOnly returns the default policy restricted to organization
// agents with a reputation of at least 0.7.
func OrganizationOnly() *Policy {
	p := DefaultPolicy()
	p.AcceptTiers = []registry.Tier{registry.TierOrganization}
	p.MinReputation = 0.7
	return p
}

// Clone returns a deep copy of p.
func (p *Policy) Clone() *Policy {
	c := *p
	c.Blocklist = slices.Clone(p.Blocklist)
	c.Allowlist = slices.Clone(p.Allowlist)
	c.AcceptTiers = slices.Clone(p.AcceptTiers)
	c.AcceptedIntents = slices.Clone(p.AcceptedIntents)
	c.RejectedIntents = slices.Clone(p.RejectedIntents)
	return &c
}

// categoryRE is what an intent category in the policy must look like.
var categoryRE = regexp.MustCompile(`^[A-Za-z0-9_*-][A-Za-z0-9_*-]{0,63}$`)

// Validate reports the first invalid member of p, as an error whose text
// starts with the member's JSON name.
func (p *Policy) Validate() error {
	if err := checkAMIDs("blocklist", p.Blocklist); err != nil {
		return err
	}
	if err := checkAMIDs("allowlist", p.Allowlist); err != nil {
		return err
	}
	if p.StrictMode && len(p.Allowlist) == 0 {
		return errors.New("strict_mode: set with an empty allowlist, which would refuse every sender")
	}
	if len(p.AcceptTiers) == 0 {
		return errors.New("accept_tiers: must name at least one tier")
	}
	for i, t := range p.AcceptTiers {
		if !t.Valid() {
			return fmt.Errorf("accept_tiers[%d]: %q is not a tier (want anonymous, verified or organization)", i, truncate(string(t)))
		}
	}
	// The negated form also refuses NaN.
	if !(p.MinReputation >= 0 && p.MinReputation <= 1) {
		return fmt.Errorf("min_reputation: %v is outside 0 to 1", p.MinReputation)
	}
	accepted, err := checkCategories("accepted_intents", p.AcceptedIntents)
	if err != nil {
		return err
	}
	if _, err := checkCategories("rejected_intents", p.RejectedIntents); err != nil {
		return err
	}
	for i, c := range p.RejectedIntents {
		if accepted[strings.ToLower(c)] {
			return fmt.Errorf("rejected_intents[%d]: %q is also in accepted_intents", i, c)
		}
	}
	if p.MaxSessionTTL < 1 {
		return fmt.Errorf("max_session_ttl: %d, want at least 1 second", p.MaxSessionTTL)
	}
	if p.MaxConcurrentSessions < 1 {
		return fmt.Errorf("max_concurrent_sessions: %d, want at least 1", p.MaxConcurrentSessions)
	}
	if p.KnocksPerMinute < 1 || p.KnocksPerMinute > MaxKnocksPerMinute {
		return fmt.Errorf("knocks_per_minute: %d, want 1 to %d", p.KnocksPerMinute, MaxKnocksPerMinute)
	}
	return nil
}

func checkAMIDs(member string, list []protocol.AMID) error {
	if len(list) > maxListLen {
		return fmt.Errorf("%s: %d entries, limit %d", member, len(list), maxListLen)
	}
	for i, a := range list {
		if _, err := protocol.ParseAMID(string(a)); err != nil {
			return fmt.Errorf("%s[%d]: %q is not an AMID: %w", member, i, truncate(string(a)), err)
		}
	}
	return nil
}

// checkCategories checks a list of intent categories and returns them as a
// lower-case set.
func checkCategories(member string, list []string) (map[string]bool, error) {
	if len(list) > maxListLen {
		return nil, fmt.Errorf("%s: %d entries, limit %d", member, len(list), maxListLen)
	}
	set := make(map[string]bool, len(list))
	for i, c := range list {
		if !categoryRE.MatchString(c) {
			return nil, fmt.Errorf("%s[%d]: %q is not an intent category (letters, digits, '_', '-' or '*', no '/' or '.', at most 64)", member, i, truncate(c))
		}
		set[strings.ToLower(c)] = true
	}
	return set, nil
}

// IntentCategory returns the category of an intent: the part before its
// first "/" or ".", in lower case. "travel/flights/search" and
// "travel.flights" both belong to "travel"; an intent with neither
// separator is its own category.
func IntentCategory(intent string) string {
	if i := strings.IndexAny(intent, "/."); i >= 0 {
		intent = intent[:i]
	}
	return strings.ToLower(intent)
}

// LoadPolicy reads the policy file at path. A missing file yields
// DefaultPolicy. Members the file omits keep their default values; unknown
// members, trailing data, wrong types and invalid values are errors that
// name the member, and then no policy is returned.
func LoadPolicy(path string) (*Policy, error) {
	data, err := safefile.ReadFile(path, maxPolicyFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultPolicy(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the policy: %w", err)
	}
	p, err := decodePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// decodePolicy strictly decodes a policy over the defaults and validates
// it.
func decodePolicy(data []byte) (*Policy, error) {
	p := DefaultPolicy()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the top-level object")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	// An empty list and a missing one mean the same; keep one form.
	for _, l := range []*[]string{&p.AcceptedIntents, &p.RejectedIntents} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	for _, l := range []*[]protocol.AMID{&p.Blocklist, &p.Allowlist} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	return p, nil
}

// jsonError rewrites an encoding/json error so that it starts with the
// member it concerns, where the decoder says which.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		member := typeErr.Field
		if member == "" {
			member = "policy"
		}
		return fmt.Errorf("%s: got JSON %s, want %s", member, typeErr.Value, jsonTypeName(typeErr.Type.String()))
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.EOF):
		return errors.New("empty file, want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: unexpected end of file")
	}
	// encoding/json reports an unknown member as `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%s: unknown member", strings.Trim(name, `"`))
	}
	return fmt.Errorf("invalid policy: %w", err)
}

// jsonTypeName names a Go type of the policy as the JSON a user writes.
func jsonTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string", goType == "protocol.AMID", goType == "registry.Tier":
		return "a string"
	case strings.HasPrefix(goType, "session.Policy"):
		return "an object"
	}
	return goType
}

// SavePolicy validates p and writes it to path atomically, with mode 0600
// in a directory made 0700.
func SavePolicy(path string, p *Policy) error {
	data, err := encodePolicy(p)
	if err != nil {
		return fmt.Errorf("saving the policy: %w", err)
	}
	if err := safefile.MkdirAll(filepath.Dir(path)); err != nil {
		return fmt.Errorf("saving the policy: %w", err)
	}
	if err := safefile.WriteFile(path, data); err != nil {
		return fmt.Errorf("saving the policy: %w", err)
	}
	return nil
}

// encodePolicy validates p and returns the policy file's content.
func encodePolicy(p *Policy) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	// Empty lists are written as [] rather than null, for the owner's eye.
	out := p.Clone()
	for _, l := range []*[]string{&out.AcceptedIntents, &out.RejectedIntents} {
		if *l == nil {
			*l = []string{}
		}
	}
	for _, l := range []*[]protocol.AMID{&out.Blocklist, &out.Allowlist} {
		if *l == nil {
			*l = []protocol.AMID{}
		}
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

package session

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// RateWindow is the sliding window of the per-sender KNOCK rate limit.
const RateWindow = 60 * time.Second

// RegistryFacts is what the registry says about a KNOCK's sender. Build it
// from a registry lookup ([FactsFromLookup]); never fill it from the KNOCK,
// whose tier and reputation (PY format) are self-asserted.
type RegistryFacts struct {
	// Tier is the sender's tier in the registry.
	Tier registry.Tier
	// Reputation is the sender's reputation score in the registry, 0 to 1.
	Reputation float64
}

// FactsFromLookup returns the registry facts of a lookup result.
func FactsFromLookup(l *registry.AgentLookup) RegistryFacts {
	return RegistryFacts{Tier: l.Tier, Reputation: l.ReputationScore}
}

// KnockFacts is what the policy looks at in a KNOCK whose signature,
// freshness, nonce and recipient were already checked.
type KnockFacts struct {
	// From is the sender.
	From protocol.AMID
	// Intent is the requested intent: the TS capability (such as
	// "travel/flights/search" or "*") or the PY category path.
	Intent string
	// TTL is the requested session lifetime in seconds; zero or less means
	// the KNOCK did not ask for one.
	TTL int64
	// Sender holds the sender's tier and reputation as the registry reports
	// them. The KNOCK's own claims have no place here.
	Sender RegistryFacts
	// ActiveSessions is the number of sessions active when the KNOCK
	// arrived.
	ActiveSessions int
}

// Decision is the outcome of evaluating a KNOCK. When Accept is false,
// Reason is the REJECT reason and Detail explains it to the owner (and may
// be sent as human-readable text).
type Decision struct {
	// Accept reports whether the KNOCK passed every check.
	Accept bool
	// Reason is the REJECT reason; empty when Accept is true.
	Reason protocol.RejectReason
	// Detail says what failed, naming values but no secret; empty when
	// Accept is true.
	Detail string
}

func reject(r protocol.RejectReason, format string, args ...any) Decision {
	return Decision{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// CircuitState is whether the host takes new sessions.
type CircuitState int32

// Circuit states. A paused host refuses KNOCKs until resumed; a stopped one
// refuses them for the rest of the Evaluator's life.
const (
	Running CircuitState = iota
	Paused
	Stopped
)

// String returns "running", "paused" or "stopped".
func (s CircuitState) String() string {
	switch s {
	case Running:
		return "running"
	case Paused:
		return "paused"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("CircuitState(%d)", int32(s))
}

// compiledPolicy is a validated policy with its lists as sets.
type compiledPolicy struct {
	p        *Policy
	blocked  map[protocol.AMID]bool
	allowed  map[protocol.AMID]bool
	tiers    map[registry.Tier]bool
	accepted map[string]bool
	rejected map[string]bool
}

func compile(p *Policy) (*compiledPolicy, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.Clone()
	c := &compiledPolicy{
		p:        p,
		blocked:  make(map[protocol.AMID]bool, len(p.Blocklist)),
		allowed:  make(map[protocol.AMID]bool, len(p.Allowlist)),
		tiers:    make(map[registry.Tier]bool, len(p.AcceptTiers)),
		accepted: make(map[string]bool, len(p.AcceptedIntents)),
		rejected: make(map[string]bool, len(p.RejectedIntents)),
	}
	for _, a := range p.Blocklist {
		c.blocked[a] = true
	}
	for _, a := range p.Allowlist {
		c.allowed[a] = true
	}
	for _, t := range p.AcceptTiers {
		c.tiers[t] = true
	}
	for _, s := range p.AcceptedIntents {
		c.accepted[strings.ToLower(s)] = true
	}
	for _, s := range p.RejectedIntents {
		c.rejected[strings.ToLower(s)] = true
	}
	return c, nil
}

// Evaluator applies a policy to KNOCKs. It keeps the circuit state and the
// per-sender rate windows. Its methods are safe for concurrent use.
type Evaluator struct {
	policy atomic.Pointer[compiledPolicy]
	state  atomic.Int32

	mu        sync.Mutex
	knocks    map[protocol.AMID][]time.Time // oldest first
	lastSweep time.Time
}

// NewEvaluator returns a running Evaluator with policy p, which must be
// valid. The Evaluator keeps its own copy of p.
func NewEvaluator(p *Policy) (*Evaluator, error) {
	e := &Evaluator{knocks: make(map[protocol.AMID][]time.Time)}
	if err := e.SetPolicy(p); err != nil {
		return nil, err
	}
	return e, nil
}

// SetPolicy validates p and replaces the policy with a copy of it in one
// step, as a reload on SIGHUP does: each KNOCK is evaluated entirely under
// the old policy or entirely under the new one. An invalid p changes
// nothing. Rate windows carry over.
func (e *Evaluator) SetPolicy(p *Policy) error {
	c, err := compile(p)
	if err != nil {
		return fmt.Errorf("setting the policy: %w", err)
	}
	e.policy.Store(c)
	return nil
}

// Policy returns a copy of the current policy.
func (e *Evaluator) Policy() *Policy { return e.policy.Load().p.Clone() }

// Pause makes the Evaluator refuse KNOCKs (RejectPaused) until Resume. It
// does nothing once stopped.
func (e *Evaluator) Pause() { e.state.CompareAndSwap(int32(Running), int32(Paused)) }

// Resume undoes Pause and reports whether the Evaluator now runs. It
// cannot undo Stop.
func (e *Evaluator) Resume() bool {
	e.state.CompareAndSwap(int32(Paused), int32(Running))
	return e.State() == Running
}

// Stop makes the Evaluator refuse every later KNOCK (RejectPaused with
// detail "stopped"), for good.
func (e *Evaluator) Stop() { e.state.Store(int32(Stopped)) }

// State returns the circuit state.
func (e *Evaluator) State() CircuitState { return CircuitState(e.state.Load()) }

// Evaluate decides on a KNOCK received at now. The checks run in the
// [PROPOSED] Go order of PROTOCOL.md §6.4, the first failing one giving
// the reason: circuit state (RejectPaused), blocklist (RejectBlocked),
// strict-mode allowlist (RejectNotInAllowlist), registry tier
// (RejectInsufficientTrust), registry reputation (RejectLowReputation),
// intent category (RejectIntentNotAccepted), requested TTL
// (RejectTTLExceeded), active sessions (RejectAtCapacity) and the sender's
// KNOCK rate (RejectRateLimited).
//
// Every KNOCK that reaches the rate check counts toward the sender's
// window, refused or not, so a sender must slow down below the limit
// before it is accepted again.
func (e *Evaluator) Evaluate(f KnockFacts, now time.Time) Decision {
	switch e.State() {
	case Paused:
		return reject(protocol.RejectPaused, "paused")
	case Stopped:
		return reject(protocol.RejectPaused, "stopped")
	}
	c := e.policy.Load()
	p := c.p
	if c.blocked[f.From] {
		return reject(protocol.RejectBlocked, "sender %s is blocked", f.From)
	}
	if p.StrictMode && !c.allowed[f.From] {
		return reject(protocol.RejectNotInAllowlist, "sender %s is not in the allowlist", f.From)
	}
	if !c.tiers[f.Sender.Tier] {
		return reject(protocol.RejectInsufficientTrust, "registry tier %q is not accepted", truncate(string(f.Sender.Tier)))
	}
	// The negated form also refuses a NaN reputation.
	if !(f.Sender.Reputation >= p.MinReputation) {
		return reject(protocol.RejectLowReputation, "registry reputation %.3g below minimum %.3g", f.Sender.Reputation, p.MinReputation)
	}
	cat := IntentCategory(f.Intent)
	if c.rejected[cat] {
		return reject(protocol.RejectIntentNotAccepted, "intent category %q is rejected", truncate(cat))
	}
	if len(c.accepted) > 0 && !c.accepted[cat] {
		return reject(protocol.RejectIntentNotAccepted, "intent category %q is not accepted", truncate(cat))
	}
	if f.TTL > p.MaxSessionTTL {
		return reject(protocol.RejectTTLExceeded, "requested TTL %ds exceeds maximum %ds", f.TTL, p.MaxSessionTTL)
	}
	if f.ActiveSessions >= p.MaxConcurrentSessions {
		return reject(protocol.RejectAtCapacity, "%d active sessions, maximum %d", f.ActiveSessions, p.MaxConcurrentSessions)
	}
	if !e.allowKnock(f.From, now, p.KnocksPerMinute) {
		return reject(protocol.RejectRateLimited, "more than %d KNOCKs in %v", p.KnocksPerMinute, RateWindow)
	}
	return Decision{Accept: true}
}

// allowKnock records a KNOCK from sender at now and reports whether fewer
// than limit earlier KNOCKs fall in the window ending at now. Each sender
// keeps at most limit times, the most recent ones.
func (e *Evaluator) allowKnock(sender protocol.AMID, now time.Time, limit int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sweep(now)
	times := dropOld(e.knocks[sender], now)
	allowed := len(times) < limit
	times = append(times, now)
	if len(times) > limit {
		times = append(times[:0], times[len(times)-limit:]...)
	}
	e.knocks[sender] = times
	return allowed
}

// dropOld removes the times outside the window ending at now.
func dropOld(times []time.Time, now time.Time) []time.Time {
	cut := now.Add(-RateWindow)
	i := 0
	for i < len(times) && !times[i].After(cut) {
		i++
	}
	return times[i:]
}

// sweep forgets, once per window, the senders with no KNOCK in the window,
// so that the map does not grow with every sender ever seen.
func (e *Evaluator) sweep(now time.Time) {
	if now.Sub(e.lastSweep) < RateWindow && !now.Before(e.lastSweep) {
		return
	}
	e.lastSweep = now
	for s, times := range e.knocks {
		if len(dropOld(times, now)) == 0 {
			delete(e.knocks, s)
		}
	}
}

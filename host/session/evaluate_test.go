package session

import (
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// goodFacts is a KNOCK the default policy accepts.
func goodFacts() KnockFacts {
	return KnockFacts{
		From:   testAMID(1),
		Intent: "travel/flights/search",
		TTL:    300,
		Sender: RegistryFacts{Tier: registry.TierVerified, Reputation: 0.8},
	}
}

func mustEvaluator(t *testing.T, p *Policy) *Evaluator {
	t.Helper()
	e, err := NewEvaluator(p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEvaluateOrder checks each reject reason and that the earlier check
// wins when a KNOCK fails several.
func TestEvaluateOrder(t *testing.T) {
	blocked, stranger, friend := testAMID(2), testAMID(3), testAMID(4)
	strict := func(p *Policy) {
		p.StrictMode = true
		p.Allowlist = []protocol.AMID{friend, blocked}
		p.Blocklist = []protocol.AMID{blocked}
	}
	tests := []struct {
		name   string
		policy func(*Policy)
		state  func(*Evaluator)
		facts  func(*KnockFacts)
		want   protocol.RejectReason
		detail string
	}{
		{name: "accept"},
		{name: "paused", state: (*Evaluator).Pause, want: protocol.RejectPaused, detail: "paused"},
		{name: "stopped", state: (*Evaluator).Stop, want: protocol.RejectPaused, detail: "stopped"},
		{name: "paused beats blocked", policy: strict, state: (*Evaluator).Pause,
			facts: func(f *KnockFacts) { f.From = blocked }, want: protocol.RejectPaused},
		{name: "blocked", policy: func(p *Policy) { p.Blocklist = []protocol.AMID{blocked} },
			facts: func(f *KnockFacts) { f.From = blocked }, want: protocol.RejectBlocked},
		{name: "blocked beats low reputation",
			policy: func(p *Policy) { p.Blocklist = []protocol.AMID{blocked} },
			facts:  func(f *KnockFacts) { f.From = blocked; f.Sender.Reputation = 0 }, want: protocol.RejectBlocked},
		{name: "blocked beats allowlisted", policy: strict,
			facts: func(f *KnockFacts) { f.From = blocked }, want: protocol.RejectBlocked},
		{name: "not in allowlist", policy: strict,
			facts: func(f *KnockFacts) { f.From = stranger }, want: protocol.RejectNotInAllowlist},
		{name: "not in allowlist beats anonymous", policy: func(p *Policy) { strict(p); p.AcceptTiers = []registry.Tier{registry.TierOrganization} },
			facts: func(f *KnockFacts) { f.From = stranger; f.Sender.Tier = registry.TierAnonymous }, want: protocol.RejectNotInAllowlist},
		{name: "allowlisted accepted", policy: strict, facts: func(f *KnockFacts) { f.From = friend }},
		{name: "allowlist ignored without strict mode", policy: func(p *Policy) { p.Allowlist = []protocol.AMID{friend} },
			facts: func(f *KnockFacts) { f.From = stranger }},
		{name: "tier", policy: func(p *Policy) { p.AcceptTiers = []registry.Tier{registry.TierOrganization} },
			want: protocol.RejectInsufficientTrust},
		{name: "unknown registry tier", facts: func(f *KnockFacts) { f.Sender.Tier = "" }, want: protocol.RejectInsufficientTrust},
		{name: "tier beats reputation", policy: func(p *Policy) { p.AcceptTiers = []registry.Tier{registry.TierOrganization} },
			facts: func(f *KnockFacts) { f.Sender.Reputation = 0 }, want: protocol.RejectInsufficientTrust},
		{name: "low reputation", facts: func(f *KnockFacts) { f.Sender.Reputation = 0.29 }, want: protocol.RejectLowReputation},
		{name: "reputation at minimum", facts: func(f *KnockFacts) { f.Sender.Reputation = 0.3 }},
		{name: "NaN reputation", facts: func(f *KnockFacts) { f.Sender.Reputation = math.NaN() }, want: protocol.RejectLowReputation},
		{name: "reputation beats intent", facts: func(f *KnockFacts) { f.Sender.Reputation = 0.1; f.Intent = "gambling" },
			want: protocol.RejectLowReputation},
		{name: "intent not in accepted", facts: func(f *KnockFacts) { f.Intent = "gambling/poker" }, want: protocol.RejectIntentNotAccepted},
		{name: "wildcard intent not in accepted", facts: func(f *KnockFacts) { f.Intent = "*" }, want: protocol.RejectIntentNotAccepted},
		{name: "intent dotted and capitalised", facts: func(f *KnockFacts) { f.Intent = "Research.papers" }},
		{name: "intent rejected", policy: func(p *Policy) { p.AcceptedIntents = nil; p.RejectedIntents = []string{"gambling"} },
			facts: func(f *KnockFacts) { f.Intent = "gambling/poker" }, want: protocol.RejectIntentNotAccepted},
		{name: "any intent when accepted is empty", policy: func(p *Policy) { p.AcceptedIntents = nil },
			facts: func(f *KnockFacts) { f.Intent = "gambling/poker" }},
		{name: "intent beats ttl", facts: func(f *KnockFacts) { f.Intent = "gambling"; f.TTL = 3600 }, want: protocol.RejectIntentNotAccepted},
		{name: "ttl exceeded", facts: func(f *KnockFacts) { f.TTL = 301 }, want: protocol.RejectTTLExceeded},
		{name: "ttl unspecified", facts: func(f *KnockFacts) { f.TTL = 0 }},
		{name: "ttl beats capacity", facts: func(f *KnockFacts) { f.TTL = 301; f.ActiveSessions = 10 }, want: protocol.RejectTTLExceeded},
		{name: "at capacity", facts: func(f *KnockFacts) { f.ActiveSessions = 10 }, want: protocol.RejectAtCapacity},
		{name: "below capacity", facts: func(f *KnockFacts) { f.ActiveSessions = 9 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			if tt.policy != nil {
				tt.policy(p)
			}
			e := mustEvaluator(t, p)
			if tt.state != nil {
				tt.state(e)
			}
			f := goodFacts()
			if tt.facts != nil {
				tt.facts(&f)
			}
			d := e.Evaluate(f, testNow)
			if d.Accept != (tt.want == "") || d.Reason != tt.want {
				t.Fatalf("Evaluate = %+v, want reason %q (accept %v)", d, tt.want, tt.want == "")
			}
			if !d.Accept && d.Detail == "" {
				t.Error("a rejection has no detail")
			}
			if tt.detail != "" && d.Detail != tt.detail {
				t.Errorf("Detail = %q, want %q", d.Detail, tt.detail)
			}
			if d.Accept && (d.Reason != "" || d.Detail != "") {
				t.Errorf("an acceptance carries a reason: %+v", d)
			}
		})
	}
}

// TestKnockFactsHaveNoSelfAssertedTrust makes sure the only tier and
// reputation the policy can see are the registry's: KnockFacts has no
// other field of either kind.
func TestKnockFactsHaveNoSelfAssertedTrust(t *testing.T) {
	tierType := reflect.TypeFor[registry.Tier]()
	var check func(reflect.Type, string, bool)
	check = func(typ reflect.Type, path string, inRegistry bool) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name := path + f.Name
			switch {
			case f.Type == reflect.TypeFor[RegistryFacts]():
				if name != "Sender" {
					t.Errorf("KnockFacts.%s holds RegistryFacts; only Sender should", name)
				}
				check(f.Type, name+".", true)
			case f.Type.Kind() == reflect.Struct:
				check(f.Type, name+".", inRegistry)
			case (f.Type == tierType || f.Type.Kind() == reflect.Float64) && !inRegistry:
				t.Errorf("KnockFacts.%s (%v) is trust information outside the registry facts", name, f.Type)
			}
		}
	}
	check(reflect.TypeFor[KnockFacts](), "", false)

	// The registry's answer decides, whatever the lookup holds besides.
	l := &registry.AgentLookup{Tier: registry.TierAnonymous, ReputationScore: 0.9}
	e := mustEvaluator(t, VerifiedOnly())
	f := goodFacts()
	f.Sender = FactsFromLookup(l)
	if d := e.Evaluate(f, testNow); d.Reason != protocol.RejectInsufficientTrust {
		t.Errorf("anonymous per registry under VerifiedOnly: %+v, want insufficient_trust", d)
	}
	l.Tier = registry.TierVerified
	f.Sender = FactsFromLookup(l)
	if d := e.Evaluate(f, testNow); !d.Accept {
		t.Errorf("verified per registry under VerifiedOnly: %+v, want accept", d)
	}
}

func TestRateLimit(t *testing.T) {
	e := mustEvaluator(t, DefaultPolicy())
	f := goodFacts()
	other := goodFacts()
	other.From = testAMID(9)
	for i := 0; i < 30; i++ {
		at := testNow.Add(time.Duration(i) * time.Second)
		if d := e.Evaluate(f, at); !d.Accept {
			t.Fatalf("KNOCK %d at +%ds: %+v, want accept", i+1, i, d)
		}
	}
	// The 31st within 60 s is refused; another sender is not affected.
	d := e.Evaluate(f, testNow.Add(30*time.Second))
	if d.Reason != protocol.RejectRateLimited {
		t.Fatalf("31st KNOCK within 60 s: %+v, want rate_limited", d)
	}
	if d := e.Evaluate(other, testNow.Add(30*time.Second)); !d.Accept {
		t.Fatalf("another sender's first KNOCK: %+v, want accept", d)
	}
	// The window slides: at +60s the first KNOCK (at +0s) has left it, but
	// 29 accepted KNOCKs and the refused one remain.
	if d := e.Evaluate(f, testNow.Add(60*time.Second)); d.Reason != protocol.RejectRateLimited {
		t.Fatalf("KNOCK at +60s with 30 in the window: %+v, want rate_limited", d)
	}
	// A full window after the last attempt, the sender is welcome again.
	if d := e.Evaluate(f, testNow.Add(121*time.Second)); !d.Accept {
		t.Fatalf("KNOCK a window after the last: %+v, want accept", d)
	}
}

func TestRateLimitLowerPolicy(t *testing.T) {
	p := DefaultPolicy()
	p.KnocksPerMinute = 2
	e := mustEvaluator(t, p)
	f := goodFacts()
	got := []bool{}
	for i := 0; i < 3; i++ {
		got = append(got, e.Evaluate(f, testNow.Add(time.Duration(i)*time.Second)).Accept)
	}
	if want := []bool{true, true, false}; !reflect.DeepEqual(got, want) {
		t.Errorf("accepts = %v, want %v", got, want)
	}
}

func TestRejectedEarlierDoesNotCountTowardRate(t *testing.T) {
	p := DefaultPolicy()
	p.KnocksPerMinute = 1
	e := mustEvaluator(t, p)
	f := goodFacts()
	f.ActiveSessions = 10
	for i := 0; i < 5; i++ {
		if d := e.Evaluate(f, testNow); d.Reason != protocol.RejectAtCapacity {
			t.Fatalf("%+v, want at_capacity", d)
		}
	}
	f.ActiveSessions = 0
	if d := e.Evaluate(f, testNow); !d.Accept {
		t.Fatalf("first KNOCK past capacity: %+v, want accept", d)
	}
}

func TestCircuit(t *testing.T) {
	e := mustEvaluator(t, DefaultPolicy())
	f := goodFacts()
	steps := []struct {
		op         func()
		state      CircuitState
		wantAccept bool
	}{
		{func() {}, Running, true},
		{e.Pause, Paused, false},
		{func() { e.Resume() }, Running, true},
		{e.Stop, Stopped, false},
		{func() {
			if e.Resume() {
				t.Error("Resume after Stop reported running")
			}
		}, Stopped, false},
		{e.Pause, Stopped, false},
	}
	for i, s := range steps {
		s.op()
		if got := e.State(); got != s.state {
			t.Errorf("step %d: State() = %v, want %v", i, got, s.state)
		}
		f.From = testAMID(byte(10 + i)) // keep the rate limiter out of it
		if d := e.Evaluate(f, testNow); d.Accept != s.wantAccept {
			t.Errorf("step %d: Evaluate = %+v, want accept %v", i, d, s.wantAccept)
		}
	}
}

func TestSetPolicy(t *testing.T) {
	e := mustEvaluator(t, DefaultPolicy())
	f := goodFacts()
	f.Sender.Tier = registry.TierAnonymous
	if d := e.Evaluate(f, testNow); !d.Accept {
		t.Fatalf("default policy: %+v", d)
	}
	if err := e.SetPolicy(OrganizationOnly()); err != nil {
		t.Fatal(err)
	}
	if d := e.Evaluate(f, testNow); d.Reason != protocol.RejectInsufficientTrust {
		t.Fatalf("after SetPolicy(OrganizationOnly): %+v", d)
	}
	bad := DefaultPolicy()
	bad.MaxSessionTTL = -5
	if err := e.SetPolicy(bad); err == nil {
		t.Fatal("SetPolicy(invalid) = nil")
	}
	if got := e.Policy(); !reflect.DeepEqual(got, OrganizationOnly()) {
		t.Errorf("an invalid SetPolicy changed the policy to %+v", got)
	}
	// The Evaluator keeps its own copy.
	p := DefaultPolicy()
	e2 := mustEvaluator(t, p)
	p.Blocklist = []protocol.AMID{f.From}
	if d := e2.Evaluate(f, testNow); !d.Accept {
		t.Errorf("editing the caller's policy changed the Evaluator: %+v", d)
	}
	if _, err := NewEvaluator(bad); err == nil {
		t.Error("NewEvaluator(invalid) = nil error")
	}
}

// TestEvaluatorConcurrent runs Evaluate, SetPolicy and the circuit
// together, for the race detector, and checks that the rate limit holds
// across goroutines.
func TestEvaluatorConcurrent(t *testing.T) {
	e := mustEvaluator(t, Permissive())
	f := goodFacts()
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if e.Evaluate(f, testNow).Accept {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			e.SetPolicy(Permissive())
			e.Pause()
			e.Resume()
		}
	}()
	wg.Wait()
	if accepted > 30 {
		t.Errorf("%d KNOCKs accepted at one instant, limit 30", accepted)
	}
}

func TestSweepForgetsIdleSenders(t *testing.T) {
	e := mustEvaluator(t, DefaultPolicy())
	for i := byte(0); i < 5; i++ {
		f := goodFacts()
		f.From = testAMID(20 + i)
		e.Evaluate(f, testNow)
	}
	e.Evaluate(goodFacts(), testNow.Add(2*RateWindow))
	e.mu.Lock()
	n := len(e.knocks)
	e.mu.Unlock()
	if n != 1 {
		t.Errorf("%d senders remembered after a window of silence, want 1", n)
	}
}

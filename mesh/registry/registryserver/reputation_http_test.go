package registryserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agentmesh/agentmesh-go/internal/logtest"
	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// The reputation tests compute every expected score by hand from the
// formula
//
//	score = 0.3·completion_rate + 0.4·weighted_feedback + 0.1·age_factor + 0.2·tier_bonus
//
// with tier_bonus 0 (anonymous), 0.5 (verified), 1 (organization),
// age_factor = age / 365 days, and completion_rate 0.5 while no session
// counts. Unless a test says otherwise, every rating's session is reported by
// the rater alone, as a success, so it stays pending and completion_rate is
// 0.5; targets are created at the server's current time, so their
// age_factor is 0 until the clock moves; raters are verified, registered
// long ago and rate from an address of their own, so their ratings have full
// weight.

const repTolerance = 1e-9

// repDay is 24 hours.
const repDay = 24 * time.Hour

// repEnv is a test server that trusts X-Forwarded-For, so that each agent
// of a test can send from an address of its own: loopback is one address,
// and the same-address rule would otherwise discount every rating after
// the first.
type repEnv struct {
	*testEnv
	ctx      context.Context
	logs     *logtest.Buffer
	mu       sync.Mutex
	nextIP   int
	sessions int
}

func newRepEnv(t *testing.T, st *Store) *repEnv {
	logs := new(logtest.Buffer)
	e := newEnv(t, st, func(c *Config) {
		c.TrustForwardedFor = true
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "registry", Level: hclog.Warn,
			Output: io.MultiWriter(logs, logtest.Writer(t))})
	})
	return &repEnv{testEnv: e, ctx: context.Background(), logs: logs}
}

// repAgent is a registered agent with its own client address, a client
// that sends from it and a signer that follows the server's clock.
type repAgent struct {
	*testAgent
	ip     string
	client *registry.Client
	signer *repSigner
}

// repSigner signs at the server's time, each signature over a later
// timestamp than the last.
type repSigner struct {
	clock *clock
	key   ed25519.PrivateKey
	mu    sync.Mutex
	last  time.Time
}

func (s *repSigner) Sign() registry.Signed {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.clock.Now()
	if !t.After(s.last) {
		t = s.last.Add(time.Millisecond)
	}
	s.last = t
	ts := protocol.FormatSigningTimestamp(t)
	return registry.Signed{Timestamp: ts, Signature: protocol.SignTimestamp(s.key, ts)}
}

// repFixedSigner returns the same signature every time.
type repFixedSigner struct{ s registry.Signed }

func (f repFixedSigner) Sign() registry.Signed { return f.s }

// repForwardedFor adds an X-Forwarded-For header to every request.
type repForwardedFor struct{ ip string }

func (f repForwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.ip)
	return http.DefaultTransport.RoundTrip(r)
}

// clientFrom returns a client whose requests come from ip.
func (e *repEnv) clientFrom(ip string) *registry.Client {
	e.t.Helper()
	c, err := registry.NewClient(e.http.URL+"/v1", registry.WithHTTPClient(&http.Client{Transport: repForwardedFor{ip}}))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// agent registers an agent of the given tier that registered age ago, with
// an address of its own.
func (e *repEnv) agent(tier registry.Tier, age time.Duration) *repAgent {
	e.t.Helper()
	e.mu.Lock()
	e.nextIP++
	ip := fmt.Sprintf("10.0.%d.%d", e.nextIP/250, e.nextIP%250+1)
	e.mu.Unlock()
	return e.agentAt(tier, age, ip)
}

// agentAt is agent with a given address.
func (e *repEnv) agentAt(tier registry.Tier, age time.Duration, ip string) *repAgent {
	e.t.Helper()
	a := e.addAgent(tier)
	if age != 0 {
		e.repExec(`UPDATE agents SET created_at = $1 WHERE amid = $2`, millis(e.clock.Now().Add(-age)), a.AMID)
	}
	return &repAgent{testAgent: a, ip: ip, client: e.clientFrom(ip), signer: &repSigner{clock: e.clock, key: a.Signing}}
}

// rater is a verified agent registered 100 days ago.
func (e *repEnv) rater() *repAgent { return e.agent(registry.TierVerified, 100*repDay) }

func (e *repEnv) repExec(query string, args ...any) {
	e.t.Helper()
	if _, err := e.store.db.ExecContext(e.ctx, query, args...); err != nil {
		e.t.Fatal(err)
	}
}

// newSessionID returns a session ID not used before in the test.
func (e *repEnv) newSessionID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sessions++
	return fmt.Sprintf("session-%04d", e.sessions)
}

// report has by report outcome of the session id between initiator and
// receiver.
func (e *repEnv) report(by *repAgent, id string, initiator, receiver *repAgent, intent, outcome string) error {
	_, err := by.client.RecordSession(e.ctx, by.signer, registry.SessionReport{
		SessionID: id, InitiatorAMID: initiator.AMID, ReceiverAMID: receiver.AMID,
		Intent: intent, Outcome: outcome, StartedAt: protocol.FormatServerTimestamp(e.clock.Now().Add(-time.Minute)),
		ReporterAMID: by.AMID,
	})
	return err
}

// session records a new session that rater started with target, reported
// as a success by the rater only (so it is pending), and returns its ID.
func (e *repEnv) session(rater, target *repAgent) string {
	e.t.Helper()
	id := e.newSessionID()
	if err := e.report(rater, id, rater, target, "chat", registry.OutcomeSuccess); err != nil {
		e.t.Fatalf("record session: %v", err)
	}
	return id
}

// rate records a rating of target by rater in a new session.
func (e *repEnv) rate(rater, target *repAgent, score float64, tags ...string) {
	e.t.Helper()
	e.rateIn(rater, target, e.session(rater, target), score, tags...)
}

// rateIn records a rating of target by rater in session id.
func (e *repEnv) rateIn(rater, target *repAgent, id string, score float64, tags ...string) {
	e.t.Helper()
	err := rater.client.Rate(e.ctx, rater.signer, registry.RatingRequest{
		TargetAMID: target.AMID, FromAMID: rater.AMID, Score: score, SessionID: id, Tags: tags,
	})
	if err != nil {
		e.t.Fatalf("rate %s by %s: %v", target.AMID, rater.AMID, err)
	}
}

// score reads the score endpoint.
func (e *repEnv) score(a *repAgent) *registry.ReputationScore {
	e.t.Helper()
	s, err := e.client.ReputationScore(e.ctx, a.AMID)
	if err != nil {
		e.t.Fatalf("score of %s: %v", a.AMID, err)
	}
	return s
}

// stored reads the agent's stored score and ratings count, which lookups
// and search show.
func (e *repEnv) stored(a *repAgent) (float64, int) {
	e.t.Helper()
	ag, err := e.store.Agent(e.ctx, a.AMID)
	if err != nil {
		e.t.Fatal(err)
	}
	return ag.ReputationScore, ag.RatingsCount
}

func repNear(a, b float64) bool { return math.Abs(a-b) < repTolerance }

// wantScore checks the score endpoint's score and status, and the stored
// score.
func (e *repEnv) wantScore(a *repAgent, shown, computed float64, status string, count int) *registry.ReputationScore {
	e.t.Helper()
	s := e.score(a)
	if !repNear(s.Score, shown) || !repNear(s.ComputedScore, computed) || s.ReputationStatus != status || s.RatingsCount != count {
		e.t.Fatalf("score = %v (computed %v, %s, %d ratings), want %v (computed %v, %s, %d ratings)",
			s.Score, s.ComputedScore, s.ReputationStatus, s.RatingsCount, shown, computed, status, count)
	}
	if st, n := e.stored(a); !repNear(st, computed) || n != count {
		e.t.Fatalf("stored score = %v with %d ratings, want %v with %d", st, n, computed, count)
	}
	return s
}

// post sends body (JSON unless a string or []byte) to path from ip and
// returns the status and decoded error.
func (e *repEnv) post(path, ip string, body any) (int, registry.ErrorResponse) {
	e.t.Helper()
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, e.http.URL+path, bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var er registry.ErrorResponse
	json.Unmarshal(data, &er)
	return resp.StatusCode, er
}

// countRows counts the rows of a table matching where.
func (e *repEnv) countRows(table, where string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.store.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM `+table+` WHERE `+where, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestReputationRatedAtFiveRatings(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierVerified, 0)
		var raters []*repAgent
		for range 5 {
			raters = append(raters, e.rater())
		}

		// A new agent: no ratings, no sessions: 0.3·0.5 + 0.4·0.5 + 0 + 0.2·0.5 = 0.45.
		s := e.score(target)
		if s.Score != 0.5 || !repNear(s.ComputedScore, 0.45) || s.ReputationStatus != registry.ReputationUnrated ||
			s.RatingsCount != 0 || s.AverageFeedback != 0.5 || s.CompletionRate != 0.5 || len(s.Tags) != 0 || len(s.Flags) != 0 {
			t.Fatalf("new agent: %+v", s)
		}

		e.rate(raters[0], target, 0.2, "accurate", "helpful")
		e.rate(raters[1], target, 0.4, "accurate", "fast_response")
		e.rate(raters[2], target, 0.6, "helpful")
		e.rate(raters[3], target, 0.8)
		// Four ratings: feedback (0.2+0.4+0.6+0.8)/4 = 0.5, computed
		// 0.15 + 0.4·0.5 + 0 + 0.2·0.5 = 0.45, shown 0.5 unrated.
		e.wantScore(target, 0.5, 0.45, registry.ReputationUnrated, 4)

		// The fifth, through the feedback path and with a repeated tag.
		id := e.session(raters[4], target)
		fid, err := raters[4].client.SubmitFeedback(e.ctx, raters[4].signer, registry.RatingRequest{
			TargetAMID: target.AMID, FromAMID: raters[4].AMID, Score: 1, SessionID: id,
			Tags: []string{"accurate", "accurate"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(fid) {
			t.Fatalf("feedback_id %q is not a UUIDv4", fid)
		}
		if n := e.countRows("ratings", "id = $1", fid); n != 1 {
			t.Fatalf("rating %s stored %d times", fid, n)
		}
		// Five ratings: feedback (0.2+0.4+0.6+0.8+1.0)/5 = 0.6, score
		// 0.15 + 0.24 + 0 + 0.1 = 0.49, rated.
		s = e.wantScore(target, 0.49, 0.49, registry.ReputationRated, 5)
		if !repNear(s.AverageFeedback, 0.6) || s.FeedbackCount != 5 || s.CompletionRate != 0.5 ||
			s.TotalSessions != 0 || s.PendingSessions != 5 || s.Tier != registry.TierVerified || s.AgeDays != 0 {
			t.Fatalf("score details: %+v", s)
		}
		// accurate 3 (the repeat counts once), helpful 2, fast_response 1.
		wantTags := []registry.TagCount{{Tag: "accurate", Count: 3}, {Tag: "helpful", Count: 2}, {Tag: "fast_response", Count: 1}}
		if fmt.Sprint(s.Tags) != fmt.Sprint(wantTags) {
			t.Fatalf("tags = %v, want %v", s.Tags, wantTags)
		}
		if s.LastUpdated != protocol.FormatServerTimestamp(e.clock.Now()) {
			t.Fatalf("last_updated = %q, want now", s.LastUpdated)
		}
	})
}

func TestReputationRealSigner(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		r := e.rater()
		id := e.newSessionID()
		// A *Signer fills in the reporter and the rater.
		if _, err := r.client.RecordSession(e.ctx, r.Signer, registry.SessionReport{
			SessionID: id, InitiatorAMID: r.AMID, ReceiverAMID: target.AMID, Intent: "chat",
			Outcome: registry.OutcomeSuccess, StartedAt: protocol.FormatServerTimestamp(e.clock.Now()),
		}); err != nil {
			t.Fatal(err)
		}
		if err := r.client.Rate(e.ctx, r.Signer, registry.RatingRequest{TargetAMID: target.AMID, Score: 1, SessionID: id}); err != nil {
			t.Fatal(err)
		}
		if n := e.countRows("ratings", "rater_amid = $1 AND target_amid = $2", r.AMID, target.AMID); n != 1 {
			t.Fatalf("%d ratings stored, want 1", n)
		}
	})
}

func TestReputationAnonymousRatersHalfWeight(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		for range 3 {
			e.rate(e.rater(), target, 1)
		}
		for range 2 {
			e.rate(e.agent(registry.TierAnonymous, 100*repDay), target, 0)
		}
		// Feedback (3·1·1.0 + 2·0.5·0.0) / (3·1 + 2·0.5) = 3/4 = 0.75;
		// score 0.3·0.5 + 0.4·0.75 + 0 + 0 = 0.45 (at full weight it
		// would be 0.15 + 0.4·0.6 = 0.39).
		s := e.wantScore(target, 0.45, 0.45, registry.ReputationRated, 5)
		if !repNear(s.AverageFeedback, 0.75) {
			t.Fatalf("average_feedback = %v, want 0.75", s.AverageFeedback)
		}
	})
}

func TestReputationMutualRatings(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		late := e.agent(registry.TierAnonymous, 0) // rates back after 24 h
		m := e.rater()
		for range 4 {
			r := e.rater()
			e.rate(r, target, 1)
			e.rate(r, late, 1)
		}
		withTarget := e.session(m, target)
		withLate := e.session(m, late)
		e.rateIn(m, target, withTarget, 0)
		e.rateIn(m, late, withLate, 0)
		// Feedback 4/5 = 0.8: 0.15 + 0.4·0.8 = 0.47 for both.
		e.wantScore(target, 0.47, 0.47, registry.ReputationRated, 5)
		e.wantScore(late, 0.47, 0.47, registry.ReputationRated, 5)

		// The target rates m back at once: m's rating now weighs 0.2.
		// Feedback 4/(4 + 0.2) = 0.952380952…, score 0.15 + 0.4·4/4.2 =
		// 0.530952380952…, stored as well (the rater's score is
		// recomputed when its rating makes one it received mutual).
		e.rateIn(target, m, withTarget, 1)
		s := e.wantScore(target, 0.15+0.4*4/4.2, 0.15+0.4*4/4.2, registry.ReputationRated, 5)
		if !repNear(s.AverageFeedback, 4/4.2) {
			t.Fatalf("average_feedback = %v, want 4/4.2", s.AverageFeedback)
		}

		// The other rates m back 24 h and 1 minute later: no discount.
		// Feedback stays 0.8; its age is 86460 s of 31536000 s:
		// 0.47 + 0.1·86460/31536000 = 0.470274162861…
		e.clock.Advance(repDay + time.Minute)
		e.rateIn(late, m, withLate, 1)
		s = e.score(late)
		if want := 0.47 + 0.1*86460/31536000; !repNear(s.Score, want) || !repNear(s.AverageFeedback, 0.8) {
			t.Fatalf("after 24 h: score %v, feedback %v; want %v, 0.8", s.Score, s.AverageFeedback, want)
		}
		// And the target's discount stays: its rating back was within 24 h.
		s = e.score(target)
		if !repNear(s.AverageFeedback, 4/4.2) {
			t.Fatalf("target feedback after 24 h = %v, want 4/4.2", s.AverageFeedback)
		}
	})
}

func TestReputationSameAddress(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		const shared = "192.0.2.7"
		first := e.agentAt(registry.TierVerified, 100*repDay, shared)
		second := e.agentAt(registry.TierVerified, 100*repDay, shared)
		e.rate(first, target, 0)
		e.rate(second, target, 0)
		for range 3 {
			e.rate(e.rater(), target, 1)
		}
		// The first rating from 192.0.2.7 weighs 1, the second 0.1.
		// Feedback 3/(1 + 0.1 + 3) = 3/4.1 = 0.731707317…, score
		// 0.15 + 0.4·3/4.1 = 0.442682926829…
		s := e.wantScore(target, 0.15+0.4*3/4.1, 0.15+0.4*3/4.1, registry.ReputationRated, 5)
		if !repNear(s.AverageFeedback, 3/4.1) {
			t.Fatalf("average_feedback = %v, want 3/4.1", s.AverageFeedback)
		}

		// The address is stored as a keyed hash: 32 hex digits, equal
		// for equal addresses, never the address.
		hashes := map[string]string{}
		rows, err := st.db.QueryContext(e.ctx, `SELECT rater_amid, rater_ip_hash FROM ratings WHERE target_amid = $1`, target.AMID)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var r, h string
			if err := rows.Scan(&r, &h); err != nil {
				t.Fatal(err)
			}
			hashes[r] = h
		}
		rows.Close()
		if h := hashes[first.AMID]; !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(h) || h != hashes[second.AMID] {
			t.Fatalf("hashes of a shared address: %q, %q", h, hashes[second.AMID])
		}
		if len(repDistinct(hashes)) != 4 {
			t.Fatalf("hashes %v: want 4 distinct for 4 addresses", hashes)
		}

		// 24 h and 1 minute later, the next rating from the address has
		// full weight again: feedback 3/(1 + 0.1 + 3 + 1) = 3/5.1, age
		// 86460 s: 0.15 + 0.4·3/5.1 + 0.1·86460/31536000 = 0.385568…
		e.clock.Advance(repDay + time.Minute)
		third := e.agentAt(registry.TierVerified, 100*repDay, shared)
		e.rate(third, target, 0)
		want := 0.15 + 0.4*3/5.1 + 0.1*86460/31536000
		s = e.wantScore(target, want, want, registry.ReputationRated, 6)
		if !repNear(s.AverageFeedback, 3/5.1) {
			t.Fatalf("average_feedback = %v, want 3/5.1", s.AverageFeedback)
		}
	})
}

func repDistinct(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		out[v] = true
	}
	return out
}

func TestReputationNewRaters(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		// Registered exactly 7 days ago: no longer new, full weight.
		for range 4 {
			e.rate(e.agent(registry.TierVerified, 7*repDay), target, 1)
		}
		// Registered 1 ms short of 7 days ago: weight 0.25.
		young := e.agent(registry.TierVerified, 7*repDay-time.Millisecond)
		e.rate(young, target, 0)
		// Feedback 4/(4 + 0.25) = 0.941176470588…, score
		// 0.15 + 0.4·4/4.25 = 0.526470588235…
		s := e.wantScore(target, 0.15+0.4*4/4.25, 0.15+0.4*4/4.25, registry.ReputationRated, 5)
		if !repNear(s.AverageFeedback, 4/4.25) {
			t.Fatalf("average_feedback = %v, want 4/4.25", s.AverageFeedback)
		}

		// A rater created now and rating after the clock moved 7 days
		// has full weight; its rating and the young one's earlier one
		// keep the weights they had when made. Feedback
		// 4/(4 + 0.25 + 1) = 4/5.25, target age 7 days:
		// 0.15 + 0.4·4/5.25 + 0.1·7/365 = 0.456669928245…
		fresh := e.agent(registry.TierVerified, 0)
		e.clock.Advance(7 * repDay)
		e.rate(fresh, target, 0)
		want := 0.15 + 0.4*4/5.25 + 0.1*7/365
		e.wantScore(target, want, want, registry.ReputationRated, 6)
		// The young rater rates again 7 days later, in a new session:
		// full weight now. Feedback 4/(4 + 0.25 + 1 + 1) = 4/6.25 = 0.64:
		// 0.15 + 0.256 + 0.1·7/365 = 0.407917808219…
		e.rate(young, target, 0)
		want = 0.15 + 0.4*0.64 + 0.1*7/365
		e.wantScore(target, want, want, registry.ReputationRated, 7)
	})
}

func TestReputationRapidChangeFlag(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		for range 5 {
			e.rate(e.agent(registry.TierAnonymous, 100*repDay), target, 1)
		}
		// Five anonymous raters (weight 0.5 each) scoring 1: feedback 1,
		// score 0.15 + 0.4 = 0.55. That is also the first score after
		// the first rating, the oldest of the last 24 h.
		e.wantScore(target, 0.55, 0.55, registry.ReputationRated, 5)

		// Two verified raters scoring 0: feedback 2.5/4.5, score
		// 0.15 + 0.4·2.5/4.5 = 0.372222…, a move of 0.177…: no flag.
		e.rate(e.rater(), target, 0)
		e.rate(e.rater(), target, 0)
		if f, err := e.server.flagsOf(e.ctx, target.AMID); err != nil || len(f) != 0 {
			t.Fatalf("flags after a 0.178 move: %v, %v", f, err)
		}
		// A third: feedback 2.5/5.5, score 0.15 + 0.4·2.5/5.5 =
		// 0.331818…, 0.218 below 0.55: rapid_reputation_decrease.
		e.rate(e.rater(), target, 0)
		current := 0.15 + 0.4*2.5/5.5
		flaggedAt := protocol.FormatServerTimestamp(e.clock.Now())
		wantFlag := func(flags []registry.AgentFlag, current float64) {
			t.Helper()
			if len(flags) != 1 {
				t.Fatalf("flags = %+v, want one", flags)
			}
			f := flags[0]
			if f.Reason != ReasonRapidDecrease || f.FlaggedAt != flaggedAt || f.PreviousScore == nil || f.CurrentScore == nil ||
				!repNear(*f.PreviousScore, 0.55) || !repNear(*f.CurrentScore, current) {
				t.Fatalf("flag = %+v (%v → %v), want %s at %s, 0.55 → %v",
					f, repDeref(f.PreviousScore), repDeref(f.CurrentScore), ReasonRapidDecrease, flaggedAt, current)
			}
		}
		flags, err := e.server.flagsOf(e.ctx, target.AMID)
		if err != nil {
			t.Fatal(err)
		}
		wantFlag(flags, current)
		wantFlag(e.score(target).Flags, current)
		if logs := e.logs.String(); !strings.Contains(logs, ReasonRapidDecrease) || !strings.Contains(logs, target.AMID) {
			t.Fatalf("log does not report the flag:\n%s", logs)
		}

		// A fourth: the move continues; the active flag follows it
		// instead of a second flag: 0.15 + 0.4·2.5/6.5 = 0.303846…
		e.rate(e.rater(), target, 0)
		current = 0.15 + 0.4*2.5/6.5
		flags, _ = e.server.flagsOf(e.ctx, target.AMID)
		wantFlag(flags, current)

		// Flags expire 24 h after they were raised.
		e.clock.Advance(repDay - time.Millisecond)
		flags, _ = e.server.flagsOf(e.ctx, target.AMID)
		wantFlag(flags, current)
		e.clock.Advance(time.Millisecond)
		if flags, err := e.server.flagsOf(e.ctx, target.AMID); err != nil || len(flags) != 0 {
			t.Fatalf("flags 24 h later: %+v, %v", flags, err)
		}
		if s := e.score(target); len(s.Flags) != 0 || s.Flags == nil {
			t.Fatalf("score flags 24 h later: %#v, want []", s.Flags)
		}
	})
}

func repDeref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func TestReputationUnratedAgentsAreNotFlagged(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		// One rating of 0: computed 0.15 + 0 = 0.15, 0.35 below the
		// 0.5 the agent registered with, but it is unrated (shown 0.5).
		e.rate(e.rater(), target, 0)
		e.wantScore(target, 0.5, 0.15, registry.ReputationUnrated, 1)
		if f, err := e.server.flagsOf(e.ctx, target.AMID); err != nil || len(f) != 0 {
			t.Fatalf("flags of an unrated agent: %v, %v", f, err)
		}
	})
}

func TestReputationSessionOutcomes(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		a := e.agent(registry.TierAnonymous, 0)
		b := e.agent(registry.TierAnonymous, 0)
		sessions := func(x *repAgent, total, successful, pending int, rate float64) {
			t.Helper()
			s := e.score(x)
			if s.TotalSessions != total || s.SuccessfulSessions != successful || s.PendingSessions != pending || !repNear(s.CompletionRate, rate) {
				t.Fatalf("sessions: total %d, successful %d, pending %d, rate %v; want %d, %d, %d, %v",
					s.TotalSessions, s.SuccessfulSessions, s.PendingSessions, s.CompletionRate, total, successful, pending, rate)
			}
		}
		// report has reporter report the outcome of session id between a
		// and b.
		report := func(reporter *repAgent, id, outcome string) {
			t.Helper()
			if err := e.report(reporter, id, a, b, "translate", outcome); err != nil {
				t.Fatal(err)
			}
		}
		storedScore := func(x *repAgent, want float64) {
			t.Helper()
			if got, _ := e.stored(x); !repNear(got, want) {
				t.Fatalf("stored score = %v, want %v", got, want)
			}
		}

		// One-sided success: pending, not counted; completion stays 0.5
		// and the stored score is the registration's 0.5.
		report(a, "s1", registry.OutcomeSuccess)
		sessions(a, 0, 0, 1, 0.5)
		storedScore(a, 0.5)
		// The same participant reporting again is refused.
		wantAPIError(t, e.report(a, "s1", a, b, "translate", registry.OutcomeFailed), http.StatusConflict, "outcome_already_reported")
		// Both reported success: counted as successful, 1/1. Both
		// scores are recomputed: 0.3·1 + 0.4·0.5 = 0.5.
		report(b, "s1", registry.OutcomeSuccess)
		sessions(a, 1, 1, 0, 1)
		sessions(b, 1, 1, 0, 1)
		storedScore(a, 0.5)
		wantAPIError(t, e.report(b, "s1", a, b, "translate", registry.OutcomeSuccess), http.StatusConflict, "outcome_already_reported")

		// One failure report counts at once, as unsuccessful: 1/2.
		// Stored: 0.3·0.5 + 0.2 = 0.35.
		report(b, "s2", registry.OutcomeFailed)
		sessions(a, 2, 1, 0, 0.5)
		storedScore(a, 0.35)
		storedScore(b, 0.35)
		// The other's success does not make it successful.
		report(a, "s2", registry.OutcomeSuccess)
		sessions(a, 2, 1, 0, 0.5)
		// Success and timeout: unsuccessful, 1/3; stored
		// 0.3/3 + 0.2 = 0.3.
		report(a, "s3", registry.OutcomeSuccess)
		sessions(a, 2, 1, 1, 0.5)
		report(b, "s3", registry.OutcomeTimeout)
		sessions(a, 3, 1, 0, 1.0/3)
		sessions(b, 3, 1, 0, 1.0/3)
		storedScore(a, 0.3)
		storedScore(b, 0.3)

		// Reports that disagree with the recorded participants.
		c := e.agent(registry.TierAnonymous, 0)
		wantAPIError(t, e.report(b, "s1", b, a, "translate", registry.OutcomeSuccess), http.StatusConflict, "session_mismatch")
		wantAPIError(t, e.report(c, "s1", c, a, "translate", registry.OutcomeSuccess), http.StatusConflict, "session_mismatch")
		// Not a participant.
		wantAPIError(t, e.report(c, "s4", a, b, "translate", registry.OutcomeSuccess), http.StatusForbidden, "not_session_participant")
		// A participant that is not registered.
		ghost := &repAgent{testAgent: newTestAgent(t)}
		wantAPIError(t, e.report(a, "s5", a, ghost, "translate", registry.OutcomeSuccess), http.StatusNotFound, "agent_not_found")
		// An unregistered reporter.
		ghost.client, ghost.signer = e.client, &repSigner{clock: e.clock, key: ghost.Signing}
		ae := wantAPIError(t, e.report(ghost, "s6", ghost, a, "translate", registry.OutcomeSuccess), http.StatusUnauthorized, "reporter_not_found")
		if ae.Message != "Reporter not found" {
			t.Fatalf("message %q", ae.Message)
		}
		if n := e.countRows("sessions", "1 = 1"); n != 3 {
			t.Fatalf("%d sessions stored, want 3", n)
		}
	})
}

func TestReputationSessionValidation(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		a := e.agent(registry.TierAnonymous, 0)
		b := e.agent(registry.TierAnonymous, 0)
		valid := func() map[string]any {
			sig := a.signer.Sign()
			return map[string]any{
				"session_id": e.newSessionID(), "initiator_amid": a.AMID, "receiver_amid": b.AMID,
				"intent": "chat", "outcome": "success", "started_at": "2026-01-02T03:04:05Z",
				"reporter_amid": a.AMID, "timestamp": sig.Timestamp, "signature": sig.Signature,
			}
		}
		tests := []struct {
			name   string
			change func(map[string]any)
			status int
			code   string
		}{
			{"empty session id", func(m map[string]any) { m["session_id"] = "" }, 400, "invalid_session_id"},
			{"long session id", func(m map[string]any) { m["session_id"] = strings.Repeat("x", 129) }, 400, "invalid_session_id"},
			{"bad outcome", func(m map[string]any) { m["outcome"] = "great" }, 400, "invalid_outcome"},
			{"bad started_at", func(m map[string]any) { m["started_at"] = "yesterday" }, 400, "invalid_timestamp"},
			{"bad initiator", func(m map[string]any) { m["initiator_amid"] = "nope" }, 400, "invalid_amid"},
			{"same agents", func(m map[string]any) { m["receiver_amid"] = a.AMID }, 400, "invalid_session"},
			{"long intent", func(m map[string]any) { m["intent"] = strings.Repeat("i", 257) }, 400, "invalid_intent"},
			{"forged signature", func(m map[string]any) {
				sig := b.signer.Sign()
				m["timestamp"], m["signature"] = sig.Timestamp, sig.Signature
			}, 401, "invalid_signature"},
			{"stale signature", func(m map[string]any) {
				ts := protocol.FormatSigningTimestamp(e.clock.Now().Add(-10 * time.Minute))
				m["timestamp"], m["signature"] = ts, protocol.SignTimestamp(a.Signing, ts)
			}, 401, "invalid_signature"},
			{"wrong type", func(m map[string]any) { m["outcome"] = 7 }, 400, "invalid_request"},
		}
		for _, tt := range tests {
			m := valid()
			tt.change(m)
			status, er := e.post("/v1/registry/reputation/session", a.ip, m)
			if status != tt.status || er.Code != tt.code {
				t.Errorf("%s: %d %s (%q), want %d %s", tt.name, status, er.Code, er.Error, tt.status, tt.code)
			}
		}
		// A replayed report is refused even for another session.
		m := valid()
		if status, er := e.post("/v1/registry/reputation/session", a.ip, m); status != 200 {
			t.Fatalf("valid report: %d %+v", status, er)
		}
		m["session_id"] = e.newSessionID()
		if status, er := e.post("/v1/registry/reputation/session", a.ip, m); status != 401 || er.Code != "invalid_signature" {
			t.Fatalf("replayed report: %d %+v", status, er)
		}
		if n := e.countRows("sessions", "1 = 1"); n != 1 {
			t.Fatalf("%d sessions stored, want 1", n)
		}
	})
}

func TestReputationRatingValidation(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		rater := e.rater()
		other := e.rater()
		id := e.session(rater, target)
		otherSession := e.session(other, target)
		rate := func(req registry.RatingRequest) error {
			if req.TargetAMID == "" {
				req.TargetAMID = target.AMID
			}
			if req.FromAMID == "" {
				req.FromAMID = rater.AMID
			}
			if req.SessionID == "" {
				req.SessionID = id
			}
			return rater.client.Rate(e.ctx, rater.signer, req)
		}

		ae := wantAPIError(t, rate(registry.RatingRequest{Score: 1.5}), 400, "invalid_score")
		if ae.Message != "Score must be between 0.0 and 1.0" {
			t.Fatalf("message %q", ae.Message)
		}
		wantAPIError(t, rate(registry.RatingRequest{Score: -0.1}), 400, "invalid_score")
		ae = wantAPIError(t, rate(registry.RatingRequest{Score: 0.5, Tags: []string{"accurate", "awesome"}}), 400, "invalid_tag")
		if !strings.Contains(ae.Message, "Invalid tag: awesome") || !strings.Contains(ae.Message, `"unreliable"`) {
			t.Fatalf("message %q", ae.Message)
		}
		wantAPIError(t, rate(registry.RatingRequest{Score: 0.5, SessionID: "never-reported"}), 400, "invalid_session")
		// A session between other agents.
		wantAPIError(t, rate(registry.RatingRequest{Score: 0.5, SessionID: otherSession}), 400, "invalid_session")
		// A session of the rater with someone else.
		third := e.agent(registry.TierAnonymous, 0)
		wantAPIError(t, rate(registry.RatingRequest{Score: 0.5, SessionID: e.session(rater, third)}), 400, "invalid_session")
		// Self rating.
		wantAPIError(t, rate(registry.RatingRequest{Score: 0.5, TargetAMID: rater.AMID}), 400, "invalid_rating")
		// Unknown target.
		ae = wantAPIError(t, rate(registry.RatingRequest{Score: 0.5, TargetAMID: newTestAgent(t).AMID}), 404, "target_not_found")
		if ae.Message != "Target agent not found" {
			t.Fatalf("message %q", ae.Message)
		}
		// Unknown rater.
		ghost := newTestAgent(t)
		ae = wantAPIError(t, rater.client.Rate(e.ctx, &repSigner{clock: e.clock, key: ghost.Signing}, registry.RatingRequest{
			TargetAMID: target.AMID, FromAMID: ghost.AMID, Score: 0.5, SessionID: id}), 401, "sender_not_found")
		if ae.Message != "Sender not found" {
			t.Fatalf("message %q", ae.Message)
		}
		// Forged: signed by another agent's key.
		wantAPIError(t, rater.client.Rate(e.ctx, other.signer, registry.RatingRequest{
			TargetAMID: target.AMID, FromAMID: rater.AMID, Score: 0.5, SessionID: id}), 401, "invalid_signature")
		if n := e.countRows("ratings", "1 = 1"); n != 0 {
			t.Fatalf("%d ratings stored by refused requests", n)
		}

		// Valid, then a duplicate on either path.
		sig := rater.signer.Sign()
		if err := rate(registry.RatingRequest{Score: 0.5}); err != nil {
			t.Fatal(err)
		}
		ae = wantAPIError(t, rate(registry.RatingRequest{Score: 0.9}), 409, "duplicate_feedback")
		if ae.Message != "Feedback already submitted for this session" {
			t.Fatalf("message %q", ae.Message)
		}
		_, err := rater.client.SubmitFeedback(e.ctx, rater.signer, registry.RatingRequest{
			TargetAMID: target.AMID, FromAMID: rater.AMID, Score: 0.9, SessionID: id})
		wantAPIError(t, err, 409, "duplicate_feedback")

		// A replayed signature is refused, even for another session.
		second := e.session(rater, target)
		if err := rater.client.Rate(e.ctx, repFixedSigner{sig}, registry.RatingRequest{
			TargetAMID: target.AMID, FromAMID: rater.AMID, Score: 0.5, SessionID: second}); err != nil {
			t.Fatalf("first use of a signature: %v", err)
		}
		third2 := e.session(rater, target)
		wantAPIError(t, rater.client.Rate(e.ctx, repFixedSigner{sig}, registry.RatingRequest{
			TargetAMID: target.AMID, FromAMID: rater.AMID, Score: 0.5, SessionID: third2}), 401, "invalid_signature")
		if n := e.countRows("ratings", "1 = 1"); n != 2 {
			t.Fatalf("%d ratings stored, want 2", n)
		}

		// Raw bodies.
		base := func() map[string]any {
			s := rater.signer.Sign()
			return map[string]any{"target_amid": target.AMID, "from_amid": rater.AMID, "session_id": e.session(rater, target),
				"score": 0.5, "timestamp": s.Timestamp, "signature": s.Signature}
		}
		for _, tc := range []struct {
			name  string
			score any
		}{{"string", "0.5"}, {"null", nil}, {"huge", json.RawMessage("1e400")}, {"bool", true}, {"object", map[string]any{}}} {
			m := base()
			m["score"] = tc.score
			if status, er := e.post("/v1/registry/reputation", rater.ip, m); status != 400 || er.Code != "invalid_score" {
				t.Errorf("score %s: %d %+v", tc.name, status, er)
			}
		}
		m := base()
		delete(m, "score")
		if status, er := e.post("/v1/registry/reputation/feedback", rater.ip, m); status != 400 || er.Code != "invalid_score" {
			t.Errorf("missing score: %d %+v", status, er)
		}
		for _, body := range []string{"", "{", "[]", `{"score":0.5}{}`, `{"tags":"accurate","score":0.5}`} {
			if status, er := e.post("/v1/registry/reputation", rater.ip, body); status != 400 {
				t.Errorf("body %q: %d %+v", body, status, er)
			}
		}
		if n := e.countRows("ratings", "1 = 1"); n != 2 {
			t.Fatalf("%d ratings stored, want 2", n)
		}
	})
}

func TestReputationRaterTierFromStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		liar := e.agent(registry.TierAnonymous, 100*repDay)
		for range 4 {
			e.rate(e.rater(), target, 1)
		}
		sig := liar.signer.Sign()
		status, er := e.post("/v1/registry/reputation", liar.ip, map[string]any{
			"target_amid": target.AMID, "from_amid": liar.AMID, "session_id": e.session(liar, target), "score": 0,
			"rater_tier": "organization", "from_tier": "verified", "tier": "verified",
			"timestamp": sig.Timestamp, "signature": sig.Signature,
		})
		if status != 200 {
			t.Fatalf("rating: %d %+v", status, er)
		}
		var tier string
		if err := st.db.QueryRowContext(e.ctx, `SELECT rater_tier FROM ratings WHERE rater_amid = $1`, liar.AMID).Scan(&tier); err != nil {
			t.Fatal(err)
		}
		if tier != string(registry.TierAnonymous) {
			t.Fatalf("stored rater_tier = %q, want anonymous", tier)
		}
		// Weight 0.5: feedback 4/4.5, score 0.15 + 0.4·4/4.5 = 0.505555…
		// (as verified it would be 4/5: 0.47).
		e.wantScore(target, 0.15+0.4*4/4.5, 0.15+0.4*4/4.5, registry.ReputationRated, 5)
	})
}

func TestReputationScoreEndpoint(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		for _, tc := range []struct {
			query  string
			status int
			code   string
		}{
			{"", 400, "missing_amid"},
			{"?amid=", 400, "missing_amid"},
			{"?amid=not-an-amid", 400, "invalid_amid"},
			{"?amid=" + newTestAgent(t).AMID, 404, "agent_not_found"},
			{"?amid=%zz", 400, "missing_amid"},
		} {
			if status, er := e.getStatus("/v1/registry/reputation/score" + tc.query); status != tc.status || er.Code != tc.code {
				t.Errorf("%q: %d %+v, want %d %s", tc.query, status, er, tc.status, tc.code)
			}
		}
		// An organization agent registered 73 days ago: age factor
		// 73/365 = 0.2; 0.15 + 0.2 + 0.1·0.2 + 0.2·1 = 0.57.
		org := e.agent(registry.TierOrganization, 73*repDay)
		s := e.score(org)
		if !repNear(s.ComputedScore, 0.57) || s.Score != 0.5 || s.AgeDays != 73 || s.Tier != registry.TierOrganization {
			t.Fatalf("organization agent: %+v", s)
		}
	})
}

func TestReputationLeaderboard(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		a := e.agent(registry.TierAnonymous, 0)
		b := e.agent(registry.TierAnonymous, 0)
		c := e.agent(registry.TierAnonymous, 0)
		d := e.agent(registry.TierAnonymous, 0)
		for range 5 {
			r := e.rater()
			e.rate(r, a, 1)   // 0.15 + 0.4 = 0.55
			e.rate(r, b, 0.5) // 0.15 + 0.2 = 0.35
			e.rate(r, c, 0)   // 0.15
		}
		for range 4 {
			e.rate(e.rater(), d, 1) // unrated
		}
		board := func(limit int, intent string) *registry.Leaderboard {
			t.Helper()
			l, err := e.client.Leaderboard(e.ctx, limit, intent)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		want := func(l *registry.Leaderboard, amids []string, scores []float64) {
			t.Helper()
			if len(l.Leaderboard) != len(amids) {
				t.Fatalf("leaderboard has %d agents, want %d: %+v", len(l.Leaderboard), len(amids), l.Leaderboard)
			}
			for i, s := range l.Leaderboard {
				if s.AMID != amids[i] || !repNear(s.Score, scores[i]) || s.ReputationStatus != registry.ReputationRated {
					t.Fatalf("place %d: %s %v, want %s %v", i, s.AMID, s.Score, amids[i], scores[i])
				}
			}
		}
		l := board(0, "")
		if l.Limit != 20 || l.IntentFilter != nil {
			t.Fatalf("limit %d, intent %v", l.Limit, l.IntentFilter)
		}
		want(l, []string{a.AMID, b.AMID, c.AMID}, []float64{0.55, 0.35, 0.15})
		want(board(2, ""), []string{a.AMID, b.AMID}, []float64{0.55, 0.35})
		if l := board(1000, ""); l.Limit != 100 {
			t.Fatalf("limit 1000 → %d, want 100", l.Limit)
		}

		// c completes a "translate" session with a partner, both
		// reporting success: completion 1, score 0.3 + 0 = 0.3.
		partner := e.rater()
		for _, by := range []*repAgent{c, partner} {
			if err := e.report(by, "translate-1", c, partner, "translate", registry.OutcomeSuccess); err != nil {
				t.Fatal(err)
			}
		}
		// b has only a pending "translate" session: not listed.
		if err := e.report(b, "translate-2", b, partner, "translate", registry.OutcomeSuccess); err != nil {
			t.Fatal(err)
		}
		l = board(0, "translate")
		if l.IntentFilter == nil || *l.IntentFilter != "translate" {
			t.Fatalf("intent_filter = %v", l.IntentFilter)
		}
		want(l, []string{c.AMID}, []float64{0.3})
		want(board(0, ""), []string{a.AMID, b.AMID, c.AMID}, []float64{0.55, 0.35, 0.3})
		want(board(0, "chat"), nil, nil)

		for _, q := range []string{"?limit=0", "?limit=-1", "?limit=abc", "?limit=1.5"} {
			if status, er := e.getStatus("/v1/registry/reputation/leaderboard" + q); status != 400 || er.Code != "invalid_limit" {
				t.Errorf("%s: %d %+v", q, status, er)
			}
		}
	})
}

func TestReputationConcurrentRatings(t *testing.T) {
	forEachStore(t, func(t *testing.T, st *Store) {
		e := newRepEnv(t, st)
		target := e.agent(registry.TierAnonymous, 0)
		const n = 8
		raters := make([]*repAgent, n)
		ids := make([]string, n)
		for i := range raters {
			raters[i] = e.rater()
			ids[i] = e.session(raters[i], target)
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range raters {
			wg.Go(func() {
				errs <- raters[i].client.Rate(e.ctx, raters[i].signer, registry.RatingRequest{
					TargetAMID: target.AMID, FromAMID: raters[i].AMID, Score: float64(i%2) * 1, SessionID: ids[i]})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		// Every update saw the ratings before it: the last counts all
		// eight, four of 1 and four of 0: 0.15 + 0.4·0.5 = 0.35.
		e.wantScore(target, 0.35, 0.35, registry.ReputationRated, n)
		if got := e.countRows("reputation_history", "amid = $1", target.AMID); got != n {
			t.Fatalf("%d history entries, want %d", got, n)
		}

		// Both participants of a new session report success at once:
		// one session, counted once, as a success.
		p := e.agent(registry.TierAnonymous, 0)
		errs = make(chan error, 2)
		for _, by := range []*repAgent{target, p} {
			wg.Go(func() { errs <- e.report(by, "together", target, p, "chat", registry.OutcomeSuccess) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if s := e.score(p); s.TotalSessions != 1 || s.SuccessfulSessions != 1 || s.CompletionRate != 1 {
			t.Fatalf("sessions of p: %+v", s)
		}
		// The target: 1 counted success, 8 pending: 0.3·1 + 0.4·0.5 = 0.5.
		e.wantScore(target, 0.5, 0.5, registry.ReputationRated, n)
	})
}

package registryserver

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Tier is an agent's trust tier; see [registry.Tier]. "Tier-2 raters" in the
// reputation rules are anonymous raters (level 2).
type Tier = registry.Tier

// The registry's tiers.
const (
	TierAnonymous    = registry.TierAnonymous
	TierVerified     = registry.TierVerified
	TierOrganization = registry.TierOrganization
)

// Tags is the standard set of reputation tags a rating may carry
// (PROTOCOL.md §7.3), in the order the registry lists them.
var Tags = []string{
	"fast_response", "accurate", "professional", "reliable", "helpful",
	"knowledgeable", "slow_response", "inaccurate", "unhelpful", "unreliable",
}

// Rating is one agent's feedback on another after a session, with the
// metadata the anti-gaming rules need.
type Rating struct {
	RaterAMID protocol.AMID
	RatedAMID protocol.AMID
	// RaterTier is the rater's tier when the rating was made.
	RaterTier Tier
	// RaterCreatedAt is when the rater registered.
	RaterCreatedAt time.Time
	// RaterIP identifies the rater's network address. Callers store a
	// hash, never the address itself; the engine only compares values.
	RaterIP   string
	SessionID string
	// Score is the feedback, from 0 (worst) to 1 (best).
	Score float64
	Tags  []string
	// At is when the registry recorded the rating.
	At time.Time
}

// Errors returned by [ValidateRating], wrapped in a [*RatingError]. The text
// of each is the error code the registry returns to clients.
var (
	ErrInvalidScore   = errors.New("invalid_score")
	ErrInvalidTag     = errors.New("invalid_tag")
	ErrMissingSession = errors.New("missing_session")
	ErrInvalidRating  = errors.New("invalid_rating")
)

// RatingError reports a rating that [ValidateRating] refused: the field and
// the problem. Code, through errors.Is, is one of the Err values above.
type RatingError struct {
	Field   string
	Problem string
	Code    error
}

func (e *RatingError) Error() string {
	return fmt.Sprintf("rating %s: %s (%v)", e.Field, e.Problem, e.Code)
}

// Unwrap returns the error code.
func (e *RatingError) Unwrap() error { return e.Code }

// ValidateRating checks the parts of r a client supplies: both AMIDs well
// formed and different, a known rater tier, a session ID, a score within
// 0..1 and only standard tags. Whether the session exists and the rater
// signed the rating is for the caller to check against its store.
func ValidateRating(r Rating) error {
	if _, err := protocol.ParseAMID(string(r.RaterAMID)); err != nil {
		return &RatingError{Field: "rater_amid", Problem: err.Error(), Code: ErrInvalidRating}
	}
	if _, err := protocol.ParseAMID(string(r.RatedAMID)); err != nil {
		return &RatingError{Field: "target_amid", Problem: err.Error(), Code: ErrInvalidRating}
	}
	if r.RaterAMID == r.RatedAMID {
		return &RatingError{Field: "target_amid", Problem: "an agent cannot rate itself", Code: ErrInvalidRating}
	}
	if !r.RaterTier.Valid() {
		return &RatingError{Field: "rater_tier", Problem: fmt.Sprintf("unknown tier %q", r.RaterTier), Code: ErrInvalidRating}
	}
	if r.SessionID == "" {
		return &RatingError{Field: "session_id", Problem: "missing", Code: ErrMissingSession}
	}
	if !validScore(r.Score) {
		return &RatingError{Field: "score", Problem: fmt.Sprintf("%v is not between 0.0 and 1.0", r.Score), Code: ErrInvalidScore}
	}
	for _, t := range r.Tags {
		if !slices.Contains(Tags, t) {
			return &RatingError{Field: "tags", Problem: fmt.Sprintf("unknown tag %q", t), Code: ErrInvalidTag}
		}
	}
	return nil
}

// validScore reports whether s is a number within 0..1 (NaN is not).
func validScore(s float64) bool { return s >= 0 && s <= 1 }

// Anti-gaming discount factors and windows. The numbers are those of the
// design; see [Weight] for where the original implementation differs.
const (
	AnonymousRaterFactor = 0.5  // rater is anonymous (level 2)
	MutualRatingFactor   = 0.2  // the rated agent rated the rater within MutualWindow
	SharedIPFactor       = 0.1  // another rating of the target from the same IP came first within SharedIPWindow
	NewRaterFactor       = 0.25 // rater registered less than NewRaterAge before rating

	MutualWindow   = 24 * time.Hour
	SharedIPWindow = 24 * time.Hour
	NewRaterAge    = 7 * 24 * time.Hour
)

// Reasons a rating's weight is discounted, as reported in [Discount].
const (
	ReasonAnonymousRater = "anonymous_rater"
	ReasonMutualRating   = "mutual_rating"
	ReasonSharedIP       = "shared_ip"
	ReasonNewRater       = "new_rater"
)

// Discount is one anti-gaming rule that applied to a rating.
type Discount struct {
	Reason string  // one of the Reason constants
	Factor float64 // multiplier applied to the weight
}

// Weight returns the weight of rating r among history, a full weight being 1,
// and the rules that reduced it. History holds the ratings the registry knows
// of around r, both those the rated agent received and those it gave; it may
// include r itself, which is recognised by its rater and session ID and
// ignored.
//
// The rules, each applied once:
//   - the rater is anonymous: × 0.5;
//   - the rated agent also rated the rater within 24 h of r, before or after
//     (mutual rating): × 0.2;
//   - another rating of the same agent from the same RaterIP was recorded in
//     the 24 h before r: × 0.1, so only the first per 24 h has full weight;
//     ratings recorded at the same instant are ordered by session ID;
//   - the rater registered less than 7 days before r: × 0.25.
//
// The factors multiply, as in the original implementation (PROTOCOL.md §8.8,
// w·t·m), so the smallest possible weight is 0.5·0.2·0.1·0.25 = 0.0025 and
// every rating keeps a positive weight. The original sets a repeated same-IP
// rating's weight to 0; the design's figure, 0.1, is used here.
func Weight(r Rating, history []Rating) (float64, []Discount) {
	return newIndex(history).weight(r)
}

// pair keys ratings by two strings: rater and rated AMID, or IP and rated
// AMID.
type pair [2]string

// index groups a rating history so that weighing each rating looks only at
// the ratings a rule could match instead of the whole history.
type index struct {
	history []Rating
	byPair  map[pair][]int // by rater and rated AMID, for the mutual rule
	byIP    map[pair][]int // by IP and rated AMID, for the same-IP rule
}

func newIndex(history []Rating) *index {
	x := &index{history: history, byPair: make(map[pair][]int), byIP: make(map[pair][]int)}
	for i, h := range history {
		k := pair{string(h.RaterAMID), string(h.RatedAMID)}
		x.byPair[k] = append(x.byPair[k], i)
		if h.RaterIP != "" {
			k := pair{h.RaterIP, string(h.RatedAMID)}
			x.byIP[k] = append(x.byIP[k], i)
		}
	}
	return x
}

// any reports whether match holds for one of the ratings at idx.
func (x *index) any(idx []int, r Rating, match func(r, h Rating) bool) bool {
	for _, i := range idx {
		if match(r, x.history[i]) {
			return true
		}
	}
	return false
}

func (x *index) weight(r Rating) (float64, []Discount) {
	var ds []Discount
	if r.RaterTier == TierAnonymous {
		ds = append(ds, Discount{ReasonAnonymousRater, AnonymousRaterFactor})
	}
	if x.any(x.byPair[pair{string(r.RatedAMID), string(r.RaterAMID)}], r, isMutual) {
		ds = append(ds, Discount{ReasonMutualRating, MutualRatingFactor})
	}
	if r.RaterIP != "" && x.any(x.byIP[pair{r.RaterIP, string(r.RatedAMID)}], r, sharesIPBefore) {
		ds = append(ds, Discount{ReasonSharedIP, SharedIPFactor})
	}
	if age := r.At.Sub(r.RaterCreatedAt); age < NewRaterAge {
		ds = append(ds, Discount{ReasonNewRater, NewRaterFactor})
	}
	w := 1.0
	for _, d := range ds {
		w *= d.Factor
	}
	return w, ds
}

// same reports whether h is r itself (or a duplicate of it).
func same(r, h Rating) bool {
	return h.RaterAMID == r.RaterAMID && h.SessionID == r.SessionID
}

// isMutual reports whether h is the rated agent's rating of r's rater made
// within MutualWindow of r.
func isMutual(r, h Rating) bool {
	return h.RaterAMID == r.RatedAMID && h.RatedAMID == r.RaterAMID &&
		h.At.Sub(r.At).Abs() <= MutualWindow
}

// sharesIPBefore reports whether h rates the same agent from the same IP and
// was recorded before r, less than SharedIPWindow earlier.
func sharesIPBefore(r, h Rating) bool {
	if same(r, h) || h.RaterIP != r.RaterIP || h.RatedAMID != r.RatedAMID {
		return false
	}
	d := r.At.Sub(h.At)
	if d < 0 || d >= SharedIPWindow {
		return false
	}
	return d > 0 || h.SessionID < r.SessionID
}

// Score formula weights and thresholds.
const (
	CompletionWeight = 0.3
	FeedbackWeight   = 0.4
	AgeWeight        = 0.1
	TierWeight       = 0.2

	// MinRatings is the number of ratings an agent needs before its score
	// is shown; below it the agent is unrated with UnratedScore.
	MinRatings   = 5
	UnratedScore = 0.5

	// FullAge is the account age at which the age factor reaches 1.
	FullAge = 365 * 24 * time.Hour
)

// TierBonus returns the tier bonus of the score formula: 0 for anonymous,
// 0.5 for verified and 1 for organization agents.
//
// These are the design's values, which make a new verified or organization
// agent start at 0.6 or 0.7 as registration does (PROTOCOL.md §8.3). The
// original's scoring code disagrees with itself and with registration, using
// 0.1 and 0.2 (and, in one path, 0.5 + bonus); the design's numbers are
// followed here.
func TierBonus(t Tier) float64 {
	switch t {
	case TierVerified:
		return 0.5
	case TierOrganization:
		return 1
	}
	return 0
}

// AgeFactor returns the age component of the score: the account's age as a
// fraction of a year, capped at 1, and 0 for an account created after now.
// The original uses a year in one scoring path and 30 days in the other; the
// year is used here.
func AgeFactor(createdAt, now time.Time) float64 {
	age := now.Sub(createdAt)
	if age <= 0 {
		return 0
	}
	return min(1, age.Seconds()/FullAge.Seconds())
}

// ScoreInputs is what [Score] needs to know about an agent.
type ScoreInputs struct {
	// CompletionRate is the share of the agent's sessions that completed
	// successfully, 0..1. Values outside are clamped; NaN counts as 0.
	CompletionRate float64
	// Ratings are the ratings the agent received. Ratings with a score
	// outside 0..1 are ignored.
	Ratings []Rating
	// Given are the ratings the agent gave, used to detect mutual ratings.
	Given []Rating
	// CreatedAt is when the agent registered.
	CreatedAt time.Time
	// Tier is the agent's current tier.
	Tier Tier
}

// Components are the terms of the score formula before weighting, each 0..1.
type Components struct {
	Completion float64
	Feedback   float64 // weighted mean of the ratings' scores; 0.5 without ratings
	Age        float64
	TierBonus  float64
}

// Result is an agent's reputation.
type Result struct {
	// Score is the reputation shown, 0..1: UnratedScore while Unrated.
	Score float64
	// Unrated is set while the agent has fewer than MinRatings ratings.
	Unrated bool
	// RatingsCount is the number of ratings counted.
	RatingsCount int
	// Computed is the formula's value, clamped to 0..1, even while unrated.
	Computed   float64
	Components Components
}

// Score computes an agent's reputation at time now:
//
//	0.3·completion_rate + 0.4·weighted_feedback + 0.1·age_factor + 0.2·tier_bonus
//
// clamped to 0..1, where weighted_feedback is the mean of the ratings'
// scores weighted by [Weight], age_factor is [AgeFactor] and tier_bonus is
// [TierBonus]. An agent with fewer than MinRatings ratings is unrated and
// shown with UnratedScore; the original instead blends toward 0.5 in one
// scoring path and shows 0.5 + tier_bonus in the other, and the design's
// flat 0.5 is used here. Completion rate is the caller's measure, where one
// original path fixed it at 0.8.
func Score(in ScoreInputs, now time.Time) Result {
	history := make([]Rating, 0, len(in.Ratings)+len(in.Given))
	history = append(history, in.Ratings...)
	history = append(history, in.Given...)

	x := newIndex(history)
	var sum, weights float64
	n := 0
	for _, r := range in.Ratings {
		if !validScore(r.Score) {
			continue
		}
		w, _ := x.weight(r)
		sum += r.Score * w
		weights += w
		n++
	}
	c := Components{
		Completion: clamp01(in.CompletionRate),
		Feedback:   UnratedScore,
		Age:        AgeFactor(in.CreatedAt, now),
		TierBonus:  TierBonus(in.Tier),
	}
	if weights > 0 {
		c.Feedback = clamp01(sum / weights)
	}
	computed := clamp01(CompletionWeight*c.Completion + FeedbackWeight*c.Feedback +
		AgeWeight*c.Age + TierWeight*c.TierBonus)
	res := Result{Score: computed, RatingsCount: n, Computed: computed, Components: c}
	if n < MinRatings {
		res.Score = UnratedScore
		res.Unrated = true
	}
	return res
}

// clamp01 limits v to 0..1, mapping NaN to 0.
func clamp01(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return max(0, min(1, v))
}

// Rapid change detection.
const (
	// RapidChangeThreshold is the score move, strictly exceeded, that is
	// flagged when it happens within RapidChangeWindow.
	RapidChangeThreshold = 0.2
	RapidChangeWindow    = 24 * time.Hour

	ReasonRapidIncrease = "rapid_reputation_increase"
	ReasonRapidDecrease = "rapid_reputation_decrease"
)

// Flag marks an agent whose reputation moved suspiciously fast.
type Flag struct {
	Reason        string // ReasonRapidIncrease or ReasonRapidDecrease
	FlaggedAt     time.Time
	PreviousScore float64
	CurrentScore  float64
}

// DetectRapidChange returns a flag if the score moved from previous, as of
// previousAt, to current, as of now, by more than RapidChangeThreshold within
// RapidChangeWindow (both bounds inclusive of an elapsed time of exactly 0
// and exactly 24 h), and nil otherwise. A move whose elapsed time is negative
// or whose scores are not numbers is not flagged.
func DetectRapidChange(previous, current float64, previousAt, now time.Time) *Flag {
	elapsed := now.Sub(previousAt)
	if elapsed < 0 || elapsed > RapidChangeWindow {
		return nil
	}
	delta := current - previous
	if math.IsNaN(delta) || math.Abs(delta) <= RapidChangeThreshold {
		return nil
	}
	reason := ReasonRapidIncrease
	if delta < 0 {
		reason = ReasonRapidDecrease
	}
	return &Flag{Reason: reason, FlaggedAt: now, PreviousScore: previous, CurrentScore: current}
}

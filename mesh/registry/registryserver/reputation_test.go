package registryserver

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// now is the fixed "current time" of every test.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// veteran is the registration time of raters old enough to escape the new
// rater rule.
var veteran = now.Add(-100 * 24 * time.Hour)

// amid returns a well-formed AMID derived from a fixed key numbered n.
func amid(n int) protocol.AMID {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = byte(n)
	seed[1] = byte(n >> 8)
	return protocol.DeriveAMID(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
}

var (
	target = amid(0)
	raterB = amid(1)
	raterC = amid(2)
	raterD = amid(3)
	raterE = amid(4)
	raterF = amid(5)
)

// rating returns a full-weight rating of target by rater: a verified rater
// registered long ago, with an IP of its own.
func rating(rater protocol.AMID, score float64, at time.Time) Rating {
	return Rating{
		RaterAMID:      rater,
		RatedAMID:      target,
		RaterTier:      TierVerified,
		RaterCreatedAt: veteran,
		RaterIP:        "ip-" + string(rater),
		SessionID:      "session-" + string(rater) + at.Format(time.RFC3339Nano),
		Score:          score,
		At:             at,
	}
}

func with(r Rating, f func(*Rating)) Rating {
	f(&r)
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestValidateRating(t *testing.T) {
	ok := with(rating(raterB, 0.7, now), func(r *Rating) { r.Tags = []string{"fast_response", "unreliable"} })
	tests := []struct {
		name  string
		r     Rating
		want  error
		field string
	}{
		{"valid", ok, nil, ""},
		{"score 0", with(ok, func(r *Rating) { r.Score = 0 }), nil, ""},
		{"score 1", with(ok, func(r *Rating) { r.Score = 1 }), nil, ""},
		{"all standard tags", with(ok, func(r *Rating) { r.Tags = Tags }), nil, ""},
		{"score -0.1", with(ok, func(r *Rating) { r.Score = -0.1 }), ErrInvalidScore, "score"},
		{"score 1.1", with(ok, func(r *Rating) { r.Score = 1.1 }), ErrInvalidScore, "score"},
		{"score NaN", with(ok, func(r *Rating) { r.Score = math.NaN() }), ErrInvalidScore, "score"},
		{"score +Inf", with(ok, func(r *Rating) { r.Score = math.Inf(1) }), ErrInvalidScore, "score"},
		{"unknown tag", with(ok, func(r *Rating) { r.Tags = []string{"accurate", "awesome"} }), ErrInvalidTag, "tags"},
		{"tag case differs", with(ok, func(r *Rating) { r.Tags = []string{"Accurate"} }), ErrInvalidTag, "tags"},
		{"missing session", with(ok, func(r *Rating) { r.SessionID = "" }), ErrMissingSession, "session_id"},
		{"bad rater AMID", with(ok, func(r *Rating) { r.RaterAMID = "not-an-amid" }), ErrInvalidRating, "rater_amid"},
		{"empty target AMID", with(ok, func(r *Rating) { r.RatedAMID = "" }), ErrInvalidRating, "target_amid"},
		{"self rating", with(ok, func(r *Rating) { r.RatedAMID = r.RaterAMID }), ErrInvalidRating, "target_amid"},
		{"unknown tier", with(ok, func(r *Rating) { r.RaterTier = "gold" }), ErrInvalidRating, "rater_tier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRating(tt.r)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("ValidateRating() = %v, want %v", err, tt.want)
			}
			if err == nil {
				return
			}
			var re *RatingError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RatingError", err)
			}
			if re.Field != tt.field {
				t.Errorf("field = %q, want %q", re.Field, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name field %q", err, tt.field)
			}
		})
	}
	if got, want := ErrInvalidScore.Error(), "invalid_score"; got != want {
		t.Errorf("ErrInvalidScore code = %q, want %q", got, want)
	}
}

func TestTier(t *testing.T) {
	tests := []struct {
		tier  Tier
		valid bool
		level int
		bonus float64
	}{
		{TierAnonymous, true, 2, 0},
		{TierVerified, true, 1, 0.5},
		{TierOrganization, true, 1, 1},
		{"gold", false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.tier), func(t *testing.T) {
			if got := tt.tier.Valid(); got != tt.valid {
				t.Errorf("Valid() = %v, want %v", got, tt.valid)
			}
			if got := tt.tier.Level(); got != tt.level {
				t.Errorf("Level() = %d, want %d", got, tt.level)
			}
			if got := TierBonus(tt.tier); got != tt.bonus {
				t.Errorf("TierBonus() = %v, want %v", got, tt.bonus)
			}
		})
	}
}

func TestWeight(t *testing.T) {
	base := rating(raterB, 0.9, now)
	// byTarget is the target's own rating of rater B, at an offset from base.
	byTarget := func(d time.Duration) Rating {
		return Rating{RaterAMID: target, RatedAMID: raterB, RaterTier: TierVerified,
			RaterCreatedAt: veteran, SessionID: "back", Score: 1, At: now.Add(d)}
	}
	// sameIP is rater C's rating of the target from rater B's IP.
	sameIP := func(d time.Duration, session string) Rating {
		return with(rating(raterC, 1, now.Add(d)), func(r *Rating) {
			r.RaterIP = base.RaterIP
			r.SessionID = session
		})
	}
	tests := []struct {
		name    string
		r       Rating
		history []Rating
		want    float64
		reasons []string
	}{
		// A verified, established rater with an IP of its own counts fully.
		{"full weight", base, []Rating{base, rating(raterC, 0, now)}, 1, nil},
		// Anonymous (level 2) raters count half: 1 × 0.5 = 0.5.
		{"anonymous rater", with(base, func(r *Rating) { r.RaterTier = TierAnonymous }), nil,
			0.5, []string{ReasonAnonymousRater}},
		{"organization rater", with(base, func(r *Rating) { r.RaterTier = TierOrganization }), nil, 1, nil},
		// The target rated B 23 h after B rated it: mutual, 1 × 0.2 = 0.2.
		{"mutual after", base, []Rating{byTarget(23 * time.Hour)}, 0.2, []string{ReasonMutualRating}},
		{"mutual before", base, []Rating{byTarget(-10 * time.Hour)}, 0.2, []string{ReasonMutualRating}},
		{"mutual at 24 h", base, []Rating{byTarget(24 * time.Hour)}, 0.2, []string{ReasonMutualRating}},
		{"mutual more than 24 h before", base, []Rating{byTarget(-24*time.Hour - time.Second)}, 1, nil},
		{"mutual beyond 24 h", base, []Rating{byTarget(24*time.Hour + time.Second)}, 1, nil},
		{"target rated someone else", base, []Rating{with(byTarget(time.Hour), func(r *Rating) { r.RatedAMID = raterC })}, 1, nil},
		// C rated the target from B's IP an hour before B: B is the second
		// rating from that IP in 24 h, 1 × 0.1 = 0.1.
		{"same IP second", base, []Rating{sameIP(-time.Hour, "s-c")}, 0.1, []string{ReasonSharedIP}},
		// C's rating came after B's, so B was first and keeps full weight.
		{"same IP first", base, []Rating{sameIP(time.Hour, "s-c")}, 1, nil},
		{"same IP 24 h earlier", base, []Rating{sameIP(-24*time.Hour, "s-c")}, 1, nil},
		{"same IP just inside 24 h", base, []Rating{sameIP(-24*time.Hour+time.Nanosecond, "s-c")}, 0.1, []string{ReasonSharedIP}},
		{"same IP same instant, later session", with(base, func(r *Rating) { r.SessionID = "s-b" }),
			[]Rating{sameIP(0, "s-a")}, 0.1, []string{ReasonSharedIP}},
		{"same IP same instant, earlier session", with(base, func(r *Rating) { r.SessionID = "s-b" }),
			[]Rating{sameIP(0, "s-c")}, 1, nil},
		{"same IP other target", base, []Rating{with(sameIP(-time.Hour, "s-c"), func(r *Rating) { r.RatedAMID = raterD })}, 1, nil},
		{"history holds the rating itself", base, []Rating{base, base}, 1, nil},
		{"no IP recorded", with(base, func(r *Rating) { r.RaterIP = "" }),
			[]Rating{with(sameIP(-time.Hour, "s-c"), func(r *Rating) { r.RaterIP = "" })}, 1, nil},
		// B registered 6 days 23 h before rating: 1 × 0.25 = 0.25.
		{"new rater", with(base, func(r *Rating) { r.RaterCreatedAt = now.Add(-7*24*time.Hour + time.Hour) }), nil,
			0.25, []string{ReasonNewRater}},
		{"rater exactly 7 days old", with(base, func(r *Rating) { r.RaterCreatedAt = now.Add(-7 * 24 * time.Hour) }), nil, 1, nil},
		// Every rule at once multiplies: 0.5 × 0.2 × 0.1 × 0.25 = 0.0025.
		{"all rules", with(base, func(r *Rating) {
			r.RaterTier = TierAnonymous
			r.RaterCreatedAt = now.Add(-time.Hour)
		}), []Rating{byTarget(time.Hour), sameIP(-time.Hour, "s-c")},
			0.0025, []string{ReasonAnonymousRater, ReasonMutualRating, ReasonSharedIP, ReasonNewRater}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ds := Weight(tt.r, tt.history)
			if !near(got, tt.want) {
				t.Errorf("Weight() = %v, want %v", got, tt.want)
			}
			var reasons []string
			for _, d := range ds {
				reasons = append(reasons, d.Reason)
			}
			if fmt.Sprint(reasons) != fmt.Sprint(tt.reasons) {
				t.Errorf("reasons = %v, want %v", reasons, tt.reasons)
			}
		})
	}
}

func TestAgeFactor(t *testing.T) {
	tests := []struct {
		name    string
		created time.Time
		want    float64
	}{
		{"just created", now, 0},
		{"created in the future", now.Add(time.Hour), 0},
		{"half a year", now.Add(-FullAge / 2), 0.5},
		{"one year", now.Add(-FullAge), 1},
		{"two years", now.Add(-2 * FullAge), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AgeFactor(tt.created, now); !near(got, tt.want) {
				t.Errorf("AgeFactor() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScore(t *testing.T) {
	at := func(h int) time.Time { return now.Add(time.Duration(-h) * time.Hour) }
	anon := func(r Rating) Rating { return with(r, func(r *Rating) { r.RaterTier = TierAnonymous }) }
	fiveAnonymous := []Rating{
		anon(rating(raterB, 1, at(1))), anon(rating(raterC, 1, at(2))),
		anon(rating(raterD, 1, at(3))), anon(rating(raterE, 1, at(4))),
		anon(rating(raterF, 1, at(5))),
	}
	tests := []struct {
		name     string
		in       ScoreInputs
		want     float64
		unrated  bool
		count    int
		feedback float64
	}{
		// Two anonymous raters at 1.0 and one verified at 0.0: feedback
		// (0.5·1 + 0.5·1 + 1·0)/(0.5 + 0.5 + 1) = 0.5. Three ratings are
		// fewer than five, so the agent is shown unrated at 0.5.
		{"anonymous raters weigh half", ScoreInputs{
			CompletionRate: 1,
			Ratings: []Rating{
				anon(rating(raterB, 1, at(1))), anon(rating(raterC, 1, at(2))),
				rating(raterD, 0, at(3)),
			},
			CreatedAt: now, Tier: TierAnonymous,
		}, 0.5, true, 3, 0.5},
		// Verified agent half a year old, completion 0.8; three verified
		// raters at 1.0 (weight 1) and two anonymous at 0.0 (weight 0.5):
		// feedback 3/(3 + 1) = 0.75;
		// score 0.3·0.8 + 0.4·0.75 + 0.1·0.5 + 0.2·0.5 = 0.24 + 0.3 + 0.05 + 0.1 = 0.69.
		{"formula end to end", ScoreInputs{
			CompletionRate: 0.8,
			Ratings: []Rating{
				rating(raterB, 1, at(1)), rating(raterC, 1, at(2)), rating(raterD, 1, at(3)),
				anon(rating(raterE, 0, at(4))), anon(rating(raterF, 0, at(5))),
			},
			CreatedAt: now.Add(-FullAge / 2), Tier: TierVerified,
		}, 0.69, false, 5, 0.75},
		// Organization agent over a year old, completion 1. B rated 0.0 and
		// the target rated B back an hour later (mutual, weight 0.2); D rated
		// 1.0 from C's IP an hour after C (weight 0.1); C, E and F rated 1.0
		// at full weight. Feedback (0·0.2 + 1 + 0.1 + 1 + 1)/(0.2 + 1 + 0.1 + 1 + 1)
		// = 3.1/3.3 = 31/33; score 0.3 + 0.4·31/33 + 0.1 + 0.2·1 = 0.6 + 12.4/33.
		{"mutual and shared IP discounts", ScoreInputs{
			CompletionRate: 1,
			Ratings: []Rating{
				rating(raterB, 0, at(10)),
				rating(raterC, 1, at(8)),
				with(rating(raterD, 1, at(7)), func(r *Rating) { r.RaterIP = "ip-" + string(raterC) }),
				rating(raterE, 1, at(6)), rating(raterF, 1, at(5)),
			},
			Given: []Rating{{RaterAMID: target, RatedAMID: raterB, RaterTier: TierOrganization,
				RaterCreatedAt: veteran, SessionID: "back", Score: 1, At: at(9)}},
			CreatedAt: now.Add(-2 * FullAge), Tier: TierOrganization,
		}, 0.6 + 12.4/33, false, 5, 31.0 / 33},
		// Four ratings: unrated, shown at 0.5 whatever the formula says.
		{"four ratings unrated", ScoreInputs{
			CompletionRate: 1, Ratings: fiveAnonymous[:4], CreatedAt: veteran, Tier: TierOrganization,
		}, 0.5, true, 4, 1},
		// Five anonymous ratings at 1.0: feedback 2.5/2.5 = 1; completion 1,
		// anonymous agent registered now: 0.3 + 0.4 + 0 + 0 = 0.7.
		{"five ratings rated", ScoreInputs{
			CompletionRate: 1, Ratings: fiveAnonymous, CreatedAt: now, Tier: TierAnonymous,
		}, 0.7, false, 5, 1},
		// Ratings with scores outside 0..1 are not counted: four valid
		// ratings stay unrated.
		{"invalid scores ignored", ScoreInputs{
			CompletionRate: 1,
			Ratings: append(fiveAnonymous[:4:4],
				rating(raterF, 1.1, at(6)), rating(raterF, math.NaN(), at(7)), rating(raterF, -0.1, at(8))),
			CreatedAt: now, Tier: TierAnonymous,
		}, 0.5, true, 4, 1},
		{"no ratings", ScoreInputs{CompletionRate: 0.5, CreatedAt: now, Tier: TierAnonymous}, 0.5, true, 0, 0.5},
		// Completion 5 is clamped to 1: 0.3·1 + 0.4·1 + 0.1·1 + 0.2·1 = 1,
		// and the sum is clamped to 1.
		{"completion above 1 clamped", ScoreInputs{
			CompletionRate: 5, Ratings: fiveAnonymous, CreatedAt: veteran.Add(-FullAge), Tier: TierOrganization,
		}, 1, false, 5, 1},
		// Completion -3 and NaN count as 0: 0 + 0.4·1 + 0 + 0 = 0.4.
		{"completion below 0 clamped", ScoreInputs{
			CompletionRate: -3, Ratings: fiveAnonymous, CreatedAt: now, Tier: TierAnonymous,
		}, 0.4, false, 5, 1},
		{"completion NaN", ScoreInputs{
			CompletionRate: math.NaN(), Ratings: fiveAnonymous, CreatedAt: now, Tier: TierAnonymous,
		}, 0.4, false, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Score(tt.in, now)
			if !near(got.Score, tt.want) {
				t.Errorf("Score = %v, want %v", got.Score, tt.want)
			}
			if got.Score < 0 || got.Score > 1 || got.Computed < 0 || got.Computed > 1 {
				t.Errorf("Score = %v, Computed = %v, want both within 0..1", got.Score, got.Computed)
			}
			if got.Unrated != tt.unrated {
				t.Errorf("Unrated = %v, want %v", got.Unrated, tt.unrated)
			}
			if got.RatingsCount != tt.count {
				t.Errorf("RatingsCount = %d, want %d", got.RatingsCount, tt.count)
			}
			if !near(got.Components.Feedback, tt.feedback) {
				t.Errorf("Components.Feedback = %v, want %v", got.Components.Feedback, tt.feedback)
			}
		})
	}
}

// TestScoreComputedWhileUnrated checks that an unrated agent's formula value
// is still reported: completion 1, four anonymous ratings at 1.0, an
// organization agent over a year old: 0.3 + 0.4 + 0.1 + 0.2 = 1.
func TestScoreComputedWhileUnrated(t *testing.T) {
	in := ScoreInputs{CompletionRate: 1, CreatedAt: now.Add(-2 * FullAge), Tier: TierOrganization}
	for i := range 4 {
		in.Ratings = append(in.Ratings, rating(amid(10+i), 1, now.Add(-time.Hour)))
	}
	got := Score(in, now)
	if got.Score != UnratedScore || !got.Unrated {
		t.Errorf("Score = %v, Unrated = %v, want %v, true", got.Score, got.Unrated, UnratedScore)
	}
	if !near(got.Computed, 1) {
		t.Errorf("Computed = %v, want 1", got.Computed)
	}
	want := Components{Completion: 1, Feedback: 1, Age: 1, TierBonus: 1}
	if got.Components != want {
		t.Errorf("Components = %+v, want %+v", got.Components, want)
	}
}

func TestDetectRapidChange(t *testing.T) {
	tests := []struct {
		name           string
		previous, curr float64
		elapsed        time.Duration
		want           string // "" for no flag
	}{
		{"move of exactly 0.2", 0, 0.2, time.Hour, ""},
		{"increase just over 0.2", 0, 0.2000001, time.Hour, ReasonRapidIncrease},
		{"decrease just over 0.2", 0.2000001, 0, time.Hour, ReasonRapidDecrease},
		{"decrease of exactly 0.2", 0.2, 0, time.Hour, ""},
		{"large increase", 0.5, 0.9, time.Minute, ReasonRapidIncrease},
		{"large decrease", 0.9, 0.4, time.Minute, ReasonRapidDecrease},
		{"no elapsed time", 0.1, 0.9, 0, ReasonRapidIncrease},
		{"exactly 24 h", 0.1, 0.9, 24 * time.Hour, ReasonRapidIncrease},
		{"just over 24 h", 0.1, 0.9, 24*time.Hour + time.Nanosecond, ""},
		{"negative elapsed", 0.1, 0.9, -time.Second, ""},
		{"small move", 0.5, 0.6, time.Hour, ""},
		{"NaN current", 0.5, math.NaN(), time.Hour, ""},
		{"NaN previous", math.NaN(), 0.5, time.Hour, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DetectRapidChange(tt.previous, tt.curr, now.Add(-tt.elapsed), now)
			if tt.want == "" {
				if got != nil {
					t.Fatalf("DetectRapidChange() = %+v, want nil", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("DetectRapidChange() = nil, want %s", tt.want)
			}
			want := Flag{Reason: tt.want, FlaggedAt: now, PreviousScore: tt.previous, CurrentScore: tt.curr}
			if *got != want {
				t.Errorf("DetectRapidChange() = %+v, want %+v", *got, want)
			}
		})
	}
}

// naiveWeight applies the rules of Weight by scanning the whole history.
func naiveWeight(r Rating, history []Rating) float64 {
	w := 1.0
	if r.RaterTier == TierAnonymous {
		w *= AnonymousRaterFactor
	}
	if slices.ContainsFunc(history, func(h Rating) bool { return isMutual(r, h) }) {
		w *= MutualRatingFactor
	}
	if r.RaterIP != "" && slices.ContainsFunc(history, func(h Rating) bool { return sharesIPBefore(r, h) }) {
		w *= SharedIPFactor
	}
	if r.At.Sub(r.RaterCreatedAt) < NewRaterAge {
		w *= NewRaterFactor
	}
	return w
}

// fuzzRaters are the raters fuzzRatings draws from, derived once.
var fuzzRaters = func() []protocol.AMID {
	as := make([]protocol.AMID, 16)
	for i := range as {
		as[i] = amid(1 + i)
	}
	return as
}()

// fuzzRatings builds ratings of target from data, four bytes per rating (at
// most 256 ratings): rater, tier, score and hours before now. Score bytes above 250 give
// values outside 0..1, NaN and infinities.
func fuzzRatings(data []byte, extra float64) (received, given []Rating) {
	tiers := []Tier{TierAnonymous, TierVerified, TierOrganization}
	for i := 0; i+4 <= len(data) && i < 4*256; i += 4 {
		b := data[i : i+4]
		rater := fuzzRaters[b[0]%16]
		var score float64
		switch b[2] {
		case 251:
			score = math.NaN()
		case 252:
			score = math.Inf(1)
		case 253:
			score = math.Inf(-1)
		case 254:
			score = -0.5
		case 255:
			score = extra
		default:
			score = float64(b[2]) / 250
		}
		at := now.Add(-time.Duration(b[3]) * time.Hour)
		r := Rating{
			RaterAMID:      rater,
			RatedAMID:      target,
			RaterTier:      tiers[int(b[1])%len(tiers)],
			RaterCreatedAt: now.Add(-time.Duration(b[1]) * 24 * time.Hour),
			RaterIP:        fmt.Sprint("ip", b[0]%5),
			SessionID:      fmt.Sprint("s", i),
			Score:          score,
			At:             at,
		}
		if b[1]&0x80 != 0 {
			// The target rated this rater back around the same time.
			given = append(given, Rating{RaterAMID: target, RatedAMID: rater,
				SessionID: fmt.Sprint("g", i), Score: 1, At: at.Add(time.Duration(b[3]%48) * time.Hour)})
		}
		received = append(received, r)
	}
	return received, given
}

func FuzzScore(f *testing.F) {
	f.Add([]byte{}, 0.5, int64(0), uint8(0))
	f.Add([]byte{1, 0, 250, 1, 2, 1, 0, 2, 3, 2, 125, 3, 4, 128, 200, 4, 5, 129, 251, 5}, 0.8, int64(86400*100), uint8(1))
	f.Add([]byte{0, 0, 255, 0, 0, 0, 255, 0, 5, 0, 255, 0, 10, 0, 255, 0, 15, 0, 255, 0}, math.NaN(), int64(-5), uint8(2))
	f.Add([]byte{1, 255, 252, 255, 2, 255, 253, 255, 3, 255, 254, 255}, math.Inf(1), int64(1<<40), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, completion float64, ageSeconds int64, tier uint8) {
		received, given := fuzzRatings(data, completion)
		in := ScoreInputs{
			CompletionRate: completion,
			Ratings:        received,
			Given:          given,
			CreatedAt:      now.Add(-time.Duration(ageSeconds) * time.Second),
			Tier:           []Tier{TierAnonymous, TierVerified, TierOrganization, "unknown"}[tier%4],
		}
		got := Score(in, now)
		for name, v := range map[string]float64{
			"Score": got.Score, "Computed": got.Computed,
			"Completion": got.Components.Completion, "Feedback": got.Components.Feedback,
			"Age": got.Components.Age, "TierBonus": got.Components.TierBonus,
		} {
			if math.IsNaN(v) || v < 0 || v > 1 {
				t.Fatalf("%s = %v, want within 0..1", name, v)
			}
		}
		history := append(received[:len(received):len(received)], given...)
		valid := 0
		var sum, weights float64
		for _, r := range received {
			w, _ := Weight(r, history)
			if !(w > 0 && w <= 1) {
				t.Fatalf("Weight() = %v, want within (0, 1]", w)
			}
			if want := naiveWeight(r, history); w != want {
				t.Fatalf("Weight() = %v, want %v from a scan of the whole history", w, want)
			}
			if validScore(r.Score) {
				valid++
				sum += r.Score * w
				weights += w
			}
		}
		if valid > 0 && got.Components.Feedback != clamp01(sum/weights) {
			t.Fatalf("Components.Feedback = %v, want %v", got.Components.Feedback, clamp01(sum/weights))
		}
		if got.RatingsCount != valid {
			t.Fatalf("RatingsCount = %d, want %d", got.RatingsCount, valid)
		}
		if got.Unrated != (valid < MinRatings) {
			t.Fatalf("Unrated = %v with %d ratings", got.Unrated, valid)
		}
		if got.Unrated && got.Score != UnratedScore {
			t.Fatalf("unrated Score = %v, want %v", got.Score, UnratedScore)
		}
	})
}

// BenchmarkScore scores an agent with 1000 ratings from 1000 raters spread
// over 30 days, some sharing IPs and some rated back by the agent.
func BenchmarkScore(b *testing.B) {
	in := ScoreInputs{CompletionRate: 0.9, CreatedAt: veteran, Tier: TierVerified}
	for i := range 1000 {
		rater := amid(100 + i)
		at := now.Add(-time.Duration(i) * 43 * time.Minute)
		in.Ratings = append(in.Ratings, Rating{
			RaterAMID: rater, RatedAMID: target, RaterTier: TierVerified,
			RaterCreatedAt: veteran, RaterIP: fmt.Sprint("ip", i%97),
			SessionID: fmt.Sprint("s", i), Score: float64(i%11) / 10, At: at,
		})
		if i%10 == 0 {
			in.Given = append(in.Given, Rating{RaterAMID: target, RatedAMID: rater,
				SessionID: fmt.Sprint("g", i), Score: 1, At: at.Add(time.Hour)})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		Score(in, now)
	}
}

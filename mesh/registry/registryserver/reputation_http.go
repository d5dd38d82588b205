package registryserver

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Bounds of the reputation endpoints' inputs.
const (
	// MaxSessionIDLength bounds a reported session's ID.
	MaxSessionIDLength = 128
	// MaxIntentLength bounds a reported session's intent.
	MaxIntentLength = 256
	// topTagCount is the number of tags a score lists.
	topTagCount = 10
)

// sessionOutcomes are the outcomes a participant may report.
var sessionOutcomes = []string{
	registry.OutcomeSuccess, registry.OutcomeFailed, registry.OutcomeTimeout,
	registry.OutcomeRejected, registry.OutcomeCancelled,
}

// sessionBody is the body of POST /v1/registry/reputation/session.
type sessionBody struct {
	SessionID     string `json:"session_id"`
	InitiatorAMID string `json:"initiator_amid"`
	ReceiverAMID  string `json:"receiver_amid"`
	Intent        string `json:"intent"`
	Outcome       string `json:"outcome"`
	StartedAt     string `json:"started_at"`
	ReporterAMID  string `json:"reporter_amid"`
	registry.Signed
}

// handleReputationSession records a participant's report of a session
// (POST /v1/registry/reputation/session).
//
// Unlike the original, which took either participant's word for the
// outcome, each participant reports once and a session counts as a success
// for completion rates only when both reported success; it counts as a
// failure as soon as either reported another outcome, and is pending, not
// counted, while only a success report is in. When a session starts to
// count, both participants' reputations are recomputed.
func (s *Server) handleReputationSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var body sessionBody
	if e := decodeBody(w, r, &body); e != nil {
		writeAPIError(w, e)
		return
	}
	startedAt, err := checkSessionBody(&body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	reporter, pub, err := s.reputationAgent(ctx, body.ReporterAMID,
		errorf(http.StatusUnauthorized, "reporter_not_found", "Reporter not found"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.verifySigned(ctx, reporter.AMID, pub, body.Signed); err != nil {
		s.fail(w, r, err)
		return
	}
	if reporter.AMID != body.InitiatorAMID && reporter.AMID != body.ReceiverAMID {
		s.fail(w, r, errorf(http.StatusForbidden, "not_session_participant", "Only session participants can record completion"))
		return
	}
	updates, err := s.store.RecordSessionReport(ctx, SessionReportInput{
		SessionID:     body.SessionID,
		InitiatorAMID: body.InitiatorAMID,
		ReceiverAMID:  body.ReceiverAMID,
		Intent:        body.Intent,
		StartedAt:     startedAt,
		ReporterAMID:  reporter.AMID,
		Outcome:       body.Outcome,
	}, s.now())
	switch {
	case errors.Is(err, ErrNotFound):
		err = errorf(http.StatusNotFound, "agent_not_found", "Session participant not found")
	case errors.Is(err, errSessionParticipantsDiffer):
		err = errorf(http.StatusConflict, "session_mismatch", "Session %s was recorded between other agents", body.SessionID)
	case errors.Is(err, errOutcomeAlreadyReported):
		err = errorf(http.StatusConflict, "outcome_already_reported", "Outcome already reported for this session")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.logReputationUpdates(updates)
	writeJSON(w, http.StatusOK, registry.SessionRecordResponse{Success: true, SessionRecordID: body.SessionID})
}

// checkSessionBody checks the fields of a session report that need no
// store, and returns the session's start time.
func checkSessionBody(b *sessionBody) (time.Time, error) {
	if b.SessionID == "" || len(b.SessionID) > MaxSessionIDLength {
		return time.Time{}, errorf(http.StatusBadRequest, "invalid_session_id",
			"session_id must be 1 to %d characters", MaxSessionIDLength)
	}
	for _, f := range []struct{ name, v string }{{"initiator_amid", b.InitiatorAMID}, {"receiver_amid", b.ReceiverAMID}} {
		if _, err := protocol.ParseAMID(f.v); err != nil {
			return time.Time{}, errorf(http.StatusBadRequest, "invalid_amid", "invalid %s: %v", f.name, err)
		}
	}
	if b.InitiatorAMID == b.ReceiverAMID {
		return time.Time{}, errorf(http.StatusBadRequest, "invalid_session", "initiator_amid and receiver_amid must differ")
	}
	if !slices.Contains(sessionOutcomes, b.Outcome) {
		return time.Time{}, errorf(http.StatusBadRequest, "invalid_outcome",
			"outcome must be one of %s", strings.Join(sessionOutcomes, ", "))
	}
	if len(b.Intent) > MaxIntentLength {
		return time.Time{}, errorf(http.StatusBadRequest, "invalid_intent", "intent is longer than %d bytes", MaxIntentLength)
	}
	t, err := protocol.ParseTimestamp(b.StartedAt)
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, "invalid_timestamp", "invalid started_at: %v", err)
	}
	return t, nil
}

// ratingBody is the body of both rating endpoints. Score is kept raw so
// that any value that is not a number within 0..1, including a missing one
// or one out of float64 range, is refused as invalid_score.
type ratingBody struct {
	TargetAMID string          `json:"target_amid"`
	FromAMID   string          `json:"from_amid"`
	Score      json.RawMessage `json:"score"`
	SessionID  string          `json:"session_id"`
	Tags       []string        `json:"tags"`
	registry.Signed
}

// handleReputation records a rating (POST /v1/registry/reputation, path A).
func (s *Server) handleReputation(w http.ResponseWriter, r *http.Request) {
	if _, err := s.recordRating(w, r); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registry.RatingResponse{Success: true, Message: "Reputation feedback recorded"})
}

// handleReputationFeedback records a rating (POST
// /v1/registry/reputation/feedback, path B). Both paths store the same
// ratings under the same rules, so they no longer overwrite each other's
// score.
func (s *Server) handleReputationFeedback(w http.ResponseWriter, r *http.Request) {
	id, err := s.recordRating(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registry.FeedbackResponse{Success: true, FeedbackID: id})
}

// recordRating checks and stores a rating and returns its id. The rater
// must be registered and sign the request (S3); the session must have been
// reported by one of the two agents; the rater's tier and address come from
// the store and the connection, never from the body.
func (s *Server) recordRating(w http.ResponseWriter, r *http.Request) (string, error) {
	ctx := r.Context()
	var body ratingBody
	if e := decodeBody(w, r, &body); e != nil {
		return "", e
	}
	score, ok := parseRatingScore(body.Score)
	if !ok {
		return "", invalidScoreError()
	}
	rater, pub, err := s.reputationAgent(ctx, body.FromAMID,
		errorf(http.StatusUnauthorized, "sender_not_found", "Sender not found"))
	if err != nil {
		return "", err
	}
	now := s.now()
	tags := uniqueTags(body.Tags)
	if err := ValidateRating(Rating{
		RaterAMID:      protocol.AMID(rater.AMID),
		RatedAMID:      protocol.AMID(body.TargetAMID),
		RaterTier:      rater.Tier,
		RaterCreatedAt: rater.CreatedAt,
		SessionID:      body.SessionID,
		Score:          score,
		Tags:           tags,
		At:             now,
	}); err != nil {
		return "", ratingError(err, tags)
	}
	if len(body.SessionID) > MaxSessionIDLength {
		return "", errorf(http.StatusBadRequest, "invalid_session", "Unknown session: no session %.32s… was recorded", body.SessionID)
	}
	if err := s.verifySigned(ctx, rater.AMID, pub, body.Signed); err != nil {
		return "", err
	}
	id := newReputationID()
	updates, err := s.store.AddRating(ctx, NewRating{
		ID:         id,
		TargetAMID: body.TargetAMID,
		RaterAMID:  rater.AMID,
		ClientIP:   s.clientIP(r),
		SessionID:  body.SessionID,
		Score:      score,
		Tags:       tags,
	}, now)
	switch {
	case errors.Is(err, ErrNotFound):
		return "", errorf(http.StatusNotFound, "target_not_found", "Target agent not found")
	case errors.Is(err, errRaterMissing):
		return "", errorf(http.StatusUnauthorized, "sender_not_found", "Sender not found")
	case errors.Is(err, errRatingSessionInvalid):
		return "", errorf(http.StatusBadRequest, "invalid_session",
			"Unknown session: no session %s was recorded between these agents", body.SessionID)
	case errors.Is(err, ErrExists):
		return "", errorf(http.StatusConflict, "duplicate_feedback", "Feedback already submitted for this session")
	case err != nil:
		return "", err
	}
	s.logReputationUpdates(updates)
	return id, nil
}

// reputationAgent loads a registered agent and its signing key, answering
// notFound if amid is malformed or unknown.
func (s *Server) reputationAgent(ctx context.Context, amid string, notFound *apiError) (*Agent, ed25519.PublicKey, error) {
	if err := checkAMID(amid); err != nil {
		return nil, nil, notFound
	}
	return s.agentWithKey(ctx, amid, notFound)
}

// parseRatingScore reads a rating's score: a JSON number within float64
// range. Whether it is within 0..1 is ValidateRating's to check.
func parseRatingScore(raw json.RawMessage) (float64, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, false
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

func invalidScoreError() *apiError {
	return errorf(http.StatusBadRequest, ErrInvalidScore.Error(), "Score must be between 0.0 and 1.0")
}

// uniqueTags returns tags without repeats, in first-seen order.
func uniqueTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// ratingError converts a ValidateRating error to the answer: the engine's
// error codes with PROTOCOL.md §8.7's texts.
func ratingError(err error, tags []string) error {
	var re *RatingError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case errors.Is(err, ErrInvalidScore):
		return invalidScoreError()
	case errors.Is(err, ErrInvalidTag):
		bad := ""
		for _, t := range tags {
			if !slices.Contains(Tags, t) {
				bad = t
				break
			}
		}
		quoted := make([]string, len(Tags))
		for i, t := range Tags {
			quoted[i] = strconv.Quote(t)
		}
		return errorf(http.StatusBadRequest, ErrInvalidTag.Error(), "Invalid tag: %.64s. Valid tags: [%s]",
			bad, strings.Join(quoted, ", "))
	case errors.Is(err, ErrMissingSession):
		return errorf(http.StatusBadRequest, ErrMissingSession.Error(), "session_id is required")
	}
	return errorf(http.StatusBadRequest, ErrInvalidRating.Error(), "Invalid rating: %s: %s", re.Field, re.Problem)
}

// logReputationUpdates logs the flags raised by reputation updates.
func (s *Server) logReputationUpdates(updates []ReputationUpdate) {
	for _, u := range updates {
		if u.Flag != nil {
			s.log.Warn(u.Flag.Reason, "amid", u.AMID,
				"previous_score", u.Flag.PreviousScore, "current_score", u.Flag.CurrentScore)
		}
	}
}

// flagsOf returns the agent's active flags (rapid reputation changes that
// have not expired), newest first, as lookups show them.
func (s *Server) flagsOf(ctx context.Context, amid string) ([]registry.AgentFlag, error) {
	flags, err := s.store.ActiveFlags(ctx, amid, s.now())
	if err != nil {
		return nil, err
	}
	var out []registry.AgentFlag
	for _, f := range flags {
		prev, cur := f.PreviousScore, f.CurrentScore
		out = append(out, registry.AgentFlag{
			Reason:        f.Reason,
			FlaggedAt:     protocol.FormatServerTimestamp(f.FlaggedAt),
			PreviousScore: &prev,
			CurrentScore:  &cur,
		})
	}
	return out, nil
}

// handleReputationScore answers GET /v1/registry/reputation/score?amid=:
// the agent's reputation computed now, with its terms.
func (s *Server) handleReputationScore(w http.ResponseWriter, r *http.Request) {
	amid, err := queryAMID(r, "missing_amid")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	snap, err := s.store.ReputationSnapshot(r.Context(), amid)
	if err != nil {
		s.fail(w, r, orNotFound(err, errAgentNotFound))
		return
	}
	score, err := s.reputationScore(r.Context(), snap)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, score)
}

// reputationScore describes the reputation computed now from snap.
//
// The score is computed at the time of the request, so its age term is
// current; lookups and search show the score stored at the agent's last
// reputation update.
func (s *Server) reputationScore(ctx context.Context, snap *ReputationSnapshot) (registry.ReputationScore, error) {
	now := s.now()
	a := snap.Agent
	res := Score(snap.Inputs, now)
	flags, err := s.flagsOf(ctx, a.AMID)
	if err != nil {
		return registry.ReputationScore{}, err
	}
	if flags == nil {
		flags = []registry.AgentFlag{}
	}
	status := registry.ReputationRated
	if res.Unrated {
		status = registry.ReputationUnrated
	}
	updated := a.CreatedAt
	if a.ReputationUpdatedAt != nil {
		updated = *a.ReputationUpdatedAt
	}
	return registry.ReputationScore{
		AMID:               a.AMID,
		Score:              res.Score,
		ComputedScore:      res.Computed,
		ReputationStatus:   status,
		RatingsCount:       res.RatingsCount,
		CompletionRate:     res.Components.Completion,
		TotalSessions:      snap.Sessions.Total(),
		SuccessfulSessions: snap.Sessions.Successful,
		PendingSessions:    snap.Sessions.Pending,
		FeedbackCount:      len(snap.Inputs.Ratings),
		AverageFeedback:    res.Components.Feedback,
		Tier:               a.Tier,
		AgeDays:            int(max(0, now.Sub(a.CreatedAt)) / (24 * time.Hour)),
		Tags:               topTags(snap.Inputs.Ratings, topTagCount),
		Flags:              flags,
		LastUpdated:        protocol.FormatServerTimestamp(updated),
	}, nil
}

// handleLeaderboard answers GET
// /v1/registry/reputation/leaderboard?limit=&intent=: the rated agents with
// the highest scores. limit defaults to 20 and is capped at 100. With
// intent, only agents with a counted session of that intent are listed
// (the original ignored it).
func (s *Server) handleLeaderboard(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := queryLimit(q, registry.DefaultLeaderboardLimit, registry.MaxLeaderboardLimit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	intent := q.Get("intent")
	if len(intent) > MaxIntentLength {
		s.fail(w, r, errorf(http.StatusBadRequest, "invalid_intent", "intent is longer than %d bytes", MaxIntentLength))
		return
	}
	ctx := r.Context()
	amids, err := s.store.LeaderboardAMIDs(ctx, limit, intent)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	board := make([]registry.ReputationScore, 0, len(amids))
	for _, amid := range amids {
		snap, err := s.store.ReputationSnapshot(ctx, amid)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		score, err := s.reputationScore(ctx, snap)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if score.ReputationStatus == registry.ReputationRated {
			board = append(board, score)
		}
	}
	// Stored scores chose the agents; the scores computed now order them.
	slices.SortStableFunc(board, func(a, b registry.ReputationScore) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.AMID, b.AMID)
	})
	resp := registry.Leaderboard{Leaderboard: board, Limit: limit}
	if intent != "" {
		resp.IntentFilter = &intent
	}
	writeJSON(w, http.StatusOK, resp)
}

package registry

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Session outcomes an agent reports (POST /v1/registry/reputation/session).
const (
	OutcomeSuccess   = "success"
	OutcomeFailed    = "failed"
	OutcomeTimeout   = "timeout"
	OutcomeRejected  = "rejected"
	OutcomeCancelled = "cancelled"
)

// SessionReport is the body of POST /v1/registry/reputation/session: one
// participant's account of how a session between two agents ended.
//
// Each participant reports once. A session counts towards the participants'
// completion rates as successful only when both reported success, and as
// unsuccessful as soon as either reported another outcome; with a single
// success report it is pending and not counted.
type SessionReport struct {
	SessionID     string `json:"session_id"`
	InitiatorAMID string `json:"initiator_amid"`
	ReceiverAMID  string `json:"receiver_amid"`
	Intent        string `json:"intent"`
	// Outcome is one of the Outcome constants.
	Outcome string `json:"outcome"`
	// StartedAt is when the session started, an RFC 3339 timestamp (see
	// protocol.FormatServerTimestamp).
	StartedAt string `json:"started_at"`
	// ReporterAMID is the participant reporting, who signs the request.
	ReporterAMID string `json:"reporter_amid"`
	Signed
}

// SessionRecordResponse is the answer to a session report.
type SessionRecordResponse struct {
	Success         bool   `json:"success"`
	SessionRecordID string `json:"session_record_id"`
}

// RatingRequest is the body of POST /v1/registry/reputation and of POST
// /v1/registry/reputation/feedback: FromAMID's rating of TargetAMID after
// the session SessionID, which one of them must have reported first.
type RatingRequest struct {
	TargetAMID string `json:"target_amid"`
	FromAMID   string `json:"from_amid"`
	// Score is the feedback, from 0 (worst) to 1 (best).
	Score     float64 `json:"score"`
	SessionID string  `json:"session_id"`
	// Tags are taken from the standard set: fast_response, accurate,
	// professional, reliable, helpful, knowledgeable, slow_response,
	// inaccurate, unhelpful, unreliable.
	Tags []string `json:"tags,omitempty"`
	Signed
}

// RatingResponse is the answer to POST /v1/registry/reputation.
type RatingResponse struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
}

// FeedbackResponse is the answer to POST /v1/registry/reputation/feedback.
type FeedbackResponse struct {
	Success    bool   `json:"success"`
	FeedbackID string `json:"feedback_id"`
}

// TagCount is how many of an agent's ratings carried a tag.
type TagCount struct {
	Tag   string `json:"tag"`
	Count int    `json:"count"`
}

// ReputationScore is an agent's reputation as GET
// /v1/registry/reputation/score reports it.
type ReputationScore struct {
	AMID string `json:"amid"`
	// Score is the reputation shown: 0.5 while the agent is unrated.
	Score float64 `json:"score"`
	// ComputedScore is the formula's value, even while unrated.
	ComputedScore float64 `json:"computed_score"`
	// ReputationStatus is ReputationRated or ReputationUnrated.
	ReputationStatus string `json:"reputation_status"`
	RatingsCount     int    `json:"ratings_count"`
	// CompletionRate is SuccessfulSessions / TotalSessions, or 0.5 when no
	// session counts yet.
	CompletionRate float64 `json:"completion_rate"`
	// TotalSessions counts the sessions that count (both participants
	// reported success, or one reported another outcome).
	TotalSessions      int `json:"total_sessions"`
	SuccessfulSessions int `json:"successful_sessions"`
	// PendingSessions counts sessions only one participant reported, as a
	// success.
	PendingSessions int `json:"pending_sessions"`
	FeedbackCount   int `json:"feedback_count"`
	// AverageFeedback is the ratings' mean score weighted by the
	// anti-gaming rules, 0.5 without ratings.
	AverageFeedback float64 `json:"average_feedback"`
	Tier            Tier    `json:"tier"`
	AgeDays         int     `json:"age_days"`
	// Tags are the ten most frequent tags, most frequent first.
	Tags  []TagCount  `json:"tags"`
	Flags []AgentFlag `json:"flags"`
	// LastUpdated is when the stored score last changed (or the agent
	// registered).
	LastUpdated string `json:"last_updated"`
}

// Leaderboard is the body of GET /v1/registry/reputation/leaderboard.
type Leaderboard struct {
	Leaderboard  []ReputationScore `json:"leaderboard"`
	Limit        int               `json:"limit"`
	IntentFilter *string           `json:"intent_filter"`
}

// Leaderboard limits.
const (
	DefaultLeaderboardLimit = 20
	MaxLeaderboardLimit     = 100
)

// signerAMID returns the AMID of signer if it is a *Signer.
func signerAMID(signer any) string {
	if s, ok := signer.(*Signer); ok && s != nil {
		return string(s.AMID)
	}
	return ""
}

// RecordSession reports how a session ended (POST
// /v1/registry/reputation/session), signed by signer, usually a *Signer. An
// empty ReporterAMID is taken from a *Signer. It returns the session's
// record id.
func (c *Client) RecordSession(ctx context.Context, signer interface{ Sign() Signed }, report SessionReport) (string, error) {
	if report.ReporterAMID == "" {
		report.ReporterAMID = signerAMID(signer)
	}
	report.Signed = signer.Sign()
	var resp SessionRecordResponse
	if err := c.do(ctx, http.MethodPost, "/registry/reputation/session", nil, report, &resp, http.StatusOK); err != nil {
		return "", err
	}
	return resp.SessionRecordID, nil
}

// Rate records a rating (POST /v1/registry/reputation), signed by signer,
// usually a *Signer. An empty FromAMID is taken from a *Signer.
func (c *Client) Rate(ctx context.Context, signer interface{ Sign() Signed }, req RatingRequest) error {
	if req.FromAMID == "" {
		req.FromAMID = signerAMID(signer)
	}
	req.Signed = signer.Sign()
	return c.do(ctx, http.MethodPost, "/registry/reputation", nil, req, &RatingResponse{}, http.StatusOK)
}

// SubmitFeedback records a rating through POST
// /v1/registry/reputation/feedback, signed by signer, usually a *Signer,
// and returns the feedback's id. An empty FromAMID is taken from a *Signer.
func (c *Client) SubmitFeedback(ctx context.Context, signer interface{ Sign() Signed }, req RatingRequest) (string, error) {
	if req.FromAMID == "" {
		req.FromAMID = signerAMID(signer)
	}
	req.Signed = signer.Sign()
	var resp FeedbackResponse
	if err := c.do(ctx, http.MethodPost, "/registry/reputation/feedback", nil, req, &resp, http.StatusOK); err != nil {
		return "", err
	}
	return resp.FeedbackID, nil
}

// ReputationScore returns the reputation of amid (GET
// /v1/registry/reputation/score).
func (c *Client) ReputationScore(ctx context.Context, amid string) (*ReputationScore, error) {
	var resp ReputationScore
	q := url.Values{"amid": {amid}}
	if err := c.do(ctx, http.MethodGet, "/registry/reputation/score", q, nil, &resp, http.StatusOK); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Leaderboard returns the best rated agents, at most limit of them (0 for
// the registry's default), keeping only agents with a counted session of
// intent unless it is empty.
func (c *Client) Leaderboard(ctx context.Context, limit int, intent string) (*Leaderboard, error) {
	q := url.Values{}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if intent != "" {
		q.Set("intent", intent)
	}
	var resp Leaderboard
	if err := c.do(ctx, http.MethodGet, "/registry/reputation/leaderboard", q, nil, &resp, http.StatusOK); err != nil {
		return nil, err
	}
	return &resp, nil
}

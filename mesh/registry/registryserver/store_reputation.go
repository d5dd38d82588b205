package registryserver

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// Errors of the reputation store.
var (
	// errSessionParticipantsDiffer: a report names other participants than
	// the session recorded under its ID.
	errSessionParticipantsDiffer = errors.New("session participants differ from the recorded session")
	// errOutcomeAlreadyReported: the participant reported this session
	// before.
	errOutcomeAlreadyReported = errors.New("outcome already reported")
	// errRatingSessionInvalid: a rating names a session that was not
	// recorded, or one between other agents.
	errRatingSessionInvalid = errors.New("no recorded session between these agents")
	// errRaterMissing: the rater of a rating is not registered.
	errRaterMissing = errors.New("rater not found")
)

// FlagLifetime is how long a rapid reputation change flag stays active.
const FlagLifetime = 24 * time.Hour

// repQuerier is what *sql.DB and *sql.Tx both offer.
type repQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SessionRecord is a session as its participants reported it.
type SessionRecord struct {
	SessionID     string
	InitiatorAMID string
	ReceiverAMID  string
	Intent        string
	StartedAt     time.Time
	// InitiatorOutcome and ReceiverOutcome are each participant's report,
	// nil until it reports.
	InitiatorOutcome *string
	ReceiverOutcome  *string
	// CompletedAt is when the session started to count towards the
	// participants' completion rates.
	CompletedAt *time.Time
}

// Counted reports whether the session counts towards completion rates:
// both participants reported success, or either reported another outcome.
// A session with a single success report is pending: one participant
// alone cannot make a session count as a success.
func (r *SessionRecord) Counted() bool {
	return r.Successful() || failedOutcome(r.InitiatorOutcome) || failedOutcome(r.ReceiverOutcome)
}

// Successful reports whether both participants reported success.
func (r *SessionRecord) Successful() bool {
	return r.InitiatorOutcome != nil && *r.InitiatorOutcome == registry.OutcomeSuccess &&
		r.ReceiverOutcome != nil && *r.ReceiverOutcome == registry.OutcomeSuccess
}

func failedOutcome(o *string) bool { return o != nil && *o != registry.OutcomeSuccess }

// countedSessionSQL is the SQL form of SessionRecord.Counted and
// successfulSessionSQL that of SessionRecord.Successful.
const (
	successfulSessionSQL = `(initiator_outcome = 'success' AND receiver_outcome = 'success')`
	failedSessionSQL     = `((initiator_outcome IS NOT NULL AND initiator_outcome <> 'success')
		OR (receiver_outcome IS NOT NULL AND receiver_outcome <> 'success'))`
	countedSessionSQL = `(` + successfulSessionSQL + ` OR ` + failedSessionSQL + `)`
)

// SessionReportInput is one participant's report of a session.
type SessionReportInput struct {
	SessionID     string
	InitiatorAMID string
	ReceiverAMID  string
	Intent        string
	StartedAt     time.Time
	ReporterAMID  string
	Outcome       string
}

// ReputationUpdate is the result of recomputing one agent's reputation.
type ReputationUpdate struct {
	AMID string
	// Previous is the stored score before the update.
	Previous float64
	Result   Result
	// Flag is set when the update raised a new rapid change flag.
	Flag *Flag
}

// RecordSessionReport stores a participant's report of a session: the
// first report creates the session, each participant reports once. When
// the session starts to count towards completion rates, both participants'
// reputations are recomputed; their updates are returned. Errors:
// ErrNotFound if a participant is not registered, errSessionParticipantsDiffer,
// errOutcomeAlreadyReported.
func (s *Store) RecordSessionReport(ctx context.Context, in SessionReportInput, now time.Time) ([]ReputationUpdate, error) {
	var updates []ReputationUpdate
	err := s.tx(ctx, func(tx *sql.Tx) error {
		updates = nil
		participants := sortedPair(in.InitiatorAMID, in.ReceiverAMID)
		for _, amid := range participants {
			ok, err := lockAgent(ctx, tx, amid)
			if err != nil {
				return err
			}
			if !ok {
				return ErrNotFound
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (session_id, initiator_amid, receiver_amid, intent, started_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id) DO NOTHING`,
			in.SessionID, in.InitiatorAMID, in.ReceiverAMID, in.Intent, millis(in.StartedAt)); err != nil {
			return fmt.Errorf("registry store: insert session: %w", err)
		}
		rec, err := readSession(ctx, tx, in.SessionID)
		if err != nil {
			return err
		}
		if rec.InitiatorAMID != in.InitiatorAMID || rec.ReceiverAMID != in.ReceiverAMID {
			return errSessionParticipantsDiffer
		}
		wasCounted := rec.Counted()
		column, field := "initiator_outcome", &rec.InitiatorOutcome
		if in.ReporterAMID == rec.ReceiverAMID {
			column, field = "receiver_outcome", &rec.ReceiverOutcome
		}
		if *field != nil {
			return errOutcomeAlreadyReported
		}
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET `+column+` = $2 WHERE session_id = $1 AND `+column+` IS NULL`,
			in.SessionID, in.Outcome)
		if err != nil {
			return fmt.Errorf("registry store: record session outcome: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return errOutcomeAlreadyReported
		}
		outcome := in.Outcome
		*field = &outcome
		if wasCounted || !rec.Counted() {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET completed_at = $2 WHERE session_id = $1`,
			in.SessionID, millis(now)); err != nil {
			return fmt.Errorf("registry store: complete session: %w", err)
		}
		updates, err = appendRecomputed(ctx, tx, now, updates, participants[:]...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return updates, nil
}

func readSession(ctx context.Context, q repQuerier, id string) (*SessionRecord, error) {
	var (
		rec       SessionRecord
		started   int64
		ini, rcv  sql.NullString
		completed sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT session_id, initiator_amid, receiver_amid, intent, started_at,
		initiator_outcome, receiver_outcome, completed_at FROM sessions WHERE session_id = $1`, id).
		Scan(&rec.SessionID, &rec.InitiatorAMID, &rec.ReceiverAMID, &rec.Intent, &started, &ini, &rcv, &completed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("registry store: read session: %w", err)
	}
	rec.StartedAt = fromMillis(started)
	if ini.Valid {
		rec.InitiatorOutcome = &ini.String
	}
	if rcv.Valid {
		rec.ReceiverOutcome = &rcv.String
	}
	rec.CompletedAt = nullMillis(completed)
	return &rec, nil
}

// NewRating is a rating to store. The rater's tier and registration time
// are read from the store, and ClientIP is stored only as a keyed hash.
type NewRating struct {
	ID         string
	TargetAMID string
	RaterAMID  string
	ClientIP   string
	SessionID  string
	Score      float64
	Tags       []string
}

// AddRating stores a rating and recomputes the target's reputation (and the
// rater's, when the target rated the rater within the mutual window, which
// changes the weight of that rating). Errors: ErrNotFound if the target is
// not registered, errRaterMissing, errRatingSessionInvalid if the session
// was not recorded between exactly these two agents, ErrExists if the rater
// rated this session already.
func (s *Store) AddRating(ctx context.Context, in NewRating, now time.Time) ([]ReputationUpdate, error) {
	tags := in.Tags
	if tags == nil {
		tags = []string{}
	}
	tagsJSON, err := json.Marshal(tags)
	if err != nil {
		return nil, err
	}
	var updates []ReputationUpdate
	err = s.tx(ctx, func(tx *sql.Tx) error {
		updates = nil
		// Lock both agents, in a fixed order, so that concurrent ratings
		// of one agent are recomputed one after the other.
		for _, amid := range sortedPair(in.RaterAMID, in.TargetAMID) {
			ok, err := lockAgent(ctx, tx, amid)
			if err != nil {
				return err
			}
			if !ok && amid == in.TargetAMID {
				return ErrNotFound
			}
			if !ok {
				return errRaterMissing
			}
		}
		rec, err := readSession(ctx, tx, in.SessionID)
		if errors.Is(err, ErrNotFound) {
			return errRatingSessionInvalid
		}
		if err != nil {
			return err
		}
		if sortedPair(rec.InitiatorAMID, rec.ReceiverAMID) != sortedPair(in.RaterAMID, in.TargetAMID) {
			return errRatingSessionInvalid
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ratings WHERE rater_amid = $1 AND session_id = $2`,
			in.RaterAMID, in.SessionID).Scan(&n); err != nil {
			return fmt.Errorf("registry store: read ratings: %w", err)
		}
		if n > 0 {
			return ErrExists
		}
		rater, err := scanAgent(tx.QueryRowContext(ctx, `SELECT `+agentColumns+` FROM agents WHERE amid = $1`, in.RaterAMID))
		if err != nil {
			return fmt.Errorf("registry store: read rater: %w", err)
		}
		ipHash, err := raterIPHash(ctx, tx, in.ClientIP)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO ratings (id, target_amid, rater_amid, rater_tier, rater_created_at,
			rater_ip_hash, session_id, score, tags, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			in.ID, in.TargetAMID, in.RaterAMID, string(rater.Tier), millis(rater.CreatedAt),
			ipHash, in.SessionID, in.Score, string(tagsJSON), millis(now))
		if isUniqueViolation(err) {
			return ErrExists
		}
		if err != nil {
			return fmt.Errorf("registry store: insert rating: %w", err)
		}
		if updates, err = appendRecomputed(ctx, tx, now, updates, in.TargetAMID); err != nil {
			return err
		}
		// The rating makes the target's recent ratings of the rater mutual.
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM ratings
			WHERE target_amid = $1 AND rater_amid = $2 AND created_at >= $3`,
			in.RaterAMID, in.TargetAMID, millis(now.Add(-MutualWindow))).Scan(&n); err != nil {
			return fmt.Errorf("registry store: read ratings: %w", err)
		}
		if n == 0 {
			return nil
		}
		updates, err = appendRecomputed(ctx, tx, now, updates, in.RaterAMID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return updates, nil
}

// sortedPair returns a and b in ascending order.
func sortedPair(a, b string) [2]string {
	if b < a {
		return [2]string{b, a}
	}
	return [2]string{a, b}
}

// lockAgent takes the row lock of agent amid for the rest of tx (on SQLite
// the transaction holds the database's write lock already), and reports
// whether the agent exists. The statement changes nothing.
func lockAgent(ctx context.Context, tx *sql.Tx, amid string) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE agents SET status = status WHERE amid = $1`, amid)
	if err != nil {
		return false, fmt.Errorf("registry store: lock agent: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// ratingIPKeyName names the HMAC key of rater address hashes in
// reputation_settings.
const ratingIPKeyName = "rater_ip_hmac_key"

// raterIPHash returns the stored form of a rater's address: HMAC-SHA256
// under a random key kept in the database, so that every registry process
// on the database agrees and the hash does not reveal the address, as 32
// hex digits. The key is created by the first rating.
func raterIPHash(ctx context.Context, tx *sql.Tx, ip string) (string, error) {
	read := func() (string, error) {
		var v string
		err := tx.QueryRowContext(ctx, `SELECT value FROM reputation_settings WHERE name = $1`, ratingIPKeyName).Scan(&v)
		return v, err
	}
	v, err := read()
	if errors.Is(err, sql.ErrNoRows) {
		var k [32]byte
		rand.Read(k[:])
		if _, err := tx.ExecContext(ctx, `INSERT INTO reputation_settings (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO NOTHING`, ratingIPKeyName, hex.EncodeToString(k[:])); err != nil {
			return "", fmt.Errorf("registry store: create rating key: %w", err)
		}
		v, err = read()
	}
	if err != nil {
		return "", fmt.Errorf("registry store: read rating key: %w", err)
	}
	key, err := hex.DecodeString(v)
	if err != nil || len(key) == 0 {
		return "", fmt.Errorf("registry store: rating key is not hex")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ip))
	return hex.EncodeToString(mac.Sum(nil))[:32], nil
}

// SessionCounts are an agent's sessions by state.
type SessionCounts struct {
	Successful   int
	Unsuccessful int
	// Pending sessions have a single report, of success.
	Pending int
}

// Total is the number of sessions that count.
func (c SessionCounts) Total() int { return c.Successful + c.Unsuccessful }

// CompletionRate is Successful / Total, or 0.5 when no session counts.
func (c SessionCounts) CompletionRate() float64 {
	if c.Total() == 0 {
		return 0.5
	}
	return float64(c.Successful) / float64(c.Total())
}

// ReputationSnapshot is everything the reputation of an agent is computed
// from.
type ReputationSnapshot struct {
	Agent    *Agent
	Sessions SessionCounts
	Inputs   ScoreInputs
}

// ReputationSnapshot reads what the reputation of amid is computed from, or
// ErrNotFound.
func (s *Store) ReputationSnapshot(ctx context.Context, amid string) (*ReputationSnapshot, error) {
	return readSnapshot(ctx, s.db, amid)
}

func readSnapshot(ctx context.Context, q repQuerier, amid string) (*ReputationSnapshot, error) {
	a, err := scanAgent(q.QueryRowContext(ctx, `SELECT `+agentColumns+` FROM agents WHERE amid = $1`, amid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("registry store: read agent: %w", err)
	}
	snap := &ReputationSnapshot{Agent: a}
	var total int
	if err := q.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(CASE WHEN `+successfulSessionSQL+` THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN `+failedSessionSQL+` THEN 1 ELSE 0 END), 0),
			COUNT(*)
		FROM sessions WHERE initiator_amid = $1 OR receiver_amid = $1`, amid).
		Scan(&snap.Sessions.Successful, &snap.Sessions.Unsuccessful, &total); err != nil {
		return nil, fmt.Errorf("registry store: count sessions: %w", err)
	}
	snap.Sessions.Pending = total - snap.Sessions.Total()
	received, err := readRatings(ctx, q, `target_amid`, amid)
	if err != nil {
		return nil, err
	}
	given, err := readRatings(ctx, q, `rater_amid`, amid)
	if err != nil {
		return nil, err
	}
	snap.Inputs = ScoreInputs{
		CompletionRate: snap.Sessions.CompletionRate(),
		Ratings:        received,
		Given:          given,
		CreatedAt:      a.CreatedAt,
		Tier:           a.Tier,
	}
	return snap, nil
}

// readRatings returns the ratings whose column (target_amid or rater_amid)
// is amid.
func readRatings(ctx context.Context, q repQuerier, column, amid string) ([]Rating, error) {
	rows, err := q.QueryContext(ctx, `SELECT rater_amid, target_amid, rater_tier, rater_created_at, rater_ip_hash,
		session_id, score, tags, created_at FROM ratings WHERE `+column+` = $1 ORDER BY created_at, id`, amid)
	if err != nil {
		return nil, fmt.Errorf("registry store: read ratings: %w", err)
	}
	defer rows.Close()
	var out []Rating
	for rows.Next() {
		var (
			r                Rating
			rater, target    string
			tier, tags       string
			raterCreated, at int64
		)
		if err := rows.Scan(&rater, &target, &tier, &raterCreated, &r.RaterIP, &r.SessionID, &r.Score, &tags, &at); err != nil {
			return nil, fmt.Errorf("registry store: read rating: %w", err)
		}
		if err := json.Unmarshal([]byte(tags), &r.Tags); err != nil {
			return nil, fmt.Errorf("registry store: tags of a rating: %w", err)
		}
		r.RaterAMID, r.RatedAMID = protocol.AMID(rater), protocol.AMID(target)
		r.RaterTier = Tier(tier)
		r.RaterCreatedAt, r.At = fromMillis(raterCreated), fromMillis(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry store: read ratings: %w", err)
	}
	return out, nil
}

// appendRecomputed recomputes the reputation of each of amids, in order,
// and appends the updates to updates.
func appendRecomputed(ctx context.Context, tx *sql.Tx, now time.Time, updates []ReputationUpdate, amids ...string) ([]ReputationUpdate, error) {
	for _, amid := range amids {
		u, err := recomputeReputation(ctx, tx, amid, now)
		if err != nil {
			return updates, err
		}
		updates = append(updates, *u)
	}
	return updates, nil
}

// recomputeReputation recomputes the reputation of amid, whose row tx has
// locked, and stores it: the score and ratings count on the agent, an entry
// in its history and, when the score moved by more than
// RapidChangeThreshold from the oldest entry of the last RapidChangeWindow
// (or from the stored score if there is none), a flag.
//
// Only rated agents are flagged: while an agent has fewer than MinRatings
// ratings its shown score stays at UnratedScore and a single rating moves
// the computed value a long way, so a flag then would let one rater brand
// any new agent.
//
// While a flag of the same reason is active, a new detection updates its
// current score instead of adding another flag.
func recomputeReputation(ctx context.Context, tx *sql.Tx, amid string, now time.Time) (*ReputationUpdate, error) {
	snap, err := readSnapshot(ctx, tx, amid)
	if err != nil {
		return nil, err
	}
	res := Score(snap.Inputs, now)
	u := &ReputationUpdate{AMID: amid, Previous: snap.Agent.ReputationScore, Result: res}

	windowStart := millis(now.Add(-RapidChangeWindow))
	if _, err := tx.ExecContext(ctx, `DELETE FROM reputation_history WHERE amid = $1 AND recorded_at < $2`,
		amid, windowStart); err != nil {
		return nil, fmt.Errorf("registry store: prune reputation history: %w", err)
	}
	previous, previousAt := snap.Agent.ReputationScore, now
	var (
		oldScore float64
		oldAt    int64
	)
	err = tx.QueryRowContext(ctx, `SELECT score, recorded_at FROM reputation_history
		WHERE amid = $1 AND recorded_at >= $2 ORDER BY recorded_at, seq LIMIT 1`, amid, windowStart).Scan(&oldScore, &oldAt)
	switch {
	case err == nil:
		previous, previousAt = oldScore, fromMillis(oldAt)
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("registry store: read reputation history: %w", err)
	}

	if _, err := tx.ExecContext(ctx, `UPDATE agents SET reputation_score = $2, ratings_count = $3,
		reputation_updated_at = $4, updated_at = $4 WHERE amid = $1`,
		amid, res.Computed, res.RatingsCount, millis(now)); err != nil {
		return nil, fmt.Errorf("registry store: update reputation: %w", err)
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM reputation_history WHERE amid = $1`,
		amid).Scan(&seq); err != nil {
		return nil, fmt.Errorf("registry store: read reputation history: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO reputation_history (amid, score, recorded_at, seq) VALUES ($1, $2, $3, $4)`,
		amid, res.Computed, millis(now), seq+1); err != nil {
		return nil, fmt.Errorf("registry store: record reputation history: %w", err)
	}

	if res.Unrated {
		return u, nil
	}
	flag := DetectRapidChange(previous, res.Computed, previousAt, now)
	if flag == nil {
		return u, nil
	}
	var id string
	err = tx.QueryRowContext(ctx, `SELECT id FROM agent_flags WHERE amid = $1 AND reason = $2 AND expires_at > $3
		ORDER BY flagged_at DESC, id DESC LIMIT 1`, amid, flag.Reason, millis(now)).Scan(&id)
	switch {
	case err == nil:
		if _, err := tx.ExecContext(ctx, `UPDATE agent_flags SET current_score = $2 WHERE id = $1`, id, flag.CurrentScore); err != nil {
			return nil, fmt.Errorf("registry store: update flag: %w", err)
		}
		return u, nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("registry store: read flags: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO agent_flags (id, amid, reason, flagged_at, previous_score, current_score, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, newReputationID(), amid, flag.Reason, millis(flag.FlaggedAt),
		flag.PreviousScore, flag.CurrentScore, millis(flag.FlaggedAt.Add(FlagLifetime))); err != nil {
		return nil, fmt.Errorf("registry store: insert flag: %w", err)
	}
	u.Flag = flag
	return u, nil
}

// ActiveFlags returns the flags of amid that have not expired at now,
// newest first.
func (s *Store) ActiveFlags(ctx context.Context, amid string, now time.Time) ([]Flag, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT reason, flagged_at, previous_score, current_score FROM agent_flags
		WHERE amid = $1 AND expires_at > $2 ORDER BY flagged_at DESC, id DESC`, amid, millis(now))
	if err != nil {
		return nil, fmt.Errorf("registry store: read flags: %w", err)
	}
	defer rows.Close()
	var out []Flag
	for rows.Next() {
		var (
			f         Flag
			at        int64
			prev, cur sql.NullFloat64
		)
		if err := rows.Scan(&f.Reason, &at, &prev, &cur); err != nil {
			return nil, fmt.Errorf("registry store: read flag: %w", err)
		}
		f.FlaggedAt = fromMillis(at)
		f.PreviousScore, f.CurrentScore = prev.Float64, cur.Float64
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry store: read flags: %w", err)
	}
	return out, nil
}

// LeaderboardAMIDs returns up to limit rated agents (at least MinRatings
// ratings) by stored score, highest first. A non-empty intent keeps agents
// with a counted session of that intent.
func (s *Store) LeaderboardAMIDs(ctx context.Context, limit int, intent string) ([]string, error) {
	query := `SELECT amid FROM agents a WHERE ratings_count >= $1`
	args := []any{MinRatings, limit}
	if intent != "" {
		query += ` AND EXISTS (SELECT 1 FROM sessions s
			WHERE (s.initiator_amid = a.amid OR s.receiver_amid = a.amid) AND s.intent = $3 AND ` + countedSessionSQL + `)`
		args = append(args, intent)
	}
	query += ` ORDER BY reputation_score DESC, amid LIMIT $2`
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("registry store: leaderboard: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var amid string
		if err := rows.Scan(&amid); err != nil {
			return nil, fmt.Errorf("registry store: leaderboard: %w", err)
		}
		out = append(out, amid)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry store: leaderboard: %w", err)
	}
	return out, nil
}

// topTags counts the tags of ratings and returns the n most frequent, most
// frequent first, ties by name.
func topTags(ratings []Rating, n int) []registry.TagCount {
	counts := map[string]int{}
	for _, r := range ratings {
		for _, t := range r.Tags {
			counts[t]++
		}
	}
	out := make([]registry.TagCount, 0, len(counts))
	for t, c := range counts {
		out = append(out, registry.TagCount{Tag: t, Count: c})
	}
	slices.SortFunc(out, func(a, b registry.TagCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Tag, b.Tag)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// newReputationID returns a random UUID (version 4) for a rating or flag.
func newReputationID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

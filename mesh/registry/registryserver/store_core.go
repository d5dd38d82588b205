package registryserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// shownScoreSQL is the reputation score lookups show, as SQL over the
// agents table aliased "a": the stored score once the agent has MinRatings
// ratings, UnratedScore before.
var shownScoreSQL = fmt.Sprintf(`(CASE WHEN a.ratings_count >= %d THEN a.reputation_score ELSE %s END)`,
	MinRatings, strconv.FormatFloat(UnratedScore, 'f', -1, 64))

// ratedSQL is 1 for an agent with MinRatings ratings or more, else 0.
var ratedSQL = fmt.Sprintf(`(CASE WHEN a.ratings_count >= %d THEN 1 ELSE 0 END)`, MinRatings)

// prefixedAgentColumns is agentColumns qualified by the alias "a", for
// queries that join other tables.
var prefixedAgentColumns = func() string {
	cols := strings.Split(agentColumns, ",")
	for i, c := range cols {
		cols[i] = "a." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}()

// AgentListing is an agent as lookups and searches describe it: its row,
// the name of its organization and, for a revoked agent, when it was
// revoked.
type AgentListing struct {
	Agent
	// Organization is the name of the agent's organization, if it has one.
	Organization *string
	// RevokedAt is when the agent was revoked; nil if it was not.
	RevokedAt *time.Time
}

// scanListing reads the agent columns followed by the organization name and
// the revocation time.
func scanListing(row rowScanner, extra ...any) (*AgentListing, error) {
	var (
		org     sql.NullString
		revoked sql.NullInt64
	)
	var l AgentListing
	a, err := scanAgent(scanInto(row, append([]any{&org, &revoked}, extra...)))
	if err != nil {
		return nil, err
	}
	l.Agent = *a
	if org.Valid {
		l.Organization = &org.String
	}
	l.RevokedAt = nullMillis(revoked)
	return &l, nil
}

// scanInto adapts a row so that scanAgent's Scan call also fills the
// destinations that follow the agent columns.
func scanInto(row rowScanner, tail []any) rowScanner {
	return scanFunc(func(dest ...any) error { return row.Scan(append(dest, tail...)...) })
}

type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// LookupAgent returns the agent amid with its organization's name and its
// revocation time, or ErrNotFound.
func (s *Store) LookupAgent(ctx context.Context, amid string) (*AgentListing, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+prefixedAgentColumns+`, o.name, r.revoked_at
		FROM agents a
		LEFT JOIN organizations o ON o.id = a.organization_id
		LEFT JOIN revocations r ON r.amid = a.amid
		WHERE a.amid = $1`, amid)
	l, err := scanListing(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("registry store: look up agent: %w", err)
	}
	return l, nil
}

// AgentExists reports whether the AMID amid is registered.
func (s *Store) AgentExists(ctx context.Context, amid string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM agents WHERE amid = $1`, amid).Scan(&n); err != nil {
		return false, fmt.Errorf("registry store: check agent: %w", err)
	}
	return n > 0, nil
}

// AgentFilter selects agents for SearchAgents. Limit must be positive.
type AgentFilter struct {
	// Capability is the capability the agent must declare, exactly.
	Capability string
	// MaxTierLevel keeps agents whose tier level (registry.Tier.Level) is
	// at most this; 0 keeps all.
	MaxTierLevel int
	// MinScore keeps agents whose shown score is at least this.
	MinScore float64
	// Status keeps agents with this presence status; "" keeps all.
	Status string
	Limit  int
	Offset int
}

// SearchAgents returns one page of the unrevoked agents that match f, rated
// agents first, then by shown score (highest first), last seen (latest
// first) and AMID, and the number of matching agents in all pages.
func (s *Store) SearchAgents(ctx context.Context, f AgentFilter) ([]*AgentListing, int, error) {
	if f.Limit < 1 || f.Offset < 0 {
		return nil, 0, fmt.Errorf("registry store: search: bad page (limit %d, offset %d)", f.Limit, f.Offset)
	}
	where := []string{`NOT EXISTS (SELECT 1 FROM revocations r WHERE r.amid = a.amid)`}
	args := []any{f.Capability}
	if f.MaxTierLevel > 0 {
		var tiers []string
		for _, t := range []registry.Tier{registry.TierVerified, registry.TierOrganization, registry.TierAnonymous} {
			if t.Level() <= f.MaxTierLevel {
				args = append(args, string(t))
				tiers = append(tiers, "$"+strconv.Itoa(len(args)))
			}
		}
		if len(tiers) == 0 {
			return []*AgentListing{}, 0, nil
		}
		where = append(where, `a.tier IN (`+strings.Join(tiers, ", ")+`)`)
	}
	if f.MinScore > 0 {
		args = append(args, f.MinScore)
		where = append(where, shownScoreSQL+` >= $`+strconv.Itoa(len(args)))
	}
	if f.Status != "" {
		args = append(args, f.Status)
		where = append(where, `a.status = $`+strconv.Itoa(len(args)))
	}
	match := ` FROM agents a JOIN agent_capabilities c ON c.amid = a.amid AND c.capability = $1`
	cond := ` WHERE ` + strings.Join(where, " AND ")
	n := len(args)
	pageArgs := append(args[:n:n], f.Limit, f.Offset)
	rows, err := s.db.QueryContext(ctx, `SELECT `+prefixedAgentColumns+`, o.name, NULL, COUNT(*) OVER ()`+
		match+` LEFT JOIN organizations o ON o.id = a.organization_id`+cond+`
		ORDER BY `+ratedSQL+` DESC, `+shownScoreSQL+` DESC, a.last_seen DESC, a.amid ASC
		LIMIT $`+strconv.Itoa(n+1)+` OFFSET $`+strconv.Itoa(n+2), pageArgs...)
	if err != nil {
		return nil, 0, fmt.Errorf("registry store: search: %w", err)
	}
	defer rows.Close()
	list := []*AgentListing{}
	total := 0
	for rows.Next() {
		l, err := scanListing(rows, &total)
		if err != nil {
			return nil, 0, fmt.Errorf("registry store: search: %w", err)
		}
		list = append(list, l)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("registry store: search: %w", err)
	}
	if len(list) == 0 && f.Offset > 0 {
		// A page past the end has no rows to carry the total.
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*)`+match+cond, args...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("registry store: search count: %w", err)
		}
	}
	return list, total, nil
}

// UpdateAgentStatus sets the agent's presence status and marks it seen at
// now. It returns ErrNotFound for an unknown agent.
func (s *Store) UpdateAgentStatus(ctx context.Context, amid, status string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE agents SET status = $1, last_seen = $2, updated_at = $2 WHERE amid = $3`,
		status, millis(now), amid)
	if err != nil {
		return fmt.Errorf("registry store: update status: %w", err)
	}
	return requireOneRow(res)
}

// UpdateAgentCapabilities replaces the agent's capabilities. It returns
// ErrNotFound for an unknown agent.
func (s *Store) UpdateAgentCapabilities(ctx context.Context, amid string, caps []string, now time.Time) error {
	if caps == nil {
		caps = []string{}
	}
	capsJSON, err := json.Marshal(caps)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET capabilities = $1, updated_at = $2 WHERE amid = $3`,
			string(capsJSON), millis(now), amid)
		if err != nil {
			return fmt.Errorf("registry store: update capabilities: %w", err)
		}
		if err := requireOneRow(res); err != nil {
			return err
		}
		return replaceCapabilities(ctx, tx, amid, caps)
	})
}

// UpdateAgentExchangeKey replaces the agent's X25519 exchange key with key,
// in its stored (prefixed) form; lookups, DID documents and prekey bundles
// read it from there. It returns ErrNotFound for an unknown agent.
func (s *Store) UpdateAgentExchangeKey(ctx context.Context, amid, key string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE agents SET exchange_public_key = $1, updated_at = $2 WHERE amid = $3`,
		key, millis(now), amid)
	if err != nil {
		return fmt.Errorf("registry store: update exchange key: %w", err)
	}
	return requireOneRow(res)
}

// DeleteUnusedAgent removes an agent that was just inserted, with its
// capabilities, when its registration could not be completed.
func (s *Store) DeleteUnusedAgent(ctx context.Context, amid string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM agent_capabilities WHERE amid = $1`, amid); err != nil {
			return fmt.Errorf("registry store: delete capabilities: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM agents WHERE amid = $1`, amid); err != nil {
			return fmt.Errorf("registry store: delete agent: %w", err)
		}
		return nil
	})
}

func requireOneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("registry store: rows affected: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// AgentCounts summarises the registered agents.
type AgentCounts struct {
	Total    int
	Online   int
	ByTier   map[string]int
	ByStatus map[string]int
	// AverageScore is the mean of the scores lookups show (0 without
	// agents).
	AverageScore float64
}

// CountAgents counts the registered agents by tier and by status.
func (s *Store) CountAgents(ctx context.Context) (*AgentCounts, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT a.tier, a.status, COUNT(*), SUM(`+shownScoreSQL+`)
		FROM agents a GROUP BY a.tier, a.status`)
	if err != nil {
		return nil, fmt.Errorf("registry store: count agents: %w", err)
	}
	defer rows.Close()
	c := &AgentCounts{ByTier: map[string]int{}, ByStatus: map[string]int{}}
	for _, t := range []registry.Tier{registry.TierAnonymous, registry.TierVerified, registry.TierOrganization} {
		c.ByTier[string(t)] = 0
	}
	for _, st := range presenceValues {
		c.ByStatus[st] = 0
	}
	var sum float64
	for rows.Next() {
		var (
			tier, status string
			n            int
			scores       float64
		)
		if err := rows.Scan(&tier, &status, &n, &scores); err != nil {
			return nil, fmt.Errorf("registry store: count agents: %w", err)
		}
		c.Total += n
		c.ByTier[tier] += n
		c.ByStatus[status] += n
		sum += scores
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry store: count agents: %w", err)
	}
	c.Online = c.ByStatus["online"]
	if c.Total > 0 {
		c.AverageScore = sum / float64(c.Total)
	}
	return c, nil
}

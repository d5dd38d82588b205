package registryserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// ErrNotFound is returned by store reads for a row that does not exist.
var ErrNotFound = errors.New("not found")

// Agent is a registered agent as the store keeps it.
type Agent struct {
	AMID              string
	SigningPublicKey  string
	ExchangePublicKey string
	Tier              registry.Tier
	DisplayName       *string
	OrganizationID    *string
	Capabilities      []string
	RelayEndpoint     string
	DirectEndpoint    *string
	Status            string
	// ReputationScore is the formula's value; lookups show 0.5 while
	// RatingsCount is below MinRatings.
	ReputationScore     float64
	RatingsCount        int
	ReputationUpdatedAt *time.Time
	LastSeen            time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// agentColumns lists the columns scanAgent reads, in its order.
const agentColumns = `amid, signing_public_key, exchange_public_key, tier, display_name,
	organization_id, capabilities, relay_endpoint, direct_endpoint, status,
	reputation_score, ratings_count, reputation_updated_at, last_seen, created_at, updated_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanAgent(row rowScanner) (*Agent, error) {
	var (
		a                          Agent
		tier, caps                 string
		display, org, direct       sql.NullString
		repUpdated                 sql.NullInt64
		lastSeen, created, updated int64
	)
	if err := row.Scan(&a.AMID, &a.SigningPublicKey, &a.ExchangePublicKey, &tier, &display,
		&org, &caps, &a.RelayEndpoint, &direct, &a.Status,
		&a.ReputationScore, &a.RatingsCount, &repUpdated, &lastSeen, &created, &updated); err != nil {
		return nil, err
	}
	a.Tier = registry.Tier(tier)
	if display.Valid {
		a.DisplayName = &display.String
	}
	if org.Valid {
		a.OrganizationID = &org.String
	}
	if direct.Valid {
		a.DirectEndpoint = &direct.String
	}
	if err := json.Unmarshal([]byte(caps), &a.Capabilities); err != nil {
		return nil, fmt.Errorf("capabilities of %s: %w", a.AMID, err)
	}
	if a.Capabilities == nil {
		a.Capabilities = []string{}
	}
	a.ReputationUpdatedAt = nullMillis(repUpdated)
	a.LastSeen, a.CreatedAt, a.UpdatedAt = fromMillis(lastSeen), fromMillis(created), fromMillis(updated)
	return &a, nil
}

// Agent returns the agent amid, or ErrNotFound.
func (s *Store) Agent(ctx context.Context, amid string) (*Agent, error) {
	a, err := scanAgent(s.db.QueryRowContext(ctx, `SELECT `+agentColumns+` FROM agents WHERE amid = $1`, amid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("registry store: read agent: %w", err)
	}
	return a, nil
}

// signatureSweepEvery is how often RememberSignature deletes expired
// records.
const signatureSweepEvery = 30 * time.Second

// RememberSignature records that amid used signature, to be refused until
// expires. It reports false if the signature was already recorded (a
// replay). Expired records are deleted on the way.
func (s *Store) RememberSignature(ctx context.Context, amid, signature string, expires, now time.Time) (fresh bool, err error) {
	// Expired records are swept at most every signatureSweepEvery: a
	// record kept a little past its expiry refuses only signatures whose
	// timestamps are stale anyway.
	if last := s.sigSweep.Load(); millis(now)-last >= signatureSweepEvery.Milliseconds() && s.sigSweep.CompareAndSwap(last, millis(now)) {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM seen_signatures WHERE expires_at < $1`, millis(now)); err != nil {
			return false, fmt.Errorf("registry store: expire signatures: %w", err)
		}
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO seen_signatures (signature, amid, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (signature) DO NOTHING`, signature, amid, millis(expires))
	if err != nil {
		return false, fmt.Errorf("registry store: remember signature: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// ErrExists is returned when inserting a row whose key is taken.
var ErrExists = errors.New("already exists")

// InsertAgent stores a new agent and its capabilities. It returns ErrExists
// if the AMID is registered already.
func (s *Store) InsertAgent(ctx context.Context, a *Agent) error {
	caps := a.Capabilities
	if caps == nil {
		caps = []string{}
	}
	capsJSON, err := json.Marshal(caps)
	if err != nil {
		return err
	}
	var repUpdated sql.NullInt64
	if a.ReputationUpdatedAt != nil {
		repUpdated = sql.NullInt64{Int64: millis(*a.ReputationUpdatedAt), Valid: true}
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO agents (`+agentColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			a.AMID, a.SigningPublicKey, a.ExchangePublicKey, string(a.Tier), a.DisplayName,
			a.OrganizationID, string(capsJSON), a.RelayEndpoint, a.DirectEndpoint, a.Status,
			a.ReputationScore, a.RatingsCount, repUpdated, millis(a.LastSeen), millis(a.CreatedAt), millis(a.UpdatedAt))
		if isUniqueViolation(err) {
			return ErrExists
		}
		if err != nil {
			return fmt.Errorf("registry store: insert agent: %w", err)
		}
		return replaceCapabilities(ctx, tx, a.AMID, caps)
	})
}

// replaceCapabilities makes the search index of amid hold exactly caps.
func replaceCapabilities(ctx context.Context, tx *sql.Tx, amid string, caps []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM agent_capabilities WHERE amid = $1`, amid); err != nil {
		return fmt.Errorf("registry store: clear capabilities: %w", err)
	}
	for _, c := range caps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO agent_capabilities (amid, capability) VALUES ($1, $2)
			ON CONFLICT (amid, capability) DO NOTHING`, amid, c); err != nil {
			return fmt.Errorf("registry store: index capability: %w", err)
		}
	}
	return nil
}

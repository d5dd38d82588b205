package registryserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OAuthState is an authorization in progress: the agent that asked, the
// provider its owner signs in with, and the PKCE verifier of the request.
type OAuthState struct {
	State     string
	AMID      string
	Provider  string
	Verifier  string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// InsertOAuthState stores a new authorization state. States that expired
// before now are deleted on the way. It returns ErrExists if the state is
// taken.
func (s *Store) InsertOAuthState(ctx context.Context, st *OAuthState, now time.Time) error {
	if _, err := s.DeleteExpiredOAuthStates(ctx, now); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_states (state, amid, provider, verifier, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		st.State, st.AMID, st.Provider, st.Verifier, millis(st.CreatedAt), millis(st.ExpiresAt))
	if isUniqueViolation(err) {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("registry store: insert oauth state: %w", err)
	}
	return nil
}

// ConsumeOAuthState deletes the state and returns it, expired or not, or
// ErrNotFound. One statement both reads and deletes it, so of callers
// racing with the same state exactly one gets it.
func (s *Store) ConsumeOAuthState(ctx context.Context, state string) (*OAuthState, error) {
	st := OAuthState{State: state}
	var created, expires int64
	err := s.db.QueryRowContext(ctx, `DELETE FROM oauth_states WHERE state = $1
		RETURNING amid, provider, verifier, created_at, expires_at`, state).
		Scan(&st.AMID, &st.Provider, &st.Verifier, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("registry store: consume oauth state: %w", err)
	}
	st.CreatedAt, st.ExpiresAt = fromMillis(created), fromMillis(expires)
	return &st, nil
}

// DeleteExpiredOAuthStates deletes the states that expired before now and
// reports how many there were.
func (s *Store) DeleteExpiredOAuthStates(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM oauth_states WHERE expires_at < $1`, millis(now))
	if err != nil {
		return 0, fmt.Errorf("registry store: expire oauth states: %w", err)
	}
	return res.RowsAffected()
}

// AgentVerification is an account with an OAuth provider that vouches for
// an agent. Email, Username and DisplayName are empty when the provider
// did not give them.
type AgentVerification struct {
	AMID        string
	Provider    string
	ProviderID  string
	Email       string
	Username    string
	DisplayName string
	VerifiedAt  time.Time
}

// RecordOAuthVerification stores v, replacing an earlier verification of
// the agent with the same provider, and upgrades the agent from anonymous
// to verified (other tiers stay). It returns the agent's tier afterwards,
// or ErrNotFound if the agent does not exist.
func (s *Store) RecordOAuthVerification(ctx context.Context, v *AgentVerification) (Tier, error) {
	var tier Tier
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var t string
		err := tx.QueryRowContext(ctx, `SELECT tier FROM agents WHERE amid = $1`, v.AMID).Scan(&t)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("registry store: read agent tier: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO agent_verifications
			(amid, provider, provider_id, email, username, display_name, verified_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (amid, provider) DO UPDATE SET provider_id = excluded.provider_id,
				email = excluded.email, username = excluded.username,
				display_name = excluded.display_name, verified_at = excluded.verified_at`,
			v.AMID, v.Provider, v.ProviderID, oauthOptional(v.Email), oauthOptional(v.Username),
			oauthOptional(v.DisplayName), millis(v.VerifiedAt)); err != nil {
			return fmt.Errorf("registry store: record verification: %w", err)
		}
		tier = Tier(t)
		if tier != TierAnonymous {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET tier = $2, updated_at = $3
			WHERE amid = $1 AND tier = $4`,
			v.AMID, string(TierVerified), millis(v.VerifiedAt), string(TierAnonymous)); err != nil {
			return fmt.Errorf("registry store: upgrade agent tier: %w", err)
		}
		tier = TierVerified
		return nil
	})
	return tier, err
}

// AgentVerifications returns the verifications of the agent amid, ordered
// by provider.
func (s *Store) AgentVerifications(ctx context.Context, amid string) ([]AgentVerification, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT provider, provider_id, email, username, display_name, verified_at
		FROM agent_verifications WHERE amid = $1 ORDER BY provider`, amid)
	if err != nil {
		return nil, fmt.Errorf("registry store: read verifications: %w", err)
	}
	defer rows.Close()
	var out []AgentVerification
	for rows.Next() {
		v := AgentVerification{AMID: amid}
		var email, username, display sql.NullString
		var at int64
		if err := rows.Scan(&v.Provider, &v.ProviderID, &email, &username, &display, &at); err != nil {
			return nil, fmt.Errorf("registry store: read verification: %w", err)
		}
		v.Email, v.Username, v.DisplayName = email.String, username.String, display.String
		v.VerifiedAt = fromMillis(at)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry store: read verifications: %w", err)
	}
	return out, nil
}

// oauthOptional stores an empty string as NULL.
func oauthOptional(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

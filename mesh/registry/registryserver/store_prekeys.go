package registryserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentmesh/agentmesh-go/mesh/registry"
)

// SignedPrekey is an agent's signed prekey as the store keeps it: the raw
// 32-byte X25519 key and its signature S6, both padded base64.
type SignedPrekey struct {
	ID        int32
	PublicKey string
	Signature string
	CreatedAt time.Time
}

// ErrTooManyPrekeys is returned by StorePrekeys when the upload would leave
// the agent more unconsumed one-time prekeys than the limit.
var ErrTooManyPrekeys = errors.New("too many unconsumed one-time prekeys")

// StorePrekeys stores an agent's signed prekey, replacing the key and
// signature of the same id, and adds its one-time prekeys, keeping any id
// the store already holds (consumed or not) unchanged. It is one
// transaction: if the agent would then hold more than maxUnconsumed
// unconsumed one-time prekeys, nothing is stored and the error wraps
// ErrTooManyPrekeys. It returns how many one-time prekeys were new and how
// many unconsumed ones the agent now holds; ErrNotFound if the agent does
// not exist. Keys must already be validated.
func (s *Store) StorePrekeys(ctx context.Context, amid string, spk SignedPrekey, otpks []registry.OneTimePrekey, maxUnconsumed int, now time.Time) (stored, unconsumed int, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		// Uploads of one agent take turns, so that two of them cannot both
		// pass the limit check. SQLite transactions are serialized already.
		lock := `SELECT 1 FROM agents WHERE amid = $1`
		if s.dialect == Postgres {
			lock += ` FOR NO KEY UPDATE`
		}
		var one int
		if err := tx.QueryRowContext(ctx, lock, amid).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return fmt.Errorf("registry store: lock agent for prekeys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO signed_prekeys (amid, prekey_id, public_key, signature, created_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (amid, prekey_id) DO UPDATE SET
				public_key = excluded.public_key, signature = excluded.signature, created_at = excluded.created_at`,
			amid, int64(spk.ID), spk.PublicKey, spk.Signature, millis(now)); err != nil {
			return fmt.Errorf("registry store: store signed prekey: %w", err)
		}
		if len(otpks) > 0 {
			q, args := insertPrekeysQuery(amid, otpks, now)
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return fmt.Errorf("registry store: store one-time prekeys: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("registry store: store one-time prekeys: %w", err)
			}
			stored = int(n)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM one_time_prekeys WHERE amid = $1 AND consumed = 0`,
			amid).Scan(&unconsumed); err != nil {
			return fmt.Errorf("registry store: count one-time prekeys: %w", err)
		}
		if unconsumed > maxUnconsumed {
			return fmt.Errorf("%w: the upload would leave %d, at most %d are kept", ErrTooManyPrekeys, unconsumed, maxUnconsumed)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return stored, unconsumed, nil
}

// insertPrekeysQuery builds one multi-row INSERT of otpks that skips ids the
// agent already has.
func insertPrekeysQuery(amid string, otpks []registry.OneTimePrekey, now time.Time) (string, []any) {
	var b strings.Builder
	b.WriteString(`INSERT INTO one_time_prekeys (amid, prekey_id, public_key, consumed, created_at) VALUES `)
	args := make([]any, 0, 2+2*len(otpks))
	args = append(args, amid, millis(now))
	for i, k := range otpks {
		if i > 0 {
			b.WriteString(", ")
		}
		n := len(args)
		b.WriteString("($1, $")
		b.WriteString(strconv.Itoa(n + 1))
		b.WriteString(", $")
		b.WriteString(strconv.Itoa(n + 2))
		b.WriteString(", 0, $2)")
		args = append(args, int64(k.ID), k.Key)
	}
	b.WriteString(` ON CONFLICT (amid, prekey_id) DO NOTHING`)
	return b.String(), args
}

// PrekeyOwner returns the exchange public key of agent amid as stored and
// its current signed prekey (the highest id), nil if it uploaded none. It
// returns ErrNotFound if the agent does not exist.
func (s *Store) PrekeyOwner(ctx context.Context, amid string) (exchangeKey string, spk *SignedPrekey, err error) {
	var (
		id            sql.NullInt64
		pub, sig      sql.NullString
		createdMillis sql.NullInt64
	)
	err = s.db.QueryRowContext(ctx, `SELECT a.exchange_public_key, p.prekey_id, p.public_key, p.signature, p.created_at
		FROM agents a LEFT JOIN signed_prekeys p ON p.amid = a.amid
		WHERE a.amid = $1
		ORDER BY p.prekey_id DESC LIMIT 1`, amid).Scan(&exchangeKey, &id, &pub, &sig, &createdMillis)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, ErrNotFound
	}
	if err != nil {
		return "", nil, fmt.Errorf("registry store: read signed prekey: %w", err)
	}
	if !id.Valid {
		return exchangeKey, nil, nil
	}
	return exchangeKey, &SignedPrekey{
		ID: int32(id.Int64), PublicKey: pub.String, Signature: sig.String, CreatedAt: fromMillis(createdMillis.Int64),
	}, nil
}

// consumeAttempts bounds the retries of ConsumeOneTimePrekey when a
// concurrent fetch held the prekeys it looked at.
const consumeAttempts = 3

// ConsumeOneTimePrekey marks the lowest-id unconsumed one-time prekey of
// agent amid consumed and returns it, or nil if none is left. Concurrent
// calls, from any number of registry processes sharing the store, never
// return the same prekey twice: each is one UPDATE statement that picks and
// marks the row. On PostgreSQL the pick skips rows another fetch has
// locked (and is about to consume) instead of waiting for them; SQLite runs
// writers one at a time.
func (s *Store) ConsumeOneTimePrekey(ctx context.Context, amid string, now time.Time) (*registry.OneTimePrekey, error) {
	q := `UPDATE one_time_prekeys SET consumed = 1, consumed_at = $2
		WHERE amid = $1 AND consumed = 0 AND prekey_id = (
			SELECT MIN(prekey_id) FROM one_time_prekeys WHERE amid = $1 AND consumed = 0)
		RETURNING prekey_id, public_key`
	if s.dialect == Postgres {
		q = `UPDATE one_time_prekeys SET consumed = 1, consumed_at = $2
		WHERE amid = $1 AND consumed = 0 AND prekey_id = (
			SELECT prekey_id FROM one_time_prekeys WHERE amid = $1 AND consumed = 0
			ORDER BY prekey_id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING prekey_id, public_key`
	}
	for range consumeAttempts {
		var (
			id  int64
			key string
		)
		err := s.db.QueryRowContext(ctx, q, amid, millis(now)).Scan(&id, &key)
		if err == nil {
			return &registry.OneTimePrekey{ID: int32(id), Key: key}, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("registry store: consume one-time prekey: %w", err)
		}
		if s.dialect != Postgres {
			return nil, nil
		}
		// Every unconsumed row may have been locked by another fetch. Try
		// again only if one is still unconsumed after that fetch finished
		// (it failed or rolled back).
		n, err := s.UnconsumedPrekeys(ctx, amid)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
	}
	return nil, nil
}

// UnconsumedPrekeys counts the one-time prekeys of agent amid not yet
// handed out.
func (s *Store) UnconsumedPrekeys(ctx context.Context, amid string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM one_time_prekeys WHERE amid = $1 AND consumed = 0`,
		amid).Scan(&n); err != nil {
		return 0, fmt.Errorf("registry store: count one-time prekeys: %w", err)
	}
	return n, nil
}

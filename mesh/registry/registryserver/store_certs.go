package registryserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Organization is a registered organization as the store keeps it.
type Organization struct {
	ID                    string
	Name                  string
	Domain                string
	AdminAMID             string
	AdminSigningPublicKey string
	// DNSChallenge is the TXT record value that proves the domain, valid
	// until ChallengeExpiresAt.
	DNSChallenge       string
	ChallengeExpiresAt time.Time
	Verified           bool
	VerifiedAt         *time.Time
	// Certificate is the organization's CA certificate, padded base64 of
	// DER; empty until the domain is verified.
	Certificate string
	// SealedKey is the organization's CA private key, sealed (see
	// sealOrgKey).
	SealedKey string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Certificate kinds in the certificates table.
const (
	CertKindRoot         = "root"
	CertKindOrganization = "organization"
	CertKindAgent        = "agent"
)

// CertRecord is a certificate the registry issued, as the store keeps it.
type CertRecord struct {
	// Serial is the serial number in lowercase hex.
	Serial         string
	Kind           string
	AMID           string // agent certificates only
	OrganizationID string // organization certificates, and agent certificates an organization issued
	IssuerSerial   string // "" for a root
	// Certificate is padded base64 of DER.
	Certificate      string
	NotBefore        time.Time
	NotAfter         time.Time
	CreatedAt        time.Time
	RevokedAt        *time.Time
	RevocationReason string
}

// RevocationRecord is a revoked agent as the store keeps it.
type RevocationRecord struct {
	ID        string
	AMID      string
	Reason    string
	RevokedBy string
	RevokedAt time.Time
	Notes     *string
}

const orgColumns = `id, name, domain, admin_amid, admin_signing_public_key, dns_challenge,
	challenge_expires_at, verified, verified_at, certificate, sealed_key, created_at, updated_at`

func scanOrganization(row rowScanner) (*Organization, error) {
	var (
		o                         Organization
		expires, created, updated int64
		verified                  int
		verifiedAt                sql.NullInt64
		certificate, sealed       sql.NullString
	)
	if err := row.Scan(&o.ID, &o.Name, &o.Domain, &o.AdminAMID, &o.AdminSigningPublicKey, &o.DNSChallenge,
		&expires, &verified, &verifiedAt, &certificate, &sealed, &created, &updated); err != nil {
		return nil, err
	}
	o.ChallengeExpiresAt = fromMillis(expires)
	o.Verified = verified != 0
	o.VerifiedAt = nullMillis(verifiedAt)
	o.Certificate, o.SealedKey = certificate.String, sealed.String
	o.CreatedAt, o.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &o, nil
}

// CreateOrganization stores a new, unverified organization. It returns
// ErrExists if the domain is registered already, unless that registration
// was never verified and its challenge has expired by now: then it is
// replaced.
func (s *Store) CreateOrganization(ctx context.Context, o *Organization, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		old, err := scanOrganization(tx.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM organizations WHERE domain = $1`, o.Domain))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("registry store: read organization: %w", err)
		case old.Verified || !now.After(old.ChallengeExpiresAt):
			return ErrExists
		default:
			if _, err := tx.ExecContext(ctx, `DELETE FROM organizations WHERE id = $1 AND verified = 0`, old.ID); err != nil {
				return fmt.Errorf("registry store: replace organization: %w", err)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO organizations (`+orgColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 0, NULL, NULL, NULL, $8, $9)`,
			o.ID, o.Name, o.Domain, o.AdminAMID, o.AdminSigningPublicKey, o.DNSChallenge,
			millis(o.ChallengeExpiresAt), millis(o.CreatedAt), millis(o.UpdatedAt))
		if isUniqueViolation(err) {
			return ErrExists
		}
		if err != nil {
			return fmt.Errorf("registry store: insert organization: %w", err)
		}
		return nil
	})
}

// OrganizationByID returns the organization id, or ErrNotFound.
func (s *Store) OrganizationByID(ctx context.Context, id string) (*Organization, error) {
	return s.organizationWhere(ctx, `id = $1`, id)
}

// OrganizationByDomain returns the organization registered for domain, or
// ErrNotFound.
func (s *Store) OrganizationByDomain(ctx context.Context, domain string) (*Organization, error) {
	return s.organizationWhere(ctx, `domain = $1`, domain)
}

func (s *Store) organizationWhere(ctx context.Context, cond string, arg any) (*Organization, error) {
	o, err := scanOrganization(s.db.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM organizations WHERE `+cond, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("registry store: read organization: %w", err)
	}
	return o, nil
}

// MarkOrganizationVerified records that the organization id proved its
// domain: it stores its certificate (also in the certificates table, with
// its issuing root) and sealed key. It reports false, changing nothing, if
// the organization was verified already.
func (s *Store) MarkOrganizationVerified(ctx context.Context, id string, cert, root *CertRecord, sealedKey string, at time.Time) (bool, error) {
	done := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE organizations SET verified = 1, verified_at = $1, certificate = $2,
			sealed_key = $3, updated_at = $1 WHERE id = $4 AND verified = 0`, millis(at), cert.Certificate, sealedKey, id)
		if err != nil {
			return fmt.Errorf("registry store: verify organization: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := recordRootTx(ctx, tx, root); err != nil {
			return err
		}
		if err := insertCertificateTx(ctx, tx, cert); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done, err
}

// CountOrganizationAgents returns how many agents belong to the
// organization id.
func (s *Store) CountOrganizationAgents(ctx context.Context, id string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM agents WHERE organization_id = $1`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("registry store: count organization agents: %w", err)
	}
	return n, nil
}

// UpdateOrganizationAgent moves the registered agent amid into the
// organization orgID with tier organization, replacing its capabilities
// and, when displayName is not nil, its display name.
func (s *Store) UpdateOrganizationAgent(ctx context.Context, amid, orgID string, displayName *string, caps []string, now time.Time) error {
	if caps == nil {
		caps = []string{}
	}
	capsJSON, err := json.Marshal(caps)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET tier = $1, organization_id = $2,
			display_name = COALESCE($3, display_name), capabilities = $4, updated_at = $5 WHERE amid = $6`,
			string(TierOrganization), orgID, displayName, string(capsJSON), millis(now), amid)
		if err != nil {
			return fmt.Errorf("registry store: update organization agent: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return replaceCapabilities(ctx, tx, amid, caps)
	})
}

// RecordRoot stores a root certificate in the certificates table, unless
// it is there already.
func (s *Store) RecordRoot(ctx context.Context, root *CertRecord) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return recordRootTx(ctx, tx, root) })
}

func recordRootTx(ctx context.Context, tx *sql.Tx, root *CertRecord) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO certificates (serial, kind, amid, organization_id, issuer_serial,
		certificate, not_before, not_after, created_at) VALUES ($1, $2, NULL, NULL, NULL, $3, $4, $5, $6)
		ON CONFLICT (serial) DO NOTHING`,
		root.Serial, CertKindRoot, root.Certificate, millis(root.NotBefore), millis(root.NotAfter), millis(root.CreatedAt))
	if err != nil {
		return fmt.Errorf("registry store: record root certificate: %w", err)
	}
	return nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func insertCertificateTx(ctx context.Context, tx *sql.Tx, c *CertRecord) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO certificates (serial, kind, amid, organization_id, issuer_serial,
		certificate, not_before, not_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.Serial, c.Kind, nullString(c.AMID), nullString(c.OrganizationID), nullString(c.IssuerSerial),
		c.Certificate, millis(c.NotBefore), millis(c.NotAfter), millis(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("registry store: record certificate: %w", err)
	}
	return nil
}

// RecordAgentCertificate stores a new agent certificate and marks the
// agent's earlier unrevoked certificates revoked as superseded. root is
// the root at the top of its chain, recorded unless it is already.
func (s *Store) RecordAgentCertificate(ctx context.Context, c, root *CertRecord) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := recordRootTx(ctx, tx, root); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE certificates SET revoked_at = $1, revocation_reason = $2
			WHERE amid = $3 AND kind = $4 AND revoked_at IS NULL`,
			millis(c.CreatedAt), "superseded", c.AMID, CertKindAgent); err != nil {
			return fmt.Errorf("registry store: supersede certificates: %w", err)
		}
		return insertCertificateTx(ctx, tx, c)
	})
}

const certColumns = `serial, kind, amid, organization_id, issuer_serial, certificate, not_before, not_after,
	created_at, revoked_at, revocation_reason`

func scanCertRecord(row rowScanner) (*CertRecord, error) {
	var (
		c                            CertRecord
		amid, org, issuer, reason    sql.NullString
		notBefore, notAfter, created int64
		revoked                      sql.NullInt64
	)
	if err := row.Scan(&c.Serial, &c.Kind, &amid, &org, &issuer, &c.Certificate, &notBefore, &notAfter,
		&created, &revoked, &reason); err != nil {
		return nil, err
	}
	c.AMID, c.OrganizationID, c.IssuerSerial, c.RevocationReason = amid.String, org.String, issuer.String, reason.String
	c.NotBefore, c.NotAfter, c.CreatedAt = fromMillis(notBefore), fromMillis(notAfter), fromMillis(created)
	c.RevokedAt = nullMillis(revoked)
	return &c, nil
}

// CertificateBySerial returns the certificate with the given serial, or
// ErrNotFound.
func (s *Store) CertificateBySerial(ctx context.Context, serial string) (*CertRecord, error) {
	c, err := scanCertRecord(s.db.QueryRowContext(ctx, `SELECT `+certColumns+` FROM certificates WHERE serial = $1`, serial))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("registry store: read certificate: %w", err)
	}
	return c, nil
}

// CurrentAgentCertificate returns the newest agent certificate of amid
// that is neither revoked nor expired at now, or ErrNotFound.
func (s *Store) CurrentAgentCertificate(ctx context.Context, amid string, now time.Time) (*CertRecord, error) {
	c, err := scanCertRecord(s.db.QueryRowContext(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE amid = $1 AND kind = $2 AND revoked_at IS NULL AND not_before <= $3 AND not_after >= $3
		ORDER BY created_at DESC, serial DESC LIMIT 1`, amid, CertKindAgent, millis(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("registry store: read agent certificate: %w", err)
	}
	return c, nil
}

// RevokedCertificates returns the revoked certificates the certificate
// issuerSerial issued, by serial.
func (s *Store) RevokedCertificates(ctx context.Context, issuerSerial string) ([]CertRecord, error) {
	return revokedCertificates(ctx, s.db, issuerSerial)
}

// queryer is what *sql.DB and *sql.Tx share.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func revokedCertificates(ctx context.Context, q queryer, issuerSerial string) ([]CertRecord, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+certColumns+` FROM certificates
		WHERE issuer_serial = $1 AND revoked_at IS NOT NULL ORDER BY serial`, issuerSerial)
	if err != nil {
		return nil, fmt.Errorf("registry store: list revoked certificates: %w", err)
	}
	defer rows.Close()
	var out []CertRecord
	for rows.Next() {
		c, err := scanCertRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("registry store: list revoked certificates: %w", err)
		}
		out = append(out, *c)
	}
	return out, rows.Err()
}

// NextCRL hands out the next number of the counter name (starting at 1)
// together with the revoked certificates issuerSerial issued, read in the
// same transaction after the counter is taken. A CRL built from them never
// lists less than one with a lower number, even when several registry
// processes share the store: the counter's row stays locked until the
// entries are read.
func (s *Store) NextCRL(ctx context.Context, name, issuerSerial string) (int64, []CertRecord, error) {
	var (
		number  int64
		entries []CertRecord
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO counters (name, value) VALUES ($1, 1)
			ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value`, name).Scan(&number)
		if err != nil {
			return fmt.Errorf("registry store: counter %s: %w", name, err)
		}
		entries, err = revokedCertificates(ctx, tx, issuerSerial)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return number, entries, nil
}

// RevokeAgent records the revocation r and marks every unrevoked
// certificate of the agent revoked with its reason. It returns ErrExists if
// the agent is revoked already.
func (s *Store) RevokeAgent(ctx context.Context, r *RevocationRecord) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO revocations (id, amid, reason, revoked_by, revoked_at, notes)
			VALUES ($1, $2, $3, $4, $5, $6)`, r.ID, r.AMID, r.Reason, r.RevokedBy, millis(r.RevokedAt), r.Notes)
		if isUniqueViolation(err) {
			return ErrExists
		}
		if err != nil {
			return fmt.Errorf("registry store: record revocation: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE certificates SET revoked_at = $1, revocation_reason = $2
			WHERE amid = $3 AND kind = $4 AND revoked_at IS NULL`,
			millis(r.RevokedAt), r.Reason, r.AMID, CertKindAgent); err != nil {
			return fmt.Errorf("registry store: revoke certificates: %w", err)
		}
		return nil
	})
}

const revocationColumns = `id, amid, reason, revoked_by, revoked_at, notes`

func scanRevocation(row rowScanner) (*RevocationRecord, error) {
	var (
		r     RevocationRecord
		at    int64
		notes sql.NullString
	)
	if err := row.Scan(&r.ID, &r.AMID, &r.Reason, &r.RevokedBy, &at, &notes); err != nil {
		return nil, err
	}
	r.RevokedAt = fromMillis(at)
	if notes.Valid {
		r.Notes = &notes.String
	}
	return &r, nil
}

// Revocation returns the revocation of amid, or ErrNotFound.
func (s *Store) Revocation(ctx context.Context, amid string) (*RevocationRecord, error) {
	r, err := scanRevocation(s.db.QueryRowContext(ctx, `SELECT `+revocationColumns+` FROM revocations WHERE amid = $1`, amid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("registry store: read revocation: %w", err)
	}
	return r, nil
}

// RevocationsOf returns the revocations of those of amids that are
// revoked, by AMID.
func (s *Store) RevocationsOf(ctx context.Context, amids []string) (map[string]*RevocationRecord, error) {
	out := make(map[string]*RevocationRecord)
	if len(amids) == 0 {
		return out, nil
	}
	marks := make([]string, len(amids))
	args := make([]any, len(amids))
	for i, a := range amids {
		marks[i] = fmt.Sprintf("$%d", i+1)
		args[i] = a
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+revocationColumns+` FROM revocations
		WHERE amid IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("registry store: read revocations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRevocation(rows)
		if err != nil {
			return nil, fmt.Errorf("registry store: read revocations: %w", err)
		}
		out[r.AMID] = r
	}
	return out, rows.Err()
}

// ListRevocations returns one page of all revocations, oldest first, and
// how many there are in all.
func (s *Store) ListRevocations(ctx context.Context, limit, offset int) ([]RevocationRecord, int, error) {
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM revocations`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("registry store: count revocations: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+revocationColumns+` FROM revocations
		ORDER BY revoked_at, id LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("registry store: list revocations: %w", err)
	}
	defer rows.Close()
	out := []RevocationRecord{}
	for rows.Next() {
		r, err := scanRevocation(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("registry store: list revocations: %w", err)
		}
		out = append(out, *r)
	}
	return out, total, rows.Err()
}

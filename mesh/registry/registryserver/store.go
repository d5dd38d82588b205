package registryserver

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect names the SQL database behind a Store.
type Dialect string

// The stores the registry runs on.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DefaultDatabase is where the registry keeps its data when told nothing
// else: an embedded SQLite file in the working directory.
const DefaultDatabase = "sqlite:///./agentmesh-registry.db"

// Store is the registry's persistent state in SQLite or PostgreSQL. Both
// run the same migrations and the same queries (positional $n parameters,
// which both drivers accept). Its methods are safe for concurrent use, and
// several registry processes may share one PostgreSQL store.
type Store struct {
	db      *sql.DB
	dialect Dialect

	sigSweep atomic.Int64 // Unix ms of the last sweep of seen_signatures
}

// OpenStore opens the database named by dsn and brings its schema up to
// date. dsn is "sqlite:///path/to/file.db" (a relative path after the
// third slash, as in "sqlite:///./r.db", is taken from the working
// directory) or a PostgreSQL URL "postgres://user@host:port/db?…".
func OpenStore(ctx context.Context, dsn string) (*Store, error) {
	d, driver, source, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		return nil, fmt.Errorf("registry store: open %s: %w", d, err)
	}
	s := &Store{db: db, dialect: d}
	if d == SQLite {
		// One writer at a time in SQLite: the busy timeout and BEGIN
		// IMMEDIATE make writers queue instead of failing.
		db.SetMaxOpenConns(8)
	} else {
		// Keep connections for bursts: opening one costs milliseconds.
		db.SetMaxIdleConns(32)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("registry store: connect to %s: %w", d, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func parseDSN(dsn string) (d Dialect, driver, source string, err error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		path := strings.TrimPrefix(dsn, "sqlite://")
		q := ""
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path, q = path[:i], path[i+1:]
		}
		if strings.HasPrefix(path, "/./") {
			path = path[1:]
		}
		if path == "" || path == "/" {
			return "", "", "", fmt.Errorf("registry store: %q names no file (want sqlite:///path/to/registry.db)", dsn)
		}
		if q != "" {
			return "", "", "", fmt.Errorf("registry store: %q: SQLite URLs take no parameters", dsn)
		}
		v := url.Values{}
		v.Add("_pragma", "busy_timeout(10000)")
		v.Add("_pragma", "journal_mode(WAL)")
		v.Add("_pragma", "synchronous(FULL)")
		v.Add("_pragma", "foreign_keys(1)")
		v.Set("_txlock", "immediate")
		return SQLite, "sqlite", "file:" + path + "?" + v.Encode(), nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, "pgx", dsn, nil
	}
	return "", "", "", fmt.Errorf("registry store: unsupported database %q (want sqlite:///path or postgres://…)", redactDSN(dsn))
}

// redactDSN hides a password in a database URL before it is shown.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}

// Dialect reports which database the store runs on.
func (s *Store) Dialect() Dialect { return s.dialect }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migrate applies the embedded migrations not yet applied, in name order,
// each in its own transaction. Registry processes starting together on one
// PostgreSQL database take turns through an advisory lock.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	slices.Sort(names)
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(4242001)`); err != nil {
				return fmt.Errorf("registry store: lock for migrations: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("registry store: create schema_migrations: %w", err)
		}
		for _, name := range names {
			version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return fmt.Errorf("registry store: read schema_migrations: %w", err)
			}
			if n > 0 {
				continue
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			for _, stmt := range splitSQL(string(body)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("registry store: migration %s: %w\n%s", version, err, stmt)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				version, millis(time.Now())); err != nil {
				return fmt.Errorf("registry store: record migration %s: %w", version, err)
			}
		}
		return nil
	})
}

// splitSQL splits a migration into statements: it drops "--" comment lines
// and splits at semicolons that end a line.
func splitSQL(body string) []string {
	var stmts []string
	var cur strings.Builder
	for line := range strings.Lines(body) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || trimmed == "" {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		stmts = append(stmts, rest)
	}
	return stmts
}

// tx runs fn in a transaction, committing if it returns nil. SQLite
// transactions begin IMMEDIATE (the write lock is taken at BEGIN).
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("registry store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("registry store: commit: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is a unique or primary key
// constraint failure.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se interface{ Code() int }
	if errors.As(err, &se) {
		// SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
		return se.Code() == 2067 || se.Code() == 1555
	}
	return false
}

// millis converts a time to the store's representation, Unix milliseconds.
func millis(t time.Time) int64 { return t.UnixMilli() }

// fromMillis converts the store's Unix milliseconds back to a UTC time.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// nullMillis converts a nullable time column.
func nullMillis(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMillis(v.Int64)
	return &t
}

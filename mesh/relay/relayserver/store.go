package relayserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/agentmesh/agentmesh-go/mesh/protocol"
)

// errQueueFull is returned by Store.put when the recipient's queue, or the
// sender's share of it, is full.
var errQueueFull = errors.New("message queue is full")

// Store keeps the messages the relay accepted for recipients that were not
// connected, in an embedded SQLite database. It is the source of truth for
// queued messages: a message is on disk (the write synced) before the relay
// reports it stored, and it stays there until its recipient acknowledges it
// or it expires, across relay restarts. Its methods are safe for concurrent
// use.
type Store struct {
	db *sql.DB
}

// schemaVersion is the store's PRAGMA user_version.
const schemaVersion = 1

var schema = []string{
	`CREATE TABLE IF NOT EXISTS messages (
		seq            INTEGER PRIMARY KEY AUTOINCREMENT,
		id             TEXT    NOT NULL UNIQUE,
		recipient      TEXT    NOT NULL,
		sender         TEXT    NOT NULL,
		payload        TEXT    NOT NULL,
		message_type   TEXT    NOT NULL,
		ice_candidates TEXT,
		created_at     INTEGER NOT NULL,
		expires_at     INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS messages_by_recipient ON messages (recipient, created_at, seq)`,
	`CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (recipient, sender)`,
	`CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (expires_at)`,
}

// OpenStore opens, creating it if needed, the SQLite database named by dsn,
// "sqlite:///path/to/relay.db" (a relative path after the third slash, as
// in "sqlite:///./relay.db", is taken from the working directory). The
// directory must exist. A new database file is created with mode 0600.
//
// The database runs in WAL mode with synchronous=FULL, so a committed
// message survives a crash, and writers take the lock at BEGIN (BEGIN
// IMMEDIATE) and wait for each other up to a busy timeout.
func OpenStore(ctx context.Context, dsn string) (*Store, error) {
	path, err := sqlitePath(dsn)
	if err != nil {
		return nil, err
	}
	// SQLite gives its WAL and shared-memory files the database file's
	// mode, so creating the file private keeps all three private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("relay store: %w", err)
	}
	f.Close()

	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("relay store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// sqlitePath extracts the file path of a sqlite:// DSN.
func sqlitePath(dsn string) (string, error) {
	path, ok := strings.CutPrefix(dsn, "sqlite://")
	if !ok {
		return "", fmt.Errorf("relay store: unsupported store %q (want sqlite:///path/to/relay.db)", dsn)
	}
	if strings.ContainsAny(path, "?#") {
		return "", fmt.Errorf("relay store: %q: SQLite URLs take no parameters", dsn)
	}
	if strings.HasPrefix(path, "/./") {
		path = path[1:]
	}
	if path == "" || path == "/" || strings.HasSuffix(path, "/") {
		return "", fmt.Errorf("relay store: %q names no file (want sqlite:///path/to/relay.db)", dsn)
	}
	return path, nil
}

func (s *Store) migrate(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("relay store: read schema version: %w", err)
	}
	if version > schemaVersion {
		return fmt.Errorf("relay store: schema version %d is newer than this relay's %d", version, schemaVersion)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, stmt := range schema {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("relay store: create schema: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
			return fmt.Errorf("relay store: set schema version: %w", err)
		}
		return nil
	})
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("relay store: %w", err)
	}
	return nil
}

// Close closes the database. Close the Server that uses the store first.
func (s *Store) Close() error { return s.db.Close() }

// tx runs fn in a transaction (BEGIN IMMEDIATE), committing if it returns
// nil. The commit is synced to disk before tx returns.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("relay store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("relay store: commit: %w", err)
	}
	return nil
}

// storedMessage is one message waiting for its recipient.
type storedMessage struct {
	ID          string
	From, To    protocol.AMID
	Payload     string
	MessageType protocol.MessageType
	// ICE is nil when the send frame carried no ice_candidates.
	ICE       []protocol.ICECandidate
	CreatedAt time.Time
	ExpiresAt time.Time
}

// receive is the frame that delivers m.
func (m *storedMessage) receive() protocol.Receive {
	return protocol.Receive{
		From:             m.From,
		EncryptedPayload: m.Payload,
		MessageType:      m.MessageType,
		Timestamp:        protocol.FormatServerTimestamp(m.CreatedAt),
		ICECandidates:    m.ICE,
		MessageID:        m.ID,
	}
}

// iceJSON is the stored form of an ICE candidate.
type iceJSON struct {
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdp_mid"`
	SDPMLineIndex *int    `json:"sdp_mline_index"`
}

func encodeICE(cs []protocol.ICECandidate) (sql.NullString, error) {
	if cs == nil {
		return sql.NullString{}, nil
	}
	out := make([]iceJSON, len(cs))
	for i, c := range cs {
		out[i] = iceJSON{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

func decodeICE(v sql.NullString) ([]protocol.ICECandidate, error) {
	if !v.Valid {
		return nil, nil
	}
	var in []iceJSON
	if err := json.Unmarshal([]byte(v.String), &in); err != nil {
		return nil, err
	}
	out := make([]protocol.ICECandidate, len(in))
	for i, c := range in {
		out[i] = protocol.ICECandidate{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex}
	}
	return out, nil
}

// put stores m if its recipient has fewer than maxPerRecipient unexpired
// messages and its sender fewer than maxPerSender of them; otherwise it
// returns errQueueFull and stores nothing. Zero limits store
// unconditionally (used for messages that were already accepted).
func (s *Store) put(ctx context.Context, m *storedMessage, now time.Time, maxPerRecipient, maxPerSender int) error {
	ice, err := encodeICE(m.ICE)
	if err != nil {
		return fmt.Errorf("relay store: encode ice_candidates: %w", err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if maxPerRecipient > 0 || maxPerSender > 0 {
			var total, fromSender int64
			err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(sender = ?), 0)
				FROM messages WHERE recipient = ? AND expires_at > ?`,
				string(m.From), string(m.To), now.UnixNano()).Scan(&total, &fromSender)
			if err != nil {
				return fmt.Errorf("relay store: count queue: %w", err)
			}
			if (maxPerRecipient > 0 && total >= int64(maxPerRecipient)) ||
				(maxPerSender > 0 && fromSender >= int64(maxPerSender)) {
				return errQueueFull
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO messages
			(id, recipient, sender, payload, message_type, ice_candidates, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, string(m.To), string(m.From), m.Payload, string(m.MessageType), ice,
			m.CreatedAt.UnixNano(), m.ExpiresAt.UnixNano())
		if err != nil {
			return fmt.Errorf("relay store: insert message: %w", err)
		}
		return nil
	})
}

// pending returns the unexpired messages for recipient, oldest first.
func (s *Store) pending(ctx context.Context, recipient protocol.AMID, now time.Time) ([]*storedMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, sender, payload, message_type, ice_candidates, created_at, expires_at
		FROM messages WHERE recipient = ? AND expires_at > ? ORDER BY created_at, seq`,
		string(recipient), now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("relay store: list messages: %w", err)
	}
	defer rows.Close()
	var out []*storedMessage
	for rows.Next() {
		m := &storedMessage{To: recipient}
		var from, typ string
		var ice sql.NullString
		var created, expires int64
		if err := rows.Scan(&m.ID, &from, &m.Payload, &typ, &ice, &created, &expires); err != nil {
			return nil, fmt.Errorf("relay store: read message: %w", err)
		}
		m.From, m.MessageType = protocol.AMID(from), protocol.MessageType(typ)
		m.CreatedAt, m.ExpiresAt = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
		if m.ICE, err = decodeICE(ice); err != nil {
			return nil, fmt.Errorf("relay store: message %s: ice_candidates: %w", m.ID, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("relay store: list messages: %w", err)
	}
	return out, nil
}

// ack deletes the message id stored for recipient, reporting whether there
// was one. A message can only be acknowledged by its recipient.
func (s *Store) ack(ctx context.Context, recipient protocol.AMID, id string) (bool, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id = ? AND recipient = ?`, id, string(recipient))
		if err != nil {
			return fmt.Errorf("relay store: delete message: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, err
}

// purgeExpired deletes every message whose expiry has passed and returns
// how many it deleted.
func (s *Store) purgeExpired(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE expires_at <= ?`, now.UnixNano())
		if err != nil {
			return fmt.Errorf("relay store: purge expired messages: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

-- Reputation: the key under which raters' addresses are hashed, shared by
-- every registry process on the database, and an order for scores recorded
-- in the same millisecond.

-- Named values the reputation code creates once, such as the HMAC key of
-- rater address hashes (hex).
CREATE TABLE reputation_settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- seq orders an agent's history entries recorded at the same instant.
ALTER TABLE reputation_history ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;

CREATE INDEX ratings_session ON ratings (session_id);
CREATE INDEX sessions_intent ON sessions (intent);

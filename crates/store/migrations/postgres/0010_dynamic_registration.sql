-- Dynamic Client Registration (RFC 7591/7592, issue 14). A registered
-- client is an ordinary `clients` row of kind `dynamic`; this table holds
-- what only registration knows: where it came from, what stands behind it,
-- the hash of its registration access token, and when it was last used
-- (the liveness sweep). Last use lives here, not on `clients`, so marking a
-- use does not move the client's governance revision.
-- Keep equivalent to migrations/sqlite/0010_dynamic_registration.sql.

CREATE TABLE dcr_registrations (
    client_id          TEXT PRIMARY KEY REFERENCES clients (client_id) ON DELETE CASCADE,
    source_address     TEXT,
    software_id        TEXT,
    statement_issuer   TEXT,
    initial_token_id   TEXT,
    dedupe_key         TEXT NOT NULL,
    access_token_hash  TEXT NOT NULL UNIQUE,
    registered_at      BIGINT NOT NULL,
    last_authorized_at BIGINT,
    last_token_at      BIGINT
);
CREATE INDEX dcr_registrations_dedupe ON dcr_registrations (dedupe_key, registered_at);
CREATE INDEX dcr_registrations_registered ON dcr_registrations (registered_at);

-- Initial access tokens (RFC 7591 §3), stored as SHA-256 of the token.
CREATE TABLE dcr_initial_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    tier        TEXT NOT NULL,
    max_uses    INTEGER,
    uses        INTEGER NOT NULL DEFAULT 0,
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  BIGINT
);

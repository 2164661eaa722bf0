-- Steward schema v1 (SQLite). Keep equivalent to migrations/postgres/0001_initial.sql.
-- Times are Unix seconds. Codes, tokens, secrets and session ids are stored as hashes only.

CREATE TABLE clients (
    client_id          TEXT    PRIMARY KEY NOT NULL,
    kind               TEXT    NOT NULL,
    display_name       TEXT,
    first_seen         INTEGER NOT NULL,
    last_seen          INTEGER NOT NULL,
    state              TEXT    NOT NULL,
    owner_organization TEXT,
    owner_business     TEXT,
    owner_technical    TEXT,
    owner_contact      TEXT,
    trust_tier         TEXT    NOT NULL,
    secret_hash        TEXT,
    registration       TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX clients_kind_state ON clients (kind, state);
CREATE INDEX clients_state ON clients (state);

CREATE TABLE client_metadata_versions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id     TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    content_hash  TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    fetched_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    etag          TEXT,
    last_modified TEXT,
    peer_addr     TEXT,
    UNIQUE (client_id, content_hash)
);
CREATE INDEX client_metadata_versions_latest ON client_metadata_versions (client_id, last_seen_at);

CREATE TABLE users (
    id            TEXT    PRIMARY KEY NOT NULL,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE sessions (
    id_hash    TEXT    PRIMARY KEY NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    auth_time  INTEGER NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE grants (
    id                  TEXT    PRIMARY KEY NOT NULL,
    user_id             TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id           TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    redirect_uri        TEXT    NOT NULL,
    scopes              TEXT    NOT NULL,
    resource            TEXT,
    metadata_version_id INTEGER REFERENCES client_metadata_versions (id) ON DELETE SET NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    revoked_at          INTEGER,
    UNIQUE (user_id, client_id, redirect_uri)
);
CREATE INDEX grants_client_id ON grants (client_id);
CREATE INDEX grants_metadata_version_id ON grants (metadata_version_id);

CREATE TABLE refresh_families (
    id         TEXT    PRIMARY KEY NOT NULL,
    grant_id   TEXT    NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id    TEXT    REFERENCES users (id) ON DELETE CASCADE,
    scopes     TEXT    NOT NULL,
    resource   TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX refresh_families_grant_id ON refresh_families (grant_id);
CREATE INDEX refresh_families_client_id ON refresh_families (client_id);
CREATE INDEX refresh_families_user_id ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT    PRIMARY KEY NOT NULL,
    family_id  TEXT    NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE authorization_codes (
    code_hash           TEXT    PRIMARY KEY NOT NULL,
    client_id           TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id             TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    grant_id            TEXT    NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    redirect_uri        TEXT    NOT NULL,
    code_challenge      TEXT    NOT NULL,
    scopes              TEXT    NOT NULL,
    resource            TEXT,
    metadata_version_id INTEGER REFERENCES client_metadata_versions (id) ON DELETE SET NULL,
    auth_time           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    consumed_at         INTEGER,
    family_id           TEXT    REFERENCES refresh_families (id) ON DELETE SET NULL
);
CREATE INDEX authorization_codes_client_id ON authorization_codes (client_id);
CREATE INDEX authorization_codes_user_id ON authorization_codes (user_id);
CREATE INDEX authorization_codes_grant_id ON authorization_codes (grant_id);
CREATE INDEX authorization_codes_metadata_version_id ON authorization_codes (metadata_version_id);
CREATE INDEX authorization_codes_family_id ON authorization_codes (family_id);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

CREATE TABLE access_tokens (
    jti        TEXT    PRIMARY KEY NOT NULL,
    token_hash TEXT    UNIQUE,
    client_id  TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id    TEXT    REFERENCES users (id) ON DELETE CASCADE,
    grant_id   TEXT    REFERENCES grants (id) ON DELETE CASCADE,
    family_id  TEXT    REFERENCES refresh_families (id) ON DELETE CASCADE,
    scopes     TEXT    NOT NULL,
    resource   TEXT,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_client_id ON access_tokens (client_id);
CREATE INDEX access_tokens_user_id ON access_tokens (user_id);
CREATE INDEX access_tokens_grant_id ON access_tokens (grant_id);
CREATE INDEX access_tokens_family_id ON access_tokens (family_id);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

CREATE TABLE signing_keys (
    kid                   TEXT    PRIMARY KEY NOT NULL,
    algorithm             TEXT    NOT NULL,
    public_jwk            TEXT    NOT NULL,
    private_key_encrypted BLOB    NOT NULL,
    created_at            INTEGER NOT NULL,
    activated_at          INTEGER,
    retire_after          INTEGER,
    retired_at            INTEGER
);
-- At most one active key, even under concurrent activations.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((1))
    WHERE activated_at IS NOT NULL AND retire_after IS NULL AND retired_at IS NULL;
CREATE INDEX signing_keys_retire_after ON signing_keys (retire_after);

CREATE TABLE audit_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    client_id TEXT,
    subject   TEXT,
    detail    TEXT    NOT NULL
);
CREATE INDEX audit_events_client_id ON audit_events (client_id, id);
CREATE INDEX audit_events_action ON audit_events (action, id);

CREATE TABLE client_assertion_jtis (
    client_id  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expires_at ON client_assertion_jtis (expires_at);

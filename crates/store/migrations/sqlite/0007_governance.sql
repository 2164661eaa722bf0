-- Governance (issue 13): roles, client owners, access requests, approvals.
-- Keep equivalent to migrations/postgres/0007_governance.sql.
--
-- Lifecycle states (pending, active, suspended, revoked, expired) are the
-- text of clients.state. The earlier `retired` state is gone: a retired
-- client had reached its natural end, which is now `expired`.
--
-- clients.owner_organization and clients.owner_contact stay the client's
-- accountable organisation and incident contact. clients.owner_business and
-- owner_technical held free text; owners are now Steward users in
-- client_owners (several of each kind, in the order they were added, so the
-- next one answers when one leaves). Free-text values naming an existing
-- user are carried over below; the columns stay for older readers and
-- governance no longer writes them.

UPDATE clients SET state = 'expired' WHERE state = 'retired';

CREATE TABLE user_roles (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX user_roles_role ON user_roles (role);

-- `seq` is the succession order: the first remaining owner of a kind answers.
CREATE TABLE client_owners (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id   TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind      TEXT    NOT NULL,
    added_at  INTEGER NOT NULL,
    UNIQUE (client_id, user_id, kind)
);
CREATE INDEX client_owners_user_id ON client_owners (user_id);

INSERT INTO client_owners (client_id, user_id, kind, added_at)
    SELECT c.client_id, u.id, 'business', c.updated_at
    FROM clients c JOIN users u ON u.username = c.owner_business ORDER BY c.client_id;
INSERT INTO client_owners (client_id, user_id, kind, added_at)
    SELECT c.client_id, u.id, 'technical', c.updated_at
    FROM clients c JOIN users u ON u.username = c.owner_technical ORDER BY c.client_id;

-- People are kept by id and by the username they had then (the record
-- outlives a deleted account, like the audit trail). Scopes are
-- space-separated, as everywhere in the schema.
CREATE TABLE access_requests (
    id                     TEXT    PRIMARY KEY NOT NULL,
    client_id              TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    resource               TEXT    NOT NULL,
    scopes                 TEXT    NOT NULL,
    requested_by           TEXT    NOT NULL,
    requested_by_name      TEXT    NOT NULL,
    justification          TEXT    NOT NULL,
    metadata_digest        TEXT,
    state                  TEXT    NOT NULL,
    created_at             INTEGER NOT NULL,
    expires_at             INTEGER NOT NULL,
    decided_by             TEXT,
    decided_by_name        TEXT,
    decided_at             INTEGER,
    decision_justification TEXT,
    granted_scopes         TEXT    NOT NULL DEFAULT '',
    approval_expires_at    INTEGER
);
CREATE INDEX access_requests_state ON access_requests (state, created_at);
CREATE INDEX access_requests_client_id ON access_requests (client_id, created_at);

-- An approval is bound to the metadata digest it was granted on.
CREATE TABLE approvals (
    id              TEXT    PRIMARY KEY NOT NULL,
    client_id       TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    resource        TEXT    NOT NULL,
    scopes          TEXT    NOT NULL,
    metadata_digest TEXT,
    approved_by     TEXT    NOT NULL,
    approved_at     INTEGER NOT NULL,
    expires_at      INTEGER,
    request_id      TEXT    REFERENCES access_requests (id) ON DELETE SET NULL,
    self_approved   BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX approvals_client_id ON approvals (client_id, approved_at);
CREATE INDEX approvals_request_id ON approvals (request_id);

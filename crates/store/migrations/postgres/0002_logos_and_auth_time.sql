-- Client logos, fetched through the guarded fetcher and served by Steward
-- itself (never hot-linked), addressed by the SHA-256 of their bytes so any
-- node can serve a logo another node fetched.
CREATE TABLE logos (
    hash         TEXT   PRIMARY KEY NOT NULL,
    content_type TEXT   NOT NULL,
    body         BYTEA  NOT NULL,
    fetched_at   BIGINT NOT NULL
);

-- RFC 9068 auth_time for access tokens minted by refresh.
ALTER TABLE refresh_families ADD COLUMN auth_time BIGINT;

-- A replayed code marks itself, so a first redemption still issuing tokens
-- learns of the replay and revokes what it issued (OAuth 2.1 §4.1.3).
ALTER TABLE authorization_codes ADD COLUMN replayed_at BIGINT;

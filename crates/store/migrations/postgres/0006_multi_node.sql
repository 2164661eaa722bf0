-- Several nodes on one database (issue 11).
-- A rotated key is published at once and signs only from activated_at,
-- once every node must have reloaded it. Keys from before this migration
-- were published when they were activated.
ALTER TABLE signing_keys ADD COLUMN published_at BIGINT;
UPDATE signing_keys SET published_at = activated_at;

-- Facts every node must agree on, e.g. the issuer; one row per name, so the
-- first node to record one decides it for all.
CREATE TABLE deployment (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

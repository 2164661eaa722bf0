-- Brute-force attempt counters shared by every node on this database, in
-- fixed windows (issue 11 items 10-11). The key is a hash chosen by the server.
CREATE TABLE attempt_counters (
    key          TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX attempt_counters_expires_at ON attempt_counters (expires_at);

-- The scheduled purge (issue 11 item 12) finds its rows by these.
CREATE INDEX audit_events_action_at ON audit_events (action, at);
CREATE INDEX logos_fetched_at ON logos (fetched_at);
CREATE INDEX clients_kind_first_seen ON clients (kind, first_seen);

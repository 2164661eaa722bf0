-- Policy reloads across nodes (issue 13 item 5). `steward policy reload`
-- increments `generation` (one row, id 1; created by the first request);
-- every node polls it and reloads its policy set when it moves.
CREATE TABLE policy_generation (
    id           BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    generation   BIGINT NOT NULL,
    requested_at BIGINT NOT NULL
);

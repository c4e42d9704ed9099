-- Runs: what a deployment became. The run keeps a snapshot of everything it resolved
-- (module versions, scripts), so editing a module never changes a run.
CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    owner            TEXT NOT NULL REFERENCES users(name),
    module           TEXT NOT NULL,
    module_version   BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,
    keep_running     TEXT NOT NULL,
    timeout_seconds  BIGINT NOT NULL,
    tags             TEXT NOT NULL DEFAULT '',
    token_hash       TEXT NOT NULL,
    plan             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    state_changed_at BIGINT NOT NULL,
    ended_at         BIGINT
);
CREATE INDEX runs_owner ON runs(owner);

-- One row per node instance (`worker.3`). `completed` names the state this instance last
-- completed: a barrier is met when every instance completed the run's current state.
CREATE TABLE run_instances (
    run_id    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    node      TEXT NOT NULL,
    idx       BIGINT NOT NULL,
    connector TEXT NOT NULL,
    address   TEXT NOT NULL DEFAULT '',
    handle    TEXT NOT NULL DEFAULT '',
    completed TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, name)
);

-- Runtime parameters: NULL value = unset (readers block).
CREATE TABLE run_params (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT,
    PRIMARY KEY (run_id, key)
);

-- Links: writing `source` copies the value into `target`.
CREATE TABLE run_links (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (run_id, source, target)
);

CREATE TABLE run_events (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_logs (
    run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    instance TEXT NOT NULL,
    stream   TEXT NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_reports (
    run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    instance TEXT NOT NULL,
    file     TEXT NOT NULL,
    size     BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (run_id, instance, file)
);

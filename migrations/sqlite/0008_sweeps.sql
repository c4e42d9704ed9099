-- Parameter sweeps: one deployment launched over a grid of values. `spec` is the request
-- (JSON); each point keeps its varied values (JSON), its label and, once launched, its run.
CREATE TABLE sweeps (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    module     TEXT NOT NULL,
    spec       TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE TABLE sweep_points (
    sweep_id TEXT NOT NULL,
    idx      BIGINT NOT NULL,
    label    TEXT NOT NULL,
    point    TEXT NOT NULL,
    run_id   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sweep_id, idx)
);

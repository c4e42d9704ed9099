-- Users, sessions, API tokens, modules and their versions. Integers are BIGINT and booleans
-- are 0/1 so that the same queries read both backends through sqlx's Any driver.
CREATE TABLE users (
    name                TEXT PRIMARY KEY,
    password_hash       TEXT NOT NULL,
    is_admin            BIGINT NOT NULL DEFAULT 0,
    is_system           BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    keep_running        TEXT NOT NULL DEFAULT 'on-success',
    run_timeout_minutes BIGINT NOT NULL DEFAULT 30,
    ssh_public_key      TEXT NOT NULL DEFAULT ''
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE TABLE modules (
    path           TEXT PRIMARY KEY,
    parent         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    owner          TEXT NOT NULL REFERENCES users(name),
    public_read    BIGINT NOT NULL DEFAULT 0,
    public_write   BIGINT NOT NULL DEFAULT 0,
    public_deploy  BIGINT NOT NULL DEFAULT 0,
    published      BIGINT NOT NULL DEFAULT 0,
    latest_version BIGINT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX modules_parent ON modules(parent);

CREATE TABLE module_versions (
    path       TEXT NOT NULL REFERENCES modules(path) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    author     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    content    TEXT NOT NULL,
    PRIMARY KEY (path, version)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

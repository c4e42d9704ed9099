-- Connectors restricted to trusted users (the local one runs scripts on the server's host):
-- whether an administrator allowed this user there.
ALTER TABLE connector_accounts ADD COLUMN allowed BIGINT NOT NULL DEFAULT 0;

-- An administrator's default quota per connector, for every user without a quota of their own.
CREATE TABLE connector_defaults (
    connector  TEXT PRIMARY KEY,
    quota      BIGINT,
    updated_at BIGINT NOT NULL
);

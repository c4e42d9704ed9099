-- Per user and connector: settings, a credential and a quota. The credential is write-only:
-- the API and the UI say whether one is set and when, never what it is. The quota caps the
-- instances the user may have at once on that connector (NULL: no cap).
CREATE TABLE connector_accounts (
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    connector  TEXT NOT NULL,
    settings   TEXT NOT NULL DEFAULT '{}',
    credential TEXT NOT NULL DEFAULT '',
    quota      BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_name, connector)
);

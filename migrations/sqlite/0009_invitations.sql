-- Invitation links (registration policy `invite`): only the token's hash is kept, each is
-- used once. The first administrator is claimed by a settings row, so two first sign-ups at
-- the same moment cannot both become administrator (the key is unique on both backends).
CREATE TABLE invitations (
    token_hash TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_by    TEXT,
    used_at    BIGINT
);

INSERT INTO settings (key, value)
SELECT 'first_admin', name FROM users WHERE is_system = 0 ORDER BY is_admin DESC, created_at LIMIT 1
ON CONFLICT (key) DO NOTHING;

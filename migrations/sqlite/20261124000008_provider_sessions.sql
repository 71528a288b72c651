-- Provider session tokens shared by every replica (Vumi allows one live session per credential
-- pair, so replicas must not each log in). The token is sealed; the lease lets one replica log in
-- while the others wait and read what it stored.
CREATE TABLE provider_sessions (
    session_key   TEXT PRIMARY KEY,
    token_sealed  BLOB,
    expires_at    TEXT,
    lease_holder  TEXT,
    lease_until   TEXT
);

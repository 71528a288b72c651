-- linkgate's initial schema on SQLite. Every row that belongs to a caller carries tenant_id,
-- and every query filters on it. Upstream secrets are stored only sealed (AES-256-GCM).

CREATE TABLE link_sessions (
    id                BLOB PRIMARY KEY,
    tenant_id         BLOB NOT NULL,
    provider          TEXT NOT NULL,
    institution_id    TEXT,
    external_user_id  TEXT NOT NULL,
    state             TEXT NOT NULL,
    flow              TEXT NOT NULL,
    products          TEXT NOT NULL,      -- comma-separated product names
    link_token        TEXT,
    hosted_link_url   TEXT,
    mfa_question      TEXT,
    failure_reason    TEXT,
    failure_message   TEXT,
    redirect_uri      TEXT,
    public_token_sealed     BLOB,     -- the issued public token, sealed; NULL until SUCCEEDED
    public_token_expires_at TEXT,
    request_id        TEXT,               -- the creating call's idempotency key
    last_request_id   TEXT,               -- the last mutating call's idempotency key
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    expires_at        TEXT NOT NULL,
    next_poll_at      TEXT,        -- when the sync engine looks at it next; NULL when settled
    lease_owner       TEXT,
    lease_expires_at  TEXT
);
CREATE UNIQUE INDEX link_sessions_request ON link_sessions (tenant_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX link_sessions_due ON link_sessions (next_poll_at) WHERE next_poll_at IS NOT NULL;

-- Public tokens, keyed by SHA-256 so a token is claimed exactly once across replicas. The token
-- itself is kept (sealed) only on the link session that issued it.
CREATE TABLE public_tokens (
    id                BLOB NOT NULL UNIQUE,
    provider          TEXT NOT NULL,
    token_hash        BLOB NOT NULL,
    tenant_id         BLOB NOT NULL,
    link_session_id   BLOB,               -- NULL for tokens first seen at exchange
    institution_id    TEXT,
    external_user_id  TEXT,
    state             TEXT NOT NULL,      -- issued | exchanging | exchanged
    claim_expires_at  TEXT,
    connection_id     BLOB,
    created_at        TEXT NOT NULL,
    expires_at        TEXT,
    PRIMARY KEY (provider, token_hash)
);
CREATE INDEX public_tokens_listing ON public_tokens (tenant_id, state, id);

CREATE TABLE connections (
    id                BLOB PRIMARY KEY,
    tenant_id         BLOB NOT NULL,
    provider          TEXT NOT NULL,
    external_user_id  TEXT NOT NULL,
    state             TEXT NOT NULL,
    snapshot          TEXT NOT NULL,     -- the connection as served (domain::Connection)
    handle_sealed     BLOB,              -- the provider's handle; NULL once deleted
    next_poll_at      TEXT,
    lease_owner       TEXT,
    lease_expires_at  TEXT
);
CREATE INDEX connections_listing ON connections (tenant_id, id);
CREATE INDEX connections_due ON connections (next_poll_at) WHERE next_poll_at IS NOT NULL;

-- Every change of every connection, in order; the watch streams replay from here.
CREATE TABLE connection_events (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id         BLOB NOT NULL,
    connection_id     BLOB NOT NULL,
    provider          TEXT NOT NULL,
    external_user_id  TEXT NOT NULL,
    state             TEXT NOT NULL,
    snapshot          TEXT NOT NULL,
    occurred_at       TEXT NOT NULL
);
CREATE INDEX connection_events_tenant ON connection_events (tenant_id, id);
CREATE INDEX connection_events_connection ON connection_events (connection_id, id);

-- Imported data: one row per account, transaction, portfolio, position, portfolio transaction or
-- statement. Reads always go by connection and kind, ordered by sort_key then id.
CREATE TABLE connection_records (
    connection_id     BLOB NOT NULL,
    kind              TEXT NOT NULL,
    id                BLOB NOT NULL,
    tenant_id         BLOB NOT NULL,
    parent_id         BLOB,               -- account of a transaction or statement; portfolio of a position
    sort_key          TEXT NOT NULL,
    record_date       TEXT,
    body              TEXT NOT NULL,
    PRIMARY KEY (connection_id, kind, id)
);
CREATE INDEX connection_records_listing ON connection_records (connection_id, kind, sort_key, id);

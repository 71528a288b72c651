-- linkgate's initial schema on PostgreSQL. Every row that belongs to a caller carries tenant_id,
-- and every query filters on it. Upstream secrets are stored only sealed (AES-256-GCM).

CREATE TABLE link_sessions (
    id                UUID PRIMARY KEY,
    tenant_id         UUID NOT NULL,
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
    public_token_sealed     BYTEA,     -- the issued public token, sealed; NULL until SUCCEEDED
    public_token_expires_at TIMESTAMPTZ,
    request_id        TEXT,               -- the creating call's idempotency key
    last_request_id   TEXT,               -- the last mutating call's idempotency key
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    next_poll_at      TIMESTAMPTZ,        -- when the sync engine looks at it next; NULL when settled
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX link_sessions_request ON link_sessions (tenant_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX link_sessions_due ON link_sessions (next_poll_at) WHERE next_poll_at IS NOT NULL;

-- Public tokens, keyed by SHA-256 so a token is claimed exactly once across replicas. The token
-- itself is kept (sealed) only on the link session that issued it.
CREATE TABLE public_tokens (
    id                UUID NOT NULL UNIQUE,
    provider          TEXT NOT NULL,
    token_hash        BYTEA NOT NULL,
    tenant_id         UUID NOT NULL,
    link_session_id   UUID,               -- NULL for tokens first seen at exchange
    institution_id    TEXT,
    external_user_id  TEXT,
    state             TEXT NOT NULL,      -- issued | exchanging | exchanged
    claim_expires_at  TIMESTAMPTZ,
    connection_id     UUID,
    created_at        TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ,
    PRIMARY KEY (provider, token_hash)
);
CREATE INDEX public_tokens_listing ON public_tokens (tenant_id, state, id);

CREATE TABLE connections (
    id                UUID PRIMARY KEY,
    tenant_id         UUID NOT NULL,
    provider          TEXT NOT NULL,
    external_user_id  TEXT NOT NULL,
    state             TEXT NOT NULL,
    snapshot          JSONB NOT NULL,     -- the connection as served (domain::Connection)
    handle_sealed     BYTEA,              -- the provider's handle; NULL once deleted
    next_poll_at      TIMESTAMPTZ,
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ
);
CREATE INDEX connections_listing ON connections (tenant_id, id);
CREATE INDEX connections_due ON connections (next_poll_at) WHERE next_poll_at IS NOT NULL;

-- Every change of every connection, in order; the watch streams replay from here.
CREATE TABLE connection_events (
    id                BIGSERIAL PRIMARY KEY,
    tenant_id         UUID NOT NULL,
    connection_id     UUID NOT NULL,
    provider          TEXT NOT NULL,
    external_user_id  TEXT NOT NULL,
    state             TEXT NOT NULL,
    snapshot          JSONB NOT NULL,
    occurred_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX connection_events_tenant ON connection_events (tenant_id, id);
CREATE INDEX connection_events_connection ON connection_events (connection_id, id);

-- Imported data: one row per account, transaction, portfolio, position, portfolio transaction or
-- statement. Reads always go by connection and kind, ordered by sort_key then id.
CREATE TABLE connection_records (
    connection_id     UUID NOT NULL,
    kind              TEXT NOT NULL,
    id                UUID NOT NULL,
    tenant_id         UUID NOT NULL,
    parent_id         UUID,               -- account of a transaction or statement; portfolio of a position
    sort_key          TEXT NOT NULL,
    record_date       DATE,
    body              JSONB NOT NULL,
    PRIMARY KEY (connection_id, kind, id)
);
CREATE INDEX connection_records_listing ON connection_records (connection_id, kind, sort_key, id);

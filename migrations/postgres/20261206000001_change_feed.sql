-- The change feed (SyncAccountTransactions, SyncPortfolioTransactions, DATA_UPDATED events).
-- A connection counts the imports that changed its data (`data_version`). Each record remembers
-- the import that created it and the one that last changed it (for a tombstone, the one that
-- removed it), and the digest of what the provider served, so an import writes only what
-- changed. A record the provider no longer serves stays as a tombstone (`removed_at` set) for the
-- change window. Rows stored before the feed have no digest and version 0: their first import
-- after this migration reports them modified once.
ALTER TABLE connections ADD COLUMN data_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connection_records ADD COLUMN digest BIGINT;
ALTER TABLE connection_records ADD COLUMN created_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connection_records ADD COLUMN changed_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connection_records ADD COLUMN removed_at TIMESTAMPTZ;
-- A pending transaction's account, currency and amount: what a booked one must match to replace it.
ALTER TABLE connection_records ADD COLUMN pending_key TEXT;
-- On a booked transaction: the pending one it replaces.
ALTER TABLE connection_records ADD COLUMN pending_link UUID;
-- Tombstones past the change window are pruned by age.
CREATE INDEX connection_records_tombstones ON connection_records (removed_at) WHERE removed_at IS NOT NULL;

-- The change log the feed replays: one row per record an import added, modified or removed, in
-- import order. `paired_with` joins a booked transaction's addition and the removal of the
-- pending one it replaced, which the feed tells together. Kept for the change window.
CREATE TABLE record_changes (
    connection_id     UUID NOT NULL,
    kind              TEXT NOT NULL,
    version           BIGINT NOT NULL,
    id                UUID NOT NULL,
    tenant_id         UUID NOT NULL,
    parent_id         UUID,
    change            TEXT NOT NULL,
    paired_with       UUID,
    recorded_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connection_id, kind, version, id)
);
CREATE INDEX record_changes_age ON record_changes (recorded_at);

-- What an event says beyond the connection's state: DATA_UPDATED's counts, NEW_ACCOUNTS' ids.
ALTER TABLE connection_events ADD COLUMN details JSONB;

-- The built-in sandbox's transactions as callers changed them (SandboxService): a body replaces
-- or adds the transaction with that id, a NULL body removes it.
CREATE TABLE sandbox_transactions (
    connection_id     UUID NOT NULL,
    transaction_id    UUID NOT NULL,
    tenant_id         UUID NOT NULL,
    body              JSONB,
    changed_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connection_id, transaction_id)
);

-- A failure armed for a sandbox connection's next refresh (SandboxService.FailNextRefresh).
CREATE TABLE sandbox_failures (
    connection_id     UUID PRIMARY KEY,
    tenant_id         UUID NOT NULL,
    failure           TEXT NOT NULL
);

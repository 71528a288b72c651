-- The change feed (SyncAccountTransactions, SyncPortfolioTransactions, DATA_UPDATED events).
-- A connection counts the imports that changed its data (`data_version`). Each record remembers
-- the import that created it and the one that last changed it (for a tombstone, the one that
-- removed it), and the digest of what the provider served, so an import writes only what
-- changed. A record the provider no longer serves stays as a tombstone (`removed_at` set) for the
-- change window. Rows stored before the feed have no digest and version 0: their first import
-- after this migration reports them modified once.
ALTER TABLE connections ADD COLUMN data_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connection_records ADD COLUMN digest INTEGER;
ALTER TABLE connection_records ADD COLUMN created_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connection_records ADD COLUMN changed_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connection_records ADD COLUMN removed_at TEXT;
-- A pending transaction's account, currency and amount: what a booked one must match to replace it.
ALTER TABLE connection_records ADD COLUMN pending_key TEXT;
-- On a booked transaction: the pending one it replaces.
ALTER TABLE connection_records ADD COLUMN pending_link BLOB;
-- Tombstones past the change window are pruned by age.
CREATE INDEX connection_records_tombstones ON connection_records (removed_at) WHERE removed_at IS NOT NULL;

-- The change log the feed replays: one row per record an import added, modified or removed, in
-- import order. `paired_with` joins a booked transaction's addition and the removal of the
-- pending one it replaced, which the feed tells together. Kept for the change window.
CREATE TABLE record_changes (
    connection_id     BLOB NOT NULL,
    kind              TEXT NOT NULL,
    version           INTEGER NOT NULL,
    id                BLOB NOT NULL,
    tenant_id         BLOB NOT NULL,
    parent_id         BLOB,
    change            TEXT NOT NULL,
    paired_with       BLOB,
    recorded_at       TEXT NOT NULL,
    PRIMARY KEY (connection_id, kind, version, id)
);
CREATE INDEX record_changes_age ON record_changes (recorded_at);

-- What an event says beyond the connection's state: DATA_UPDATED's counts, NEW_ACCOUNTS' ids.
ALTER TABLE connection_events ADD COLUMN details TEXT;

-- The built-in sandbox's transactions as callers changed them (SandboxService): a body replaces
-- or adds the transaction with that id, a NULL body removes it.
CREATE TABLE sandbox_transactions (
    connection_id     BLOB NOT NULL,
    transaction_id    BLOB NOT NULL,
    tenant_id         BLOB NOT NULL,
    body              TEXT,
    changed_at        TEXT NOT NULL,
    PRIMARY KEY (connection_id, transaction_id)
);

-- A failure armed for a sandbox connection's next refresh (SandboxService.FailNextRefresh).
CREATE TABLE sandbox_failures (
    connection_id     BLOB PRIMARY KEY,
    tenant_id         BLOB NOT NULL,
    failure           TEXT NOT NULL
);

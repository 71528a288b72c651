-- Verified webhook deliveries, kept before they are answered and processed after: a delivery is
-- processed once however often the provider retries it (unique per provider and idempotency key).
CREATE TABLE webhook_inbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    provider      TEXT NOT NULL,
    delivery_key  TEXT NOT NULL,
    event         TEXT NOT NULL,
    subject_hash  BLOB,                -- SHA-256 of the provider and its id of the connection
    body_sealed   BLOB NOT NULL,       -- the delivery as received, sealed (it may name a token)
    received_at   TEXT NOT NULL,
    processed_at  TEXT,
    UNIQUE (provider, delivery_key)
);
CREATE INDEX webhook_inbox_pending ON webhook_inbox (id) WHERE processed_at IS NULL;

-- How a webhook finds its connection: providers name connections by their own id, which linkgate
-- keeps only as a hash (the id may be the secret handle itself).
ALTER TABLE connections ADD COLUMN upstream_ref_hash BLOB;
CREATE INDEX connections_upstream_ref ON connections (provider, upstream_ref_hash) WHERE upstream_ref_hash IS NOT NULL;

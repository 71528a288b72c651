-- Connection events are appended here by the transactions that change connections, which commit
-- concurrently and take no lock for it. The sequencer (one transaction at a time, under the
-- advisory lock the writers used to take) moves committed rows into connection_events, oldest
-- first, where the log's id sequence numbers them in the order they arrive: watchers still read
-- a log whose ids only grow, and no writer waits for another's commit.
CREATE TABLE connection_event_inbox (
    id                BIGSERIAL PRIMARY KEY,
    tenant_id         UUID NOT NULL,
    connection_id     UUID NOT NULL,
    provider          TEXT NOT NULL,
    external_user_id  TEXT NOT NULL,
    state             TEXT NOT NULL,
    snapshot          JSONB NOT NULL,
    occurred_at       TIMESTAMPTZ NOT NULL,
    event_type        TEXT NOT NULL,
    details           JSONB
);

-- How far the event log has been pruned: a watcher resuming from an older cursor gets the
-- current state (marked as a snapshot) instead of history that no longer exists.
CREATE TABLE event_log_horizon (
    singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
    pruned_through INTEGER NOT NULL
);
INSERT INTO event_log_horizon (singleton, pruned_through) VALUES (1, 0);

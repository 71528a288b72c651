-- Typed connection events: what each event records (see ConnectionEventType in the contract).
-- Events recorded before types existed were all state changes.
ALTER TABLE connection_events ADD COLUMN event_type TEXT NOT NULL DEFAULT 'state_changed';

-- Repair sessions: the connection a link session repairs in place, NULL for a session that links
-- a new connection.
ALTER TABLE link_sessions ADD COLUMN repair_connection_id UUID;

-- What a provider asks linkgate to remember between calls of one link attempt, sealed.
ALTER TABLE link_sessions ADD COLUMN upstream_state_sealed BLOB;

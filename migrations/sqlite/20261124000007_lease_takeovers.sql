-- Whether the current lease of a row was taken over from one that lapsed (its replica stopped or
-- stalled) rather than from a released one: what linkgate_lease_takeovers_total counts.
ALTER TABLE connections ADD COLUMN lease_taken_over BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE link_sessions ADD COLUMN lease_taken_over BOOLEAN NOT NULL DEFAULT FALSE;

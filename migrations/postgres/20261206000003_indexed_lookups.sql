-- Lookups by end user that used to read every row of a tenant.
--
-- A connection's institution, which the duplicate-link check matches on, as a column (it was only
-- in the snapshot); connections stored before are filled in from their snapshot.
ALTER TABLE connections ADD COLUMN institution_id TEXT;
UPDATE connections SET institution_id = snapshot->>'institution_id';
-- An end user's connections, by provider and institution, oldest first: the duplicate-link
-- check, erasure.
CREATE INDEX connections_end_user ON connections (tenant_id, external_user_id, provider, institution_id, id);

-- An end user's link sessions: the repairs an exchange without a session may complete, erasure.
CREATE INDEX link_sessions_end_user ON link_sessions (tenant_id, external_user_id);
-- The repair sessions of a connection.
CREATE INDEX link_sessions_repairs ON link_sessions (repair_connection_id) WHERE repair_connection_id IS NOT NULL;

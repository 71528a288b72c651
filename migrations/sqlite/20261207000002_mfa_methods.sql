-- The ways an institution offers to deliver its MFA code, while a link session waits for the
-- user to choose one (Deck's MfaMethodChoice): a JSON array of {"id", "label"}. NULL when the
-- session asks a question instead, or asks nothing.
ALTER TABLE link_sessions ADD COLUMN mfa_methods TEXT;

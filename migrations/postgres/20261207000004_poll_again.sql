-- Set when a webhook names a connection while a replica polls it: that poll may have read the
-- provider before the change the webhook announces, so whatever the poll stores next, the
-- connection is due again at once (and the flag cleared). Without it the poll's own schedule
-- overwrote the webhook's, and the change waited for the next regular poll.
ALTER TABLE connections ADD COLUMN poll_again BOOLEAN NOT NULL DEFAULT FALSE;

-- The webhook URL a connection's upstream link was last given, for providers told one per link
-- (MoneyKit's `webhook`): recorded at the exchange from the provider's answer, and again after the
-- sync engine points the link at a changed URL, so each change is sent upstream once. NULL when the
-- link was given none (or was made before linkgate recorded it).
ALTER TABLE connections ADD COLUMN upstream_webhook TEXT;

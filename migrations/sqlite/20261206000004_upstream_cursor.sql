-- Where a provider's own change feed stands for a connection (MoneyKit's transaction sync
-- cursor): written in the transaction that stores the import it came with, passed to the next
-- fetch so it asks only for what changed since. NULL until a provider hands one out; cleared when
-- the connection is deleted or a repair gives it a new upstream handle.
ALTER TABLE connections ADD COLUMN upstream_cursor TEXT;

-- API key scopes: what each key may call. Keys made before scopes existed keep everything they
-- could call then (`standard`) and none of the scopes added since.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'standard';   -- comma-separated names

-- The details of a connection's accounts: full account numbers and the owners' names, emails,
-- phones and addresses, the most sensitive data linkgate holds. Never in clear: each list is one
-- value per connection, sealed (AES-256-GCM) and bound to the tenant and connection; NULL when the
-- connection has none. Replaced by each import, destroyed with the connection.
CREATE TABLE account_details (
    connection_id   UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL,
    numbers_sealed  BYTEA,
    owners_sealed   BYTEA
);

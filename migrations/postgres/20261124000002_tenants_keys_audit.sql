-- Tenants (the internal services that call linkgate), their API keys, and the audit trail.

CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

-- Only an HMAC of each key's secret is stored: a leaked table yields no usable key.
CREATE TABLE api_keys (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id),
    secret_hmac BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Who did what to which resource. Append-only: the application never updates or deletes, and
-- the triggers below refuse it.
CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    occurred_at   TIMESTAMPTZ NOT NULL,
    tenant_id     UUID NOT NULL,
    api_key_id    UUID,                 -- NULL in dev mode
    action        TEXT NOT NULL,        -- create_link_session, exchange, read, refresh, delete
    resource_type TEXT NOT NULL,        -- link_session, connection
    resource_id   UUID NOT NULL,
    request_id    TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_resource ON audit_log (resource_id, id);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

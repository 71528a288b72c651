-- What PostgreSQL runs for one ExchangePublicToken of a sandbox token (src/store/sql.rs:
-- claim_public_token, which reads the link session on the same connection, then create_connection
-- with append_event), as pgbench runs it.
-- bench.py fills in {tenant}, and a real connection's {snapshot} and sealed {handle}.
-- The event is appended as linkgate does today, under the event-order advisory lock, when pgbench
-- runs with -D locked=1; with -D locked=0 it is appended with no lock into {unlocked_events}
-- (connection_event_inbox where the schema has it, else connection_events: the same row, the
-- same physical cost), which is what the write path costs once the lock is out of it.
-- The one liberty: each transaction takes the next issued token from bench_queue, where linkgate's
-- caller names its token; the lookup costs pgbench a little, never linkgate.
UPDATE public_tokens SET state = 'exchanging', claim_expires_at = now() + interval '60 seconds'
  WHERE provider = 'sandbox' AND token_hash = (SELECT token_hash FROM bench_queue WHERE n = (SELECT nextval('bench_queue_next')))
  AND tenant_id = '{tenant}'
  AND (state = 'issued' OR (state = 'exchanging' AND claim_expires_at < now()))
  AND (expires_at IS NULL OR expires_at > now()) RETURNING link_session_id, token_hash \gset
SELECT * FROM link_sessions WHERE tenant_id = '{tenant}' AND id = :link_session_id;
BEGIN;
INSERT INTO connections (id, tenant_id, provider, external_user_id, state, snapshot, handle_sealed, next_poll_at)
  VALUES (gen_random_uuid(), '{tenant}', 'sandbox', 'bench', 'pending', '{snapshot}', '\x{handle}', now() + interval '1 hour')
  RETURNING id AS connection_id \gset
UPDATE public_tokens SET state = 'exchanged', connection_id = :connection_id, claim_expires_at = NULL
  WHERE tenant_id = '{tenant}' AND provider = 'sandbox' AND token_hash = :token_hash;
\if :locked
WITH serialized AS MATERIALIZED (SELECT pg_advisory_xact_lock(4242001))
  INSERT INTO connection_events (tenant_id, connection_id, provider, external_user_id, state, snapshot, occurred_at, event_type)
  SELECT '{tenant}', :connection_id, 'sandbox', 'bench', 'pending', '{snapshot}', now(), 'state_changed' FROM serialized RETURNING id;
\else
INSERT INTO {unlocked_events} (tenant_id, connection_id, provider, external_user_id, state, snapshot, occurred_at, event_type)
  VALUES ('{tenant}', :connection_id, 'sandbox', 'bench', 'pending', '{snapshot}', now(), 'state_changed') RETURNING id;
\endif
COMMIT;

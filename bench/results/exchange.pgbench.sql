-- What PostgreSQL runs for one ExchangePublicToken of a sandbox token (src/store/sql.rs:
-- claim_public_token, which reads the link session on the same connection, then create_connection
-- with append_event), as pgbench runs it.
-- bench.py fills in 01a20f31-f09c-7189-be42-bbbf7fd21c08, and a real connection's {"id": "01a20f36-3d01-75c6-818f-61603f190112", "error": null, "state": "pending", "products": [{"state": "not_ready", "product": "accounts", "refreshed_at": null, "last_attempted_at": null}, {"state": "not_ready", "product": "transactions", "refreshed_at": null, "last_attempted_at": null}], "provider": "sandbox", "tenant_id": "01a20f31-f09c-7189-be42-bbbf7fd21c08", "created_at": "2026-11-24T20:19:02.529496Z", "updated_at": "2026-11-24T20:19:02.529496Z", "institution_id": "ins_sandbox_bank", "last_synced_at": null, "link_session_id": "01a20f36-390c-7595-9b59-41455de55dd7", "external_user_id": "bench-0", "institution_name": "Sandbox Bank"} and sealed 0191949153893c2225b401dbe1250e319a69cb3a2f814561b31a2d1de52d3e15f2e35c3a1084a3c05e9ea05a202af21b9cf59cf4163d8fdbe752f0f366b61ba93e3c0f3408cf285774bdc35d3dccaee4f16e2790b5028c9b8bea346a4fe87727c681adcb50bb1dd2d032de7bc0d8615cc18736.
-- The one liberty: each transaction takes the next issued token from bench_queue, where linkgate's
-- caller names its token; the lookup costs pgbench a little, never linkgate.
UPDATE public_tokens SET state = 'exchanging', claim_expires_at = now() + interval '60 seconds'
  WHERE provider = 'sandbox' AND token_hash = (SELECT token_hash FROM bench_queue WHERE n = (SELECT nextval('bench_queue_next')))
  AND tenant_id = '01a20f31-f09c-7189-be42-bbbf7fd21c08'
  AND (state = 'issued' OR (state = 'exchanging' AND claim_expires_at < now()))
  AND (expires_at IS NULL OR expires_at > now()) RETURNING link_session_id, token_hash \gset
SELECT * FROM link_sessions WHERE tenant_id = '01a20f31-f09c-7189-be42-bbbf7fd21c08' AND id = :link_session_id;
BEGIN;
INSERT INTO connections (id, tenant_id, provider, external_user_id, state, snapshot, handle_sealed, next_poll_at)
  VALUES (gen_random_uuid(), '01a20f31-f09c-7189-be42-bbbf7fd21c08', 'sandbox', 'bench', 'pending', '{"id": "01a20f36-3d01-75c6-818f-61603f190112", "error": null, "state": "pending", "products": [{"state": "not_ready", "product": "accounts", "refreshed_at": null, "last_attempted_at": null}, {"state": "not_ready", "product": "transactions", "refreshed_at": null, "last_attempted_at": null}], "provider": "sandbox", "tenant_id": "01a20f31-f09c-7189-be42-bbbf7fd21c08", "created_at": "2026-11-24T20:19:02.529496Z", "updated_at": "2026-11-24T20:19:02.529496Z", "institution_id": "ins_sandbox_bank", "last_synced_at": null, "link_session_id": "01a20f36-390c-7595-9b59-41455de55dd7", "external_user_id": "bench-0", "institution_name": "Sandbox Bank"}', '\x0191949153893c2225b401dbe1250e319a69cb3a2f814561b31a2d1de52d3e15f2e35c3a1084a3c05e9ea05a202af21b9cf59cf4163d8fdbe752f0f366b61ba93e3c0f3408cf285774bdc35d3dccaee4f16e2790b5028c9b8bea346a4fe87727c681adcb50bb1dd2d032de7bc0d8615cc18736', now() + interval '1 hour')
  RETURNING id AS connection_id \gset
UPDATE public_tokens SET state = 'exchanged', connection_id = :connection_id, claim_expires_at = NULL
  WHERE tenant_id = '01a20f31-f09c-7189-be42-bbbf7fd21c08' AND provider = 'sandbox' AND token_hash = :token_hash;
WITH serialized AS MATERIALIZED (SELECT pg_advisory_xact_lock(4242001))
  INSERT INTO connection_events (tenant_id, connection_id, provider, external_user_id, state, snapshot, occurred_at)
  SELECT '01a20f31-f09c-7189-be42-bbbf7fd21c08', :connection_id, 'sandbox', 'bench', 'pending', '{"id": "01a20f36-3d01-75c6-818f-61603f190112", "error": null, "state": "pending", "products": [{"state": "not_ready", "product": "accounts", "refreshed_at": null, "last_attempted_at": null}, {"state": "not_ready", "product": "transactions", "refreshed_at": null, "last_attempted_at": null}], "provider": "sandbox", "tenant_id": "01a20f31-f09c-7189-be42-bbbf7fd21c08", "created_at": "2026-11-24T20:19:02.529496Z", "updated_at": "2026-11-24T20:19:02.529496Z", "institution_id": "ins_sandbox_bank", "last_synced_at": null, "link_session_id": "01a20f36-390c-7595-9b59-41455de55dd7", "external_user_id": "bench-0", "institution_name": "Sandbox Bank"}', now() FROM serialized RETURNING id;
COMMIT;

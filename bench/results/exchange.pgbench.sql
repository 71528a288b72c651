-- What PostgreSQL runs for one ExchangePublicToken of a sandbox token (src/store/sql.rs:
-- claim_public_token, which reads the link session on the same connection, then create_connection
-- with append_event), as pgbench runs it.
-- bench.py fills in 01a20e51-980d-7416-9ecd-664677b0a64c, and a real connection's {"id": "01a20e55-d173-74e7-877f-a897fe76d861", "error": null, "state": "pending", "products": [{"state": "not_ready", "product": "accounts", "refreshed_at": null, "last_attempted_at": null}, {"state": "not_ready", "product": "transactions", "refreshed_at": null, "last_attempted_at": null}], "provider": "sandbox", "tenant_id": "01a20e51-980d-7416-9ecd-664677b0a64c", "created_at": "2026-11-24T16:13:54.931807Z", "updated_at": "2026-11-24T16:13:54.931807Z", "institution_id": "ins_sandbox_bank", "last_synced_at": null, "link_session_id": "01a20e55-cd80-70c4-a0d1-bdb4257d70f5", "external_user_id": "bench-0", "institution_name": "Sandbox Bank"} and sealed 01304186f0380d16206a9f6336ca9479b7ee5596723b94363a1b4d8ee78458a6035e3de89a72db126b57baf629303e6070c93b251d56abe47db25ad81e7e307247fe8412d52f7a3edd4bfc29171797859ec58ddeb480bab5ece8a577e3c4f92ef467c94f07933e89fc8d8b62e470cf0be1e8c9.
-- The one liberty: each transaction takes the next issued token from bench_queue, where linkgate's
-- caller names its token; the lookup costs pgbench a little, never linkgate.
UPDATE public_tokens SET state = 'exchanging', claim_expires_at = now() + interval '60 seconds'
  WHERE provider = 'sandbox' AND token_hash = (SELECT token_hash FROM bench_queue WHERE n = (SELECT nextval('bench_queue_next')))
  AND tenant_id = '01a20e51-980d-7416-9ecd-664677b0a64c'
  AND (state = 'issued' OR (state = 'exchanging' AND claim_expires_at < now()))
  AND (expires_at IS NULL OR expires_at > now()) RETURNING link_session_id, token_hash \gset
SELECT * FROM link_sessions WHERE tenant_id = '01a20e51-980d-7416-9ecd-664677b0a64c' AND id = :link_session_id;
BEGIN;
INSERT INTO connections (id, tenant_id, provider, external_user_id, state, snapshot, handle_sealed, next_poll_at)
  VALUES (gen_random_uuid(), '01a20e51-980d-7416-9ecd-664677b0a64c', 'sandbox', 'bench', 'pending', '{"id": "01a20e55-d173-74e7-877f-a897fe76d861", "error": null, "state": "pending", "products": [{"state": "not_ready", "product": "accounts", "refreshed_at": null, "last_attempted_at": null}, {"state": "not_ready", "product": "transactions", "refreshed_at": null, "last_attempted_at": null}], "provider": "sandbox", "tenant_id": "01a20e51-980d-7416-9ecd-664677b0a64c", "created_at": "2026-11-24T16:13:54.931807Z", "updated_at": "2026-11-24T16:13:54.931807Z", "institution_id": "ins_sandbox_bank", "last_synced_at": null, "link_session_id": "01a20e55-cd80-70c4-a0d1-bdb4257d70f5", "external_user_id": "bench-0", "institution_name": "Sandbox Bank"}', '\x01304186f0380d16206a9f6336ca9479b7ee5596723b94363a1b4d8ee78458a6035e3de89a72db126b57baf629303e6070c93b251d56abe47db25ad81e7e307247fe8412d52f7a3edd4bfc29171797859ec58ddeb480bab5ece8a577e3c4f92ef467c94f07933e89fc8d8b62e470cf0be1e8c9', now() + interval '1 hour')
  RETURNING id AS connection_id \gset
UPDATE public_tokens SET state = 'exchanged', connection_id = :connection_id, claim_expires_at = NULL
  WHERE tenant_id = '01a20e51-980d-7416-9ecd-664677b0a64c' AND provider = 'sandbox' AND token_hash = :token_hash;
WITH serialized AS MATERIALIZED (SELECT pg_advisory_xact_lock(4242001))
  INSERT INTO connection_events (tenant_id, connection_id, provider, external_user_id, state, snapshot, occurred_at)
  SELECT '01a20e51-980d-7416-9ecd-664677b0a64c', :connection_id, 'sandbox', 'bench', 'pending', '{"id": "01a20e55-d173-74e7-877f-a897fe76d861", "error": null, "state": "pending", "products": [{"state": "not_ready", "product": "accounts", "refreshed_at": null, "last_attempted_at": null}, {"state": "not_ready", "product": "transactions", "refreshed_at": null, "last_attempted_at": null}], "provider": "sandbox", "tenant_id": "01a20e51-980d-7416-9ecd-664677b0a64c", "created_at": "2026-11-24T16:13:54.931807Z", "updated_at": "2026-11-24T16:13:54.931807Z", "institution_id": "ins_sandbox_bank", "last_synced_at": null, "link_session_id": "01a20e55-cd80-70c4-a0d1-bdb4257d70f5", "external_user_id": "bench-0", "institution_name": "Sandbox Bank"}', now() FROM serialized RETURNING id;
COMMIT;

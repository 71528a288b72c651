//! Webhooks in: a provider whose deliveries carry an ES256 JWT (the recording sandbox, set up as
//! Vumi and MoneyKit sign) posts to `/webhooks/sandbox`. A verified delivery makes its READY
//! connection poll at once instead of at its six-hourly refresh; forged, stale, replayed and
//! oversized ones are refused with their verdicts, counted, and never processed.

use crate::sandbox::{RecordingCounters, RecordingSandbox, SANDBOX_SIGNATURE_HEADER};
use crate::support::database::Backend;
use crate::support::server::{PATIENCE, TestApp, spawn_app_with, test_settings};
use linkgate::pb;
use linkgate_mocks::jws::{SigningKey, body_sha256};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

struct Hooks {
    app: TestApp,
    counters: RecordingCounters,
    key: SigningKey,
    http: reqwest::Client,
}

impl Hooks {
    async fn start() -> Self {
        let key = SigningKey::generate("key-1");
        let sandbox = test_settings("unused").providers.sandbox;
        let (registry, counters) = RecordingSandbox::with_webhooks(
            sandbox,
            vec![serde_json::from_value(key.jwk()).expect("a mock key is a JWK")],
        );
        let app = spawn_app_with(Backend::Sqlite, |_| {}, Some(registry)).await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self { app, counters, key, http: reqwest::Client::new() }
    }

    fn url(&self, provider: &str) -> String {
        format!("http://{}/webhooks/{provider}", self.app.http_addr)
    }

    /// A delivery body naming the connection whose handle is `handle`.
    fn body(id: &str, handle: &str) -> Vec<u8> {
        json!({"id": id, "event": "connection.updated", "connection": handle}).to_string().into_bytes()
    }

    fn token(&self, body: &[u8]) -> String {
        self.key.sign(&json!({"iat": chrono::Utc::now().timestamp(), "request_body_sha256": body_sha256(body)}))
    }

    /// Posts `body` with `token` (if any) to `/webhooks/{provider}`; the status and the verdict.
    async fn post(&self, provider: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, String) {
        let mut request = self.http.post(self.url(provider)).body(body);
        if let Some(token) = token {
            request = request.header(SANDBOX_SIGNATURE_HEADER, token);
        }
        let response = request.send().await.expect("the HTTP listener answers");
        (response.status(), response.text().await.unwrap().trim().to_owned())
    }

    /// A READY connection and its handle.
    async fn ready_connection(&mut self) -> (pb::Connection, String) {
        let connection = self.app.ready_connection("ins_sandbox_bank", "user-1").await;
        let handle = self.counters.handles.lock().unwrap().last().cloned().expect("a handle was issued");
        (connection, handle)
    }

    fn status_checks(&self) -> usize {
        self.counters.status_checks.load(Ordering::SeqCst)
    }

    async fn metric(&self, verdict: &str) -> f64 {
        let text =
            self.http.get(format!("http://{}/metrics", self.app.http_addr)).send().await.unwrap().text().await.unwrap();
        let series = format!("linkgate_webhook_deliveries_total{{provider=\"sandbox\",verdict=\"{verdict}\"}}");
        text.lines()
            .find(|line| line.starts_with(&series))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }
}

/// Waits until the provider was asked about a connection more than `before` times.
async fn wait_for_poll(hooks: &Hooks, before: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hooks.status_checks() <= before {
        assert!(tokio::time::Instant::now() < deadline, "the webhook never led to a poll");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_verified_delivery_polls_its_connection_at_once_and_a_replay_changes_nothing() {
    let mut hooks = Hooks::start().await;
    let (_, handle) = hooks.ready_connection().await;
    // READY: the next poll is six hours away.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = hooks.status_checks();

    let body = Hooks::body("delivery-1", &handle);
    let token = hooks.token(&body);
    assert_eq!(hooks.post("sandbox", Some(&token), body.clone()).await, (StatusCode::OK, "accepted".into()));
    wait_for_poll(&hooks, before).await;

    // The provider retries, or someone replays a captured delivery: answered, never processed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = hooks.status_checks();
    assert_eq!(hooks.post("sandbox", Some(&token), body).await, (StatusCode::OK, "duplicate".into()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hooks.status_checks(), settled, "a duplicate delivery polled again");
    assert_eq!(hooks.metric("accepted").await, 1.0);
    assert_eq!(hooks.metric("duplicate").await, 1.0);
}

#[tokio::test]
async fn forged_stale_and_oversized_deliveries_are_refused_counted_and_never_processed() {
    let mut hooks = Hooks::start().await;
    let (_, handle) = hooks.ready_connection().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = hooks.status_checks();
    let body = |id: &str| Hooks::body(id, &handle);
    let now = chrono::Utc::now().timestamp();

    let forger = SigningKey::generate("key-1");
    let bad_signature = forger.sign(&json!({"iat": now, "request_body_sha256": body_sha256(&body("a"))}));
    let wrong_alg = hooks.key.sign_with_header(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "key-1"}),
        &json!({"iat": now, "request_body_sha256": body_sha256(&body("b"))}),
    );
    let stale = hooks.key.sign(&json!({"iat": now - 600, "request_body_sha256": body_sha256(&body("c"))}));
    let future = hooks.key.sign(&json!({"iat": now + 600, "request_body_sha256": body_sha256(&body("d"))}));
    let other_body = hooks.token(&body("another delivery"));
    let unbound = hooks.key.sign(&json!({"iat": now}));
    let unknown_kid = SigningKey::generate("key-9");
    let unknown = unknown_kid.sign(&json!({"iat": now, "request_body_sha256": body_sha256(&body("g"))}));

    // (case, token, body, expected status, expected verdict)
    type Case = (&'static str, Option<String>, Vec<u8>, StatusCode, &'static str);
    let cases: Vec<Case> = vec![
        ("signed by another key", Some(bad_signature), body("a"), StatusCode::UNAUTHORIZED, "bad_signature"),
        ("HS256 instead of ES256", Some(wrong_alg), body("b"), StatusCode::UNAUTHORIZED, "wrong_algorithm"),
        ("issued ten minutes ago", Some(stale), body("c"), StatusCode::UNAUTHORIZED, "stale"),
        ("issued ten minutes ahead", Some(future), body("d"), StatusCode::UNAUTHORIZED, "stale"),
        ("signed for another body", Some(other_body), body("e"), StatusCode::UNAUTHORIZED, "body_mismatch"),
        ("no body hash", Some(unbound), body("f"), StatusCode::UNAUTHORIZED, "body_mismatch"),
        ("a key the provider does not have", Some(unknown), body("g"), StatusCode::UNAUTHORIZED, "unknown_key"),
        ("no signature", None, body("h"), StatusCode::UNAUTHORIZED, "missing_signature"),
        ("not a JWT", Some("garbage".into()), body("i"), StatusCode::BAD_REQUEST, "malformed"),
        ("over 256 KiB", Some(hooks.token(b"x")), vec![b'x'; 300 * 1024], StatusCode::PAYLOAD_TOO_LARGE, "oversized"),
    ];
    for (case, token, body, status, verdict) in cases {
        assert_eq!(hooks.post("sandbox", token.as_deref(), body).await, (status, verdict.to_owned()), "{case}");
    }
    let (status, _) = hooks.post("deck", Some(&hooks.token(&body("j"))), body("j")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a provider without webhooks takes none");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hooks.status_checks(), before, "a refused delivery was processed");
    for (verdict, count) in [("bad_signature", 1.0), ("wrong_algorithm", 1.0), ("stale", 2.0), ("oversized", 1.0)] {
        assert_eq!(hooks.metric(verdict).await, count, "{verdict}");
    }
}

#[tokio::test]
async fn keys_are_fetched_once_and_unknown_ones_are_not_fetched_again_at_once() {
    let mut hooks = Hooks::start().await;
    let (_, handle) = hooks.ready_connection().await;
    for id in ["1", "2", "3"] {
        let body = Hooks::body(id, &handle);
        let token = hooks.token(&body);
        assert_eq!(hooks.post("sandbox", Some(&token), body).await.1, "accepted");
    }
    assert_eq!(hooks.counters.key_fetches.load(Ordering::SeqCst), 1, "the key is cached");

    let stranger = SigningKey::generate("key-unknown");
    for id in ["4", "5", "6"] {
        let body = Hooks::body(id, &handle);
        let claims: Value = json!({"iat": chrono::Utc::now().timestamp(), "request_body_sha256": body_sha256(&body)});
        assert_eq!(hooks.post("sandbox", Some(&stranger.sign(&claims)), body).await.1, "unknown_key");
    }
    assert_eq!(hooks.counters.key_fetches.load(Ordering::SeqCst), 2, "an unknown kid is asked about once");
}

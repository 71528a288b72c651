//! gRPC-Web on the gRPC port, spoken at the HTTP level over HTTP/1.1 as a browser would: calls and
//! server streams answer as over gRPC and are counted alike, a refused caller gets gRPC's status
//! and reason, and CORS lets only the configured origins' pages call.

use crate::support::database::Backend;
use crate::support::server::{PATIENCE, TestApp, spawn_app_with};
use crate::support::status::reason;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use linkgate::pb;
use prost::Message;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

const GRPC_WEB: &str = "application/grpc-web+proto";
const ALLOWED: &str = "http://app.example.test:5173";

async fn app() -> TestApp {
    spawn_app_with(
        Backend::Sqlite,
        |settings| settings.grpc_web.grpc_web_allowed_origins = vec![HeaderValue::from_static(ALLOWED)],
        None,
    )
    .await
}

/// `message` as the body of a gRPC-Web request: one uncompressed length-prefixed frame.
fn frame(message: &impl Message) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_u8(0);
    body.put_u32(u32::try_from(message.encoded_len()).unwrap());
    message.encode(&mut body).unwrap();
    body.to_vec()
}

/// An HTTP/1.1 client, as a browser on a plain-TCP page uses.
fn client() -> reqwest::Client {
    // reqwest is built without a rustls provider of its own; linkgate uses ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().http1_only().build().unwrap()
}

/// A gRPC-Web call over HTTP/1.1, with `headers` beside the protocol's own.
fn post(
    app: &TestApp,
    method: &str,
    message: &impl Message,
    headers: &[(&'static str, &str)],
) -> reqwest::RequestBuilder {
    let mut request = client()
        .post(format!("http://{}/linkgate.v1.{method}", app.grpc_addr))
        .header("content-type", GRPC_WEB)
        .header("x-grpc-web", "1")
        .timeout(PATIENCE)
        .body(frame(message));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

/// A gRPC-Web answer taken apart: its messages, and its status (from the trailer frame, or from
/// the headers of a trailers-only answer).
struct Answer {
    headers: HeaderMap,
    messages: Vec<Bytes>,
    status: tonic::Status,
}

async fn answer(response: reqwest::Response) -> Answer {
    assert_eq!(response.version(), reqwest::Version::HTTP_11, "spoken over HTTP/1.1");
    assert_eq!(response.status(), reqwest::StatusCode::OK, "gRPC-Web answers 200 and says the outcome in grpc-status");
    let headers = response.headers().clone();
    let mut body = response.bytes().await.expect("the body arrives");
    let (mut messages, mut trailers) = (Vec::new(), None);
    while body.has_remaining() {
        let (flags, length) = (body.get_u8(), body.get_u32() as usize);
        let payload = body.split_to(length);
        if flags & 0x80 == 0 {
            messages.push(payload);
        } else {
            trailers = Some(parse_trailers(&payload));
        }
    }
    let trailers = trailers.unwrap_or_else(|| headers.clone());
    let status = tonic::Status::from_header_map(&trailers).expect("a grpc-status");
    Answer { headers, messages, status }
}

/// The trailer frame's `name: value` lines as headers.
fn parse_trailers(payload: &[u8]) -> HeaderMap {
    let text = std::str::from_utf8(payload).expect("trailers are text");
    text.split("\r\n")
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').expect("name: value");
            (HeaderName::try_from(name.trim()).unwrap(), HeaderValue::try_from(value.trim()).unwrap())
        })
        .collect()
}

/// Calls of ListProviders the RPC metrics counted with `code`.
fn list_providers_counted(code: &str) -> u64 {
    let labels = ["linkgate.v1.LinkService", "ListProviders", code];
    linkgate::telemetry::metrics::metrics().rpc_requests.with_label_values(&labels).get()
}

#[tokio::test]
async fn unary_calls_answer_as_over_grpc_and_plain_grpc_over_http1_is_refused() {
    let app = app().await;
    let counted = list_providers_counted("OK");
    let answer = answer(
        post(&app, "LinkService/ListProviders", &pb::ListProvidersRequest::default(), &[]).send().await.unwrap(),
    )
    .await;
    assert_eq!(answer.status.code(), tonic::Code::Ok, "{:?}", answer.status);
    assert_eq!(answer.headers["content-type"], GRPC_WEB);
    assert!(answer.headers.contains_key("x-request-id"), "the request id comes back as over gRPC");
    let [message] = answer.messages.as_slice() else { panic!("one message, got {}", answer.messages.len()) };
    let providers = pb::ListProvidersResponse::decode(message.clone()).expect("the response message").providers;
    assert!(providers.iter().any(|provider| provider.id == "sandbox" && provider.enabled), "{providers:?}");
    assert_eq!(list_providers_counted("OK"), counted + 1, "counted in the RPC metrics like a gRPC call");

    // gRPC itself needs HTTP/2: over HTTP/1.1 only gRPC-Web is spoken.
    let plain = client()
        .post(format!("http://{}/linkgate.v1.LinkService/ListProviders", app.grpc_addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .timeout(PATIENCE)
        .body(frame(&pb::ListProvidersRequest::default()))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), reqwest::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_refused_caller_gets_the_status_and_reason_grpc_gives() {
    let mut app = app().await;
    let key = app.create_tenant("web").await;
    let request = pb::ListProvidersRequest::default();
    let counted = list_providers_counted("UNAUTHENTICATED");

    let over_grpc = app.link.list_providers(request).await.expect_err("no key, no dev mode");
    let over_web = answer(post(&app, "LinkService/ListProviders", &request, &[]).send().await.unwrap()).await.status;
    assert_eq!(over_web.code(), over_grpc.code());
    assert_eq!(over_web.code(), tonic::Code::Unauthenticated);
    assert_eq!(reason(&over_web), reason(&over_grpc));
    assert_eq!(over_web.message(), over_grpc.message());
    assert_eq!(list_providers_counted("UNAUTHENTICATED"), counted + 2, "both refusals counted alike");

    let bearer = format!("Bearer {key}");
    let authed =
        answer(post(&app, "LinkService/ListProviders", &request, &[("authorization", &bearer)]).send().await.unwrap())
            .await;
    assert_eq!(authed.status.code(), tonic::Code::Ok, "{:?}", authed.status);
    app.link.list_providers(request).await.expect_err("the gRPC client still sends no key");
}

#[tokio::test]
async fn server_streams_deliver_each_message_as_it_is_sent() {
    let mut app = app().await;
    let connection = app.ready_connection("ins_sandbox_bank", "web-user").await;
    let request = pb::WatchConnectionRequest { connection_id: connection.id.clone(), after_event_id: 0 };
    let mut response = post(&app, "ConnectionService/WatchConnection", &request, &[]).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);

    // The stream stays open; its first message, the connection as it is, arrives on its own.
    let mut received = BytesMut::new();
    let first = tokio::time::timeout(PATIENCE, async {
        loop {
            if received.len() >= 5 {
                let length = u32::from_be_bytes(received[1..5].try_into().unwrap()) as usize;
                if received.len() >= 5 + length {
                    assert_eq!(received[0], 0, "a message frame, not the trailers: the stream is still open");
                    return pb::WatchConnectionResponse::decode(&received[5..5 + length]).expect("a message");
                }
            }
            let chunk = response.chunk().await.expect("the stream goes on").expect("not ended");
            received.extend_from_slice(&chunk);
        }
    })
    .await
    .expect("the first message in time");
    let event = first.event.expect("an event");
    assert_eq!(event.connection.expect("the connection").state, pb::ConnectionState::Ready as i32);
}

#[tokio::test]
async fn cors_admits_only_the_configured_origins() {
    let app = app().await;
    let client = client();
    let preflight = |origin: &'static str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                format!("http://{}/linkgate.v1.LinkService/ListProviders", app.grpc_addr),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,x-grpc-web,x-user-agent")
            .timeout(PATIENCE)
            .send()
    };

    let allowed = preflight(ALLOWED).await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);
    assert_eq!(headers["access-control-allow-methods"], "POST");
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    for name in ["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"] {
        assert!(allowed_headers.contains(name), "{name} in {allowed_headers}");
    }

    let other = preflight("http://elsewhere.example.test").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"), "{:?}", other.headers());

    // The call itself tells an allowed page's client what it may read.
    let call = post(&app, "LinkService/ListProviders", &pb::ListProvidersRequest::default(), &[("origin", ALLOWED)])
        .send()
        .await
        .unwrap();
    assert_eq!(call.headers()["access-control-allow-origin"], ALLOWED);
    let exposed = call.headers()["access-control-expose-headers"].to_str().unwrap().to_owned();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }
    assert_eq!(answer(call).await.status.code(), tonic::Code::Ok);
}

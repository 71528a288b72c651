//! TLS and mutual TLS on the gRPC listener.

use crate::support::database::{Backend, TestDatabase};
use crate::support::server::test_settings;
use linkgate::pb;
use linkgate::server::Application;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A CA, a server certificate for localhost and a client certificate, written as PEM files.
struct Pki {
    ca: String,
    client: Identity,
    _directory: tempfile::TempDir,
}

fn pki(settings: &mut linkgate::config::Settings) -> Pki {
    let directory = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("localhost");
    let (client_cert, client_key) = leaf("billing-service");
    let write = |name: &str, contents: &str| {
        let path = directory.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };
    settings.tls.tls_cert = Some(write("server.pem", &server_cert));
    settings.tls.tls_key = Some(write("server.key", &server_key));
    settings.tls.tls_client_ca = Some(write("ca.pem", &ca.pem()));
    Pki { ca: ca.pem(), client: Identity::from_pem(client_cert, client_key), _directory: directory }
}

async fn channel(port: u16, ca: &str, client: Option<Identity>) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    if let Some(identity) = client {
        tls = tls.identity(identity);
    }
    Channel::from_shared(format!("https://localhost:{port}")).unwrap().tls_config(tls)?.connect().await
}

#[tokio::test]
async fn with_a_client_ca_only_clients_holding_a_certificate_it_signed_get_through() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let mut settings = test_settings(&database.url);
    let pki = pki(&mut settings);
    let application = Application::build(settings).await.unwrap();
    let port = application.grpc_addr().port();
    let stop = CancellationToken::new();
    let server = tokio::spawn(application.run_until_stopped(stop.clone()));

    let trusted = channel(port, &pki.ca, Some(pki.client.clone())).await.expect("mutual TLS handshake");
    let mut link = pb::link_service_client::LinkServiceClient::new(trusted);
    link.list_providers(pb::ListProvidersRequest {}).await.expect("call over mutual TLS");

    let anonymous = match channel(port, &pki.ca, None).await {
        Err(_) => None,
        Ok(channel) => Some(
            pb::link_service_client::LinkServiceClient::new(channel).list_providers(pb::ListProvidersRequest {}).await,
        ),
    };
    assert!(anonymous.is_none_or(|result| result.is_err()), "a client without a certificate must not be served");

    let plaintext = Channel::from_shared(format!("http://localhost:{port}")).unwrap().connect().await;
    if let Ok(channel) = plaintext {
        let result =
            pb::link_service_client::LinkServiceClient::new(channel).list_providers(pb::ListProvidersRequest {}).await;
        assert!(result.is_err(), "plaintext must not be served on a TLS listener");
    }

    stop.cancel();
    server.await.unwrap().unwrap();
}

/// A client that starts a TLS handshake and stalls (a ClientHello record cut short) is closed
/// once the handshake timeout passes; a full handshake is served as before.
#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_after_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let database = TestDatabase::create(Backend::Sqlite).await;
    let mut settings = test_settings(&database.url);
    settings.transport.handshake_timeout = std::time::Duration::from_millis(400);
    let pki = pki(&mut settings);
    let application = Application::build(settings).await.unwrap();
    let port = application.grpc_addr().port();
    let stop = CancellationToken::new();
    let server = tokio::spawn(application.run_until_stopped(stop.clone()));

    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A handshake record announcing 512 bytes, of which only the first 40 arrive.
    let mut record = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    record.resize(45, 0);
    stalled.write_all(&record).await.unwrap();
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), stalled.read(&mut [0u8; 64])).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "the stalled handshake is still open after 5 s: {closed:?}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300), "closed before the timeout");

    let trusted = channel(port, &pki.ca, Some(pki.client.clone())).await.expect("mutual TLS handshake");
    let mut link = pb::link_service_client::LinkServiceClient::new(trusted);
    link.list_providers(pb::ListProvidersRequest {}).await.expect("call over mutual TLS");
    stop.cancel();
    server.await.unwrap().unwrap();
}

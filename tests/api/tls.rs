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
    /// The client's certificate and key, PEM.
    client_pem: (String, String),
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
    Pki {
        ca: ca.pem(),
        client: Identity::from_pem(&client_cert, &client_key),
        client_pem: (client_cert, client_key),
        _directory: directory,
    }
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

/// Asserts that the server closes `stream` within 5 s, not before 300 ms.
async fn closed_in_time(stream: &mut (impl tokio::io::AsyncRead + Unpin)) {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        // What the server sends first (its HTTP/2 settings, TLS session tickets) is skipped.
        while let Ok(1..) = stream.read(&mut [0u8; 1024]).await {}
    })
    .await;
    assert!(closed.is_ok(), "still open after 5 s");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300), "closed before the timeout");
}

/// The handshake timeout covers the TLS handshake and the HTTP/2 preface after it: a client that
/// starts a handshake and stalls (a ClientHello record cut short) is closed, and so is one that
/// completes the handshake and then sends nothing; a full client is served as before.
#[tokio::test]
async fn stalled_tls_handshakes_and_silence_after_them_are_closed_after_the_handshake_timeout() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::AsyncWriteExt;
    let database = TestDatabase::create(Backend::Sqlite).await;
    let mut settings = test_settings(&database.url);
    settings.transport.handshake_timeout = std::time::Duration::from_millis(400);
    let pki = pki(&mut settings);
    let application = Application::build(settings).await.unwrap();
    let port = application.grpc_addr().port();
    let stop = CancellationToken::new();
    let server = tokio::spawn(application.run_until_stopped(stop.clone()));
    let before = linkgate::telemetry::metrics::metrics().rejections.with_label_values(&["handshake_timeout"]).get();

    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A handshake record announcing 512 bytes, of which only the first 40 arrive.
    let mut record = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    record.resize(45, 0);
    stalled.write_all(&record).await.unwrap();
    closed_in_time(&mut stalled).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap()).unwrap();
    let client_certs = vec![CertificateDer::from_pem_slice(pki.client_pem.0.as_bytes()).unwrap()];
    let client_key = PrivateKeyDer::from_pem_slice(pki.client_pem.1.as_bytes()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(client_certs, client_key)
        .unwrap();
    config.alpn_protocols.push(b"h2".to_vec());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut silent = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake completes");
    closed_in_time(&mut silent).await;
    let after = linkgate::telemetry::metrics::metrics().rejections.with_label_values(&["handshake_timeout"]).get();
    assert!(after - before >= 2, "both counted: {}", after - before);

    let trusted = channel(port, &pki.ca, Some(pki.client.clone())).await.expect("mutual TLS handshake");
    let mut link = pb::link_service_client::LinkServiceClient::new(trusted);
    link.list_providers(pb::ListProvidersRequest {}).await.expect("call over mutual TLS");
    stop.cancel();
    server.await.unwrap().unwrap();
}

//! Bounds on connections before any call starts, on both listeners: a cap on open connections
//! per listener (one past it is closed as accepted), the gRPC handshake timeout (a connection
//! must complete its TLS handshake, when TLS is on, and then send the HTTP/2 connection preface,
//! or for gRPC-Web over HTTP/1.1 its first request's head, in time; linkgate accepts TLS itself
//! so these are counted in plaintext) and the HTTP header-read timeout. Each connection closed by
//! a bound is counted in `linkgate_rejections_total{limit}` as `connection_cap`,
//! `handshake_timeout` or `header_timeout`. After the handshake, HTTP/2 and TCP keepalive
//! reclaim gRPC clients that vanished; on an HTTP/1.1 connection of the gRPC port each later
//! request's head is due within hyper's header-read timeout (30 s, which tonic turns on), idle
//! waits included.

use crate::config::TransportSettings;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// The empty line that ends an HTTP/1.1 request's head. The HTTP/2 client connection preface
/// ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") holds one too, in its first 18 bytes, so waiting for
/// it bounds both protocols' openings alike.
const HEAD_END: &[u8; 4] = b"\r\n\r\n";

fn count(limit: &str) {
    crate::telemetry::metrics::metrics().rejections.with_label_values(&[limit]).inc();
}

/// Open connections of one listener, at most as many as the semaphore has permits.
#[derive(Clone)]
struct ConnectionCap(Arc<Semaphore>);

impl ConnectionCap {
    fn new(max_connections: usize) -> Self {
        Self(Arc::new(Semaphore::new(max_connections)))
    }

    /// A permit held for the connection's life, or none when the listener is full (the caller
    /// drops the socket, which closes it).
    fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.0.clone().try_acquire_owned().ok();
        if permit.is_none() {
            count("connection_cap");
        }
        permit
    }
}

/// A gRPC connection's socket: plain TCP, or TLS over it.
pub type Socket = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// The gRPC listener's connections, capped, each with its TLS handshake done (when `tls` is
/// set) and its opening (HTTP/2 preface or HTTP/1.1 request head) due within the handshake
/// timeout of the accept. Sockets have Nagle's algorithm off (a response written in several
/// pieces would otherwise wait for the client's delayed ACK: 40 ms per call) and TCP keepalive
/// on, so a peer that vanished is noticed. TLS handshakes run in tasks of their own, so a slow
/// one holds up no other connection.
pub fn grpc_incoming(
    listener: TcpListener,
    bounds: &TransportSettings,
    tls: Option<TlsAcceptor>,
) -> impl Stream<Item = Result<Handshaking<Socket>, Infallible>> + Send + 'static {
    let cap = ConnectionCap::new(bounds.max_connections);
    let timeout = bounds.handshake_timeout;
    let mut incoming =
        TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(Duration::from_secs(60)));
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        // Ends when tonic stops serving and drops the receiver.
        while let Some(accepted) = tokio::select! {
            accepted = incoming.next() => accepted,
            () = sender.closed() => None,
        } {
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    pause_after_accept_failed("gRPC", &error).await;
                    continue;
                }
            };
            let Some(permit) = cap.admit() else { continue };
            let deadline = Instant::now() + timeout;
            let Some(tls) = &tls else {
                let _ = sender.send(Handshaking::new(Either::Left(stream), permit, deadline)).await;
                continue;
            };
            let (tls, sender) = (tls.clone(), sender.clone());
            tokio::spawn(async move {
                match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender.send(Handshaking::new(Either::Right(Box::new(stream)), permit, deadline)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                    Err(_) => count("handshake_timeout"),
                }
            });
        }
    });
    ReceiverStream::new(receiver).map(Ok)
}

/// A failed accept is logged and the listener paused briefly rather than stopped: the likely
/// cause, running out of file descriptors, passes as connections close.
async fn pause_after_accept_failed(listener: &str, error: &io::Error) {
    tracing::warn!(%error, listener, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A gRPC connection's socket: holds its listener's permit while open, and fails reads with
/// `TimedOut` (which ends the connection) once the handshake deadline passes before the client
/// sent (over TLS: in plaintext) its HTTP/2 preface or its first HTTP/1.1 request head.
pub struct Handshaking<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
    /// Until the opening is in: when it is due and how many bytes of [`HEAD_END`] the bytes read
    /// so far end with.
    pending: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<IO> Handshaking<IO> {
    fn new(io: IO, permit: OwnedSemaphorePermit, deadline: Instant) -> Self {
        Self { io, _permit: permit, pending: Some((Box::pin(tokio::time::sleep_until(deadline)), 0)) }
    }
}

/// How many bytes of [`HEAD_END`] the stream ends with after `bytes`, given it ended with
/// `matched` of them before; [`HEAD_END`]`.len()` once the empty line is complete.
fn head_end_matched(mut matched: usize, bytes: &[u8]) -> usize {
    for &byte in bytes {
        matched = match byte {
            _ if byte == HEAD_END[matched] => matched + 1,
            // A CR that breaks a partial match starts a new one.
            b'\r' => 1,
            _ => 0,
        };
        if matched == HEAD_END.len() {
            break;
        }
    }
    matched
}

impl<IO: AsyncRead + Unpin> AsyncRead for Handshaking<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let Some((deadline, matched)) = &mut this.pending else { return polled };
        match polled {
            Poll::Ready(Ok(())) => {
                *matched = head_end_matched(*matched, &buf.filled()[before..]);
                if *matched == HEAD_END.len() {
                    this.pending = None;
                }
                Poll::Ready(Ok(()))
            }
            // Polled only while waiting for bytes, so the timer wakes this read when it fires.
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                this.pending = None;
                count("handshake_timeout");
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 preface or HTTP/1.1 request head within the handshake timeout",
                )))
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Handshaking<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The TCP connection's info, TLS or not: the peer address the auth layer reads.
impl Connected for Handshaking<Socket> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match &self.io {
            Either::Left(tcp) => tcp.connect_info(),
            Either::Right(tls) => tls.get_ref().0.connect_info(),
        }
    }
}

/// Serves `router` over HTTP/1 on `listener` until `stop`, then lets open connections finish
/// their requests. Connections are capped; each must send a request's headers within the
/// header-read timeout of its start or of its previous response (so idle keep-alive and
/// slowloris connections are closed alike).
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    bounds: &TransportSettings,
    stop: CancellationToken,
) {
    let cap = ConnectionCap::new(bounds.max_connections);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(bounds.http_header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                pause_after_accept_failed("HTTP", &error).await;
                continue;
            }
        };
        let Some(permit) = cap.admit() else { continue };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                if error.is_timeout() {
                    count("header_timeout");
                }
                tracing::debug!(%error, "HTTP connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opening_ends_at_the_first_empty_line_however_it_is_split() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let request = b"POST /linkgate.v1.LinkService/ListProviders HTTP/1.1\r\nhost: x\r\n\r\nbody";
        for opening in [&preface[..], &request[..]] {
            assert_eq!(head_end_matched(0, opening), HEAD_END.len());
            for split in 0..opening.len() {
                let (first, rest) = opening.split_at(split);
                let matched = head_end_matched(0, first);
                let done = matched == HEAD_END.len() || head_end_matched(matched, rest) == HEAD_END.len();
                assert!(done, "split at {split}");
            }
        }
        assert_eq!(head_end_matched(0, b"POST / HTTP/1.1\r\nhost: x\r\n"), 2, "one line ended, head not");
        assert_eq!(head_end_matched(0, b"\r\n\r\r"), 1, "a CR that breaks a match starts one");
        assert_eq!(head_end_matched(2, b"\n"), 0);
    }
}

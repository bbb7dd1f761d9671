//! Running the router on a socket: connection cap, header-read timeout (slowloris), TLS,
//! graceful shutdown.
//!
//! Each accepted connection takes a permit from a semaphore of `max_connections`; when none
//! is left, the connection is answered `503 Service Unavailable` (a JSON body, `Retry-After`,
//! `Connection: close`; over TLS it is simply closed) and dropped, so a flood of idle
//! connections costs a bounded number of sockets and never blocks the accept loop.
//! A client must send its request headers within `header_read_timeout_ms` (also while a
//! kept-alive connection sits idle), and a TLS handshake must finish within the same time.
//! On shutdown the listener closes, in-flight requests finish, then connections close.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::Service;

/// Loads a TLS certificate chain and key (PEM) into an acceptor.
///
/// # Errors
///
/// When a file cannot be read or holds no usable certificate or key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid TLS certificate {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a TLS private key from {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the TLS certificate and key do not match")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// At most this many over-the-cap connections are being answered 503 at once.
const REJECTING: usize = 256;

/// The whole answer to a connection over `max_connections`.
fn over_capacity() -> Vec<u8> {
    let message = "too many open connections (max_connections); retry shortly";
    let body = serde_json::json!({
        "message": message,
        "error": {"code": 503, "message": message, "status": "UNAVAILABLE"},
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers 503 on a connection over the cap, without reading its request, then closes it.
async fn reject(
    mut stream: tokio::net::TcpStream,
    timeout: Duration,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(timeout, async {
        stream.write_all(&over_capacity()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes (a bounded amount): closing with
        // unread bytes would reset the connection and could lose the answer.
        let mut sink = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        std::io::Result::Ok(())
    })
    .await;
}

/// Serves `service` on `listener` until `shutdown` resolves, then drains in-flight requests
/// (for at most `drain`).
///
/// # Errors
///
/// Only when the listener itself fails; per-connection errors are logged and dropped.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> Result<()> {
    let app: Router = crate::routes::router(service.clone());
    let header_timeout = Duration::from_millis(service.config.header_read_timeout_ms.max(1));
    let permits = Arc::new(Semaphore::new(service.config.max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    // Connections over the cap being told so; more than this many at once are just closed.
    let rejecting = Arc::new(Semaphore::new(REJECTING));
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            service.metrics.rejected_connections.fetch_add(1, Relaxed);
            if tls.is_none() {
                if let Ok(slot) = rejecting.clone().try_acquire_owned() {
                    tokio::spawn(reject(
                        stream,
                        header_timeout.min(Duration::from_secs(2)),
                        slot,
                    ));
                }
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let metrics = service.metrics.clone();
        metrics.connections.fetch_add(1, Relaxed);
        metrics.open_connections.fetch_add(1, Relaxed);
        let svc = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            // A client that connects and sends nothing is dropped after the header
            // timeout too (hyper's timer starts only with the first byte).
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(header_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                metrics.open_connections.fetch_sub(1, Relaxed);
                drop(permit);
                return;
            }
            match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Some(acceptor) => {
                    if let Ok(Ok(tls_stream)) =
                        tokio::time::timeout(header_timeout, acceptor.accept(stream)).await
                    {
                        let conn = builder.serve_connection(TokioIo::new(tls_stream), svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                }
            }
            metrics.open_connections.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!("connections still open after the drain period; closing them");
        }
    }
    Ok(())
}

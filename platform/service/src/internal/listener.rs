//! The internal listener: TLS with a required client certificate from the internal CA.
//! Handshakes run off the accept loop (a slow or silent client cannot hold up the others),
//! bounded in number and time; each connection carries the caller its certificate names.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::identity::{Caller, component_of, server_name};
use super::pki::{Pki, PkiError, provider};

/// Handshakes in progress at once on one listener; a connection arriving when all places
/// are taken is closed at once (and counted), so silent clients cannot stop the listener
/// from accepting.
const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;
/// A client that has not finished its handshake by then is dropped: on the internal
/// network a handshake takes milliseconds.
const HANDSHAKE_TIMEOUT_MS: u64 = 3_000;
/// Connections handshaken but not yet taken by the server.
const ACCEPTED_QUEUE_MAX: usize = 64;

/// Picks the certificate of the component the client asked for by name (SNI), so that one
/// process serving several components (`corebank up`) presents each one's own certificate.
/// Without SNI, or for a name it does not hold, it presents its first.
#[derive(Debug)]
struct ByServerName {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for ByServerName {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = client_hello
            .server_name()
            .and_then(|name| self.by_name.get(name))
            .unwrap_or(&self.default);
        Some(Arc::clone(chosen))
    }
}

/// The TLS configuration of an internal server presenting the identities `pki` holds and
/// requiring a client certificate that chains to `pki`'s CA.
pub fn server_config(pki: &Pki) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = Arc::new(provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(pki.roots(), Arc::clone(&provider))
        .build()
        .map_err(|error| PkiError::Generate(format!("client verifier: {error}")))?;
    let mut by_name = HashMap::new();
    let mut default = None;
    for component in pki.components() {
        let certified = pki.identity(component)?.certified();
        by_name.insert(
            server_name(pki.trust_domain(), component),
            Arc::clone(&certified),
        );
        default.get_or_insert(certified);
    }
    let default = default.ok_or_else(|| PkiError::NoIdentity("any".to_owned()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| PkiError::Generate(format!("TLS versions: {error}")))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(ByServerName { by_name, default }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The caller a connection proved, handed to every request on it (axum's `ConnectInfo`).
/// `None` on a plain-text listener.
#[derive(Debug, Clone)]
pub struct PeerIdentity(pub Option<Caller>);

/// One accepted internal connection: the TLS stream and who is at the other end.
#[derive(Debug)]
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    peer: PeerIdentity,
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A listener that hands axum only connections whose client proved a component identity.
#[derive(Debug)]
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsConnection, SocketAddr)>,
    local_addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl TlsListener {
    /// Starts accepting on `listener` with `config` (see [`server_config`]); the caller's
    /// component is read from its certificate's SPIFFE id in `trust_domain`.
    pub fn new(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        trust_domain: &str,
    ) -> io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(ACCEPTED_QUEUE_MAX);
        let accept_task = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(config),
            trust_domain.to_owned(),
            sender,
        ));
        Ok(TlsListener {
            accepted,
            local_addr,
            accept_task,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    trust_domain: String,
    sender: mpsc::Sender<(TlsConnection, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX));
    let trust_domain: Arc<str> = Arc::from(trust_domain);
    loop {
        let (tcp, remote) = tokio::select! {
            () = sender.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(%error, "internal listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
            refused("handshakes_full");
            tracing::warn!(peer.address = %remote, "internal listener: too many handshakes in progress; connection closed");
            drop(tcp);
            continue;
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        let trust_domain = Arc::clone(&trust_domain);
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = tokio::time::timeout(
                Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
                acceptor.accept(tcp),
            )
            .await;
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    refused("handshake");
                    tracing::info!(%error, peer.address = %remote, "internal listener: TLS handshake refused");
                    return;
                }
                Err(_) => {
                    refused("timeout");
                    tracing::info!(peer.address = %remote, "internal listener: TLS handshake timed out");
                    return;
                }
            };
            let leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.clone().into_owned());
            let Some(leaf) = leaf else {
                refused("no_certificate");
                return;
            };
            let Some(component) = component_of(&leaf, &trust_domain) else {
                refused("no_component");
                tracing::warn!(peer.address = %remote, "internal listener: the client certificate names no component (SPIFFE id); connection closed");
                return;
            };
            let peer = PeerIdentity(Some(Caller::verified(component, leaf)));
            // The server stopped taking connections: nothing more to do.
            let _ = sender.send((TlsConnection { stream, peer }, remote)).await;
        });
    }
}

fn refused(reason: &'static str) {
    metrics::counter!("corebank_internal_tls_refused_total", "reason" => reason).increment(1);
}

impl Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop has ended (it only does when this listener is dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerIdentity {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.io().peer.clone()
    }
}

/// A plain-text internal listener (`COREBANK_INSECURE_INTERNAL=true`): no caller is proved.
#[derive(Debug)]
pub struct PlainListener(pub TcpListener);

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, PlainListener>> for PeerIdentity {
    fn connect_info(_stream: IncomingStream<'_, PlainListener>) -> Self {
        PeerIdentity(None)
    }
}

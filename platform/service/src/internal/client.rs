//! Calling another component: a gRPC channel or an HTTP client that presents this
//! component's certificate and accepts only a server holding the certificate of the
//! component it meant to reach (whatever address it dialled).

use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::identity::{CALLER_HEADER, server_name};
use super::pki::{ComponentIdentity, Pki, PkiError, provider};

/// Why a client could not be made. The message names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    #[error("{url:?} is not a URL like https://127.0.0.1:8081: {detail}")]
    BadUrl { url: String, detail: String },
    #[error(
        "{url:?} is plain http, but internal calls use mutual TLS: write https://…, \
         or set COREBANK_INSECURE_INTERNAL=true (development only)"
    )]
    PlainUrl { url: String },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("TLS client: {0}")]
    Tls(String),
}

/// How this process calls other components, as one of them (`me`).
#[derive(Debug, Clone)]
pub struct InternalClients {
    me: String,
    pki: Option<Pki>,
}

impl InternalClients {
    /// Mutual TLS as `me`, whose identity `pki` must hold.
    pub fn mutual_tls(pki: Pki, me: &str) -> Result<InternalClients, PkiError> {
        pki.identity(me)?;
        Ok(InternalClients {
            me: me.to_owned(),
            pki: Some(pki),
        })
    }

    /// Plain text (`COREBANK_INSECURE_INTERNAL=true`): the callee is told who calls, but
    /// nothing proves it.
    pub fn insecure(me: &str) -> InternalClients {
        InternalClients {
            me: me.to_owned(),
            pki: None,
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    /// The certificate and key this component calls with, `None` in plain text. A caller
    /// signs what it asserts on someone's behalf with this key
    /// ([`AssertionSigner`](super::assertion::AssertionSigner)), so that the callee can
    /// check the signature against the certificate the same connection proved.
    pub fn identity(&self) -> Result<Option<Arc<ComponentIdentity>>, PkiError> {
        self.pki
            .as_ref()
            .map(|pki| pki.identity(&self.me))
            .transpose()
    }

    /// The scheme internal URLs use in this mode.
    pub fn scheme(&self) -> &'static str {
        if self.pki.is_some() { "https" } else { "http" }
    }

    /// A gRPC endpoint to `url`, where `server` (a component name) must answer.
    pub fn endpoint(&self, url: &str, server: &str) -> Result<Endpoint, TlsClientError> {
        let bad_url = |detail: String| TlsClientError::BadUrl {
            url: url.to_owned(),
            detail,
        };
        let endpoint =
            Endpoint::from_shared(url.to_owned()).map_err(|error| bad_url(error.to_string()))?;
        let user_agent = format!("corebank-{}", self.me);
        let endpoint = endpoint
            .user_agent(user_agent)
            .map_err(|error| bad_url(error.to_string()))?;
        let Some(pki) = &self.pki else {
            return Ok(endpoint);
        };
        if !url.starts_with("https://") {
            return Err(TlsClientError::PlainUrl {
                url: url.to_owned(),
            });
        }
        let identity = pki.identity(&self.me)?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(pki.ca_pem()))
            .identity(Identity::from_pem(identity.cert_pem(), identity.key_pem()))
            .domain_name(server_name(pki.trust_domain(), server))
            .assume_http2(true);
        endpoint
            .tls_config(tls)
            .map_err(|error| TlsClientError::Tls(error.to_string()))
    }

    /// An HTTP client for calls to `server` (a component name) at `base_url`, each taking
    /// at most `timeout`, and the base URL to use with it. When `base_url` names an IP
    /// address, TLS would send no server name and a process holding several identities
    /// (`corebank up`) could not tell which certificate to present: the URL then names
    /// `<server>.<trust domain>` instead, resolved to that address by the client itself.
    pub fn http_client_for(
        &self,
        base_url: &str,
        server: &str,
        timeout: Duration,
    ) -> Result<(reqwest::Client, String), TlsClientError> {
        let bad_url = |detail: String| TlsClientError::BadUrl {
            url: base_url.to_owned(),
            detail,
        };
        let mut url = reqwest::Url::parse(base_url).map_err(|error| bad_url(error.to_string()))?;
        let Some(pki) = &self.pki else {
            return Ok((self.http_client(server, timeout)?, base_url.to_owned()));
        };
        if url.scheme() != "https" {
            return Err(TlsClientError::PlainUrl {
                url: base_url.to_owned(),
            });
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) | None => None,
        };
        let Some(ip) = ip else {
            return Ok((self.http_client(server, timeout)?, base_url.to_owned()));
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| bad_url("no port".to_owned()))?;
        let name = server_name(pki.trust_domain(), server);
        url.set_host(Some(&name))
            .map_err(|error| bad_url(error.to_string()))?;
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .resolve(&name, std::net::SocketAddr::new(ip, port))
            .use_preconfigured_tls(self.rustls_client_config(pki, server)?)
            .build()
            .map_err(|error| TlsClientError::Tls(error.to_string()))?;
        Ok((client, url.as_str().trim_end_matches('/').to_owned()))
    }

    /// An HTTP client for calls to `server` (a component name) that each take at most
    /// `timeout`. The URLs it is used with must name the server by host name, or reach a
    /// process holding only `server`'s certificate (see [`InternalClients::http_client_for`]).
    pub fn http_client(
        &self,
        server: &str,
        timeout: Duration,
    ) -> Result<reqwest::Client, TlsClientError> {
        install_crypto_provider();
        let builder = reqwest::Client::builder().timeout(timeout);
        let Some(pki) = &self.pki else {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                CALLER_HEADER,
                reqwest::header::HeaderValue::from_str(&self.me)
                    .map_err(|error| TlsClientError::Tls(error.to_string()))?,
            );
            return builder
                .default_headers(headers)
                .build()
                .map_err(|error| TlsClientError::Tls(error.to_string()));
        };
        let config = self.rustls_client_config(pki, server)?;
        builder
            .use_preconfigured_tls(config)
            .build()
            .map_err(|error| TlsClientError::Tls(error.to_string()))
    }

    fn rustls_client_config(
        &self,
        pki: &Pki,
        server: &str,
    ) -> Result<ClientConfig, TlsClientError> {
        let provider = Arc::new(provider());
        let inner = WebPkiServerVerifier::builder_with_provider(pki.roots(), Arc::clone(&provider))
            .build()
            .map_err(|error| TlsClientError::Tls(error.to_string()))?;
        let expected = ServerName::try_from(server_name(pki.trust_domain(), server))
            .map_err(|error| TlsClientError::Tls(error.to_string()))?;
        let identity = pki.identity(&self.me)?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsClientError::Tls(error.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ExpectComponent { inner, expected }))
            .with_client_auth_cert(identity.chain().to_vec(), identity.key().clone_key())
            .map_err(|error| TlsClientError::Tls(error.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The usual WebPKI check against the internal CA, for the name of the component meant,
/// whatever host the URL names (`https://127.0.0.1:…` reaches the rail only if the rail's
/// certificate answers).
#[derive(Debug)]
struct ExpectComponent {
    inner: Arc<WebPkiServerVerifier>,
    expected: ServerName<'static>,
}

impl ServerCertVerifier for ExpectComponent {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            &self.expected,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Makes ring the process's default TLS provider (reqwest is built without one of its own);
/// harmless when one is installed already.
pub fn install_crypto_provider() {
    // An error only says a provider is installed already.
    let _ = provider().install_default();
}

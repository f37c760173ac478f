//! A JWKS served over HTTPS: verified against the roots of `COREBANK_JWT_JWKS_CA` (a local
//! server with a certificate for 127.0.0.1 from a CA of the test's own), rotated without a
//! restart, and refused, naming the setting, when its certificate chains to no trusted root.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::common::EcKey;
use corebank_gateway::auth::{AuthConfig, Authenticator, JwksSource};
use corebank_gateway::principal::Surface;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

const ISSUER: &str = "corebank-test";

impl EcKey {
    /// A valid channel token signed with this key.
    fn token(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": ISSUER, "aud": "corebank-channel", "sub": "mobile-app",
            "iat": now, "nbf": now, "exp": now + 300, "scope": "accounts:read",
        });
        self.sign(&claims)
    }
}

/// A CA of the test's own and a server certificate it issued for 127.0.0.1 (an IP SAN: the
/// internal CA's certificates name components, not addresses).
struct TestCa {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

impl TestCa {
    fn generate() -> TestCa {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jwks test CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            server_chain: vec![cert.der().clone()],
            server_key: PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        }
    }
}

/// Accepts TCP connections and completes their TLS handshake before axum sees them.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, address)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses the certificate fails its handshake: wait for the next.
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An identity provider's JWKS endpoint over HTTPS whose key set can be replaced.
struct JwksServer {
    url: String,
    keys: Arc<RwLock<Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(ca: &TestCa, keys: &[&Value]) -> JwksServer {
        let keys = Arc::new(RwLock::new(json!({ "keys": keys })));
        let served = Arc::clone(&keys);
        let router = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let document = served.read().unwrap().clone();
                async move { axum::Json(document) }
            }),
        );
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(ca.server_chain.clone(), ca.server_key.clone_key())
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        };
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        JwksServer {
            url: format!("https://{address}/.well-known/jwks.json"),
            keys,
            task,
        }
    }

    /// Publishes a new key set, as the identity provider does when it rotates.
    fn publish(&self, keys: &[&Value]) {
        *self.keys.write().unwrap() = json!({ "keys": keys });
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn with(contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "corebank-jwks-ca-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config(url: &str, jwks_ca: Option<PathBuf>) -> AuthConfig {
    AuthConfig {
        issuer: ISSUER.to_owned(),
        jwks: JwksSource::Url(url.to_owned()),
        // Long: what the test sees after a rotation is the reload an unknown `kid` causes.
        refresh: Duration::from_secs(300),
        leeway_s: 30,
        dev_hs256_secret: None,
        dev_allowed: false,
        jwks_ca,
    }
}

async fn verify(authenticator: &Authenticator, token: &str) -> Result<String, String> {
    authenticator
        .authenticate(Some(&format!("Bearer {token}")), Surface::Channel)
        .await
        .map(|principal| principal.subject)
        .map_err(|error| format!("{}: {error}", error.code()))
}

#[tokio::test]
async fn tokens_verify_against_a_jwks_served_over_https_and_its_rotation_needs_no_restart() {
    let ca = TestCa::generate();
    let ca_file = TempFile::with(&ca.ca_pem);
    let first = EcKey::generate("idp-2024");
    let server = JwksServer::start(&ca, &[&first.jwk]).await;
    let authenticator = Authenticator::new(config(&server.url, Some(ca_file.0.clone())))
        .await
        .unwrap();
    assert_eq!(
        verify(&authenticator, &first.token()).await,
        Ok("mobile-app".to_owned())
    );

    // The identity provider rotates: a new key under a new kid, the old one withdrawn.
    let second = EcKey::generate("idp-2025");
    server.publish(&[&second.jwk]);
    assert_eq!(
        verify(&authenticator, &second.token()).await,
        Ok("mobile-app".to_owned())
    );
    let refused = verify(&authenticator, &first.token()).await.unwrap_err();
    assert!(refused.starts_with("unknown_key"), "{refused}");
}

#[tokio::test]
async fn a_jwks_server_whose_certificate_chains_to_no_trusted_root_is_refused_naming_the_setting() {
    let ca = TestCa::generate();
    let key = EcKey::generate("idp-2024");
    let server = JwksServer::start(&ca, &[&key.jwk]).await;

    // The platform's roots do not know the test's CA.
    let error = Authenticator::new(config(&server.url, None))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "jwks_unavailable", "{error}");
    let message = error.to_string();
    assert!(
        message.contains("certificate") && message.contains("set COREBANK_JWT_JWKS_CA to"),
        "{message}"
    );

    // Nor does another CA's bundle.
    let other = TempFile::with(&TestCa::generate().ca_pem);
    let error = Authenticator::new(config(&server.url, Some(other.0.clone())))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "jwks_unavailable", "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");
}

#[tokio::test]
async fn a_jwks_ca_setting_that_holds_no_certificate_stops_the_start_naming_it() {
    let not_pem = TempFile::with("not a certificate");
    let error = Authenticator::new(config(
        "https://127.0.0.1:9/.well-known/jwks.json",
        Some(not_pem.0.clone()),
    ))
    .await
    .unwrap_err();
    assert_eq!(error.code(), "jwks_unavailable", "{error}");
    let message = error.to_string();
    assert!(message.contains("COREBANK_JWT_JWKS_CA="), "{message}");
    assert!(message.contains("no CERTIFICATE"), "{message}");

    let missing = std::env::temp_dir().join("corebank-no-such-ca.pem");
    let error = Authenticator::new(config(
        "https://127.0.0.1:9/.well-known/jwks.json",
        Some(missing),
    ))
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("COREBANK_JWT_JWKS_CA="),
        "{error}"
    );
}

//! The verification key set: parsing a JWKS into keys pinned to one algorithm each, and
//! reading it from a file or an HTTP(S) URL.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use super::{AuthError, JwksSource};

/// The largest JWKS document read; a key set is a few kilobytes.
pub(crate) const JWKS_BYTES_MAX: usize = 1024 * 1024;
/// How long fetching a JWKS over HTTP may take, connecting included.
pub(crate) const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed when fetching a JWKS.
const JWKS_REDIRECTS_MAX: usize = 3;
/// The largest `COREBANK_JWT_JWKS_CA` bundle read.
const CA_BUNDLE_BYTES_MAX: u64 = 1024 * 1024;
/// RSA keys shorter than this are refused (NIST SP 800-131A).
const RSA_MODULUS_BYTES_MIN: usize = 256;
/// Longer `kid`s are cut in messages and logs.
pub(crate) const KID_SHOWN_CHARS_MAX: usize = 64;

/// base64url, with or without padding (both occur in published key sets).
pub(crate) const BASE64URL: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// One verification key and the only algorithm it may be used with.
#[derive(Clone)]
pub(crate) struct PinnedKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

impl fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The keys by `kid`.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySet {
    pub(crate) keys: HashMap<String, PinnedKey>,
}

impl KeySet {
    pub(crate) fn get(&self, kid: &str) -> Option<&PinnedKey> {
        self.keys.get(kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// `kid` as shown in messages: bounded, so a hostile header cannot flood the logs.
pub(crate) fn shown_kid(kid: &str) -> String {
    kid.chars().take(KID_SHOWN_CHARS_MAX).collect()
}

/// Parses a JWKS document. Keys the gateway cannot or must not use (symmetric keys, other
/// curves and algorithms, encryption keys, short RSA moduli, keys without `kid`) are
/// skipped with a warning rather than failing the whole set, so one exotic key published
/// by an identity provider does not lock everybody out.
pub(crate) fn parse(document: &[u8], source_name: &str) -> Result<KeySet, AuthError> {
    let unavailable = |reason: String| AuthError::JwksUnavailable {
        source_name: source_name.to_owned(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(document)
        .map_err(|error| unavailable(format!("not JSON ({error})")))?;
    let Some(keys) = value.get("keys").and_then(serde_json::Value::as_array) else {
        return Err(unavailable(
            "not a JWKS: expected an object with a `keys` array".to_owned(),
        ));
    };
    let mut set = KeySet::default();
    for (index, jwk) in keys.iter().enumerate() {
        match parse_key(jwk) {
            Ok((kid, key)) => match set.keys.entry(kid) {
                std::collections::hash_map::Entry::Occupied(entry) => tracing::warn!(
                    jwks.source = source_name,
                    jwk.kid = %shown_kid(entry.key()),
                    "JWKS lists the same kid twice; the first key is used"
                ),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(key);
                }
            },
            Err(reason) => tracing::warn!(
                jwks.source = source_name,
                jwk.index = index,
                reason = %reason,
                "JWKS key skipped"
            ),
        }
    }
    Ok(set)
}

fn text<'a>(jwk: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(serde_json::Value::as_str)
}

fn decode_member(jwk: &serde_json::Value, name: &str) -> Result<Vec<u8>, String> {
    let encoded = text(jwk, name).ok_or_else(|| format!("no `{name}`"))?;
    BASE64URL
        .decode(encoded)
        .map_err(|_| format!("`{name}` is not base64url"))
}

fn parse_key(jwk: &serde_json::Value) -> Result<(String, PinnedKey), String> {
    let kid = text(jwk, "kid")
        .filter(|kid| !kid.is_empty())
        .ok_or("no `kid` (keys are chosen by kid)")?;
    if let Some(usage) = jwk.get("use")
        && usage.as_str() != Some("sig")
    {
        return Err(format!("`{}`: `use` is not `sig`", shown_kid(kid)));
    }
    if let Some(operations) = jwk.get("key_ops")
        && !operations
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")))
    {
        return Err(format!("`{}`: `key_ops` lacks `verify`", shown_kid(kid)));
    }
    let alg = text(jwk, "alg");
    let key = match text(jwk, "kty") {
        Some("RSA") => {
            if alg.is_some_and(|alg| alg != "RS256") {
                return Err(format!(
                    "`{}`: RSA keys are accepted for RS256 only",
                    shown_kid(kid)
                ));
            }
            let modulus = decode_member(jwk, "n")?;
            let exponent = decode_member(jwk, "e")?;
            let significant = modulus.iter().skip_while(|byte| **byte == 0).count();
            if significant < RSA_MODULUS_BYTES_MIN {
                return Err(format!(
                    "`{}`: RSA modulus shorter than 2048 bits",
                    shown_kid(kid)
                ));
            }
            PinnedKey {
                algorithm: Algorithm::RS256,
                key: DecodingKey::from_rsa_raw_components(&modulus, &exponent),
            }
        }
        Some("EC") => {
            if text(jwk, "crv") != Some("P-256") || alg.is_some_and(|alg| alg != "ES256") {
                return Err(format!(
                    "`{}`: EC keys are accepted on P-256 for ES256 only",
                    shown_kid(kid)
                ));
            }
            let x = decode_member(jwk, "x")?;
            let y = decode_member(jwk, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(format!(
                    "`{}`: P-256 coordinates must be 32 bytes",
                    shown_kid(kid)
                ));
            }
            let encode = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let key = DecodingKey::from_ec_components(&encode.encode(&x), &encode.encode(&y))
                .map_err(|error| format!("`{}`: {error}", shown_kid(kid)))?;
            PinnedKey {
                algorithm: Algorithm::ES256,
                key,
            }
        }
        // Symmetric keys are never taken from a key set: HS256 is the dev secret's alone.
        Some(other) => {
            return Err(format!(
                "`{}`: key type `{other}` is not accepted (RSA and EC P-256 only)",
                shown_kid(kid)
            ));
        }
        None => return Err(format!("`{}`: no `kty`", shown_kid(kid))),
    };
    Ok((kid.to_owned(), key))
}

/// Where the keys come from, for messages.
pub(crate) fn source_name(source: &JwksSource) -> String {
    match source {
        JwksSource::File(path) => format!("{} (COREBANK_JWT_JWKS)", path.display()),
        JwksSource::DevHome(home) => format!(
            "{} (the dev key set, used while COREBANK_JWT_JWKS is empty)",
            super::dev::jwks_path(home).display()
        ),
        JwksSource::Url(url) => format!("{url} (COREBANK_JWT_JWKS)"),
    }
}

/// The client a JWKS is fetched with: TLS by rustls on ring, trusting only the certificates
/// in the `ca` PEM bundle when given (`COREBANK_JWT_JWKS_CA`: an identity provider behind
/// the bank's own CA), else the platform's roots; plain `http://` only when
/// `allow_plain_http` (dev mode). The message of an error names the setting.
pub(crate) fn http_client(
    ca: Option<&Path>,
    allow_plain_http: bool,
) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .timeout(JWKS_FETCH_TIMEOUT)
        .connect_timeout(JWKS_FETCH_TIMEOUT)
        // A redirect must not lead the fetch off TLS: https only, whatever it is sent to.
        .https_only(!allow_plain_http)
        .redirect(reqwest::redirect::Policy::limited(JWKS_REDIRECTS_MAX));
    let builder = match ca {
        Some(ca) => builder.use_preconfigured_tls(tls_config_with_roots(ca)?),
        None => {
            // reqwest checks against the platform's roots with rustls-platform-verifier,
            // whose algorithms come from the process's default crypto provider. This build
            // has none until one is installed (reqwest panics without it), and everything here
            // is ring. A provider installed earlier in the process stays; the call is then a
            // no-op.
            let _ = rustls::crypto::ring::default_provider().install_default();
            builder
        }
    };
    builder
        .build()
        .map_err(|error| format!("cannot build an HTTP client ({})", error_chain(&error)))
}

/// A TLS client configuration trusting only the certificates of the PEM bundle at `ca`.
fn tls_config_with_roots(ca: &Path) -> Result<rustls::ClientConfig, String> {
    let unusable = |reason: String| format!("COREBANK_JWT_JWKS_CA={}: {reason}", ca.display());
    let size = std::fs::metadata(ca)
        .map_err(|error| unusable(format!("cannot read the file ({error})")))?
        .len();
    if size > CA_BUNDLE_BYTES_MAX {
        return Err(unusable(format!("larger than {CA_BUNDLE_BYTES_MAX} bytes")));
    }
    let pem =
        std::fs::read(ca).map_err(|error| unusable(format!("cannot read the file ({error})")))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate =
            certificate.map_err(|error| unusable(format!("not a PEM bundle ({error})")))?;
        roots
            .add(certificate)
            .map_err(|error| unusable(format!("a certificate cannot be a root ({error})")))?;
    }
    if roots.is_empty() {
        return Err(unusable(
            "no CERTIFICATE block: give the PEM certificates of the CA(s) that issue the \
             JWKS server's certificate"
                .to_owned(),
        ));
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| unusable(format!("TLS versions ({error})")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // This build of reqwest speaks HTTP/1.1 only; say so in the handshake.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads and parses the key set once.
pub(crate) async fn load(source: &JwksSource, http: &reqwest::Client) -> Result<KeySet, AuthError> {
    let name = source_name(source);
    let unavailable = |reason: String| AuthError::JwksUnavailable {
        source_name: name.clone(),
        reason,
    };
    let document = match source {
        JwksSource::File(path) => read_file(path).await.map_err(unavailable)?,
        JwksSource::DevHome(home) => read_file(&super::dev::jwks_path(home))
            .await
            .map_err(unavailable)?,
        JwksSource::Url(url) => fetch(url, http).await.map_err(unavailable)?,
    };
    parse(&document, &name)
}

async fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let metadata = tokio::fs::metadata(path)
        .await
        .map_err(|error| format!("cannot read the file ({error})"))?;
    if metadata.len() > u64::try_from(JWKS_BYTES_MAX).unwrap_or(u64::MAX) {
        return Err(format!("larger than {JWKS_BYTES_MAX} bytes"));
    }
    tokio::fs::read(path)
        .await
        .map_err(|error| format!("cannot read the file ({error})"))
}

async fn fetch(url: &str, http: &reqwest::Client) -> Result<Vec<u8>, String> {
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| {
            let chain = error_chain(&error);
            // A certificate refusal is most often a private CA the gateway was not told of.
            let hint = if chain.contains("certificate") {
                "; if the server's certificate is issued by a private CA, set \
                 COREBANK_JWT_JWKS_CA to that CA's PEM bundle"
            } else {
                ""
            };
            format!("fetch failed ({chain}){hint}")
        })?;
    if !response.status().is_success() {
        return Err(format!("the server answered {}", response.status()));
    }
    let mut document = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("reading the answer failed ({})", error_chain(&error)))?
    {
        if document.len().saturating_add(chunk.len()) > JWKS_BYTES_MAX {
            return Err(format!("larger than {JWKS_BYTES_MAX} bytes"));
        }
        document.extend_from_slice(&chunk);
    }
    Ok(document)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

//! What a component asserts on someone else's behalf, signed with its certificate's key:
//! the gateway tells `SagaAdmin` which operator acts, and the operator's name comes from the
//! token the gateway verified, never from a field the caller fills in.
//!
//! The gateway sends `x-corebank-actor: <operator>` and
//! `x-corebank-actor-signature: v1;ts=<unix ms>;alg=<scheme>;sig=<base64url>`, the signature
//! covering `corebank-actor-v1\n<method path>\n<operator>\n<unix ms>`. The callee checks it
//! against the certificate the connection proved, that the path is the one called, and that
//! it is fresh ([`ASSERTION_AGE_MAX_MS`]).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::SignatureScheme;
use rustls::sign::{Signer, SigningKey};

use super::identity::Caller;
use super::pki::ComponentIdentity;

/// The operator (or other principal) a call is made for.
pub const ACTOR_HEADER: &str = "x-corebank-actor";
/// The calling component's signature over the actor.
pub const ACTOR_SIGNATURE_HEADER: &str = "x-corebank-actor-signature";
/// How old (or how far in the future) a signed assertion may be.
pub const ASSERTION_AGE_MAX_MS: i64 = 60_000;

/// The path being called, recorded by the access layer so that a handler can check what an
/// assertion was signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalledPath(pub String);

/// Why an assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error(
        "the call carries no {ACTOR_HEADER}: the operator must come from the gateway's verified token"
    )]
    Missing,
    #[error("{ACTOR_SIGNATURE_HEADER} is malformed: {0}")]
    Malformed(String),
    #[error("the actor assertion is signed with {0:?}, which is not accepted")]
    Algorithm(String),
    #[error("the actor assertion's signature does not verify against the caller's certificate")]
    BadSignature,
    #[error(
        "the actor assertion is {age_ms} ms from now; at most {ASSERTION_AGE_MAX_MS} ms is accepted"
    )]
    Stale { age_ms: i64 },
    #[error("the caller proved no certificate to check the actor assertion against")]
    NoCertificate,
}

fn message(path: &str, actor: &str, issued_ms: i64) -> Vec<u8> {
    format!("corebank-actor-v1\n{path}\n{actor}\n{issued_ms}").into_bytes()
}

fn scheme_name(scheme: SignatureScheme) -> Option<&'static str> {
    match scheme {
        SignatureScheme::ECDSA_NISTP256_SHA256 => Some("ecdsa-p256-sha256"),
        SignatureScheme::ECDSA_NISTP384_SHA384 => Some("ecdsa-p384-sha384"),
        SignatureScheme::ED25519 => Some("ed25519"),
        SignatureScheme::RSA_PSS_SHA256 => Some("rsa-pss-sha256"),
        _ => None,
    }
}

fn verification_algorithm(
    name: &str,
) -> Option<&'static dyn rustls_pki_types::SignatureVerificationAlgorithm> {
    match name {
        "ecdsa-p256-sha256" => Some(webpki::ring::ECDSA_P256_SHA256),
        "ecdsa-p384-sha384" => Some(webpki::ring::ECDSA_P384_SHA384),
        "ed25519" => Some(webpki::ring::ED25519),
        "rsa-pss-sha256" => Some(webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY),
        _ => None,
    }
}

/// Signs assertions with a component's certificate key.
pub struct AssertionSigner {
    signer: Box<dyn Signer>,
    algorithm: &'static str,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// A signer with `identity`'s key (ECDSA P-256/P-384, Ed25519 or RSA).
    pub fn new(identity: &ComponentIdentity) -> Result<AssertionSigner, AssertionError> {
        let key: Arc<dyn SigningKey> = Arc::clone(&identity.certified().key);
        let schemes = [
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_SHA256,
        ];
        let signer = key
            .choose_scheme(&schemes)
            .ok_or_else(|| AssertionError::Algorithm(format!("{:?}", key.algorithm())))?;
        let algorithm = scheme_name(signer.scheme())
            .ok_or_else(|| AssertionError::Algorithm(format!("{:?}", signer.scheme())))?;
        Ok(AssertionSigner { signer, algorithm })
    }

    /// The signature header's value for `actor` calling `path` now.
    pub fn sign(&self, path: &str, actor: &str) -> Result<String, AssertionError> {
        let issued_ms = chrono::Utc::now().timestamp_millis();
        let signature = self
            .signer
            .sign(&message(path, actor, issued_ms))
            .map_err(|error| AssertionError::Malformed(error.to_string()))?;
        Ok(format!(
            "v1;ts={issued_ms};alg={};sig={}",
            self.algorithm,
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// Checks `signature` (the [`ACTOR_SIGNATURE_HEADER`] value) for `actor` calling `path`,
/// made by `caller`'s certificate key no more than [`ASSERTION_AGE_MAX_MS`] from `now_ms`.
pub fn verify(
    caller: &Caller,
    path: &str,
    actor: &str,
    signature: &str,
    now_ms: i64,
) -> Result<(), AssertionError> {
    let certificate = caller.certificate().ok_or(AssertionError::NoCertificate)?;
    let mut version = None;
    let mut issued = None;
    let mut algorithm = None;
    let mut sig = None;
    for part in signature.split(';') {
        match part.split_once('=') {
            Some(("ts", value)) => issued = Some(value),
            Some(("alg", value)) => algorithm = Some(value),
            Some(("sig", value)) => sig = Some(value),
            None if part == "v1" => version = Some(part),
            _ => {
                return Err(AssertionError::Malformed(format!(
                    "unexpected part {part:?}"
                )));
            }
        }
    }
    let (Some(_), Some(issued), Some(algorithm), Some(sig)) = (version, issued, algorithm, sig)
    else {
        return Err(AssertionError::Malformed(
            "expected v1;ts=…;alg=…;sig=…".to_owned(),
        ));
    };
    let issued_ms: i64 = issued
        .parse()
        .map_err(|_| AssertionError::Malformed(format!("ts {issued:?} is not a number")))?;
    let age_ms = now_ms.saturating_sub(issued_ms);
    if age_ms.abs() > ASSERTION_AGE_MAX_MS {
        return Err(AssertionError::Stale { age_ms });
    }
    let algorithm = verification_algorithm(algorithm)
        .ok_or_else(|| AssertionError::Algorithm(algorithm.to_owned()))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|error| AssertionError::Malformed(format!("sig: {error}")))?;
    let cert =
        webpki::EndEntityCert::try_from(certificate).map_err(|_| AssertionError::BadSignature)?;
    cert.verify_signature(algorithm, &message(path, actor, issued_ms), &sig)
        .map_err(|_| AssertionError::BadSignature)
}

/// The actor a gRPC call is made for, as its verified caller asserts it. On a plain-text
/// listener (no certificate) the header is taken as it is.
pub fn actor_of<T>(request: &tonic::Request<T>) -> Result<String, AssertionError> {
    let actor = request
        .metadata()
        .get(ACTOR_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|actor| !actor.is_empty())
        .ok_or(AssertionError::Missing)?;
    let caller = request
        .extensions()
        .get::<Caller>()
        .ok_or(AssertionError::NoCertificate)?;
    if !caller.is_verified() {
        return Ok(actor.to_owned());
    }
    let path = request
        .extensions()
        .get::<CalledPath>()
        .map(|path| path.0.as_str())
        .unwrap_or_default();
    let signature = request
        .metadata()
        .get(ACTOR_SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| AssertionError::Malformed(format!("no {ACTOR_SIGNATURE_HEADER}")))?;
    verify(
        caller,
        path,
        actor,
        signature,
        chrono::Utc::now().timestamp_millis(),
    )?;
    Ok(actor.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::pki::dev::DevCa;

    fn setup() -> (AssertionSigner, Caller, Caller) {
        let ca = DevCa::generate("corebank.internal", "development").unwrap();
        let pki = ca.pki(&["gateway", "payments"]).unwrap();
        let gateway = pki.identity("gateway").unwrap();
        let payments = pki.identity("payments").unwrap();
        let signer = AssertionSigner::new(&gateway).unwrap();
        let as_gateway = Caller::verified("gateway".to_owned(), gateway.chain()[0].clone());
        let as_payments = Caller::verified("payments".to_owned(), payments.chain()[0].clone());
        (signer, as_gateway, as_payments)
    }

    #[test]
    fn an_assertion_verifies_only_for_its_signer_path_actor_and_time() {
        let (signer, gateway, payments) = setup();
        let path = "/corebank.saga.v1.SagaAdmin/Retry";
        let header = signer.sign(path, "alice").unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        verify(&gateway, path, "alice", &header, now).unwrap();
        assert_eq!(
            verify(&gateway, path, "mallory", &header, now),
            Err(AssertionError::BadSignature)
        );
        assert_eq!(
            verify(
                &gateway,
                "/corebank.saga.v1.SagaAdmin/Resume",
                "alice",
                &header,
                now
            ),
            Err(AssertionError::BadSignature)
        );
        assert_eq!(
            verify(&payments, path, "alice", &header, now),
            Err(AssertionError::BadSignature)
        );
        assert!(matches!(
            verify(&gateway, path, "alice", &header, now + 120_000),
            Err(AssertionError::Stale { .. })
        ));
        assert!(matches!(
            verify(&gateway, path, "alice", "v1;ts=1", now),
            Err(AssertionError::Malformed(_))
        ));
    }
}

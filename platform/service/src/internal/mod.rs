//! The internal side of every process: where components call each other. Channels,
//! operators and regulators come in only through the gateway's public listener; everything
//! else (module gRPC, `SagaAdmin`, the legacy adapter, the rail's callbacks) listens on an
//! internal listener that speaks mutual TLS (ADR 0009):
//!
//! - every component holds a certificate from the bank's internal CA whose URI SAN is its
//!   SPIFFE id, `spiffe://<trust domain>/<component>` (`identity`, `pki`);
//! - a server accepts only clients whose certificate chains to that CA (`listener`) and
//!   learns from it which component is calling ([`Caller`]);
//! - each service declares which components have business calling it ([`Allow`]); any
//!   other caller gets `permission_denied` (`access`);
//! - a client checks that the server it reached holds the certificate of the component it
//!   meant to call (`client`);
//! - a caller can sign what it asserts on someone else's behalf (the operator behind a saga
//!   action) with its certificate's key, and the callee checks that signature against the
//!   certificate the connection proved (`assertion`).
//!
//! Plain text is possible only with `COREBANK_INSECURE_INTERNAL=true`: then a caller merely
//! names itself in `x-corebank-caller`, nothing is proved, and a warning is logged at every
//! start.

pub mod access;
pub mod assertion;
mod client;
pub mod identity;
mod listener;
pub mod pki;

pub use access::{AccessPolicy, AccessState, Allow, enforce};
pub use client::{InternalClients, TlsClientError, install_crypto_provider};
pub use identity::{CALLER_HEADER, Caller, allowed_callers, component_names};
pub use listener::{PeerIdentity, PlainListener, TlsListener, server_config};
pub use pki::{ComponentIdentity, Pki, PkiError};

use crate::{InternalMode, Settings};

/// Where a process keeps its certificates when `COREBANK_TLS_DIR` is not set.
pub fn certs_dir(settings: &Settings) -> std::path::PathBuf {
    settings
        .tls_dir
        .clone()
        .unwrap_or_else(|| settings.home.join("certs"))
}

/// How this process's internal listener and clients authenticate, from settings: plain text
/// when `COREBANK_INSECURE_INTERNAL=true`; else the three `COREBANK_TLS_CA`/`_CERT`/`_KEY`
/// files when set (one component); else `ca.crt` and `<component>.crt`/`.key` for each of
/// `components` in [`certs_dir`].
pub fn mode_from_settings(
    settings: &Settings,
    components: &[&str],
) -> Result<InternalMode, PkiError> {
    if settings.insecure_internal {
        return Ok(InternalMode::Insecure);
    }
    let trust_domain = &settings.tls_trust_domain;
    let pki = match (&settings.tls_ca, &settings.tls_cert, &settings.tls_key) {
        (Some(ca), Some(cert), Some(key)) => {
            let pki = Pki::load_files(trust_domain, ca, cert, key)?;
            for component in components {
                pki.identity(component)?;
            }
            pki
        }
        _ => Pki::load_dir(&certs_dir(settings), trust_domain, components)?,
    };
    Ok(InternalMode::MutualTls(pki))
}

/// The clients a component of this process calls others with.
pub fn clients(mode: &InternalMode, me: &str) -> Result<InternalClients, PkiError> {
    match mode {
        InternalMode::MutualTls(pki) => InternalClients::mutual_tls(pki.clone(), me),
        InternalMode::Insecure => Ok(InternalClients::insecure(me)),
    }
}

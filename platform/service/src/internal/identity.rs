//! Who a component is on the internal network: its name, the SPIFFE id its certificate
//! carries, and the verified caller a server hands to its handlers.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;

/// The metadata (HTTP header) in which a caller names itself when the internal listener runs
/// without TLS (`COREBANK_INSECURE_INTERNAL=true`). With mutual TLS it is ignored: the name
/// comes from the certificate.
pub const CALLER_HEADER: &str = "x-corebank-caller";

/// The components that hold internal certificates. `corebank certs` issues one for each.
pub mod component_names {
    /// The strangler-fig gateway: calls both sides' Deposits and Payments, and SagaAdmin.
    pub const GATEWAY: &str = "gateway";
    /// The ledger: called by the modules that move money.
    pub const LEDGER: &str = "ledger";
    /// Deposits: calls the ledger.
    pub const DEPOSITS: &str = "deposits";
    /// Payments: calls deposits and the clearing rail; takes the rail's callbacks.
    pub const PAYMENTS: &str = "payments";
    /// Lending (when it exists): calls deposits and the ledger.
    pub const LENDING: &str = "lending";
    /// The migration tooling (`corebank legacy export`, account migration): reads the legacy
    /// export, books on the modern side.
    pub const MIGRATION: &str = "migration";
    /// The legacy adapter: serves Deposits, Payments and LegacyExport in front of the core.
    pub const LEGACY_ADAPTER: &str = "legacy-adapter";
    /// The mock legacy core (its OFS port is its own; this names its health listener).
    pub const LEGACY_CORE: &str = "legacy-core";
    /// The outbox relay.
    pub const RELAY: &str = "relay";
    /// The demo saga component.
    pub const DEMO: &str = "demo";
    /// The clearing rail (the simulator in development): posts pacs.002/pacs.008 to payments.
    pub const RAIL: &str = "rail";
    /// Monitoring (Prometheus): may read health and metrics on internal listeners.
    pub const MONITORING: &str = "monitoring";

    /// Every name, in the order `corebank certs` issues them.
    pub const ALL: &[&str] = &[
        GATEWAY,
        LEDGER,
        DEPOSITS,
        PAYMENTS,
        LENDING,
        MIGRATION,
        LEGACY_ADAPTER,
        LEGACY_CORE,
        RELAY,
        DEMO,
        RAIL,
        MONITORING,
    ];
}

/// Who may call what: the one table of internal access, used where each service is
/// mounted and in docs/SECURITY.md. Anything not named here (health, metrics, gRPC health,
/// `PlatformInfo`) is open to any component that proved who it is.
pub mod allowed_callers {
    use super::component_names::{
        DEPOSITS as DEPOSITS_MODULE, GATEWAY, LENDING, MIGRATION, PAYMENTS as PAYMENTS_MODULE, RAIL,
    };

    /// `corebank.ledger.v1.Ledger`: only the modules that move money, and the migration
    /// tooling, may post to (or read) the ledger.
    pub const LEDGER: &[&str] = &[DEPOSITS_MODULE, PAYMENTS_MODULE, LENDING, MIGRATION];
    /// `corebank.deposits.v1.Deposits`, on the modern side and on the legacy adapter.
    pub const DEPOSITS: &[&str] = &[GATEWAY, PAYMENTS_MODULE, LENDING, MIGRATION];
    /// `corebank.payments.v1.Payments`, on both sides.
    pub const PAYMENTS: &[&str] = &[GATEWAY];
    /// `corebank.saga.v1.SagaAdmin`: the gateway, acting for an operator whose name it signs.
    pub const SAGA_ADMIN: &[&str] = &[GATEWAY];
    /// `corebank.payments.v1.PaymentsReview`: the gateway, acting for the approving operator
    /// whose name it signs.
    pub const PAYMENTS_REVIEW: &[&str] = &[GATEWAY];
    /// `corebank.deposits.v1.DepositsMigration` (importing an account moved from the legacy
    /// core): the migration component.
    pub const DEPOSITS_MIGRATION: &[&str] = &[MIGRATION];
    /// `corebank.migration.v1.Migrations` (start and read account migrations): the gateway,
    /// for operators.
    pub const MIGRATIONS: &[&str] = &[GATEWAY];
    /// `corebank.legacy.v1.LegacyExport`: the migration tooling.
    pub const LEGACY_EXPORT: &[&str] = &[MIGRATION];
    /// `corebank.legacy.v1.LegacyMigration` (freeze, empty, thaw a legacy account): the
    /// migration component.
    pub const LEGACY_MIGRATION: &[&str] = &[MIGRATION];
    /// `corebank.gateway.v1.AccountHomes` (the gateway's account directory, for moves): the
    /// migration component.
    pub const ACCOUNT_HOMES: &[&str] = &[MIGRATION];
    /// The bank's rail callbacks (`/payments/rail/v1`): the clearing rail.
    pub const RAIL_CALLBACKS: &[&str] = &[RAIL];
    /// The rail's own endpoints (`/rail-sim/v1` in development): the bank's payments module.
    pub const RAIL_ENDPOINTS: &[&str] = &[PAYMENTS_MODULE];
    /// The rail simulator's controls (originate an inbound payment, list returns): the rail's
    /// own operators, who hold the rail's certificate.
    pub const RAIL_CONTROLS: &[&str] = &[RAIL];
}

/// Whether `name` can be a component name: 1–63 characters of `a-z 0-9 -`, starting with a
/// letter (it becomes a DNS label and a SPIFFE path segment).
pub fn is_valid_component_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `spiffe://<trust domain>/<component>`.
pub fn spiffe_id(trust_domain: &str, component: &str) -> String {
    format!("spiffe://{trust_domain}/{component}")
}

/// The DNS name a component's certificate is valid for as a server:
/// `<component>.<trust domain>`. Clients ask for it (SNI) and check it.
pub fn server_name(trust_domain: &str, component: &str) -> String {
    format!("{component}.{trust_domain}")
}

/// The component named by a certificate's SPIFFE id in `trust_domain`, if it has exactly
/// one. The chain must have been verified before this is asked.
pub fn component_of(certificate: &CertificateDer<'_>, trust_domain: &str) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(certificate).ok()?;
    // Every SPIFFE id counts, whatever its trust domain or form: a certificate naming two
    // identities is refused rather than read as either.
    let mut ids = cert
        .valid_uri_names()
        .filter(|uri| uri.starts_with("spiffe://"));
    let id = ids.next()?;
    if ids.next().is_some() {
        return None;
    }
    let name = id.strip_prefix(&format!("spiffe://{trust_domain}/"))?;
    is_valid_component_name(name).then(|| name.to_owned())
}

/// The component calling, as the internal listener established it: from the verified client
/// certificate (mutual TLS), or from [`CALLER_HEADER`] when the listener runs in plain text.
/// Handlers read it from the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    component: String,
    certificate: Option<Arc<CertificateDer<'static>>>,
}

impl Caller {
    /// A caller proved by its certificate.
    pub fn verified(component: String, certificate: CertificateDer<'static>) -> Caller {
        Caller {
            component,
            certificate: Some(Arc::new(certificate)),
        }
    }

    /// A caller that only named itself (plain-text internal listener).
    pub fn claimed(component: String) -> Caller {
        Caller {
            component,
            certificate: None,
        }
    }

    pub fn component(&self) -> &str {
        &self.component
    }

    /// The certificate the connection proved; `None` in plain-text mode.
    pub fn certificate(&self) -> Option<&CertificateDer<'static>> {
        self.certificate.as_deref()
    }

    /// Whether the caller proved its name with a certificate.
    pub fn is_verified(&self) -> bool {
        self.certificate.is_some()
    }

    /// The caller of a gRPC request, as the access layer recorded it.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Caller> {
        request.extensions().get::<Caller>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_with_uris(uris: &[&str]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = uris
            .iter()
            .map(|uri| rcgen::SanType::URI((*uri).try_into().unwrap()))
            .collect();
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_certificate_names_a_component_only_with_exactly_one_spiffe_id_in_the_trust_domain() {
        let one = certificate_with_uris(&["spiffe://corebank.internal/ledger"]);
        assert_eq!(
            component_of(&one, "corebank.internal").as_deref(),
            Some("ledger")
        );
        let none = certificate_with_uris(&["https://corebank.internal/ledger"]);
        assert_eq!(component_of(&none, "corebank.internal"), None);
        let two = certificate_with_uris(&[
            "spiffe://corebank.internal/gateway",
            "spiffe://corebank.internal/ns/x",
        ]);
        assert_eq!(component_of(&two, "corebank.internal"), None);
        let two_domains = certificate_with_uris(&[
            "spiffe://corebank.internal/gateway",
            "spiffe://other.example/ledger",
        ]);
        assert_eq!(component_of(&two_domains, "corebank.internal"), None);
        let other_domain = certificate_with_uris(&["spiffe://other.example/ledger"]);
        assert_eq!(component_of(&other_domain, "corebank.internal"), None);
        let nested = certificate_with_uris(&["spiffe://corebank.internal/ns/ledger"]);
        assert_eq!(component_of(&nested, "corebank.internal"), None);
    }

    #[test]
    fn component_names_are_dns_labels() {
        for name in component_names::ALL {
            assert!(is_valid_component_name(name), "{name}");
        }
        for bad in [
            "",
            "Ledger",
            "1ledger",
            "led ger",
            "ledger.x",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_component_name(bad), "{bad:?}");
        }
    }
}

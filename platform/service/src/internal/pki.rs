//! The certificates a process holds: the internal CA it trusts, and the identity (certificate
//! chain and private key) of each component it runs. Production points `COREBANK_TLS_*` at
//! files the bank's PKI issued; `corebank certs` and `corebank up` make a development CA and
//! one certificate per component with rcgen.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::identity::{component_of, is_valid_component_name, server_name, spiffe_id};

/// Why certificates could not be loaded or made. Each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read {path}: {source}; run `corebank certs` or point COREBANK_TLS_* at it")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not valid PEM ({detail})")]
    Pem { what: String, detail: String },
    #[error(
        "the certificate in {what} has no SPIFFE id spiffe://{trust_domain}/<component> in its \
         URI SAN (or has several); issue it with one, or set COREBANK_TLS_TRUST_DOMAIN"
    )]
    NoComponentName { what: String, trust_domain: String },
    #[error("the key in {what} does not belong to its certificate ({detail})")]
    KeyMismatch { what: String, detail: String },
    #[error("this process holds no certificate for the component {0:?}; run `corebank certs`")]
    NoIdentity(String),
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    #[error("{0:?} is not a component name (a-z, 0-9 and '-', starting with a letter)")]
    BadName(String),
}

/// One component's identity: its certificate chain (leaf first) and private key.
pub struct ComponentIdentity {
    name: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_pem: String,
    key_pem: String,
    certified: Arc<CertifiedKey>,
}

impl fmt::Debug for ComponentIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("ComponentIdentity")
            .field("name", &self.name)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ComponentIdentity {
    fn from_pem(
        what: &str,
        cert_pem: String,
        key_pem: String,
        trust_domain: &str,
    ) -> Result<ComponentIdentity, PkiError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| PkiError::Pem {
                what: what.to_owned(),
                detail: error.to_string(),
            })?;
        let Some(leaf) = chain.first() else {
            return Err(PkiError::Pem {
                what: what.to_owned(),
                detail: "no CERTIFICATE block".to_owned(),
            });
        };
        let name = component_of(leaf, trust_domain).ok_or_else(|| PkiError::NoComponentName {
            what: what.to_owned(),
            trust_domain: trust_domain.to_owned(),
        })?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|error| PkiError::Pem {
                what: format!("the key of {what}"),
                detail: error.to_string(),
            })?;
        let certified = CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider())
            .map_err(|error| PkiError::KeyMismatch {
                what: what.to_owned(),
                detail: error.to_string(),
            })?;
        Ok(ComponentIdentity {
            name,
            chain,
            key,
            cert_pem,
            key_pem,
            certified: Arc::new(certified),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub(crate) fn certified(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }
}

/// The crypto provider every TLS object here is built with: ring, never aws-lc.
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// What a process trusts and who it is on the internal network.
#[derive(Debug, Clone)]
pub struct Pki {
    trust_domain: String,
    ca_pem: String,
    roots: Arc<RootCertStore>,
    identities: BTreeMap<String, Arc<ComponentIdentity>>,
}

impl Pki {
    /// From PEM text: the CA bundle to trust, and any number of (certificate chain, key)
    /// pairs. Each certificate names its component in its SPIFFE id.
    pub fn from_pem(
        trust_domain: &str,
        ca_pem: &str,
        identities: impl IntoIterator<Item = (String, String, String)>,
    ) -> Result<Pki, PkiError> {
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| PkiError::Pem {
                what: "the CA bundle".to_owned(),
                detail: error.to_string(),
            })?;
        if cas.is_empty() {
            return Err(PkiError::Pem {
                what: "the CA bundle".to_owned(),
                detail: "no CERTIFICATE block".to_owned(),
            });
        }
        for ca in cas {
            roots.add(ca).map_err(|error| PkiError::Pem {
                what: "the CA bundle".to_owned(),
                detail: error.to_string(),
            })?;
        }
        let mut by_name = BTreeMap::new();
        for (what, cert_pem, key_pem) in identities {
            let identity = ComponentIdentity::from_pem(&what, cert_pem, key_pem, trust_domain)?;
            by_name.insert(identity.name.clone(), Arc::new(identity));
        }
        Ok(Pki {
            trust_domain: trust_domain.to_owned(),
            ca_pem: ca_pem.to_owned(),
            roots: Arc::new(roots),
            identities: by_name,
        })
    }

    /// From a directory laid out as `corebank certs` writes it: `ca.crt`, and
    /// `<component>.crt` with `<component>.key` for each of `components`.
    pub fn load_dir(dir: &Path, trust_domain: &str, components: &[&str]) -> Result<Pki, PkiError> {
        let ca_pem = read(&dir.join("ca.crt"))?;
        let mut identities = Vec::new();
        for name in components {
            let cert = dir.join(format!("{name}.crt"));
            let key = dir.join(format!("{name}.key"));
            identities.push((cert.display().to_string(), read(&cert)?, read(&key)?));
        }
        Pki::from_pem(trust_domain, &ca_pem, identities)
    }

    /// From three files: the CA bundle, one component's certificate chain and its key
    /// (`COREBANK_TLS_CA`, `COREBANK_TLS_CERT`, `COREBANK_TLS_KEY`).
    pub fn load_files(
        trust_domain: &str,
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<Pki, PkiError> {
        Pki::from_pem(
            trust_domain,
            &read(ca)?,
            [(cert.display().to_string(), read(cert)?, read(key)?)],
        )
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.roots)
    }

    /// The identity of `component`, which this process must hold.
    pub fn identity(&self, component: &str) -> Result<Arc<ComponentIdentity>, PkiError> {
        self.identities
            .get(component)
            .cloned()
            .ok_or_else(|| PkiError::NoIdentity(component.to_owned()))
    }

    /// The components this process holds certificates for.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.identities.keys().map(String::as_str)
    }

    /// The same trust, holding only the identities of `components` (what one server presents).
    pub fn only(&self, components: &[&str]) -> Result<Pki, PkiError> {
        let mut identities = BTreeMap::new();
        for name in components {
            identities.insert((*name).to_owned(), self.identity(name)?);
        }
        Ok(Pki {
            identities,
            ..self.clone()
        })
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A development CA and certificates made with rcgen: `corebank certs`, `corebank up`, and
/// the tests. Private keys are written with mode 0600 in a directory with mode 0700.
pub mod dev {
    use super::*;

    /// Days a development certificate is valid.
    const VALIDITY_DAYS: i64 = 825;

    /// A development CA that can issue component certificates.
    pub struct DevCa {
        trust_domain: String,
        params: rcgen::CertificateParams,
        key: rcgen::KeyPair,
        cert_pem: String,
    }

    impl fmt::Debug for DevCa {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("DevCa")
                .field("trust_domain", &self.trust_domain)
                .finish_non_exhaustive()
        }
    }

    fn generate_error(error: rcgen::Error) -> PkiError {
        PkiError::Generate(error.to_string())
    }

    fn validity(params: &mut rcgen::CertificateParams) {
        use chrono::Datelike as _;
        let now = chrono::Utc::now();
        let from = now - chrono::Duration::days(1);
        let until = now + chrono::Duration::days(VALIDITY_DAYS);
        let month = |at: chrono::DateTime<chrono::Utc>| u8::try_from(at.month()).unwrap_or(1);
        let day = |at: chrono::DateTime<chrono::Utc>| u8::try_from(at.day()).unwrap_or(1);
        params.not_before = rcgen::date_time_ymd(from.year(), month(from), day(from));
        params.not_after = rcgen::date_time_ymd(until.year(), month(until), day(until));
    }

    fn ca_params(trust_domain: &str, label: &str) -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "corebank");
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("corebank {label} CA ({trust_domain})"),
        );
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params
    }

    impl DevCa {
        /// A new CA with a fresh key. `label` tells CAs apart in their names ("development";
        /// tests make a "foreign" one to show that its certificates are refused).
        pub fn generate(trust_domain: &str, label: &str) -> Result<DevCa, PkiError> {
            let mut params = ca_params(trust_domain, label);
            validity(&mut params);
            let key = rcgen::KeyPair::generate().map_err(generate_error)?;
            let cert = params.self_signed(&key).map_err(generate_error)?;
            Ok(DevCa {
                trust_domain: trust_domain.to_owned(),
                params,
                key,
                cert_pem: cert.pem(),
            })
        }

        /// A CA written before, from its certificate and key PEM.
        fn load(trust_domain: &str, cert_pem: String, key_pem: &str) -> Result<DevCa, PkiError> {
            let key = rcgen::KeyPair::from_pem(key_pem).map_err(generate_error)?;
            Ok(DevCa {
                trust_domain: trust_domain.to_owned(),
                params: ca_params(trust_domain, "development"),
                key,
                cert_pem,
            })
        }

        pub fn cert_pem(&self) -> &str {
            &self.cert_pem
        }

        pub fn key_pem(&self) -> String {
            self.key.serialize_pem()
        }

        /// A certificate for `component`: SPIFFE id and DNS name, good for TLS server and
        /// client authentication. Returns (certificate PEM, key PEM).
        pub fn issue(&self, component: &str) -> Result<(String, String), PkiError> {
            if !is_valid_component_name(component) {
                return Err(PkiError::BadName(component.to_owned()));
            }
            let mut params = rcgen::CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "corebank");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, component);
            params.subject_alt_names = vec![
                rcgen::SanType::URI(
                    spiffe_id(&self.trust_domain, component)
                        .try_into()
                        .map_err(generate_error)?,
                ),
                rcgen::SanType::DnsName(
                    server_name(&self.trust_domain, component)
                        .try_into()
                        .map_err(generate_error)?,
                ),
            ];
            params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ];
            params.use_authority_key_identifier_extension = true;
            validity(&mut params);
            let key = rcgen::KeyPair::generate().map_err(generate_error)?;
            let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
            let cert = params.signed_by(&key, &issuer).map_err(generate_error)?;
            Ok((cert.pem(), key.serialize_pem()))
        }

        /// A [`Pki`] trusting this CA and holding fresh identities for `components`.
        pub fn pki(&self, components: &[&str]) -> Result<Pki, PkiError> {
            let mut identities = Vec::new();
            for name in components {
                let (cert, key) = self.issue(name)?;
                identities.push(((*name).to_owned(), cert, key));
            }
            Pki::from_pem(&self.trust_domain, &self.cert_pem, identities)
        }
    }

    /// What [`ensure_dir`] did.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Written {
        pub created_ca: bool,
        pub issued: Vec<String>,
    }

    /// Makes sure `dir` holds a development CA (`ca.crt`, `ca.key`) and a certificate and
    /// key for each of `components`, creating what is missing. Returns what it wrote.
    pub fn ensure_dir(
        dir: &Path,
        trust_domain: &str,
        components: &[&str],
    ) -> Result<Written, PkiError> {
        create_private_dir(dir)?;
        let ca_cert = dir.join("ca.crt");
        let ca_key = dir.join("ca.key");
        let mut written = Written::default();
        let ca = if ca_cert.exists() && ca_key.exists() {
            DevCa::load(trust_domain, read(&ca_cert)?, &read(&ca_key)?)?
        } else {
            let ca = DevCa::generate(trust_domain, "development")?;
            write_file(&ca_cert, ca.cert_pem(), false)?;
            write_file(&ca_key, &ca.key_pem(), true)?;
            written.created_ca = true;
            ca
        };
        for name in components {
            let cert = dir.join(format!("{name}.crt"));
            let key = dir.join(format!("{name}.key"));
            // A new CA makes every older certificate useless: issue them all again.
            if written.created_ca || !cert.exists() || !key.exists() {
                let (cert_pem, key_pem) = ca.issue(name)?;
                write_file(&key, &key_pem, true)?;
                write_file(&cert, &cert_pem, false)?;
                written.issued.push((*name).to_owned());
            }
        }
        Ok(written)
    }

    /// Creates `dir` (and its parents) and makes it readable by its owner only.
    pub fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.to_owned(),
            source,
        })?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
            PkiError::Write {
                path: dir.to_owned(),
                source,
            }
        })
    }

    /// Writes `contents` to `path`; a private file is created with mode 0600 from the start
    /// (never readable by others, not even for a moment).
    pub fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        use std::os::unix::fs::PermissionsExt as _;
        let error = |source| PkiError::Write {
            path: path.to_owned(),
            source,
        };
        let mode = if private { 0o600 } else { 0o644 };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(error)?;
        // An existing file keeps its mode on open: set it.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(error)?;
        file.write_all(contents.as_bytes()).map_err(error)?;
        file.sync_all().map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::dev::*;
    use super::*;

    #[test]
    fn a_dev_ca_issues_certificates_that_name_their_component() {
        let ca = DevCa::generate("corebank.internal", "development").unwrap();
        let pki = ca.pki(&["ledger", "gateway"]).unwrap();
        assert_eq!(pki.components().collect::<Vec<_>>(), ["gateway", "ledger"]);
        let ledger = pki.identity("ledger").unwrap();
        assert_eq!(ledger.name(), "ledger");
        assert!(matches!(
            pki.identity("payments"),
            Err(PkiError::NoIdentity(_))
        ));
    }

    /// The bundle of `ca` with one identity, `ledger.crt`, trusted in `corebank.internal`.
    fn ledger_pki(ca: &DevCa, cert: String, key: String) -> Result<Pki, PkiError> {
        Pki::from_pem(
            "corebank.internal",
            ca.cert_pem(),
            [("ledger.crt".to_owned(), cert, key)],
        )
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let ca = DevCa::generate("corebank.internal", "development").unwrap();
        let (cert, _) = ca.issue("ledger").unwrap();
        let (_, other_key) = ca.issue("ledger").unwrap();
        let error = ledger_pki(&ca, cert, other_key).unwrap_err();
        assert!(matches!(error, PkiError::KeyMismatch { .. }), "{error}");
    }

    #[test]
    fn a_certificate_of_another_trust_domain_names_no_component() {
        let ca = DevCa::generate("other.example", "development").unwrap();
        let (cert, key) = ca.issue("ledger").unwrap();
        let error = ledger_pki(&ca, cert, key).unwrap_err();
        assert!(matches!(error, PkiError::NoComponentName { .. }), "{error}");
    }

    #[test]
    fn ensure_dir_writes_private_keys_with_mode_0600_and_keeps_what_exists() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let first = ensure_dir(&certs, "corebank.internal", &["ledger", "gateway"]).unwrap();
        assert!(first.created_ca);
        assert_eq!(first.issued, ["ledger", "gateway"]);
        for file in ["ca.key", "ledger.key", "gateway.key"] {
            let mode = std::fs::metadata(certs.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let mode = std::fs::metadata(&certs).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let again = ensure_dir(
            &certs,
            "corebank.internal",
            &["ledger", "gateway", "payments"],
        )
        .unwrap();
        assert!(!again.created_ca);
        assert_eq!(again.issued, ["payments"]);
        // The one issued later chains to the same CA as the first ones.
        let pki = Pki::load_dir(
            &certs,
            "corebank.internal",
            &["ledger", "gateway", "payments"],
        )
        .unwrap();
        assert_eq!(pki.components().count(), 3);
    }
}

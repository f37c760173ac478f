//! Settings: every `COREBANK_*` environment variable, its default and its meaning, in one
//! table ([`SETTINGS`]). `docs/CONFIGURATION.md` is rendered from that table and a test
//! keeps the two equal. A bad value stops the process at start, naming the variable and
//! the fix.

use std::net::SocketAddr;
use std::path::PathBuf;

use corebank_db::{DbSettings, RetryPolicy};

mod catalogue;

use catalogue::default_of;
pub use catalogue::{SETTINGS, SettingSpec, render_markdown};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A setting that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{name}={value:?} is invalid: {problem}; {fix}")]
    Invalid {
        name: &'static str,
        value: String,
        problem: String,
        fix: String,
    },
    #[error(
        "{name} is not a corebank setting (a typo?); the settings are listed by `corebank config` \
         and in docs/CONFIGURATION.md"
    )]
    Unknown { name: String },
}

/// The settings of one corebank process, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub database_url: Option<String>,
    pub home: PathBuf,
    pub http_addr: SocketAddr,
    pub internal_addr: SocketAddr,
    pub metrics_public: bool,
    pub insecure_internal: bool,
    pub tls_dir: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_trust_domain: String,
    pub dev: bool,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub db_pool_size_max: usize,
    pub db_connect_timeout_ms: u64,
    pub db_statement_timeout_ms: u64,
    pub db_lock_timeout_ms: u64,
    pub db_tx_attempts_max: u32,
    pub db_tx_deadline_ms: u64,
    pub requests_in_flight_max: usize,
    pub shutdown_grace_ms: u64,
    pub pg_bin_dir: Option<PathBuf>,
    pub up_pg_port: u16,
    pub ledger_url: Option<String>,
    pub deposits_url: Option<String>,
    pub rail_url: Option<String>,
    pub rail_bank_url: Option<String>,
    pub rail_outcomes: String,
    pub rail_keys: Option<String>,
    pub rail_delay_ms: (u64, u64),
    pub sanctions_un_xml: Option<String>,
    pub sanctions_ofac_sdn_csv: Option<String>,
    pub sanctions_ofac_alt_csv: Option<String>,
    pub screening_thresholds: String,
    pub payments_max_amount: u64,
    pub payments_max_per_hour: u64,
    pub deposits_job_interval_s: u64,
    pub deposits_in_doubt_window_s: u64,
    pub business_tz: chrono_tz::Tz,
    pub saga_lease_ms: u64,
    pub saga_poll_ms: u64,
    pub saga_in_flight_max: usize,
    pub demo_call_delay_ms: u64,
    pub relay_schemas: Vec<String>,
    pub relay_batch_size_max: usize,
    pub relay_lease_ms: u64,
    pub relay_poll_ms: u64,
    pub relay_publish_timeout_ms: u64,
    pub nats_url: Option<String>,
    pub nats_subject_prefix: String,
    pub nats_tls_ca: Option<PathBuf>,
    pub nats_tls_cert: Option<PathBuf>,
    pub nats_tls_key: Option<PathBuf>,
    pub legacy_core_addr: SocketAddr,
    pub legacy_user: String,
    pub legacy_password: String,
    pub legacy_admin_password: String,
    pub legacy_faults: String,
    pub legacy_cob_window: String,
    pub legacy_seed_customers: u32,
    pub legacy_adapter_addr: SocketAddr,
    pub legacy_pool_size: usize,
    pub legacy_call_timeout_ms: u64,
    pub legacy_breaker_failures: u32,
    pub legacy_breaker_open_ms: u64,
    pub legacy_in_doubt_ms: u64,
    pub jwt_issuer: String,
    pub jwt_jwks: Option<String>,
    pub jwt_jwks_ca: Option<PathBuf>,
    pub jwt_jwks_refresh_s: u64,
    pub jwt_leeway_s: u64,
    pub jwt_dev_hs256_secret: Option<String>,
    pub gateway_modern_url: Option<String>,
    pub gateway_legacy_url: Option<String>,
    pub gateway_migration_url: Option<String>,
    pub migration_gateway_url: Option<String>,
    pub migration_legacy_url: Option<String>,
    pub gateway_body_max_bytes: usize,
    pub gateway_request_timeout_ms: u64,
    pub gateway_idempotency_retention_h: u64,
    pub gateway_idempotency_lease_ms: u64,
    pub gateway_approval_ttl_s: u64,
    pub gateway_route_poll_ms: u64,
    pub gateway_shadow_queue_max: usize,
    pub migration_hold_ms: u64,
}

impl Settings {
    /// Settings from this process's environment. Any `COREBANK_*` variable not in
    /// [`SETTINGS`] is refused, so a misspelt name does not silently fall back to a default.
    pub fn from_env() -> Result<Settings, SettingsError> {
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("COREBANK_") && !SETTINGS.iter().any(|s| s.name == name) {
                return Err(SettingsError::Unknown {
                    name: name.into_owned(),
                });
            }
        }
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings from any source of variables (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let reader = Reader { lookup: &lookup };
        Settings {
            database_url: lookup("DATABASE_URL").filter(|url| !url.trim().is_empty()),
            home: PathBuf::from(reader.text("COREBANK_HOME")?),
            http_addr: reader.parse("COREBANK_HTTP_ADDR", "an address such as 127.0.0.1:8080")?,
            internal_addr: reader.parse(
                "COREBANK_INTERNAL_ADDR",
                "an address such as 127.0.0.1:8081",
            )?,
            metrics_public: reader.parse("COREBANK_METRICS_PUBLIC", "true or false")?,
            insecure_internal: reader.parse("COREBANK_INSECURE_INTERNAL", "true or false")?,
            tls_dir: reader.path("COREBANK_TLS_DIR"),
            tls_ca: reader.path("COREBANK_TLS_CA"),
            tls_cert: reader.path("COREBANK_TLS_CERT"),
            tls_key: reader.path("COREBANK_TLS_KEY"),
            tls_trust_domain: reader.text("COREBANK_TLS_TRUST_DOMAIN")?,
            dev: reader.parse("COREBANK_DEV", "true or false")?,
            log_filter: reader.text("COREBANK_LOG")?,
            log_format: match reader.text("COREBANK_LOG_FORMAT")?.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(SettingsError::Invalid {
                        name: "COREBANK_LOG_FORMAT",
                        value: other.to_owned(),
                        problem: "unknown format".to_owned(),
                        fix: "set it to `text` or `json`".to_owned(),
                    });
                }
            },
            db_pool_size_max: reader.number("COREBANK_DB_POOL_SIZE_MAX", 1, 1_000)?,
            db_connect_timeout_ms: reader.number("COREBANK_DB_CONNECT_TIMEOUT_MS", 1, 600_000)?,
            db_statement_timeout_ms: reader.number(
                "COREBANK_DB_STATEMENT_TIMEOUT_MS",
                1,
                3_600_000,
            )?,
            db_lock_timeout_ms: reader.number("COREBANK_DB_LOCK_TIMEOUT_MS", 1, 3_600_000)?,
            db_tx_attempts_max: reader.number("COREBANK_DB_TX_ATTEMPTS_MAX", 1, 10_000)?,
            db_tx_deadline_ms: reader.number("COREBANK_DB_TX_DEADLINE_MS", 1, 3_600_000)?,
            requests_in_flight_max: reader.number(
                "COREBANK_REQUESTS_IN_FLIGHT_MAX",
                1,
                1_000_000,
            )?,
            shutdown_grace_ms: reader.number("COREBANK_SHUTDOWN_GRACE_MS", 0, 3_600_000)?,
            pg_bin_dir: lookup("COREBANK_PG_BIN_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            up_pg_port: reader.number("COREBANK_UP_PG_PORT", 0, 65_535)?,
            ledger_url: lookup("COREBANK_LEDGER_URL").filter(|u| !u.trim().is_empty()),
            deposits_url: lookup("COREBANK_DEPOSITS_URL").filter(|u| !u.trim().is_empty()),
            rail_url: lookup("COREBANK_RAIL_URL").filter(|u| !u.trim().is_empty()),
            rail_bank_url: lookup("COREBANK_RAIL_BANK_URL").filter(|u| !u.trim().is_empty()),
            rail_outcomes: reader.text("COREBANK_RAIL_OUTCOMES")?,
            rail_keys: lookup("COREBANK_RAIL_KEYS").filter(|keys| !keys.trim().is_empty()),
            sanctions_un_xml: lookup("COREBANK_SANCTIONS_UN_XML").filter(|f| !f.trim().is_empty()),
            sanctions_ofac_sdn_csv: lookup("COREBANK_SANCTIONS_OFAC_SDN_CSV")
                .filter(|f| !f.trim().is_empty()),
            sanctions_ofac_alt_csv: lookup("COREBANK_SANCTIONS_OFAC_ALT_CSV")
                .filter(|f| !f.trim().is_empty()),
            screening_thresholds: reader.text("COREBANK_SCREENING_THRESHOLDS")?,
            rail_delay_ms: {
                let text = reader.text("COREBANK_RAIL_DELAY_MS")?;
                let parsed = text.split_once('-').and_then(|(low, high)| {
                    Some((
                        low.trim().parse::<u64>().ok()?,
                        high.trim().parse::<u64>().ok()?,
                    ))
                });
                match parsed {
                    Some((low, high)) if low <= high => (low, high),
                    _ => {
                        return Err(SettingsError::Invalid {
                            name: "COREBANK_RAIL_DELAY_MS",
                            value: text,
                            problem: "not a range".to_owned(),
                            fix: "write it as LOW-HIGH in milliseconds, e.g. 20-200".to_owned(),
                        });
                    }
                }
            },
            payments_max_amount: reader.number("COREBANK_PAYMENTS_MAX_AMOUNT", 1, u64::MAX)?,
            payments_max_per_hour: reader.number("COREBANK_PAYMENTS_MAX_PER_HOUR", 1, 1_000_000)?,
            deposits_job_interval_s: reader.number(
                "COREBANK_DEPOSITS_JOB_INTERVAL_S",
                1,
                86_400,
            )?,
            business_tz: reader.time_zone("COREBANK_BUSINESS_TZ")?,
            deposits_in_doubt_window_s: reader.number(
                "COREBANK_DEPOSITS_IN_DOUBT_WINDOW_S",
                10,
                86_400,
            )?,
            saga_lease_ms: reader.number("COREBANK_SAGA_LEASE_MS", 100, 3_600_000)?,
            saga_poll_ms: reader.number("COREBANK_SAGA_POLL_MS", 1, 600_000)?,
            saga_in_flight_max: reader.number("COREBANK_SAGA_IN_FLIGHT_MAX", 1, 100_000)?,
            demo_call_delay_ms: reader.number("COREBANK_DEMO_CALL_DELAY_MS", 0, 600_000)?,
            relay_schemas: reader.schemas("COREBANK_RELAY_SCHEMAS")?,
            relay_batch_size_max: reader.number("COREBANK_RELAY_BATCH_SIZE_MAX", 1, 100_000)?,
            relay_lease_ms: reader.number("COREBANK_RELAY_LEASE_MS", 100, 3_600_000)?,
            relay_poll_ms: reader.number("COREBANK_RELAY_POLL_MS", 1, 600_000)?,
            relay_publish_timeout_ms: reader.number(
                "COREBANK_RELAY_PUBLISH_TIMEOUT_MS",
                1,
                600_000,
            )?,
            nats_url: lookup("COREBANK_NATS_URL").filter(|url| !url.trim().is_empty()),
            nats_subject_prefix: reader.text("COREBANK_NATS_SUBJECT_PREFIX")?,
            nats_tls_ca: reader.path("COREBANK_NATS_TLS_CA"),
            nats_tls_cert: reader.path("COREBANK_NATS_TLS_CERT"),
            nats_tls_key: reader.path("COREBANK_NATS_TLS_KEY"),
            legacy_core_addr: reader.parse(
                "COREBANK_LEGACY_CORE_ADDR",
                "an address such as 127.0.0.1:7023",
            )?,
            legacy_user: reader.text("COREBANK_LEGACY_USER")?,
            legacy_password: reader.text("COREBANK_LEGACY_PASSWORD")?,
            legacy_admin_password: reader.text("COREBANK_LEGACY_ADMIN_PASSWORD")?,
            legacy_faults: reader.text("COREBANK_LEGACY_FAULTS")?,
            legacy_cob_window: reader.text("COREBANK_LEGACY_COB_WINDOW")?,
            legacy_seed_customers: reader.number("COREBANK_LEGACY_SEED_CUSTOMERS", 0, 100_000)?,
            legacy_adapter_addr: reader.parse(
                "COREBANK_LEGACY_ADAPTER_ADDR",
                "an address such as 127.0.0.1:8091",
            )?,
            legacy_pool_size: reader.number("COREBANK_LEGACY_POOL_SIZE", 1, 1_000)?,
            legacy_call_timeout_ms: reader.number("COREBANK_LEGACY_CALL_TIMEOUT_MS", 1, 600_000)?,
            legacy_breaker_failures: reader.number(
                "COREBANK_LEGACY_BREAKER_FAILURES",
                1,
                10_000,
            )?,
            legacy_breaker_open_ms: reader.number(
                "COREBANK_LEGACY_BREAKER_OPEN_MS",
                1,
                3_600_000,
            )?,
            legacy_in_doubt_ms: reader.number("COREBANK_LEGACY_IN_DOUBT_MS", 1, 86_400_000)?,
            jwt_issuer: reader.text("COREBANK_JWT_ISSUER")?,
            jwt_jwks: lookup("COREBANK_JWT_JWKS").filter(|v| !v.trim().is_empty()),
            jwt_jwks_ca: reader.path("COREBANK_JWT_JWKS_CA"),
            jwt_jwks_refresh_s: reader.number("COREBANK_JWT_JWKS_REFRESH_S", 1, 86_400)?,
            jwt_leeway_s: reader.number("COREBANK_JWT_LEEWAY_S", 0, 3_600)?,
            jwt_dev_hs256_secret: lookup("COREBANK_JWT_DEV_HS256_SECRET")
                .filter(|v| !v.trim().is_empty()),
            gateway_modern_url: lookup("COREBANK_GATEWAY_MODERN_URL")
                .filter(|v| !v.trim().is_empty()),
            gateway_legacy_url: lookup("COREBANK_GATEWAY_LEGACY_URL")
                .filter(|v| !v.trim().is_empty()),
            gateway_migration_url: lookup("COREBANK_GATEWAY_MIGRATION_URL")
                .filter(|v| !v.trim().is_empty()),
            migration_gateway_url: lookup("COREBANK_MIGRATION_GATEWAY_URL")
                .filter(|v| !v.trim().is_empty()),
            migration_legacy_url: lookup("COREBANK_MIGRATION_LEGACY_URL")
                .filter(|v| !v.trim().is_empty()),
            gateway_body_max_bytes: reader.number(
                "COREBANK_GATEWAY_BODY_MAX_BYTES",
                1,
                64 * 1024 * 1024,
            )?,
            gateway_request_timeout_ms: reader.number(
                "COREBANK_GATEWAY_REQUEST_TIMEOUT_MS",
                1,
                600_000,
            )?,
            gateway_idempotency_retention_h: reader.number(
                "COREBANK_GATEWAY_IDEMPOTENCY_RETENTION_H",
                1,
                24 * 365,
            )?,
            gateway_idempotency_lease_ms: reader.number(
                "COREBANK_GATEWAY_IDEMPOTENCY_LEASE_MS",
                100,
                3_600_000,
            )?,
            gateway_approval_ttl_s: reader.number(
                "COREBANK_GATEWAY_APPROVAL_TTL_S",
                1,
                30 * 86_400,
            )?,
            gateway_route_poll_ms: reader.number("COREBANK_GATEWAY_ROUTE_POLL_MS", 10, 60_000)?,
            gateway_shadow_queue_max: reader.number(
                "COREBANK_GATEWAY_SHADOW_QUEUE_MAX",
                1,
                1_000_000,
            )?,
            migration_hold_ms: reader.number("COREBANK_MIGRATION_HOLD_MS", 0, 60_000)?,
        }
        .checked()
    }

    /// Checks settings that depend on each other.
    fn checked(self) -> Result<Settings, SettingsError> {
        if self.migration_hold_ms > self.gateway_request_timeout_ms {
            return Err(SettingsError::Invalid {
                name: "COREBANK_MIGRATION_HOLD_MS",
                value: self.migration_hold_ms.to_string(),
                problem: format!(
                    "a request held for a moving account would wait longer than a request may \
                     take (COREBANK_GATEWAY_REQUEST_TIMEOUT_MS is {})",
                    self.gateway_request_timeout_ms
                ),
                fix: "make it at most COREBANK_GATEWAY_REQUEST_TIMEOUT_MS".to_owned(),
            });
        }
        if self.gateway_idempotency_lease_ms < self.gateway_request_timeout_ms.saturating_mul(2) {
            return Err(SettingsError::Invalid {
                name: "COREBANK_GATEWAY_IDEMPOTENCY_LEASE_MS",
                value: self.gateway_idempotency_lease_ms.to_string(),
                problem: format!(
                    "a request could still be running when its key is taken over \
                     (COREBANK_GATEWAY_REQUEST_TIMEOUT_MS is {})",
                    self.gateway_request_timeout_ms
                ),
                fix: "make it at least twice COREBANK_GATEWAY_REQUEST_TIMEOUT_MS".to_owned(),
            });
        }
        if self.relay_lease_ms < self.relay_publish_timeout_ms.saturating_mul(2) {
            return Err(SettingsError::Invalid {
                name: "COREBANK_RELAY_LEASE_MS",
                value: self.relay_lease_ms.to_string(),
                problem: format!(
                    "a relay could not finish a publish within its lease \
                     (COREBANK_RELAY_PUBLISH_TIMEOUT_MS is {})",
                    self.relay_publish_timeout_ms
                ),
                fix: "make it at least twice COREBANK_RELAY_PUBLISH_TIMEOUT_MS".to_owned(),
            });
        }
        let tls_files = [&self.tls_ca, &self.tls_cert, &self.tls_key];
        let set = tls_files.iter().filter(|file| file.is_some()).count();
        if set != 0 && set != 3 {
            return Err(SettingsError::Invalid {
                name: "COREBANK_TLS_CERT",
                value: self
                    .tls_cert
                    .as_ref()
                    .map(|path| path.display().to_string())
                    .unwrap_or_default(),
                problem: "COREBANK_TLS_CA, COREBANK_TLS_CERT and COREBANK_TLS_KEY go together"
                    .to_owned(),
                fix: "set all three, or none (then COREBANK_TLS_DIR is used)".to_owned(),
            });
        }
        Ok(self)
    }

    /// Settings with every default, as `corebank config` lists them.
    pub fn defaults() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|_| None)
    }

    /// The database settings for a component, named in `pg_stat_activity`.
    pub fn db_settings(&self, url: &str, component: &str) -> DbSettings {
        DbSettings {
            url: url.to_owned(),
            pool_size_max: self.db_pool_size_max,
            connect_timeout_ms: self.db_connect_timeout_ms,
            statement_timeout_ms: self.db_statement_timeout_ms,
            lock_timeout_ms: self.db_lock_timeout_ms,
            application_name: format!("corebank-{component}"),
            retry: RetryPolicy {
                attempts_max: self.db_tx_attempts_max,
                deadline_ms: self.db_tx_deadline_ms,
                ..RetryPolicy::default()
            },
            search_path: None,
            custom_plans: true,
        }
    }
}

struct Reader<'a, F: Fn(&str) -> Option<String>> {
    lookup: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn text(&self, name: &'static str) -> Result<String, SettingsError> {
        match (self.lookup)(name) {
            Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
            _ => Ok(default_of(name).to_owned()),
        }
    }

    /// An IANA time zone name.
    fn time_zone(&self, name: &'static str) -> Result<chrono_tz::Tz, SettingsError> {
        let value = self.text(name)?;
        value
            .parse::<chrono_tz::Tz>()
            .map_err(|_| SettingsError::Invalid {
                name,
                value: value.clone(),
                problem: "not an IANA time zone name".to_owned(),
                fix: "set it to a name such as `UTC`, `Europe/Paris` or `America/New_York`"
                    .to_owned(),
            })
    }

    /// A path, or `None` when unset or empty.
    fn path(&self, name: &'static str) -> Option<PathBuf> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    }

    /// A comma-separated list of schema names (lower-case identifiers), at least one.
    fn schemas(&self, name: &'static str) -> Result<Vec<String>, SettingsError> {
        let value = self.text(name)?;
        let schemas: Vec<String> = value
            .split(',')
            .map(|schema| schema.trim().to_owned())
            .filter(|schema| !schema.is_empty())
            .collect();
        let valid = |schema: &String| {
            schema
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase())
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && schema.len() <= 63
        };
        if schemas.is_empty() || !schemas.iter().all(valid) {
            return Err(SettingsError::Invalid {
                name,
                value,
                problem: "not a list of schema names".to_owned(),
                fix: format!(
                    "set it to lower-case schema names separated by commas, such as `ledger,demo`, \
                     or unset it for the default {}",
                    default_of(name)
                ),
            });
        }
        Ok(schemas)
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        expected: &str,
    ) -> Result<T, SettingsError>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.text(name)?;
        value
            .parse()
            .map_err(|error: T::Err| SettingsError::Invalid {
                name,
                value: value.clone(),
                problem: error.to_string(),
                fix: format!(
                    "set it to {expected}, or unset it for the default {}",
                    default_of(name)
                ),
            })
    }

    fn number<T>(&self, name: &'static str, min: T, max: T) -> Result<T, SettingsError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let expected = format!("a whole number from {min} to {max}");
        let value: T = self.parse(name, &expected)?;
        if value < min || value > max {
            return Err(SettingsError::Invalid {
                name,
                value: value.to_string(),
                problem: "out of range".to_owned(),
                fix: format!(
                    "set it to {expected}, or unset it for the default {}",
                    default_of(name)
                ),
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = with(&[]).unwrap();
        assert_eq!(settings.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.db_pool_size_max, 16);
        assert_eq!(settings.log_format, LogFormat::Text);
        assert_eq!(settings.database_url, None);
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_fix() {
        let error = with(&[("COREBANK_DB_POOL_SIZE_MAX", "lots")]).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("COREBANK_DB_POOL_SIZE_MAX=\"lots\" is invalid"),
            "{message}"
        );
        assert!(
            message.contains("a whole number from 1 to 1000"),
            "{message}"
        );
        assert!(message.contains("default 16"), "{message}");

        let error = with(&[("COREBANK_DB_POOL_SIZE_MAX", "0")]).unwrap_err();
        assert!(error.to_string().contains("out of range"));

        let error = with(&[("COREBANK_LOG_FORMAT", "xml")]).unwrap_err();
        assert!(error.to_string().contains("`text` or `json`"));

        let error = with(&[("COREBANK_HTTP_ADDR", "localhost")]).unwrap_err();
        assert!(error.to_string().contains("COREBANK_HTTP_ADDR"));
    }

    #[test]
    fn the_business_time_zone_is_an_iana_name() {
        assert_eq!(with(&[]).unwrap().business_tz, chrono_tz::Tz::UTC);
        let paris = with(&[("COREBANK_BUSINESS_TZ", "Europe/Paris")]).unwrap();
        assert_eq!(paris.business_tz, chrono_tz::Europe::Paris);
        let error = with(&[("COREBANK_BUSINESS_TZ", "Mars/Olympus")]).unwrap_err();
        assert!(
            error.to_string().contains("COREBANK_BUSINESS_TZ"),
            "{error}"
        );
    }

    #[test]
    fn relay_settings_are_checked_together() {
        let settings = with(&[]).unwrap();
        assert_eq!(
            settings.relay_schemas,
            vec![
                "ledger".to_owned(),
                "deposits".to_owned(),
                "payments".to_owned()
            ]
        );
        assert_eq!(settings.nats_url, None);
        let settings = with(&[
            ("COREBANK_RELAY_SCHEMAS", " ledger , demo "),
            ("COREBANK_NATS_URL", "nats://127.0.0.1:4222"),
        ])
        .unwrap();
        assert_eq!(settings.relay_schemas, vec!["ledger", "demo"]);
        assert_eq!(settings.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));

        let error = with(&[("COREBANK_RELAY_SCHEMAS", "ledger,Bad-Name")]).unwrap_err();
        assert!(
            error.to_string().contains("COREBANK_RELAY_SCHEMAS"),
            "{error}"
        );
        let error = with(&[
            ("COREBANK_RELAY_LEASE_MS", "1000"),
            ("COREBANK_RELAY_PUBLISH_TIMEOUT_MS", "800"),
        ])
        .unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("COREBANK_RELAY_LEASE_MS="), "{message}");
        assert!(message.contains("at least twice"), "{message}");
    }

    #[test]
    fn the_migration_hold_is_no_longer_than_a_request() {
        assert_eq!(with(&[]).unwrap().migration_hold_ms, 2_000);
        let held = with(&[("COREBANK_MIGRATION_HOLD_MS", "0")]).unwrap();
        assert_eq!(held.migration_hold_ms, 0);
        let error = with(&[
            ("COREBANK_MIGRATION_HOLD_MS", "5000"),
            ("COREBANK_GATEWAY_REQUEST_TIMEOUT_MS", "4000"),
        ])
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("COREBANK_MIGRATION_HOLD_MS="),
            "{message}"
        );
        assert!(message.contains("at most"), "{message}");
    }

    #[test]
    fn every_default_in_the_table_is_valid() {
        Settings::defaults().unwrap();
        for spec in SETTINGS {
            assert!(spec.name == "DATABASE_URL" || spec.name.starts_with("COREBANK_"));
        }
    }

    #[test]
    fn the_configuration_doc_is_generated_from_the_table() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/CONFIGURATION.md"
        ))
        .unwrap();
        assert_eq!(
            doc,
            render_markdown(),
            "docs/CONFIGURATION.md is stale: run `cargo run -- config --markdown > docs/CONFIGURATION.md`"
        );
    }
}

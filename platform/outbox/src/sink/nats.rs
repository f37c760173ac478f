//! The NATS JetStream sink: one stream per schema (`<PREFIX>_<SCHEMA>`, subjects
//! `<prefix>.<schema>.>`, created when missing), one message per event on
//! `<prefix>.<schema>.<aggregatetype>`, the payload as the JSON body and the event's facts in
//! headers. `Nats-Msg-Id` is the event id, so JetStream drops a republished event within its
//! duplicate window; `publish` returns only after the stream's ack. The connection can speak
//! TLS, with a client certificate ([`NatsTls`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind};
use async_nats::rustls::pki_types::pem::PemObject as _;
use async_nats::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Sink, SinkError, SinkFuture};
use crate::{OutboxError, OutboxEvent};

const SINK_NAME: &str = "nats";

/// Header names. `Nats-Msg-Id` is JetStream's own deduplication header.
pub const HEADER_MESSAGE_ID: &str = "Nats-Msg-Id";
pub const HEADER_SCHEMA: &str = "Corebank-Schema";
pub const HEADER_AGGREGATE_TYPE: &str = "Corebank-Aggregate-Type";
pub const HEADER_AGGREGATE_ID: &str = "Corebank-Aggregate-Id";
pub const HEADER_AGGREGATE_SEQUENCE: &str = "Corebank-Aggregate-Sequence";
pub const HEADER_EVENT_TYPE: &str = "Corebank-Event-Type";
pub const HEADER_CREATED_AT: &str = "Corebank-Created-At";
pub const HEADER_PARTITION: &str = "Corebank-Partition";
pub const HEADER_TRACEPARENT: &str = "traceparent";

/// How the sink reaches NATS and names what it creates there.
#[derive(Debug, Clone)]
pub struct NatsSinkConfig {
    /// Such as `nats://127.0.0.1:4222`.
    pub url: String,
    /// The first subject token(s) and the stream name prefix: `corebank` gives subjects
    /// `corebank.<schema>.<aggregatetype>` and streams `COREBANK_<SCHEMA>`.
    pub subject_prefix: String,
    /// How long to wait for a connection, and for each publish's ack.
    pub timeout_ms: u64,
    /// How long JetStream remembers message ids to drop duplicates (streams it creates).
    pub duplicate_window_ms: u64,
    /// How long streams it creates keep messages.
    pub max_age_ms: u64,
    /// TLS to the server; the default is none (plain text, or TLS with the platform's roots
    /// when the URL is `tls://…` or the server demands it).
    pub tls: NatsTls,
}

impl NatsSinkConfig {
    pub fn new(url: &str) -> NatsSinkConfig {
        NatsSinkConfig {
            url: url.to_owned(),
            subject_prefix: "corebank".to_owned(),
            timeout_ms: 5_000,
            duplicate_window_ms: 120_000,
            max_age_ms: 7 * 24 * 3_600 * 1_000,
            tls: NatsTls::default(),
        }
    }
}

/// The settings that name the TLS files, for error messages.
const SETTING_CA: &str = "COREBANK_NATS_TLS_CA";
const SETTING_CERT: &str = "COREBANK_NATS_TLS_CERT";
const SETTING_KEY: &str = "COREBANK_NATS_TLS_KEY";

/// TLS to the NATS server: the CA its certificate must chain to, and the certificate the
/// relay presents when the server verifies clients (`--tlsverify`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM bundle of the CA(s) to trust instead of the platform's roots
    /// (`COREBANK_NATS_TLS_CA`).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain to present (`COREBANK_NATS_TLS_CERT`); with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file` (`COREBANK_NATS_TLS_KEY`).
    pub client_key_file: Option<PathBuf>,
    /// Refuse to connect unless the connection is TLS, whatever the server offers.
    pub require_tls: bool,
}

impl NatsTls {
    /// From the three settings; TLS is then required as soon as any of them is set, so
    /// that a server (or someone in between) offering plain text cannot downgrade the relay.
    pub fn from_files(
        ca_file: Option<PathBuf>,
        client_cert_file: Option<PathBuf>,
        client_key_file: Option<PathBuf>,
    ) -> NatsTls {
        let require_tls =
            ca_file.is_some() || client_cert_file.is_some() || client_key_file.is_some();
        NatsTls {
            ca_file,
            client_cert_file,
            client_key_file,
            require_tls,
        }
    }

    /// Adds these settings to `options`. The files are read and parsed here, once, so that a
    /// missing or wrong file is reported naming its setting before any connection is tried
    /// (async-nats would only read them when connecting, and a relay waiting for its server
    /// would retry a bad file forever).
    fn apply(
        &self,
        mut options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, OutboxError> {
        if let Some(ca) = &self.ca_file {
            let certificates = read_certificates(SETTING_CA, ca)?;
            if certificates == 0 {
                return Err(invalid_file(SETTING_CA, ca, "holds no CERTIFICATE block"));
            }
            options = options.add_root_certificates(ca.clone());
        }
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                if read_certificates(SETTING_CERT, cert)? == 0 {
                    return Err(invalid_file(
                        SETTING_CERT,
                        cert,
                        "holds no CERTIFICATE block",
                    ));
                }
                PrivateKeyDer::from_pem_slice(&read_file(SETTING_KEY, key)?).map_err(|error| {
                    invalid_file(SETTING_KEY, key, &format!("holds no private key ({error})"))
                })?;
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
            (Some(_), None) => {
                return Err(OutboxError::Invalid {
                    field: SETTING_KEY,
                    problem: format!("is not set, but {SETTING_CERT} is: set both, or neither"),
                });
            }
            (None, Some(_)) => {
                return Err(OutboxError::Invalid {
                    field: SETTING_CERT,
                    problem: format!("is not set, but {SETTING_KEY} is: set both, or neither"),
                });
            }
            (None, None) => {}
        }
        Ok(options.require_tls(self.require_tls))
    }
}

fn invalid_file(setting: &'static str, path: &Path, problem: &str) -> OutboxError {
    OutboxError::Invalid {
        field: setting,
        problem: format!("{} {problem}", path.display()),
    }
}

fn read_file(setting: &'static str, path: &Path) -> Result<Vec<u8>, OutboxError> {
    std::fs::read(path)
        .map_err(|error| invalid_file(setting, path, &format!("cannot be read: {error}")))
}

/// How many certificates the PEM file at `path` holds.
fn read_certificates(setting: &'static str, path: &Path) -> Result<usize, OutboxError> {
    let pem = read_file(setting, path)?;
    CertificateDer::pem_slice_iter(&pem)
        .try_fold(0_usize, |count, certificate| {
            certificate.map(|_| count.saturating_add(1))
        })
        .map_err(|error| invalid_file(setting, path, &format!("is not valid PEM ({error})")))
}

/// Publishes events to NATS JetStream and waits for each ack.
#[derive(Debug)]
pub struct NatsSink {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    config: NatsSinkConfig,
    /// Schemas whose stream is known to exist.
    streams_ready: Mutex<HashSet<String>>,
}

/// Whether `prefix` is one or more NATS subject tokens of letters, digits, `_` and `-`.
fn valid_subject_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

impl NatsSink {
    /// Connects to NATS. With `wait_for_server` false the first connection must succeed
    /// within the timeout (tests, tools); with true the client keeps trying in the background
    /// and publishes fail as "unavailable" until it is up (a relay starts before its broker).
    pub async fn connect(
        config: NatsSinkConfig,
        wait_for_server: bool,
    ) -> Result<NatsSink, OutboxError> {
        if !valid_subject_prefix(&config.subject_prefix) {
            return Err(OutboxError::Invalid {
                field: "subject_prefix",
                problem: format!(
                    "{:?} must be NATS subject tokens of letters, digits, `_` and `-` separated by `.`",
                    config.subject_prefix
                ),
            });
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut options = config.tls.apply(
            async_nats::ConnectOptions::new()
                .name("corebank-relay")
                .connection_timeout(timeout),
        )?;
        if wait_for_server {
            options = options.retry_on_initial_connect();
        }
        let client = options
            .connect(config.url.as_str())
            .await
            .map_err(|error| OutboxError::Nats {
                url: config.url.clone(),
                message: error.to_string(),
            })?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(timeout);
        Ok(NatsSink {
            client,
            jetstream,
            config,
            streams_ready: Mutex::new(HashSet::new()),
        })
    }

    /// The subject an event is published on.
    pub fn subject_of(&self, event: &OutboxEvent) -> String {
        format!(
            "{}.{}.{}",
            self.config.subject_prefix, event.schema, event.aggregatetype
        )
    }

    /// The stream that holds a schema's events.
    pub fn stream_name(&self, schema: &str) -> String {
        stream_name(&self.config.subject_prefix, schema)
    }

    /// The subjects of a schema's stream.
    pub fn stream_subjects(&self, schema: &str) -> String {
        format!("{}.{schema}.>", self.config.subject_prefix)
    }

    /// The connected client, for consumers in the same process and for tests.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    async fn ensure_stream(&self, schema: &str) -> Result<(), SinkError> {
        let ready = self
            .streams_ready
            .lock()
            .map(|ready| ready.contains(schema))
            .unwrap_or(false);
        if ready {
            return Ok(());
        }
        let config = jetstream::stream::Config {
            name: self.stream_name(schema),
            subjects: vec![self.stream_subjects(schema)],
            duplicate_window: Duration::from_millis(self.config.duplicate_window_ms),
            max_age: Duration::from_millis(self.config.max_age_ms),
            description: Some(format!("corebank events of the {schema} outbox")),
            ..Default::default()
        };
        self.jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|error| SinkError::Unavailable {
                sink: SINK_NAME.to_owned(),
                message: format!("cannot get or create the stream for {schema}: {error}"),
            })?;
        if let Ok(mut ready) = self.streams_ready.lock() {
            ready.insert(schema.to_owned());
        }
        Ok(())
    }

    fn forget_stream(&self, schema: &str) {
        if let Ok(mut ready) = self.streams_ready.lock() {
            ready.remove(schema);
        }
    }
}

/// `<PREFIX>_<SCHEMA>`, upper-cased, with `.` and `-` made `_` (stream names allow neither
/// `.` nor spaces).
pub fn stream_name(subject_prefix: &str, schema: &str) -> String {
    format!("{subject_prefix}_{schema}")
        .chars()
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn headers_of(event: &OutboxEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_MESSAGE_ID, event.id.to_string());
    headers.insert(HEADER_SCHEMA, event.schema.as_str());
    headers.insert(HEADER_AGGREGATE_TYPE, event.aggregatetype.as_str());
    headers.insert(HEADER_AGGREGATE_ID, event.aggregateid.as_str());
    headers.insert(
        HEADER_AGGREGATE_SEQUENCE,
        event.aggregate_sequence.to_string(),
    );
    headers.insert(HEADER_EVENT_TYPE, event.event_type.as_str());
    headers.insert(
        HEADER_CREATED_AT,
        event
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    );
    headers.insert(HEADER_PARTITION, event.partition.to_string());
    if !event.trace_context.is_empty() {
        headers.insert(HEADER_TRACEPARENT, event.trace_context.as_str());
    }
    headers
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        SINK_NAME
    }

    fn publish<'a>(&'a self, event: &'a OutboxEvent) -> SinkFuture<'a> {
        Box::pin(async move {
            let unavailable = |message: String| SinkError::Unavailable {
                sink: SINK_NAME.to_owned(),
                message,
            };
            let refused = |message: String| SinkError::Refused {
                sink: SINK_NAME.to_owned(),
                message,
            };
            self.ensure_stream(&event.schema).await?;
            let payload = serde_json::to_vec(&event.payload)
                .map_err(|error| refused(format!("the payload does not serialize: {error}")))?;
            let published = self
                .jetstream
                .publish_with_headers(self.subject_of(event), headers_of(event), payload.into())
                .await;
            let ack_future = match published {
                Ok(ack_future) => ack_future,
                Err(error) => {
                    return Err(match error.kind() {
                        PublishErrorKind::MaxPayloadExceeded => {
                            refused(format!("the message is too large for the server: {error}"))
                        }
                        _ => unavailable(format!("publish failed: {error}")),
                    });
                }
            };
            match ack_future.await {
                Ok(ack) => {
                    if ack.duplicate {
                        metrics::counter!(
                            "corebank_outbox_nats_duplicates_total",
                            "schema" => event.schema.clone()
                        )
                        .increment(1);
                    }
                    Ok(())
                }
                Err(error) => {
                    if error.kind() == PublishErrorKind::StreamNotFound {
                        self.forget_stream(&event.schema);
                    }
                    Err(match error.kind() {
                        PublishErrorKind::MaxPayloadExceeded => {
                            refused(format!("the message is too large for the stream: {error}"))
                        }
                        _ => unavailable(format!("no ack from the stream: {error}")),
                    })
                }
            }
        })
    }
}

/// The outbox event a message published by [`NatsSink`] carries (for consumers).
pub fn decode_message(message: &async_nats::Message) -> Result<OutboxEvent, OutboxError> {
    let headers = message
        .headers
        .as_ref()
        .ok_or_else(|| OutboxError::Decode {
            message: "the message has no headers".to_owned(),
        })?;
    decode(headers, &message.payload)
}

/// The outbox event in a message's headers and payload (a consumed message, or one read
/// from a stream by sequence).
pub fn decode(headers: &HeaderMap, payload: &[u8]) -> Result<OutboxEvent, OutboxError> {
    let decode = |message: String| OutboxError::Decode { message };
    let header = |name: &'static str| -> Result<String, OutboxError> {
        headers
            .get(name)
            .map(|value| value.as_str().to_owned())
            .ok_or_else(|| decode(format!("header {name} is missing")))
    };
    let number = |name: &'static str| -> Result<i64, OutboxError> {
        header(name)?
            .parse()
            .map_err(|error| decode(format!("header {name} is not a number: {error}")))
    };
    let id: Uuid = header(HEADER_MESSAGE_ID)?
        .parse()
        .map_err(|error| decode(format!("header {HEADER_MESSAGE_ID} is not a UUID: {error}")))?;
    let created_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&header(HEADER_CREATED_AT)?)
        .map_err(|error| decode(format!("header {HEADER_CREATED_AT}: {error}")))?
        .with_timezone(&Utc);
    let payload = serde_json::from_slice(payload)
        .map_err(|error| decode(format!("the payload is not JSON: {error}")))?;
    Ok(OutboxEvent {
        schema: header(HEADER_SCHEMA)?,
        id,
        aggregatetype: header(HEADER_AGGREGATE_TYPE)?,
        aggregateid: header(HEADER_AGGREGATE_ID)?,
        aggregate_sequence: number(HEADER_AGGREGATE_SEQUENCE)?,
        event_type: header(HEADER_EVENT_TYPE)?,
        payload,
        trace_context: headers
            .get(HEADER_TRACEPARENT)
            .map(|value| value.as_str().to_owned())
            .unwrap_or_default(),
        created_at,
        partition: number(HEADER_PARTITION)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_and_prefixes_follow_nats_rules() {
        assert_eq!(stream_name("corebank", "ledger"), "COREBANK_LEDGER");
        assert_eq!(stream_name("cb.test-1", "demo"), "CB_TEST_1_DEMO");
        assert!(valid_subject_prefix("corebank"));
        assert!(valid_subject_prefix("acme.corebank"));
        assert!(!valid_subject_prefix(""));
        assert!(!valid_subject_prefix("a..b"));
        assert!(!valid_subject_prefix("a.>"));
        assert!(!valid_subject_prefix("a b"));
    }

    /// A CA and a client certificate it issued, written to `dir`: (ca, cert, key) paths.
    fn write_tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["relay".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let paths = (
            dir.join("ca.crt"),
            dir.join("relay.crt"),
            dir.join("relay.key"),
        );
        std::fs::write(&paths.0, ca_cert.pem()).unwrap();
        std::fs::write(&paths.1, cert.pem()).unwrap();
        std::fs::write(&paths.2, key.serialize_pem()).unwrap();
        paths
    }

    fn refusal(tls: &NatsTls) -> (&'static str, String) {
        match tls.apply(async_nats::ConnectOptions::new()) {
            Err(OutboxError::Invalid { field, problem }) => (field, problem),
            other => panic!("expected the settings to be refused, got {other:?}"),
        }
    }

    #[test]
    fn tls_settings_are_required_together_and_read_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = write_tls_files(dir.path());

        let none = NatsTls::from_files(None, None, None);
        assert_eq!(none, NatsTls::default());
        assert!(!none.require_tls);
        none.apply(async_nats::ConnectOptions::new()).unwrap();

        let full = NatsTls::from_files(Some(ca.clone()), Some(cert.clone()), Some(key.clone()));
        assert!(full.require_tls, "TLS settings make plain text a failure");
        full.apply(async_nats::ConnectOptions::new()).unwrap();
        let server_only = NatsTls::from_files(Some(ca.clone()), None, None);
        assert!(server_only.require_tls);
        server_only
            .apply(async_nats::ConnectOptions::new())
            .unwrap();

        let missing = dir.path().join("missing.crt");
        let (field, problem) = refusal(&NatsTls::from_files(Some(missing.clone()), None, None));
        assert_eq!(field, "COREBANK_NATS_TLS_CA");
        assert!(
            problem.contains(&missing.display().to_string()),
            "{problem}"
        );
        assert!(problem.contains("cannot be read"), "{problem}");

        let (field, _) = refusal(&NatsTls::from_files(
            Some(ca.clone()),
            Some(missing.clone()),
            Some(key.clone()),
        ));
        assert_eq!(field, "COREBANK_NATS_TLS_CERT");
        let (field, _) = refusal(&NatsTls::from_files(
            Some(ca.clone()),
            Some(cert.clone()),
            Some(missing),
        ));
        assert_eq!(field, "COREBANK_NATS_TLS_KEY");

        let (field, problem) = refusal(&NatsTls::from_files(
            Some(ca.clone()),
            Some(cert.clone()),
            None,
        ));
        assert_eq!(field, "COREBANK_NATS_TLS_KEY");
        assert!(problem.contains("COREBANK_NATS_TLS_CERT"), "{problem}");
        let (field, _) = refusal(&NatsTls::from_files(None, None, Some(key.clone())));
        assert_eq!(field, "COREBANK_NATS_TLS_CERT");

        // A file that is there but holds the wrong thing.
        let (field, problem) = refusal(&NatsTls::from_files(Some(key.clone()), None, None));
        assert_eq!(field, "COREBANK_NATS_TLS_CA");
        assert!(problem.contains("no CERTIFICATE"), "{problem}");
        let (field, problem) = refusal(&NatsTls::from_files(
            Some(ca),
            Some(cert.clone()),
            Some(cert),
        ));
        assert_eq!(field, "COREBANK_NATS_TLS_KEY");
        assert!(problem.contains("no private key"), "{problem}");
    }

    #[tokio::test]
    async fn a_relay_waiting_for_its_server_still_reports_a_bad_tls_file_at_once() {
        let mut config = NatsSinkConfig::new("nats://127.0.0.1:1");
        config.tls = NatsTls::from_files(Some(PathBuf::from("/nonexistent/ca.crt")), None, None);
        let error = NatsSink::connect(config, true).await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("COREBANK_NATS_TLS_CA: /nonexistent/ca.crt"),
            "{error}"
        );
    }
}

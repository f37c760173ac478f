//! The NATS sink over mutual TLS, against a real `nats-server` each test starts with
//! `--tls --tlsverify` on 127.0.0.1 and certificates made on the spot. Each test skips, saying
//! so, when no `nats-server` binary is found (`NATS_SERVER_BIN`, else `PATH`, else
//! /usr/sbin/nats-server).

use crate::common;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{SubsecRound as _, Utc};
use corebank_outbox::async_nats::jetstream;
use corebank_outbox::sink::nats::{self, NatsSink, NatsSinkConfig, NatsTls};
use corebank_outbox::{OutboxError, OutboxEvent, Sink};

/// How long `nats-server` may take to write its ports file.
const SERVER_START_TIMEOUT_MS: u64 = 10_000;
/// Each sink's connection timeout: a refused handshake must fail well within it.
const CONNECT_TIMEOUT_MS: u64 = 3_000;

fn nats_server_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN")
        && !path.trim().is_empty()
    {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let fallback = PathBuf::from("/usr/sbin/nats-server");
        fallback.is_file().then_some(fallback)
    })
}

/// A CA, and what it issued: a server certificate for 127.0.0.1 and a client certificate.
struct Certificates {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

struct Issuer {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    cert_pem: String,
}

impl Issuer {
    fn new(label: &str) -> Issuer {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{label} test CA"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert_pem = params.self_signed(&key).unwrap().pem();
        Issuer {
            params,
            key,
            cert_pem,
        }
    }

    /// (certificate PEM, key PEM) for `names`, good for `usage`.
    fn issue(&self, names: &[&str], usage: rcgen::ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn certificates(dir: &Path) -> Certificates {
    let ca = Issuer::new("nats");
    let (server_cert, server_key) = ca.issue(
        &["127.0.0.1", "localhost"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) =
        ca.issue(&["relay"], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    Certificates {
        ca: write(dir, "ca.crt", &ca.cert_pem),
        server_cert: write(dir, "server.crt", &server_cert),
        server_key: write(dir, "server.key", &server_key),
        client_cert: write(dir, "relay.crt", &client_cert),
        client_key: write(dir, "relay.key", &client_key),
    }
}

/// A `nats-server` with JetStream that speaks only TLS and verifies client certificates;
/// killed when dropped.
struct TlsNatsServer {
    _child: tokio::process::Child,
    url: String,
    certificates: Certificates,
    dir: tempfile::TempDir,
}

async fn start_tls_nats(test: &str) -> Option<TlsNatsServer> {
    let Some(binary) = nats_server_binary() else {
        // CI installs nats-server (.ci/run): there, a missing binary is a failure, not a skip.
        return common::skipped(
            test,
            "no nats-server binary (set NATS_SERVER_BIN or put nats-server on PATH)",
            ".ci/run installs Debian's nats-server",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let ports_dir = dir.path().join("ports");
    std::fs::create_dir(&ports_dir).unwrap();
    let child = tokio::process::Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
        .arg(dir.path().join("jetstream"))
        .arg("--tls")
        .arg("--tlscert")
        .arg(&certificates.server_cert)
        .arg("--tlskey")
        .arg(&certificates.server_key)
        .arg("--tlscacert")
        .arg(&certificates.ca)
        .arg("--tlsverify")
        .arg("--ports_file_dir")
        .arg(&ports_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
    let port = wait_for_port(&ports_dir).await;
    Some(TlsNatsServer {
        _child: child,
        // Plain `nats://`: the sink's settings, not the scheme, must make it speak TLS.
        url: format!("nats://127.0.0.1:{port}"),
        certificates,
        dir,
    })
}

/// The client port `nats-server` chose, from the ports file it writes once it listens
/// (`{"nats": ["tls://127.0.0.1:<port>"], …}`).
async fn wait_for_port(ports_dir: &Path) -> u16 {
    let started = Instant::now();
    loop {
        let ports_file = std::fs::read_dir(ports_dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "ports"));
        if let Some(text) = ports_file.and_then(|path| std::fs::read_to_string(path).ok())
            && let Ok(ports) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(url) = ports["nats"][0].as_str()
        {
            return url
                .rsplit(':')
                .next()
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("no port in {url:?}"));
        }
        assert!(
            started.elapsed() < Duration::from_millis(SERVER_START_TIMEOUT_MS),
            "nats-server wrote no ports file within {SERVER_START_TIMEOUT_MS} ms"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sink_config(server: &TlsNatsServer, tls: NatsTls) -> NatsSinkConfig {
    let mut config = NatsSinkConfig::new(&server.url);
    config.subject_prefix = "cbtls".to_owned();
    config.timeout_ms = CONNECT_TIMEOUT_MS;
    config.tls = tls;
    config
}

fn an_event() -> OutboxEvent {
    OutboxEvent {
        schema: "demo".to_owned(),
        id: uuid::Uuid::new_v4(),
        aggregatetype: "thing".to_owned(),
        aggregateid: "a".to_owned(),
        aggregate_sequence: 1,
        event_type: "thing.changed".to_owned(),
        payload: serde_json::json!({ "thing": "a", "n": 1 }),
        trace_context: String::new(),
        // Headers carry microseconds.
        created_at: Utc::now().trunc_subsecs(6),
        partition: 3,
    }
}

/// Connects expecting the TLS handshake to fail over a certificate (not a timeout, not a
/// closed port).
async fn refused(config: NatsSinkConfig) {
    match NatsSink::connect(config, false).await {
        Err(error @ OutboxError::Nats { .. }) => assert!(
            error.to_string().to_lowercase().contains("certificate"),
            "{error}"
        ),
        Err(other) => panic!("expected NATS to refuse the connection, got {other}"),
        Ok(_) => panic!("NATS accepted a client it should have refused"),
    }
}

#[tokio::test]
async fn the_nats_sink_publishes_over_mutual_tls() {
    let Some(server) = start_tls_nats("the_nats_sink_publishes_over_mutual_tls").await else {
        return;
    };
    let files = &server.certificates;
    let tls = NatsTls::from_files(
        Some(files.ca.clone()),
        Some(files.client_cert.clone()),
        Some(files.client_key.clone()),
    );
    let sink = NatsSink::connect(sink_config(&server, tls), false)
        .await
        .unwrap();
    let event = an_event();
    sink.publish(&event).await.unwrap();

    let stream = jetstream::new(sink.client().clone())
        .get_stream(sink.stream_name("demo"))
        .await
        .unwrap();
    let stored = stream.get_raw_message(1).await.unwrap();
    assert_eq!(stored.subject.as_str(), "cbtls.demo.thing");
    let decoded = nats::decode(&stored.headers, &stored.payload).unwrap();
    assert_eq!(decoded, event);
}

#[tokio::test]
async fn a_nats_server_that_verifies_clients_refuses_a_sink_without_a_good_certificate() {
    let Some(server) = start_tls_nats(
        "a_nats_server_that_verifies_clients_refuses_a_sink_without_a_good_certificate",
    )
    .await
    else {
        return;
    };
    let files = &server.certificates;

    // TLS, but no client certificate.
    let no_certificate = NatsTls::from_files(Some(files.ca.clone()), None, None);
    refused(sink_config(&server, no_certificate)).await;

    // A client certificate from a CA the server does not trust.
    let foreign = Issuer::new("foreign");
    let (cert, key) = foreign.issue(&["relay"], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let foreign_tls = NatsTls::from_files(
        Some(files.ca.clone()),
        Some(write(server.dir.path(), "foreign.crt", &cert)),
        Some(write(server.dir.path(), "foreign.key", &key)),
    );
    refused(sink_config(&server, foreign_tls)).await;

    // A good client certificate, but the server's certificate is checked against another CA.
    let wrong_roots = NatsTls::from_files(
        Some(write(
            server.dir.path(),
            "foreign-ca.crt",
            &foreign.cert_pem,
        )),
        Some(files.client_cert.clone()),
        Some(files.client_key.clone()),
    );
    refused(sink_config(&server, wrong_roots)).await;
}

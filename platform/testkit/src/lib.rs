//! Test support, used only as a dev-dependency: a fresh database per test, cloned from a
//! template migrated once per test run, on the server named by `DATABASE_URL` or else on a
//! private PostgreSQL started from the machine's binaries; and helpers that start a
//! component on port 0.
//!
//! The private server is shared by every test process of a run (cargo test runs one process
//! per test binary, nextest one per test): the first process starts it under a file lock, each
//! process holds a shared lock while it lives, and a small watchdog stops the server a few
//! seconds after the last process has gone.
#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "test support: a fixture that cannot be set up must stop the test loudly"
)]

pub mod contract;
pub mod health;
pub mod query;

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use corebank_db::local::{LocalPostgres, PgBinaries, ServerTuning, free_port};
use corebank_db::migrate::{self, Migration};
use corebank_db::url::url_for;
use corebank_db::{Db, DbSettings};
use corebank_service::internal::assertion::{
    ACTOR_HEADER, ACTOR_SIGNATURE_HEADER, AssertionSigner,
};
use corebank_service::internal::pki::dev::DevCa;
use corebank_service::internal::{InternalClients, Pki, component_names};
use corebank_service::{Component, InternalMode, RunningServer, ServeOptions};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Seconds the shared server stays up with no test process using it.
const SERVER_IDLE_SECONDS: u32 = 8;

/// The server a test run uses: its admin URL (database `postgres`).
#[derive(Debug, Clone)]
struct TestServer {
    admin_config: tokio_postgres::Config,
}

static SERVER: OnceCell<TestServer> = OnceCell::const_new();
/// Held (shared) for the life of the process: tells the watchdog the server is in use.
static USERS_LOCK: OnceLock<File> = OnceLock::new();
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// Turns on test logs once (`RUST_LOG` decides what shows; nothing by default).
fn init_logs() {
    // reqwest is built without a TLS provider of its own: every test process gets ring.
    corebank_service::internal::install_crypto_provider();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "off".to_owned());
    corebank_service::telemetry::init(corebank_service::LogFormat::Text, &filter);
}

async fn server() -> &'static TestServer {
    SERVER
        .get_or_init(|| async {
            init_logs();
            let url = match std::env::var("DATABASE_URL") {
                Ok(url) if !url.trim().is_empty() => url,
                _ => tokio::task::spawn_blocking(start_shared_server)
                    .await
                    .expect("the private PostgreSQL start-up task panicked"),
            };
            let mut admin_config: tokio_postgres::Config = url
                .parse()
                .unwrap_or_else(|error| panic!("DATABASE_URL {url:?} is not a valid URL: {error}"));
            admin_config.dbname("postgres");
            TestServer { admin_config }
        })
        .await
}

fn base_dir() -> PathBuf {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0);
    std::env::temp_dir().join(format!("corebank-testkit-{uid}"))
}

fn open_lock(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()))
}

/// Starts (or joins) the private server shared by this test run; returns its URL.
fn start_shared_server() -> String {
    let base = base_dir();
    std::fs::create_dir_all(&base)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", base.display()));
    // The server user (postgres, when tests run as root) must be able to enter the folder.
    let _ = std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755));

    let users = open_lock(&base.join("users.lock"));
    users
        .lock_shared()
        .expect("cannot take the testkit's users.lock");
    let _ = USERS_LOCK.set(users);

    let server_lock = open_lock(&base.join("server.lock"));
    server_lock
        .lock()
        .expect("cannot take the testkit's server.lock");

    let binaries = PgBinaries::find().unwrap_or_else(|error| panic!("{error}"));
    let server = LocalPostgres::new(binaries, base.join("data"));
    let port_file = base.join("port");
    if let Some(port) = std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        && server.is_running()
    {
        return LocalPostgres::url(port, "postgres");
    }
    if server.data_dir().exists() {
        let _ = std::fs::remove_dir_all(server.data_dir());
    }
    eprintln!(
        "testkit: starting a private PostgreSQL in {} (set DATABASE_URL to use a running server)",
        server.data_dir().display()
    );
    server
        .init(&ServerTuning::for_tests())
        .unwrap_or_else(|error| panic!("{error}"));
    let port = free_port().unwrap_or_else(|error| panic!("{error}"));
    server.start(port).unwrap_or_else(|error| panic!("{error}"));
    std::fs::write(&port_file, port.to_string()).expect("cannot write the testkit's port file");
    spawn_watchdog(&base, &server);
    LocalPostgres::url(port, "postgres")
    // server_lock is released here, when the file is dropped.
}

fn spawn_watchdog(base: &Path, server: &LocalPostgres) {
    let script = base.join("watchdog.sh");
    std::fs::write(&script, include_str!("watchdog.sh"))
        .expect("cannot write the testkit watchdog");
    let stop = server.command("pg_ctl");
    // The outer shell starts the watchdog in the background and exits at once, so the
    // watchdog outlives this process and leaves no zombie behind.
    let mut command = Command::new("sh");
    command.arg("-c").arg("\"$@\" &").arg("watchdog").arg("sh");
    command
        .arg(&script)
        .arg(base)
        .arg(SERVER_IDLE_SECONDS.to_string())
        .arg(stop.get_program());
    command.args(stop.get_args());
    command
        .args([
            "-D",
            &server.data_dir().display().to_string(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let status = command.status().expect("cannot start the testkit watchdog");
    assert!(
        status.success(),
        "the testkit watchdog did not start: {status}"
    );
}

/// The migrations every test database starts with: all of the workspace's.
fn workspace_migrations() -> Vec<Migration> {
    migrate::embedded().unwrap_or_else(|error| panic!("{error}"))
}

fn template_name(migrations: &[Migration]) -> String {
    format!("corebank_tpl_{}", migrate::fingerprint(migrations))
}

async fn admin_client(server: &TestServer) -> tokio_postgres::Client {
    let (client, connection) = server
        .admin_config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the test PostgreSQL: {error}"));
    tokio::spawn(connection);
    client
}

/// The migrated template, built once per run: by whichever process gets there first,
/// under a temporary name, renamed into place when complete.
async fn template(server: &TestServer) -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let migrations = workspace_migrations();
            let name = template_name(&migrations);
            let admin = admin_client(server).await;
            let exists = admin
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .expect("cannot list databases")
                .is_some();
            if exists {
                return name;
            }
            let building = format!("{name}_b{}", uuid::Uuid::new_v4().simple());
            admin
                .batch_execute(&format!("CREATE DATABASE {building}"))
                .await
                .unwrap_or_else(|error| panic!("cannot create {building}: {error}"));
            let db = Db::connect_lazy(&DbSettings::new(url_for(&server.admin_config, &building)))
                .unwrap_or_else(|error| panic!("{error}"));
            migrate::apply(&db, &migrations)
                .await
                .unwrap_or_else(|error| panic!("{error}"));
            db.close();
            drop(db);
            let renamed = admin
                .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .await;
            if renamed.is_err() {
                // Another process finished its template first: use that one.
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .await;
            }
            name
        })
        .await
}

/// A database of its own for one test, dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_config: tokio_postgres::Config,
    db: Db,
}

impl TestDatabase {
    /// A fresh database with every workspace migration applied.
    pub async fn create() -> TestDatabase {
        let server = server().await;
        let template = template(server).await;
        let name = format!("cbtest_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_client(server).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .unwrap_or_else(|error| panic!("cannot create test database {name}: {error}"));
        let url = url_for(&server.admin_config, &name);
        let db =
            Db::connect_lazy(&Self::settings_for(&url)).unwrap_or_else(|error| panic!("{error}"));
        TestDatabase {
            name,
            url,
            admin_config: server.admin_config.clone(),
            db,
        }
    }

    /// The settings tests use: the defaults, with a pool large enough for contention tests.
    pub fn settings_for(url: &str) -> DbSettings {
        let mut settings = DbSettings::new(url);
        settings.pool_size_max = 32;
        settings.application_name = "corebank-test".to_owned();
        settings
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Another pool on this database whose unqualified names resolve to `schema` (a
    /// component's own), as the component's pool in production does.
    pub fn db_for(&self, schema: &str) -> Db {
        Db::connect_lazy(&Self::settings_for(&self.url).with_search_path(schema))
            .unwrap_or_else(|error| panic!("{error}"))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.db.close();
        let name = self.name.clone();
        let admin_config = self.admin_config.clone();
        // Drop runs outside async context; a short-lived runtime on its own thread drops
        // the database (FORCE ends this test's pooled connections).
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok((client, connection)) = admin_config.connect(tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// The internal PKI every test of this process shares: a development CA (made once, in
/// memory) and a certificate for every component name.
pub fn test_pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = DevCa::generate(TRUST_DOMAIN, "test").expect("making the test CA");
        ca.pki(component_names::ALL)
            .expect("issuing the test certificates")
    })
}

/// `message` as a call to `path` (`/package.Service/Method`) on behalf of the operator
/// `actor`, asserted and signed as the component `signer` signs it (the gateway, for a
/// real operator) with its [`test_pki`] certificate.
pub fn on_behalf_of<T>(signer: &str, message: T, path: &str, actor: &str) -> tonic::Request<T> {
    let identity = test_pki()
        .identity(signer)
        .unwrap_or_else(|error| panic!("the test identity of {signer}: {error}"));
    let signature = AssertionSigner::new(&identity)
        .and_then(|assertions| assertions.sign(path, actor))
        .unwrap_or_else(|error| panic!("signing {actor:?} as {signer}: {error}"));
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert(ACTOR_HEADER, actor.parse().expect("the actor as metadata"));
    metadata.insert(
        ACTOR_SIGNATURE_HEADER,
        signature.parse().expect("the signature as metadata"),
    );
    request
}

/// The trust domain of [`test_pki`]'s certificates.
pub const TRUST_DOMAIN: &str = "corebank.internal";

/// How a test calls components as `me`, with [`test_pki`]'s certificates.
pub fn clients(me: &str) -> InternalClients {
    InternalClients::mutual_tls(test_pki().clone(), me)
        .unwrap_or_else(|error| panic!("test clients as {me}: {error}"))
}

/// A component serving on 127.0.0.1 at free ports (public, and internal with mutual TLS
/// from [`test_pki`]), stopped when dropped.
#[derive(Debug)]
pub struct TestApp {
    /// The public listener.
    pub addr: SocketAddr,
    /// The internal listener.
    pub internal_addr: SocketAddr,
    internal_tls: bool,
    shutdown: CancellationToken,
    server: Option<RunningServer>,
}

impl TestApp {
    /// Serves `component` on port 0, its internal listener behind mutual TLS.
    pub async fn spawn(component: Component) -> TestApp {
        TestApp::spawn_with(component, InternalMode::MutualTls(test_pki().clone())).await
    }

    /// Serves `component` on port 0 with its internal listener in `internal` mode.
    pub async fn spawn_with(component: Component, internal: InternalMode) -> TestApp {
        init_logs();
        let shutdown = CancellationToken::new();
        let options = ServeOptions {
            requests_in_flight_max: 1_024,
            shutdown_grace: Duration::from_secs(5),
            metrics_public: false,
            internal,
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let server =
            corebank_service::serve(component, loopback, loopback, options, shutdown.clone())
                .await
                .unwrap_or_else(|error| panic!("{error}"));
        TestApp {
            addr: server
                .public_addr
                .expect("TestApp serves a public listener"),
            internal_addr: server.internal_addr,
            internal_tls: server.internal_tls,
            shutdown,
            server: Some(server),
        }
    }

    /// `http://127.0.0.1:<public port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `https://127.0.0.1:<internal port>` (`http://` in plain-text mode) followed by `path`.
    pub fn internal_url(&self, path: &str) -> String {
        let scheme = if self.internal_tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.internal_addr)
    }

    /// A gRPC channel to this app's internal listener, calling as the component `me` and
    /// expecting the server to be `server` (connects on first use).
    pub fn channel(&self, me: &str, server: &str) -> Channel {
        let clients = if self.internal_tls {
            clients(me)
        } else {
            InternalClients::insecure(me)
        };
        clients
            .endpoint(&self.internal_url(""), server)
            .unwrap_or_else(|error| panic!("{error}"))
            .connect_lazy()
    }

    /// An HTTP client for this app's internal routes, calling as `me`, expecting `server`.
    pub fn http_client(&self, me: &str, server: &str) -> reqwest::Client {
        let clients = if self.internal_tls {
            clients(me)
        } else {
            InternalClients::insecure(me)
        };
        clients
            .http_client(server, Duration::from_secs(30))
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server
                .stopped()
                .await
                .expect("the server failed while stopping");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

//! What the tests that run the real binary share: the internal certificates a `serve`
//! process needs (made once per test process with the development CA), the settings that
//! put its listeners on free ports, the `serve` processes the tests crash and restart, and
//! the deposits requests the crash tests set their accounts up with.
#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "each test binary uses part of this; a fixture that cannot be made stops the test"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use corebank_api::deposits::v1 as dpb;
use uuid::Uuid;

/// A directory laid out as `corebank certs` writes it, with every component's certificate.
pub fn certs_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory for certificates");
        corebank_service::internal::pki::dev::ensure_dir(
            dir.path(),
            "corebank.internal",
            corebank_service::internal::component_names::ALL,
        )
        .expect("making development certificates");
        dir
    })
    .path()
}

/// Points `command` at [`certs_dir`] (a development CA, so with `COREBANK_DEV=true`) and
/// puts both listeners on free ports of 127.0.0.1.
pub fn internal_env(command: &mut Command) -> &mut Command {
    // The tests' own HTTP clients need a TLS provider too (reqwest has none of its own).
    corebank_service::internal::install_crypto_provider();
    command
        .env("COREBANK_TLS_DIR", certs_dir())
        .env("COREBANK_DEV", "true")
        .env("COREBANK_HTTP_ADDR", "127.0.0.1:0")
        .env("COREBANK_INTERNAL_ADDR", "127.0.0.1:0")
}

/// `corebank serve <role>` on the database at `database_url`, set up by [`internal_env`],
/// logging errors only, its output on the test's stderr.
pub fn serve(role: &str, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corebank"));
    internal_env(&mut command)
        .args(["serve", role])
        .env("DATABASE_URL", database_url)
        .env("COREBANK_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// A child process the test starts, kills with SIGKILL and starts again from the same
/// command; killed when dropped.
pub struct Process {
    name: String,
    command: Command,
    child: Option<Child>,
    /// How many times it was started.
    pub starts: usize,
}

impl Process {
    /// `command`, not started yet; `name` says which process failed to start.
    pub fn stopped(name: impl Into<String>, command: Command) -> Process {
        Process {
            name: name.into(),
            command,
            child: None,
            starts: 0,
        }
    }

    /// `command`, started.
    pub fn start(name: impl Into<String>, command: Command) -> Process {
        let mut process = Process::stopped(name, command);
        process.spawn();
        process
    }

    /// Starts the process (again).
    pub fn spawn(&mut self) {
        let child = self
            .command
            .spawn()
            .unwrap_or_else(|e| panic!("{} did not start: {e}", self.name));
        self.child = Some(child);
        self.starts += 1;
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGKILL, then start again.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The running process's id; 0 when it is not running.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free port on 127.0.0.1 (free when asked: the process that binds it comes later).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A request to open an account of `product` for `customer`, under a request id of its own.
pub fn opening(customer: &str, product: &str) -> dpb::OpenAccountRequest {
    dpb::OpenAccountRequest {
        request_id: Uuid::new_v4().to_string(),
        customer_id: customer.to_owned(),
        product_code: product.to_owned(),
        opened_on: String::new(),
    }
}

/// A cash deposit of `amount` euros into `account_id`, under a request id of its own.
pub fn cash_deposit(account_id: &str, amount: &str, description: &str) -> dpb::CashRequest {
    dpb::CashRequest {
        request_id: Uuid::new_v4().to_string(),
        account_id: account_id.to_owned(),
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        description: description.to_owned(),
        channel: String::new(),
    }
}

/// One number, read in a transaction that is retried on a serialization failure (the test
/// server runs every transaction SERIALIZABLE, and this read races the processes' writes).
pub async fn scalar(db: &corebank_db::Db, sql: &str) -> i64 {
    db.run_tx("test_scalar", |tx| {
        Box::pin(async move {
            let count: i64 = tx.query_one(sql, &[]).await?.get(0);
            Ok::<_, corebank_db::TxError<std::convert::Infallible>>(count)
        })
    })
    .await
    .unwrap()
}

/// The real binary with `args`, to run once more is set.
pub fn corebank(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corebank"));
    command.args(args);
    command
}

/// Runs a command of the real binary to its end.
fn finished(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
}

/// Runs a command that must succeed, and answers its standard output (a failure shows its
/// standard error).
pub fn succeeded(command: &mut Command) -> String {
    let output = finished(command);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs a command that must fail, and answers its standard error: what it told the user.
pub fn refused(command: &mut Command) -> String {
    let output = finished(command);
    assert!(
        !output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

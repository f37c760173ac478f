//! The mock legacy core (`corebank serve legacy-core`): a T24-style monolith with its own
//! schema (`legacy_core`) and its own balanced books, speaking OFS over TCP (the codec:
//! `corebank-legacy-ofs`). Its applications, error texts, faults and seed are the contract in
//! `legacy-adapter/README.md` ("The mock core's applications" to "Seed"). The adapter does
//! not depend on this crate; its tests start the core as a dev-dependency.
//!
//! Every request runs in one SERIALIZABLE transaction (retried whole); every write first
//! takes the next number of the core's one journal counter, which serialises writes on
//! purpose and orders everything committed.

mod apps;
mod books;
mod bulk;
mod enquiry;
mod faults;
mod input;
mod loans;
mod migration;
mod seed;
mod server;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use corebank_db::Db;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use faults::{CobWindow, Faults};

/// A connection that sends no complete line for this long is closed, so silent clients
/// cannot hold the core's 512 connection places for ever.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// An answer that cannot be written within this long (the client sends but does not read)
/// closes the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the core runs: from the `COREBANK_LEGACY_*` settings.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The `ADMIN` user's password (`ADMIN.FAULTS`); empty: nobody may sign on as `ADMIN`.
    pub admin_password: String,
    /// The faults the core starts with.
    pub faults: Faults,
    /// A daily close-of-business window.
    pub cob_window: Option<CobWindow>,
    /// Customers to seed when the books are empty (0: none).
    pub seed_customers: u32,
    /// A connection silent this long (no complete line) is closed ([`IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// An answer not written within this long closes its connection ([`WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
}

impl CoreConfig {
    /// From the settings strings; `Err` names the variable and the fix.
    pub fn from_settings(settings: &corebank_service::Settings) -> Result<CoreConfig, String> {
        let faults = Faults::parse(&settings.legacy_faults).map_err(|problem| {
            format!(
                "COREBANK_LEGACY_FAULTS: {problem}; write e.g. \
                 latency_ms=5-50,error_rate=0.01,timeout_rate=0,timeout_ms=30000,\
                 drop_after_commit_rate=0.3, or leave it empty for none"
            )
        })?;
        let window = settings.legacy_cob_window.trim();
        let cob_window = if window.is_empty() {
            None
        } else {
            Some(CobWindow::parse(window).map_err(|problem| {
                format!(
                    "COREBANK_LEGACY_COB_WINDOW: {problem}; write e.g. 23:30-00:15, or leave \
                     it empty for none"
                )
            })?)
        };
        if settings.legacy_seed_customers > seed::SEED_CUSTOMERS_MAX {
            return Err(format!(
                "COREBANK_LEGACY_SEED_CUSTOMERS: at most {}",
                seed::SEED_CUSTOMERS_MAX
            ));
        }
        Ok(CoreConfig {
            admin_password: settings.legacy_admin_password.clone(),
            faults,
            cob_window,
            seed_customers: settings.legacy_seed_customers,
            idle_timeout: IDLE_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
        })
    }
}

corebank_kernel::stable_codes! {
    /// Why the core could not start.
    #[derive(Debug, thiserror::Error)]
    pub enum CoreError {
        #[error("the legacy core's books could not be set up: {message}")]
        Setup { message: String } => "legacy_core_setup_failed",
        #[error("the legacy core's seed failed: {message}")]
        Seed { message: String } => "legacy_core_seed_failed",
    }

    /// The stable code.
    pub fn code(&self) -> &'static str;
}

/// Runs the seed if asked and the books are empty, then serves OFS on `listener` until
/// `shutdown`. `db`'s search_path is `legacy_core`. Returns once listening; the JoinHandle
/// ends after shutdown (when the open connections have ended).
pub async fn start(
    db: Db,
    listener: TcpListener,
    config: CoreConfig,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, CoreError> {
    books::ensure_internal_accounts(&db, server::business_date())
        .await
        .map_err(|message| CoreError::Setup { message })?;
    let core = Arc::new(server::Core::new(
        db,
        faults::FaultState::new(config.faults, config.cob_window),
        &config.admin_password,
    ));
    seed::seed_if_empty(&core, config.seed_customers)
        .await
        .map_err(|message| CoreError::Seed { message })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, "legacy core listening (OFS over TCP)");
    }
    let limits = server::Limits {
        idle_timeout: config.idle_timeout,
        write_timeout: config.write_timeout,
    };
    Ok(tokio::spawn(server::serve(
        listener, core, limits, shutdown,
    )))
}

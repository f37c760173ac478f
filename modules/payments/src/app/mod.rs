//! The payments use cases. Money moves through the deposits module's gRPC contract (holds,
//! captures, transfers, credits from clearing), never through another schema; messages to
//! and from the clearing rail are ISO 20022 over HTTP, signed both ways (`rail_signature`).

pub mod cancel;
pub mod inbound;
pub mod messages;
pub mod outbound;
pub mod rail;
pub mod review;
pub mod sanctions;

use std::sync::Arc;
use std::time::Duration;

use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_db::{Db, TxError};
use corebank_saga::{Executor, ExecutorConfig, Registry, Watchers};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::domain::error::PaymentsError;
pub use crate::domain::payment::PaymentRecord;
use crate::domain::screening::ScreeningRules;
use crate::rail_signature::RailKeys;

/// How long one call to the rail may take: what the caller gives
/// `InternalClients::http_client(component_names::RAIL, …)` for [`PaymentsConfig::rail_http`].
pub const RAIL_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the saga status gauge is counted.
const SAGA_GAUGE_INTERVAL: Duration = Duration::from_secs(15);

/// How the payments module is set up.
#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    /// Where the clearing rail (or its simulator) takes pacs.008, e.g.
    /// `https://127.0.0.1:8082/rail-sim/v1`.
    pub rail_url: String,
    /// The keys shared with the rail (`COREBANK_RAIL_KEYS`): the first signs what the bank
    /// sends, every one verifies what the rail delivers.
    pub rail_keys: RailKeys,
    /// How the bank reaches the rail: mutual TLS as `payments`, answered only by the rail's
    /// certificate (`InternalClients::http_client(component_names::RAIL, RAIL_CALL_TIMEOUT)`).
    pub rail_http: reqwest::Client,
    pub screening: ScreeningRules,
    /// The sanctions lists names are screened against (empty in development).
    pub sanctions: Arc<sanctions::SanctionsList>,
    /// How long to wait for a pacs.002 before asking the rail.
    pub status_wait: Duration,
    /// This bank's BIC, as debtor agent.
    pub bank_bic: String,
    pub executor: ExecutorConfig,
}

impl PaymentsConfig {
    /// The rail at `rail_url`, reached with `rail_http` and `rail_keys`; the rest as in
    /// development (screening defaults, a 5 s status wait, the bank's BIC `CBNKXXAAXXX`).
    /// There is no `Default`: no key and no client is safe to assume.
    pub fn new(
        rail_url: impl Into<String>,
        rail_keys: RailKeys,
        rail_http: reqwest::Client,
    ) -> PaymentsConfig {
        PaymentsConfig {
            rail_url: rail_url.into(),
            rail_keys,
            rail_http,
            screening: ScreeningRules::default(),
            sanctions: Arc::new(sanctions::SanctionsList::default()),
            status_wait: Duration::from_secs(5),
            bank_bic: "CBNKXXAAXXX".to_owned(),
            executor: ExecutorConfig::new(),
        }
    }
}

/// What the module's operations and its saga's steps work with.
#[derive(Debug)]
pub struct Parts {
    pub(crate) db: Db,
    pub(crate) deposits: DepositsClient<Channel>,
    pub(crate) config: Arc<PaymentsConfig>,
}

/// The payments module.
#[derive(Clone)]
pub struct Payments {
    parts: Arc<Parts>,
    pub(crate) executor: Executor,
}

impl std::ops::Deref for Payments {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments").finish_non_exhaustive()
    }
}

pub(crate) fn tx_error(error: TxError<PaymentsError>) -> PaymentsError {
    match error {
        TxError::Abort(error) => error,
        TxError::Db(error) => error.into(),
    }
}

pub(crate) fn parse_id(field: &str, id: &str) -> Result<Uuid, PaymentsError> {
    // The kernel's rule, as the legacy adapter applies it: a random (version 4) UUID.
    corebank_kernel::id::parse_v4("id", id)
        .map_err(|e| PaymentsError::invalid(field, e.to_string()))
}

/// A deposits refusal or failure as a payments error.
pub(crate) fn from_deposits(status: &tonic::Status) -> PaymentsError {
    let code = corebank_service::contract::error_code(status);
    match (code.as_str(), status.code()) {
        (_, tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) | ("unavailable", _) => {
            PaymentsError::Unavailable {
                message: format!("deposits: {}", status.message()),
            }
        }
        ("", _) | ("internal", _) => PaymentsError::Internal {
            message: format!(
                "deposits answered {:?}: {}",
                status.code(),
                status.message()
            ),
        },
        _ => PaymentsError::Deposits {
            code,
            message: status.message().to_owned(),
        },
    }
}

/// An id derived from a purpose and a key: the same inputs give the same UUIDv4-shaped id.
pub(crate) fn derived_id(purpose: &str, key: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("corebank.payments.{purpose}:{key}").as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The result of an internal transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct InternalTransfer {
    pub request_id: String,
    pub entry_id: String,
    pub amount: String,
    pub currency: String,
    pub from_posted_after: String,
    pub replayed: bool,
}

impl Payments {
    /// The module with its saga executor (not yet running: see [`Payments::spawn`]).
    pub fn new(
        db: Db,
        deposits: DepositsClient<Channel>,
        config: PaymentsConfig,
        options: outbound::SagaOptions,
    ) -> Result<Payments, PaymentsError> {
        rail::endpoint(&config.rail_url, "")?;
        let parts = Arc::new(Parts {
            db: db.clone(),
            deposits,
            config: Arc::new(config),
        });
        let mut registry = Registry::new();
        for definition in outbound::definitions(Arc::clone(&parts), &options) {
            registry.register(definition)?;
        }
        let executor = Executor::with_watchers(
            db,
            Arc::new(registry),
            parts.config.executor.clone(),
            Watchers::new(),
        );
        Ok(Payments { parts, executor })
    }

    /// Runs the saga executor, and the purge of old rail deliveries, until `shutdown`.
    pub fn spawn(&self, shutdown: tokio_util::sync::CancellationToken) {
        self.executor.spawn(shutdown.clone());
        // The payments saga's statuses, for the runbook's "paused above 0" alert.
        corebank_saga::gauges::spawn_status_gauges(
            self.db.clone(),
            SAGA_GAUGE_INTERVAL,
            shutdown.clone(),
        );
        tokio::spawn(rail::purge_deliveries_until(self.clone(), shutdown));
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// One ledger entry between two deposit accounts, within the source product's limits
    /// (the deposits module keeps them, atomically); idempotent by request id.
    pub async fn internal_transfer(
        &self,
        request_id: &str,
        from: &str,
        to: &str,
        amount: &str,
        currency: &str,
        description: &str,
    ) -> Result<InternalTransfer, PaymentsError> {
        parse_id("request_id", request_id)?;
        let result = self
            .deposits
            .clone()
            .transfer(dpb::TransferRequest {
                request_id: request_id.to_owned(),
                from_account_id: from.to_owned(),
                to_account_id: to.to_owned(),
                amount: amount.to_owned(),
                currency: currency.to_owned(),
                description: description.to_owned(),
            })
            .await
            .map_err(|s| from_deposits(&s))?
            .into_inner();
        metrics::counter!("corebank_payments_internal_transfers_total").increment(1);
        Ok(InternalTransfer {
            request_id: result.request_id,
            entry_id: result.entry_id,
            amount: result.amount,
            currency: result.currency,
            from_posted_after: result.balances_after.map(|b| b.posted).unwrap_or_default(),
            replayed: result.replayed,
        })
    }
}

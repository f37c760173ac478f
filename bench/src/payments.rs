//! `corebank bench payments`: internal transfers through the payments gRPC API (payments →
//! deposits → ledger, each over gRPC as in production, on one server), against pgbench's
//! TPC-B on the same PostgreSQL in the same run.

use std::sync::Arc;

use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::payments::v1 as pb;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_service::Settings;
use corebank_service::internal::component_names;
use serde_json::json;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::harness::load::Client;
use crate::harness::servers::{Servers, channel_for};
use crate::harness::{Measure, Run, RunOptions, Suite, grpc_outcome, small_amount, two_accounts};

/// Options of `corebank bench payments`.
#[derive(Debug, Clone, clap::Args)]
pub struct PaymentsBenchOptions {
    /// Seconds the measured phase runs (and pgbench's, and the open loop's).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Concurrent clients, each sending one internal transfer per request.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Deposit accounts the transfers spread over.
    #[arg(long, default_value_t = 1_000)]
    pub accounts: usize,
    #[command(flatten)]
    pub run: RunOptions,
}

/// The product the benchmark's accounts belong to.
const PRODUCT_CODE: &str = "bench-current";
/// What each account is funded with: far more than the phase can move out of it.
const FUNDING_AMOUNT: &str = "1000000.00";

impl Measure for PaymentsBenchOptions {
    fn suite(&self) -> anyhow::Result<Suite<'_>> {
        Suite::new(
            "payments",
            "transfers",
            self.clients,
            self.seconds,
            self.accounts,
            &self.run,
        )
    }

    async fn measure(&self, settings: &Settings, mut run: Run<'_>) -> anyhow::Result<()> {
        let mut servers = Servers::new(settings)?;
        let modern_url = servers.modern_side(settings, run.url()).await?;
        // The benchmark's clients stand in for the gateway, which calls payments, and opens and
        // funds accounts in deposits (one process serves both: a connection made to its payments
        // certificate carries both).
        let channels = servers
            .channels(
                component_names::GATEWAY,
                &modern_url,
                component_names::PAYMENTS,
            )
            .await?;

        println!(
            "payments: opening and funding {} deposit accounts",
            self.accounts
        );
        servers
            .create_product(&modern_url, PRODUCT_CODE, "Benchmark current account")
            .await?;
        let deposits = DepositsClient::new(channel_for(&channels, 0)?);
        let accounts = Arc::new(open_accounts(&deposits, self.accounts).await?);
        run.both("internal_transfer", "one transfer per request", |index| {
            Ok(InternalTransfers {
                client: PaymentsClient::new(channel_for(&channels, index)?),
                accounts: Arc::clone(&accounts),
                rng: fastrand::Rng::with_seed(u64::try_from(index).unwrap_or(0) + 3),
            })
        })
        .await?;
        servers.stop().await?;

        run.finish("", json!({ "accounts": self.accounts }))
    }
}

/// A payments client sending one internal transfer between two random accounts per request.
struct InternalTransfers {
    client: PaymentsClient<Channel>,
    accounts: Arc<Vec<String>>,
    rng: fastrand::Rng,
}

impl Client for InternalTransfers {
    async fn send(&mut self) -> Result<(), String> {
        let (from, to) = two_accounts(&mut self.rng, &self.accounts);
        let amount = small_amount(&mut self.rng);
        grpc_outcome(
            self.client
                .internal_transfer(internal_transfer(from, to, amount))
                .await,
        )
    }
}

/// An internal transfer of `amount` euros from `from` to `to`, under a request id of its own.
pub(crate) fn internal_transfer(
    from: &str,
    to: &str,
    amount: String,
) -> pb::InternalTransferRequest {
    pb::InternalTransferRequest {
        request_id: Uuid::new_v4().to_string(),
        from_account_id: from.to_owned(),
        to_account_id: to.to_owned(),
        amount,
        currency: "EUR".to_owned(),
        description: String::new(),
    }
}

/// Opens `count` deposit accounts and funds each with a deposit: their ids.
async fn open_accounts(
    deposits: &DepositsClient<Channel>,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    crate::harness::set_up_each(count, |index| {
        let mut deposits = deposits.clone();
        async move {
            let account = deposits
                .open_account(dpb::OpenAccountRequest {
                    request_id: Uuid::new_v4().to_string(),
                    customer_id: format!("bench-{index}"),
                    product_code: PRODUCT_CODE.to_owned(),
                    opened_on: String::new(),
                })
                .await?
                .into_inner();
            deposits
                .deposit(dpb::CashRequest {
                    request_id: Uuid::new_v4().to_string(),
                    account_id: account.id.clone(),
                    amount: FUNDING_AMOUNT.to_owned(),
                    currency: "EUR".to_owned(),
                    description: String::new(),
                    channel: String::new(),
                })
                .await?;
            Ok(account.id)
        }
    })
    .await
}

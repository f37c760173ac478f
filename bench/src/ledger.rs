//! `corebank bench ledger`: two-leg transfers over gRPC on the ledger alone, among many
//! accounts (`uniform`) and into one account (`hot_account`), against pgbench's TPC-B on the
//! same PostgreSQL in the same run.

use std::sync::Arc;

use anyhow::bail;
use corebank_api::ledger::v1 as pb;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_kernel::{AccountId, JournalEntryId};
use corebank_service::Settings;
use corebank_service::internal::component_names;
use serde_json::json;
use tonic::transport::Channel;

use crate::harness::load::Client;
use crate::harness::servers::{Servers, channel_for};
use crate::harness::{Measure, Run, RunOptions, Suite, grpc_outcome, small_amount, two_accounts};

/// Options of `corebank bench ledger`.
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerBenchOptions {
    /// Seconds each measured phase runs (pgbench, uniform, hot account, and each open loop).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Concurrent ledger clients, each sending one transfer per request.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Customer accounts the uniform phase spreads transfers over.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: usize,
    #[command(flatten)]
    pub run: RunOptions,
}

/// Accounts opened and funded per request during set-up.
const SETUP_BATCH: usize = 1_000;

impl Measure for LedgerBenchOptions {
    fn suite(&self) -> anyhow::Result<Suite<'_>> {
        Suite::new(
            "ledger",
            "transfers",
            self.clients,
            self.seconds,
            self.accounts,
            &self.run,
        )
    }

    async fn measure(&self, settings: &Settings, mut run: Run<'_>) -> anyhow::Result<()> {
        let mut servers = Servers::new(settings)?;
        let ledger = corebank_components::ledger(settings, run.url(), servers.shutdown.clone())?;
        let ledger_url = servers.serve(ledger).await?.internal_url();
        // The benchmark's clients stand in for deposits, which posts to the ledger.
        let channels = servers
            .channels(
                component_names::DEPOSITS,
                &ledger_url,
                component_names::LEDGER,
            )
            .await?;
        let first = channel_for(&channels, 0)?;

        println!("ledger: opening and funding {} accounts", self.accounts);
        let (customers, hot) = set_up(&first, self.accounts).await?;
        let customers = Arc::new(customers);
        let what = "one transfer per request";
        for (name, hot) in [("uniform", None), ("hot_account", Some(hot.clone()))] {
            let make = |index: usize| {
                Ok(Transfers {
                    client: LedgerClient::new(channel_for(&channels, index)?),
                    customers: Arc::clone(&customers),
                    hot: hot.clone(),
                    rng: fastrand::Rng::with_seed(u64::try_from(index).unwrap_or(0) + 1),
                })
            };
            let before = batch_totals();
            run.closed_loop(name, what, make).await?;
            say_batches(name, before);
            let before = batch_totals();
            let open_loop = run.open_loop(name, what, name, make).await?;
            say_batches(&open_loop.name, before);
        }

        let trial = LedgerClient::new(first)
            .get_trial_balance(pb::GetTrialBalanceRequest::default())
            .await?
            .into_inner();
        let balanced = trial.difference_by_currency.values().all(|d| d == "0");
        servers.stop().await?;

        run.finish(
            &format!("; books balanced after the run: {balanced}"),
            json!({ "accounts": self.accounts, "books_balanced": balanced }),
        )?;
        anyhow::ensure!(
            balanced,
            "the trial balance did not sum to zero after the run"
        );
        Ok(())
    }
}

/// A ledger client posting one transfer per request: between two random customers, or from
/// a random customer to the hot account.
struct Transfers {
    client: LedgerClient<Channel>,
    customers: Arc<Vec<String>>,
    hot: Option<String>,
    rng: fastrand::Rng,
}

impl Client for Transfers {
    async fn send(&mut self) -> Result<(), String> {
        let (debit, credit) = match &self.hot {
            Some(hot) => (
                &self.customers[self.rng.usize(..self.customers.len())][..],
                &hot[..],
            ),
            None => two_accounts(&mut self.rng, &self.customers),
        };
        let amount = small_amount(&mut self.rng);
        grpc_outcome(
            self.client
                .create_transfer(transfer(debit, credit, amount))
                .await,
        )
    }
}

/// (batches, entries in them, seconds spent) so far, from the ledger's own metrics.
fn batch_totals() -> (f64, f64, f64) {
    let rendered = corebank_service::metrics::handle().render();
    let value = |name: &str| {
        rendered
            .lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("corebank_ledger_batch_size_count"),
        value("corebank_ledger_batch_size_sum"),
        value("corebank_ledger_batch_duration_seconds_sum"),
    )
}

/// How the ledger batched the transfers of the phase that started at `before`.
fn say_batches(name: &str, before: (f64, f64, f64)) {
    let after = batch_totals();
    let batches = after.0 - before.0;
    if batches > 0.0 {
        println!(
            "ledger: {name}: {batches:.0} batches, {:.1} entries and {:.2} ms each on average",
            (after.1 - before.1) / batches,
            (after.2 - before.2) * 1_000.0 / batches
        );
    }
}

fn account_request(
    code: String,
    account_type: pb::AccountType,
    limit: pb::LimitKind,
    shards: u32,
) -> pb::CreateAccountRequest {
    pb::CreateAccountRequest {
        id: AccountId::generate().to_string(),
        name: code.clone(),
        code,
        currency: "EUR".to_owned(),
        r#type: account_type.into(),
        limit: Some(pb::BalanceLimit {
            kind: limit.into(),
            limit_amount: String::new(),
        }),
        balance_shards: shards,
        ..Default::default()
    }
}

fn transfer(debit: &str, credit: &str, amount: String) -> pb::CreateTransferRequest {
    pb::CreateTransferRequest {
        id: JournalEntryId::generate().to_string(),
        debit_account_id: debit.to_owned(),
        credit_account_id: credit.to_owned(),
        amount,
        currency: "EUR".to_owned(),
        ..Default::default()
    }
}

/// Opens the customers, the bank's cash and the hot income account, and funds every customer
/// from the cash: the customers and the hot account.
async fn set_up(channel: &Channel, count: usize) -> anyhow::Result<(Vec<String>, String)> {
    let mut client = LedgerClient::new(channel.clone());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut requests = vec![
        account_request(
            format!("cash-{run}"),
            pb::AccountType::Asset,
            pb::LimitKind::None,
            1,
        ),
        account_request(
            format!("fees-{run}"),
            pb::AccountType::Income,
            pb::LimitKind::None,
            16,
        ),
    ];
    requests.extend((0..count).map(|i| {
        account_request(
            format!("customer-{run}-{i}"),
            pb::AccountType::Liability,
            pb::LimitKind::DebitsMustNotExceedCredits,
            1,
        )
    }));
    let mut ids = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(SETUP_BATCH) {
        let response = client
            .create_accounts(pb::CreateAccountsRequest {
                accounts: chunk.to_vec(),
            })
            .await?
            .into_inner();
        for result in response.results {
            match result.outcome {
                Some(pb::account_result::Outcome::Account(account)) => ids.push(account.id),
                other => bail!("opening an account failed: {other:?}"),
            }
        }
    }
    let [cash, hot, customers @ ..] = ids.as_slice() else {
        bail!("the ledger opened fewer accounts than asked");
    };
    for chunk in customers.chunks(SETUP_BATCH) {
        let transfers = chunk
            .iter()
            .map(|customer| transfer(cash, customer, "1000000.00".to_owned()))
            .collect();
        let response = client
            .create_transfers(pb::CreateTransfersRequest { transfers })
            .await?
            .into_inner();
        if let Some(failed) = response
            .results
            .iter()
            .find(|r| !matches!(r.outcome, Some(pb::entry_result::Outcome::Entry(_))))
        {
            bail!("funding failed: {failed:?}");
        }
    }
    Ok((customers.to_vec(), hot.clone()))
}

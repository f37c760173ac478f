//! Export for migration: every account of a product with its balance, open holds and
//! statement, all read as of one journal number of the core's books (`ACCT.EXPORT` and
//! `STMT.ENT.BOOK` with `UP.TO.JOURNAL`), so the export is one consistent state even while
//! the core keeps posting.

use std::pin::Pin;
use std::sync::Arc;

use corebank_api::legacy::v1 as pb;
use corebank_api::legacy::v1::legacy_export_server::{LegacyExport, LegacyExportServer};
use futures_util::Stream;
use rust_decimal::Decimal;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::deposits::statement_lines;
use super::error::AdapterError;
use super::money;
use super::{
    Adapter, Result, account_uuid, amount_text, canonical_amount, column, derived_uuid, iso_date,
    sub_values,
};

/// Accounts per `ACCT.EXPORT` page and lines per statement page.
const ACCOUNTS_PER_PAGE: u32 = 20;
const LINES_PER_PAGE: u32 = 200;

impl Adapter {
    /// Streams the export of `product_code` into `out` until done or the receiver is gone.
    pub async fn export(
        &self,
        product_code: &str,
        out: &mpsc::Sender<std::result::Result<pb::ExportedAccount, Status>>,
    ) -> Result<u64> {
        if product_code.trim().is_empty() {
            return Err(AdapterError::invalid("product_code is required"));
        }
        let mut journal = String::new();
        let mut as_of_date = String::new();
        let mut after = String::new();
        let mut sequence = 0_u64;
        loop {
            let page = self
                .legacy
                .enquiry(
                    "ACCT.EXPORT",
                    vec![
                        ("PRODUCT.CODE", product_code.to_owned()),
                        ("AFTER", after.clone()),
                        ("LIMIT", ACCOUNTS_PER_PAGE.to_string()),
                        ("JOURNAL", journal.clone()),
                        ("AS.OF.DATE", as_of_date.clone()),
                    ],
                )
                .await?;
            if journal.is_empty() {
                journal = page.field("JOURNAL").unwrap_or_default().to_owned();
                as_of_date = page.field("AS.OF.DATE").unwrap_or_default().to_owned();
                tracing::info!(product = product_code, %journal, "legacy export started");
            }
            let journal_number: u64 = journal.parse().map_err(|_| {
                AdapterError::internal(format!("ACCT.EXPORT answered journal {journal:?}"))
            })?;
            let accounts = column(&page, "ACCOUNT");
            // The page's accounts are read together (their statements and registrations
            // are calls of their own), then sent in order.
            let reads = accounts
                .iter()
                .enumerate()
                .filter(|(_, account_no)| !account_no.is_empty())
                .map(|(i, account_no)| {
                    self.exported(&page, i, account_no, product_code, &journal, &as_of_date)
                });
            for mut account in futures_util::future::try_join_all(reads).await? {
                sequence += 1;
                account.journal = journal_number;
                account.sequence = sequence;
                if out.send(Ok(account)).await.is_err() {
                    tracing::info!(
                        product = product_code,
                        sequence,
                        "legacy export abandoned by its reader"
                    );
                    return Ok(sequence);
                }
                if sequence.is_multiple_of(100) {
                    tracing::info!(
                        product = product_code,
                        accounts = sequence,
                        "legacy export progress"
                    );
                }
            }
            if page.field("MORE") != Some("Y") {
                break;
            }
            match accounts.last() {
                Some(last) if !last.is_empty() => after.clone_from(last),
                _ => {
                    // Never end an export early on a page the core could not fill.
                    return Err(AdapterError::internal(format!(
                        "ACCT.EXPORT of {product_code} answered MORE=Y with no account after \
                         {after:?}; the export is incomplete"
                    )));
                }
            }
        }
        tracing::info!(product = product_code, accounts = sequence, %journal, "legacy export done");
        Ok(sequence)
    }

    /// The account at `i` of an `ACCT.EXPORT` page, with its locks, its statement and its
    /// canonical ids (its `journal` and `sequence` are the caller's to set).
    async fn exported(
        &self,
        page: &corebank_legacy_ofs::Response,
        i: usize,
        account_no: &str,
        product_code: &str,
        journal: &str,
        as_of_date: &str,
    ) -> Result<pb::ExportedAccount> {
        let at = |name: &str| column(page, name).get(i).cloned().unwrap_or_default();
        let position =
            u16::try_from(i + 1).map_err(|_| AdapterError::internal("export page too long"))?;
        let mut locks: Vec<(String, String, String)> = {
            let ids = sub_values(page, "LOCK.ID", position);
            let amounts = sub_values(page, "LOCK.AMOUNT", position);
            let days = sub_values(page, "LOCK.TO.DATE", position);
            let value = |values: &[String], s: usize| values.get(s).cloned().unwrap_or_default();
            ids.iter()
                .enumerate()
                .filter(|(_, id)| !id.is_empty())
                .map(|(s, id)| (id.clone(), value(&amounts, s), value(&days, s)))
                .collect()
        };
        if at("LOCKS.MORE") == "Y" {
            self.more_locks(account_no, journal, as_of_date, &mut locks)
                .await?;
        }
        let mut holds = Vec::with_capacity(locks.len());
        let mut held = Decimal::ZERO;
        for (lock, amount, to_date) in &locks {
            let amount = canonical_amount(amount)?;
            held += amount;
            holds.push(pb::ExportedHold {
                hold_id: derived_uuid("hold", lock).to_string(),
                legacy_id: lock.clone(),
                amount: money(amount),
                to_date: iso_date(to_date)?,
            });
        }
        let statement = self.statement_as_of(account_no, journal).await?;
        let customer_no = at("CUSTOMER");
        let customer_id = self.customer_id_of(&customer_no).await?;
        let row = self.adopt(account_no, &customer_id).await?;
        Ok(pb::ExportedAccount {
            account_id: account_uuid(account_no).to_string(),
            legacy_account_number: account_no.to_owned(),
            customer_id: row.customer_id,
            legacy_customer_number: customer_no,
            product_code: product_code.to_owned(),
            currency: at("CURRENCY"),
            opened_on: iso_date(&at("OPENING.DATE"))?,
            closed_on: iso_date(&at("CLOSURE.DATE"))?,
            posted: amount_text(&at("WORKING.BALANCE"))?,
            held: money(held),
            holds,
            statement,
            journal: 0,
            sequence: 0,
        })
    }

    /// The rest of an account's locks (after the last in `locks`) through `ACCT.LOCKS`.
    async fn more_locks(
        &self,
        account_no: &str,
        journal: &str,
        as_of_date: &str,
        locks: &mut Vec<(String, String, String)>,
    ) -> Result<()> {
        loop {
            let after = locks
                .last()
                .map(|(id, _, _)| id.clone())
                .unwrap_or_default();
            let page = self
                .legacy
                .enquiry(
                    "ACCT.LOCKS",
                    vec![
                        ("ACCOUNT", account_no.to_owned()),
                        ("JOURNAL", journal.to_owned()),
                        ("AS.OF.DATE", as_of_date.to_owned()),
                        ("AFTER", after),
                        ("LIMIT", "200".to_owned()),
                    ],
                )
                .await?;
            let ids = column(&page, "LOCK.ID");
            let amounts = column(&page, "LOCK.AMOUNT");
            let days = column(&page, "LOCK.TO.DATE");
            let before = locks.len();
            for (i, id) in ids.iter().enumerate() {
                if !id.is_empty() {
                    let at = |values: &[String]| values.get(i).cloned().unwrap_or_default();
                    locks.push((id.clone(), at(&amounts), at(&days)));
                }
            }
            if page.field("MORE") != Some("Y") {
                return Ok(());
            }
            if locks.len() == before {
                return Err(AdapterError::internal(format!(
                    "ACCT.LOCKS of {account_no} answered MORE=Y with no lock"
                )));
            }
        }
    }

    async fn statement_as_of(
        &self,
        account_no: &str,
        journal: &str,
    ) -> Result<Vec<pb::ExportedLine>> {
        let mut lines = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .legacy
                .enquiry(
                    "STMT.ENT.BOOK",
                    vec![
                        ("ACCOUNT", account_no.to_owned()),
                        ("AFTER", after.clone()),
                        ("LIMIT", LINES_PER_PAGE.to_string()),
                        ("UP.TO.JOURNAL", journal.to_owned()),
                    ],
                )
                .await?;
            let entries = statement_lines(&page)?;
            let last = entries.last().map(|(id, _)| id.clone());
            for (id, line) in entries {
                lines.push(pb::ExportedLine {
                    legacy_entry_id: id,
                    reference: line.entry_id,
                    booking_date: line.recorded_at.get(..10).unwrap_or_default().to_owned(),
                    value_date: line.value_date,
                    direction: line.direction,
                    amount: line.amount,
                    description: line.description,
                    running_balance: line.running_balance,
                });
            }
            match (page.field("MORE"), last) {
                (Some("Y"), Some(last)) => after = last,
                _ => return Ok(lines),
            }
        }
    }
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct ExportService {
    adapter: Arc<Adapter>,
}

impl ExportService {
    pub fn new(adapter: Arc<Adapter>) -> ExportService {
        ExportService { adapter }
    }

    pub fn into_server(self) -> LegacyExportServer<ExportService> {
        LegacyExportServer::new(self)
    }
}

type AccountStream =
    Pin<Box<dyn Stream<Item = std::result::Result<pb::ExportedAccount, Status>> + Send>>;

#[tonic::async_trait]
impl LegacyExport for ExportService {
    type ExportAccountsStream = AccountStream;

    async fn export_accounts(
        &self,
        r: Request<pb::ExportAccountsRequest>,
    ) -> std::result::Result<Response<Self::ExportAccountsStream>, Status> {
        let product_code = r.into_inner().product_code;
        if product_code.trim().is_empty() {
            return Err(AdapterError::invalid("product_code is required").status());
        }
        let (sender, receiver) = mpsc::channel(16);
        let adapter = Arc::clone(&self.adapter);
        tokio::spawn(async move {
            if let Err(error) = adapter.export(&product_code, &sender).await {
                let _ = sender.send(Err(error.status())).await;
            }
        });
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

//! `corebank.deposits.v1.Deposits` served from the legacy core.

mod holds;
mod movements;

pub(super) use movements::{Posting, TransferAsk};

use chrono::{Duration as Days, Utc};
use corebank_api::deposits::v1 as pb;
use corebank_api::deposits::v1::deposits_server::{Deposits, DepositsServer};
use prost::Message as _;
use rust_decimal::Decimal;
use uuid::Uuid;

use corebank_legacy_ofs::Function;
use corebank_legacy_ofs::formats;

use super::adapter_service;
use super::error::AdapterError;
use super::legacy::{Probe, request};
use super::store::{AccountRow, HoldRow, ProductRow};
use super::{
    Adapter, CASH_CATEGORY, CLEARING_CATEGORY, INTER_CORE_CATEGORY, Kept, Result, account_uuid,
    alt_account_id, amount_text, check_currency, column, derived_uuid, field, fingerprint, ft_id,
    internal_account, iso_date, legacy_amount, legacy_date_of, lock_id, mnemonic, now_text,
    parse_amount, parse_uuid,
};
use super::{
    check_text, fingerprint_amount, money, optional_money, optional_rate, parse_request_id,
};

const DAY_COUNTS: [&str; 4] = ["act_365_fixed", "act_360", "act_act_isda", "thirty_360"];
const FREQUENCIES: [&str; 3] = ["monthly", "quarterly", "annually"];

fn validate_product(r: &pb::CreateProductRequest) -> Result<(Option<Decimal>, Option<Decimal>)> {
    if r.code.trim().is_empty() || r.code.len() > 64 {
        return Err(AdapterError::invalid("code must have 1 to 64 characters"));
    }
    if r.kind != "current" && r.kind != "savings" {
        return Err(AdapterError::invalid(format!(
            "kind {:?} is not current or savings",
            r.kind
        )));
    }
    check_currency(&r.currency)?;
    if !super::CURRENCIES.contains(&r.currency.as_str()) {
        return Err(AdapterError::invalid(format!(
            "the legacy core keeps only {} accounts",
            super::CURRENCIES.join(", ")
        )));
    }
    if !DAY_COUNTS.contains(&r.day_count.as_str()) {
        return Err(AdapterError::invalid(format!(
            "day_count {:?} is not one of {}",
            r.day_count,
            DAY_COUNTS.join(", ")
        )));
    }
    if !FREQUENCIES.contains(&r.posting_frequency.as_str()) {
        return Err(AdapterError::invalid(format!(
            "posting_frequency {:?} is not one of {}",
            r.posting_frequency,
            FREQUENCIES.join(", ")
        )));
    }
    // Amounts as money in the product's currency, rates as plain decimals (as the module).
    for tier in &r.rate_tiers {
        optional_rate(&tier.from_balance, "rate_tiers.from_balance")?;
        optional_rate(&tier.annual_rate, "rate_tiers.annual_rate")?;
    }
    optional_money(&r.minimum_balance, &r.currency, "minimum_balance")?;
    optional_money(&r.overdraft_limit, &r.currency, "overdraft_limit")?;
    optional_rate(&r.overdraft_rate, "overdraft_rate")?;
    Ok((
        optional_money(&r.per_transfer_limit, &r.currency, "per_transfer_limit")?,
        optional_money(&r.daily_transfer_limit, &r.currency, "daily_transfer_limit")?,
    ))
}

impl Adapter {
    pub async fn create_product(&self, r: pb::CreateProductRequest) -> Result<pb::Product> {
        let (per_transfer, daily) = validate_product(&r)?;
        let created_at = now_text();
        let make = |version: i64| pb::Product {
            code: r.code.clone(),
            version,
            name: r.name.clone(),
            kind: r.kind.clone(),
            currency: r.currency.clone(),
            rate_tiers: r.rate_tiers.clone(),
            day_count: r.day_count.clone(),
            posting_frequency: r.posting_frequency.clone(),
            minimum_balance: r.minimum_balance.clone(),
            overdraft_limit: r.overdraft_limit.clone(),
            overdraft_rate: r.overdraft_rate.clone(),
            dormancy_days: r.dormancy_days,
            per_transfer_limit: r.per_transfer_limit.clone(),
            daily_transfer_limit: r.daily_transfer_limit.clone(),
            created_at: created_at.clone(),
        };
        if r.validate_only {
            return Ok(make(0));
        }
        let row = ProductRow {
            code: r.code.clone(),
            version: 0,
            kind: r.kind.clone(),
            currency: r.currency.clone(),
            per_transfer_limit: per_transfer,
            daily_transfer_limit: daily,
            definition: Vec::new(),
        };
        let version = self
            .store
            .add_product(&row, |version| make(version).encode_to_vec())
            .await?;
        Ok(make(version))
    }

    pub async fn product(&self, code: &str, version: i64) -> Result<pb::Product> {
        let row = self.store.product(code, version).await?.ok_or_else(|| {
            AdapterError::UnknownProduct {
                code: code.to_owned(),
            }
        })?;
        pb::Product::decode(row.definition.as_slice())
            .map_err(|e| AdapterError::internal(format!("stored product unreadable: {e}")))
    }

    pub async fn products(&self) -> Result<Vec<pb::Product>> {
        self.store
            .products()
            .await?
            .iter()
            .map(|row| {
                pb::Product::decode(row.definition.as_slice())
                    .map_err(|e| AdapterError::internal(format!("stored product unreadable: {e}")))
            })
            .collect()
    }

    /// The core customer for a canonical customer id, created on first use. A canonical id
    /// that is itself a core customer number (a customer from before the adapter) is that
    /// customer.
    async fn customer_no(&self, customer_id: &str) -> Result<String> {
        if let Some(number) = self.store.customer_no(customer_id).await? {
            return Ok(number);
        }
        // A canonical id that is a core customer number no other canonical customer stands
        // for: that core customer (one from before the adapter).
        if formats::parse_customer_number(customer_id).is_ok()
            && self.store.customer_id_of(customer_id).await?.is_none()
            && self.legacy.see("CUSTOMER", customer_id).await?.is_some()
        {
            self.store.map_customer(customer_id, customer_id).await?;
            return Ok(customer_id.to_owned());
        }
        let mnemonic = mnemonic(customer_id);
        let short_name: String = customer_id.chars().take(35).collect();
        let done = self
            .legacy
            .input(
                request(
                    "CUSTOMER",
                    Function::Input,
                    "",
                    vec![
                        field("MNEMONIC", mnemonic.clone()),
                        field("SHORT.NAME", short_name),
                        field("SECTOR", "1001"),
                    ],
                ),
                &Probe::enquiry(
                    "CUSTOMER.BY.MNEMONIC",
                    vec![("MNEMONIC", mnemonic)],
                    "CUSTOMER",
                ),
            )
            .await?;
        let number = done.new_id("CUSTOMER");
        self.store.map_customer(customer_id, &number).await?;
        Ok(number)
    }

    pub async fn open_account(&self, r: pb::OpenAccountRequest) -> Result<pb::Account> {
        let request_id = parse_request_id(&r.request_id)?;
        if r.customer_id.trim().is_empty() {
            return Err(AdapterError::invalid("customer_id is required"));
        }
        let opened_on = if r.opened_on.is_empty() {
            String::new()
        } else {
            legacy_date_of(&r.opened_on, "opened_on")?
        };
        let fp = fingerprint(
            "open_account",
            &[&r.customer_id, &r.product_code, &r.opened_on],
        );
        self.once(request_id, fp, async {
            let product = self
                .store
                .product(&r.product_code, 0)
                .await?
                .ok_or_else(|| AdapterError::UnknownProduct {
                    code: r.product_code.clone(),
                })?;
            let customer_no = self.customer_no(&r.customer_id).await?;
            let alt = alt_account_id(request_id);
            let category = if product.kind == "savings" {
                "6001"
            } else {
                "1001"
            };
            let mut fields = vec![
                field("CUSTOMER", customer_no.clone()),
                field("CATEGORY", category),
                field("CURRENCY", product.currency.clone()),
                field(
                    "ACCOUNT.TITLE.1",
                    r.customer_id.chars().take(35).collect::<String>(),
                ),
                field("ALT.ACCT.ID", alt.clone()),
                field("PRODUCT.CODE", product.code.clone()),
            ];
            if !opened_on.is_empty() {
                fields.push(field("OPENING.DATE", opened_on.clone()));
            }
            let done = self
                .legacy
                .input(
                    request("ACCOUNT", Function::Input, "", fields),
                    &Probe::enquiry("ACCT.BY.ALT.ID", vec![("ALT.ACCT.ID", alt)], "ACCOUNT"),
                )
                .await?;
            let account_no = done.new_id("ACCOUNT");
            // The core had an account for this request already: it must be this request's.
            let opened = self.legacy_account(&account_no).await?;
            if opened.customer_no != customer_no || opened.product_code != product.code {
                return Err(AdapterError::ExistsWithDifferent {
                    request_id: r.request_id.clone(),
                });
            }
            let row = self
                .store
                .map_account(&AccountRow {
                    account_id: account_uuid(&account_no),
                    account_no,
                    customer_id: r.customer_id.clone(),
                    product_code: product.code.clone(),
                    product_version: product.version,
                    currency: product.currency.clone(),
                })
                .await?;
            self.account_view(&row).await
        })
        .await
    }

    pub async fn get_account(&self, account_id: &str) -> Result<pb::Account> {
        let row = self.account_row(account_id).await?;
        self.account_view(&row).await
    }

    /// Several accounts, in the order asked (at most [`ACCOUNTS_READ_MAX`]). The core has no
    /// read of several accounts at once: each is its own enquiry, sixteen under way at a
    /// time.
    pub async fn get_accounts(&self, account_ids: &[String]) -> Result<Vec<pb::Account>> {
        if account_ids.len() > ACCOUNTS_READ_MAX {
            return Err(AdapterError::invalid(format!(
                "account_ids: at most {ACCOUNTS_READ_MAX} ids"
            )));
        }
        let mut accounts = Vec::with_capacity(account_ids.len());
        for some in account_ids.chunks(16) {
            let mut reads = Vec::with_capacity(some.len());
            for id in some {
                reads.push(self.get_account(id));
            }
            accounts.extend(futures_util::future::try_join_all(reads).await?);
        }
        Ok(accounts)
    }

    /// The customer's accounts: those the adapter knows, and any the core holds for the
    /// customer that the adapter has not seen yet (they are mapped on the way).
    pub async fn list_accounts(&self, customer_id: &str) -> Result<Vec<pb::Account>> {
        let mut rows = self.store.accounts_of(customer_id).await?;
        let customer_no = match self.store.customer_no(customer_id).await? {
            Some(number) => Some(number),
            // A core customer number stands for that core customer unless a canonical
            // customer of another id already does.
            None if formats::parse_customer_number(customer_id).is_ok()
                && self.store.customer_id_of(customer_id).await?.is_none() =>
            {
                Some(customer_id.to_owned())
            }
            None => None,
        };
        if let Some(customer_no) = customer_no {
            let mut after = String::new();
            loop {
                let listed = self
                    .legacy
                    .enquiry(
                        "ACCTS.BY.CUSTOMER",
                        vec![("CUSTOMER", customer_no.clone()), ("AFTER", after.clone())],
                    )
                    .await?;
                let numbers = column(&listed, "ACCOUNT");
                for account_no in &numbers {
                    if !account_no.is_empty()
                        && !rows.iter().any(|row| &row.account_no == account_no)
                    {
                        rows.push(self.adopt(account_no, customer_id).await?);
                    }
                }
                match numbers.last() {
                    Some(last) if listed.field("MORE") == Some("Y") && !last.is_empty() => {
                        after.clone_from(last);
                    }
                    _ => break,
                }
            }
        }
        let mut accounts = Vec::with_capacity(rows.len());
        for row in &rows {
            accounts.push(self.account_view(row).await?);
        }
        Ok(accounts)
    }

    pub async fn statement(&self, r: pb::GetStatementRequest) -> Result<pb::Statement> {
        let row = self.account_row(&r.account_id).await?;
        let limit = match r.page_size {
            0 => 50,
            n => n.min(200),
        };
        let page = self
            .legacy
            .enquiry(
                "STMT.ENT.BOOK",
                vec![
                    ("ACCOUNT", row.account_no.clone()),
                    ("AFTER", r.cursor.clone()),
                    ("LIMIT", limit.to_string()),
                ],
            )
            .await?;
        let lines = statement_lines(&page)?;
        let next_cursor = if page.field("MORE") == Some("Y") {
            column(&page, "ENTRY.ID")
                .last()
                .cloned()
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::Statement {
            account_id: r.account_id,
            currency: row.currency,
            lines: lines.into_iter().map(|(_, line)| line).collect(),
            next_cursor,
        })
    }

    async fn change_status(
        &self,
        r: pb::ChangeStatusRequest,
        action: &'static str,
    ) -> Result<pb::Account> {
        let request_id = parse_request_id(&r.request_id)?;
        let fp = fingerprint(action, &[&r.account_id, &r.reason]);
        self.once(request_id, fp, async {
            let row = self.account_row(&r.account_id).await?;
            let now = self.legacy_account(&row.account_no).await?;
            if now.status == "closed" {
                return Err(AdapterError::AccountClosed { message: format!("account {} is closed", r.account_id) });
            }
            match action {
                "freeze" | "unfreeze" => {
                    let (wanted, restrict) = if action == "freeze" { ("frozen", "3") } else { ("active", "") };
                    if (action == "freeze") == (now.status == "frozen") {
                        return Err(AdapterError::InvalidStatus {
                            message: format!("cannot {action} an account that is {}", now.status),
                        });
                    }
                    self.legacy
                        .input(
                            request(
                                "ACCOUNT",
                                Function::Input,
                                &row.account_no,
                                vec![field("POSTING.RESTRICT", restrict)],
                            ),
                            &Probe::field_is("ACCOUNT", &row.account_no, "POSTING.RESTRICT", restrict.to_owned()),
                        )
                        .await?;
                    tracing::info!(account = %row.account_no, status = wanted, "legacy account status changed");
                }
                _ => {
                    if now.status == "frozen" {
                        return Err(AdapterError::CannotClose { message: "the account is frozen".to_owned() });
                    }
                    self.legacy
                        .input(
                            request("ACCOUNT.CLOSURE", Function::Input, &row.account_no, Vec::new()),
                            &Probe::enquiry(
                                "ACCT.BALANCE",
                                vec![("ACCOUNT", row.account_no.clone())],
                                "CLOSURE.DATE",
                            ),
                        )
                        .await
                        .map_err(|error| match error {
                            AdapterError::AccountFrozen { message } => AdapterError::CannotClose { message },
                            other => other,
                        })?;
                }
            }
            self.account_view(&row).await
        })
        .await
    }
}

/// The lines of a `STMT.ENT.BOOK` page, each with the core's entry id.
pub(crate) fn statement_lines(
    page: &corebank_legacy_ofs::Response,
) -> Result<Vec<(String, pb::StatementLine)>> {
    let ids = column(page, "ENTRY.ID");
    let references = column(page, "TRANS.REFERENCE");
    let booked = column(page, "BOOKING.DATE");
    let valued = column(page, "VALUE.DATE");
    let amounts = column(page, "AMOUNT");
    let narratives = column(page, "NARRATIVE");
    let balances = column(page, "BALANCE");
    let at = |values: &[String], i: usize| values.get(i).cloned().unwrap_or_default();
    let mut lines = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let signed = super::canonical_amount(&at(&amounts, i))?;
        let booking = iso_date(&at(&booked, i))?;
        lines.push((
            id.clone(),
            pb::StatementLine {
                entry_id: at(&references, i),
                recorded_at: if booking.is_empty() {
                    String::new()
                } else {
                    format!("{booking}T00:00:00Z")
                },
                value_date: iso_date(&at(&valued, i))?,
                direction: if signed.is_sign_negative() {
                    "debit"
                } else {
                    "credit"
                }
                .to_owned(),
                bucket: "posted".to_owned(),
                amount: signed.abs().to_string(),
                description: at(&narratives, i),
                running_balance: amount_text(&at(&balances, i))?,
            },
        ));
    }
    Ok(lines)
}

/// Accounts one `GetAccounts` may ask for, as on the modern side.
const ACCOUNTS_READ_MAX: usize = 1_000;

adapter_service! {
    /// The tonic service.
    DepositsService: Deposits, DepositsServer {
        fn create_product(pb::CreateProductRequest) -> pb::Product =
            |adapter, r| adapter.create_product(r).await;
        fn get_product(pb::GetProductRequest) -> pb::Product =
            |adapter, r| adapter.product(&r.code, r.version).await;
        fn list_products(pb::ListProductsRequest) -> pb::ListProductsResponse =
            |adapter, _| {
                let products = adapter.products().await;
                products.map(|products| pb::ListProductsResponse { products })
            };
        fn open_account(pb::OpenAccountRequest) -> pb::Account =
            |adapter, r| adapter.open_account(r).await;
        fn get_account(pb::GetAccountRequest) -> pb::Account =
            |adapter, r| adapter.get_account(&r.account_id).await;
        fn get_accounts(pb::GetAccountsRequest) -> pb::ListAccountsResponse =
            |adapter, r| {
                let accounts = adapter.get_accounts(&r.account_ids).await;
                accounts.map(|accounts| pb::ListAccountsResponse { accounts })
            };
        fn list_accounts(pb::ListAccountsRequest) -> pb::ListAccountsResponse =
            |adapter, r| {
                let accounts = adapter.list_accounts(&r.customer_id).await;
                accounts.map(|accounts| pb::ListAccountsResponse { accounts })
            };
        fn get_statement(pb::GetStatementRequest) -> pb::Statement =
            |adapter, r| adapter.statement(r).await;
        fn deposit(pb::CashRequest) -> pb::Movement = |adapter, r| adapter.cash(r, true).await;
        fn withdraw(pb::CashRequest) -> pb::Movement = |adapter, r| adapter.cash(r, false).await;
        fn transfer(pb::TransferRequest) -> pb::TransferResult =
            |adapter, r| adapter.transfer(r).await;
        fn place_hold(pb::PlaceHoldRequest) -> pb::Hold =
            |adapter, r| adapter.place_hold(r).await;
        fn release_hold(pb::ReleaseHoldRequest) -> pb::Hold =
            |adapter, r| adapter.release_hold(r).await;
        fn capture_hold(pb::CaptureHoldRequest) -> pb::Hold =
            |adapter, r| adapter.capture_hold(r).await;
        fn freeze_account(pb::ChangeStatusRequest) -> pb::Account =
            |adapter, r| adapter.change_status(r, "freeze").await;
        fn unfreeze_account(pb::ChangeStatusRequest) -> pb::Account =
            |adapter, r| adapter.change_status(r, "unfreeze").await;
        fn close_account(pb::ChangeStatusRequest) -> pb::Account =
            |adapter, r| adapter.change_status(r, "close").await;
        fn accrue_interest(pb::AccrueInterestRequest) -> pb::AccrueInterestResponse =
            |_, _| Err(AdapterError::NotSupported {
                message: "the legacy core accrues and posts interest in its own close of business"
                    .to_owned(),
            });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::holds::hold_status;
    use super::*;

    #[test]
    fn statement_pages_become_canonical_lines() {
        let page = corebank_legacy_ofs::Response::parse(
            "STMT.ENT.BOOK/m/1,ENTRY.ID:1:1=E1,TRANS.REFERENCE:1:1=FT1,BOOKING.DATE:1:1=20261125,\
             VALUE.DATE:1:1=20261125,AMOUNT:1:1=100.00,NARRATIVE:1:1=cash in,BALANCE:1:1=100.00,\
             ENTRY.ID:2:1=E2,TRANS.REFERENCE:2:1=FT2,BOOKING.DATE:2:1=20261125,VALUE.DATE:2:1=20261125,\
             AMOUNT:2:1=-40.50,NARRATIVE:2:1=,BALANCE:2:1=59.50,MORE:1:1=N",
        )
        .unwrap();
        let lines = statement_lines(&page).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].1.direction, "debit");
        assert_eq!(lines[1].1.amount, "40.50");
        assert_eq!(lines[1].1.running_balance, "59.50");
        assert_eq!(lines[0].1.entry_id, "FT1");
        assert_eq!(lines[0].1.value_date, "2026-11-25");
        assert_eq!(hold_status("LIVE"), "held");
        assert_eq!(hold_status("CAPTURED"), "captured");
    }
}

//! The anti-corruption layer: serves `corebank.deposits.v1.Deposits`,
//! `corebank.payments.v1.Payments` (the same contracts as the modern modules) and
//! `corebank.legacy.v1.LegacyExport` in front of the mock legacy core, translating to and
//! from OFS. Canonical UUIDs map to the core's account numbers in the adapter's own schema
//! (`legacy_adapter`); legacy error texts map to the canonical stable codes; `YYYYMMDD` and
//! two-decimal strings map to ISO dates and canonical amounts. What the core cannot do is
//! refused with `not_supported_by_legacy` (README, "What the adapter cannot do").

pub mod client;
pub mod deposits;
pub mod error;
pub mod export;
pub mod legacy;
pub mod migration;
mod parse;
pub mod payments;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, SecondsFormat, Utc};
use corebank_api::deposits::v1 as pb;
use corebank_db::Db;
use corebank_service::Component;
use corebank_service::internal::{Allow, allowed_callers};
use prost::Message as _;
use rust_decimal::Decimal;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use corebank_legacy_ofs::formats;
use corebank_legacy_ofs::{Field, Response};

use client::{ClientConfig, OfsClient};
use error::AdapterError;
use legacy::Legacy;
use store::{AccountRow, ProductRow, Store};

pub(crate) use parse::{
    check_currency, fingerprint_amount, optional_money, optional_rate, parse_amount,
    parse_request_id, parse_uuid,
};

pub(crate) type Result<T> = std::result::Result<T, AdapterError>;

/// The currencies the core keeps internal accounts for.
pub const CURRENCIES: [&str; 4] = ["EUR", "USD", "GBP", "CHF"];
/// Internal account categories (README, "Accounts and the books").
pub const CASH_CATEGORY: u32 = 10_001;
pub const CLEARING_CATEGORY: u32 = 12_810;
/// The core's inter-core clearing account category (ADR 0014): money sent to and received
/// from the other core by cross-side transfers.
pub const INTER_CORE_CATEGORY: u32 = 12_950;
/// The products the core's own (seeded, pre-adapter) accounts carry.
pub const LEGACY_PRODUCTS: [(&str, &str, &str); 2] = [
    ("LEGACY-CURRENT", "current", "Legacy current account"),
    ("LEGACY-SAVINGS", "savings", "Legacy savings account"),
];

/// How the adapter reaches the core.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    pub client: ClientConfig,
}

impl AdapterConfig {
    pub fn from_settings(settings: &corebank_service::Settings) -> AdapterConfig {
        AdapterConfig {
            client: ClientConfig {
                addr: settings.legacy_core_addr,
                user: settings.legacy_user.clone(),
                password: settings.legacy_password.clone(),
                pool_size: settings.legacy_pool_size,
                call_timeout: Duration::from_millis(settings.legacy_call_timeout_ms),
                breaker_failures: settings.legacy_breaker_failures,
                breaker_open: Duration::from_millis(settings.legacy_breaker_open_ms),
                in_doubt: Duration::from_millis(settings.legacy_in_doubt_ms),
            },
        }
    }
}

/// An answer kept per request id, which says so when it is given again for a repeat.
pub(crate) trait Kept: prost::Message + Default {
    /// Marks the answer as given again (its `replayed` field).
    fn mark_replayed(&mut self);
}

/// An account has no `replayed` field: a repeated opening answers the same account.
impl Kept for pb::Account {
    fn mark_replayed(&mut self) {}
}

/// `Kept` for the contracts' answers, each of which has a `replayed` field.
macro_rules! kept_with_replayed_field {
    ($($answer:ty),+ $(,)?) => {$(
        impl Kept for $answer {
            fn mark_replayed(&mut self) {
                self.replayed = true;
            }
        }
    )+};
}

kept_with_replayed_field!(
    pb::Hold,
    pb::Movement,
    pb::TransferResult,
    corebank_api::payments::v1::InternalTransferResult,
    corebank_api::payments::v1::Payment,
);

/// The adapter's use cases, shared by its gRPC services.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub(crate) legacy: Legacy,
    pub(crate) store: Store,
}

/// The adapter component: gRPC Deposits, Payments, LegacyMigration and LegacyExport. `db`'s search path is
/// `legacy_adapter`; the legacy products are added to the catalogue when missing.
pub async fn component(db: Db, config: AdapterConfig) -> Result<Component> {
    component_of(Arc::new(Adapter::new(db, config))).await
}

/// The component serving `adapter` (tests keep the handle to look inside).
pub async fn component_of(adapter: Arc<Adapter>) -> Result<Component> {
    adapter.ensure_legacy_products().await?;
    Ok(Component::new("legacy-adapter")
        .with_db(adapter.store.db().clone())
        .with_grpc(
            deposits::DepositsService::new(Arc::clone(&adapter)).into_server(),
            Allow::only(allowed_callers::DEPOSITS),
        )
        .with_grpc(
            payments::PaymentsService::new(Arc::clone(&adapter)).into_server(),
            Allow::only(allowed_callers::PAYMENTS),
        )
        .with_grpc(
            migration::MigrationService::new(Arc::clone(&adapter)).into_server(),
            Allow::only(allowed_callers::LEGACY_MIGRATION),
        )
        .with_grpc(
            export::ExportService::new(adapter).into_server(),
            Allow::only(allowed_callers::LEGACY_EXPORT),
        ))
}

// ---------------------------------------------------------------------------------------
// Ids: every legacy id the adapter sends derives from the canonical request id, and every
// canonical id it serves derives from the legacy id, so any adapter replica (or the same one
// after a crash) arrives at the same ids without asking anyone.

fn hex_of(id: Uuid) -> String {
    id.simple().to_string().to_uppercase()
}

/// The `FUNDS.TRANSFER` id of a canonical request.
pub fn ft_id(request_id: Uuid) -> String {
    format!("FT{}", hex_of(request_id))
}

/// The `AC.LOCKED.EVENTS` id of a canonical request.
pub fn lock_id(request_id: Uuid) -> String {
    format!("ACLK{}", hex_of(request_id))
}

/// The `ALT.ACCT.ID` an account opened for a canonical request carries.
pub fn alt_account_id(request_id: Uuid) -> String {
    hex_of(request_id)
}

/// The `MNEMONIC` of the core customer standing for a canonical customer id.
pub fn mnemonic(customer_id: &str) -> String {
    let digest = Sha256::digest(customer_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("C{}", &hex[..34])
}

/// A stable UUID (version 4 layout) for a legacy id of some kind.
pub fn derived_uuid(kind: &str, legacy_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("corebank-legacy:{kind}:{legacy_id}").as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The canonical id of a core account.
pub fn account_uuid(account_no: &str) -> Uuid {
    derived_uuid("account", account_no)
}

// ---------------------------------------------------------------------------------------
// Translation helpers.

/// An amount with the currency's two decimals, as the modern modules write it.
pub(crate) fn money(amount: Decimal) -> String {
    format!("{amount:.2}")
}

/// An amount as the core writes it.
pub(crate) fn legacy_amount(amount: Decimal) -> Result<String> {
    formats::legacy_amount(amount.round_dp(2)).map_err(|e| AdapterError::internal(e.to_string()))
}

/// A canonical amount string from the core's (`"59.50"` stays `"59.50"`).
pub(crate) fn canonical_amount(text: &str) -> Result<Decimal> {
    formats::parse_legacy_amount(text).map_err(|e| {
        AdapterError::internal(format!(
            "the legacy core answered an unreadable amount: {e}"
        ))
    })
}

pub(crate) fn amount_text(text: &str) -> Result<String> {
    Ok(canonical_amount(text)?.to_string())
}

/// When a lock whose `TO.DATE` is `day` lapses, as a hold's expiry: the last second of
/// that day (the core's business day, UTC).
pub(crate) fn lock_lapses(day: Option<NaiveDate>) -> Option<chrono::DateTime<Utc>> {
    day.and_then(|day| day.and_hms_opt(23, 59, 59))
        .map(|at| at.and_utc())
}

/// An ISO date from the core's `YYYYMMDD` (empty stays empty).
pub(crate) fn iso_date(text: &str) -> Result<String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    formats::parse_legacy_date(text)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|e| {
            AdapterError::internal(format!("the legacy core answered an unreadable date: {e}"))
        })
}

pub(crate) fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Free text the core keeps (narratives, reasons): at most 140 characters.
pub(crate) fn check_text(text: &str, field: &str) -> Result<()> {
    if text.chars().count() > 140 {
        return Err(AdapterError::invalid(format!(
            "{field} has {} characters; the legacy core keeps at most 140",
            text.chars().count()
        )));
    }
    Ok(())
}

/// The core's internal account of `category` in `currency`.
pub(crate) fn internal_account(currency: &str, category: u32) -> Result<String> {
    if !CURRENCIES.contains(&currency) {
        return Err(AdapterError::CurrencyMismatch {
            message: format!("the legacy core keeps only {}", CURRENCIES.join(", ")),
        });
    }
    formats::account_number(currency, category).map_err(|e| AdapterError::internal(e.to_string()))
}

/// The values of a multi-valued field by position (`FIELD:1`, `FIELD:2`, …; sub-value 1).
pub(crate) fn column(response: &Response, name: &str) -> Vec<String> {
    let mut values: Vec<(u16, String)> = response
        .fields
        .iter()
        .filter(|f| f.name == name && f.sub_value == 1)
        .map(|f| (f.multi_value, f.value.clone()))
        .collect();
    values.sort_by_key(|(position, _)| *position);
    let last = values
        .last()
        .map_or(0, |(position, _)| usize::from(*position));
    let mut out = vec![String::new(); last];
    for (position, value) in values {
        if let Some(slot) = out.get_mut(usize::from(position).saturating_sub(1)) {
            *slot = value;
        }
    }
    out
}

/// The sub-values of `name` at multi-value `position`, by sub-value position (`:n:1`,
/// `:n:2`, …; a gap or an empty value is an empty string, so parallel fields stay aligned).
pub(crate) fn sub_values(response: &Response, name: &str, position: u16) -> Vec<String> {
    let mut values: Vec<(u16, String)> = response
        .fields
        .iter()
        .filter(|f| f.name == name && f.multi_value == position)
        .map(|f| (f.sub_value, f.value.clone()))
        .collect();
    values.sort_by_key(|(sub, _)| *sub);
    let last = values.last().map_or(0, |(sub, _)| usize::from(*sub));
    let mut out = vec![String::new(); last];
    for (sub, value) in values {
        if let Some(slot) = out.get_mut(usize::from(sub).saturating_sub(1)) {
            *slot = value;
        }
    }
    out
}

/// A use case's outcome as a gRPC answer (refusals with their stable code).
pub(crate) fn answer<T>(
    result: Result<T>,
) -> std::result::Result<tonic::Response<T>, tonic::Status> {
    result
        .map(tonic::Response::new)
        .map_err(|error| error.status())
}

/// A gRPC service in front of the adapter: the service type (`new`, `into_server`) and its
/// methods, each handing its request to the adapter's use cases and answering with what they
/// returned (`answer`). A method reads `fn method(Request) -> Answer = |adapter, r| body;`,
/// with `r` the request's message.
macro_rules! adapter_service {
    (
        $(#[$meta:meta])*
        $service:ident: $api:ident, $server:ident {
            $(
                fn $method:ident($request:ty) -> $response:ty =
                    |$adapter:pat_param, $r:pat_param| $body:expr;
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $service {
            adapter: std::sync::Arc<$crate::adapter::Adapter>,
        }

        impl $service {
            pub fn new(adapter: std::sync::Arc<$crate::adapter::Adapter>) -> $service {
                $service { adapter }
            }

            pub fn into_server(self) -> $server<$service> {
                $server::new(self)
            }
        }

        #[tonic::async_trait]
        impl $api for $service {
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<$request>,
                ) -> std::result::Result<tonic::Response<$response>, tonic::Status> {
                    let $adapter = &self.adapter;
                    let $r = request.into_inner();
                    $crate::adapter::answer($body)
                }
            )+
        }
    };
}

pub(crate) use adapter_service;

pub(crate) fn field(name: &str, value: impl Into<String>) -> Field {
    Field::new(name, value)
}

/// A fingerprint of a request's content (its id excluded): the operation and the values.
pub(crate) fn fingerprint(operation: &str, values: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    for value in values {
        hasher.update([0x1f]);
        hasher.update(value.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What `ACCT.BALANCE` says of an account.
#[derive(Debug, Clone)]
pub(crate) struct LegacyAccount {
    pub balances: pb::Balances,
    pub status: &'static str,
    pub currency: String,
    pub customer_no: String,
    pub product_code: String,
    pub opened_on: String,
    pub closed_on: String,
}

impl Adapter {
    pub fn new(db: Db, config: AdapterConfig) -> Adapter {
        let store = Store::new(db);
        Adapter {
            legacy: Legacy::new(OfsClient::new(config.client), store.clone()),
            store,
        }
    }

    /// Inputs whose outcome was lost and settled by asking the core.
    pub fn ambiguous_outcomes(&self) -> u64 {
        self.legacy.ambiguous_outcomes()
    }

    /// Bulks sent to the core so far, and the migration inputs they carried.
    pub fn bulk_stats(&self) -> (u64, u64) {
        self.legacy.client().bulk_stats()
    }

    /// Whether the circuit breaker in front of the core is open now.
    pub fn legacy_breaker_open(&self) -> bool {
        self.legacy.client().breaker_open()
    }

    async fn ensure_legacy_products(&self) -> Result<()> {
        for (code, kind, name) in LEGACY_PRODUCTS {
            let product = pb::Product {
                code: code.to_owned(),
                version: 1,
                name: name.to_owned(),
                kind: kind.to_owned(),
                currency: "EUR".to_owned(),
                rate_tiers: Vec::new(),
                day_count: "act_365_fixed".to_owned(),
                posting_frequency: "monthly".to_owned(),
                minimum_balance: "0".to_owned(),
                overdraft_limit: "0".to_owned(),
                overdraft_rate: "0".to_owned(),
                dormancy_days: 0,
                per_transfer_limit: String::new(),
                daily_transfer_limit: String::new(),
                created_at: now_text(),
            };
            self.store
                .ensure_product(&ProductRow {
                    code: code.to_owned(),
                    version: 1,
                    kind: kind.to_owned(),
                    currency: "EUR".to_owned(),
                    per_transfer_limit: None,
                    daily_transfer_limit: None,
                    definition: product.encode_to_vec(),
                })
                .await?;
        }
        Ok(())
    }

    /// Runs `work` once per request id: the same id with the same content answers the
    /// stored answer again (marked replayed), with other content it is refused.
    pub(crate) async fn once<T, F>(
        &self,
        request_id: Uuid,
        fingerprint: String,
        work: F,
    ) -> Result<T>
    where
        T: Kept,
        F: std::future::Future<Output = Result<T>>,
    {
        let decode = |bytes: &[u8]| {
            T::decode(bytes)
                .map_err(|e| AdapterError::internal(format!("a stored answer is unreadable: {e}")))
        };
        if let Some((stored, bytes)) = self.store.answer(request_id).await? {
            if stored != fingerprint {
                return Err(AdapterError::ExistsWithDifferent {
                    request_id: request_id.to_string(),
                });
            }
            let mut answer = decode(&bytes)?;
            answer.mark_replayed();
            return Ok(answer);
        }
        let answer = work.await?;
        let encoded = answer.encode_to_vec();
        let (stored, bytes) = self
            .store
            .keep_answer(request_id, &fingerprint, &encoded)
            .await?;
        if stored != fingerprint {
            return Err(AdapterError::ExistsWithDifferent {
                request_id: request_id.to_string(),
            });
        }
        if bytes == encoded {
            Ok(answer)
        } else {
            // A twin of this request answered first: its answer is the one.
            let mut first = decode(&bytes)?;
            first.mark_replayed();
            Ok(first)
        }
    }

    /// The mapped account, or `unknown_account`.
    pub(crate) async fn account_row(&self, account_id: &str) -> Result<AccountRow> {
        let id = parse_uuid(account_id, "account_id")?;
        self.store
            .account(id)
            .await?
            .ok_or_else(|| AdapterError::UnknownAccount {
                account_id: account_id.to_owned(),
            })
    }

    /// `ACCT.BALANCE` of a core account.
    pub(crate) async fn legacy_account(&self, account_no: &str) -> Result<LegacyAccount> {
        let r = self
            .legacy
            .read(legacy::enquiry_request(
                "ACCT.BALANCE",
                vec![("ACCOUNT", account_no.to_owned())],
            ))
            .await?;
        if r.indicator != corebank_legacy_ofs::Indicator::Done {
            return Err(
                if error::says(&r, "RECORD NOT FOUND") || error::says(&r, "MISSING ACCOUNT") {
                    AdapterError::UnknownAccount {
                        account_id: account_no.to_owned(),
                    }
                } else {
                    error::refusal(&r)
                },
            );
        }
        let get = |name: &str| r.field(name).unwrap_or_default().to_owned();
        let closed_on = get("CLOSURE.DATE");
        let status = if !closed_on.is_empty() {
            "closed"
        } else if get("POSTING.RESTRICT") == "3" {
            "frozen"
        } else {
            "active"
        };
        Ok(LegacyAccount {
            balances: pb::Balances {
                posted: amount_text(&get("WORKING.BALANCE"))?,
                held: amount_text(&get("LOCKED.AMOUNT"))?,
                available: amount_text(&get("AVAILABLE.BALANCE"))?,
                // The core accrues and posts interest in its own close of business.
                accrued_interest: "0.00".to_owned(),
            },
            status,
            currency: get("CURRENCY"),
            customer_no: get("CUSTOMER"),
            product_code: get("PRODUCT.CODE"),
            opened_on: iso_date(&get("OPENING.DATE"))?,
            closed_on: iso_date(&closed_on)?,
        })
    }

    /// The canonical account.
    pub(crate) async fn account_view(&self, row: &AccountRow) -> Result<pb::Account> {
        let legacy = self.legacy_account(&row.account_no).await?;
        Ok(pb::Account {
            id: row.account_id.to_string(),
            customer_id: row.customer_id.clone(),
            product_code: row.product_code.clone(),
            product_version: row.product_version,
            currency: row.currency.clone(),
            status: legacy.status.to_owned(),
            balances: Some(legacy.balances),
            opened_on: legacy.opened_on,
            last_customer_activity_at: String::new(),
            closed_at: if legacy.closed_on.is_empty() {
                String::new()
            } else {
                format!("{}T00:00:00Z", legacy.closed_on)
            },
            accrued_through: String::new(),
        })
    }

    /// Maps a core account the adapter has not seen (opened before the adapter, or by the
    /// core's own tellers) under `customer_id`.
    pub(crate) async fn adopt(&self, account_no: &str, customer_id: &str) -> Result<AccountRow> {
        let legacy = self.legacy_account(account_no).await?;
        let version = match self.store.product(&legacy.product_code, 0).await? {
            Some(product) => product.version,
            None => 0,
        };
        self.store
            .map_account(&AccountRow {
                account_id: account_uuid(account_no),
                account_no: account_no.to_owned(),
                customer_id: customer_id.to_owned(),
                product_code: legacy.product_code,
                product_version: version,
                currency: legacy.currency,
            })
            .await
    }

    /// The canonical id of a core customer: the mapped one, or the core's number itself.
    pub(crate) async fn customer_id_of(&self, customer_no: &str) -> Result<String> {
        Ok(self
            .store
            .customer_id_of(customer_no)
            .await?
            .unwrap_or_else(|| customer_no.to_owned()))
    }
}

/// A canonical date (`YYYY-MM-DD`) as the core's `YYYYMMDD`.
pub(crate) fn legacy_date_of(text: &str, field: &str) -> Result<String> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        AdapterError::invalid(format!("{field} {text:?} is not a date like 2026-11-25"))
    })?;
    Ok(formats::legacy_date(date))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn legacy_ids_derive_from_canonical_ids_and_fit_the_core() {
        let id = Uuid::parse_str("7f3a0b1c-2d4e-4f60-8a9b-0c1d2e3f4a5b").unwrap();
        assert_eq!(ft_id(id), "FT7F3A0B1C2D4E4F608A9B0C1D2E3F4A5B");
        assert_eq!(lock_id(id), "ACLK7F3A0B1C2D4E4F608A9B0C1D2E3F4A5B");
        assert_eq!(mnemonic("customer-1").len(), 35);
        assert_ne!(mnemonic("customer-1"), mnemonic("customer-2"));
        let account = account_uuid("EUR1000001781");
        assert_eq!(account, account_uuid("EUR1000001781"));
        assert_eq!(account.get_version_num(), 4);
        assert_ne!(account, account_uuid("EUR1000002777"));
    }

    #[test]
    fn canonical_amounts_are_written_with_two_decimals() {
        assert_eq!(money(Decimal::new(105, 1)), "10.50");
        assert_eq!(money(Decimal::from(10)), "10.00");
    }

    #[test]
    fn multi_values_are_read_by_position() {
        let r =
            Response::parse("ACCTS/m/1,ACCOUNT:2:1=B,ACCOUNT:1:1=A,LOCK.ID:1:2=L2,LOCK.ID:1:1=L1")
                .unwrap();
        assert_eq!(column(&r, "ACCOUNT"), vec!["A", "B"]);
        assert_eq!(sub_values(&r, "LOCK.ID", 1), vec!["L1", "L2"]);
        let gaps = Response::parse("X/m/1,TO:1:1=,TO:1:2=20261231,ID:1:1=A,ID:1:2=B").unwrap();
        assert_eq!(sub_values(&gaps, "TO", 1), vec!["", "20261231"]);
        assert!(sub_values(&r, "LOCK.ID", 2).is_empty());
    }
}

//! The deterministic seed: customer `k` gets a current and a savings account in EUR, both
//! funded from the till with amounts computed from `k`; every fifth a hold on the current
//! account, every seventh a loan paid out to it. It goes through the applications
//! themselves (without sign-on or faults), one transaction per step, so the books it makes
//! obey every rule the core enforces.

use corebank_db::TxError;
use rust_decimal::Decimal;

use super::books::{CATEGORY_CASH, internal_account};
use super::input::{Reject, amount_text};
use super::server::Core;
use corebank_legacy_ofs::{Field, Function, Indicator, Process, Request};

/// The most customers a seed makes.
pub(crate) const SEED_CUSTOMERS_MAX: u32 = 100_000;
const SEED_USER: &str = "SEED";

fn request(application: &str, fields: Vec<Field>) -> Request {
    Request {
        application: application.to_owned(),
        version: String::new(),
        function: Function::Input,
        process: Process::Process,
        authorisers: None,
        user: SEED_USER.to_owned(),
        password: String::new(),
        transaction_id: String::new(),
        fields,
    }
}

/// The current account's opening deposit of customer `k`: 500.00 to 4,999.99.
pub(crate) fn current_amount(k: u32) -> Decimal {
    let units = 500 + (u64::from(k) * 7_919) % 4_500;
    let cents = (u64::from(k) * 37) % 100;
    Decimal::from(units) + Decimal::new(i64::try_from(cents).unwrap_or(0), 2)
}

/// The savings account's opening deposit of customer `k`: 1,000.00 to 20,999.00.
pub(crate) fn savings_amount(k: u32) -> Decimal {
    Decimal::from(1_000 + (u64::from(k) * 104_729) % 20_000)
}

async fn step(core: &Core, application: &str, fields: Vec<Field>) -> Result<String, String> {
    let request = request(application, fields);
    let answer = core
        .execute(&request)
        .await
        .map_err(|_| format!("{application}: the outcome of a seed step is unknown"))?;
    if answer.indicator != Indicator::Done {
        return Err(format!("{application} was refused: {:?}", answer.fields));
    }
    Ok(answer.id)
}

/// Seeds `customers` customers when the books have none.
pub(crate) async fn seed_if_empty(core: &Core, customers: u32) -> Result<(), String> {
    if customers == 0 {
        return Ok(());
    }
    let existing = core
        .db
        .run_tx("legacy_core_seed_check", |tx| {
            Box::pin(async move {
                let row = tx.query_one("SELECT count(*) FROM customers", &[]).await?;
                Ok::<_, TxError<Reject>>(row.get::<_, i64>(0))
            })
        })
        .await
        .map_err(|e| format!("cannot count the customers: {e:?}"))?;
    if existing > 0 {
        tracing::info!(
            customers = existing,
            "legacy core books are not empty: no seed"
        );
        return Ok(());
    }
    let customers = customers.min(SEED_CUSTOMERS_MAX);
    let till = internal_account("EUR", CATEGORY_CASH).map_err(|e| format!("{e:?}"))?;
    for k in 1..=customers {
        let customer = step(
            core,
            "CUSTOMER",
            vec![
                Field::new("MNEMONIC", format!("SEED{k:06}")),
                Field::new("SHORT.NAME", format!("SEED CUSTOMER {k}")),
                Field::new("NAME.1", format!("Seed Customer {k}")),
                Field::new("SECTOR", "1001"),
            ],
        )
        .await?;
        let mut accounts = Vec::new();
        for (category, product, title, amount) in [
            ("1001", "LEGACY-CURRENT", "CURRENT", current_amount(k)),
            ("6001", "LEGACY-SAVINGS", "SAVINGS", savings_amount(k)),
        ] {
            let account = step(
                core,
                "ACCOUNT",
                vec![
                    Field::new("CUSTOMER", customer.clone()),
                    Field::new("CATEGORY", category),
                    Field::new("CURRENCY", "EUR"),
                    Field::new("ACCOUNT.TITLE.1", format!("SEED {title} {k}")),
                    Field::new("PRODUCT.CODE", product),
                ],
            )
            .await?;
            step(
                core,
                "FUNDS.TRANSFER",
                vec![
                    Field::new("TRANSACTION.TYPE", "AC"),
                    Field::new("DEBIT.ACCT.NO", till.clone()),
                    Field::new("CREDIT.ACCT.NO", account.clone()),
                    Field::new("DEBIT.CURRENCY", "EUR"),
                    Field::new("DEBIT.AMOUNT", amount_text(amount)),
                    Field::new("PAYMENT.DETAILS", "OPENING DEPOSIT"),
                    Field::new("OVERRIDE.ACCEPTED", "YES"),
                ],
            )
            .await?;
            accounts.push(account);
        }
        let current = accounts.first().cloned().unwrap_or_default();
        if k % 5 == 0 {
            let hold = (current_amount(k) / Decimal::from(10)).round_dp(2);
            step(
                core,
                "AC.LOCKED.EVENTS",
                vec![
                    Field::new("ACCOUNT.NUMBER", current.clone()),
                    Field::new("LOCKED.AMOUNT", amount_text(hold)),
                    Field::new("DESCRIPTION", "SEED HOLD"),
                ],
            )
            .await?;
        }
        if k % 7 == 0 {
            step(
                core,
                "LD.LOANS.AND.DEPOSITS",
                vec![
                    Field::new("CUSTOMER.ID", customer.clone()),
                    Field::new("CURRENCY", "EUR"),
                    Field::new(
                        "AMOUNT",
                        amount_text(Decimal::from(5_000 + 100 * u64::from(k))),
                    ),
                    Field::new("INTEREST.RATE", "6.50"),
                    Field::new("TERM", (12 * (1 + k % 3)).to_string()),
                    Field::new("DRAWDOWN.ACCOUNT", current.clone()),
                ],
            )
            .await?;
        }
    }
    tracing::info!(customers, "legacy core seeded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_amounts_are_positive_and_two_decimal() {
        for k in 1..500 {
            for amount in [current_amount(k), savings_amount(k)] {
                assert!(amount > Decimal::ZERO);
                assert_eq!(amount.round_dp(2), amount);
            }
        }
    }
}

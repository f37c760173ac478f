//! `FUNDS.TRANSFER`: between accounts (`AC`), outward payments to the clearing account
//! (`OT`) and loan repayments (`LR`), with lock capture and the override above 10,000.00.
//! The record is stored as answered, so `S` answers the same.

use chrono::NaiveDate;
use corebank_db::{Transaction, TxError};
use rust_decimal::Decimal;

use super::apps::{self, Book, available, end_lock, new_id};
use super::books::{
    self, CATEGORY_CLEARING, CATEGORY_INTEREST_INCOME, CATEGORY_LOANS_CONTROL, Posting,
    internal_account, is_currency_allowed, next_journal, postable_account,
};
use super::input::{
    Answer, Input, Outcome, Record, Reject, amount_text, corrupt, date_text, refuse,
};
use super::loans;
use corebank_legacy_ofs::{Field, Request};

/// Transfers above this need `OVERRIDE.ACCEPTED=YES`.
pub(crate) const OVERRIDE_THRESHOLD: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 2);
pub(crate) const OVERRIDE_TEXT: &str = "AMOUNT ABOVE 10000.00 NEEDS APPROVAL";

const SINGLE_FIELDS: [&str; 12] = [
    "TRANSACTION.TYPE",
    "DEBIT.ACCT.NO",
    "CREDIT.ACCT.NO",
    "DEBIT.CURRENCY",
    "DEBIT.AMOUNT",
    "DEBIT.VALUE.DATE",
    "LOCKED.EVENT.ID",
    "OVERRIDE.ACCEPTED",
    "BEN.ACCT.NO",
    "BEN.BANK",
    "BEN.CUSTOMER",
    "END.TO.END.ID",
];

type StoredField = (String, u16, u16, String);

/// The transfer as stored.
pub(crate) async fn transfer_record(tx: &Transaction<'_>, id: &str) -> Outcome<Option<Vec<Field>>> {
    let Some(row) = tx
        .query_opt("SELECT record FROM funds_transfers WHERE id = $1", &[&id])
        .await?
    else {
        return Ok(None);
    };
    let stored: Vec<StoredField> = serde_json::from_str(row.get("record"))
        .map_err(|e| corrupt(format!("funds transfer {id}: {e}")))?;
    Ok(Some(
        stored
            .into_iter()
            .map(|(name, multi_value, sub_value, value)| Field {
                name,
                multi_value,
                sub_value,
                value,
            })
            .collect(),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ac,
    Ot,
    Lr,
}

pub(crate) async fn input_transfer(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    let input = Input::check(&request.fields, &SINGLE_FIELDS, &["PAYMENT.DETAILS"])?;
    let journal = next_journal(tx).await?;
    let id = new_id(tx, Book::FundsTransfers, &request.transaction_id, today).await?;
    let kind_text = input.text("TRANSACTION.TYPE").unwrap_or("AC");
    let kind = match kind_text {
        "AC" => Kind::Ac,
        "OT" => Kind::Ot,
        "LR" => Kind::Lr,
        _ => return Err(refuse("TRANSACTION.TYPE", "INVALID VALUE")),
    };
    let debit_id = input.required_account("DEBIT.ACCT.NO")?;
    let currency = input.required("DEBIT.CURRENCY")?;
    if !is_currency_allowed(currency) {
        return Err(refuse("DEBIT.CURRENCY", "CURRENCY NOT ALLOWED"));
    }
    let amount = input.required_amount("DEBIT.AMOUNT")?;
    let value_date = input.date("DEBIT.VALUE.DATE")?.unwrap_or(today);
    let details = input.lines("PAYMENT.DETAILS");
    let override_accepted = match input.text("OVERRIDE.ACCEPTED") {
        None => false,
        Some("YES") => true,
        Some(_) => return Err(refuse("OVERRIDE.ACCEPTED", "INVALID VALUE")),
    };
    let credit_id = match kind {
        Kind::Ac => input.required_account("CREDIT.ACCT.NO")?,
        Kind::Ot => {
            input.required("BEN.ACCT.NO")?;
            input.required("BEN.BANK")?;
            let clearing = internal_account(currency, CATEGORY_CLEARING)?;
            if input
                .text("CREDIT.ACCT.NO")
                .is_some_and(|given| given != clearing)
            {
                return Err(refuse("CREDIT.ACCT.NO", "INVALID VALUE"));
            }
            clearing
        }
        Kind::Lr => input.required("CREDIT.ACCT.NO")?.to_owned(),
    };

    let debit = postable_account(tx, "DEBIT.ACCT.NO", &debit_id).await?;
    if debit.currency != currency {
        return Err(refuse("DEBIT.CURRENCY", "CURRENCY MISMATCH"));
    }
    let mut captured = Decimal::ZERO;
    let lock_id = input.text("LOCKED.EVENT.ID");
    if let Some(lock_id) = lock_id {
        let lock = apps::lock(tx, lock_id, today)
            .await?
            .ok_or_else(|| refuse("LOCKED.EVENT.ID", "RECORD NOT FOUND"))?;
        if lock.account != debit_id {
            return Err(refuse("LOCKED.EVENT.ID", "INVALID VALUE"));
        }
        if lock.status != "LIVE" {
            return Err(refuse(
                "LOCKED.EVENT.ID",
                format!("LOCK NOT LIVE, STATUS {}", lock.status),
            ));
        }
        if lock.amount != amount {
            return Err(refuse("DEBIT.AMOUNT", "INVALID AMOUNT"));
        }
        captured = lock.amount;
    }

    let mut repayment = None;
    let legs = match kind {
        Kind::Ac | Kind::Ot => {
            if credit_id == debit_id {
                return Err(refuse("CREDIT.ACCT.NO", "INVALID VALUE"));
            }
            let credit = postable_account(tx, "CREDIT.ACCT.NO", &credit_id).await?;
            if credit.currency != currency {
                return Err(refuse("CREDIT.ACCT.NO", "CURRENCY MISMATCH"));
            }
            vec![(debit_id.clone(), -amount), (credit_id.clone(), amount)]
        }
        Kind::Lr => {
            let plan = loans::plan_repayment(tx, &credit_id, currency, amount).await?;
            let legs = vec![
                (debit_id.clone(), -amount),
                (
                    internal_account(currency, CATEGORY_LOANS_CONTROL)?,
                    plan.principal,
                ),
                (
                    internal_account(currency, CATEGORY_INTEREST_INCOME)?,
                    plan.interest,
                ),
            ];
            repayment = Some(plan);
            legs
        }
    };
    if !debit.is_internal() {
        let available = available(tx, &debit, today).await? + captured;
        if available < amount {
            return Err(refuse(
                "DEBIT.AMOUNT",
                format!("INSUFFICIENT FUNDS, AVAILABLE {}", amount_text(available)),
            ));
        }
    }
    if amount > OVERRIDE_THRESHOLD && !override_accepted {
        return Err(TxError::Abort(Reject::Override {
            text: OVERRIDE_TEXT.to_owned(),
        }));
    }

    let narrative = details
        .first()
        .cloned()
        .unwrap_or_else(|| format!("FUNDS TRANSFER {kind_text}"));
    let entries = books::post(
        tx,
        &Posting {
            journal,
            reference: &id,
            booking_date: today,
            value_date,
            narrative: &narrative,
            legs,
        },
    )
    .await?;
    if let Some(plan) = &repayment {
        loans::apply_repayment(tx, plan).await?;
    }
    if let Some(lock_id) = lock_id {
        end_lock(tx, lock_id, "CAPTURED", journal).await?;
    }

    let mut record = Record::default();
    record
        .field("TRANSACTION.TYPE", kind_text)
        .field("DEBIT.ACCT.NO", debit_id.clone())
        .field("DEBIT.CURRENCY", currency)
        .field("DEBIT.AMOUNT", amount_text(amount))
        .field("DEBIT.VALUE.DATE", date_text(Some(value_date)))
        .field("CREDIT.ACCT.NO", credit_id.clone());
    for (n, line) in details.iter().enumerate() {
        record.multi("PAYMENT.DETAILS", n + 1, line.clone());
    }
    for name in [
        "BEN.ACCT.NO",
        "BEN.BANK",
        "BEN.CUSTOMER",
        "END.TO.END.ID",
        "LOCKED.EVENT.ID",
        "OVERRIDE.ACCEPTED",
    ] {
        if let Some(value) = input.text(name) {
            record.field(name, value);
        }
    }
    for (n, entry) in entries.iter().enumerate() {
        record.multi("STMT.NOS", n + 1, entry.to_string());
    }
    record.field("RECORD.STATUS", "AUTH");
    let fields = record.into_fields();
    let stored: Vec<StoredField> = fields
        .iter()
        .map(|f| (f.name.clone(), f.multi_value, f.sub_value, f.value.clone()))
        .collect();
    let stored = serde_json::to_string(&stored).map_err(|e| corrupt(e.to_string()))?;
    tx.execute(
        "INSERT INTO funds_transfers (id, record, journal) VALUES ($1, $2, $3)",
        &[&id, &stored, &journal],
    )
    .await?;
    Ok(Answer::done(id, fields))
}

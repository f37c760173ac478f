//! Money movements on the legacy core: cash in and out, and transfers between accounts,
//! each an idempotent funds transfer (FT) found again by its request id after a lost answer.

use super::*;

impl Adapter {
    /// A `FUNDS.TRANSFER` for a canonical request: applied once, whatever is lost on the way.
    /// Answers whether the core had it already.
    pub(crate) async fn transfer_funds(&self, posting: Posting<'_>) -> Result<(String, bool)> {
        let Posting {
            request_id,
            kind,
            debit,
            credit,
            currency,
            amount,
            mut extra,
        } = posting;
        let id = ft_id(request_id);
        let mut fields = vec![
            field("TRANSACTION.TYPE", kind),
            field("DEBIT.ACCT.NO", debit),
            field("DEBIT.CURRENCY", currency),
            field("DEBIT.AMOUNT", legacy_amount(amount)?),
        ];
        if kind != "OT" {
            fields.push(field("CREDIT.ACCT.NO", credit));
        }
        let lock = extra
            .iter()
            .find(|f| f.name == "LOCKED.EVENT.ID")
            .map(|f| f.value.clone());
        let lock = lock.as_deref();
        fields.append(&mut extra);
        let done = self.legacy.input_new("FUNDS.TRANSFER", &id, fields).await?;
        let record = &done.record;
        let same = record.field("DEBIT.ACCT.NO") == Some(debit)
            && (kind == "OT" || record.field("CREDIT.ACCT.NO") == Some(credit))
            && record.field("TRANSACTION.TYPE").unwrap_or("AC") == kind
            && record.field("LOCKED.EVENT.ID").unwrap_or_default() == lock.unwrap_or_default()
            && record
                .field("DEBIT.AMOUNT")
                .and_then(|a| formats::parse_legacy_amount(a).ok())
                == Some(amount);
        if !same {
            return Err(AdapterError::ExistsWithDifferent {
                request_id: request_id.to_string(),
            });
        }
        Ok((id, done.existed))
    }

    pub(in crate::adapter) async fn cash(
        &self,
        r: pb::CashRequest,
        deposit: bool,
    ) -> Result<pb::Movement> {
        let request_id = parse_request_id(&r.request_id)?;
        let operation = if deposit { "deposit" } else { "withdrawal" };
        let fp = fingerprint(
            operation,
            &[
                &r.account_id,
                &fingerprint_amount(&r.amount, &r.currency),
                &r.currency,
                &r.description,
                &r.channel,
            ],
        );
        self.once(request_id, fp, async {
            let row = self.account_in(&r.account_id, &r.currency).await?;
            let amount = parse_amount(&r.amount, &row.currency)?;
            let category = match r.channel.as_str() {
                "" | "cash" => CASH_CATEGORY,
                "clearing" => CLEARING_CATEGORY,
                "inter_core" => INTER_CORE_CATEGORY,
                other => {
                    return Err(AdapterError::invalid(format!(
                        "channel {other:?} is not cash, clearing or inter_core"
                    )));
                }
            };
            let bank = internal_account(&row.currency, category)?;
            let (debit, credit) = if deposit {
                (bank.as_str(), row.account_no.as_str())
            } else {
                (row.account_no.as_str(), bank.as_str())
            };
            let mut extra = Vec::new();
            check_text(&r.description, "description")?;
            if !r.description.is_empty() {
                extra.push(field("PAYMENT.DETAILS", r.description.clone()));
            }
            let (entry_id, existed) = self
                .transfer_funds(Posting {
                    request_id,
                    kind: "AC",
                    debit,
                    credit,
                    currency: &row.currency,
                    amount,
                    extra,
                })
                .await?;
            let after = self.legacy_account(&row.account_no).await?;
            Ok(pb::Movement {
                request_id: r.request_id.clone(),
                account_id: r.account_id.clone(),
                kind: if deposit { "deposit" } else { "withdrawal" }.to_owned(),
                amount: money(amount),
                currency: row.currency.clone(),
                entry_id,
                recorded_at: now_text(),
                balances_after: Some(after.balances),
                replayed: existed,
            })
        })
        .await
    }

    /// A transfer between two adapter accounts within the source product's limits; answers
    /// (entry id, the source's balances after, whether the core had it already).
    pub(crate) async fn transfer_between(&self, ask: &TransferAsk<'_>) -> Result<Moved> {
        let request_id = parse_request_id(ask.request_id)?;
        let (from_account_id, to_account_id, currency, description) = (
            ask.from_account_id,
            ask.to_account_id,
            ask.currency,
            ask.description,
        );
        let amount_text_in = ask.amount;
        let from = self.account_row(from_account_id).await?;
        let to = self.account_row(to_account_id).await?;
        if from.account_id == to.account_id {
            return Err(AdapterError::invalid(
                "from_account_id and to_account_id are the same account",
            ));
        }
        check_currency(currency)?;
        if currency != from.currency || currency != to.currency {
            return Err(AdapterError::CurrencyMismatch {
                message: format!(
                    "the accounts are in {} and {}, the request in {currency}",
                    from.currency, to.currency
                ),
            });
        }
        let amount = parse_amount(amount_text_in, currency)?;
        let product = self
            .store
            .product(&from.product_code, from.product_version)
            .await?;
        let daily = product.as_ref().and_then(|p| p.daily_transfer_limit);
        if let Some(limit) = product.as_ref().and_then(|p| p.per_transfer_limit)
            && amount > limit
        {
            return Err(AdapterError::TransferLimitExceeded {
                limit: limit.normalize().to_string(),
            });
        }
        if let Some(limit) = daily {
            self.store
                .reserve(
                    request_id,
                    from.account_id,
                    Utc::now().date_naive(),
                    amount,
                    limit,
                )
                .await?;
        }
        let mut extra = Vec::new();
        check_text(description, "description")?;
        if !description.is_empty() {
            extra.push(field("PAYMENT.DETAILS", description));
        }
        let outcome = self
            .transfer_funds(Posting {
                request_id,
                kind: "AC",
                debit: &from.account_no,
                credit: &to.account_no,
                currency,
                amount,
                extra,
            })
            .await;
        let (entry_id, existed) = match outcome {
            Ok(done) => done,
            Err(error) => {
                // Refused by the core for a business reason (final: see `Legacy::input`),
                // so nothing was booked under this id: the reservation is given back. Any
                // other failure keeps it, so the limit can never be exceeded.
                let refused = matches!(
                    error.code(),
                    "insufficient_funds"
                        | "account_frozen"
                        | "account_closed"
                        | "currency_mismatch"
                        | "invalid_argument"
                        | "unknown_account"
                );
                if daily.is_some() && refused {
                    self.store.unreserve(request_id).await?;
                }
                return Err(error);
            }
        };
        let after = self.legacy_account(&from.account_no).await?;
        Ok(Moved {
            entry_id,
            balances: after.balances,
            existed,
            amount,
        })
    }

    /// A transfer between two adapter accounts, once per request id: `operation` names the
    /// contract's method (its answers are kept apart), `answer` builds its answer.
    pub(crate) async fn transfer_once<T>(
        &self,
        operation: &str,
        ask: TransferAsk<'_>,
        answer: impl FnOnce(Moved) -> T,
    ) -> Result<T>
    where
        T: Kept,
    {
        let request_id = parse_request_id(ask.request_id)?;
        let fp = fingerprint(
            operation,
            &[
                ask.from_account_id,
                ask.to_account_id,
                &fingerprint_amount(ask.amount, ask.currency),
                ask.currency,
                ask.description,
            ],
        );
        self.once(request_id, fp, async {
            Ok(answer(self.transfer_between(&ask).await?))
        })
        .await
    }

    /// The account, which must be in `currency`.
    pub(crate) async fn account_in(&self, account_id: &str, currency: &str) -> Result<AccountRow> {
        let row = self.account_row(account_id).await?;
        check_currency(currency)?;
        if currency != row.currency {
            return Err(AdapterError::CurrencyMismatch {
                message: format!(
                    "the account is in {}, the request in {currency}",
                    row.currency
                ),
            });
        }
        Ok(row)
    }

    pub(in crate::adapter) async fn transfer(
        &self,
        r: pb::TransferRequest,
    ) -> Result<pb::TransferResult> {
        self.transfer_once("transfer", TransferAsk::from(&r), |moved| {
            pb::TransferResult {
                request_id: r.request_id.clone(),
                from_account_id: r.from_account_id.clone(),
                to_account_id: r.to_account_id.clone(),
                amount: money(moved.amount),
                currency: r.currency.clone(),
                entry_id: moved.entry_id,
                recorded_at: now_text(),
                balances_after: Some(moved.balances),
                replayed: moved.existed,
            }
        })
        .await
    }
}

/// A canonical transfer request (Deposits/Transfer and Payments/InternalTransfer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransferAsk<'a> {
    pub request_id: &'a str,
    pub from_account_id: &'a str,
    pub to_account_id: &'a str,
    pub amount: &'a str,
    pub currency: &'a str,
    pub description: &'a str,
}

/// `TransferAsk::from(&request)` for the contracts' transfer requests, whose fields carry the
/// same names.
macro_rules! transfer_ask_from {
    ($($request:ty),+ $(,)?) => {$(
        impl<'a> From<&'a $request> for TransferAsk<'a> {
            fn from(r: &'a $request) -> TransferAsk<'a> {
                TransferAsk {
                    request_id: &r.request_id,
                    from_account_id: &r.from_account_id,
                    to_account_id: &r.to_account_id,
                    amount: &r.amount,
                    currency: &r.currency,
                    description: &r.description,
                }
            }
        }
    )+};
}

transfer_ask_from!(
    pb::TransferRequest,
    corebank_api::payments::v1::InternalTransferRequest,
);

/// What a transfer did.
#[derive(Debug, Clone)]
pub(crate) struct Moved {
    pub entry_id: String,
    /// The source account's balances after it.
    pub balances: pb::Balances,
    /// The core had it already (a repeat).
    pub existed: bool,
    pub amount: Decimal,
}

/// One `FUNDS.TRANSFER` the adapter sends for a canonical request.
#[derive(Debug, Clone)]
pub(crate) struct Posting<'a> {
    pub request_id: Uuid,
    /// `AC` or `OT`.
    pub kind: &'a str,
    pub debit: &'a str,
    /// Ignored for `OT` (the core credits its clearing account).
    pub credit: &'a str,
    pub currency: &'a str,
    pub amount: Decimal,
    pub extra: Vec<corebank_legacy_ofs::Field>,
}

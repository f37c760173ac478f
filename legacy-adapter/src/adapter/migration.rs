//! `corebank.legacy.v1.LegacyMigration`: the legacy side of moving an account to the modern
//! core (ADR 0013), over the core's `AC.ACCOUNT.MIGRATION` (freeze, empty, thaw). Every
//! action is idempotent by the account's state in the core, so a lost answer is settled by
//! asking the core what the account's state is now ([`Probe::field_is`]).

use corebank_api::legacy::v1 as pb;
use corebank_api::legacy::v1::legacy_migration_server::{LegacyMigration, LegacyMigrationServer};
use corebank_legacy_ofs::{Field, Function, Response};
use rust_decimal::Decimal;

use super::error::AdapterError;
use super::legacy::{self, Probe};
use super::store::HoldRow;
use super::{
    Adapter, Result, adapter_service, amount_text, canonical_amount, check_text, column,
    derived_uuid, field, internal_account, iso_date, legacy_amount, legacy_date_of, lock_lapses,
    money,
};

const APPLICATION: &str = "AC.ACCOUNT.MIGRATION";

/// What the caller asks of the account, the core's `ACTION`, and the `STATUS` it leaves.
#[derive(Debug, Clone, Copy)]
enum Action {
    Freeze,
    Thaw,
    Empty,
    Restore,
}

impl Action {
    fn text(self) -> &'static str {
        match self {
            Action::Freeze => "FREEZE",
            Action::Thaw => "THAW",
            Action::Empty => "EMPTY",
            Action::Restore => "RESTORE",
        }
    }

    fn leaves(self) -> &'static str {
        match self {
            Action::Freeze | Action::Restore => "MIGRATING",
            Action::Thaw => "OPEN",
            Action::Empty => "MIGRATED",
        }
    }
}

impl Adapter {
    async fn move_action(&self, account_id: &str, action: Action) -> Result<pb::MovingAccount> {
        self.move_action_with(account_id, action, Vec::new()).await
    }

    async fn move_action_with(
        &self,
        account_id: &str,
        action: Action,
        fields: Vec<Field>,
    ) -> Result<pb::MovingAccount> {
        let row = self.account_row(account_id).await?;
        let mut all = vec![field("ACTION", action.text())];
        all.extend(fields);
        let request = legacy::request(APPLICATION, Function::Input, &row.account_no, all);
        let probe = Probe::field_is(
            APPLICATION,
            &row.account_no,
            "STATUS",
            action.leaves().to_owned(),
        );
        let done = self.legacy.input(request, &probe).await?;
        if let Action::Restore = action {
            // The locks placed again are holds channels may release: map them.
            let ids = column(&done.record, "LOCK.ID");
            let days = column(&done.record, "LOCK.TO.DATE");
            for (i, lock) in ids.iter().enumerate().filter(|(_, id)| !id.is_empty()) {
                let to_date = days
                    .get(i)
                    .filter(|day| !day.is_empty())
                    .map(|day| corebank_legacy_ofs::formats::parse_legacy_date(day))
                    .transpose()
                    .map_err(|_| {
                        AdapterError::internal(format!(
                            "{APPLICATION} answered lock {lock} with a bad TO.DATE"
                        ))
                    })?;
                self.store
                    .map_hold(&HoldRow {
                        hold_id: derived_uuid("hold", lock),
                        lock_id: lock.clone(),
                        account_id: row.account_id,
                        reason: "moved back from the other core".to_owned(),
                        expires_at: lock_lapses(to_date),
                        placed_at: chrono::Utc::now(),
                    })
                    .await?;
            }
        }
        moving_account(account_id, &row.account_no, &done.record)
    }
}

/// The core's migration suspense account category (`legacy-adapter/README.md`).
const CATEGORY_MIGRATION_SUSPENSE: u32 = 12_900;

impl Adapter {
    /// `RESTORE` of a migrated account: its balance and holds back from the other core.
    async fn restore(&self, r: pb::RestoreAccountRequest) -> Result<pb::MovingAccount> {
        let amount = canonical_amount(&r.amount)?;
        if amount < rust_decimal::Decimal::ZERO {
            return Err(AdapterError::invalid(
                "amount: an overdrawn account cannot move back to the legacy core",
            ));
        }
        let mut fields = vec![field("AMOUNT", legacy_amount(amount)?)];
        for (index, hold) in r.holds.iter().enumerate() {
            let position =
                u16::try_from(index + 1).map_err(|_| AdapterError::invalid("holds: too many"))?;
            check_text(&hold.reference, "holds.reference")?;
            let multi = |name: &str, value: String| Field {
                name: name.to_owned(),
                multi_value: position,
                sub_value: 1,
                value,
            };
            fields.push(multi(
                "LOCK.AMOUNT",
                legacy_amount(canonical_amount(&hold.amount)?)?,
            ));
            let to_date = if hold.to_date.is_empty() {
                String::new()
            } else {
                legacy_date_of(&hold.to_date, "holds.to_date")?
            };
            fields.push(multi("LOCK.TO.DATE", to_date));
            fields.push(multi("LOCK.DESCRIPTION", hold.reference.clone()));
        }
        self.move_action_with(&r.account_id, Action::Restore, fields)
            .await
    }

    /// The core's migration suspense account of `currency`, as it stands now.
    async fn suspense(&self, currency: &str, account: &str) -> Result<pb::Suspense> {
        let category = match account {
            "" | "migration" => CATEGORY_MIGRATION_SUSPENSE,
            "inter_core" => crate::adapter::INTER_CORE_CATEGORY,
            other => {
                return Err(AdapterError::invalid(format!(
                    "account {other:?} is not migration or inter_core"
                )));
            }
        };
        let account_number = internal_account(currency, category)?;
        let account = self.legacy_account(&account_number).await?;
        Ok(pb::Suspense {
            currency: currency.to_owned(),
            account_number,
            balance: account.balances.posted,
        })
    }
}

/// The core's `AC.ACCOUNT.MIGRATION` record as the canonical answer.
fn moving_account(
    account_id: &str,
    account_no: &str,
    record: &Response,
) -> Result<pb::MovingAccount> {
    let text = |name: &str| record.field(name).unwrap_or_default().to_owned();
    let state = match text("STATUS").as_str() {
        "OPEN" => "open",
        "MIGRATING" => "moving",
        "MIGRATED" => "migrated",
        "RESTRICTED" => "restricted",
        other => {
            return Err(AdapterError::internal(format!(
                "{APPLICATION} {account_no} answered STATUS {other:?}"
            )));
        }
    };
    let number = |name: &str| -> Result<u64> {
        let value = text(name);
        if value.is_empty() {
            return Ok(0);
        }
        value.parse().map_err(|_| {
            AdapterError::internal(format!(
                "{APPLICATION} {account_no} answered {name} {value:?}"
            ))
        })
    };
    let ids = column(record, "LOCK.ID");
    let amounts = column(record, "LOCK.AMOUNT");
    let days = column(record, "LOCK.TO.DATE");
    let mut held = Decimal::ZERO;
    let mut holds = Vec::with_capacity(ids.len());
    for (i, lock) in ids.iter().enumerate().filter(|(_, id)| !id.is_empty()) {
        let amount = canonical_amount(amounts.get(i).map_or("", String::as_str))?;
        held += amount;
        holds.push(pb::ExportedHold {
            hold_id: derived_uuid("hold", lock).to_string(),
            legacy_id: lock.clone(),
            amount: money(amount),
            to_date: iso_date(days.get(i).map_or("", String::as_str))?,
        });
    }
    let moved = text("MOVED.AMOUNT");
    Ok(pb::MovingAccount {
        account_id: account_id.to_owned(),
        legacy_account_number: account_no.to_owned(),
        state: state.to_owned(),
        product_code: text("PRODUCT.CODE"),
        currency: text("CURRENCY"),
        posted: amount_text(&text("WORKING.BALANCE"))?,
        held: money(held),
        holds,
        journal: number("JOURNAL")?,
        moved: if moved.is_empty() {
            String::new()
        } else {
            amount_text(&moved)?
        },
        suspense_account: text("SUSPENSE.ACCT"),
        released_hold_ids: column(record, "RELEASED.LOCK")
            .iter()
            .filter(|lock| !lock.is_empty())
            .map(|lock| derived_uuid("hold", lock).to_string())
            .collect(),
        emptied_journal: number("EMPTIED.JOURNAL")?,
    })
}

adapter_service! {
    /// The tonic service (for the migration component only).
    MigrationService: LegacyMigration, LegacyMigrationServer {
        fn freeze_account(pb::AccountMoveRequest) -> pb::MovingAccount =
            |adapter, r| adapter.move_action(&r.account_id, Action::Freeze).await;
        fn thaw_account(pb::AccountMoveRequest) -> pb::MovingAccount =
            |adapter, r| adapter.move_action(&r.account_id, Action::Thaw).await;
        fn empty_account(pb::AccountMoveRequest) -> pb::MovingAccount =
            |adapter, r| adapter.move_action(&r.account_id, Action::Empty).await;
        fn restore_account(pb::RestoreAccountRequest) -> pb::MovingAccount =
            |adapter, r| adapter.restore(r).await;
        fn get_suspense(pb::GetSuspenseRequest) -> pb::Suspense =
            |adapter, r| adapter.suspense(&r.currency, &r.account).await;
    }
}

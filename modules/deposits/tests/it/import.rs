//! Importing an account moved from another core (`corebank.deposits.v1.DepositsMigration`):
//! its balance against the migration clearing account, its holds with their remaining time,
//! its accrued interest, once, for the migration component only.

use chrono::{SecondsFormat, TimeDelta};
use corebank_api::deposits::v1 as pb;
use corebank_api::deposits::v1::deposits_migration_client::DepositsMigrationClient;
use corebank_api::ledger::v1 as lpb;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_service::contract::error_code;
use uuid::Uuid;

use crate::common::{id, start};

const PRODUCT: &str = "IMPORTED";

/// What a case changes in a good request to make it bad.
type Spoil = fn(&mut pb::ImportAccountRequest);

fn hold(reference: &str, amount: &str, expires_at: &str) -> pb::HoldToImport {
    pb::HoldToImport {
        reference: reference.to_owned(),
        amount: amount.to_owned(),
        expires_at: expires_at.to_owned(),
    }
}

#[tokio::test]
async fn an_imported_account_keeps_its_balance_holds_and_accrued_interest_once() {
    let h = start().await;
    h.create_product(PRODUCT, |_| {}).await;
    let now = corebank_kernel::Clock::now(h.clock.as_ref());
    let time = |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let request = pb::ImportAccountRequest {
        request_id: id(),
        customer_id: "cust-imported".to_owned(),
        product_code: PRODUCT.to_owned(),
        currency: "EUR".to_owned(),
        opened_on: "2024-03-01".to_owned(),
        opening_balance: "120.50".to_owned(),
        accrued_interest: "0.37".to_owned(),
        holds: vec![
            hold("ACLK1", "30.00", &time(now + TimeDelta::days(2))),
            hold("ACLK2", "5.00", &time(now - TimeDelta::hours(1))),
            hold("ACLK3", "10.00", ""),
        ],
        reference: "EUR1000000119".to_owned(),
    };

    // Only the migration component imports.
    let refused = DepositsMigrationClient::new(h.deposits_app.channel("gateway", "deposits"))
        .import_account(request.clone())
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "permission_denied");
    let mut migration =
        DepositsMigrationClient::new(h.deposits_app.channel("migration", "deposits"));
    let imported = migration
        .import_account(request.clone())
        .await
        .unwrap()
        .into_inner();
    let account = imported.account.clone().unwrap();
    let balances = account.balances.clone().unwrap();
    assert_eq!(
        (
            balances.posted.as_str(),
            balances.held.as_str(),
            balances.available.as_str(),
            balances.accrued_interest.as_str()
        ),
        ("120.50", "40.00", "80.50", "0.37")
    );
    assert_eq!(account.opened_on, "2024-03-01");
    let placed: Vec<(&str, bool)> = imported
        .holds
        .iter()
        .map(|hold| (hold.reference.as_str(), !hold.hold_id.is_empty()))
        .collect();
    assert_eq!(
        placed,
        vec![("ACLK1", true), ("ACLK2", false), ("ACLK3", true)],
        "a hold that lapsed while the account moved is not placed"
    );
    let kept = h
        .deposits
        .release_hold(&id(), &imported.holds[2].hold_id)
        .await
        .unwrap();
    assert_eq!(kept.reason, "ACLK3");

    // The opening balance came from the migration clearing account.
    let clearing: Uuid = h
        .deposits_value(
            "SELECT ledger_account_id FROM gl_accounts WHERE role = 'migration_clearing' AND currency = 'EUR'",
            &[],
        )
        .await;
    let entry = LedgerClient::new(h.ledger_app.channel("deposits", "ledger"))
        .get_entry(lpb::GetEntryRequest {
            key: Some(lpb::get_entry_request::Key::EntryId(
                imported.opening_entry_id.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let debited: Vec<&str> = entry
        .legs
        .iter()
        .filter(|leg| leg.direction == i32::from(lpb::Direction::Debit))
        .map(|leg| leg.account_id.as_str())
        .collect();
    assert_eq!(debited, vec![clearing.to_string()]);
    assert_eq!(entry.external_ref, "EUR1000000119");

    // Again: nothing written twice, the same answer.
    let again = migration
        .import_account(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.holds, imported.holds);
    assert_eq!(again.account.unwrap().balances.unwrap().posted, "120.50");
    let mut changed = request.clone();
    changed.opening_balance = "120.51".to_owned();
    let different = migration.import_account(changed).await.unwrap_err();
    assert_eq!(error_code(&different), "exists_with_different_content");

    // Bad input names the field and changes nothing.
    let cases: [(Spoil, &str); 4] = [
        (
            |r| r.holds[0].amount = "-1.00".to_owned(),
            "holds[0].amount",
        ),
        (
            |r| r.holds[1].expires_at = "tomorrow".to_owned(),
            "holds[1].expires_at",
        ),
        (|r| r.opened_on = "01.03.2024".to_owned(), "opened_on"),
        (
            |r| r.accrued_interest = "-0.01".to_owned(),
            "accrued_interest",
        ),
    ];
    for (spoil, field) in cases {
        let mut bad = request.clone();
        bad.request_id = id();
        spoil(&mut bad);
        let refused = migration.import_account(bad).await.unwrap_err();
        assert_eq!(
            error_code(&refused),
            "invalid_argument",
            "{field}: {refused:?}"
        );
        assert!(refused.message().contains(field), "{field}: {refused:?}");
    }
    let mut other_currency = request.clone();
    other_currency.request_id = id();
    other_currency.currency = "USD".to_owned();
    let mismatch = migration.import_account(other_currency).await.unwrap_err();
    assert_eq!(error_code(&mismatch), "currency_mismatch");
    let accounts: i64 = h.deposits_value("SELECT count(*) FROM accounts", &[]).await;
    assert_eq!(accounts, 1, "a refused import opens nothing");
}

#[tokio::test]
async fn an_account_moved_back_releases_its_holds_and_sweeps_its_balance_to_clearing_once() {
    let h = start().await;
    h.create_product(PRODUCT, |_| {}).await;
    let account = h.open_funded(PRODUCT, "80.00").await;
    let mut client = h.client().await;
    let hold = client
        .place_hold(pb::PlaceHoldRequest {
            request_id: id(),
            account_id: account.clone(),
            amount: "30.00".to_owned(),
            currency: "EUR".to_owned(),
            reason: "ACLK0000000007".to_owned(),
            expires_in_seconds: 3_600,
        })
        .await
        .unwrap()
        .into_inner();
    let mut migration =
        DepositsMigrationClient::new(h.deposits_app.channel("migration", "deposits"));
    let request = pb::ExportAccountRequest {
        request_id: id(),
        account_id: account.clone(),
        reference: "EUR1000000119".to_owned(),
    };
    let exported = migration
        .export_account(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exported.paid_out, "80.00");
    assert_eq!(exported.account.unwrap().status, "closed");
    assert_eq!(exported.holds.len(), 1);
    assert_eq!(
        (
            exported.holds[0].hold_id.as_str(),
            exported.holds[0].amount.as_str(),
            exported.holds[0].reason.as_str()
        ),
        (hold.id.as_str(), "30.00", "ACLK0000000007")
    );
    assert!(!exported.holds[0].expires_at.is_empty());
    let clearing = migration
        .get_migration_clearing(pb::GetMigrationClearingRequest {
            currency: "EUR".to_owned(),
            account: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        clearing.balance, "-80.00",
        "the clearing account was credited"
    );
    let again = migration
        .export_account(request)
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(
        (again.paid_out, again.holds),
        (exported.paid_out, exported.holds)
    );
    let deposit = h.cash_refused("deposit", &account, "1.00").await;
    assert_eq!(deposit.code(), "account_closed");
}

#[tokio::test]
async fn accounts_imported_together_each_answer_as_their_own_import_would() {
    let h = start().await;
    h.create_product(PRODUCT, |_| {}).await;
    let now = corebank_kernel::Clock::now(h.clock.as_ref());
    let in_two_days = (now + TimeDelta::days(2)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let import =
        |customer: &str, balance: &str, holds: Vec<pb::HoldToImport>| pb::ImportAccountRequest {
            request_id: id(),
            customer_id: customer.to_owned(),
            product_code: PRODUCT.to_owned(),
            currency: "EUR".to_owned(),
            opened_on: "2023-06-15".to_owned(),
            opening_balance: balance.to_owned(),
            accrued_interest: "0".to_owned(),
            holds,
            reference: format!("EUR-{customer}"),
        };
    let funded = import(
        "cust-a",
        "75.25",
        vec![hold("ACLKA", "20.00", &in_two_days)],
    );
    let mut in_dollars = import("cust-b", "10.00", Vec::new());
    in_dollars.currency = "USD".to_owned();
    let empty = import("cust-c", "0", Vec::new());
    let mut twice = funded.clone();
    twice.customer_id = "cust-a-again".to_owned();
    let mut unreadable = import("cust-d", "1.00", Vec::new());
    unreadable.opened_on = "yesterday".to_owned();
    let batch = vec![
        funded.clone(),
        in_dollars.clone(),
        empty.clone(),
        twice,
        unreadable,
    ];

    let mut migration =
        DepositsMigrationClient::new(h.deposits_app.channel("migration", "deposits"));
    let answered = migration
        .import_accounts(pb::ImportAccountsRequest {
            accounts: batch.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let codes: Vec<&str> = answered.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(
        codes,
        vec![
            "",
            "currency_mismatch",
            "",
            "invalid_argument",
            "invalid_argument"
        ],
        "each import answers for itself, in the order asked: {answered:?}"
    );
    assert!(answered[3].message.contains("request_id"), "{answered:?}");
    assert!(answered[4].message.contains("opened_on"), "{answered:?}");
    assert!(answered[1].imported.is_none());
    let first = answered[0].imported.clone().unwrap();
    let balances = first.account.clone().unwrap().balances.unwrap();
    assert_eq!(
        (balances.posted.as_str(), balances.held.as_str()),
        ("75.25", "20.00")
    );
    assert!(!first.holds[0].hold_id.is_empty());
    let third = answered[2].imported.clone().unwrap();
    assert_eq!(
        third.account.clone().unwrap().balances.unwrap().posted,
        "0.00"
    );
    assert!(
        third.opening_entry_id.is_empty(),
        "a zero balance has no entry"
    );
    let accounts: i64 = h.deposits_value("SELECT count(*) FROM accounts", &[]).await;
    assert_eq!(accounts, 2, "only the accepted imports opened accounts");

    // The same batch again: the accepted ones replayed with their first answers, the
    // refused ones refused again, nothing written twice.
    let again = migration
        .import_accounts(pb::ImportAccountsRequest { accounts: batch })
        .await
        .unwrap()
        .into_inner()
        .results;
    let replayed: Vec<(bool, &str)> = again
        .iter()
        .map(|r| {
            (
                r.imported.as_ref().is_some_and(|i| i.replayed),
                r.code.as_str(),
            )
        })
        .collect();
    assert_eq!(
        replayed,
        vec![
            (true, ""),
            (false, "currency_mismatch"),
            (true, ""),
            (false, "invalid_argument"),
            (false, "invalid_argument")
        ]
    );
    assert_eq!(again[0].imported.as_ref().unwrap().holds, first.holds);
    // One import alone by the same request id is the same import.
    let alone = migration.import_account(funded).await.unwrap().into_inner();
    assert!(alone.replayed);
    assert_eq!(alone.account.unwrap().id, first.account.clone().unwrap().id);
    let accounts: i64 = h.deposits_value("SELECT count(*) FROM accounts", &[]).await;
    assert_eq!(accounts, 2);

    // Both read back at once, in the order asked.
    let mut client = h.client().await;
    let (a, c) = (first.account.unwrap().id, third.account.unwrap().id);
    let read = client
        .get_accounts(pb::GetAccountsRequest {
            account_ids: vec![c.clone(), a.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .accounts;
    let seen: Vec<(&str, &str, &str)> = read
        .iter()
        .map(|account| {
            let balances = account.balances.as_ref().unwrap();
            (
                account.id.as_str(),
                balances.posted.as_str(),
                balances.available.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![(c.as_str(), "0.00", "0.00"), (a.as_str(), "75.25", "55.25")]
    );
    let unknown = Uuid::new_v4().to_string();
    let refused = client
        .get_accounts(pb::GetAccountsRequest {
            account_ids: vec![a, unknown.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "unknown_account");
    assert!(refused.message().contains(&unknown), "{refused:?}");

    // More than a bulk may carry is refused whole.
    let too_many = (0..=corebank_deposits::app::IMPORT_ACCOUNTS_MAX)
        .map(|n| import(&format!("cust-{n}"), "1.00", Vec::new()))
        .collect();
    let refused = migration
        .import_accounts(pb::ImportAccountsRequest { accounts: too_many })
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "invalid_argument");
    assert!(refused.message().contains("accounts"), "{refused:?}");
    let accounts: i64 = h.deposits_value("SELECT count(*) FROM accounts", &[]).await;
    assert_eq!(accounts, 2);
}

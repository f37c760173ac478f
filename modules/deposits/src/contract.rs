//! The contract suite of `corebank.deposits.v1.Deposits`: what any implementation must do,
//! checked only through the gRPC contract, so it can be pointed at this module, at the legacy
//! adapter, or at anything else that claims to serve the contract.
//!
//! Each check returns `Err(what was wrong)`; [`run`] runs them all and reports each.
//! Checks use fresh request ids and their own product codes (`<prefix>-…`), so they can run
//! against a shared server.

use corebank_api::deposits::v1 as pb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_service::contract::{
    ODD_AMOUNTS, ODD_IDS, UNKNOWN_CURRENCY, answer as grpc, expect, refused,
};
use tonic::transport::Channel;
use uuid::Uuid;

pub use corebank_service::contract::CheckResult;

type Client = DepositsClient<Channel>;

fn request_id() -> String {
    Uuid::new_v4().to_string()
}

fn product_request(code: &str) -> pb::CreateProductRequest {
    pb::CreateProductRequest {
        code: code.to_owned(),
        name: format!("Contract {code}"),
        kind: "current".to_owned(),
        currency: "EUR".to_owned(),
        rate_tiers: vec![pb::RateTier {
            from_balance: "0".to_owned(),
            annual_rate: "0.01".to_owned(),
        }],
        day_count: "act_365_fixed".to_owned(),
        posting_frequency: "monthly".to_owned(),
        overdraft_rate: "0".to_owned(),
        // Blank: no minimum balance, overdraft, dormancy or transfer limits.
        ..pb::CreateProductRequest::default()
    }
}

async fn open_funded(
    client: &mut Client,
    prefix: &str,
    amount: &str,
) -> Result<pb::Account, String> {
    let code = format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..8]);
    grpc(
        client.create_product(product_request(&code)).await,
        "CreateProduct",
    )?;
    let account = grpc(
        client
            .open_account(pb::OpenAccountRequest {
                request_id: request_id(),
                customer_id: format!("contract-customer-{prefix}"),
                product_code: code,
                opened_on: String::new(),
            })
            .await,
        "OpenAccount",
    )?;
    if amount != "0" {
        grpc(client.deposit(cash(&account.id, amount)).await, "Deposit")?;
    }
    grpc(
        client
            .get_account(pb::GetAccountRequest {
                account_id: account.id.clone(),
            })
            .await,
        "GetAccount",
    )
}

fn cash(account_id: &str, amount: &str) -> pb::CashRequest {
    pb::CashRequest {
        request_id: request_id(),
        account_id: account_id.to_owned(),
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        description: String::new(),
        channel: String::new(),
    }
}

fn balances(account: &pb::Account) -> (String, String, String) {
    let b = account.balances.clone().unwrap_or_default();
    (b.posted, b.held, b.available)
}

async fn get(client: &mut Client, id: &str) -> Result<pb::Account, String> {
    grpc(
        client
            .get_account(pb::GetAccountRequest {
                account_id: id.to_owned(),
            })
            .await,
        "GetAccount",
    )
}

async fn products_are_versioned(client: &mut Client, prefix: &str) -> Result<(), String> {
    let code = format!(
        "{prefix}-versioned-{}",
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let first = grpc(
        client.create_product(product_request(&code)).await,
        "CreateProduct",
    )?;
    let mut changed = product_request(&code);
    changed.rate_tiers[0].annual_rate = "0.02".to_owned();
    let second = grpc(client.create_product(changed).await, "CreateProduct")?;
    expect(second.version == first.version + 1, || {
        format!("versions {} then {}", first.version, second.version)
    })?;
    let newest = grpc(
        client
            .get_product(pb::GetProductRequest {
                code: code.clone(),
                version: 0,
            })
            .await,
        "GetProduct",
    )?;
    expect(
        newest.version == second.version && newest.rate_tiers[0].annual_rate == "0.02",
        || format!("newest is {newest:?}"),
    )?;
    let mut bad = product_request(&format!("{code}-bad"));
    bad.day_count = "act_999".to_owned();
    refused(client.create_product(bad).await, "invalid_argument")
}

async fn cash_moves_and_balances_follow(client: &mut Client, prefix: &str) -> Result<(), String> {
    let account = open_funded(client, prefix, "100.00").await?;
    expect(account.status == "active", || {
        format!("status {}", account.status)
    })?;
    expect(
        balances(&account) == ("100.00".into(), "0.00".into(), "100.00".into()),
        || format!("after deposit {:?}", balances(&account)),
    )?;
    let movement = grpc(
        client.withdraw(cash(&account.id, "40.50")).await,
        "Withdraw",
    )?;
    expect(
        movement.balances_after.map(|b| b.posted) == Some("59.50".to_owned()),
        || "posted after withdrawal is not 59.50".to_owned(),
    )?;
    let listed = grpc(
        client
            .list_accounts(pb::ListAccountsRequest {
                customer_id: account.customer_id.clone(),
            })
            .await,
        "ListAccounts",
    )?;
    expect(listed.accounts.iter().any(|a| a.id == account.id), || {
        "ListAccounts misses the account".to_owned()
    })?;
    let statement = grpc(
        client
            .get_statement(pb::GetStatementRequest {
                account_id: account.id.clone(),
                cursor: String::new(),
                page_size: 10,
            })
            .await,
        "GetStatement",
    )?;
    expect(
        statement.lines.len() == 2
            && statement.lines.last().map(|l| l.running_balance.as_str()) == Some("59.50"),
        || format!("statement {:?}", statement.lines),
    )
}

async fn refusals_have_stable_codes_and_change_nothing(
    client: &mut Client,
    prefix: &str,
) -> Result<(), String> {
    let account = open_funded(client, prefix, "10.00").await?;
    refused(
        client.withdraw(cash(&account.id, "10.01")).await,
        "insufficient_funds",
    )?;
    refused(
        client.deposit(cash(&account.id, "0")).await,
        "invalid_argument",
    )?;
    refused(
        client.deposit(cash(&account.id, "1.001")).await,
        "invalid_argument",
    )?;
    let mut usd = cash(&account.id, "1.00");
    usd.currency = "USD".to_owned();
    refused(client.deposit(usd).await, "currency_mismatch")?;
    let mut bad_id = cash(&account.id, "1.00");
    bad_id.request_id = "not-a-uuid".to_owned();
    refused(client.deposit(bad_id).await, "invalid_argument")?;
    refused(
        client
            .deposit(cash(&Uuid::new_v4().to_string(), "1.00"))
            .await,
        "unknown_account",
    )?;
    let after = get(client, &account.id).await?;
    expect(balances(&after).0 == "10.00", || {
        format!("refusals changed the balance: {:?}", balances(&after))
    })
}

async fn a_repeated_request_replays(client: &mut Client, prefix: &str) -> Result<(), String> {
    let account = open_funded(client, prefix, "50.00").await?;
    let request = cash(&account.id, "20.00");
    let first = grpc(client.withdraw(request.clone()).await, "Withdraw")?;
    let again = grpc(client.withdraw(request.clone()).await, "Withdraw again")?;
    expect(
        !first.replayed && again.replayed && again.entry_id == first.entry_id,
        || format!("first {first:?}, again {again:?}"),
    )?;
    let mut other = request;
    other.amount = "21.00".to_owned();
    refused(
        client.withdraw(other).await,
        "exists_with_different_content",
    )?;
    let after = get(client, &account.id).await?;
    expect(balances(&after).0 == "30.00", || {
        format!("balance {:?}", balances(&after))
    })
}

async fn a_hold_lowers_the_available_balance(
    client: &mut Client,
    prefix: &str,
) -> Result<(), String> {
    let account = open_funded(client, prefix, "100.00").await?;
    let hold = grpc(
        client
            .place_hold(pb::PlaceHoldRequest {
                request_id: request_id(),
                account_id: account.id.clone(),
                amount: "60.00".to_owned(),
                currency: "EUR".to_owned(),
                reason: "contract".to_owned(),
                expires_in_seconds: 0,
            })
            .await,
        "PlaceHold",
    )?;
    let held = get(client, &account.id).await?;
    expect(
        balances(&held) == ("100.00".into(), "60.00".into(), "40.00".into()),
        || format!("with the hold {:?}", balances(&held)),
    )?;
    refused(
        client.withdraw(cash(&account.id, "40.01")).await,
        "insufficient_funds",
    )?;
    let released = grpc(
        client
            .release_hold(pb::ReleaseHoldRequest {
                request_id: request_id(),
                hold_id: hold.id.clone(),
            })
            .await,
        "ReleaseHold",
    )?;
    expect(released.status == "released", || {
        format!("hold {released:?}")
    })?;
    refused(
        client
            .release_hold(pb::ReleaseHoldRequest {
                request_id: request_id(),
                hold_id: hold.id,
            })
            .await,
        "hold_not_held",
    )?;
    let after = get(client, &account.id).await?;
    expect(balances(&after).2 == "100.00", || {
        format!("after release {:?}", balances(&after))
    })
}

async fn a_transfer_moves_money_between_accounts_once(
    client: &mut Client,
    prefix: &str,
) -> Result<(), String> {
    let from = open_funded(client, prefix, "80.00").await?;
    let to = open_funded(client, prefix, "0").await?;
    let request = pb::TransferRequest {
        request_id: request_id(),
        from_account_id: from.id.clone(),
        to_account_id: to.id.clone(),
        amount: "30.00".to_owned(),
        currency: "EUR".to_owned(),
        description: "contract transfer".to_owned(),
    };
    let first = grpc(client.transfer(request.clone()).await, "Transfer")?;
    let again = grpc(client.transfer(request.clone()).await, "Transfer again")?;
    expect(again.replayed && again.entry_id == first.entry_id, || {
        format!("again {again:?}")
    })?;
    let mut too_much = request;
    too_much.request_id = request_id();
    too_much.amount = "50.01".to_owned();
    refused(client.transfer(too_much).await, "insufficient_funds")?;
    let (from_after, to_after) = (get(client, &from.id).await?, get(client, &to.id).await?);
    expect(
        balances(&from_after).0 == "50.00" && balances(&to_after).0 == "30.00",
        || {
            format!(
                "from {:?}, to {:?}",
                balances(&from_after),
                balances(&to_after)
            )
        },
    )
}

async fn freezing_and_closing(client: &mut Client, prefix: &str) -> Result<(), String> {
    let account = open_funded(client, prefix, "25.00").await?;
    let change = |action: &str| pb::ChangeStatusRequest {
        request_id: request_id(),
        account_id: account.id.clone(),
        reason: format!("contract {action}"),
    };
    let frozen = grpc(
        client.freeze_account(change("freeze")).await,
        "FreezeAccount",
    )?;
    expect(frozen.status == "frozen", || {
        format!("status {}", frozen.status)
    })?;
    refused(
        client.withdraw(cash(&account.id, "1.00")).await,
        "account_frozen",
    )?;
    refused(client.close_account(change("close")).await, "cannot_close")?;
    grpc(
        client.unfreeze_account(change("unfreeze")).await,
        "UnfreezeAccount",
    )?;
    let closed = grpc(client.close_account(change("close")).await, "CloseAccount")?;
    expect(
        closed.status == "closed" && balances(&closed).0 == "0.00",
        || format!("closed {closed:?}"),
    )?;
    refused(
        client.deposit(cash(&account.id, "1.00")).await,
        "account_closed",
    )
}

fn hold_request(account_id: &str, amount: &str) -> pb::PlaceHoldRequest {
    pb::PlaceHoldRequest {
        request_id: request_id(),
        account_id: account_id.to_owned(),
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        reason: "contract".to_owned(),
        expires_in_seconds: 0,
    }
}

fn transfer_request(from: &str, to: &str, amount: &str) -> pb::TransferRequest {
    pb::TransferRequest {
        request_id: request_id(),
        from_account_id: from.to_owned(),
        to_account_id: to.to_owned(),
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        description: String::new(),
    }
}

/// The posted balances of two accounts, each as it must still be.
async fn unchanged(client: &mut Client, accounts: [(&pb::Account, &str); 2]) -> Result<(), String> {
    for (account, posted) in accounts {
        let after = get(client, &account.id).await?;
        expect(
            balances(&after) == (posted.into(), "0.00".into(), posted.into()),
            || format!("refusals changed {}: {:?}", account.id, balances(&after)),
        )?;
    }
    Ok(())
}

async fn odd_amounts_are_invalid_arguments_and_change_nothing(
    client: &mut Client,
    prefix: &str,
) -> Result<(), String> {
    let from = open_funded(client, prefix, "2000.00").await?;
    let to = open_funded(client, prefix, "0").await?;
    for amount in ODD_AMOUNTS {
        let with = |what: &str| format!("{what} of {amount:?}");
        refused(
            client.deposit(cash(&from.id, amount)).await,
            "invalid_argument",
        )
        .map_err(|e| format!("{}: {e}", with("Deposit")))?;
        refused(
            client.withdraw(cash(&from.id, amount)).await,
            "invalid_argument",
        )
        .map_err(|e| format!("{}: {e}", with("Withdraw")))?;
        refused(
            client
                .transfer(transfer_request(&from.id, &to.id, amount))
                .await,
            "invalid_argument",
        )
        .map_err(|e| format!("{}: {e}", with("Transfer")))?;
        refused(
            client.place_hold(hold_request(&from.id, amount)).await,
            "invalid_argument",
        )
        .map_err(|e| format!("{}: {e}", with("PlaceHold")))?;
    }
    // A refused request id was not kept: the same id with a good amount is a new request.
    let mut refused_first = cash(&from.id, "+1");
    refused(
        client.deposit(refused_first.clone()).await,
        "invalid_argument",
    )?;
    refused_first.amount = "1.00".to_owned();
    let done = grpc(
        client.deposit(refused_first).await,
        "Deposit after a refusal",
    )?;
    expect(!done.replayed, || format!("replayed a refusal: {done:?}"))?;
    unchanged(client, [(&from, "2001.00"), (&to, "0.00")]).await
}

async fn odd_ids_are_invalid_arguments_and_change_nothing(
    client: &mut Client,
    prefix: &str,
) -> Result<(), String> {
    let from = open_funded(client, prefix, "100.00").await?;
    let to = open_funded(client, prefix, "0").await?;
    for id in ODD_IDS {
        let with = |what: &str, e: String| format!("{what} with the id {id:?}: {e}");
        let mut odd_request = cash(&from.id, "1.00");
        odd_request.request_id = id.to_owned();
        refused(client.deposit(odd_request).await, "invalid_argument")
            .map_err(|e| with("Deposit (request_id)", e))?;
        refused(client.withdraw(cash(id, "1.00")).await, "invalid_argument")
            .map_err(|e| with("Withdraw (account_id)", e))?;
        refused(
            client
                .transfer(transfer_request(&from.id, id, "1.00"))
                .await,
            "invalid_argument",
        )
        .map_err(|e| with("Transfer (to_account_id)", e))?;
        let mut odd_hold = hold_request(&from.id, "1.00");
        odd_hold.request_id = id.to_owned();
        refused(client.place_hold(odd_hold).await, "invalid_argument")
            .map_err(|e| with("PlaceHold (request_id)", e))?;
        refused(
            client
                .release_hold(pb::ReleaseHoldRequest {
                    request_id: request_id(),
                    hold_id: id.to_owned(),
                })
                .await,
            "invalid_argument",
        )
        .map_err(|e| with("ReleaseHold (hold_id)", e))?;
        refused(
            client
                .get_account(pb::GetAccountRequest {
                    account_id: id.to_owned(),
                })
                .await,
            "invalid_argument",
        )
        .map_err(|e| with("GetAccount", e))?;
        refused(
            client
                .freeze_account(pb::ChangeStatusRequest {
                    request_id: id.to_owned(),
                    account_id: from.id.clone(),
                    reason: "contract".to_owned(),
                })
                .await,
            "invalid_argument",
        )
        .map_err(|e| with("FreezeAccount (request_id)", e))?;
    }
    unchanged(client, [(&from, "100.00"), (&to, "0.00")]).await?;
    let after = get(client, &from.id).await?;
    expect(after.status == "active", || {
        format!("status {}", after.status)
    })
}

async fn an_unknown_currency_is_an_invalid_argument(
    client: &mut Client,
    prefix: &str,
) -> Result<(), String> {
    let from = open_funded(client, prefix, "100.00").await?;
    let to = open_funded(client, prefix, "0").await?;
    let mut deposit = cash(&from.id, "1.00");
    deposit.currency = UNKNOWN_CURRENCY.to_owned();
    refused(client.deposit(deposit).await, "invalid_argument")?;
    let mut withdrawal = cash(&from.id, "1.00");
    withdrawal.currency = UNKNOWN_CURRENCY.to_owned();
    refused(client.withdraw(withdrawal).await, "invalid_argument")?;
    let mut transfer = transfer_request(&from.id, &to.id, "1.00");
    transfer.currency = UNKNOWN_CURRENCY.to_owned();
    refused(client.transfer(transfer).await, "invalid_argument")?;
    let mut hold = hold_request(&from.id, "1.00");
    hold.currency = UNKNOWN_CURRENCY.to_owned();
    refused(client.place_hold(hold).await, "invalid_argument")?;
    unchanged(client, [(&from, "100.00"), (&to, "0.00")]).await
}

/// The same request id with the same amount written another way ("10.0", "10.00") is the
/// same request and replays; another amount ("10.01") is other content.
async fn a_repeat_compares_amounts_as_money(
    client: &mut Client,
    prefix: &str,
) -> Result<(), String> {
    let from = open_funded(client, prefix, "100.00").await?;
    let to = open_funded(client, prefix, "0").await?;
    let first_deposit = cash(&from.id, "10.0");
    let mut second_deposit = first_deposit.clone();
    second_deposit.amount = "10.00".to_owned();
    let mut other_deposit = first_deposit.clone();
    other_deposit.amount = "10.01".to_owned();
    let first = grpc(client.deposit(first_deposit).await, "Deposit 10.0")?;
    let again = grpc(client.deposit(second_deposit).await, "Deposit 10.00")?;
    expect(again.replayed && again.entry_id == first.entry_id, || {
        format!("deposit: first {first:?}, again {again:?}")
    })?;
    refused(
        client.deposit(other_deposit).await,
        "exists_with_different_content",
    )?;

    let first_withdrawal = cash(&from.id, "5.00");
    let mut second_withdrawal = first_withdrawal.clone();
    second_withdrawal.amount = "5.0".to_owned();
    let mut other_withdrawal = first_withdrawal.clone();
    other_withdrawal.amount = "5.01".to_owned();
    let first = grpc(client.withdraw(first_withdrawal).await, "Withdraw 5.00")?;
    let again = grpc(client.withdraw(second_withdrawal).await, "Withdraw 5.0")?;
    expect(again.replayed && again.entry_id == first.entry_id, || {
        format!("withdrawal: first {first:?}, again {again:?}")
    })?;
    refused(
        client.withdraw(other_withdrawal).await,
        "exists_with_different_content",
    )?;

    let first_transfer = transfer_request(&from.id, &to.id, "20");
    let mut second_transfer = first_transfer.clone();
    second_transfer.amount = "20.00".to_owned();
    let mut other_transfer = first_transfer.clone();
    other_transfer.amount = "20.01".to_owned();
    let first = grpc(client.transfer(first_transfer).await, "Transfer 20")?;
    let again = grpc(client.transfer(second_transfer).await, "Transfer 20.00")?;
    expect(again.replayed && again.entry_id == first.entry_id, || {
        format!("transfer: first {first:?}, again {again:?}")
    })?;
    refused(
        client.transfer(other_transfer).await,
        "exists_with_different_content",
    )?;

    let first_hold = hold_request(&from.id, "30.00");
    let mut second_hold = first_hold.clone();
    second_hold.amount = "30.0".to_owned();
    let mut other_hold = first_hold.clone();
    other_hold.amount = "30.01".to_owned();
    let first = grpc(client.place_hold(first_hold).await, "PlaceHold 30.00")?;
    let again = grpc(client.place_hold(second_hold).await, "PlaceHold 30.0")?;
    expect(again.replayed && again.id == first.id, || {
        format!("hold: first {first:?}, again {again:?}")
    })?;
    refused(
        client.place_hold(other_hold).await,
        "exists_with_different_content",
    )?;

    // 100 + 10 - 5 - 20 posted, 30 held; 20 arrived once.
    let (from_after, to_after) = (get(client, &from.id).await?, get(client, &to.id).await?);
    expect(
        balances(&from_after) == ("85.00".into(), "30.00".into(), "55.00".into())
            && balances(&to_after).0 == "20.00",
        || {
            format!(
                "from {:?}, to {:?}",
                balances(&from_after),
                balances(&to_after)
            )
        },
    )
}

/// Runs every check against the implementation behind `client`.
pub async fn run(client: Client, prefix: &str) -> Vec<CheckResult> {
    corebank_service::contract_checks!(client, prefix;
        products_are_versioned,
        cash_moves_and_balances_follow,
        refusals_have_stable_codes_and_change_nothing,
        a_repeated_request_replays,
        a_hold_lowers_the_available_balance,
        a_transfer_moves_money_between_accounts_once,
        freezing_and_closing,
        odd_amounts_are_invalid_arguments_and_change_nothing,
        odd_ids_are_invalid_arguments_and_change_nothing,
        an_unknown_currency_is_an_invalid_argument,
        a_repeat_compares_amounts_as_money,
    )
}

//! The contract suite of `corebank.deposits.v1.Deposits`: what any implementation must do,
//! checked only through the gRPC contract, so it can be pointed at this module, at the legacy
//! adapter, or at anything else that claims to serve the contract.
//!
//! Each check returns `Err(what was wrong)`; [`run`] runs them all and reports each.
//! Checks use fresh request ids and their own product codes (`<prefix>-…`), so they can run
//! against a shared server.

use corebank_api::deposits::v1 as pb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_service::contract::{answer as grpc, expect, refused};
use tonic::transport::Channel;
use uuid::Uuid;

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub outcome: Result<(), String>,
}

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
        minimum_balance: String::new(),
        overdraft_limit: String::new(),
        overdraft_rate: "0".to_owned(),
        dormancy_days: 0,
        per_transfer_limit: String::new(),
        daily_transfer_limit: String::new(),
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

/// Runs every check against the implementation behind `client`.
pub async fn run(client: Client, prefix: &str) -> Vec<CheckResult> {
    let mut results = Vec::new();
    macro_rules! check {
        ($name:ident) => {{
            let mut client = client.clone();
            results.push(CheckResult {
                name: stringify!($name),
                outcome: $name(&mut client, prefix).await,
            });
        }};
    }
    check!(products_are_versioned);
    check!(cash_moves_and_balances_follow);
    check!(refusals_have_stable_codes_and_change_nothing);
    check!(a_repeated_request_replays);
    check!(a_hold_lowers_the_available_balance);
    check!(a_transfer_moves_money_between_accounts_once);
    check!(freezing_and_closing);
    results
}

//! Two gateway processes (`corebank serve gateway`) on one database: a route change approved
//! through one is in force on the other within a second (each polls the active version).

use crate::common;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use corebank_gateway::auth::dev::{self, Role};
use corebank_testkit::TestDatabase;
use serde_json::{Value, json};

/// One gateway process, `corebank serve gateway`, on `addr`.
struct Gateway {
    _process: common::Process,
    addr: SocketAddr,
}

fn spawn(url: &str, home: &std::path::Path) -> Gateway {
    let addr = common::free_addr();
    let mut command = common::serve("gateway", url);
    command
        .env("COREBANK_HOME", home)
        .env("COREBANK_HTTP_ADDR", addr.to_string())
        // The test's gateway trusts the dev keys it made under COREBANK_HOME.
        .env("COREBANK_DEV", "true")
        .env("COREBANK_DB_POOL_SIZE_MAX", "4")
        .env("COREBANK_GATEWAY_ROUTE_POLL_MS", "200")
        // No upstream is called in this test.
        .env("COREBANK_GATEWAY_LEGACY_URL", "https://127.0.0.1:9")
        .env("COREBANK_GATEWAY_MODERN_URL", "https://127.0.0.1:9");
    Gateway {
        _process: common::Process::start("a gateway", command),
        addr,
    }
}

async fn ready(http: &reqwest::Client, gateway: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(answer) = http
            .get(format!("http://{}/readyz", gateway.addr))
            .send()
            .await
            && answer.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "a gateway did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An operator's read of `path` on `gateway`.
async fn admin_get(http: &reqwest::Client, gateway: &Gateway, path: &str, token: &str) -> Value {
    http.get(format!("http://{}{path}", gateway.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The route table version the replica routes with now (its in-memory table, as its
/// decisions show), and the side it picks for cash.
async fn decision(http: &reqwest::Client, gateway: &Gateway, token: &str) -> Value {
    let path = "/admin/v1/routes/decide?product=ANY&operation=cash";
    admin_get(http, gateway, path, token).await
}

async fn active_version(http: &reqwest::Client, gateway: &Gateway, token: &str) -> i64 {
    let answer = admin_get(http, gateway, "/admin/v1/routes", token).await;
    answer["version"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_apply_a_new_route_version_within_a_second() {
    let database = TestDatabase::create().await;
    let home = std::env::temp_dir().join(format!("corebank-replicas-{}", uuid::Uuid::new_v4()));
    // Both processes trust the same dev key.
    let keys = dev::ensure_dev_keys(&home).unwrap();
    let token = |role, subject: &str| {
        dev::mint(
            &keys,
            "corebank-dev",
            role,
            subject,
            None,
            Duration::from_secs(600),
        )
        .unwrap()
    };
    let (operator, approver) = (
        token(Role::Operator, "operator-a"),
        token(Role::Approver, "approver-b"),
    );
    let first = spawn(database.url(), &home);
    let second = spawn(database.url(), &home);
    let http = reqwest::Client::new();
    ready(&http, &first).await;
    ready(&http, &second).await;
    let before = active_version(&http, &second, &operator).await;

    let proposed: Value = http
        .post(format!("http://{}/admin/v1/routes/proposals", first.addr))
        .bearer_auth(&operator)
        .json(&json!({
            "rules": [{ "product": "*", "operation": "cash", "default_side": "modern", "shadow": false }],
            "reason": "replica test",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = proposed["id"].as_str().unwrap().to_owned();
    let approved = http
        .post(format!(
            "http://{}/admin/v1/routes/proposals/{id}/approve",
            first.addr
        ))
        .bearer_auth(&approver)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let approved_at = Instant::now();
    let target = active_version(&http, &first, &operator).await;
    assert!(target > before);
    let decided = loop {
        let decided = decision(&http, &second, &operator).await;
        if decided["version"].as_i64() == Some(target) {
            break decided;
        }
        assert!(
            approved_at.elapsed() < Duration::from_secs(1),
            "the second gateway still routes with {decided} a second after version {target} was approved"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(decided["primary"], "modern", "{decided}");
    eprintln!(
        "the second gateway routed with version {target} {} ms after the approval",
        approved_at.elapsed().as_millis()
    );
    let _ = std::fs::remove_dir_all(&home);
}

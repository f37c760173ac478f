//! `corebank migrate-accounts` and `corebank reconcile`: the migration team's commands. They
//! come in through the one door, the gateway's admin API, with an operator's token, like
//! any operator: a dry run prints the plan; a real migration is proposed, waits for another
//! operator's approval, then is followed account by account with a progress bar and an ETA.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// Where the gateway is and who calls it.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// The gateway's public URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// An operator's token (`corebank token --role operator` in development).
    #[arg(long, env = "COREBANK_TOKEN", hide_env_values = true)]
    token: String,
}

/// How often the commands ask the gateway how things stand.
const POLL: Duration = Duration::from_millis(500);

struct Gateway {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Gateway {
    fn new(args: &GatewayArgs) -> anyhow::Result<Gateway> {
        corebank_service::internal::install_crypto_provider();
        if args.token.trim().is_empty() {
            bail!(
                "no token: pass --token or set COREBANK_TOKEN to an operator's token \
                 (`corebank token --role operator` in development)"
            );
        }
        Ok(Gateway {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            base: args.gateway.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
        })
    }

    /// The answer's status and body; a refusal is an error naming the gateway's code.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request
            .send()
            .await
            .with_context(|| format!("the gateway at {} does not answer", self.base))?;
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            bail!(
                "the gateway refused {path} ({status} {}): {}",
                body["code"].as_str().unwrap_or("?"),
                body["message"].as_str().unwrap_or("")
            );
        }
        Ok((status, body))
    }
}

fn count(body: &Value, field: &str) -> u64 {
    body[field].as_u64().unwrap_or(0)
}

/// The plan or outcome, one line per state and one per account not moved.
fn summary(migration: &Value) -> String {
    let mut lines = vec![format!(
        "{} accounts of {}: {} planned, {} moving, {} moved, {} refused, {} failed",
        migration["accounts"].as_array().map_or(0, Vec::len),
        migration["product_code"].as_str().unwrap_or(""),
        count(migration, "planned"),
        count(migration, "moving"),
        count(migration, "moved"),
        count(migration, "refused"),
        count(migration, "failed"),
    )];
    for account in migration["accounts"].as_array().into_iter().flatten() {
        let state = account["state"].as_str().unwrap_or("");
        if state == "refused" || state == "failed" {
            lines.push(format!(
                "  {} {state}: {}",
                account["account_id"].as_str().unwrap_or(""),
                account["reason"].as_str().unwrap_or("")
            ));
        }
    }
    lines.join("\n")
}

/// `[####      ]`: `done` of `total` as a bar of 30.
pub fn bar(done: u64, total: u64) -> String {
    let width = 30_u64;
    let filled = (done * width)
        .checked_div(total)
        .map_or(width, |filled| filled.min(width));
    let bar: String = (0..width)
        .map(|i| if i < filled { '#' } else { ' ' })
        .collect();
    format!("[{bar}]")
}

/// `[####    ] done/total, ETA`.
fn progress(done: u64, total: u64, started: Instant) -> String {
    let bar = bar(done, total);
    let eta = if done == 0 || done >= total {
        String::new()
    } else {
        let left_ms = started.elapsed().as_millis() * u128::from(total - done) / u128::from(done);
        format!(", ETA {}s", left_ms.div_ceil(1_000))
    };
    format!("{bar} {done}/{total} accounts{eta}")
}

/// `corebank migrate-accounts`.
pub async fn migrate(
    args: &GatewayArgs,
    product: &str,
    fraction: Option<&str>,
    dry_run: bool,
    reason: &str,
    controls: (Option<u32>, Option<&str>, Option<u32>),
) -> anyhow::Result<()> {
    let gateway = Gateway::new(args)?;
    let mut body = json!({ "product_code": product, "dry_run": dry_run, "reason": reason });
    if let Some(fraction) = fraction {
        body["fraction"] = json!(fraction);
    }
    let (rate_per_s, max_error_ratio, in_flight_max) = controls;
    if let Some(window) = in_flight_max {
        body["in_flight_max"] = json!(window);
    }
    if let Some(rate) = rate_per_s {
        body["rate_per_s"] = json!(rate);
    }
    if let Some(ratio) = max_error_ratio {
        body["max_error_ratio"] = json!(ratio);
    }
    let (_, answer) = gateway
        .call(reqwest::Method::POST, "/admin/v1/migrations", Some(body))
        .await?;
    if dry_run {
        println!("dry run (nothing moved): {}", summary(&answer));
        return Ok(());
    }
    let approval = answer["id"].as_str().unwrap_or_default().to_owned();
    let migration = answer["parameters"]["migration_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eprintln!(
        "proposed migration {migration} of {product} as {approval}; it starts once another \
         operator approves it (POST /admin/v1/approvals/{approval}/approve, scope \
         migrations:approve)"
    );
    loop {
        let (_, proposal) = gateway
            .call(
                reqwest::Method::GET,
                &format!("/admin/v1/approvals/{approval}"),
                None,
            )
            .await?;
        match proposal["status"].as_str().unwrap_or("") {
            "pending" => tokio::time::sleep(POLL).await,
            "approved" if proposal["outcome"].as_str() == Some("done") => break,
            "approved" if proposal["outcome"].is_null() => tokio::time::sleep(POLL).await,
            status => bail!(
                "the proposal {approval} is {status} ({}): nothing was moved",
                proposal["outcome"].as_str().unwrap_or("no outcome")
            ),
        }
    }
    let started = Instant::now();
    let path = format!("/admin/v1/migrations/{migration}");
    let finished = loop {
        let (_, now) = gateway.call(reqwest::Method::GET, &path, None).await?;
        let total =
            u64::try_from(now["accounts"].as_array().map_or(0, Vec::len)).unwrap_or(u64::MAX);
        let done = count(&now, "moved") + count(&now, "refused") + count(&now, "failed");
        let held = match now["status"].as_str() {
            Some("paused") => format!(
                " (paused by {}: {})",
                now["control_changed_by"].as_str().unwrap_or(""),
                now["control_reason"].as_str().unwrap_or("")
            ),
            _ => String::new(),
        };
        eprint!(
            "\rmigrating {product} {}{held}",
            progress(done, total, started)
        );
        let _ = std::io::stderr().flush();
        if now["status"] == "done" {
            eprintln!();
            break now;
        }
        if now["status"] == "stopped" && count(&now, "moving") == 0 {
            eprintln!();
            println!("{}", summary(&now));
            bail!(
                "the migration stopped by itself: {}. Look at its failed accounts (GET {path}), \
                 then resume it under four eyes (POST {path}/resume, approved by another \
                 operator); this command can be left and the migration followed at GET {path}",
                now["control_reason"].as_str().unwrap_or("")
            );
        }
        tokio::time::sleep(POLL).await;
    };
    println!("{}", summary(&finished));
    if count(&finished, "failed") > 0 {
        bail!(
            "some accounts failed to move: see GET {path}, and the sagas of the migration \
             component (the runbook's \"The account migration\")"
        );
    }
    Ok(())
}

/// `corebank reconcile`: exits non-zero when the books disagree.
pub async fn reconcile(args: &GatewayArgs, reason: &str) -> anyhow::Result<()> {
    let gateway = Gateway::new(args)?;
    eprint!("reconciling the two books ...");
    let _ = std::io::stderr().flush();
    let (_, run) = gateway
        .call(
            reqwest::Method::POST,
            "/admin/v1/reconciliation",
            Some(json!({ "reason": reason })),
        )
        .await?;
    eprintln!(" done");
    for result in run["results"].as_array().into_iter().flatten() {
        println!(
            "{} {} {}: expected {}, found {}",
            if result["ok"] == true {
                "ok   "
            } else {
                "BREAK"
            },
            result["rule"].as_str().unwrap_or(""),
            result["subject"].as_str().unwrap_or(""),
            result["expected"].as_str().unwrap_or(""),
            result["actual"].as_str().unwrap_or(""),
        );
    }
    let breaks = count(&run, "breaks");
    println!(
        "run {}: {} checked, {breaks} breaks (evidence: GET /admin/v1/reconciliation/{})",
        run["run_id"].as_str().unwrap_or(""),
        count(&run, "checked"),
        run["run_id"].as_str().unwrap_or("")
    );
    if breaks > 0 {
        bail!("the books disagree: {breaks} breaks");
    }
    Ok(())
}

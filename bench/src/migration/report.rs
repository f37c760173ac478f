//! What `corebank bench migration` reports: the figures of one migration under load, where
//! its moves' and crossings' time went (from the sagas' step history), and the text and JSON
//! report.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::{FREEZE_WAIT_P99_GOAL_MS, MigrationBenchOptions, TARGET_TOTAL_S, Wait};
use crate::harness::cpu::CpuUse;
use crate::harness::figures::{percentile_ms, precise, write_json};
use crate::harness::server::BASELINE_NAME;

/// What one migration under load measured.
#[derive(Debug, Default)]
pub(super) struct Figures {
    pub(super) accounts: u64,
    pub(super) moved: u64,
    pub(super) refused: u64,
    pub(super) failed_moves: u64,
    pub(super) total_s: f64,
    /// Of `total_s`: the start (the plan: the legacy export, the refusals, the stored
    /// moves) and the reconciliation at the end.
    pub(super) plan_s: f64,
    pub(super) reconcile_s: f64,
    pub(super) reconciled: bool,
    pub(super) breaks: u64,
    pub(super) requests: u64,
    pub(super) retried_503: u64,
    pub(super) failed_by_code: BTreeMap<String, u64>,
    pub(super) doubled: u64,
    pub(super) lost: u64,
    /// The three are sorted, for [`percentile_ms`].
    pub(super) freeze_waits_us: Vec<u32>,
    pub(super) frozen_parts_us: Vec<u32>,
    /// The longest waits on a frozen account, longest first.
    pub(super) longest_waits: Vec<Wait>,
    pub(super) latencies_us: Vec<u32>,
    /// Each kind of request's times (operation, the side that served it), sorted.
    pub(super) kinds_us: BTreeMap<String, Vec<u32>>,
    pub(super) steps: Vec<StepTime>,
    /// The same for the transfers across the cores (`cross_side_transfer` sagas).
    pub(super) crossing_steps: Vec<StepTime>,
    /// The CPU from the start to the last move settled, by component.
    pub(super) cpu: CpuUse,
}

impl Figures {
    fn failed_requests(&self) -> u64 {
        self.failed_by_code.values().sum()
    }

    fn freeze_wait_p99_ms(&self) -> f64 {
        percentile_ms(&self.freeze_waits_us, 99)
    }
}

/// `us`, sorted.
pub(super) fn sorted(mut us: Vec<u32>) -> Vec<u32> {
    us.sort_unstable();
    us
}

/// Where a move's time went: per step of its saga (`account_move`, or `accounts_move` for a
/// chunk of accounts, counted once per chunk), its attempts and their mean and
/// p99 duration (from the saga's step history); and, as if they were steps, the move's
/// frozen window (`window`: from the start of `mark` to the end of `unmark`), the wait
/// from the saga's start to its first step (`claim`) and to its mark (`to_mark`: the
/// claim and the drain, while the account's new cross-side transfers are refused before
/// the gateway can hold them), and its whole life (`saga`).
/// `client`'s search path is the migration component's schema.
pub(super) async fn step_times(
    client: &tokio_postgres::Client,
    saga_types: &[&str],
) -> anyhow::Result<Vec<StepTime>> {
    let rows = client
        .query(
            "WITH timed AS ( \
               SELECT s.step_name AS name, \
                      EXTRACT(EPOCH FROM s.ended_at - s.started_at) * 1000 AS ms \
               FROM saga_steps s JOIN saga_instances i ON i.id = s.saga_id \
               WHERE i.saga_type = ANY($1) AND s.direction = 'do' \
               UNION ALL \
               SELECT 'window', EXTRACT(EPOCH FROM MAX(s.ended_at) FILTER (WHERE s.step_name = 'unmark') \
                                     - MIN(s.started_at) FILTER (WHERE s.step_name = 'mark')) * 1000 \
               FROM saga_steps s JOIN saga_instances i ON i.id = s.saga_id \
               WHERE i.saga_type = ANY($1) AND s.direction = 'do' \
               GROUP BY s.saga_id \
               UNION ALL \
               SELECT 'claim', EXTRACT(EPOCH FROM MIN(s.started_at) - MIN(i.created_at)) * 1000 \
               FROM saga_steps s JOIN saga_instances i ON i.id = s.saga_id \
               WHERE i.saga_type = ANY($1) GROUP BY s.saga_id \
               UNION ALL \
               SELECT 'to_mark', EXTRACT(EPOCH FROM MIN(s.started_at) FILTER (WHERE s.step_name = 'mark') \
                                      - MIN(i.created_at)) * 1000 \
               FROM saga_steps s JOIN saga_instances i ON i.id = s.saga_id \
               WHERE i.saga_type = ANY($1) AND s.direction = 'do' GROUP BY s.saga_id \
               UNION ALL \
               SELECT 'saga', EXTRACT(EPOCH FROM MAX(s.ended_at) - MIN(i.created_at)) * 1000 \
               FROM saga_steps s JOIN saga_instances i ON i.id = s.saga_id \
               WHERE i.saga_type = ANY($1) GROUP BY s.saga_id) \
             SELECT name, COUNT(*) AS attempts, AVG(ms)::FLOAT8 AS mean_ms, \
                    (PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY ms))::FLOAT8 AS p99_ms \
             FROM timed WHERE ms IS NOT NULL GROUP BY name",
            &[&saga_types],
        )
        .await
        .context("reading the moves' step history")?;
    let mut steps: Vec<StepTime> = rows
        .iter()
        .map(|row| StepTime {
            name: row.get("name"),
            attempts: row.get("attempts"),
            mean_ms: row.get("mean_ms"),
            p99_ms: row.get("p99_ms"),
        })
        .collect();
    let order = [
        "drain", "mark", "freeze", "book", "empty", "switch", "verify", "unmark", "record", "hold",
        "credit", "capture", "window", "claim", "to_mark", "saga",
    ];
    steps.sort_by_key(|step| order.iter().position(|name| *name == step.name));
    Ok(steps)
}

fn print_steps(steps: &[StepTime]) {
    for step in steps {
        println!(
            "    {:<8} {:>6} {:>9.1} {:>9.1}",
            step.name, step.attempts, step.mean_ms, step.p99_ms
        );
    }
}

fn steps_json(steps: &[StepTime]) -> Value {
    steps
        .iter()
        .map(|step| {
            json!({
                "step": step.name,
                "attempts": step.attempts,
                "mean_ms": step.mean_ms,
                "p99_ms": step.p99_ms,
            })
        })
        .collect()
}

/// One step's time across the moves.
#[derive(Debug)]
pub(super) struct StepTime {
    name: String,
    attempts: i64,
    mean_ms: f64,
    p99_ms: f64,
}

pub(super) fn report(
    options: &MigrationBenchOptions,
    baseline_tps: f64,
    figures: &Figures,
) -> anyhow::Result<()> {
    let throughput = precise(figures.moved) / figures.total_s.max(0.001);
    let p99 = figures.freeze_wait_p99_ms();
    println!();
    println!("{BASELINE_NAME}: {baseline_tps:.0} tps (the baseline, same server, same run)");
    println!(
        "migration: {} accounts ({} moved, {} refused, {} failed) in {:.1} s: {throughput:.1} accounts/s",
        figures.accounts, figures.moved, figures.refused, figures.failed_moves, figures.total_s
    );
    println!(
        "  reconciled: {} ({} breaks); target: {:.0} s for the whole product ({})",
        figures.reconciled,
        figures.breaks,
        TARGET_TOTAL_S,
        if figures.total_s <= TARGET_TOTAL_S {
            "met"
        } else {
            "missed"
        }
    );
    println!(
        "  client requests: {}, retried 503s: {}, failed otherwise: {} {:?}",
        figures.requests,
        figures.retried_503,
        figures.failed_requests(),
        figures.failed_by_code
    );
    println!(
        "  effects applied twice: {} accounts, lost: {} accounts (balances against acknowledged effects)",
        figures.doubled, figures.lost
    );
    println!(
        "  wait on a frozen account: p99 {p99:.0} ms over {} waits (goal {FREEZE_WAIT_P99_GOAL_MS:.0} ms); p50 {:.0} ms",
        figures.freeze_waits_us.len(),
        percentile_ms(&figures.freeze_waits_us, 50)
    );
    println!(
        "  of which the freeze's part (sent again, and held by the gateway; the rest is the request's own service): p50 {:.0} ms, p99 {:.0} ms",
        percentile_ms(&figures.frozen_parts_us, 50),
        percentile_ms(&figures.frozen_parts_us, 99),
    );
    for wait in &figures.longest_waits {
        println!(
            "    a long wait: {:.0} ms, the freeze's part {:.0} ms ({})",
            f64::from(wait.whole_us) / 1000.0,
            f64::from(wait.part_us) / 1000.0,
            wait.kind
        );
    }
    println!(
        "  every client request, frozen or not: p50 {:.0} ms, p99 {:.0} ms",
        percentile_ms(&figures.latencies_us, 50),
        percentile_ms(&figures.latencies_us, 99),
    );
    println!("  client requests by kind (count, p50 and p99 ms):");
    for (kind, us) in &figures.kinds_us {
        println!(
            "    {kind:<30} {:>6} {:>9.1} {:>9.1}",
            us.len(),
            percentile_ms(us, 50),
            percentile_ms(us, 99)
        );
    }
    println!("  a move's steps (attempts, mean and p99 ms; window: from mark to unmark):");
    print_steps(&figures.steps);
    println!("  a transfer across the cores, by step (attempts, mean and p99 ms):");
    print_steps(&figures.crossing_steps);
    println!(
        "  from the start to the last move settled (the plan included, not the reconciliation):"
    );
    figures.cpu.print(figures.moved, "account moved");
    let Some(path) = &options.run.json else {
        return Ok(());
    };
    let document = json!({
        "suite": "migration",
        "baseline": { "name": BASELINE_NAME, "tps": baseline_tps },
        "results": [{
            "name": "migration",
            "throughput_per_s": throughput,
            "accounts": figures.accounts,
            "total_s": figures.total_s,
            "plan_s": figures.plan_s,
            "reconcile_s": figures.reconcile_s,
            "reconciled": figures.reconciled,
            "failed_requests": figures.failed_requests(),
            "doubled_effects": figures.doubled,
            "freeze_wait_p99_ms": p99,
            "moved": figures.moved,
            "refused": figures.refused,
            "failed_moves": figures.failed_moves,
            "lost_effects": figures.lost,
            "requests": figures.requests,
            "retried_503": figures.retried_503,
            "failed_by_code": figures.failed_by_code,
            "freeze_waits": figures.freeze_waits_us.len(),
            "freeze_wait_p50_ms": percentile_ms(&figures.freeze_waits_us, 50),
            "frozen_part_p50_ms": percentile_ms(&figures.frozen_parts_us, 50),
            "frozen_part_p99_ms": percentile_ms(&figures.frozen_parts_us, 99),
            "request_p50_ms": percentile_ms(&figures.latencies_us, 50),
            "request_p99_ms": percentile_ms(&figures.latencies_us, 99),
            "request_kinds": figures
                .kinds_us
                .iter()
                .map(|(kind, us)| json!({
                    "kind": kind,
                    "count": us.len(),
                    "p50_ms": percentile_ms(us, 50),
                    "p99_ms": percentile_ms(us, 99),
                }))
                .collect::<Vec<_>>(),
            "move_steps": steps_json(&figures.steps),
            "crossing_steps": steps_json(&figures.crossing_steps),
            "cpu_per_account": figures.cpu.per_unit(figures.moved),
        }],
        "config": {
            "accounts": options.accounts,
            "clients": options.clients,
            "rate_per_s": options.rate_per_s,
            "in_flight_max": options.in_flight_max,
            "legacy_pool_size": std::env::var("COREBANK_LEGACY_POOL_SIZE").ok(),
            "pgbench_seconds": options.pgbench_seconds,
            "pgbench_scale": options.run.pgbench_scale,
            "pgbench_clients": options.run.pgbench_clients,
            "target_total_s": TARGET_TOTAL_S,
        },
    });
    write_json(path, &document)
}

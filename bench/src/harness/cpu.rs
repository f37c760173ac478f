//! Where a suite's CPU went, by component: this process's own time (every component served
//! in it, and the load it generates), and each PostgreSQL backend's, summed by its
//! connection's `application_name` (`corebank-<component>`; a background process by its
//! kind: `walwriter`, `autovacuum worker`...), with the transactions the run's database
//! committed and rolled back. A suite samples before and after what it measures
//! ([`sample`]) and reports the difference per unit of work ([`CpuUse::per_unit`]).
//!
//! The backends' times are read from `/proc/<pid>/stat`, so they are seen only when the
//! server runs on this machine (a private server always does); otherwise only this
//! process's time is reported, and the report says so. A backend that ends between the two
//! samples takes its time with it (the components' pools keep theirs open), and one that
//! starts between them is counted from its start.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::figures::{precise, precise_signed};

/// The kernel reports a process's times in clock ticks of 1/100 s (`USER_HZ`, the same on
/// every Linux architecture: it is part of the kernel's ABI).
const TICKS_PER_S: f64 = 100.0;

/// The CPU seconds one process has used (user and system), or `None` when it is not a
/// process of this machine (or has ended).
fn process_cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The second field (the command, in parentheses) may hold spaces: count after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command: state is the 1st field, utime the 12th and stime the 13th.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_S)
}

/// One sample of the CPU used so far.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    process_s: f64,
    /// Each backend of the server seen on this machine: (pid, who) to CPU seconds.
    backends: BTreeMap<(i32, String), f64>,
    commits: i64,
    rollbacks: i64,
}

/// Samples this process and the backends of the server `client` is connected to (those of
/// its database, and the server's background processes).
pub async fn sample(client: &tokio_postgres::Client) -> anyhow::Result<CpuSample> {
    let rows = client
        .query(
            "SELECT pid, COALESCE(NULLIF(application_name, ''), backend_type) \
             FROM pg_stat_activity \
             WHERE datname = current_database() OR datname IS NULL",
            &[],
        )
        .await
        .context("reading the server's backends (pg_stat_activity)")?;
    let mut backends = BTreeMap::new();
    for row in &rows {
        let pid: i32 = row.get(0);
        let who: String = row.get(1);
        if let Some(cpu_s) = process_cpu_s(&pid.to_string()) {
            backends.insert((pid, who), cpu_s);
        }
    }
    let counts = client
        .query_one(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database \
             WHERE datname = current_database()",
            &[],
        )
        .await
        .context("reading the database's transaction counts (pg_stat_database)")?;
    Ok(CpuSample {
        at: Instant::now(),
        process_s: process_cpu_s("self").unwrap_or(0.0),
        backends,
        commits: counts.get(0),
        rollbacks: counts.get(1),
    })
}

/// The CPU used between two samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuUse {
    pub wall_s: f64,
    /// This process: the components it serves and the load it generates.
    pub process_s: f64,
    /// The server's backends by who they serve; empty when none was seen on this machine.
    pub postgres_s: BTreeMap<String, f64>,
    pub commits: i64,
    pub rollbacks: i64,
}

impl CpuUse {
    pub fn between(before: &CpuSample, after: &CpuSample) -> CpuUse {
        let mut postgres_s: BTreeMap<String, f64> = BTreeMap::new();
        for ((pid, who), cpu_s) in &after.backends {
            let earlier = before.backends.get(&(*pid, who.clone())).copied();
            *postgres_s.entry(who.clone()).or_default() += cpu_s - earlier.unwrap_or(0.0);
        }
        CpuUse {
            wall_s: after.at.duration_since(before.at).as_secs_f64(),
            process_s: after.process_s - before.process_s,
            postgres_s,
            commits: after.commits - before.commits,
            rollbacks: after.rollbacks - before.rollbacks,
        }
    }

    fn postgres_total_s(&self) -> f64 {
        self.postgres_s.values().sum()
    }

    /// How many cores the process and the backends kept busy on average.
    fn cores_busy(&self) -> f64 {
        (self.process_s + self.postgres_total_s()) / self.wall_s.max(1e-9)
    }

    /// Transactions (committed or rolled back) and rollbacks per unit of work.
    fn transactions_per(&self, units: f64) -> (f64, f64) {
        (
            precise_signed(self.commits + self.rollbacks) / units,
            precise_signed(self.rollbacks) / units,
        )
    }

    /// Milliseconds of CPU per unit of work (`units` of it done between the samples), by
    /// component, and the transactions per unit: the JSON the suites report.
    pub fn per_unit(&self, units: u64) -> Value {
        let units = precise(units.max(1));
        let hundredths = |x: f64| (x * 100.0).round() / 100.0;
        let ms = |s: f64| hundredths(s * 1_000.0 / units);
        let postgres: serde_json::Map<String, Value> = self
            .postgres_s
            .iter()
            .filter(|(_, s)| **s > 0.0)
            .map(|(who, s)| (who.clone(), json!(ms(*s))))
            .collect();
        let (transactions, rollbacks) = self.transactions_per(units);
        json!({
            "wall_s": (self.wall_s * 10.0).round() / 10.0,
            "cores_busy": hundredths(self.cores_busy()),
            "process_ms": ms(self.process_s),
            "postgres_ms": ms(self.postgres_total_s()),
            "postgres_seen": !self.postgres_s.is_empty(),
            "postgres_ms_by_connection": postgres,
            "transactions": hundredths(transactions),
            "rollbacks": hundredths(rollbacks),
        })
    }

    /// The text report: CPU per `unit` by component, most first.
    pub fn print(&self, units: u64, unit: &str) {
        let per = precise(units.max(1));
        let ms = |s: f64| s * 1_000.0 / per;
        let (transactions, rollbacks) = self.transactions_per(per);
        println!(
            "  CPU per {unit} ({units} of them) over {:.0} s, {:.2} cores busy: {:.2} ms in \
             this process (components and load), {:.2} ms in PostgreSQL; {:.1} transactions \
             ({:.2} rolled back)",
            self.wall_s,
            self.cores_busy(),
            ms(self.process_s),
            ms(self.postgres_total_s()),
            transactions,
            rollbacks,
        );
        if self.postgres_s.is_empty() {
            println!("    PostgreSQL's backends are not on this machine: their CPU is not seen");
            return;
        }
        let mut by_cost: Vec<(&String, &f64)> = self.postgres_s.iter().collect();
        by_cost.sort_by(|a, b| b.1.total_cmp(a.1));
        for (who, s) in by_cost.into_iter().filter(|(_, s)| ms(**s) >= 0.01) {
            println!("    PostgreSQL for {who:<28} {:>8.2} ms", ms(*s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: Instant, process_s: f64, backends: &[(i32, &str, f64)], commits: i64) -> CpuSample {
        CpuSample {
            at,
            process_s,
            backends: backends
                .iter()
                .map(|(pid, who, s)| ((*pid, (*who).to_owned()), *s))
                .collect(),
            commits,
            rollbacks: 0,
        }
    }

    #[test]
    fn the_use_between_samples_is_summed_by_connection_and_counts_a_new_backend_from_its_start() {
        let start = Instant::now();
        let before = at(
            start,
            1.0,
            &[(10, "corebank-ledger", 2.0), (11, "corebank-ledger", 1.0)],
            100,
        );
        let after = at(
            start + std::time::Duration::from_secs(4),
            3.0,
            &[
                (10, "corebank-ledger", 2.5),
                (11, "corebank-ledger", 1.5),
                // Started after the first sample: all of its time is in the window.
                (12, "corebank-deposits", 0.2),
            ],
            140,
        );
        let used = CpuUse::between(&before, &after);
        assert_eq!(used.wall_s, 4.0);
        assert_eq!(used.process_s, 2.0);
        assert_eq!(used.postgres_s["corebank-ledger"], 1.0);
        assert_eq!(used.postgres_s["corebank-deposits"], 0.2);
        assert_eq!(used.commits, 40);
        let per = used.per_unit(20);
        assert_eq!(per["process_ms"], json!(100.0));
        assert_eq!(per["postgres_ms"], json!(60.0));
        assert_eq!(
            per["postgres_ms_by_connection"]["corebank-ledger"],
            json!(50.0)
        );
        assert_eq!(per["transactions"], json!(2.0));
        assert_eq!(per["cores_busy"], json!(0.8));
        assert_eq!(per["postgres_seen"], json!(true));
    }

    #[test]
    fn this_process_cpu_is_read_from_proc() {
        let spent = process_cpu_s("self").expect("this process's times");
        let mut x = 0u64;
        for n in 0..20_000_000u64 {
            x = x.wrapping_add(n * n);
        }
        assert!(std::hint::black_box(x) > 0);
        assert!(process_cpu_s("self").expect("this process's times") >= spent);
        assert_eq!(process_cpu_s("not-a-pid"), None);
    }
}

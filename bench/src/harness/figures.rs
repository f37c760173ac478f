//! The figures: percentiles, one named result, the table a run prints and the JSON it writes
//! (`../shared/DESIGN.md`'s format: `suite`, `baseline`, `results`, `config`, extra fields
//! welcome).
//!
//! Open-loop results follow every closed-loop result in `results`, each named after its
//! closed-loop result with `_open_loop` appended, with the closed-loop fields and five more:
//! `rate_per_s`, `rate_of` (the closed-loop result whose throughput set the rate; null for a
//! fixed `--open-loop-rate`), `scheduled`, `late` and `unsent`. The top-level `open_loop`
//! object says how the open loops ran.

use anyhow::Context as _;
use serde_json::{Map, Value, json};

use super::load::{LATE_AFTER, Measured, Schedule};
use super::server::BASELINE_NAME;

/// What an open-loop result's name adds to its closed-loop result's.
pub const OPEN_LOOP_SUFFIX: &str = "_open_loop";

/// The `percent`th percentile of latencies sorted in µs, in ms (0 when there are none): the
/// latency at index `len × percent / 100`.
pub fn percentile_ms(sorted_us: &[u32], percent: usize) -> f64 {
    let Some(last) = sorted_us.len().checked_sub(1) else {
        return 0.0;
    };
    let index = (sorted_us.len() * percent / 100).min(last);
    sorted_us
        .get(index)
        .map_or(0.0, |latency_us| f64::from(*latency_us) / 1_000.0)
}

/// A count as a float, for rates (a count above `u32::MAX` counts as `u32::MAX`).
pub fn precise(n: u64) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

/// A signed count as a float (a negative one as 0), for rates.
pub fn precise_signed(n: i64) -> f64 {
    precise(u64::try_from(n).unwrap_or(0))
}

/// One result of a run, closed or open loop.
#[derive(Debug, Clone)]
pub struct NamedResult {
    pub name: String,
    pub throughput_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ratio_to_baseline: f64,
    /// Requests that succeeded.
    pub succeeded: u64,
    pub failures: u64,
    pub seconds: f64,
    pub first_failure: Option<String>,
    /// An open loop's schedule, with the result its rate came from.
    pub open_loop: Option<(Schedule, Option<String>)>,
    /// Fields only this suite reports, beside the harness's (the saga's `replicas`).
    pub extra: Map<String, Value>,
}

impl NamedResult {
    /// Summarises what a phase measured.
    pub fn new(name: String, mut measured: Measured, baseline_tps: f64) -> NamedResult {
        measured.latencies_us.sort_unstable();
        let succeeded = u64::try_from(measured.latencies_us.len()).unwrap_or(u64::MAX);
        let throughput_per_s =
            f64::from(u32::try_from(succeeded).unwrap_or(u32::MAX)) / measured.seconds;
        NamedResult {
            name,
            throughput_per_s,
            p50_ms: percentile_ms(&measured.latencies_us, 50),
            p99_ms: percentile_ms(&measured.latencies_us, 99),
            ratio_to_baseline: throughput_per_s / baseline_tps,
            succeeded,
            failures: measured.failures,
            seconds: measured.seconds,
            first_failure: measured.first_failure,
            open_loop: None,
            extra: Map::new(),
        }
    }

    /// The result in the JSON, its count of successes under `count_field` (`transfers`).
    fn to_json(&self, count_field: &str) -> Value {
        let mut fields = Map::new();
        fields.insert("name".into(), json!(self.name));
        fields.insert("throughput_per_s".into(), json!(self.throughput_per_s));
        fields.insert("p50_ms".into(), json!(self.p50_ms));
        fields.insert("p99_ms".into(), json!(self.p99_ms));
        fields.insert("ratio_to_baseline".into(), json!(self.ratio_to_baseline));
        fields.insert(count_field.into(), json!(self.succeeded));
        fields.insert("failures".into(), json!(self.failures));
        fields.insert("seconds".into(), json!(self.seconds));
        if let Some((schedule, rate_of)) = &self.open_loop {
            fields.insert("rate_per_s".into(), json!(schedule.rate_per_s));
            fields.insert("rate_of".into(), json!(rate_of));
            fields.insert("scheduled".into(), json!(schedule.scheduled));
            fields.insert("late".into(), json!(schedule.late));
            fields.insert("unsent".into(), json!(schedule.unsent));
        }
        fields.extend(self.extra.clone());
        Value::Object(fields)
    }
}

/// A run's results and how to print them.
#[derive(Debug)]
pub struct Report {
    pub suite: &'static str,
    /// What one request is, in the plural: the table's unit and the JSON's count field.
    pub unit: &'static str,
    pub baseline_tps: f64,
    pub closed: Vec<NamedResult>,
    pub open: Vec<NamedResult>,
    /// What every suite's `config` holds: `clients`, `seconds`, `pgbench_scale` and
    /// `pgbench_clients`.
    pub config: Value,
    /// The JSON's `open_loop` object.
    pub open_loop: Value,
}

impl Report {
    /// The result named `name`, closed or open loop.
    pub fn find(&self, name: &str) -> anyhow::Result<&NamedResult> {
        self.closed
            .iter()
            .chain(&self.open)
            .find(|result| result.name == name)
            .with_context(|| format!("no result {name}"))
    }

    /// The summary tables: the closed-loop results, then the open-loop ones. `notes` go in
    /// the headline, after the baseline.
    pub fn print(&self, notes: &str) {
        let tps = self.baseline_tps;
        let width = self
            .closed
            .iter()
            .chain(&self.open)
            .map(|result| result.name.len())
            .max()
            .unwrap_or(0)
            .max("result".len());
        let unit_per_s = format!("{}/s", self.unit);
        println!();
        println!(
            "suite {} (baseline {BASELINE_NAME} {tps:.0} tps{notes})",
            self.suite
        );
        println!(
            "{:<width$} {:>14} {:>9} {:>9} {:>10} {:>9}",
            "result", unit_per_s, "p50 ms", "p99 ms", "x pgbench", "failures"
        );
        for r in &self.closed {
            println!(
                "{:<width$} {:>14.0} {:>9.2} {:>9.2} {:>10.2} {:>9}",
                r.name, r.throughput_per_s, r.p50_ms, r.p99_ms, r.ratio_to_baseline, r.failures
            );
        }
        if self.open.is_empty() {
            return;
        }
        println!();
        println!(
            "open loop: a fixed arrival rate, latency from each request's scheduled send time \
             (late: sent over {} ms after it; unsent: never sent, every client busy)",
            LATE_AFTER.as_millis()
        );
        println!(
            "{:<width$} {:>10} {:>14} {:>9} {:>9} {:>10} {:>9} {:>7} {:>7}",
            "result",
            "rate/s",
            unit_per_s,
            "p50 ms",
            "p99 ms",
            "x pgbench",
            "failures",
            "late",
            "unsent"
        );
        for r in &self.open {
            let (rate_per_s, late, unsent) = r
                .open_loop
                .as_ref()
                .map_or((0.0, 0, 0), |(s, _)| (s.rate_per_s, s.late, s.unsent));
            println!(
                "{:<width$} {:>10.0} {:>14.0} {:>9.2} {:>9.2} {:>10.2} {:>9} {:>7} {:>7}",
                r.name,
                rate_per_s,
                r.throughput_per_s,
                r.p50_ms,
                r.p99_ms,
                r.ratio_to_baseline,
                r.failures,
                late,
                unsent
            );
        }
    }

    /// The figures as JSON: `suite`, `baseline`, `results` (closed loop, then open loop),
    /// `config` (what every suite's holds, and `config`'s fields) and `open_loop`, and `extra`'s
    /// fields.
    pub fn to_json(&self, config: Value, extra: Map<String, Value>) -> Value {
        let results: Vec<Value> = self
            .closed
            .iter()
            .chain(&self.open)
            .map(|result| result.to_json(self.unit))
            .collect();
        let mut all_config = self.config.as_object().cloned().unwrap_or_default();
        all_config.extend(config.as_object().cloned().unwrap_or_default());
        let mut figures = Map::new();
        figures.insert("suite".into(), json!(self.suite));
        figures.insert(
            "baseline".into(),
            json!({ "name": BASELINE_NAME, "tps": self.baseline_tps }),
        );
        figures.insert("results".into(), Value::Array(results));
        figures.insert("config".into(), Value::Object(all_config));
        figures.insert("open_loop".into(), self.open_loop.clone());
        figures.extend(extra);
        Value::Object(figures)
    }

    /// Writes the figures (`to_json`) to `path`, when there is one, and says so.
    pub fn write_json(
        &self,
        path: Option<&std::path::Path>,
        config: Value,
        extra: Map<String, Value>,
    ) -> anyhow::Result<()> {
        let Some(path) = path else {
            return Ok(());
        };
        write_json(path, &self.to_json(config, extra))
    }
}

/// Writes a suite's figures (`--json`) to `path`, and says where.
pub fn write_json(path: &std::path::Path, document: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(document)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("figures written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_is_the_latency_at_its_rank_in_ms() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1_000).collect();
        assert_eq!(percentile_ms(&sorted, 50), 51.0);
        assert_eq!(percentile_ms(&sorted, 99), 100.0);
        assert_eq!(percentile_ms(&sorted, 100), 100.0);
        assert_eq!(percentile_ms(&sorted, 0), 1.0);
        assert_eq!(percentile_ms(&[2_500], 99), 2.5);
        assert_eq!(percentile_ms(&[], 50), 0.0);
    }

    #[test]
    fn p99_of_a_small_sample_is_its_slowest_latency() {
        let sorted = [1_000, 1_000, 1_000, 900_000];
        assert_eq!(percentile_ms(&sorted, 99), 900.0);
        assert_eq!(percentile_ms(&sorted, 50), 1.0);
    }

    fn measured(latencies_us: Vec<u32>, failures: u64, seconds: f64) -> Measured {
        Measured {
            latencies_us,
            failures,
            seconds,
            ..Measured::default()
        }
    }

    #[test]
    fn a_result_summarises_its_latencies_and_compares_with_the_baseline() {
        let result = NamedResult::new(
            "uniform".to_owned(),
            measured(vec![3_000, 1_000, 2_000, 4_000], 1, 2.0),
            4.0,
        );
        assert_eq!(result.throughput_per_s, 2.0);
        assert_eq!(result.ratio_to_baseline, 0.5);
        assert_eq!((result.p50_ms, result.p99_ms), (3.0, 4.0));
        assert_eq!((result.succeeded, result.failures), (4, 1));
    }

    #[test]
    fn closed_loop_results_keep_their_fields_and_open_loop_ones_follow_with_their_schedule() {
        let closed = NamedResult::new("uniform".to_owned(), measured(vec![1_000], 0, 1.0), 1.0);
        let mut open = NamedResult::new(
            format!("uniform{OPEN_LOOP_SUFFIX}"),
            measured(vec![2_000], 0, 1.0),
            1.0,
        );
        open.open_loop = Some((
            Schedule {
                rate_per_s: 0.7,
                scheduled: 1,
                late: 0,
                unsent: 0,
                in_flight_max: 2,
            },
            Some("uniform".to_owned()),
        ));
        let report = Report {
            suite: "ledger",
            unit: "transfers",
            baseline_tps: 1.0,
            closed: vec![closed],
            open: vec![open],
            config: json!({ "clients": 64, "seconds": 30 }),
            open_loop: json!({ "rate_percent": 70 }),
        };
        let extra = Map::from_iter([("added_latency".to_owned(), json!({}))]);
        let figures = report.to_json(json!({ "accounts": 10 }), extra);
        let keys =
            |value: &Value| -> Vec<String> { value.as_object().unwrap().keys().cloned().collect() };
        assert_eq!(
            keys(&figures),
            [
                "added_latency",
                "baseline",
                "config",
                "open_loop",
                "results",
                "suite"
            ]
        );
        assert_eq!(keys(&figures["config"]), ["accounts", "clients", "seconds"]);
        assert_eq!(figures["baseline"]["name"], "pgbench_tpcb");
        assert_eq!(
            keys(&figures["results"][0]),
            [
                "failures",
                "name",
                "p50_ms",
                "p99_ms",
                "ratio_to_baseline",
                "seconds",
                "throughput_per_s",
                "transfers"
            ]
        );
        assert_eq!(figures["results"][1]["name"], "uniform_open_loop");
        assert_eq!(figures["results"][1]["rate_of"], "uniform");
        assert_eq!(figures["results"][1]["rate_per_s"], 0.7);
        assert_eq!(report.find("uniform_open_loop").unwrap().p50_ms, 2.0);
    }
}

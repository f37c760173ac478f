//! The figures: percentiles, one named result, the table a run prints and the JSON it writes
//! (`../shared/DESIGN.md`'s format: `suite`, `baseline`, `results`, `config`, extra fields
//! welcome).

use anyhow::Context as _;
use serde_json::{Map, Value, json};

use super::load::Measured;
use super::server::BASELINE_NAME;

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

/// One result of a run.
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
    pub results: Vec<NamedResult>,
    /// What every suite's `config` holds: `clients`, `seconds`, `pgbench_scale` and
    /// `pgbench_clients`.
    pub config: Value,
}

impl Report {
    /// The result named `name`.
    pub fn find(&self, name: &str) -> anyhow::Result<&NamedResult> {
        self.results
            .iter()
            .find(|result| result.name == name)
            .with_context(|| format!("no result {name}"))
    }

    /// The summary table. `notes` go in the headline, after the baseline.
    pub fn print(&self, notes: &str) {
        let tps = self.baseline_tps;
        let width = self
            .results
            .iter()
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
        for r in &self.results {
            println!(
                "{:<width$} {:>14.0} {:>9.2} {:>9.2} {:>10.2} {:>9}",
                r.name, r.throughput_per_s, r.p50_ms, r.p99_ms, r.ratio_to_baseline, r.failures
            );
        }
    }

    /// The figures as JSON: `suite`, `baseline`, `results`, `config` (what every suite's
    /// holds, and `config`'s fields), and `extra`'s fields.
    pub fn to_json(&self, config: Value, extra: Map<String, Value>) -> Value {
        let results: Vec<Value> = self
            .results
            .iter()
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
        let figures = self.to_json(config, extra);
        std::fs::write(path, serde_json::to_string_pretty(&figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
        Ok(())
    }
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
    fn the_json_holds_the_results_with_the_suites_count_field_and_config() {
        let result = NamedResult::new("uniform".to_owned(), measured(vec![1_000], 0, 1.0), 1.0);
        let report = Report {
            suite: "ledger",
            unit: "transfers",
            baseline_tps: 1.0,
            results: vec![result],
            config: json!({ "clients": 64, "seconds": 30 }),
        };
        let extra = Map::from_iter([("added_latency".to_owned(), json!({}))]);
        let figures = report.to_json(json!({ "accounts": 10 }), extra);
        let keys =
            |value: &Value| -> Vec<String> { value.as_object().unwrap().keys().cloned().collect() };
        assert_eq!(
            keys(&figures),
            ["added_latency", "baseline", "config", "results", "suite"]
        );
        assert_eq!(figures["baseline"]["name"], "pgbench_tpcb");
        assert_eq!(keys(&figures["config"]), ["accounts", "clients", "seconds"]);
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
        assert_eq!(report.find("uniform").unwrap().p50_ms, 1.0);
    }
}

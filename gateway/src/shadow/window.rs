//! The automatic-rollback window of one (product, operation): the modern side's outcomes
//! and the comparisons over the last `window`, kept as a fixed number of time buckets so
//! its memory is bounded whatever the traffic, and the decision whether a rate has passed
//! its threshold.

use std::collections::VecDeque;
use std::time::Duration;

use super::RollbackPolicy;

/// The window is kept as this many buckets; the oldest leaves whole, so the window slides
/// in steps of `window / WINDOW_BUCKETS`.
pub(crate) const WINDOW_BUCKETS: u64 = 20;

/// What happened in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Answers of the modern side (as primary or as shadow).
    pub modern_outcomes: u64,
    /// Of those, failures (5xx or `unavailable`).
    pub modern_errors: u64,
    /// Shadow comparisons (both sides answered).
    pub compared: u64,
    /// Of those, mismatches.
    pub mismatched: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.modern_outcomes = self.modern_outcomes.saturating_add(other.modern_outcomes);
        self.modern_errors = self.modern_errors.saturating_add(other.modern_errors);
        self.compared = self.compared.saturating_add(other.compared);
        self.mismatched = self.mismatched.saturating_add(other.mismatched);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Window {
    /// (bucket number since the shadow started, its tally), oldest first.
    buckets: VecDeque<(u64, Tally)>,
}

/// The bucket number of `elapsed` (time since the shadow started) for `window`.
pub(crate) fn bucket_of(elapsed: Duration, window: Duration) -> u64 {
    let width_ms = (window.as_millis() / u128::from(WINDOW_BUCKETS)).max(1);
    u64::try_from(elapsed.as_millis() / width_ms).unwrap_or(u64::MAX)
}

/// A fraction as a percentage with one decimal, for the rollback reason.
fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

fn ratio(part: u64, whole: u64) -> f64 {
    // Counts stay far below 2^52 in a window, so the conversion is exact; u32 keeps the
    // `From` conversion lossless and saturates beyond it.
    let convert = |count: u64| f64::from(u32::try_from(count).unwrap_or(u32::MAX));
    if whole == 0 {
        0.0
    } else {
        convert(part) / convert(whole)
    }
}

impl Window {
    /// Adds `tally` to bucket `bucket` and drops buckets that left the window.
    pub(crate) fn record(&mut self, bucket: u64, tally: &Tally) {
        while self
            .buckets
            .front()
            .is_some_and(|(oldest, _)| oldest.saturating_add(WINDOW_BUCKETS) <= bucket)
        {
            self.buckets.pop_front();
        }
        match self.buckets.back_mut() {
            Some((last, sum)) if *last == bucket => sum.add(tally),
            _ => self.buckets.push_back((bucket, *tally)),
        }
    }

    /// The sum over the buckets still in the window at `bucket`.
    pub(crate) fn total(&self, bucket: u64) -> Tally {
        let mut total = Tally::default();
        for (number, tally) in &self.buckets {
            if number.saturating_add(WINDOW_BUCKETS) > bucket {
                total.add(tally);
            }
        }
        total
    }

    pub(crate) fn reset(&mut self) {
        self.buckets.clear();
    }

    /// Why the rule must fall back to legacy, if a rate passed its threshold: the modern
    /// error rate once at least `requests_min` modern outcomes were seen, the mismatch rate
    /// once at least `requests_min` comparisons were made.
    pub(crate) fn verdict(&self, bucket: u64, policy: &RollbackPolicy) -> Option<String> {
        let total = self.total(bucket);
        let window = format!("over the last {} s", policy.window.as_secs_f64());
        // The rate of `part` in `whole` `things`, once there are enough of them to judge.
        let passed = |rate_name: &str, part: u64, whole: u64, things: &str, threshold: f64| {
            let rate = ratio(part, whole);
            (whole >= policy.requests_min && rate > threshold).then(|| {
                format!(
                    "{rate_name} {} ({part} of {whole} {things}) passed the threshold {} {window}",
                    percent(rate),
                    percent(threshold),
                )
            })
        };
        passed(
            "modern error rate",
            total.modern_errors,
            total.modern_outcomes,
            "answers",
            policy.error_rate_max,
        )
        .or_else(|| {
            passed(
                "shadow mismatch rate",
                total.mismatched,
                total.compared,
                "comparisons",
                policy.mismatch_rate_max,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RollbackPolicy {
        RollbackPolicy {
            window: Duration::from_secs(60),
            requests_min: 10,
            error_rate_max: 0.2,
            mismatch_rate_max: 0.5,
        }
    }

    fn outcome(error: bool) -> Tally {
        Tally {
            modern_outcomes: 1,
            modern_errors: u64::from(error),
            ..Tally::default()
        }
    }

    #[test]
    fn nothing_trips_below_the_minimum_of_requests() {
        let mut window = Window::default();
        for _ in 0..9 {
            window.record(0, &outcome(true));
        }
        assert_eq!(window.verdict(0, &policy()), None);
        window.record(0, &outcome(true));
        let reason = window.verdict(0, &policy()).unwrap();
        assert!(
            reason.contains("modern error rate 100.0% (10 of 10 answers)"),
            "{reason}"
        );
        assert!(
            reason.contains("threshold 20.0% over the last 60 s"),
            "{reason}"
        );
    }

    #[test]
    fn old_buckets_leave_the_window() {
        let mut window = Window::default();
        for _ in 0..10 {
            window.record(0, &outcome(true));
        }
        assert!(window.verdict(WINDOW_BUCKETS - 1, &policy()).is_some());
        assert_eq!(window.verdict(WINDOW_BUCKETS, &policy()), None);
        window.record(WINDOW_BUCKETS, &outcome(false));
        assert_eq!(window.total(WINDOW_BUCKETS).modern_outcomes, 1);
        assert_eq!(
            bucket_of(Duration::from_secs(3), Duration::from_secs(60)),
            1
        );
    }

    #[test]
    fn the_mismatch_rate_trips_on_comparisons() {
        let mut window = Window::default();
        let compared = |mismatched| Tally {
            compared: 1,
            mismatched,
            ..Tally::default()
        };
        for index in 0..10 {
            window.record(0, &compared(u64::from(index < 6)));
        }
        let reason = window.verdict(0, &policy()).unwrap();
        assert!(
            reason.starts_with("shadow mismatch rate 60.0% (6 of 10"),
            "{reason}"
        );
    }
}

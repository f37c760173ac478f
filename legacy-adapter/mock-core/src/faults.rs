//! Friction the core puts in front of its callers: latency, injected errors, timeouts,
//! connections dropped after a commit, and close of business. The settings parse here; the
//! running values live in [`FaultState`], shared by every connection and changed at run
//! time with `ADMIN.FAULTS`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Timelike;

use corebank_legacy_ofs::Field;

/// The longest delay any fault may add, in milliseconds (ten minutes).
pub const DELAY_MS_MAX: u64 = 600_000;
/// The longest `COB=<seconds>`.
pub const COB_SECONDS_MAX: u64 = 86_400;

/// The faults the core injects. Rates are probabilities from 0 to 1.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    pub error_rate: f64,
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    pub drop_after_commit_rate: f64,
}

fn parse_rate(name: &str, text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{name} {text:?} is not a rate from 0 to 1")),
    }
}

fn parse_ms(name: &str, text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(ms) if ms <= DELAY_MS_MAX => Ok(ms),
        _ => Err(format!(
            "{name} {text:?} is not a number of milliseconds from 0 to {DELAY_MS_MAX}"
        )),
    }
}

impl Faults {
    /// Parses `latency_ms=5-50,error_rate=0.01,timeout_rate=0,timeout_ms=30000,
    /// drop_after_commit_rate=0.3` (any subset; empty: none). `latency_ms=20` means exactly
    /// 20; `latency_min_ms` and `latency_max_ms` may also be given apart.
    pub fn parse(text: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not key=value"))?;
            match key.trim() {
                "latency_ms" => {
                    let (min, max) = value.split_once('-').unwrap_or((value, value));
                    faults.latency_min_ms = parse_ms("latency_ms", min)?;
                    faults.latency_max_ms = parse_ms("latency_ms", max)?;
                }
                "latency_min_ms" => faults.latency_min_ms = parse_ms(key, value)?,
                "latency_max_ms" => faults.latency_max_ms = parse_ms(key, value)?,
                "error_rate" => faults.error_rate = parse_rate(key, value)?,
                "timeout_rate" => faults.timeout_rate = parse_rate(key, value)?,
                "timeout_ms" => faults.timeout_ms = parse_ms(key, value)?,
                "drop_after_commit_rate" => faults.drop_after_commit_rate = parse_rate(key, value)?,
                other => {
                    return Err(format!(
                        "unknown fault {other:?} (latency_ms, error_rate, timeout_rate, \
                         timeout_ms, drop_after_commit_rate)"
                    ));
                }
            }
        }
        faults.checked()
    }

    fn checked(self) -> Result<Faults, String> {
        if self.latency_min_ms > self.latency_max_ms {
            return Err(format!(
                "the latency minimum {} ms is above its maximum {} ms",
                self.latency_min_ms, self.latency_max_ms
            ));
        }
        Ok(self)
    }

    /// A latency drawn uniformly between the minimum and the maximum.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(fastrand::u64(
            self.latency_min_ms..=self.latency_max_ms.max(self.latency_min_ms),
        ))
    }
}

/// A daily close-of-business window in UTC, `HH:MM-HH:MM`; it may wrap midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CobWindow {
    /// Minutes after midnight, inclusive.
    pub start_minute: u32,
    /// Minutes after midnight, exclusive.
    pub end_minute: u32,
}

fn parse_clock(text: &str) -> Option<u32> {
    let (hours, minutes) = text.trim().split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

impl CobWindow {
    pub fn parse(text: &str) -> Result<CobWindow, String> {
        let window = text
            .split_once('-')
            .and_then(|(start, end)| Some((parse_clock(start)?, parse_clock(end)?)));
        match window {
            Some((start_minute, end_minute)) if start_minute != end_minute => Ok(CobWindow {
                start_minute,
                end_minute,
            }),
            _ => Err(format!(
                "{text:?} is not a window HH:MM-HH:MM (UTC, two different times)"
            )),
        }
    }

    /// Whether `minute` (after midnight) is inside the window.
    pub fn contains(&self, minute: u32) -> bool {
        if self.start_minute < self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }

    fn render(&self) -> String {
        format!(
            "{:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

/// Close of business set by hand (`COB=ON|OFF|<seconds>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManualCob {
    Off,
    On,
    Until(Instant),
}

#[derive(Debug)]
struct Current {
    faults: Faults,
    cob: ManualCob,
}

/// The faults in force, shared by every connection.
#[derive(Debug)]
pub(crate) struct FaultState {
    current: Mutex<Current>,
    window: Option<CobWindow>,
}

/// A refusal of an `ADMIN.FAULTS` field: (field, text).
pub(crate) type AdminRefusal = (String, String);

impl FaultState {
    pub(crate) fn new(faults: Faults, window: Option<CobWindow>) -> FaultState {
        FaultState {
            current: Mutex::new(Current {
                faults,
                cob: ManualCob::Off,
            }),
            window,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Current) -> T) -> T {
        // A poisoned lock only means another connection panicked mid-update of plain
        // values; they are still usable.
        let mut guard = match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    pub(crate) fn faults(&self) -> Faults {
        self.with(|current| current.faults.clone())
    }

    /// Whether the core is closed for close of business now.
    pub(crate) fn closed_now(&self) -> bool {
        let manual = self.with(|current| match current.cob {
            ManualCob::Off => false,
            ManualCob::On => true,
            ManualCob::Until(until) if Instant::now() < until => true,
            ManualCob::Until(_) => {
                current.cob = ManualCob::Off;
                false
            }
        });
        manual
            || self.window.is_some_and(|window| {
                let now = chrono::Utc::now();
                window.contains(now.hour() * 60 + now.minute())
            })
    }

    /// Applies the `ADMIN.FAULTS` fields given; nothing changes unless all are valid.
    pub(crate) fn apply(&self, fields: &[Field]) -> Result<(), AdminRefusal> {
        let mut faults = self.faults();
        let mut cob = None;
        for field in fields {
            let bad = |text: &str| (field.name.clone(), text.to_owned());
            if field.multi_value != 1 || field.sub_value != 1 {
                return Err(bad("INVALID VALUE"));
            }
            let value = field.value.as_str();
            let ms = || parse_ms("", value).map_err(|_| bad("INVALID VALUE"));
            let rate = || parse_rate("", value).map_err(|_| bad("INVALID VALUE"));
            match field.name.as_str() {
                "LATENCY.MIN.MS" => faults.latency_min_ms = ms()?,
                "LATENCY.MAX.MS" => faults.latency_max_ms = ms()?,
                "TIMEOUT.MS" => faults.timeout_ms = ms()?,
                "ERROR.RATE" => faults.error_rate = rate()?,
                "TIMEOUT.RATE" => faults.timeout_rate = rate()?,
                "DROP.AFTER.COMMIT.RATE" => faults.drop_after_commit_rate = rate()?,
                "COB" => {
                    cob = Some(match value {
                        "ON" => ManualCob::On,
                        "OFF" => ManualCob::Off,
                        seconds => match seconds.parse::<u64>() {
                            Ok(seconds) if (1..=COB_SECONDS_MAX).contains(&seconds) => {
                                ManualCob::Until(Instant::now() + Duration::from_secs(seconds))
                            }
                            _ => return Err(bad("INVALID VALUE")),
                        },
                    });
                }
                _ => return Err(bad("FIELD NOT ALLOWED")),
            }
        }
        if faults.latency_min_ms > faults.latency_max_ms {
            return Err(("LATENCY.MIN.MS".to_owned(), "INVALID VALUE".to_owned()));
        }
        tracing::info!(
            faults.latency_min_ms = faults.latency_min_ms,
            faults.latency_max_ms = faults.latency_max_ms,
            faults.error_rate = faults.error_rate,
            faults.timeout_rate = faults.timeout_rate,
            faults.timeout_ms = faults.timeout_ms,
            faults.drop_after_commit_rate = faults.drop_after_commit_rate,
            cob = ?cob,
            "legacy core faults changed"
        );
        self.with(|current| {
            current.faults = faults;
            if let Some(cob) = cob {
                current.cob = cob;
            }
        });
        Ok(())
    }

    /// Every setting, as `ADMIN.FAULTS` answers it.
    pub(crate) fn fields(&self) -> Vec<Field> {
        let closed = self.closed_now();
        let (faults, cob) = self.with(|current| (current.faults.clone(), current.cob));
        let cob = match cob {
            ManualCob::Off => "OFF".to_owned(),
            ManualCob::On => "ON".to_owned(),
            ManualCob::Until(until) => until
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1)
                .to_string(),
        };
        vec![
            Field::new("LATENCY.MIN.MS", faults.latency_min_ms.to_string()),
            Field::new("LATENCY.MAX.MS", faults.latency_max_ms.to_string()),
            Field::new("ERROR.RATE", faults.error_rate.to_string()),
            Field::new("TIMEOUT.RATE", faults.timeout_rate.to_string()),
            Field::new("TIMEOUT.MS", faults.timeout_ms.to_string()),
            Field::new(
                "DROP.AFTER.COMMIT.RATE",
                faults.drop_after_commit_rate.to_string(),
            ),
            Field::new("COB", cob),
            Field::new(
                "COB.WINDOW",
                self.window.map(|w| w.render()).unwrap_or_default(),
            ),
            Field::new("CLOSED", if closed { "YES" } else { "NO" }),
        ]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

    #[test]
    fn faults_parse_from_the_setting_and_refuse_nonsense() {
        let faults = Faults::parse(
            "latency_ms=5-50,error_rate=0.01,timeout_rate=0,timeout_ms=30000,drop_after_commit_rate=0.3",
        )
        .unwrap();
        assert_eq!(faults.latency_min_ms, 5);
        assert_eq!(faults.latency_max_ms, 50);
        assert!((faults.drop_after_commit_rate - 0.3).abs() < 1e-9);
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        assert_eq!(Faults::parse("latency_ms=20").unwrap().latency_max_ms, 20);
        for bad in [
            "error_rate=2",
            "latency_ms=50-5",
            "nonsense=1",
            "timeout_ms=-1",
            "error_rate",
        ] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cob_windows_may_wrap_midnight() {
        let window = CobWindow::parse("23:30-00:30").unwrap();
        assert!(window.contains(23 * 60 + 45));
        assert!(window.contains(10));
        assert!(!window.contains(12 * 60));
        let day = CobWindow::parse("01:00-02:00").unwrap();
        assert!(day.contains(60) && !day.contains(120));
        for bad in ["", "1:00-2:00", "01:00-01:00", "25:00-01:00", "01:00"] {
            assert!(CobWindow::parse(bad).is_err(), "{bad}");
        }
    }
}

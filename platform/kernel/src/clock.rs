//! Clocks: the system clock in production, a controllable one in tests.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// Where the current time comes from. Code that decides anything by time (hold expiry,
/// value dates, lease deadlines) asks a `Clock`, so tests can move time on purpose.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct TestClock {
    now: Mutex<DateTime<Utc>>,
}

impl TestClock {
    pub fn new(start: DateTime<Utc>) -> TestClock {
        TestClock {
            now: Mutex::new(start),
        }
    }

    /// Sets the time; it may go backwards, as a real clock sometimes does.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the time forward (or back, with a negative delta).
    pub fn advance(&self, delta: TimeDelta) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += delta;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-01-31T23:59:59Z")
            .unwrap()
            .to_utc();
        let clock = TestClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(TimeDelta::seconds(1));
        assert_eq!(clock.now().to_rfc3339(), "2026-02-01T00:00:00+00:00");
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let first = SystemClock.now();
        let second = SystemClock.now();
        assert!(second >= first);
    }
}

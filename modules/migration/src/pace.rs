//! The pace of a migration's moves: how many may be under way at once, kept to what keeps
//! each account's frozen window (from the gateway's mark to its unmark) short.
//!
//! A channel that calls a moving account waits for the window to end (ADR 0013), so the
//! window is what a customer feels. How long it lasts depends on how busy the machine is:
//! with nothing else running, 64 moves at once keep each account frozen about half a second;
//! under 32 busy channel clients, the same 64 keep it frozen a second on average and over
//! two at p99, while 8 keep it under 600 ms. No fixed number suits both, so the feeder
//! finds it, as TCP finds its congestion window (a slow start, then additive increase and
//! multiplicative decrease):
//! - until the first window that runs long, each move that unmarks its account within
//!   [`FROZEN_TARGET`] lets one more move be under way (the number doubles with each round
//!   of moves), up to the migration's `in_flight_max`;
//! - a move whose window ran past it cuts the number by a quarter (at least one stays),
//!   once for the moves that were under way together: a cut counts only windows that
//!   began after the last cut, so that the moves already under way when it came do not cut
//!   again for the same crowd;
//! - after the first cut, a whole round of moves within the target (as many as are under
//!   way) lets one more run: the number creeps up to where windows begin to run long, and
//!   stays near it.
//!
//! A migration starts at [`START`] moves at once (or its `in_flight_max`, if smaller). The
//! pace lives in the process that feeds (each replica finds its own); a restart starts it
//! again at [`START`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The longest frozen window a move should have.
pub const FROZEN_TARGET: Duration = Duration::from_millis(500);

/// How many moves a migration starts with under way at once.
pub const START: i64 = 8;

/// What a cut leaves of the number of moves under way: three quarters.
const CUT: (i64, i64) = (3, 4);

/// A move's worth of the window, in thousandths.
const ONE: i64 = 1_000;

/// One migration's pace.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Moves under way at once, in thousandths (a cut leaves a fraction).
    size: i64,
    /// When the last cut came; windows that began before it do not cut again.
    cut_at: DateTime<Utc>,
    /// The migration's `in_flight_max`, in thousandths, as the feeder last read it.
    ceiling: i64,
    /// No window has run long yet: each move within the target adds a whole move.
    slow_start: bool,
}

/// The pace of every migration this process feeds.
#[derive(Debug, Default)]
pub struct Pace {
    windows: Mutex<HashMap<Uuid, Window>>,
}

impl Pace {
    /// How many of the migration's moves may be under way at once now: at most `ceiling`
    /// (its `in_flight_max`, which the pace keeps to from now on), at least one.
    pub fn window(&self, migration: Uuid, ceiling: i64) -> i64 {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let ceiling = ceiling.clamp(1, i64::MAX / ONE) * ONE;
        let window = windows
            .entry(migration)
            .or_insert_with(|| Window::new(ceiling));
        window.ceiling = ceiling;
        window.size = window.size.min(ceiling);
        window.size / ONE
    }

    /// Says that a move of the migration kept its account frozen from `marked_at` for
    /// `frozen`.
    pub fn frozen(&self, migration: Uuid, marked_at: DateTime<Utc>, frozen: Duration) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows
            .entry(migration)
            .or_insert_with(|| Window::new(crate::feed::IN_FLIGHT_MAX * ONE));
        if frozen <= FROZEN_TARGET {
            let step = if window.slow_start {
                ONE
            } else {
                // A round is as many moves as may be under way (whole ones); rounded up,
                // so that a round adds a whole move.
                let round = (window.size / ONE).max(1);
                (ONE + round - 1) / round
            };
            window.size = (window.size + step).min(window.ceiling);
        } else if marked_at > window.cut_at {
            window.size = (window.size * CUT.0 / CUT.1).max(ONE);
            window.cut_at = Utc::now();
            window.slow_start = false;
        }
    }
}

impl Window {
    fn new(ceiling: i64) -> Window {
        Window {
            size: (START * ONE).min(ceiling),
            cut_at: DateTime::<Utc>::MIN_UTC,
            ceiling,
            slow_start: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_millis(200);
    const SLOW: Duration = Duration::from_millis(900);

    #[test]
    fn a_migration_starts_at_eight_or_its_own_smaller_ceiling() {
        let pace = Pace::default();
        let id = Uuid::new_v4();
        assert_eq!(pace.window(id, 64), 8);
        assert_eq!(pace.window(id, 3), 3);
    }

    #[test]
    fn each_move_within_the_target_lets_one_more_run_up_to_the_ceiling() {
        let pace = Pace::default();
        let id = Uuid::new_v4();
        for moved in 1..=4 {
            pace.frozen(id, Utc::now(), FAST);
            assert_eq!(pace.window(id, 64), 8 + moved);
        }
        for _ in 0..100 {
            pace.frozen(id, Utc::now(), FAST);
        }
        assert_eq!(pace.window(id, 64), 64);
        // A ceiling lowered later (a smaller in_flight_max) bounds it at once.
        assert_eq!(pace.window(id, 16), 16);
    }

    #[test]
    fn a_slow_window_cuts_by_a_quarter_once_for_the_moves_that_ran_together() {
        let pace = Pace::default();
        let id = Uuid::new_v4();
        for _ in 0..56 {
            pace.frozen(id, Utc::now(), FAST);
        }
        assert_eq!(pace.window(id, 64), 64);
        let crowd = Utc::now();
        pace.frozen(id, crowd, SLOW);
        assert_eq!(pace.window(id, 64), 48);
        // The other moves of the same crowd (marked before the cut) cut no further.
        pace.frozen(id, crowd, SLOW);
        pace.frozen(id, crowd, SLOW);
        assert_eq!(pace.window(id, 64), 48);
        // A move marked after the cut that is still slow cuts again.
        std::thread::sleep(Duration::from_millis(2));
        pace.frozen(id, Utc::now(), SLOW);
        assert_eq!(pace.window(id, 64), 36);
    }

    #[test]
    fn after_the_first_cut_a_whole_round_within_the_target_adds_one() {
        let pace = Pace::default();
        let id = Uuid::new_v4();
        for _ in 0..8 {
            pace.frozen(id, Utc::now(), FAST);
        }
        assert_eq!(pace.window(id, 64), 16);
        pace.frozen(id, Utc::now(), SLOW);
        assert_eq!(pace.window(id, 64), 12);
        // Eleven fast moves are not yet a round of twelve; the twelfth is.
        for _ in 0..11 {
            pace.frozen(id, Utc::now(), FAST);
        }
        assert_eq!(pace.window(id, 64), 12);
        pace.frozen(id, Utc::now(), FAST);
        assert_eq!(pace.window(id, 64), 13);
    }

    #[test]
    fn cuts_never_stop_a_migration() {
        let pace = Pace::default();
        let id = Uuid::new_v4();
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(1));
            pace.frozen(id, Utc::now(), SLOW);
        }
        assert_eq!(pace.window(id, 64), 1);
        pace.frozen(id, Utc::now(), FAST);
        assert_eq!(pace.window(id, 64), 2);
        // Back near the ceiling, one fast round at a time, never past it.
        for _ in 0..10_000 {
            pace.frozen(id, Utc::now(), FAST);
        }
        assert_eq!(pace.window(id, 64), 64);
    }
}

//! The feeder: starts the planned moves of running migrations, a few at a time.
//!
//! A migration's plan is stored at once; its moves start here, in account order, as fast as
//! its controls let:
//! - at most `in_flight_max` moves of a migration (its start says; default and most
//!   [`IN_FLIGHT_MAX`]) are under way at a time, and fewer while moves keep their accounts
//!   frozen longer than they should ([`crate::pace`]: the window);
//! - at most `rate_per_s` are started a second (a token bucket per migration in this
//!   process, bursting one second's worth; 0: the window alone decides);
//! - a `paused` or `stopped` migration starts nothing; moves under way finish, so no account
//!   is left frozen or marked while the migration waits;
//! - a migration stops by itself (`stopped`, with the figures as its reason) once its failed
//!   or mismatched moves (a saga compensated with a code that is not a refusal, or paused
//!   past its pivot) pass `max_error_ratio` of the moves settled, the ratio taken over at
//!   least [`RATIO_FLOOR`] moves so that the first failures of a canary stop it only when
//!   they are more than the ratio of twenty (at 0.05: the second failure). A resume accepts
//!   the errors so far: the ratio counts the moves settled after it.
//!
//! The feeder of every replica may start the same move: the saga's id derives from
//! (migration, account) and the move row changes from `planned` only once, so it starts once.
//! The rate is per replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::MigrationError;
use crate::app::Migrations;
use crate::store::{self, ControlRow};

/// Moves of one migration under way at a time, unless its start names a smaller window.
pub const IN_FLIGHT_MAX: i64 = 64;

/// The error ratio is taken over at least this many settled moves.
pub const RATIO_FLOOR: i64 = 20;

/// How often the feeder looks when nothing wakes it.
const TICK: Duration = Duration::from_millis(200);

/// Who the feeder's own changes are made by.
pub const FEEDER: &str = "migration feeder";

/// A migration's moves as the feeder counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub in_flight: i64,
    pub errors: i64,
    pub settled: i64,
}

impl Tally {
    /// The moves settled after a resume that accepted `errors` of `settled`.
    pub fn since(self, errors: i64, settled: i64) -> Tally {
        Tally {
            in_flight: self.in_flight,
            errors: (self.errors - errors).max(0),
            settled: (self.settled - settled).max(0),
        }
    }

    /// Counts the moves in state `moving` by their saga's (status, failure, how many).
    pub fn of(standings: &[(String, String, i64)]) -> Tally {
        let mut tally = Tally::default();
        for (status, failure, moves) in standings {
            match status.as_str() {
                "completed" => tally.settled += moves,
                "compensated" => {
                    tally.settled += moves;
                    if !crate::moves::is_refusal(failure) {
                        tally.errors += moves;
                    }
                }
                "paused" => {
                    tally.settled += moves;
                    tally.errors += moves;
                }
                _ => tally.in_flight += moves,
            }
        }
        tally
    }
}

/// Why the migration must stop, when its errors pass `max_ratio` of the moves settled
/// (taken over at least [`RATIO_FLOOR`]).
pub fn verdict(tally: Tally, max_ratio: Decimal) -> Option<String> {
    let over = Decimal::from(tally.settled.max(RATIO_FLOOR));
    (tally.errors > 0 && Decimal::from(tally.errors) > max_ratio * over).then(|| {
        let share = if tally.settled > 0 {
            (Decimal::from(tally.errors * 100) / Decimal::from(tally.settled)).round_dp(1)
        } else {
            Decimal::ZERO
        };
        format!(
            "error_rate: {} of {} settled moves failed or mismatched ({share}%), more than \
             max_error_ratio {max_ratio} (taken over at least {RATIO_FLOOR} moves)",
            tally.errors, tally.settled
        )
    })
}

/// A token bucket: `rate` a second, bursting one second's worth; in thousandths of a move.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    millis: i64,
    at: Instant,
}

/// The feeder's state in this process.
#[derive(Debug, Default)]
pub(crate) struct FeedState {
    buckets: Mutex<HashMap<Uuid, Bucket>>,
    pub(crate) wake: tokio::sync::Notify,
}

impl FeedState {
    /// How many moves `rate` a second lets start now (`i64::MAX` without a rate).
    fn allowance(&self, migration: Uuid, rate: i64) -> i64 {
        if rate <= 0 {
            return i64::MAX;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let bucket = buckets.entry(migration).or_insert(Bucket {
            millis: 1_000,
            at: now,
        });
        let elapsed = i64::try_from(now.duration_since(bucket.at).as_millis()).unwrap_or(i64::MAX);
        bucket.millis = bucket
            .millis
            .saturating_add(elapsed.saturating_mul(rate))
            .min(rate.max(1).saturating_mul(1_000));
        bucket.at = now;
        bucket.millis / 1_000
    }

    fn spend(&self, migration: Uuid, started: usize) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(&migration) {
            let started = i64::try_from(started).unwrap_or(i64::MAX);
            bucket.millis = bucket.millis.saturating_sub(started.saturating_mul(1_000));
        }
    }
}

impl Migrations {
    /// Feeds the running migrations until `shutdown`.
    pub fn spawn_feeder(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let migrations = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = migrations.feed_state().wake.notified() => {}
                    () = tokio::time::sleep(TICK) => {}
                }
                if let Err(error) = migrations.feed().await {
                    tracing::warn!(error = %error, code = error.code(), "migration feeder");
                }
            }
        })
    }

    /// One round: each running migration gets as many new moves as its controls let.
    pub async fn feed(&self) -> Result<usize, MigrationError> {
        let controls = self
            .db()
            .run_tx("migration_feed_controls", |tx| {
                Box::pin(async move { store::running_controls(&tx).await })
            })
            .await?;
        let mut started = 0;
        for control in controls {
            started += self.feed_one(&control).await?;
        }
        if started > 0 {
            self.executor().nudge();
        }
        Ok(started)
    }

    async fn feed_one(&self, control: &ControlRow) -> Result<usize, MigrationError> {
        let id = control.migration_id;
        let tally = self
            .db()
            .run_tx("migration_feed_tally", |tx| {
                Box::pin(async move { tally(&tx, id, false).await })
            })
            .await?;
        let max_ratio: Decimal = control.max_error_ratio.parse().unwrap_or(Decimal::ONE);
        let since = tally.since(control.errors_accepted, control.settled_accepted);
        if let Some(reason) = verdict(since, max_ratio) {
            let reason = &reason;
            let stopped = self
                .db()
                .run_tx("migration_stop", |tx| {
                    Box::pin(async move {
                        store::change_control(&tx, id, "running", "stopped", reason, FEEDER).await
                    })
                })
                .await?;
            if stopped {
                tracing::warn!(migration = %id, reason = %reason, "migration stopped by itself");
            }
            return Ok(0);
        }
        let ceiling = if control.in_flight_max > 0 {
            control.in_flight_max.min(IN_FLIGHT_MAX)
        } else {
            IN_FLIGHT_MAX
        };
        let window = self.peers().pace.window(id, ceiling);
        let allowed = (window - tally.in_flight)
            .min(self.feed_state().allowance(id, control.rate_per_s))
            .min(window);
        if allowed <= 0 {
            return Ok(0);
        }
        let registry = self.registry();
        let chunk = crate::chunks::chunk_size(window);
        let started = self
            .db()
            .run_tx("migration_feed", |tx| {
                Box::pin(async move {
                    let Some(migration) = store::migration(&tx, id).await? else {
                        return Ok(0);
                    };
                    let next = store::next_planned(&tx, &migration, allowed).await?;
                    if next.is_empty() {
                        store::change_control(
                            &tx,
                            id,
                            "running",
                            "fed",
                            "every planned move has started",
                            FEEDER,
                        )
                        .await?;
                        return Ok(0);
                    }
                    let mut started = 0;
                    for chunk in next.chunks(chunk) {
                        started += start_chunk(&tx, registry, id, chunk).await?;
                    }
                    Ok(started)
                })
            })
            .await?;
        self.feed_state().spend(id, started);
        if started > 0 {
            tracing::debug!(migration = %id, started, in_flight = tally.in_flight, "moves started");
        }
        Ok(started)
    }
}

/// Starts the moves of `chunk` (planned, in account order): one account by its own saga,
/// more by one chunk saga ([`crate::chunks`]). How many started.
async fn start_chunk(
    tx: &corebank_db::Transaction<'_>,
    registry: &corebank_saga::Registry,
    migration: Uuid,
    chunk: &[crate::moves::MoveInput],
) -> Result<usize, corebank_db::TxError<MigrationError>> {
    let Some(first) = chunk.first() else {
        return Ok(0);
    };
    let new = if let [input] = chunk {
        input.own_saga()
    } else {
        corebank_saga::NewSaga {
            id: crate::chunks::saga_id(&first.migration_id, &first.account_id),
            saga_type: crate::chunks::SAGA_TYPE.to_owned(),
            input: crate::chunks::input(&first.migration_id, chunk),
            business_key: format!("{} (+{})", first.account_id, chunk.len() - 1),
        }
    };
    let mut started = 0;
    for input in chunk {
        let account = Uuid::parse_str(&input.account_id)
            .map_err(|e| corebank_db::TxError::Abort(MigrationError::internal(e)))?;
        if store::set_moving(tx, migration, account, new.id).await? {
            started += 1;
        }
    }
    // Every account of the chunk was planned in this transaction (a feeder on another
    // replica that took one first makes this one retry and read it taken).
    if started < chunk.len() {
        return Err(corebank_db::TxError::Abort(MigrationError::internal(
            format!(
                "{} of the chunk's {} planned moves were taken meanwhile",
                chunk.len() - started,
                chunk.len()
            ),
        )));
    }
    crate::app::start_saga(tx, registry, new).await?;
    Ok(started)
}

/// The migration's moves as the feeder counts them; the moved ones are counted when there
/// are errors to weigh, or `always`.
pub(crate) async fn tally(
    tx: &corebank_db::Transaction<'_>,
    id: Uuid,
    always: bool,
) -> Result<Tally, corebank_db::TxError<MigrationError>> {
    let mut tally = Tally::of(&store::moving_standings(tx, id).await?);
    if always || tally.errors > 0 {
        tally.settled += store::count_in_state(tx, id, "moved").await?;
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(status: &str, failure: &str, moves: i64) -> (String, String, i64) {
        (status.to_owned(), failure.to_owned(), moves)
    }

    #[test]
    fn refusals_are_settled_but_not_errors_and_paused_moves_are_errors() {
        let tally = Tally::of(&[
            standing("running", "", 3),
            standing("compensating", "", 1),
            standing(
                "compensated",
                "step freeze failed: account_frozen: posting restricted",
                2,
            ),
            standing(
                "compensated",
                "step freeze failed: unknown_account: gone",
                1,
            ),
            standing("paused", "", 1),
        ]);
        assert_eq!(
            tally,
            Tally {
                in_flight: 4,
                errors: 2,
                settled: 4
            }
        );
    }

    #[test]
    fn a_migration_stops_once_its_errors_pass_the_ratio_over_at_least_twenty_moves() {
        let ratio = Decimal::new(5, 2);
        let tally = |errors, settled| Tally {
            in_flight: 0,
            errors,
            settled,
        };
        assert_eq!(verdict(tally(0, 500), ratio), None);
        // The first failure of a canary is one in twenty: not more than 5%.
        assert_eq!(verdict(tally(1, 1), ratio), None);
        let second = verdict(tally(2, 3), ratio).unwrap();
        assert!(second.starts_with("error_rate: 2 of 3 settled"), "{second}");
        assert_eq!(verdict(tally(5, 100), ratio), None);
        assert!(verdict(tally(6, 100), ratio).is_some());
        // A ratio of 0 stops at the first failure.
        assert!(verdict(tally(1, 1), Decimal::ZERO).is_some());
    }

    #[test]
    fn a_rate_lets_one_seconds_worth_start_at_most() {
        let state = FeedState::default();
        let id = Uuid::new_v4();
        assert_eq!(state.allowance(id, 0), i64::MAX);
        assert_eq!(state.allowance(id, 5), 1);
        state.spend(id, 1);
        assert_eq!(state.allowance(id, 5), 0);
        std::thread::sleep(Duration::from_millis(450));
        assert!((1..=3).contains(&state.allowance(id, 5)));
    }
}

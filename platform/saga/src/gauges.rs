//! The `corebank_sagas{saga_type,status}` gauge: how many sagas are in each status, counted
//! from the store every interval. A status whose last saga left it goes back to 0, so an
//! alert on "paused above 0" clears once the operators have dealt with every paused saga.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use corebank_db::Db;
use tokio_util::sync::CancellationToken;

use crate::store::{self, Status};

/// The values to set, from the counts read now and the saga types seen before: every status
/// of every saga type seen so far, 0 where no saga of it is left.
pub fn gauge_values(
    seen_types: &mut BTreeSet<String>,
    counts: Vec<(String, Status, i64)>,
) -> BTreeMap<(String, &'static str), i64> {
    let mut values = BTreeMap::new();
    for (saga_type, status, count) in counts {
        seen_types.insert(saga_type.clone());
        values.insert((saga_type, status.as_str()), count);
    }
    for saga_type in seen_types.iter() {
        for status in Status::ALL {
            values
                .entry((saga_type.clone(), status.as_str()))
                .or_insert(0);
        }
    }
    values
}

/// Publishes how many sagas are in each status (`corebank_sagas`), every `interval`.
pub fn spawn_status_gauges(
    db: Db,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen_types = BTreeSet::new();
        loop {
            let counts = db
                .run_tx("saga_counts", |tx| {
                    Box::pin(async move { store::count_by_status(&tx).await })
                })
                .await;
            match counts {
                Ok(counts) => {
                    for ((saga_type, status), count) in gauge_values(&mut seen_types, counts) {
                        metrics::gauge!("corebank_sagas", "saga_type" => saga_type, "status" => status)
                            .set(f64::from(i32::try_from(count).unwrap_or(i32::MAX)));
                    }
                }
                Err(error) => tracing::warn!(error = %error, "counting sagas failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_whose_last_saga_left_goes_back_to_zero() {
        let mut seen = BTreeSet::new();
        let first = gauge_values(
            &mut seen,
            vec![
                ("payments.outbound".to_owned(), Status::Paused, 2),
                ("payments.outbound".to_owned(), Status::Completed, 5),
            ],
        );
        assert_eq!(first[&("payments.outbound".to_owned(), "paused")], 2);
        assert_eq!(first[&("payments.outbound".to_owned(), "running")], 0);
        // The operators resolved both paused sagas: no row for `paused` any more.
        let second = gauge_values(
            &mut seen,
            vec![("payments.outbound".to_owned(), Status::Completed, 7)],
        );
        assert_eq!(second[&("payments.outbound".to_owned(), "paused")], 0);
        assert_eq!(second[&("payments.outbound".to_owned(), "completed")], 7);
        assert_eq!(second.len(), Status::ALL.len());
        // A saga type with no saga left at all still reads 0, not its last count.
        let third = gauge_values(&mut seen, vec![]);
        assert!(third.values().all(|count| *count == 0), "{third:?}");
        assert_eq!(third.len(), Status::ALL.len());
    }
}

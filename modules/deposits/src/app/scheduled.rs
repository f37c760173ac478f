//! The scheduled job: interest, dormancy, expired holds and requests in doubt, on a timer.

use super::Deposits;

impl Deposits {
    /// The scheduled job: interest up to yesterday, dormancy, expired holds, requests in
    /// doubt; every `interval` until `shutdown`.
    pub async fn run_scheduled(
        &self,
        interval: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let yesterday = self.business_today().pred_opt();
            if let Some(yesterday) = yesterday {
                match self.accrue(yesterday, &|_, _| {}).await {
                    Ok(report) if report.accounts > 0 => {
                        tracing::info!(accounts = report.accounts, entries = report.accrual_entries, postings = report.postings, failed = report.failed, through = %yesterday, "interest accrued");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "interest accrual failed; the next run tries again")
                    }
                }
            }
            if let Err(error) = self.mark_dormant().await {
                tracing::warn!(%error, "marking dormant accounts failed");
            }
            if let Err(error) = self.expire_holds().await {
                tracing::warn!(%error, "closing expired holds failed");
            }
            if let Err(error) = self.recover_in_doubt().await {
                tracing::warn!(%error, "settling requests in doubt failed");
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

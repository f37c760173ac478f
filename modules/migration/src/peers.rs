//! The parts an account's move goes through, each reached as the `migration` component: the
//! gateway's directory, the legacy adapter (freeze, empty, export; its accounts for a
//! cross-side transfer), and modern deposits (import, read, cross-side transfers).

use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::deposits::v1::deposits_migration_client::DepositsMigrationClient;
use corebank_api::gateway::v1::account_homes_client::AccountHomesClient;
use corebank_api::legacy::v1::legacy_export_client::LegacyExportClient;
use corebank_api::legacy::v1::legacy_migration_client::LegacyMigrationClient;
use std::sync::Arc;

use tonic::transport::Channel;

use crate::pace::Pace;

/// The clients of a move.
#[derive(Debug, Clone)]
pub struct Peers {
    pub homes: AccountHomesClient<Channel>,
    pub legacy: LegacyMigrationClient<Channel>,
    pub export: LegacyExportClient<Channel>,
    /// The legacy core's accounts through the adapter's Deposits contract (cross-side
    /// transfers).
    pub legacy_deposits: DepositsClient<Channel>,
    pub import: DepositsMigrationClient<Channel>,
    pub modern: DepositsClient<Channel>,
    /// Where each move says how long it kept its account frozen, and the feeder reads how
    /// many moves may run at once.
    pub pace: Arc<Pace>,
}

impl Peers {
    /// The clients over a channel to the gateway's internal listener, one to the legacy
    /// adapter and one to modern deposits.
    pub fn new(gateway: Channel, adapter: Channel, deposits: Channel) -> Peers {
        Peers {
            homes: AccountHomesClient::new(gateway),
            legacy: LegacyMigrationClient::new(adapter.clone()),
            legacy_deposits: DepositsClient::new(adapter.clone()),
            export: LegacyExportClient::new(adapter),
            import: DepositsMigrationClient::new(deposits.clone()),
            modern: DepositsClient::new(deposits),
            pace: Arc::default(),
        }
    }
}

//! `corebank token`: dev tokens for each role, signed with the dev key under
//! `COREBANK_HOME/dev-keys` (created when missing) that the gateway trusts when
//! `COREBANK_JWT_JWKS` is not set.

use std::time::Duration;

use anyhow::Context as _;
use corebank_gateway::auth::dev::{self, Role};

/// The roles, as the command line names them.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    /// A bank's channel (`/v1`): accounts:read accounts:write payments:write.
    Channel,
    /// A migration team member (`/admin/v1`): routes:read routes:write.
    Operator,
    /// A second operator who approves: routes:read routes:approve sagas:approve payments:approve
    /// products:approve.
    Approver,
    /// A regulator's auditor: audit:read.
    Auditor,
}

impl RoleArg {
    fn role(self) -> Role {
        match self {
            RoleArg::Channel => Role::Channel,
            RoleArg::Operator => Role::Operator,
            RoleArg::Approver => Role::Approver,
            RoleArg::Auditor => Role::Auditor,
        }
    }
}

/// How long the dev tokens `up` prints are valid.
#[cfg(feature = "mocks")]
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3_600);

/// A signed dev token for `role`.
pub fn mint(
    settings: &corebank_service::Settings,
    role: RoleArg,
    subject: Option<&str>,
    customer: Option<&str>,
    ttl: Duration,
) -> anyhow::Result<String> {
    let keys = dev::ensure_dev_keys(&settings.home).with_context(|| {
        format!(
            "creating the dev signing key under {} (set COREBANK_HOME to a writable folder)",
            settings.home.display()
        )
    })?;
    let role = role.role();
    let subject = subject.map_or_else(|| format!("dev-{}", role.name()), str::to_owned);
    dev::mint(&keys, &settings.jwt_issuer, role, &subject, customer, ttl)
        .context("signing the dev token")
}

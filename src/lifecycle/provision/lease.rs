//! The per-user lease in the store that first sight, deactivation and grant calls all
//! hold while they call the app, so that calls for one user reach it one at a time and in
//! order, across replicas. Here: how long a lease lasts, waiting for one, and taking one
//! for an operator action.

use std::time::Duration;

use super::client;
use super::{Accounts, ProvisionError};
use crate::policy::connector::Connector;
use crate::policy::AppPolicy;
use crate::store::AccountKey;

/// How often a waiting replica re-reads the store.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// How long one replica may hold the right to provision a user: the longest first sight
/// (lookup, create, lookup again after a 409, update) with every attempt timing out and
/// every backoff slept, plus slack.
pub(super) fn lease_for(connector: &Connector) -> Duration {
    let per_op = connector.timeout * (connector.retries + 1)
        + client::total_backoff(connector.retries)
        + Duration::from_secs(1);
    per_op * 4 + Duration::from_secs(2)
}

impl Accounts {
    /// Someone else holds the lease: wait until it is free (or has expired).
    pub(super) async fn wait_for_lease(
        &self,
        key: AccountKey<'_>,
        lease: Duration,
    ) -> Result<(), ProvisionError> {
        let deadline = tokio::time::Instant::now() + lease;
        loop {
            tokio::time::sleep(WAIT_POLL).await;
            if !self.store.provisioning_claimed(key).await? {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProvisionError::Busy);
            }
        }
    }

    /// Takes the user's lease for an operator action, waiting for provisioning in flight.
    pub(super) async fn operator_lease(
        &self,
        app: &AppPolicy,
        key: AccountKey<'_>,
    ) -> Result<String, ProvisionError> {
        let owner = format!("{}-operator", self.owner);
        let lease = app
            .provisioning
            .as_deref()
            .map(lease_for)
            .unwrap_or(Duration::from_secs(30));
        for _ in 0..3 {
            if self
                .store
                .claim_provisioning(key, &owner, lease.as_secs() as i64)
                .await?
            {
                return Ok(owner);
            }
            self.wait_for_lease(key, lease).await?;
        }
        Err(ProvisionError::Busy)
    }
}

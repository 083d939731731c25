//! What the operator commands (`jitgate accounts …`, `jitgate grants …`) share: a small
//! runtime for one command, and the accounts service as the proxy builds it.

use std::sync::Arc;

use crate::config::Config;
use crate::lifecycle::provision::Accounts;
use crate::store::Store;
use crate::telemetry::audit::Audit;
use crate::telemetry::metrics::Metrics;

/// The operator's name as audit events record it (`operator:<name>`): `$USER`.
pub fn name() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}

/// A single-threaded runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// The accounts service over `store`, with the config's settings (its metrics stay local).
pub fn accounts(store: Arc<dyn Store>, config: &Config) -> Result<Accounts, String> {
    let metrics = Metrics::new().map_err(|e| e.to_string())?;
    Ok(Accounts::new(
        store.clone(),
        Audit::new(store),
        metrics,
        config.session.revalidate_after,
    ))
}

//! `jitgate grants list | approve | deny | revoke`: operators' view of elevated access.
//!
//! Decisions made here are recorded as by `operator:<$USER>`. An operator's approval
//! activates a grant at once (break-glass), and is audited like any other decision. Other
//! replicas see the change within `grants::RECHECK_AFTER`.

use std::sync::Arc;

use crate::config::Config;
use crate::lifecycle::grants::{Actor, Grants};
use crate::policy::PolicySet;
use crate::store::{self, Store};
use crate::telemetry::audit::Audit;

#[derive(Debug, thiserror::Error)]
pub enum GrantsCliError {
    #[error(transparent)]
    Grant(#[from] crate::lifecycle::grants::GrantError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot start: {0}")]
    Runtime(String),
}

/// What an operator does to one grant.
#[derive(Debug, Clone, Copy)]
pub enum Decision {
    Approve,
    Deny,
    Revoke,
}

fn runtime() -> Result<tokio::runtime::Runtime, GrantsCliError> {
    crate::cli::operator::runtime().map_err(GrantsCliError::Runtime)
}

fn operator() -> Actor {
    Actor::operator(&crate::cli::operator::name())
}

/// `jitgate grants list [--app APP] [--status STATUS]`
pub fn list(
    config: &Config,
    app: Option<&str>,
    status: Option<&str>,
) -> Result<String, GrantsCliError> {
    let rows = runtime()?.block_on(async {
        let store = store::open(&config.store_url).await?;
        store.list_grants(app, status).await
    })?;
    let now = crate::util::clock::now_ms();
    let mut out = format!(
        "{:<20} {:<10} {:<14} {:<12} {:<9} {:<10} {:<14} {}\n",
        "ID", "APP", "TYPE", "USER", "STATUS", "LEFT", "TICKET", "PURPOSE"
    );
    for g in &rows {
        let left = match (g.status.as_str(), g.expires_at) {
            ("active", Some(e)) if e > now => format!("{}s", (e - now) / 1000),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<20} {:<10} {:<14} {:<12} {:<9} {:<10} {:<14} {}\n",
            g.id,
            g.app,
            g.grant_type,
            g.username,
            g.status,
            left,
            g.ticket.as_deref().unwrap_or("-"),
            g.purpose
        ));
    }
    out.push_str(&format!("{} grant(s)\n", rows.len()));
    Ok(out)
}

/// `jitgate grants approve|deny|revoke ID`
pub fn decide(
    config: &Config,
    policies: &PolicySet,
    id: &str,
    decision: Decision,
) -> Result<String, GrantsCliError> {
    runtime()?.block_on(async {
        let store: Arc<dyn Store> = Arc::new(store::open(&config.store_url).await?);
        let accounts = Arc::new(
            crate::cli::operator::accounts(store.clone(), config)
                .map_err(GrantsCliError::Runtime)?,
        );
        let grants = Grants::new(
            store.clone(),
            Audit::new(store),
            crate::lifecycle::grants::RECHECK_AFTER,
            Some(accounts),
        );
        let actor = operator();
        let grant = match decision {
            Decision::Approve => grants.approve(policies, id, &actor, None).await?,
            Decision::Deny => grants.deny(policies, id, &actor, None).await?,
            Decision::Revoke => grants.revoke(policies, id, &actor, None).await?,
        };
        Ok(format!(
            "{} ({} {} for {}): now {}\n",
            grant.id, grant.app, grant.grant_type, grant.username, grant.status
        ))
    })
}

//! `jitgate accounts test --app APP --op list`: what the connector's `list` reads from the
//! app, page by page, printed as a table (id, username, role, admin flag, active flag) with
//! a count. Reading changes nothing in the app or in jitgate's records; each page's call is
//! audited like every connector call.

use std::sync::Arc;

use super::accounts::AccountsError;
use crate::config::Config;
use crate::policy::{AppPolicy, PolicySet};
use crate::store::{self, Store};

/// Lists the app's accounts through the connector.
pub fn list(
    config: &Config,
    policies: &PolicySet,
    app_name: &str,
) -> Result<String, AccountsError> {
    let app = policies
        .apps()
        .iter()
        .find(|a| a.name == app_name)
        .ok_or_else(|| AccountsError::UnknownApp(app_name.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AccountsError::Runtime(e.to_string()))?;
    runtime.block_on(read(config, app))
}

async fn read(config: &Config, app: &AppPolicy) -> Result<String, AccountsError> {
    let store: Arc<dyn Store> = Arc::new(store::open(&config.store_url).await?);
    let accounts = crate::cli::operator::accounts(store, config).map_err(AccountsError::Runtime)?;
    let listed = accounts.list_app(app).await?;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let flag = |v: Option<bool>| match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    let mut out = format!(
        "{:<24} {:<24} {:<12} {:<6} {:<6}\n",
        "account id", "username", "role", "admin", "active"
    );
    for a in &listed {
        out.push_str(&format!(
            "{:<24} {:<24} {:<12} {:<6} {:<6}\n",
            a.account_id,
            show(&a.username),
            show(&a.role),
            flag(a.elevated),
            flag(a.active)
        ));
    }
    out.push_str(&format!("{} account(s) in {}\n", listed.len(), app.name));
    Ok(out)
}

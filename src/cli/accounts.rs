//! `jitgate accounts list | deactivate | reactivate | test`: operators' view of provisioned accounts.
//!
//! `list` shows every account jitgate keeps in an app (or in every app) with when it was created and last
//! used, so dormant accounts stand out. `deactivate` is the leaver by hand: the connector's
//! `deactivate` call, the user's sessions on the app's hosts ended, the record marked (so
//! jitgate does not quietly re-create the account). `reactivate` undoes that.
//! `test` prints the exact requests a connector would send for some claims (secret masked)
//! and, with `--send`, runs the first-sight sequence against the app without storing
//! anything, so a connector can be written and debugged before any user logs in.

use std::path::Path;
use std::sync::Arc;

use crate::auth::identity::Identity;
use crate::config::Config;
use crate::lifecycle::grants::Grants;
use crate::lifecycle::provision::client::{http_client, send};
use crate::lifecycle::provision::{context, Accounts, Because};
use crate::policy::connector::template::AccountVars;
use crate::policy::connector::{Connector, OpName, Outcome};
use crate::policy::{AppPolicy, PolicySet};
use crate::store::{self, AccountKey, AccountRecord, Store};

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("no app named `{0}` in the policies")]
    UnknownApp(String),
    #[error("app `{0}` has no `provisioning:` section")]
    NoConnector(String),
    #[error("no account of `{user}` in {app} (match by username or sub; see `jitgate accounts list --app {app}`)")]
    UnknownUser { app: String, user: String },
    #[error("`{user}` matches {count} accounts in {app}: give the sub instead")]
    Ambiguous {
        app: String,
        user: String,
        count: usize,
    },
    #[error("the account of `{0}` is already deactivated")]
    AlreadyDeactivated(String),
    #[error("the account of `{0}` is not deactivated")]
    NotDeactivated(String),
    #[error("cannot read claims from {0}: {1}")]
    Claims(String, String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Provision(#[from] crate::lifecycle::provision::ProvisionError),
    #[error(transparent)]
    Connector(#[from] crate::policy::connector::ConnectorError),
    #[error("cannot start: {0}")]
    Runtime(String),
    #[error(
        "say why with --reason (one line, at most 500 characters); it goes into the audit trail"
    )]
    BadReason,
    #[error(transparent)]
    Grant(#[from] crate::lifecycle::grants::GrantError),
}

fn runtime() -> Result<tokio::runtime::Runtime, AccountsError> {
    crate::cli::operator::runtime().map_err(AccountsError::Runtime)
}

fn app<'a>(policies: &'a PolicySet, name: &str) -> Result<&'a Arc<AppPolicy>, AccountsError> {
    policies
        .apps()
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| AccountsError::UnknownApp(name.to_string()))
}

fn when(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// `jitgate accounts list [--app APP]`: one app's accounts, or every app's.
pub fn list(
    config: &Config,
    policies: &PolicySet,
    app_name: Option<&str>,
) -> Result<String, AccountsError> {
    let apps: Vec<&Arc<AppPolicy>> = match app_name {
        Some(name) => vec![app(policies, name)?],
        None => policies.apps().iter().collect(),
    };
    let rt = runtime()?;
    let (rows, jobs) = rt.block_on(async {
        let store = store::open(&config.store_url).await?;
        let mut rows = Vec::new();
        for app in &apps {
            rows.extend(store.list_accounts(&app.name).await?);
        }
        let jobs = store
            .list_lifecycle_jobs(&["pending", "running", "failed"], 1000)
            .await?;
        Ok::<_, AccountsError>((rows, jobs))
    })?;
    let now = crate::util::clock::now_secs();
    let mut out = format!(
        "{:<12} {:<20} {:<24} {:<16} {:<16} {:<16} {:<9} {}\n",
        "APP", "USER", "SUB", "ACCOUNT ID", "CREATED", "LAST SEEN", "IDLE", "STATUS"
    );
    for r in &rows {
        let status = match r.deactivated_at {
            Some(t) => format!("deactivated {}", when(t)),
            None => "active".to_string(),
        };
        out.push_str(&format!(
            "{:<12} {:<20} {:<24} {:<16} {:<16} {:<16} {:<9} {}\n",
            r.app,
            r.username,
            r.sub,
            r.account_id,
            when(r.created_at),
            when(r.last_seen),
            format!("{}d", (now - r.last_seen).max(0) / 86_400),
            status
        ));
    }
    let scope = match app_name {
        Some(name) => name.to_string(),
        None => format!("{} app(s)", apps.len()),
    };
    out.push_str(&format!("{} account(s) in {scope}\n", rows.len()));
    out.push_str(&queued_calls(&jobs, app_name));
    Ok(out)
}

/// The app calls the lifecycle queue still has to make (or gave up on), e.g. a leaver's
/// deactivation in an app that is down.
fn queued_calls(jobs: &[crate::store::LifecycleJob], app_name: Option<&str>) -> String {
    let mut lines = Vec::new();
    for job in jobs.iter().filter(|j| j.kind == "deactivate_account") {
        let subject: serde_json::Value = serde_json::from_str(&job.subject).unwrap_or_default();
        let app = subject["app"].as_str().unwrap_or("?");
        if app_name.is_some_and(|name| name != app) {
            continue;
        }
        lines.push(format!(
            "{:<12} {:<24} {:<8} {:<8} {:<16} {:<16} {}\n",
            app,
            subject["sub"].as_str().unwrap_or("?"),
            job.state,
            job.attempts,
            when(job.next_at_ms / 1000),
            job.by,
            job.last_error.as_deref().unwrap_or("-")
        ));
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\nqueued deactivations (leavers from the directory):\n{:<12} {:<24} {:<8} {:<8} {:<16} {:<16} {}\n",
        "APP", "SUB", "STATE", "ATTEMPTS", "NEXT TRY", "BY", "LAST ERROR"
    );
    out.extend(lines);
    out
}

/// The one record of `user` (username or sub) in `app`, and the services to act on it.
async fn operator_target(
    config: &Config,
    app: &AppPolicy,
    user: &str,
) -> Result<(Accounts, AccountRecord), AccountsError> {
    let store: Arc<dyn Store> = Arc::new(store::open(&config.store_url).await?);
    let rows = store.list_accounts(&app.name).await?;
    let mut matching = rows
        .into_iter()
        .filter(|r| r.sub == user || r.username == user);
    let record = match (matching.next(), matching.count()) {
        (None, _) => {
            return Err(AccountsError::UnknownUser {
                app: app.name.clone(),
                user: user.to_string(),
            })
        }
        (Some(one), 0) => one,
        (Some(_), more) => {
            return Err(AccountsError::Ambiguous {
                app: app.name.clone(),
                user: user.to_string(),
                count: more + 1,
            })
        }
    };
    let accounts = crate::cli::operator::accounts(store, config).map_err(AccountsError::Runtime)?;
    Ok((accounts, record))
}

/// `jitgate accounts deactivate --app APP --user USER --reason TEXT`
///
/// In this order: the account is deactivated in the app and marked (from then on no grant
/// can be asked for or approved), the user's sessions on the app's hosts end, their active
/// grants in the app are revoked and pending requests denied, and the grants' end calls are
/// made (one that fails stays due, and a running jitgate retries it). On an account that is
/// deactivated already, only the grant steps run: that finishes a run that stopped half-way.
pub fn deactivate(
    config: &Config,
    policies: &PolicySet,
    app_name: &str,
    user: &str,
    reason: &str,
) -> Result<String, AccountsError> {
    let app = app(policies, app_name)?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().any(char::is_control) || reason.chars().count() > 500 {
        return Err(AccountsError::BadReason);
    }
    let actor = crate::lifecycle::grants::Actor::operator(&crate::cli::operator::name());
    runtime()?.block_on(async {
        let (accounts, record) = operator_target(config, app, user).await?;
        let accounts = Arc::new(accounts);
        // Already deactivated: a run that stopped half-way (say, the store failed while
        // ending grants) is finished by running the command again.
        let again = record.deactivated_at.is_some();
        let done = if again {
            "it was deactivated already".to_string()
        } else {
            let why = Because {
                by: &actor.username,
                reason,
            };
            let (sessions, status) = accounts.deactivate(app, &record, &why).await?;
            let call = match status {
                Some(s) => format!("the app answered HTTP {s}"),
                None => "the connector has no deactivate operation: only jitgate's record changed"
                    .into(),
            };
            format!("{call}; {sessions} session(s) ended")
        };
        let store = accounts.store();
        let grants = Grants::new(
            store.clone(),
            crate::telemetry::audit::Audit::new(store),
            crate::lifecycle::grants::RECHECK_AFTER,
            Some(accounts.clone()),
        );
        let key = AccountKey {
            app: &app.name,
            iss: &record.iss,
            sub: &record.sub,
        };
        let (revoked, denied) = grants.end_all_of(key, &actor, reason).await?;
        if again && revoked + denied == 0 {
            return Err(AccountsError::AlreadyDeactivated(user.to_string()));
        }
        // Every end call that is due, this user's among them; one that fails stays due and
        // a running jitgate retries it.
        let made = grants.run_end_calls(policies).await?;
        Ok(format!(
            "deactivated {} ({}) in {}: {done}; {revoked} grant(s) revoked, {denied} request(s) \
             denied; {made} end call(s) made\n",
            record.username, record.sub, app.name
        ))
    })
}

/// `jitgate accounts reactivate --app APP --user USER`
pub fn reactivate(
    config: &Config,
    policies: &PolicySet,
    app_name: &str,
    user: &str,
) -> Result<String, AccountsError> {
    let app = app(policies, app_name)?;
    runtime()?.block_on(async {
        let (accounts, record) = operator_target(config, app, user).await?;
        if record.deactivated_at.is_none() {
            return Err(AccountsError::NotDeactivated(user.to_string()));
        }
        accounts.reactivate(app, &record).await?;
        Ok(format!(
            "reactivated {} ({}) in {}: through the connector's `reactivate` if it has one, \
             else the account is set up again on their next visit (lookup or create, then \
             update)\n",
            record.username, record.sub, app.name
        ))
    })
}

/// `jitgate accounts test --app APP --claims FILE [--send]`
pub fn test(
    config: &Config,
    policies: &PolicySet,
    app_name: &str,
    claims_file: &Path,
    send_them: bool,
) -> Result<String, AccountsError> {
    let app = app(policies, app_name)?;
    let connector = app
        .provisioning
        .as_ref()
        .ok_or_else(|| AccountsError::NoConnector(app.name.clone()))?;
    let identity = identity_from_file(config, claims_file)?;
    let mut out = String::new();
    let roles = connector.roles_for(identity.groups());
    out.push_str(&format!(
        "user {} (sub {}), roles {:?}\n",
        identity.username, identity.sub, roles
    ));
    if !send_them {
        for op in [
            OpName::Lookup,
            OpName::Create,
            OpName::Update,
            OpName::Deactivate,
            OpName::Reactivate,
        ] {
            let Some(operation) = connector.operation(op) else {
                continue;
            };
            let ctx = context(
                connector,
                &identity,
                op.account_known().then_some("<account id>"),
            );
            let req = connector.request(operation, &ctx)?;
            out.push_str(&format!(
                "\n## {}\n{}",
                op.as_str(),
                req.display_masked(&connector.auth)
            ));
        }
        out.push_str(
            "\n(nothing was sent; add --send to run lookup/create/update against the app)\n",
        );
        return Ok(out);
    }
    let rt = runtime()?;
    rt.block_on(trial(connector, &identity, &mut out))?;
    Ok(out)
}

/// The first-sight sequence, printed step by step; nothing is stored.
async fn trial(
    connector: &Connector,
    identity: &Identity,
    out: &mut String,
) -> Result<(), AccountsError> {
    let http = http_client();
    let mut account_id: Option<String> = None;
    let mut ctx = context(connector, identity, None);
    let step = |op: OpName, ctx: &crate::policy::connector::template::TemplateContext| {
        let operation = connector.operation(op).cloned();
        let request = operation.as_ref().map(|o| connector.request(o, ctx));
        (operation, request)
    };
    let mut plan = vec![];
    if connector.lookup.is_some() {
        plan.push(OpName::Lookup);
    }
    plan.push(OpName::Create);
    let mut i = 0;
    while i < plan.len() {
        let op = plan[i];
        i += 1;
        let (Some(operation), Some(request)) = step(op, &ctx) else {
            continue;
        };
        let request = request?;
        out.push_str(&format!(
            "\n## {}\n{}",
            op.as_str(),
            request.display_masked(&connector.auth)
        ));
        let (status, body) = match send(&http, connector, &request).await {
            Ok(answer) => answer,
            Err(e) => {
                out.push_str(&format!("-> no answer: {e}\n"));
                return Ok(());
            }
        };
        let outcome = operation.classify(status);
        let text = String::from_utf8_lossy(&body);
        let shown: String = text.chars().take(2000).collect();
        out.push_str(&format!("-> HTTP {status} ({outcome:?})\n{shown}\n"));
        let found = operation.account_id(&body);
        match (op, outcome) {
            (OpName::Lookup, Outcome::Success) if found.is_some() => {
                account_id = found;
                plan.retain(|o| *o != OpName::Create);
                if connector.update.is_some() && !plan.contains(&OpName::Update) {
                    plan.push(OpName::Update);
                }
            }
            (OpName::Create, Outcome::Success) => account_id = found,
            (OpName::Create, Outcome::Exists) => {
                if connector.lookup.is_some() {
                    plan.push(OpName::Lookup);
                } else if connector.update.is_some() {
                    plan.push(OpName::Update);
                }
            }
            _ => {}
        }
        if let Some(id) = &account_id {
            ctx.account = Some(AccountVars { id: id.clone() });
        }
    }
    match account_id {
        Some(id) => out.push_str(&format!("\naccount id: {id}\n")),
        None => out.push_str("\nno account id was found\n"),
    }
    Ok(())
}

/// Claims from a JSON (or YAML) file; `sub` is required, `iss` defaults to the config's IdP.
fn identity_from_file(config: &Config, path: &Path) -> Result<Identity, AccountsError> {
    let bad = |why: String| AccountsError::Claims(path.display().to_string(), why);
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| bad(format!("expected a JSON object of claims: {e}")))?;
    let sub = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("the claims need a `sub`".into()))?
        .to_string();
    let iss = claims
        .get("iss")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| config.idp.issuer.to_string());
    Ok(Identity::from_claims(
        iss,
        sub,
        claims,
        &config.idp.username_claim,
        &config.idp.groups_claim,
    ))
}

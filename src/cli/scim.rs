//! `jitgate scim status`: what the IdP has pushed, what the SCIM service refused, the
//! lifecycle queue (a leaver's app calls still to make), and the service's recent requests
//! and failures.
//!
//! Reads the store only, so it works beside a running jitgate. The directory's size comes
//! from the store; recent changes and refusals from the audit trail (reads are not audited);
//! every request, reads included, from the SCIM request log (the newest 1,000 with a valid
//! token and 1,000 without, at most a week old; `scim_requests_total` in the metrics counts
//! them all).

use serde_json::Value;

use crate::config::Config;
use crate::store::{self, AuditEvent, ScimRequest, Store};
use crate::util::clock::{now_ms, rfc3339_ms};

/// Audit events read to find the SCIM ones among them.
const AUDIT_WINDOW: i64 = 5_000;
/// Logged requests read (the whole log: both kinds at their bound).
const REQUEST_WINDOW: i64 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum ScimCliError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot start: {0}")]
    Runtime(String),
}

/// `jitgate scim status [--limit N]`
pub fn status(config: &Config, limit: usize) -> Result<String, ScimCliError> {
    let runtime = crate::cli::operator::runtime().map_err(ScimCliError::Runtime)?;
    let (users, groups, events, jobs, requests) = runtime.block_on(async {
        let store = store::open(&config.store_url).await?;
        let users = store.list_directory_users().await?;
        let groups = store.list_directory_groups().await?;
        let events = store.recent_audit(AUDIT_WINDOW).await?;
        let jobs = store
            .list_lifecycle_jobs(&["pending", "running", "failed"], 100_000)
            .await?;
        let requests = store.recent_scim_requests(REQUEST_WINDOW).await?;
        Ok::<_, ScimCliError>((users, groups, events, jobs, requests))
    })?;
    let active = users.iter().filter(|u| u.active).count();
    let mut out = match &config.scim {
        Some(settings) => format!(
            "SCIM service: on ({} token{})\n",
            settings.tokens.len(),
            if settings.tokens.len() == 1 { "" } else { "s" }
        ),
        None => "SCIM service: off (no scim: section in the config)\n".to_string(),
    };
    out.push_str(&format!(
        "directory: {} users ({active} active, {} inactive), {} groups\n",
        users.len(),
        users.len() - active,
        groups.len()
    ));
    out.push_str(&queue_line(&jobs));
    let scim_events: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.kind.starts_with("directory_") || e.kind == "scim_refused")
        .take(limit)
        .collect();
    if scim_events.is_empty() {
        out.push_str("no SCIM changes or refusals in the recent audit trail\n");
        out.push_str(&requests_section(&requests, limit));
        return Ok(out);
    }
    out.push_str(&format!(
        "{:<24} {:<24} {:<14} {}\n",
        "TIME", "EVENT", "BY", "WHAT"
    ));
    for event in scim_events {
        let detail: Value = serde_json::from_str(&event.detail).unwrap_or_default();
        let by = detail["by"].as_str().unwrap_or("-");
        out.push_str(&format!(
            "{:<24} {:<24} {:<14} {}\n",
            rfc3339_ms(event.at_ms).unwrap_or_default(),
            event.kind,
            by,
            what(&detail)
        ));
    }
    out.push_str(&requests_section(&requests, limit));
    Ok(out)
}

/// The newest `limit` requests, then the newest `limit` failures (status 400 and up).
fn requests_section(requests: &[ScimRequest], limit: usize) -> String {
    if requests.is_empty() {
        return "\nno SCIM requests logged\n".to_string();
    }
    let failures: Vec<&ScimRequest> = requests.iter().filter(|r| r.status >= 400).collect();
    let mut out = format!(
        "\nrecent SCIM requests ({} logged, {} failed):\n",
        requests.len(),
        failures.len()
    );
    out.push_str(&request_lines(requests.iter().take(limit)));
    if failures.is_empty() {
        out.push_str("\nno failed SCIM requests logged\n");
    } else {
        out.push_str("\nrecent SCIM failures:\n");
        out.push_str(&request_lines(failures.into_iter().take(limit)));
    }
    out
}

fn request_lines<'a>(requests: impl Iterator<Item = &'a ScimRequest>) -> String {
    let mut out = format!(
        "{:<24} {:<6} {:<6} {:<14} {:<14} {:<24} {}\n",
        "TIME", "METHOD", "STATUS", "SCIMTYPE", "BY", "REQUEST", "PATH"
    );
    for r in requests {
        out.push_str(&format!(
            "{:<24} {:<6} {:<6} {:<14} {:<14} {:<24} {}\n",
            rfc3339_ms(r.at_ms).unwrap_or_default(),
            r.method,
            r.status,
            r.scim_type.as_deref().unwrap_or("-"),
            r.token_label.as_deref().unwrap_or("no token"),
            r.request_id,
            r.path
        ));
    }
    out
}

/// The lifecycle queue in one line: what waits, since when, and what was given up.
fn queue_line(jobs: &[crate::store::LifecycleJob]) -> String {
    let count = |state: &str| jobs.iter().filter(|j| j.state == state).count();
    let oldest = jobs
        .iter()
        .filter(|j| j.state != "failed")
        .map(|j| j.created_at_ms)
        .min()
        .map(|at| format!(", oldest waiting {} s", (now_ms() - at).max(0) / 1000))
        .unwrap_or_default();
    format!(
        "lifecycle queue: {} pending, {} running, {} failed{oldest}\n\n",
        count("pending"),
        count("running"),
        count("failed")
    )
}

/// The resource an event is about (its name and id), or why a request was refused.
fn what(detail: &Value) -> String {
    if let Some(reason) = detail["reason"].as_str() {
        let client = detail["client"].as_str().unwrap_or("unknown address");
        return format!("{reason} from {client}");
    }
    let resource = if detail["after"].is_object() {
        &detail["after"]
    } else {
        &detail["before"]
    };
    let name = resource["userName"]
        .as_str()
        .or_else(|| resource["displayName"].as_str())
        .unwrap_or("?");
    let active = match resource["active"].as_bool() {
        Some(false) => " (inactive)",
        _ => "",
    };
    format!("{name}{active} [{}]", detail["id"].as_str().unwrap_or("?"))
}

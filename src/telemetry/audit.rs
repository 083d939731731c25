//! The audit trail: every state change and every refusal of access is an event.
//!
//! An event is written to the store (the durable record) and as a structured log line with
//! target `jitgate::audit`. Events never contain tokens or cookie values. Login and logout
//! wait for the store write; denials on the request path are written in the background so a
//! slow store cannot slow down answers.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::store::{AuditEvent, Store};
use crate::util::clock::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    Login,
    LoginFailed,
    Logout,
    BackchannelLogout,
    SessionExpired,
    AccessDenied,
    /// One HTTP call to an app's user API (operation, status, latency).
    ProvisioningCall,
    /// jitgate created the user's account in an app.
    AccountCreated,
    /// The account already existed in the app; jitgate recorded it.
    AccountLinked,
    /// jitgate brought the account up to date (mover).
    AccountUpdated,
    /// An operator deactivated the account (leaver).
    AccountDeactivated,
    /// An operator undid a deactivation: the account is set up again on the next visit.
    AccountReactivated,
    /// Setting up an account failed; the user got an error page.
    ProvisioningFailed,
    GrantRequested,
    GrantApproved,
    GrantDenied,
    /// The grant started (auto-approved, or enough approvals).
    GrantActivated,
    GrantRevoked,
    GrantExpired,
    /// The first request served under a grant.
    GrantFirstUsed,
    /// An elevated route was refused for want of an active grant.
    ElevationDenied,
    /// The call made in the app when a grant started or ended (e.g. role to admin and back).
    GrantAppCall,
    /// A grant request or approval was refused because the user's account in the app is
    /// deactivated.
    GrantRefused,
    /// The IdP created a user in the directory over SCIM.
    DirectoryUserCreated,
    /// The IdP changed a directory user (PUT or PATCH), e.g. `active: false` for a leaver.
    DirectoryUserUpdated,
    DirectoryUserDeleted,
    DirectoryGroupCreated,
    /// Renamed, or members added or removed.
    DirectoryGroupUpdated,
    DirectoryGroupDeleted,
    /// A SCIM request without a valid token, or from an address over its failure limit.
    ScimRefused,
    /// A leaver carried out: sessions ended, grants ended, app deactivations queued.
    DirectoryLeaver,
    /// A user the directory made active again: sign-in allowed, accounts set up anew.
    DirectoryReturn,
    /// A user's groups changed (by the directory, or a claims refresh): sessions rewritten,
    /// grants they may no longer request ended, app accounts updated.
    Mover,
    /// An account created ahead of sign-in for a directory user (`provisioning.ahead`).
    DirectoryJoiner,
    /// A lifecycle job given up after its last retry.
    LifecycleJobFailed,
    /// The IdP refused to refresh a login's claims (`invalid_grant`: the user was disabled or
    /// deleted there, or the grant revoked): the user's sessions were ended everywhere.
    ClaimsRefreshRefused,
}

impl AuditKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditKind::Login => "login",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::Logout => "logout",
            AuditKind::BackchannelLogout => "backchannel_logout",
            AuditKind::SessionExpired => "session_expired",
            AuditKind::AccessDenied => "access_denied",
            AuditKind::ProvisioningCall => "provisioning_call",
            AuditKind::AccountCreated => "account_created",
            AuditKind::AccountLinked => "account_linked",
            AuditKind::AccountUpdated => "account_updated",
            AuditKind::AccountDeactivated => "account_deactivated",
            AuditKind::AccountReactivated => "account_reactivated",
            AuditKind::ProvisioningFailed => "provisioning_failed",
            AuditKind::GrantRequested => "grant_requested",
            AuditKind::GrantApproved => "grant_approved",
            AuditKind::GrantDenied => "grant_denied",
            AuditKind::GrantActivated => "grant_activated",
            AuditKind::GrantRevoked => "grant_revoked",
            AuditKind::GrantExpired => "grant_expired",
            AuditKind::GrantFirstUsed => "grant_first_used",
            AuditKind::ElevationDenied => "elevation_denied",
            AuditKind::GrantAppCall => "grant_app_call",
            AuditKind::GrantRefused => "grant_refused",
            AuditKind::DirectoryUserCreated => "directory_user_created",
            AuditKind::DirectoryUserUpdated => "directory_user_updated",
            AuditKind::DirectoryUserDeleted => "directory_user_deleted",
            AuditKind::DirectoryGroupCreated => "directory_group_created",
            AuditKind::DirectoryGroupUpdated => "directory_group_updated",
            AuditKind::DirectoryGroupDeleted => "directory_group_deleted",
            AuditKind::ScimRefused => "scim_refused",
            AuditKind::DirectoryLeaver => "directory_leaver",
            AuditKind::DirectoryReturn => "directory_return",
            AuditKind::Mover => "mover",
            AuditKind::DirectoryJoiner => "directory_joiner",
            AuditKind::LifecycleJobFailed => "lifecycle_job_failed",
            AuditKind::ClaimsRefreshRefused => "claims_refresh_refused",
        }
    }
}

/// Who and where an event is about.
#[derive(Debug, Default, Clone)]
pub struct Subject<'a> {
    pub iss: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub app: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

#[derive(Clone)]
pub struct Audit {
    store: Arc<dyn Store>,
}

impl Audit {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    fn event(kind: AuditKind, subject: &Subject<'_>, detail: Value) -> AuditEvent {
        let event = AuditEvent {
            at_ms: now_ms(),
            kind: kind.as_str().to_string(),
            iss: subject.iss.map(str::to_string),
            sub: subject.sub.map(str::to_string),
            app: subject.app.map(str::to_string),
            request_id: subject.request_id.map(str::to_string),
            detail: detail.to_string(),
        };
        tracing::info!(
            target: "jitgate::audit",
            event = event.kind,
            iss = event.iss.as_deref().unwrap_or(""),
            sub = event.sub.as_deref().unwrap_or(""),
            app = event.app.as_deref().unwrap_or(""),
            request_id = event.request_id.as_deref().unwrap_or(""),
            detail = %event.detail,
            "audit"
        );
        event
    }

    /// Records an event and waits for the store.
    pub async fn record(&self, kind: AuditKind, subject: Subject<'_>, detail: Value) {
        let event = Self::event(kind, &subject, detail);
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!(error = %e, event = event.kind, "audit event not stored");
        }
    }

    /// Records an event without making the caller wait.
    pub fn record_in_background(&self, kind: AuditKind, subject: Subject<'_>, detail: Value) {
        let event = Self::event(kind, &subject, detail);
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.append_audit(&event).await {
                tracing::error!(error = %e, event = event.kind, "audit event not stored");
            }
        });
    }
}

/// Convenience for event details.
pub fn detail(pairs: &[(&str, &str)]) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in pairs {
        map.insert((*k).to_string(), json!(v));
    }
    Value::Object(map)
}

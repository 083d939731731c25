//! The lifecycle's records: queued jobs and identity links.
//!
//! A directory change (a leaver, a return) has effects elsewhere: sessions to end, grants to
//! revoke, app accounts to deactivate. Each effect is written as a [`LifecycleJob`] row in the
//! same transaction as the change that causes it, then taken and run by a worker, so a crash
//! between the two loses nothing. An [`IdentityLink`] ties a signed-in identity (issuer and
//! subject) to the directory value it matched, so a leaver's identities can be found without
//! a session.

/// One lifecycle effect to carry out (a leaver's sessions, grants and accounts; a return),
/// kept as a row before it is attempted. Times are unix ms.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleJob {
    /// A UUID chosen by the caller.
    pub id: String,
    /// E.g. `leaver`, `return`, `deactivate_account`.
    pub kind: String,
    /// JSON text: what it acts on.
    pub subject: String,
    /// Who caused it, e.g. `scim token 1`.
    pub by: String,
    pub reason: String,
    /// `pending`, `running`, `done` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub last_error: Option<String>,
}

/// The lifecycle queue at a glance (for gauges and `jitgate scim status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSummary {
    /// Pending or running jobs.
    pub waiting: i64,
    /// created_at_ms of the oldest waiting job.
    pub oldest_waiting_ms: Option<i64>,
    pub failed: i64,
}

/// A signed-in identity and the directory value it links to (the configured claim's value).
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityLink {
    pub iss: String,
    pub sub: String,
    pub link_value: String,
    pub seen_at_ms: i64,
    /// Set while the directory says this person left; cleared when they return.
    pub removed_at_ms: Option<i64>,
}

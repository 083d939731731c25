//! Purpose-based, time-bound elevated access ("admin on wiki for 30 min, purpose INC-1234").
//!
//! ```text
//! request   requester in `requesters`? purpose? ticket matches? duration <= max?
//!           requester in `approval.auto` -> active at once; else pending
//! approve   pending; approver in `approval.approvers`, never the requester, once each;
//!           `required` approvals -> active (the clock starts at activation)
//!           refused (403, audited) while the user's account in the app is deactivated
//! deny / revoke (owner, approvers, operators) / expire (sweep)
//! leaver    `end_all_of`: active grants revoked (end calls due), pending requests denied
//! check     every request on an `elevate:` route: cached active grants of this user, and
//!           the grant's own expiry compared with the clock on each request
//! ```
//! Every change is a compare-and-swap in the store, audited with who, purpose and ticket. A
//! change made here clears this replica's cache for that user at once; on PostgreSQL the
//! store announces it (`NOTIFY`) and every other replica clears it too, with a re-read after
//! [`RECHECK_AFTER_WITH_NOTIFY`] as the fallback (with SQLite: [`RECHECK_AFTER`]). When the store cannot be read on a cache miss, elevated
//! routes fail closed (the caller answers 503); ordinary routes never call this module.
//!
//! The parts, each in its own file:
//!
//! ```text
//! mod.rs        Grants, and what every action shares: the grant type look-up, audit events
//! check.rs      the per-request check and this replica's cache of active grants
//! request.rs    a user asks (the policy's rules for requesters, purpose, ticket, duration)
//! decide.rs     approve, deny, revoke, and what a user sees and may decide on
//! ending.rs     the expiry sweep, and a leaver's grants ended
//! app_calls.rs  grant types' start and end calls to the app
//! actor.rs      who decides (a signed-in user or an operator)
//! error.rs      GrantError, whose messages users read
//! ```

mod actor;
mod app_calls;
mod check;
mod decide;
mod ending;
mod error;
mod request;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::policy::{AppPolicy, GrantType, PolicySet};
use crate::store::{GrantRecord, Store};
use crate::telemetry::audit::{Audit, AuditKind, Subject};
use crate::util::cache_key::KeyHasherBuilder;
use check::UserGrants;

pub use actor::Actor;
pub use check::ActiveGrant;
pub use error::GrantError;
pub use request::{human, GrantAsk};

/// How long a replica trusts its cached view of a user's grants before re-reading the
/// store, with SQLite (changes made by this process apply at once; this bounds changes made
/// by `jitgate grants` in another process).
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);
/// The same with PostgreSQL, where changes are pushed to every replica at once by
/// `NOTIFY`: this is only the fallback for notifications lost with a connection.
pub const RECHECK_AFTER_WITH_NOTIFY: Duration = Duration::from_secs(5);

pub struct Grants {
    store: Arc<dyn Store>,
    audit: Audit,
    /// Makes grant types' app calls (start and end) through the app's connector.
    accounts: Option<Arc<crate::lifecycle::provision::Accounts>>,
    cache: moka::sync::Cache<(u64, [u8; 16]), Arc<UserGrants>, KeyHasherBuilder>,
    /// Bumped by every change: a store read that started before a change must not put
    /// what it read into the cache (it could bring back a revoked grant).
    generation: AtomicU64,
    /// Grants revoked before their time (id -> planned end, ms), here or announced by another
    /// replica: long-lived connections opened under them are cut on their next bytes.
    revoked: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl Grants {
    /// `recheck_after` is [`RECHECK_AFTER`] in jitgate (benches hold entries longer).
    pub fn new(
        store: Arc<dyn Store>,
        audit: Audit,
        recheck_after: Duration,
        accounts: Option<Arc<crate::lifecycle::provision::Accounts>>,
    ) -> Self {
        Self {
            accounts,
            cache: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(recheck_after)
                .support_invalidation_closures()
                .build_with_hasher(KeyHasherBuilder::default()),
            generation: AtomicU64::new(0),
            revoked: std::sync::Mutex::new(std::collections::HashMap::new()),
            store,
            audit,
        }
    }

    async fn record(&self, kind: AuditKind, grant: &GrantRecord, actor: &Actor) {
        self.record_because(kind, grant, actor, None).await;
    }

    async fn record_because(
        &self,
        kind: AuditKind,
        grant: &GrantRecord,
        actor: &Actor,
        reason: Option<&str>,
    ) {
        self.audit
            .record(
                kind,
                Subject {
                    iss: Some(&grant.iss),
                    sub: Some(&grant.sub),
                    app: Some(&grant.app),
                    request_id: None,
                },
                json!({
                    "grant": grant.id,
                    "type": grant.grant_type,
                    "by": actor.username,
                    "by_iss": actor.iss,
                    "by_sub": actor.sub,
                    "purpose": grant.purpose,
                    "ticket": grant.ticket,
                    "status": grant.status,
                    "expires_at_ms": grant.expires_at,
                    "reason": reason,
                }),
            )
            .await;
    }
}

fn grant_type<'a>(
    policies: &'a PolicySet,
    app: &str,
    name: &str,
) -> Result<(&'a Arc<AppPolicy>, &'a GrantType), GrantError> {
    let app = policies
        .apps()
        .iter()
        .find(|a| a.name == app)
        .ok_or_else(|| GrantError::UnknownApp(app.to_string()))?;
    let kind = app
        .grant_types
        .iter()
        .find(|g| g.name == name)
        .ok_or_else(|| GrantError::UnknownType {
            app: app.name.clone(),
            grant_type: name.to_string(),
        })?;
    Ok((app, kind))
}

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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::identity::Identity;
use crate::lifecycle::provision::GrantCall;
use crate::policy::{AppPolicy, GrantType, PolicySet};
use crate::store::{AccountKey, GrantRecord, Store, StoreError};
use crate::telemetry::audit::{Audit, AuditKind, Subject};
use crate::util::cache_key::KeyHasherBuilder;
use crate::util::clock::now_ms;

/// How long a replica trusts its cached view of a user's grants before re-reading the
/// store, with SQLite (changes made by this process apply at once; this bounds changes made
/// by `jitgate grants` in another process).
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);
/// The same with PostgreSQL, where changes are pushed to every replica at once by
/// `NOTIFY`: this is only the fallback for notifications lost with a connection.
pub const RECHECK_AFTER_WITH_NOTIFY: Duration = Duration::from_secs(5);

/// Why a grant action was refused; the message is shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("there is no app `{0}`")]
    UnknownApp(String),
    #[error("{app} has no grant type `{grant_type}`")]
    UnknownType { app: String, grant_type: String },
    #[error("you may not ask for {0}: it is for the groups {1}")]
    NotARequester(String, String),
    #[error("say what the access is for (purpose)")]
    PurposeRequired,
    #[error("a ticket matching {0} is required")]
    TicketRequired(String),
    #[error("ticket `{0}` does not match {1}")]
    TicketMismatch(String, String),
    #[error("{asked} is longer than the {max} this grant allows")]
    TooLong { asked: String, max: String },
    #[error("the duration is not valid: {0}")]
    BadDuration(String),
    #[error("a ticket is at most 100 characters, without control characters")]
    BadTicket,
    #[error("no such grant")]
    NotFound,
    #[error("this grant is {0}, not pending")]
    NotPending(String),
    #[error("this grant is {0}: only pending or active grants can be revoked")]
    NotRevocable(String),
    #[error("you cannot approve your own request")]
    SelfApproval,
    #[error("you are not an approver for {0}")]
    NotAnApprover(String),
    #[error("you may not revoke this grant")]
    NotAllowedToRevoke,
    #[error("you approved this request already")]
    AlreadyApproved,
    #[error("the grant changed meanwhile; try again")]
    Conflict,
    #[error("the account of {user} in {app} is deactivated: no elevated access can be granted")]
    AccountDeactivated { app: String, user: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot make a grant id: {0}")]
    Random(#[from] crate::util::random::RandomError),
}

/// Someone deciding on a grant: a signed-in user, or an operator at the command line.
#[derive(Debug, Clone)]
pub struct Actor {
    pub iss: String,
    pub sub: String,
    pub username: String,
    pub groups: Vec<String>,
    /// Operators (the `jitgate grants` command) may decide anything; recorded as such.
    pub operator: bool,
}

impl Actor {
    pub fn user(identity: &Identity) -> Self {
        Self {
            iss: identity.iss.to_string(),
            sub: identity.sub.to_string(),
            username: identity.username.to_string(),
            groups: identity.groups().map(str::to_string).collect(),
            operator: false,
        }
    }

    pub fn operator(name: &str) -> Self {
        Self {
            iss: "jitgate:operator".into(),
            sub: name.into(),
            username: format!("operator:{name}"),
            groups: Vec::new(),
            operator: true,
        }
    }

    fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }

    fn is(&self, grant: &GrantRecord) -> bool {
        self.iss == grant.iss && self.sub == grant.sub
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Approval {
    iss: String,
    sub: String,
    username: String,
    at: i64,
}

/// An active grant as the request path sees it.
#[derive(Debug)]
pub struct ActiveGrant {
    pub id: String,
    pub grant_type: String,
    pub expires_at_ms: i64,
    used: AtomicBool,
}

#[derive(Debug)]
struct UserGrants {
    iss: Arc<str>,
    sub: Box<str>,
    active: Vec<Arc<ActiveGrant>>,
}

/// What a user asks for.
#[derive(Debug, Clone, Deserialize)]
pub struct GrantAsk {
    pub app: String,
    #[serde(rename = "type")]
    pub grant_type: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub ticket: Option<String>,
    /// `30m`, `1h`, ...
    pub duration: String,
}

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

    /// The hot path of an `elevate:` route: the user's active grant of `grant_type`, if any.
    /// A cache hit reads no store; the expiry is compared with the clock on every call, so
    /// no request is served after `expires_at` even while the entry is cached.
    pub async fn check(
        &self,
        app: &AppPolicy,
        identity: &Identity,
        grant_type: &str,
    ) -> Result<Option<Arc<ActiveGrant>>, StoreError> {
        if let Some(found) = self.check_cached(app, identity, grant_type) {
            return Ok(found);
        }
        let user = Box::pin(self.load(app, identity)).await?;
        Ok(self.find(app, identity, &user, grant_type))
    }

    /// [`Self::check`] without the store: `None` when this user's grants are not cached.
    pub fn check_cached(
        &self,
        app: &AppPolicy,
        identity: &Identity,
        grant_type: &str,
    ) -> Option<Option<Arc<ActiveGrant>>> {
        let user = self.cache.get(&(app.key, identity.digest()))?;
        Some(self.find(app, identity, &user, grant_type))
    }

    fn find(
        &self,
        app: &AppPolicy,
        identity: &Identity,
        user: &UserGrants,
        grant_type: &str,
    ) -> Option<Arc<ActiveGrant>> {
        let now = now_ms();
        let found = user
            .active
            .iter()
            .find(|g| g.grant_type == grant_type && now < g.expires_at_ms)
            .cloned();
        if let Some(grant) = &found {
            if !grant.used.swap(true, Ordering::Relaxed) {
                self.first_use(app, identity, grant);
            }
        }
        found
    }

    async fn load(
        &self,
        app: &AppPolicy,
        identity: &Identity,
    ) -> Result<Arc<UserGrants>, StoreError> {
        let key = AccountKey {
            app: &app.name,
            iss: &identity.iss,
            sub: &identity.sub,
        };
        let generation = self.generation.load(Ordering::SeqCst);
        let rows = self.store.active_grants(key, now_ms()).await?;
        let user = Arc::new(UserGrants {
            iss: identity.iss.clone(),
            sub: identity.sub.clone(),
            active: rows
                .into_iter()
                .filter_map(|g| {
                    Some(Arc::new(ActiveGrant {
                        expires_at_ms: g.expires_at?,
                        used: AtomicBool::new(g.first_used_at.is_some()),
                        id: g.id,
                        grant_type: g.grant_type,
                    }))
                })
                .collect(),
        });
        // Cache it only if nothing changed while we read (else the next request reads again).
        let cache_key = (app.key, identity.digest());
        if self.generation.load(Ordering::SeqCst) == generation {
            self.cache.insert(cache_key, user.clone());
            if self.generation.load(Ordering::SeqCst) != generation {
                self.cache.invalidate(&cache_key);
            }
        }
        Ok(user)
    }

    fn first_use(&self, app: &AppPolicy, identity: &Identity, grant: &ActiveGrant) {
        let store = self.store.clone();
        let audit = self.audit.clone();
        let (id, app_name) = (grant.id.clone(), app.name.clone());
        let (iss, sub) = (identity.iss.to_string(), identity.sub.to_string());
        tokio::spawn(async move {
            match store.mark_grant_used(&id, now_ms()).await {
                Ok(true) => {
                    let subject = Subject {
                        iss: Some(&iss),
                        sub: Some(&sub),
                        app: Some(&app_name),
                        request_id: None,
                    };
                    audit
                        .record(AuditKind::GrantFirstUsed, subject, json!({ "grant": id }))
                        .await;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not record a grant's first use"),
            }
        });
    }

    /// Notes that grant `id` (planned to end at `until_ms`) was revoked.
    pub fn note_revoked(&self, id: &str, until_ms: i64) {
        let now = now_ms();
        let mut revoked = self
            .revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        revoked.retain(|_, until| *until > now);
        revoked.insert(id.to_string(), until_ms);
    }

    /// Whether grant `id` was revoked (as far as this replica has heard).
    pub fn is_revoked(&self, id: &str) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(id)
    }

    /// Forgets every cached grant (after notifications may have been lost).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }

    /// Forgets this replica's cached grants of one user (after any change to them, here or,
    /// announced by the store, on another replica).
    pub fn forget(&self, iss: &str, sub: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let (iss, sub) = (iss.to_string(), sub.to_string());
        // Only fails when invalidation closures are not enabled, which `new` does.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, u| *u.iss == *iss && *u.sub == *sub);
    }

    /// A user asks for elevated access.
    pub async fn request(
        &self,
        policies: &PolicySet,
        requester: &Identity,
        ask: &GrantAsk,
    ) -> Result<GrantRecord, GrantError> {
        let (app, kind) = grant_type(policies, &ask.app, &ask.grant_type)?;
        let actor = Actor::user(requester);
        if !actor.in_any(&kind.requesters) {
            return Err(GrantError::NotARequester(
                kind.name.clone(),
                kind.requesters.join(", "),
            ));
        }
        let purpose = clip(ask.purpose.trim(), 500);
        if kind.purpose_required && purpose.trim().is_empty() {
            return Err(GrantError::PurposeRequired);
        }
        let ticket = ask
            .ticket
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if ticket.is_some_and(|t| t.len() > 100 || t.chars().any(char::is_control)) {
            return Err(GrantError::BadTicket);
        }
        if let Some(re) = &kind.ticket {
            let shown = display_pattern(re);
            match ticket {
                None => return Err(GrantError::TicketRequired(shown)),
                Some(t) if !re.is_match(t) => {
                    return Err(GrantError::TicketMismatch(t.to_string(), shown))
                }
                Some(_) => {}
            }
        }
        let duration = crate::util::duration::parse_duration(&ask.duration)
            .map_err(GrantError::BadDuration)?;
        if duration.is_zero() {
            return Err(GrantError::BadDuration("it must be more than 0".into()));
        }
        if duration > kind.max_duration {
            return Err(GrantError::TooLong {
                asked: ask.duration.trim().to_string(),
                max: human(kind.max_duration),
            });
        }
        self.refuse_if_deactivated(&app.name, &actor.iss, &actor.sub, &actor.username, &actor)
            .await?;
        let now = now_ms();
        let auto = actor.in_any(&kind.auto);
        let mut grant = GrantRecord {
            id: format!("g-{}", &crate::util::random::token()?[..16]),
            app: app.name.clone(),
            grant_type: kind.name.clone(),
            iss: actor.iss.clone(),
            sub: actor.sub.clone(),
            username: actor.username.clone(),
            purpose,
            ticket: ticket.map(str::to_string),
            duration_secs: duration.as_secs() as i64,
            status: if auto { "active" } else { "pending" }.into(),
            approvals: "[]".into(),
            requested_at: now,
            decided_at: auto.then_some(now),
            expires_at: auto.then_some(now + duration.as_millis() as i64),
            ended_by: None,
            first_used_at: None,
            version: 1,
            end_call: (auto && kind.end_call.is_some()).then(|| "armed".to_string()),
        };
        self.store.insert_grant(&grant).await?;
        self.record(AuditKind::GrantRequested, &grant, &actor).await;
        // A deactivation that ran between the check above and the insert did not see this
        // grant when it ended the user's grants: look again, and end it here.
        let recheck = self
            .refuse_if_deactivated(&app.name, &grant.iss, &grant.sub, &grant.username, &actor)
            .await;
        if let Err(refused) = recheck {
            // Fail closed: a grant whose account cannot be confirmed does not start.
            let why = match refused {
                GrantError::AccountDeactivated { .. } => "account deactivated",
                _ => "could not confirm the account",
            };
            match self
                .end_one(&mut grant, &Actor::operator("jitgate"), why)
                .await
            {
                // Conflict: the deactivation ended it first.
                Ok(()) | Err(GrantError::Conflict) => return Err(refused),
                Err(e) => return Err(e),
            }
        }
        if auto {
            self.record(AuditKind::GrantActivated, &grant, &actor).await;
            self.forget(&grant.iss, &grant.sub);
            self.start_call(app, kind, &grant);
        }
        Ok(grant)
    }

    /// An approver (never the requester) approves; the grant starts once enough have.
    pub async fn approve(
        &self,
        policies: &PolicySet,
        id: &str,
        actor: &Actor,
        scope: Option<&str>,
    ) -> Result<GrantRecord, GrantError> {
        let mut grant = self.scoped(id, scope).await?;
        let (_, kind) = grant_type(policies, &grant.app, &grant.grant_type)?;
        if grant.status != "pending" {
            return Err(GrantError::NotPending(grant.status));
        }
        if actor.is(&grant) {
            return Err(GrantError::SelfApproval);
        }
        if !actor.operator && !actor.in_any(&kind.approvers) {
            return Err(GrantError::NotAnApprover(kind.name.clone()));
        }
        self.refuse_if_deactivated(&grant.app, &grant.iss, &grant.sub, &grant.username, actor)
            .await?;
        let mut approvals: Vec<Approval> =
            serde_json::from_str(&grant.approvals).unwrap_or_default();
        if approvals
            .iter()
            .any(|a| a.iss == actor.iss && a.sub == actor.sub)
        {
            return Err(GrantError::AlreadyApproved);
        }
        let now = now_ms();
        approvals.push(Approval {
            iss: actor.iss.clone(),
            sub: actor.sub.clone(),
            username: actor.username.clone(),
            at: now,
        });
        grant.approvals = serde_json::to_string(&approvals).unwrap_or_else(|_| "[]".into());
        let enough = actor.operator || approvals.len() as u32 >= kind.required;
        if enough {
            grant.status = "active".into();
            grant.decided_at = Some(now);
            // The policy may have shortened the maximum since the request: it applies.
            let secs = grant.duration_secs.min(kind.max_duration.as_secs() as i64);
            grant.expires_at = Some(now + secs * 1000);
            if kind.end_call.is_some() {
                grant.end_call = Some("armed".into());
            }
        }
        self.commit(&mut grant).await?;
        self.record(AuditKind::GrantApproved, &grant, actor).await;
        if enough {
            self.record(AuditKind::GrantActivated, &grant, actor).await;
            self.forget(&grant.iss, &grant.sub);
            if let Ok((app, kind)) = grant_type(policies, &grant.app, &grant.grant_type) {
                self.start_call(app, kind, &grant);
            }
        }
        Ok(grant)
    }

    /// An approver (or operator) turns a pending request down.
    pub async fn deny(
        &self,
        policies: &PolicySet,
        id: &str,
        actor: &Actor,
        scope: Option<&str>,
    ) -> Result<GrantRecord, GrantError> {
        let mut grant = self.scoped(id, scope).await?;
        let (_, kind) = grant_type(policies, &grant.app, &grant.grant_type)?;
        if grant.status != "pending" {
            return Err(GrantError::NotPending(grant.status));
        }
        if !actor.operator && (actor.is(&grant) || !actor.in_any(&kind.approvers)) {
            return Err(GrantError::NotAnApprover(kind.name.clone()));
        }
        grant.status = "denied".into();
        grant.decided_at = Some(now_ms());
        grant.ended_by = Some(actor.username.clone());
        self.commit(&mut grant).await?;
        self.record(AuditKind::GrantDenied, &grant, actor).await;
        Ok(grant)
    }

    /// Ends a grant now: its owner (ending early), an approver of its type, or an operator.
    /// Takes effect on this replica's next request, and on others' within [`RECHECK_AFTER`].
    pub async fn revoke(
        &self,
        policies: &PolicySet,
        id: &str,
        actor: &Actor,
        scope: Option<&str>,
    ) -> Result<GrantRecord, GrantError> {
        let mut grant = self.scoped(id, scope).await?;
        if !matches!(grant.status.as_str(), "pending" | "active") {
            return Err(GrantError::NotRevocable(grant.status));
        }
        let approver = grant_type(policies, &grant.app, &grant.grant_type)
            .map(|(_, kind)| actor.in_any(&kind.approvers))
            .unwrap_or(false);
        if !(actor.operator || actor.is(&grant) || approver) {
            return Err(GrantError::NotAllowedToRevoke);
        }
        grant.status = "revoked".into();
        let now = now_ms();
        let planned_end = grant.expires_at.unwrap_or(now);
        grant.expires_at = Some(grant.expires_at.map_or(now, |e| e.min(now)));
        grant.ended_by = Some(actor.username.clone());
        if grant.end_call.as_deref() == Some("armed") {
            grant.end_call = Some("pending".into());
        }
        self.commit(&mut grant).await?;
        self.forget(&grant.iss, &grant.sub);
        self.note_revoked(&grant.id, planned_end.max(now + 1));
        self.record(AuditKind::GrantRevoked, &grant, actor).await;
        Ok(grant)
    }

    /// Leaver: ends every grant the user has in `app`. Active grants are revoked (their end
    /// calls become due, made by [`Self::run_end_calls`]) and pending requests are denied,
    /// each audited with `actor` and `reason`. Returns how many were revoked and denied.
    pub async fn end_all_of(
        &self,
        key: AccountKey<'_>,
        actor: &Actor,
        reason: &str,
    ) -> Result<(usize, usize), GrantError> {
        let (mut revoked, mut denied) = (0, 0);
        // A grant changed meanwhile (approved, say) is read again and ended in its new state.
        for _ in 0..5 {
            let open: Vec<GrantRecord> = self
                .store
                .grants_of(key)
                .await?
                .into_iter()
                .filter(|g| matches!(g.status.as_str(), "pending" | "active"))
                .collect();
            if open.is_empty() {
                return Ok((revoked, denied));
            }
            for mut grant in open {
                let was_active = grant.status == "active";
                match self.end_one(&mut grant, actor, reason).await {
                    Ok(()) if was_active => revoked += 1,
                    Ok(()) => denied += 1,
                    Err(GrantError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(GrantError::Conflict)
    }

    /// Revokes an active grant or denies a pending one, for `reason`.
    async fn end_one(
        &self,
        grant: &mut GrantRecord,
        actor: &Actor,
        reason: &str,
    ) -> Result<(), GrantError> {
        let now = now_ms();
        let planned_end = grant.expires_at.unwrap_or(now);
        let active = grant.status == "active";
        let kind = if active {
            grant.status = "revoked".into();
            grant.expires_at = Some(planned_end.min(now));
            if grant.end_call.as_deref() == Some("armed") {
                grant.end_call = Some("pending".into());
            }
            AuditKind::GrantRevoked
        } else {
            grant.status = "denied".into();
            grant.decided_at = Some(now);
            AuditKind::GrantDenied
        };
        grant.ended_by = Some(actor.username.clone());
        self.commit(grant).await?;
        self.forget(&grant.iss, &grant.sub);
        if active {
            self.note_revoked(&grant.id, planned_end.max(now + 1));
        }
        self.record_because(kind, grant, actor, Some(reason)).await;
        Ok(())
    }

    /// Refuses (and audits) elevated access for a user whose account in `app` jitgate
    /// deactivated. Apps without provisioning have no accounts, so nothing to refuse.
    async fn refuse_if_deactivated(
        &self,
        app: &str,
        iss: &str,
        sub: &str,
        username: &str,
        actor: &Actor,
    ) -> Result<(), GrantError> {
        let key = AccountKey { app, iss, sub };
        let deactivated = self
            .store
            .get_account(key)
            .await?
            .is_some_and(|a| a.deactivated_at.is_some());
        if !deactivated {
            return Ok(());
        }
        self.audit
            .record(
                AuditKind::GrantRefused,
                Subject {
                    iss: Some(iss),
                    sub: Some(sub),
                    app: Some(app),
                    request_id: None,
                },
                json!({ "reason": "account deactivated", "by": actor.username }),
            )
            .await;
        Err(GrantError::AccountDeactivated {
            app: app.to_string(),
            user: username.to_string(),
        })
    }

    /// Writes a changed grant as the next version of the one read; a concurrent change wins.
    async fn commit(&self, grant: &mut GrantRecord) -> Result<(), GrantError> {
        let read = grant.version;
        grant.version += 1;
        if self.store.update_grant(grant, read).await? {
            Ok(())
        } else {
            Err(GrantError::Conflict)
        }
    }

    /// The grant `id`, if it belongs to the app in `scope` (any app for operators).
    async fn scoped(&self, id: &str, scope: Option<&str>) -> Result<GrantRecord, GrantError> {
        let grant = self
            .store
            .get_grant(id)
            .await?
            .ok_or(GrantError::NotFound)?;
        match scope {
            Some(app) if app != grant.app => Err(GrantError::NotFound),
            _ => Ok(grant),
        }
    }

    /// The user's own grants in `app`, and the pending requests they may decide on.
    pub async fn overview(
        &self,
        policies: &PolicySet,
        app: &AppPolicy,
        identity: &Identity,
    ) -> Result<(Vec<GrantRecord>, Vec<GrantRecord>), GrantError> {
        let key = AccountKey {
            app: &app.name,
            iss: &identity.iss,
            sub: &identity.sub,
        };
        let mine = self.store.grants_of(key).await?;
        let actor = Actor::user(identity);
        let pending = self
            .store
            .list_grants(Some(&app.name), Some("pending"))
            .await?;
        let to_decide = pending
            .into_iter()
            .filter(|g| {
                !actor.is(g)
                    && grant_type(policies, &g.app, &g.grant_type)
                        .is_ok_and(|(_, kind)| actor.in_any(&kind.approvers))
            })
            .collect();
        Ok((mine, to_decide))
    }

    /// Marks grants whose time is up as expired (enforcement never waits for this: it
    /// compares the expiry on every request). Run every second by the control runtime.
    pub async fn expire_due(&self) -> Result<usize, StoreError> {
        let expired = self.store.expire_grants(now_ms()).await?;
        for grant in &expired {
            self.forget(&grant.iss, &grant.sub);
            self.record(AuditKind::GrantExpired, grant, &Actor::operator("clock"))
                .await;
        }
        Ok(expired.len())
    }

    /// The grant type's start call, in the background (the grant is active at the edge
    /// already; the outcome is audited).
    fn start_call(&self, app: &Arc<AppPolicy>, kind: &GrantType, grant: &GrantRecord) {
        let (Some(op), Some(accounts)) = (kind.start_call.clone(), self.accounts.clone()) else {
            return;
        };
        let (app, grant, audit) = (app.clone(), grant.clone(), self.audit.clone());
        tokio::spawn(async move {
            let result = accounts
                .grant_call(&app, &op, &grant, GrantCall::Start)
                .await;
            app_call_audit(&audit, &grant, "start", &op, &result).await;
        });
    }

    /// Makes the end calls that are due (after expiry or revoke), also those left over by a
    /// process that stopped. Failures stay due and are retried on the next run.
    pub async fn run_end_calls(&self, policies: &PolicySet) -> Result<usize, StoreError> {
        let due = self.store.take_end_calls(now_ms()).await?;
        let mut done = 0;
        for grant in due {
            let found = grant_type(policies, &grant.app, &grant.grant_type).ok();
            let call = found.and_then(|(app, kind)| Some((app, kind.end_call.clone()?)));
            let (Some((app, op)), Some(accounts)) = (call, self.accounts.as_ref()) else {
                // The policy no longer names an end call for this grant: nothing to make.
                self.store.finish_end_call(&grant.id, "done").await?;
                continue;
            };
            let result = accounts.grant_call(app, &op, &grant, GrantCall::End).await;
            app_call_audit(&self.audit, &grant, "end", &op, &result).await;
            let state = if result.is_ok() { "done" } else { "pending" };
            self.store.finish_end_call(&grant.id, state).await?;
            done += usize::from(result.is_ok());
        }
        Ok(done)
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

async fn app_call_audit(
    audit: &Audit,
    grant: &GrantRecord,
    when: &str,
    op: &str,
    result: &Result<u16, crate::lifecycle::provision::ProvisionError>,
) {
    if let Err(e) = result {
        tracing::warn!(grant = %grant.id, call = when, error = %e, "grant app call failed");
    }
    audit
        .record(
            AuditKind::GrantAppCall,
            Subject {
                iss: Some(&grant.iss),
                sub: Some(&grant.sub),
                app: Some(&grant.app),
                request_id: None,
            },
            json!({
                "grant": grant.id, "when": when, "operation": op,
                "status": result.as_ref().ok(),
                "error": result.as_ref().err().map(|e| e.to_string()),
            }),
        )
        .await;
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

/// The pattern as the policy wrote it (without the anchors jitgate adds).
fn display_pattern(re: &regex::Regex) -> String {
    let s = re.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
        .to_string()
}

/// `90m` -> `1h30m`-free short form: the largest whole unit (`1h`, `30m`, `45s`).
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn clip(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}
